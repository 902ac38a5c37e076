/* legacy: JSON and BSON bodies in, the JSON writer out. */

#include <math.h>
#include <string.h>

#include "common/cutover_json.h"
#include "legacy_adapter/legacy_json.h"


static int legacy_json_write_iter(bson_iter_t *it, int is_array,
    legacy_buf_t *out, legacy_error_t *err);
static int legacy_json_write_string(const char *s, size_t len,
    legacy_buf_t *out);
static int legacy_json_sink(void *data, const char *p, size_t n);


/* The one strict RFC 8259 validator of the project (the admin API's), in
 * its validate-only mode. */
int
legacy_json_validate(const char *text, size_t len, legacy_error_t *err)
{
    char  msg[128];

    if (cutover_json_parse(text, len, NULL, 0, msg, sizeof(msg)) < 0) {
        return legacy_error_set(err, LEGACY_E_INVALID, "malformed JSON: %s",
                                msg);
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
    if (legacy_buf_append(out, "\"", 1) != LEGACY_OK
        || cutover_json_write(s, len, 0, legacy_json_sink, out) != 0)
    {
        return LEGACY_ERROR;
    }
    return legacy_buf_append(out, "\"", 1);
}


static int
legacy_json_sink(void *data, const char *p, size_t n)
{
    return legacy_buf_append(data, p, n) == LEGACY_OK ? 0 : -1;
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
