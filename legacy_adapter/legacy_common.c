/* legacy: error filling and the growable buffer. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legacy_adapter/legacy_common.h"


int
legacy_error_set(legacy_error_t *err, int code, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL) {
        return LEGACY_ERROR;
    }

    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);

    return LEGACY_ERROR;
}


int
legacy_buf_append(legacy_buf_t *b, const void *p, size_t n)
{
    size_t   cap;
    char    *data;

    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        data = realloc(b->data, cap);
        if (data == NULL) {
            return LEGACY_ERROR;
        }
        b->data = data;
        b->cap = cap;
    }

    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';

    return LEGACY_OK;
}


int
legacy_buf_printf(legacy_buf_t *b, const char *fmt, ...)
{
    va_list  ap;
    char     small[256], *big;
    int      n, rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return LEGACY_ERROR;
    }
    if ((size_t) n < sizeof(small)) {
        return legacy_buf_append(b, small, n);
    }

    big = malloc(n + 1);
    if (big == NULL) {
        return LEGACY_ERROR;
    }
    va_start(ap, fmt);
    vsnprintf(big, n + 1, fmt, ap);
    va_end(ap);
    rc = legacy_buf_append(b, big, n);
    free(big);

    return rc;
}


void
legacy_buf_free(legacy_buf_t *b)
{
    if (b == NULL) {
        return;
    }
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
