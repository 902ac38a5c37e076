/*
 * cutover_log: the daemons' log line (see cutover_log.h).
 */

#include <stdio.h>
#include <time.h>

#include "common/cutover_log.h"


void
cutover_log_vline(const char *program, const char *level, const char *fmt,
    va_list ap)
{
    int              n;
    char             line[4096], when[32];
    struct tm        tm;
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    n = snprintf(line, sizeof(line), "%s.%03ldZ [%s] %s: ", when,
                 ts.tv_nsec / 1000000, level, program);
    if (n < 0 || (size_t) n >= sizeof(line)) {
        return;
    }

    vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);

    /* one fputs of the whole line: lines of threads never interleave */
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}


void
cutover_log_line(const char *program, const char *level, const char *fmt,
    ...)
{
    va_list  ap;

    va_start(ap, fmt);
    cutover_log_vline(program, level, fmt, ap);
    va_end(ap);
}
