/*
 * cutover_log: the daemons' log line, one per event on stderr:
 * "<UTC time, ms>Z [<level>] <program>: <message>".
 */

#ifndef CUTOVER_LOG_H
#define CUTOVER_LOG_H

#include <stdarg.h>

/* Whole lines: safe to call from several threads at once. */
void cutover_log_line(const char *program, const char *level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cutover_log_vline(const char *program, const char *level,
    const char *fmt, va_list ap);

#endif /* CUTOVER_LOG_H */
