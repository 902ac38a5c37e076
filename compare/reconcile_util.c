/*
 * reconcile_util: the pieces of cutover-reconcile that need no database:
 * hash arithmetic, key ranges and their splitting, width_bucket()
 * thresholds, array literals, JSON of a row, durations.
 */

#include <stdlib.h>
#include <string.h>

#include "common/cutover_duration.h"
#include "common/cutover_json.h"
#include "compare/reconcile.h"

typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} reconcile_buf_t;


static int reconcile_buf_add(reconcile_buf_t *b, const char *s, size_t n);
static int reconcile_buf_sink(void *data, const char *p, size_t n);
static int reconcile_numeric(const char *s);


const char *reconcile_side_name[2] = { "new", "legacy" };
const char *reconcile_kind_name[3] = {
    "value", "missing_new", "missing_legacy"
};


static int
reconcile_buf_add(reconcile_buf_t *b, const char *s, size_t n)
{
    char    *p;
    size_t   cap;

    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}


static int
reconcile_buf_sink(void *data, const char *p, size_t n)
{
    return reconcile_buf_add(data, p, n);
}


/*
 * The decimal text of a sum of signed 64-bit hashes (a numeric, any
 * length) into its value modulo 2^64: the sum of the hashes of a range is
 * then the wrapping sum of its parts' sums (reconcile_hash_combine()).
 */
int
reconcile_hash_parse(const char *text, uint64_t *out)
{
    int          neg;
    uint64_t     v;
    const char  *p;

    p = text;
    neg = *p == '-';
    if (neg || *p == '+') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return RECONCILE_ERROR;
    }
    for (v = 0; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t) (*p - '0');
    }
    if (*p != '\0') {
        return RECONCILE_ERROR;
    }
    *out = neg ? (uint64_t) 0 - v : v;
    return RECONCILE_OK;
}


uint64_t
reconcile_hash_combine(uint64_t a, uint64_t b)
{
    return a + b;
}


int
reconcile_ranges_push(reconcile_ranges_t *rs, const char *lo, const char *hi)
{
    size_t              cap;
    reconcile_range_t  *r;

    if (rs->n == rs->cap) {
        cap = rs->cap ? rs->cap * 2 : 16;
        r = realloc(rs->r, cap * sizeof(*r));
        if (r == NULL) {
            return RECONCILE_ERROR;
        }
        rs->r = r;
        rs->cap = cap;
    }
    r = &rs->r[rs->n];
    memset(r, 0, sizeof(*r));
    r->lo = strdup(lo);
    r->hi = hi ? strdup(hi) : NULL;
    if (r->lo == NULL || (hi != NULL && r->hi == NULL)) {
        free(r->lo);
        free(r->hi);
        return RECONCILE_ERROR;
    }
    rs->n++;
    return RECONCILE_OK;
}


void
reconcile_ranges_clear(reconcile_ranges_t *rs)
{
    size_t  i;

    for (i = 0; i < rs->n; i++) {
        free(rs->r[i].lo);
        free(rs->r[i].hi);
    }
    rs->n = 0;
}


/*
 * Splits parent at the tiles' smallest keys (mins, sorted, one per tile,
 * from the side with more rows): the first sub-range starts where the
 * parent does and the last ends where it does, so the other side's rows
 * outside the splitter's keys are still covered.  Appends to out.
 */
int
reconcile_split(const reconcile_range_t *parent, const char **mins,
    size_t ntiles, reconcile_ranges_t *out)
{
    size_t  t;

    if (ntiles == 0) {
        return reconcile_ranges_push(out, parent->lo, parent->hi);
    }
    for (t = 0; t < ntiles; t++) {
        if (reconcile_ranges_push(out, t == 0 ? parent->lo : mins[t],
                                  t + 1 < ntiles ? mins[t + 1] : parent->hi)
            != RECONCILE_OK)
        {
            return RECONCILE_ERROR;
        }
    }
    return RECONCILE_OK;
}


