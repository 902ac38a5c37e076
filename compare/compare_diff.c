/*
 * compare_diff: walks two documents side by side, applying the route's
 * rules (ignore, mask, tolerance, sets, normalise) at every path.
 */

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_json.h"
#include "compare/compare_decimal.h"
#include "compare/compare_diff.h"
#include "compare/compare_json.h"
#include "compare/compare_norm.h"

#define COMPARE_TEXT_MAX  1024

typedef enum {
    COMPARE_CLASS_NULL = 0,
    COMPARE_CLASS_BOOL,
    COMPARE_CLASS_NUMBER,
    COMPARE_CLASS_STRING,
    COMPARE_CLASS_OBJECT,
    COMPARE_CLASS_ARRAY,
    COMPARE_CLASS_OTHER
} compare_class_t;

typedef struct {
    char    *buf;
    size_t   len;
    size_t   cap;
    int      oom;
} compare_text_t;

typedef struct {
    const compare_rules_t  *rules;
    const compare_route_t  *route;
    compare_result_t       *res;
    compare_seg_t           segs[COMPARE_MAX_DEPTH + 8];
    int                     depth;
} compare_walk_t;

typedef struct {
    const char   *key;
    uint32_t      klen;
    uint32_t      pos;
    uint32_t      occ;
    int           matched;
    int           kown;       /* key text is in kbuf (numeric set keys) */
    char          kbuf[24];
    bson_iter_t   it;
} compare_member_t;

/* An array element: bson_iter_t is a typedef aligned to 128 bytes with a
 * smaller size, so arrays of it need a wrapper to keep every one aligned */
typedef struct {
    bson_iter_t   it;
} compare_elem_t;

#define compare_mkey(m)  ((m)->kown ? (m)->kbuf : (m)->key)


static void compare_result_truncate(compare_result_t *result, size_t ndiffs,
    size_t nkept);
static void compare_text_put(compare_text_t *t, const char *s, size_t n);
static void compare_text_str(compare_text_t *t, const char *s, size_t n);
static int compare_text_sink(void *data, const char *p, size_t n);
static int compare_masked(const compare_walk_t *w);
static void compare_push(compare_walk_t *w, compare_seg_type_t type,
    const char *name, size_t len, const char *value, size_t vlen,
    uint32_t index);
static void compare_text_container(compare_walk_t *w, const bson_iter_t *it,
    compare_text_t *t, int mask_inner);
static void compare_text_value(compare_walk_t *w, const bson_iter_t *it,
    compare_text_t *t, int mask_inner);
static char *compare_value_text(compare_walk_t *w, const bson_iter_t *it);
static void compare_emit(compare_walk_t *w, compare_diff_kind_t kind,
    const bson_iter_t *ia, const bson_iter_t *ib);
static int compare_ignored(const compare_walk_t *w);
static const compare_tolerance_t *compare_tolerance_at(const compare_walk_t *w);
static const char *compare_set_at(const compare_walk_t *w);
static unsigned compare_norm_at(const compare_walk_t *w);
static compare_class_t compare_class(const bson_iter_t *it);
static int compare_as_decimal(const bson_iter_t *it, compare_decimal_t *d);
static int compare_numbers_equal(const bson_iter_t *ia, const bson_iter_t *ib);
static int compare_strings_equal(const bson_iter_t *ia, const bson_iter_t *ib,
    unsigned flags);
static char *compare_mask_text(compare_walk_t *w, const bson_iter_t *it,
    unsigned flags);
static int compare_member_by_key(const void *x, const void *y);
static uint32_t compare_children(const bson_iter_t *parent);
static void *compare_aligned_array(size_t n, size_t size);
static compare_member_t *compare_members(const bson_iter_t *parent, uint32_t *n,
    const char *setkey);
static int compare_mkey_eq(const compare_member_t *a,
    const compare_member_t *b);
