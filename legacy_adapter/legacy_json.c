/* legacy: the strict JSON validator, BSON checks and the JSON writer. */

#include <math.h>
#include <string.h>

#include "legacy_adapter/legacy_json.h"


typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    int                   depth;
} legacy_json_cursor_t;


static int legacy_json_value(legacy_json_cursor_t *c);
static int legacy_json_string(legacy_json_cursor_t *c);
static int legacy_json_number(legacy_json_cursor_t *c);
static int legacy_json_utf8(legacy_json_cursor_t *c);
static void legacy_json_ws(legacy_json_cursor_t *c);
static int legacy_json_write_iter(bson_iter_t *it, int is_array,
    legacy_buf_t *out, legacy_error_t *err);
static int legacy_json_write_string(const char *s, size_t len,
    legacy_buf_t *out);


static void
legacy_json_ws(legacy_json_cursor_t *c)
{
    while (c->p < c->end
           && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'
               || *c->p == '\r'))
    {
        c->p++;
    }
}


/* One multi-byte UTF-8 sequence at c->p (first byte >= 0x80). */
static int
legacy_json_utf8(legacy_json_cursor_t *c)
{
    unsigned char  b = *c->p;
    unsigned int   cp;
    int            n, i;

    if (b >= 0xc2 && b <= 0xdf) {
        n = 1;
        cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 2;
        cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 3;
        cp = b & 0x07;
    } else {
        return LEGACY_ERROR;
    }

    if (c->end - c->p <= n) {
        return LEGACY_ERROR;
    }
    for (i = 1; i <= n; i++) {
        if ((c->p[i] & 0xc0) != 0x80) {
            return LEGACY_ERROR;
        }
        cp = (cp << 6) | (c->p[i] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
    {
        return LEGACY_ERROR;
    }

    c->p += n + 1;
    return LEGACY_OK;
}


static int
legacy_json_string(legacy_json_cursor_t *c)
{
    int  i;

    c->p++;     /* the opening quote */

    while (c->p < c->end) {
        if (*c->p == '"') {
            c->p++;
            return LEGACY_OK;
        }
        if (*c->p < 0x20) {
            return LEGACY_ERROR;
        }
        if (*c->p >= 0x80) {
            if (legacy_json_utf8(c) != LEGACY_OK) {
                return LEGACY_ERROR;
            }
            continue;
        }
        if (*c->p != '\\') {
            c->p++;
            continue;
        }

        c->p++;
        if (c->p >= c->end) {
            return LEGACY_ERROR;
        }
        if (strchr("\"\\/bfnrt", *c->p) != NULL && *c->p != '\0') {
            c->p++;
            continue;
        }
        if (*c->p != 'u' || c->end - c->p < 5) {
            return LEGACY_ERROR;
        }
        for (i = 1; i <= 4; i++) {
            if (!((c->p[i] >= '0' && c->p[i] <= '9')
                  || (c->p[i] >= 'a' && c->p[i] <= 'f')
                  || (c->p[i] >= 'A' && c->p[i] <= 'F')))
            {
                return LEGACY_ERROR;
            }
        }
        c->p += 5;
    }

    return LEGACY_ERROR;
}


static int
legacy_json_number(legacy_json_cursor_t *c)
{
    const unsigned char  *start;

    if (c->p < c->end && *c->p == '-') {
        c->p++;
    }
    if (c->p >= c->end) {
        return LEGACY_ERROR;
    }
    if (*c->p == '0') {
        c->p++;
    } else if (*c->p >= '1' && *c->p <= '9') {
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
    } else {
        return LEGACY_ERROR;
    }

    if (c->p < c->end && *c->p == '.') {
        c->p++;
        start = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
        if (c->p == start) {
            return LEGACY_ERROR;
        }
    }

    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
            c->p++;
        }
        start = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
        if (c->p == start) {
            return LEGACY_ERROR;
        }
    }

    return LEGACY_OK;
}


static int
legacy_json_literal(legacy_json_cursor_t *c, const char *word)
{
    size_t  n = strlen(word);

    if ((size_t) (c->end - c->p) < n || memcmp(c->p, word, n) != 0) {
        return LEGACY_ERROR;
    }
    c->p += n;
    return LEGACY_OK;
}