/*
 * width_bucket(sk, thresholds) is k when thresholds[k] <= sk <
 * thresholds[k + 1]: each range adds its lower bound, and a gap between
 * two ranges (or after the last) adds its start, mapped to no range.
 */
int
reconcile_buckets(const reconcile_range_t *r, size_t n,
    reconcile_buckets_t *b)
{
    size_t           i;
    char             num[24];
    const char     **th;
    reconcile_buf_t  w;

    memset(b, 0, sizeof(*b));
    memset(&w, 0, sizeof(w));
    th = malloc((2 * n + 1) * sizeof(*th));
    b->map = malloc((2 * n + 1) * sizeof(int));
    if (th == NULL || b->map == NULL) {
        goto failed;
    }
    for (i = 0; i < n; i++) {
        if (i > 0 && r[i - 1].hi != NULL && strcmp(r[i - 1].hi, r[i].lo) != 0)
        {
            th[b->nbuckets] = r[i - 1].hi;
            b->map[b->nbuckets++] = -1;
        }
        th[b->nbuckets] = r[i].lo;
        b->map[b->nbuckets++] = (int) i;
    }
    if (n > 0 && r[n - 1].hi != NULL) {
        th[b->nbuckets] = r[n - 1].hi;
        b->map[b->nbuckets++] = -1;
    }
    b->thresholds = reconcile_text_array(th, b->nbuckets);
    if (b->thresholds == NULL || reconcile_buf_add(&w, "{", 1) != 0) {
        goto failed;
    }
    for (i = 0; i < b->nbuckets; i++) {
        if (b->map[i] < 0) {
            continue;
        }
        snprintf(num, sizeof(num), "%s%zu", w.len > 1 ? "," : "", i + 1);
        if (reconcile_buf_add(&w, num, strlen(num)) != 0) {
            goto failed;
        }
    }
    if (reconcile_buf_add(&w, "}", 1) != 0) {
        goto failed;
    }
    b->wanted = w.p;
    free(th);
    return RECONCILE_OK;

failed:
    free(th);
    free(w.p);
    reconcile_buckets_free(b);
    return RECONCILE_ERROR;
}


void
reconcile_buckets_free(reconcile_buckets_t *b)
{
    free(b->thresholds);
    free(b->wanted);
    free(b->map);
    memset(b, 0, sizeof(*b));
}


/* A text[] literal: {"a","b"} with " and \ escaped. */
char *
reconcile_text_array(const char *const *items, size_t n)
{
    size_t           i;
    const char      *p;
    reconcile_buf_t  b;

    memset(&b, 0, sizeof(b));
    if (reconcile_buf_add(&b, "{", 1) != 0) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if ((i > 0 && reconcile_buf_add(&b, ",", 1) != 0)
            || reconcile_buf_add(&b, "\"", 1) != 0)
        {
            goto failed;
        }
        for (p = items[i]; *p; p++) {
            if ((*p == '"' || *p == '\\')
                && reconcile_buf_add(&b, "\\", 1) != 0)
            {
                goto failed;
            }
            if (reconcile_buf_add(&b, p, 1) != 0) {
                goto failed;
            }
        }
        if (reconcile_buf_add(&b, "\"", 1) != 0) {
            goto failed;
        }
    }
    if (reconcile_buf_add(&b, "}", 1) != 0) {
        goto failed;
    }
    return b.p;

failed:
    free(b.p);
    return NULL;
}


