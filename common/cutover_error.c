/*
 * cutover_error: the error every library part reports (see cutover_error.h).
 */

#include <stdarg.h>
#include <stdio.h>

#include "common/cutover_error.h"


void
cutover_error_set(cutover_error_t *err, const char *code, const char *fmt,
    ...)
{
    va_list  ap;

    if (err == NULL) {
        return;
    }

    snprintf(err->name, sizeof(err->name), "%s", code);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}
