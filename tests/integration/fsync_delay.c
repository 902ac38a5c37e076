/*
 * A test helper preloaded into nginx: fsync(2) and fdatasync(2) first
 * sleep CUTOVER_FSYNC_DELAY_MS milliseconds, as on a disk under load.
 * The delay is read when the library loads (in the master: nginx gives
 * its workers a cleared environment), and workers inherit it.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long  delay_ms;


__attribute__((constructor))
static void
fsync_delay_init(void)
{
    const char  *v = getenv("CUTOVER_FSYNC_DELAY_MS");

    delay_ms = v ? atol(v) : 0;
}


/* Sleeps, then calls the libc function of that name. */
static int
fsync_delayed(const char *name, int fd)
{
    int              (*real)(int);
    struct timespec  ts;

    if (delay_ms > 0) {
        ts.tv_sec = delay_ms / 1000;
        ts.tv_nsec = (delay_ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }

    real = (int (*)(int)) dlsym(RTLD_NEXT, name);
    return real(fd);
}


int
fsync(int fd)
{
    return fsync_delayed("fsync", fd);
}


int
fdatasync(int fd)
{
    return fsync_delayed("fdatasync", fd);
}
