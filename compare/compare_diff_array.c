/*
 * compare_diff_array: arrays compared by position, as keyed sets (the
 * route's "sets"), or as multisets when only the order differs.
 */

#include "compare/compare_walk.h"


static int compare_member_by_key(const void *x, const void *y);
static uint32_t compare_children(const bson_iter_t *parent);
static void *compare_aligned_array(size_t n, size_t size);
static compare_member_t *compare_members(const bson_iter_t *parent,
    uint32_t *n, const char *setkey);
static int compare_mkey_eq(const compare_member_t *a,
    const compare_member_t *b);
static int compare_member_ptr_cmp(const void *x, const void *y);
static int compare_match(compare_member_t *ma, uint32_t na,
    compare_member_t *mb, uint32_t nb, int32_t *match);
static void compare_keyed_push(compare_walk_t *w, const compare_member_t *m,
    const char *setkey, size_t klen, char *vbuf, size_t size);
static void compare_number_repeats(compare_member_t *m, uint32_t n);
static compare_elem_t *compare_elements(const bson_iter_t *parent,
    uint32_t *n);
static int compare_raw_ptr_cmp(const void *x, const void *y);
static int compare_same_elements(const compare_elem_t *ea,
    const compare_elem_t *eb, uint32_t n);


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


void
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
int
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


void
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