/* "S001,S002" into a text[] literal; every store a valid key. */
char *
reconcile_stores_literal(const char *list, cutover_error_t *err)
{
    char         *copy, *tok, *save, *lit;
    size_t        n;
    const char  **items;

    copy = strdup(list);
    items = calloc(strlen(list) / 2 + 2, sizeof(*items));
    if (copy == NULL || items == NULL) {
        free(copy);
        free(items);
        cutover_error_set(err, "no_memory", "out of memory");
        return NULL;
    }
    n = 0;
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save))
    {
        if (!reconcile_key_ok(tok) || *tok == '\0') {
            cutover_error_set(err, "bad_store", "bad store id \"%s\"", tok);
            free(copy);
            free(items);
            return NULL;
        }
        items[n++] = tok;
    }
    if (n == 0) {
        cutover_error_set(err, "bad_store", "--store wants S1,S2,...");
        free(copy);
        free(items);
        return NULL;
    }
    lit = reconcile_text_array(items, n);
    free(copy);
    free(items);
    if (lit == NULL) {
        cutover_error_set(err, "no_memory", "out of memory");
    }
    return lit;
}


/* Printable ASCII: a key column's text sorts the same way on both sides
 * and never holds the \x01 that joins composite keys. */
int
reconcile_key_ok(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e) {
            return 0;
        }
    }
    return 1;
}


/* -?digits(.digits)? */
static int
reconcile_numeric(const char *s)
{
    size_t  n;

    if (*s == '-') {
        s++;
    }
    n = strspn(s, "0123456789");
    if (n == 0 || (n > 1 && *s == '0')) {
        return 0;
    }
    s += n;
    if (*s == '.') {
        s++;
        n = strspn(s, "0123456789");
        if (n == 0) {
            return 0;
        }
        s += n;
    }
    return *s == '\0';
}


/*
 * A JSON object of a row's key columns (vals 0: all text) or value
 * columns (vals 1: by type; a number that is not one stays a string).
 */
char *
reconcile_row_json(const reconcile_ledger_map_t *lm, int vals,
    const char *const *cols)
{
    int              i, n, type;
    char            *const *names;
    reconcile_buf_t  b;

    memset(&b, 0, sizeof(b));
    n = vals ? lm->nvals : lm->nkeys;
    names = vals ? lm->vals : lm->keys;
    if (reconcile_buf_add(&b, "{", 1) != 0) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        type = vals ? lm->types[i] : RECONCILE_TEXT;
        if ((i > 0 && reconcile_buf_add(&b, ", ", 2) != 0)
            || reconcile_buf_add(&b, "\"", 1) != 0
            || cutover_json_write(names[i], strlen(names[i]), 0,
                                  reconcile_buf_sink, &b) != 0
            || reconcile_buf_add(&b, "\": ", 3) != 0)
        {
            goto failed;
        }
        if (cols[i] == NULL) {
            if (reconcile_buf_add(&b, "null", 4) != 0) {
                goto failed;
            }
        } else if (type != RECONCILE_TEXT && reconcile_numeric(cols[i])) {
            if (reconcile_buf_add(&b, cols[i], strlen(cols[i])) != 0) {
                goto failed;
            }
        } else if (reconcile_buf_add(&b, "\"", 1) != 0
                   || cutover_json_write(cols[i], strlen(cols[i]),
                                         CUTOVER_JSON_ESC_SHORT
                                         | CUTOVER_JSON_ESC_FFFD,
                                         reconcile_buf_sink, &b) != 0
                   || reconcile_buf_add(&b, "\"", 1) != 0)
        {
            goto failed;
        }
    }
    if (reconcile_buf_add(&b, "}", 1) != 0) {
        goto failed;
    }
    return b.p;

failed:
    free(b.p);
    return NULL;
}


/* "10s", "500ms", "2m", "0": milliseconds. */
int
reconcile_parse_duration(const char *s, uint64_t *ms)
{
    int64_t  v;

    /* a unit is required, but for "0" (no settling) */
    v = strcmp(s, "0") == 0 ? 0 : cutover_duration_ms(s, strlen(s), 0, 0);
    if (v < 0 || v > 86400000) {
        return RECONCILE_ERROR;
    }

    *ms = (uint64_t) v;
    return RECONCILE_OK;
}