static int compare_member_ptr_cmp(const void *x, const void *y);
static int compare_match(
    compare_member_t *ma, uint32_t na, compare_member_t *mb, uint32_t nb,
    int32_t *match);
static void compare_keyed_push(compare_walk_t *w, const compare_member_t *m,
    const char *setkey, size_t klen, char *vbuf, size_t size);
static void compare_number_repeats(compare_member_t *m, uint32_t n);
static void compare_keyed(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib, const char *setkey);
static int compare_raw_cmp(const void *x, const void *y);
static compare_elem_t *compare_elements(const bson_iter_t *parent, uint32_t *n);
static int compare_raw_ptr_cmp(const void *x, const void *y);
static int compare_same_elements(const compare_elem_t *ea,
    const compare_elem_t *eb, uint32_t n);
static void compare_array(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib);
static void compare_masked_values(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib, unsigned flags);
static int compare_within(const compare_tolerance_t *tol, const bson_iter_t *ia,
    const bson_iter_t *ib);
static void compare_node(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib);


/* --- results ----------------------------------------------------------- */

compare_result_t *
compare_result_new(void)
{
    return calloc(1, sizeof(compare_result_t));
}


int
compare_result_add(compare_result_t *result, const char *path,
    compare_diff_kind_t kind, const char *a, const char *b)
{
    compare_diff_t  *d;

    result->ndiffs++;
    if (result->nkept >= COMPARE_MAX_DIFFS_KEPT) {
        return 0;
    }
    if (result->nkept == result->cap) {
        size_t          cap = result->cap ? result->cap * 2 : 8;
        compare_diff_t *n = realloc(result->diffs, cap * sizeof(*n));

        if (n == NULL) {
            result->oom = 1;
            return -1;
        }
        result->diffs = n;
        result->cap = cap;
    }
    d = &result->diffs[result->nkept];
    d->kind = kind;
    d->path = strdup(path);
    d->a = a ? strdup(a) : NULL;
    d->b = b ? strdup(b) : NULL;
    if (d->path == NULL || (a && d->a == NULL) || (b && d->b == NULL)) {
        free((char *) d->path);
        free((char *) d->a);
        free((char *) d->b);
        result->oom = 1;
        return -1;
    }
    result->nkept++;
    return 0;
}


static void
compare_result_truncate(compare_result_t *result, size_t ndiffs,
    size_t nkept)
{
    while (result->nkept > nkept) {
        compare_diff_t *d = &result->diffs[--result->nkept];

        free((char *) d->path);
        free((char *) d->a);
        free((char *) d->b);
    }
    result->ndiffs = ndiffs;
}


void
compare_result_free(compare_result_t *result)
{
    if (result == NULL) {
        return;
    }
    compare_result_truncate(result, 0, 0);
    free(result->diffs);
    free(result->route);
    free(result);
}


compare_verdict_t
compare_result_verdict(const compare_result_t *result)
{
    return result->verdict;
}


size_t
compare_result_ndiffs(const compare_result_t *result)
{
    return result->ndiffs;
}


const compare_diff_t *
compare_result_diff(const compare_result_t *result, size_t i)
{
    return i < result->nkept ? &result->diffs[i] : NULL;
}


const char *
compare_result_detail(const compare_result_t *result)
{
    return result->detail;
}


const char *
compare_result_route(const compare_result_t *result)
{
    return result->route ? result->route : "";
}


const char *
compare_verdict_name(compare_verdict_t verdict)
{
    switch (verdict) {
    case COMPARE_VERDICT_EQUAL:
        return "equal";
    case COMPARE_VERDICT_DIFFERENT:
        return "different";
    case COMPARE_VERDICT_UNPARSEABLE:
        return "unparseable";
    case COMPARE_VERDICT_SHADOW_FAILED:
        return "shadow_failed";
    case COMPARE_VERDICT_PRIMARY_REFUSED:
        return "primary_refused";
    case COMPARE_VERDICT_INDETERMINATE:
        return "indeterminate";
    }
    return "unknown";
}