static int
legacy_json_container(legacy_json_cursor_t *c, int is_object)
{
    unsigned char  close = is_object ? '}' : ']';

    if (++c->depth > LEGACY_JSON_MAX_DEPTH) {
        return LEGACY_ERROR;
    }
    c->p++;
    legacy_json_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        c->depth--;
        return LEGACY_OK;
    }

    for ( ;; ) {
        if (is_object) {
            if (c->p >= c->end || *c->p != '"'
                || legacy_json_string(c) != LEGACY_OK)
            {
                return LEGACY_ERROR;
            }
            legacy_json_ws(c);
            if (c->p >= c->end || *c->p != ':') {
                return LEGACY_ERROR;
            }
            c->p++;
        }
        if (legacy_json_value(c) != LEGACY_OK) {
            return LEGACY_ERROR;
        }
        legacy_json_ws(c);
        if (c->p >= c->end) {
            return LEGACY_ERROR;
        }
        if (*c->p == close) {
            c->p++;
            c->depth--;
            return LEGACY_OK;
        }
        if (*c->p != ',') {
            return LEGACY_ERROR;
        }
        c->p++;
        legacy_json_ws(c);
    }
}


static int
legacy_json_value(legacy_json_cursor_t *c)
{
    legacy_json_ws(c);
    if (c->p >= c->end) {
        return LEGACY_ERROR;
    }

    switch (*c->p) {
    case '{':
        return legacy_json_container(c, 1);
    case '[':
        return legacy_json_container(c, 0);
    case '"':
        return legacy_json_string(c);
    case 't':
        return legacy_json_literal(c, "true");
    case 'f':
        return legacy_json_literal(c, "false");
    case 'n':
        return legacy_json_literal(c, "null");
    default:
        return legacy_json_number(c);
    }
}


int
legacy_json_validate(const char *text, size_t len, legacy_error_t *err)
{
    legacy_json_cursor_t  c;

    c.p = (const unsigned char *) text;
    c.end = c.p + len;
    c.depth = 0;

    if (legacy_json_value(&c) != LEGACY_OK) {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "malformed JSON at byte %zu",
                                (size_t) ((const char *) c.p - text));
    }
    legacy_json_ws(&c);
    if (c.p != c.end) {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "trailing data after JSON at byte %zu",
                                (size_t) ((const char *) c.p - text));
    }
    return LEGACY_OK;
}


int
legacy_json_parse_object(const char *text, size_t len, bson_t *out,
    legacy_error_t *err)
{
    bson_error_t  berr;
    size_t        i;

    bson_init(out);

    if (legacy_json_validate(text, len, err) != LEGACY_OK) {
        return LEGACY_ERROR;
    }
    for (i = 0; i < len && strchr(" \t\r\n", text[i]) != NULL; i++) {
        /* void */
    }
    if (i == len || text[i] != '{') {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "body is not a JSON object");
    }

    bson_destroy(out);
    if (!bson_init_from_json(out, text, (ssize_t) len, &berr)) {
        bson_init(out);
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "JSON not representable: %s", berr.message);
    }
    return LEGACY_OK;
}


int
legacy_bson_parse(const uint8_t *data, size_t len, bson_t *out,
    legacy_error_t *err)
{
    bson_t  view;
    size_t  offset = 0;

    bson_init(out);

    if (data == NULL || len < 5 || !bson_init_static(&view, data, len)) {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "malformed BSON: bad length");
    }
    if (!bson_validate(&view, BSON_VALIDATE_UTF8 | BSON_VALIDATE_EMPTY_KEYS,
                       &offset))
    {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "malformed BSON at byte %zu", offset);
    }

    bson_destroy(out);
    bson_copy_to(&view, out);
    return LEGACY_OK;
}


int
legacy_body_parse(const char *content_type, const uint8_t *data, size_t len,
    bson_t *out, legacy_error_t *err)
{
    if (content_type != NULL
        && strncasecmp(content_type, "application/bson", 16) == 0)
    {
        return legacy_bson_parse(data, len, out, err);
    }
    return legacy_json_parse_object((const char *) data, len, out, err);
}


