/* legacy: shared result codes, the caller-owned error and a growable buffer. */

#ifndef LEGACY_COMMON_H
#define LEGACY_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cutover_error.h"

#define LEGACY_OK     0
#define LEGACY_ERROR  -1

/* What went wrong, as the canonical API would name it. */
typedef enum {
    LEGACY_E_NONE = 0,
    LEGACY_E_INVALID,        /* 400 invalid_request: bad client input */
    LEGACY_E_NOT_FOUND,      /* 404 */
    LEGACY_E_UPSTREAM,       /* 502: legacy answered garbage or is down */
    LEGACY_E_TIMEOUT,        /* 504: legacy too slow */
    LEGACY_E_CONFIG,         /* bad map or flags */
    LEGACY_E_DB,             /* database failure */
    LEGACY_E_INTERNAL
} legacy_error_code_t;

typedef cutover_error_t  legacy_error_t;   /* code: legacy_error_code_t */

/* Log levels passed to a program's log callback; libraries never log. */
typedef enum {
    LEGACY_LOG_ERR = 0,
    LEGACY_LOG_WARN,
    LEGACY_LOG_INFO
} legacy_log_level_t;

typedef void (*legacy_log_fn)(void *data, int level, const char *message);

int legacy_error_set(legacy_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A growable byte buffer; legacy_buf_free() releases data. */
typedef struct {
    char   *data;
    size_t  len;
    size_t  cap;
} legacy_buf_t;

int legacy_buf_append(legacy_buf_t *b, const void *p, size_t n);
int legacy_buf_printf(legacy_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void legacy_buf_free(legacy_buf_t *b);

#endif