const char *
compare_diff_kind_name(compare_diff_kind_t kind)
{
    static const char *names[] = { "missing", "extra", "type", "value",
                                   "status", "header", "order" };

    return (unsigned) kind < 7 ? names[kind] : "unknown";
}


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


static int
compare_masked(const compare_walk_t *w)
{
    int  i;

    if (w->route == NULL) {
        return 0;
    }
    for (i = 0; i < w->route->nmask; i++) {
        if (compare_path_match(&w->route->mask[i], w->segs, w->depth)) {
            return 1;
        }
    }
    return 0;
}


static void
compare_push(compare_walk_t *w, compare_seg_type_t type, const char *name,
    size_t len, const char *value, size_t vlen, uint32_t index)
{
    compare_seg_t  *s = &w->segs[w->depth++];

    s->type = type;
    s->name = name;
    s->len = len;
    s->value = value;
    s->vlen = vlen;
    s->index = index;
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


/* JSON text of a value; masked descendants (when mask_inner) as hmac. */
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
static char *
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


static void
compare_emit(compare_walk_t *w, compare_diff_kind_t kind,
    const bson_iter_t *ia, const bson_iter_t *ib)
{
    char   pbuf[512];
    char  *a = NULL, *b = NULL;

    compare_path_format(w->segs, w->depth, pbuf, sizeof(pbuf));
    if (ia != NULL) {
        a = compare_value_text(w, ia);
    }
    if (ib != NULL) {
        b = compare_value_text(w, ib);
    }
    if ((ia && a == NULL) || (ib && b == NULL)) {
        w->res->oom = 1;
    }
    compare_result_add(w->res, pbuf, kind, a, b);
    free(a);
    free(b);
}


/* --- rules at a path --------------------------------------------------- */

static int
compare_ignored(const compare_walk_t *w)
{
    int  i;

    if (w->route == NULL) {
        return 0;
    }
    for (i = 0; i < w->route->nignore; i++) {
        if (compare_path_match(&w->route->ignore[i], w->segs, w->depth)) {
            return 1;
        }
    }
    return 0;
}


static const compare_tolerance_t *
compare_tolerance_at(const compare_walk_t *w)
{
    int  i;

    if (w->route == NULL) {
        return NULL;
    }
    for (i = 0; i < w->route->ntolerance; i++) {
        if (compare_path_match(&w->route->tolerance[i].path, w->segs,
                               w->depth))
        {
            return &w->route->tolerance[i];
        }
    }
    return NULL;
}


static const char *
compare_set_at(const compare_walk_t *w)
{
    int  i;

    if (w->route == NULL) {
        return NULL;
    }
    for (i = 0; i < w->route->nsets; i++) {
        if (compare_path_match(&w->route->sets[i].path, w->segs, w->depth)) {
            return w->route->sets[i].key;
        }
    }
    return NULL;
}


static unsigned
compare_norm_at(const compare_walk_t *w)
{
    unsigned  flags = 0;
    int       i;

    if (w->route == NULL) {
        return 0;
    }
    for (i = 0; i < w->route->nnormalize; i++) {
        if (compare_path_match(&w->route->normalize[i].path, w->segs,
                               w->depth))
        {
            flags |= w->route->normalize[i].flags;
        }
    }
    return flags;
}


/* --- scalars ----------------------------------------------------------- */

static compare_class_t
compare_class(const bson_iter_t *it)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_NULL:
        return COMPARE_CLASS_NULL;
    case BSON_TYPE_BOOL:
        return COMPARE_CLASS_BOOL;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DECIMAL128:
        return COMPARE_CLASS_NUMBER;
    case BSON_TYPE_UTF8:
        return COMPARE_CLASS_STRING;
    case BSON_TYPE_DOCUMENT:
        return COMPARE_CLASS_OBJECT;
    case BSON_TYPE_ARRAY:
        return COMPARE_CLASS_ARRAY;
    default:
        return COMPARE_CLASS_OTHER;
    }
}


