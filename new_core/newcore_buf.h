/* Growable byte buffers, JSON string escaping and the library error type. */

#ifndef NEWCORE_BUF_H
#define NEWCORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_error.h"

#define NEWCORE_OK     0
#define NEWCORE_ERROR  -1

/* The library error: code is the HTTP status to answer (0 when unset),
 * name the canonical error code, e.g. "invalid_request". */
typedef cutover_error_t  newcore_error_t;

/*
 * A growable buffer, always NUL-terminated once anything was appended.
 * Memory failure is sticky: `failed` is set and later appends do nothing.
 */
typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      failed;
} newcore_buf_t;

void newcore_error_set(newcore_error_t *err, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void newcore_buf_init(newcore_buf_t *b);
void newcore_buf_reset(newcore_buf_t *b);
void newcore_buf_free(newcore_buf_t *b);
int newcore_buf_append(newcore_buf_t *b, const char *s, size_t n);
int newcore_buf_puts(newcore_buf_t *b, const char *s);
int newcore_buf_printf(newcore_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends s as a JSON string literal, quotes included. */
int newcore_buf_json_str(newcore_buf_t *b, const char *s);

/* Appends {"error": {"code": ..., "message": ...}}. */
int newcore_buf_error(newcore_buf_t *b, const newcore_error_t *err);

#endif /* NEWCORE_BUF_H */
