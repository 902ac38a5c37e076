/*
 * compare_diff: walks two documents side by side, applying the route's
 * rules (ignore, mask, tolerance, sets, normalise) at every path.  The
 * result type is in compare_result.c, how a value is shown in a diff in
 * compare_diff_text.c, arrays and keyed sets in compare_diff_array.c.
 */

#include "compare/compare_walk.h"


static int compare_ignored(const compare_walk_t *w);
static const compare_tolerance_t * compare_tolerance_at(
    const compare_walk_t *w);
static const char * compare_set_at(const compare_walk_t *w);
static unsigned compare_norm_at(const compare_walk_t *w);
static compare_class_t compare_class(const bson_iter_t *it);
static int compare_as_decimal(const bson_iter_t *it, compare_decimal_t *d);
static int compare_numbers_equal(const bson_iter_t *ia, const bson_iter_t *ib);
static int compare_strings_equal(const bson_iter_t *ia, const bson_iter_t *ib,
    unsigned flags);
static void compare_masked_values(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib, unsigned flags);
static int compare_within(const compare_tolerance_t *tol,
    const bson_iter_t *ia, const bson_iter_t *ib);


int
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


void
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


void
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


void
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