/* A number, or a string holding a decimal, as a decimal; 0 or -1. */
static int
compare_as_decimal(const bson_iter_t *it, compare_decimal_t *d)
{
    char               buf[BSON_DECIMAL128_STRING + 32];
    bson_decimal128_t  dec;
    const char        *s;
    uint32_t           n;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &n);
        return compare_decimal_parse(s, n, d);
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
        snprintf(buf, sizeof(buf), "%lld", (long long) bson_iter_as_int64(it));
        break;
    case BSON_TYPE_DOUBLE:
        if (!isfinite(bson_iter_double(it))) {
            return -1;
        }
        snprintf(buf, sizeof(buf), "%.17g", bson_iter_double(it));
        break;
    case BSON_TYPE_DECIMAL128:
        bson_iter_decimal128(it, &dec);
        bson_decimal128_to_string(&dec, buf);
        break;
    default:
        return -1;
    }
    return compare_decimal_parse(buf, strlen(buf), d);
}


static int
compare_numbers_equal(const bson_iter_t *ia, const bson_iter_t *ib)
{
    compare_decimal_t  a, b;

    if ((BSON_ITER_HOLDS_INT64(ia) || BSON_ITER_HOLDS_INT32(ia))
        && (BSON_ITER_HOLDS_INT64(ib) || BSON_ITER_HOLDS_INT32(ib)))
    {
        return bson_iter_as_int64(ia) == bson_iter_as_int64(ib);
    }
    if (compare_as_decimal(ia, &a) == 0 && compare_as_decimal(ib, &b) == 0) {
        return compare_decimal_cmp(&a, &b) == 0;
    }
    return bson_iter_as_double(ia) == bson_iter_as_double(ib);
}


static int
compare_strings_equal(const bson_iter_t *ia, const bson_iter_t *ib,
    unsigned flags)
{
    uint32_t     na, nb;
    const char  *sa = bson_iter_utf8(ia, &na), *sb = bson_iter_utf8(ib, &nb);
    char        *xa, *xb;
    size_t       la, lb;
    int          eq;

    if (na == nb && memcmp(sa, sb, na) == 0) {
        return 1;
    }
    if (flags == 0) {
        return 0;
    }
    xa = compare_norm_string(sa, na, flags, &la);
    xb = compare_norm_string(sb, nb, flags, &lb);
    eq = xa && xb && la == lb && memcmp(xa, xb, la) == 0;
    free(xa);
    free(xb);
    return eq;
}


/* The value as compared under a mask: its (normalised) text. */
static char *
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


/* --- containers -------------------------------------------------------- */

static int
compare_member_by_key(const void *x, const void *y)
{
    const compare_member_t *a = x, *b = y;
    uint32_t                n = a->klen < b->klen ? a->klen : b->klen;
    int                     c = memcmp(compare_mkey(a), compare_mkey(b), n);

    if (c != 0) {
        return c;
    }
    if (a->klen != b->klen) {
        return a->klen < b->klen ? -1 : 1;
    }
    return a->occ != b->occ ? (a->occ < b->occ ? -1 : 1)
                            : (a->pos < b->pos ? -1 : (a->pos > b->pos));
}


/* How many members or elements a container holds. */
static uint32_t
compare_children(const bson_iter_t *parent)
{
    bson_iter_t  c;
    uint32_t     n = 0;

    if (bson_iter_recurse(parent, &c)) {
        while (bson_iter_next(&c)) {
            n++;
        }
    }
    return n;
}


/* bson_iter_t wants 128-byte alignment, more than malloc() gives. */
static void *
compare_aligned_array(size_t n, size_t size)
{
    size_t  bytes = n * size;

    bytes = (bytes + 127) & ~(size_t) 127;
    return aligned_alloc(128, bytes ? bytes : 128);
}


