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


static void
fsync_delay(void)
{
    struct timespec  ts;

    if (delay_ms > 0) {
        ts.tv_sec = delay_ms / 1000;
        ts.tv_nsec = (delay_ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
}


int
fsync(int fd)
{
    static int (*real)(int);

    if (real == NULL) {
        real = (int (*)(int)) dlsym(RTLD_NEXT, "fsync");
    }

    fsync_delay();
    return real(fd);
}


int
fdatasync(int fd)
{
    static int (*real)(int);

    if (real == NULL) {
        real = (int (*)(int)) dlsym(RTLD_NEXT, "fdatasync");
    }

    fsync_delay();
    return real(fd);
}
