/* Growable byte buffers, JSON string escaping and the library error type. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "new_core/newcore_buf.h"


static int newcore_buf_reserve(newcore_buf_t *b, size_t extra);
static size_t newcore_utf8_len(const unsigned char *p);


void
newcore_error_set(newcore_error_t *err, int status, const char *code,
    const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL) {
        return;
    }

    err->status = status;
    snprintf(err->code, sizeof(err->code), "%s", code);

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


/* Length of the well-formed UTF-8 sequence at p, 0 when ill-formed. */
static size_t
newcore_utf8_len(const unsigned char *p)
{
    size_t    n, i;
    uint32_t  cp;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    {
        return 0;
    }

    return n;
}


int
newcore_buf_json_str(newcore_buf_t *b, const char *s)
{
    static const char  hex[] = "0123456789abcdef";
    const unsigned char *p;
    char                 esc[6];
    size_t               n;

    newcore_buf_append(b, "\"", 1);

    for (p = (const unsigned char *) s; *p; p++) {
        switch (*p) {
        case '"':
            newcore_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            newcore_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            newcore_buf_append(b, "\\n", 2);
            break;
        case '\r':
            newcore_buf_append(b, "\\r", 2);
            break;
        case '\t':
            newcore_buf_append(b, "\\t", 2);
            break;
        default:
            if (*p >= 0x80) {
                n = newcore_utf8_len(p);
                if (n == 0) {
                    /* not UTF-8: the answer must stay valid JSON */
                    newcore_buf_append(b, "\\ufffd", 6);
                } else {
                    newcore_buf_append(b, (const char *) p, n);
                    p += n - 1;
                }
            } else if (*p < 0x20) {
                esc[0] = '\\';
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 0xf];
                newcore_buf_append(b, esc, 6);
            } else {
                newcore_buf_append(b, (const char *) p, 1);
            }
        }
    }

    return newcore_buf_append(b, "\"", 1);
}


int
newcore_buf_error(newcore_buf_t *b, const newcore_error_t *err)
{
    newcore_buf_puts(b, "{\"error\":{\"code\":");
    newcore_buf_json_str(b, err->code[0] ? err->code : "internal");
    newcore_buf_puts(b, ",\"message\":");
    newcore_buf_json_str(b, err->message);
    return newcore_buf_puts(b, "}}");
}
