/*
 * compare_diff_text: how a value is shown in a difference: compact JSON,
 * bounded in length, masked values as their HMAC.
 */

#include "compare/compare_walk.h"


static void compare_text_put(compare_text_t *t, const char *s, size_t n);
static void compare_text_str(compare_text_t *t, const char *s, size_t n);
static int compare_text_sink(void *data, const char *p, size_t n);
static void compare_text_container(compare_walk_t *w, const bson_iter_t *it,
    compare_text_t *t, int mask_inner);
static void compare_text_value(compare_walk_t *w, const bson_iter_t *it,
    compare_text_t *t, int mask_inner);


/* --- value text -------------------------------------------------------- */

static void
compare_text_put(compare_text_t *t, const char *s, size_t n)
{
    if (t->oom) {
        return;
    }
    if (t->len + n + 1 > t->cap) {
        size_t  cap = t->cap ? t->cap * 2 : 128;
        char   *nb;

        while (cap < t->len + n + 1) {
            cap *= 2;
        }
        nb = realloc(t->buf, cap);
        if (nb == NULL) {
            t->oom = 1;
            return;
        }
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}


static void
compare_text_str(compare_text_t *t, const char *s, size_t n)
{
    compare_text_put(t, "\"", 1);
    (void) cutover_json_write(s, n, CUTOVER_JSON_ESC_SHORT,
                              compare_text_sink, t);
    compare_text_put(t, "\"", 1);
}


static int
compare_text_sink(void *data, const char *p, size_t n)
{
    compare_text_put(data, p, n);
    return 0;
}


/* JSON text of an object or array, members pushed on the path so that
 * masked descendants are found. */
static void
compare_text_container(compare_walk_t *w, const bson_iter_t *it,
    compare_text_t *t, int mask_inner)
{
    bson_iter_t   c;
    uint32_t      i = 0;
    const char   *s;
    int           obj = BSON_ITER_HOLDS_DOCUMENT(it);

    compare_text_put(t, obj ? "{" : "[", 1);
    if (bson_iter_recurse(it, &c)) {
        while (bson_iter_next(&c)) {
            if (i++ > 0) {
                compare_text_put(t, ",", 1);
            }
            if (t->len > COMPARE_TEXT_MAX * 4) {
                compare_text_put(t, "\"...\"", 5);
                break;
            }
            if (obj) {
                s = bson_iter_key(&c);
                compare_text_str(t, s, bson_iter_key_len(&c));
                compare_text_put(t, ":", 1);
                compare_push(w, COMPARE_SEG_FIELD, s, bson_iter_key_len(&c),
                             NULL, 0, 0);
            } else {
                compare_push(w, COMPARE_SEG_INDEX, NULL, 0, NULL, 0, i - 1);
            }
            compare_text_value(w, &c, t, mask_inner);
            w->depth--;
        }
    }
    compare_text_put(t, obj ? "}" : "]", 1);
}


/*
 * JSON text of a value; masked descendants (when mask_inner) as hmac. Kept
 * whole: one switch over the BSON types.
 */
static void
compare_text_value(compare_walk_t *w, const bson_iter_t *it,
    compare_text_t *t, int mask_inner)
{
    char               num[64];
    uint32_t           n;
    const char        *s;
    bson_decimal128_t  dec;
    char               dbuf[BSON_DECIMAL128_STRING];
    double             d;

    if (mask_inner && compare_masked(w)) {
        compare_text_t  raw = { NULL, 0, 0, 0 };
        char            mac[COMPARE_MASK_TEXT_LEN];

        compare_text_value(w, it, &raw, 0);
        compare_mask(w->rules->mask_key, w->rules->mask_key_len,
                     raw.buf ? raw.buf : "", raw.len, mac);
        free(raw.buf);
        compare_text_str(t, mac, strlen(mac));
        return;
    }
    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &n);
        compare_text_str(t, s, n);
        break;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
        snprintf(num, sizeof(num), "%lld", (long long) bson_iter_as_int64(it));
        compare_text_put(t, num, strlen(num));
        break;
    case BSON_TYPE_DOUBLE:
        d = bson_iter_double(it);
        if (isfinite(d)) {
            snprintf(num, sizeof(num), "%.17g", d);
            compare_text_put(t, num, strlen(num));
        } else {
            compare_text_str(t, isnan(d) ? "NaN" : (d > 0 ? "Infinity"
                                                          : "-Infinity"),
                             isnan(d) ? 3 : (d > 0 ? 8 : 9));
        }
        break;
    case BSON_TYPE_DECIMAL128:
        bson_iter_decimal128(it, &dec);
        bson_decimal128_to_string(&dec, dbuf);
        compare_text_put(t, dbuf, strlen(dbuf));
        break;
    case BSON_TYPE_BOOL:
        compare_text_put(t, bson_iter_bool(it) ? "true" : "false",
                         bson_iter_bool(it) ? 4 : 5);
        break;
    case BSON_TYPE_NULL:
        compare_text_put(t, "null", 4);
        break;
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        compare_text_container(w, it, t, mask_inner);
        break;
    case BSON_TYPE_DATE_TIME:
        {
            int64_t ms = bson_iter_date_time(it);

            if (ms > INT64_MAX / 1000 || ms < INT64_MIN / 1000) {
                snprintf(num, sizeof(num), "%lld ms", (long long) ms);
            } else {
                compare_time_format(ms * 1000, num, sizeof(num));
            }
        }
        compare_text_str(t, num, strlen(num));
        break;
    case BSON_TYPE_OID:
        bson_oid_to_string(bson_iter_oid(it), num);
        compare_text_str(t, num, strlen(num));
        break;
    default:
        snprintf(num, sizeof(num), "<bson type 0x%02x>",
                 (unsigned) bson_iter_type(it));
        compare_text_str(t, num, strlen(num));
    }
}


/* Text for a diff: masked as a whole when the path is masked, and kept
 * short (a long value becomes a JSON string of its prefix). */
char *
compare_value_text(compare_walk_t *w, const bson_iter_t *it)
{
    compare_text_t  t = { NULL, 0, 0, 0 };
    compare_text_t  s = { NULL, 0, 0, 0 };

    compare_text_value(w, it, &t, 1);
    if (t.oom) {
        free(t.buf);
        return NULL;
    }
    if (t.len <= COMPARE_TEXT_MAX) {
        return t.buf;
    }
    t.len = COMPARE_TEXT_MAX;
    while (t.len > 0 && ((unsigned char) t.buf[t.len] & 0xC0) == 0x80) {
        t.len--;
    }
    compare_text_put(&t, "...", 3);
    compare_text_str(&s, t.buf, t.len);
    free(t.buf);
    return s.buf;
}


/* The value as compared under a mask: its (normalised) text. */
char *
compare_mask_text(compare_walk_t *w, const bson_iter_t *it, unsigned flags)
{
    compare_text_t  t = { NULL, 0, 0, 0 };
    size_t          n;
    uint32_t        len;
    const char     *s;

    if (flags != 0 && BSON_ITER_HOLDS_UTF8(it)) {
        s = bson_iter_utf8(it, &len);
        return compare_norm_string(s, len, flags, &n);
    }
    compare_text_value(w, it, &t, 0);
    return t.buf;
}