static compare_member_t *
compare_members(const bson_iter_t *parent, uint32_t *n, const char *setkey)
{
    bson_iter_t        c, k;
    compare_member_t  *m = NULL, *e;
    uint32_t           cap = 0;

    *n = 0;
    cap = compare_children(parent);
    if (cap == 0 || !bson_iter_recurse(parent, &c)) {
        return NULL;
    }
    m = compare_aligned_array(cap, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    while (*n < cap && bson_iter_next(&c)) {
        e = &m[*n];
        e->it = c;
        e->pos = *n;
        e->occ = 0;
        e->matched = 0;
        e->kown = 0;
        e->key = "";
        e->klen = 0;
        if (setkey == NULL) {
            e->key = bson_iter_key(&c);
            e->klen = bson_iter_key_len(&c);
        } else if (BSON_ITER_HOLDS_DOCUMENT(&c) && bson_iter_recurse(&c, &k)
                   && bson_iter_find(&k, setkey))
        {
            if (BSON_ITER_HOLDS_UTF8(&k)) {
                e->key = bson_iter_utf8(&k, &e->klen);
            } else if (BSON_ITER_HOLDS_INT64(&k) || BSON_ITER_HOLDS_INT32(&k)) {
                e->kown = 1;
                e->klen = (uint32_t) snprintf(e->kbuf, sizeof(e->kbuf),
                    "%lld", (long long) bson_iter_as_int64(&k));
            }
        }
        (*n)++;
    }
    return m;
}


static int
compare_mkey_eq(const compare_member_t *a, const compare_member_t *b)
{
    return a->klen == b->klen
           && memcmp(compare_mkey(a), compare_mkey(b), a->klen) == 0;
}


static int
compare_member_ptr_cmp(const void *x, const void *y)
{
    return compare_member_by_key(*(compare_member_t *const *) x,
                                 *(compare_member_t *const *) y);
}


/* match[i]: the member of b paired with member i of a (-1: none).  The
 * k-th occurrence of a key in a pairs with the k-th in b. */
static int
compare_match(compare_member_t *ma, uint32_t na, compare_member_t *mb,
    uint32_t nb, int32_t *match)
{
    compare_member_t  **pa, **pb;
    uint32_t            i, j, k;

    if ((uint64_t) na * nb <= 256) {
        for (i = 0; i < na; i++) {
            for (k = 0, j = 0; j < i; j++) {
                k += compare_mkey_eq(&ma[j], &ma[i]);
            }
            match[i] = -1;
            for (j = 0; j < nb; j++) {
                if (compare_mkey_eq(&mb[j], &ma[i]) && k-- == 0) {
                    match[i] = (int32_t) j;
                    mb[j].matched = 1;
                    break;
                }
            }
        }
        return 0;
    }
    pa = malloc(((size_t) na + nb + 1) * sizeof(*pa));
    if (pa == NULL) {
        return -1;
    }
    pb = pa + na;
    for (i = 0; i < na; i++) {
        pa[i] = &ma[i];
    }
    for (j = 0; j < nb; j++) {
        pb[j] = &mb[j];
    }
    /* by key then position: occurrences come out numbered in order */
    qsort(pa, na, sizeof(*pa), compare_member_ptr_cmp);
    qsort(pb, nb, sizeof(*pb), compare_member_ptr_cmp);
    for (i = 0; i < na; i++) {
        match[pa[i]->pos] = -1;
    }
    for (i = 0, j = 0; i < na && j < nb; ) {
        uint32_t  ea = i, eb = j;
        int       c;

        c = memcmp(compare_mkey(pa[i]), compare_mkey(pb[j]),
                   pa[i]->klen < pb[j]->klen ? pa[i]->klen : pb[j]->klen);
        if (c == 0 && pa[i]->klen != pb[j]->klen) {
            c = pa[i]->klen < pb[j]->klen ? -1 : 1;
        }
        if (c < 0) {
            i++;
            continue;
        }
        if (c > 0) {
            j++;
            continue;
        }
        while (ea < na && compare_mkey_eq(pa[ea], pa[i])) {
            ea++;
        }
        while (eb < nb && compare_mkey_eq(pb[eb], pb[j])) {
            eb++;
        }
        for (k = 0; i + k < ea && j + k < eb; k++) {
            match[pa[i + k]->pos] = (int32_t) pb[j + k]->pos;
            pb[j + k]->matched = 1;
        }
        i = ea;
        j = eb;
    }
    free(pa);
    return 0;
}


static void
compare_keyed_push(compare_walk_t *w, const compare_member_t *m,
    const char *setkey, size_t klen, char *vbuf, size_t size)
{
    int  vl;

    if (setkey == NULL) {
        compare_push(w, COMPARE_SEG_FIELD, m->key, m->klen, NULL, 0, 0);
        return;
    }
    vl = snprintf(vbuf, size, "%.*s", (int) m->klen, compare_mkey(m));
    if (m->occ > 0 && vl >= 0 && (size_t) vl < size) {
        vl += snprintf(vbuf + vl, size - (size_t) vl, "#%u", m->occ + 1);
    }
    compare_push(w, COMPARE_SEG_KEY, setkey, klen, vbuf,
                 (size_t) vl < size ? (size_t) vl : size - 1, 0);
}


/* Number repeated keys 0, 1, 2... in document order (for their names). */
static void
compare_number_repeats(compare_member_t *m, uint32_t n)
{
    compare_member_t  **p;
    uint32_t            i, j;

    if (n <= 32) {
        for (i = 0; i < n; i++) {
            m[i].occ = 0;
            for (j = 0; j < i; j++) {
                m[i].occ += compare_mkey_eq(&m[j], &m[i]);
            }
        }
        return;
    }
    p = malloc(n * sizeof(*p));
    if (p == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        p[i] = &m[i];
        m[i].occ = 0;
    }
    qsort(p, n, sizeof(*p), compare_member_ptr_cmp);
    for (i = 1; i < n; i++) {
        if (compare_mkey_eq(p[i - 1], p[i])) {
            p[i]->occ = p[i - 1]->occ + 1;
        }
    }
    free(p);
}


static void
compare_keyed(compare_walk_t *w, const bson_iter_t *ia, const bson_iter_t *ib,
    const char *setkey)
{
    compare_member_t  *ma, *mb;
    uint32_t           na, nb, i;
    int32_t           *match = NULL;
    char               vbuf[256];
    size_t             klen = setkey ? strlen(setkey) : 0;

    ma = compare_members(ia, &na, setkey);
    mb = compare_members(ib, &nb, setkey);
    if ((na && ma == NULL) || (nb && mb == NULL)
        || (match = malloc(((size_t) na + 1) * sizeof(int32_t))) == NULL
        || compare_match(ma, na, mb, nb, match) != 0)
    {
        w->res->oom = 1;
        goto done;
    }
    if (setkey != NULL) {
        compare_number_repeats(ma, na);
        compare_number_repeats(mb, nb);
    }
    /* report in the primary's order, then the shadow's extras */
    for (i = 0; i < na; i++) {
        compare_keyed_push(w, &ma[i], setkey, klen, vbuf, sizeof(vbuf));
        compare_node(w, &ma[i].it, match[i] >= 0 ? &mb[match[i]].it : NULL);
        w->depth--;
    }
    for (i = 0; i < nb; i++) {
        if (mb[i].matched) {
            continue;
        }
        compare_keyed_push(w, &mb[i], setkey, klen, vbuf, sizeof(vbuf));
        compare_node(w, NULL, &mb[i].it);
        w->depth--;
    }
done:
    free(match);
    free(ma);
    free(mb);
}


/* Raw bytes of a value (type first) for order-insensitive equality. */
static int
compare_raw_cmp(const void *x, const void *y)
{
    const bson_iter_t  *a = x, *b = y;
    uint32_t            la = a->next_off - a->d1, lb = b->next_off - b->d1;

    if (bson_iter_type(a) != bson_iter_type(b)) {
        return bson_iter_type(a) < bson_iter_type(b) ? -1 : 1;
    }
    if (la != lb) {
        return la < lb ? -1 : 1;
    }
    return memcmp(a->raw + a->d1, b->raw + b->d1, la);
}


static compare_elem_t *
compare_elements(const bson_iter_t *parent, uint32_t *n)
{
    bson_iter_t      c;
    compare_elem_t  *e;
    uint32_t         cap;

    *n = 0;
    cap = compare_children(parent);
    if (cap == 0 || !bson_iter_recurse(parent, &c)) {
        return NULL;
    }
    e = compare_aligned_array(cap, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    while (*n < cap && bson_iter_next(&c)) {
        e[(*n)++].it = c;
    }
    return e;
}


static int
compare_raw_ptr_cmp(const void *x, const void *y)
{
    return compare_raw_cmp(*(const bson_iter_t *const *) x,
                           *(const bson_iter_t *const *) y);
}


/* The same elements, in any order (sorted pointers: qsort's scratch copies
 * would not keep bson_iter_t's alignment). */
static int
compare_same_elements(const compare_elem_t *ea, const compare_elem_t *eb,
    uint32_t n)
{
    const bson_iter_t  **pa;
    uint32_t             i;
    int                  same;

    pa = malloc(2 * (size_t) n * sizeof(*pa));
    if (pa == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        pa[i] = &ea[i].it;
        pa[n + i] = &eb[i].it;
    }
    qsort(pa, n, sizeof(*pa), compare_raw_ptr_cmp);
    qsort(pa + n, n, sizeof(*pa), compare_raw_ptr_cmp);
    for (i = 0; i < n && compare_raw_cmp(pa[i], pa[n + i]) == 0; i++) {
        /* nothing */
    }
    same = (i == n);
    free(pa);
    return same;
}


static void
compare_array(compare_walk_t *w, const bson_iter_t *ia, const bson_iter_t *ib)
{
    compare_elem_t  *ea, *eb;
    uint32_t         na, nb, i, min;
    size_t           nd = w->res->ndiffs, nk = w->res->nkept;
    int              same = 0;

    ea = compare_elements(ia, &na);
    eb = compare_elements(ib, &nb);
    if ((na && ea == NULL) || (nb && eb == NULL)) {
        w->res->oom = 1;
        goto done;
    }
    min = na < nb ? na : nb;
    for (i = 0; i < min; i++) {
        compare_push(w, COMPARE_SEG_INDEX, NULL, 0, NULL, 0, i);
        compare_node(w, &ea[i].it, &eb[i].it);
        w->depth--;
    }
    for (i = min; i < na || i < nb; i++) {
        compare_push(w, COMPARE_SEG_INDEX, NULL, 0, NULL, 0, i);
        compare_node(w, i < na ? &ea[i].it : NULL,
                     i < nb ? &eb[i].it : NULL);
        w->depth--;
    }
    if (w->res->ndiffs > nd && na == nb && na > 1) {
        /* the same elements in another order: one "order" difference */
        same = compare_same_elements(ea, eb, na);
    }
    if (same) {
        compare_result_truncate(w->res, nd, nk);
        compare_emit(w, COMPARE_DIFF_ORDER, ia, ib);
    }
done:
    free(ea);
    free(eb);
}


/* Masked values compare by their (normalised) text; only HMACs show. */
static void
compare_masked_values(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib, unsigned flags)
{
    char  *ta = compare_mask_text(w, ia, flags);
    char  *tb = compare_mask_text(w, ib, flags);

    if (ta == NULL || tb == NULL) {
        w->res->oom = 1;
    } else if (strcmp(ta, tb) != 0) {
        compare_emit(w, COMPARE_DIFF_VALUE, ia, ib);
    }
    free(ta);
    free(tb);
}


/* 1 within the tolerance, 0 not, -1 when a value is not a number or a
 * decimal string (then the ordinary comparison applies). */
static int
compare_within(const compare_tolerance_t *tol, const bson_iter_t *ia,
    const bson_iter_t *ib)
{
    compare_decimal_t  da, db;
    int                r;

    if (compare_as_decimal(ia, &da) != 0 || compare_as_decimal(ib, &db) != 0)
    {
        return -1;
    }
    r = compare_decimal_within(&da, &db, tol->has_abs ? &tol->abs : NULL,
                               tol->has_rel ? &tol->rel : NULL);
    if (r < 0) {
        /* scales too far apart to subtract exactly: equal or not */
        r = compare_numbers_equal(ia, ib)
            || bson_iter_as_double(ia) == bson_iter_as_double(ib);
    }
    return r;
}


static void
compare_node(compare_walk_t *w, const bson_iter_t *ia, const bson_iter_t *ib)
{
    const compare_tolerance_t  *tol;
    compare_class_t             ca, cb;
    const char                 *setkey;
    unsigned                    flags;
    int                         r;

    if (w->res->oom || compare_ignored(w)) {
        return;
    }
    if (ia == NULL || ib == NULL) {
        compare_emit(w, ia ? COMPARE_DIFF_MISSING : COMPARE_DIFF_EXTRA, ia, ib);
        return;
    }
    if (w->depth >= COMPARE_MAX_DEPTH + 4) {
        return;
    }
    flags = compare_norm_at(w);
    if (compare_masked(w)) {
        compare_masked_values(w, ia, ib, flags);
        return;
    }
    tol = compare_tolerance_at(w);
    if (tol != NULL && (r = compare_within(tol, ia, ib)) >= 0) {
        if (!r) {
            compare_emit(w, COMPARE_DIFF_VALUE, ia, ib);
        }
        return;
    }
    ca = compare_class(ia);
    cb = compare_class(ib);
    if (ca != cb) {
        compare_emit(w, COMPARE_DIFF_TYPE, ia, ib);
        return;
    }
    switch (ca) {
    case COMPARE_CLASS_OBJECT:
        compare_keyed(w, ia, ib, NULL);
        return;
    case COMPARE_CLASS_ARRAY:
        setkey = compare_set_at(w);
        if (setkey != NULL) {
            compare_keyed(w, ia, ib, setkey);
        } else {
            compare_array(w, ia, ib);
        }
        return;
    case COMPARE_CLASS_STRING:
        r = compare_strings_equal(ia, ib, flags);
        break;
    case COMPARE_CLASS_NUMBER:
        r = compare_numbers_equal(ia, ib);
        break;
    case COMPARE_CLASS_BOOL:
        r = bson_iter_bool(ia) == bson_iter_bool(ib);
        break;
    case COMPARE_CLASS_NULL:
        r = 1;
        break;
    default:
        r = bson_iter_type(ia) == bson_iter_type(ib)
            && compare_raw_cmp(ia, ib) == 0;
    }
    if (!r) {
        compare_emit(w, COMPARE_DIFF_VALUE, ia, ib);
    }
}


void
compare_docs(const compare_rules_t *rules, const compare_route_t *route,
    const bson_t *a, const bson_t *b, compare_result_t *result)
{
    compare_walk_t  *w;
    bson_iter_t      ia, ib;
    int              ha, hb;

    w = malloc(sizeof(*w));
    if (w == NULL) {
        result->oom = 1;
        return;
    }
    w->rules = rules;
    w->route = route;
    w->res = result;
    w->depth = 0;
    ha = bson_iter_init_find(&ia, a, "$");
    hb = bson_iter_init_find(&ib, b, "$");
    if (ha || hb) {
        compare_node(w, ha ? &ia : NULL, hb ? &ib : NULL);
    }
    free(w);
}