static int
legacy_json_write_string(const char *s, size_t len, legacy_buf_t *out)
{
    static const char  hex[] = "0123456789abcdef";
    size_t             i, start;
    unsigned char      ch;
    char               esc[7];

    if (legacy_buf_append(out, "\"", 1) != LEGACY_OK) {
        return LEGACY_ERROR;
    }
    for (i = 0, start = 0; i < len; i++) {
        ch = (unsigned char) s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            continue;
        }
        if (legacy_buf_append(out, s + start, i - start) != LEGACY_OK) {
            return LEGACY_ERROR;
        }
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char) ch;
            esc[2] = '\0';
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 0xf];
            esc[6] = '\0';
        }
        if (legacy_buf_append(out, esc, strlen(esc)) != LEGACY_OK) {
            return LEGACY_ERROR;
        }
        start = i + 1;
    }
    if (legacy_buf_append(out, s + start, len - start) != LEGACY_OK) {
        return LEGACY_ERROR;
    }
    return legacy_buf_append(out, "\"", 1);
}


static int
legacy_json_write_value(bson_iter_t *it, legacy_buf_t *out,
    legacy_error_t *err)
{
    bson_iter_t  child;
    const char  *s;
    uint32_t     len;
    double       d;
    int          rc;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &len);
        rc = legacy_json_write_string(s, len, out);
        break;
    case BSON_TYPE_INT32:
        rc = legacy_buf_printf(out, "%d", bson_iter_int32(it));
        break;
    case BSON_TYPE_INT64:
        rc = legacy_buf_printf(out, "%lld", (long long) bson_iter_int64(it));
        break;
    case BSON_TYPE_DOUBLE:
        d = bson_iter_double(it);
        if (!isfinite(d)) {
            return legacy_error_set(err, LEGACY_E_INVALID,
                                    "number is not finite");
        }
        rc = legacy_buf_printf(out, "%.17g", d);
        break;
    case BSON_TYPE_BOOL:
        rc = legacy_buf_printf(out, "%s",
                               bson_iter_bool(it) ? "true" : "false");
        break;
    case BSON_TYPE_NULL:
        rc = legacy_buf_append(out, "null", 4);
        break;
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        if (!bson_iter_recurse(it, &child)) {
            return legacy_error_set(err, LEGACY_E_INVALID, "bad nesting");
        }
        return legacy_json_write_iter(&child,
                                      bson_iter_type(it) == BSON_TYPE_ARRAY,
                                      out, err);
    default:
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "field \"%s\" has a type JSON lacks",
                                bson_iter_key(it));
    }

    if (rc != LEGACY_OK) {
        return legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
    }
    return LEGACY_OK;
}


static int
legacy_json_write_iter(bson_iter_t *it, int is_array, legacy_buf_t *out,
    legacy_error_t *err)
{
    int          first = 1;
    const char  *key;

    if (legacy_buf_append(out, is_array ? "[" : "{", 1) != LEGACY_OK) {
        goto nomem;
    }
    while (bson_iter_next(it)) {
        if (!first && legacy_buf_append(out, ",", 1) != LEGACY_OK) {
            goto nomem;
        }
        first = 0;
        if (!is_array) {
            key = bson_iter_key(it);
            if (legacy_json_write_string(key, bson_iter_key_len(it), out)
                    != LEGACY_OK
                || legacy_buf_append(out, ":", 1) != LEGACY_OK)
            {
                goto nomem;
            }
        }
        if (legacy_json_write_value(it, out, err) != LEGACY_OK) {
            return LEGACY_ERROR;
        }
    }
    if (legacy_buf_append(out, is_array ? "]" : "}", 1) != LEGACY_OK) {
        goto nomem;
    }
    return LEGACY_OK;

nomem:
    return legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
}


int
legacy_json_write(const bson_t *doc, legacy_buf_t *out, legacy_error_t *err)
{
    bson_iter_t  it;

    if (!bson_iter_init(&it, doc)) {
        return legacy_error_set(err, LEGACY_E_INVALID, "bad document");
    }
    return legacy_json_write_iter(&it, 0, out, err);
}
