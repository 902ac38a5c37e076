/* Growable byte buffers, JSON string escaping and the library error type. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_json.h"
#include "new_core/newcore_buf.h"


static int newcore_buf_reserve(newcore_buf_t *b, size_t extra);
static int newcore_buf_sink(void *data, const char *p, size_t n);


void
newcore_error_set(newcore_error_t *err, int status, const char *code,
    const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL) {
        return;
    }

    err->code = status;
    snprintf(err->name, sizeof(err->name), "%s", code);

    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}


void
newcore_buf_init(newcore_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}


void
newcore_buf_reset(newcore_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}


void
newcore_buf_free(newcore_buf_t *b)
{
    if (b == NULL) {
        return;
    }
    free(b->data);
    newcore_buf_init(b);
}


static int
newcore_buf_reserve(newcore_buf_t *b, size_t extra)
{
    size_t   want, cap;
    char    *p;

    if (b->failed) {
        return NEWCORE_ERROR;
    }

    want = b->len + extra + 1;
    if (want <= b->cap) {
        return NEWCORE_OK;
    }

    cap = b->cap ? b->cap : 256;
    while (cap < want) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return NEWCORE_ERROR;
    }

    b->data = p;
    b->cap = cap;
    return NEWCORE_OK;
}


int
newcore_buf_append(newcore_buf_t *b, const char *s, size_t n)
{
    if (newcore_buf_reserve(b, n) != NEWCORE_OK) {
        return NEWCORE_ERROR;
    }

    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return NEWCORE_OK;
}


int
newcore_buf_puts(newcore_buf_t *b, const char *s)
{
    return newcore_buf_append(b, s, strlen(s));
}


int
newcore_buf_printf(newcore_buf_t *b, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);

    if (n < 0 || newcore_buf_reserve(b, (size_t) n) != NEWCORE_OK) {
        b->failed = 1;
        return NEWCORE_ERROR;
    }

    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);

    b->len += (size_t) n;
    return NEWCORE_OK;
}


int
newcore_buf_json_str(newcore_buf_t *b, const char *s)
{
    newcore_buf_append(b, "\"", 1);
    (void) cutover_json_write(s, strlen(s),
                              CUTOVER_JSON_ESC_SHORT|CUTOVER_JSON_ESC_FFFD,
                              newcore_buf_sink, b);
    return newcore_buf_append(b, "\"", 1);
}


static int
newcore_buf_sink(void *data, const char *p, size_t n)
{
    newcore_buf_append(data, p, n);
    return 0;
}


int
newcore_buf_error(newcore_buf_t *b, const newcore_error_t *err)
{
    newcore_buf_puts(b, "{\"error\":{\"code\":");
    newcore_buf_json_str(b, err->name[0] ? err->name : "internal");
    newcore_buf_puts(b, ",\"message\":");
    newcore_buf_json_str(b, err->message);
    return newcore_buf_puts(b, "}}");
}
