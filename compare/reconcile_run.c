/*
 * reconcile_run: the bisection.  Per ledger, in one REPEATABLE READ
 * snapshot on each side: the whole range's count and hash from both sides
 * at once; then level by level, the differing ranges are split at key
 * quantiles of the side with more rows (one query per side gives the
 * tiles' smallest keys, counts and hashes), the other side hashes the same
 * sub-ranges, and sub-ranges that still differ are followed at once
 * (depth first).  A differing range of at most fetch_rows rows per side is
 * fetched from both sides in key order (streamed, one row at a time) and
 * merged.  Every query goes to both databases at once (PQsendQueryParams,
 * then poll() on both sockets).  Memory holds at most a chunk's differing
 * sub-ranges per depth and the listed differences, never a ledger.
 */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "compare/reconcile.h"

#define RECONCILE_CHUNK      2048     /* ranges per query */
#define RECONCILE_SUBS       65536    /* sub-ranges per split query */
#define RECONCILE_MAX_LEVEL  64
#define RECONCILE_KEYS_CHUNK 1000
#define RECONCILE_FEW        64       /* buckets for width_bucket() */

typedef struct {
    reconcile_run_t            *run;
    int                         li;
    const reconcile_ledger_map_t  *lm;
    reconcile_ledger_result_t  *res;
    PGconn                     *c[2];
    char                       *q[7][2];     /* per query kind and side */
    cutover_error_t            *err;
} reconcile_ledger_t;

enum { Q_TOP = 0, Q_SPLIT, Q_HASH, Q_HASHM, Q_FETCH, Q_FETCHM, Q_KEYS };
static const char *reconcile_q_names[7] = {
    "top", "split", "hash", "hashm", "fetch", "fetchm", "keys"
};


static double reconcile_now(void);
static int reconcile_fail(reconcile_ledger_t *L, int side, int q,
    PGresult *res);
static int reconcile_send(reconcile_ledger_t *L, int side, int q,
    const char *const *params, int n);
static int reconcile_exec2(reconcile_ledger_t *L, int q,
    const char *const *params[2], const int n[2], PGresult *res[2]);
static int reconcile_simple(reconcile_ledger_t *L, const char *sql);
static void reconcile_count_bytes(reconcile_ledger_t *L, PGresult *res);
static int reconcile_add_diff(reconcile_ledger_t *L, int kind,
    PGresult *a, PGresult *b);
static int reconcile_merge(reconcile_ledger_t *L, int q,
    const char *const *params[2], const int n[2]);
static int reconcile_fetch(reconcile_ledger_t *L, reconcile_range_t *r,
    size_t n);
static int reconcile_split_chunk(reconcile_ledger_t *L, reconcile_range_t *r,
    size_t n, reconcile_ranges_t *next, size_t *nsubs);
static int reconcile_tiles(const reconcile_ranges_t *grp,
    const reconcile_buckets_t *b, int s, int64_t per, int64_t maxt,
    char **off, char **size);
static int reconcile_descend(reconcile_ledger_t *L,
    const reconcile_range_t *r, size_t n, int depth);
static int reconcile_ledger(reconcile_ledger_t *L);
static int reconcile_settle(reconcile_ledger_t *L);
static void reconcile_progress(reconcile_ledger_t *L, int depth,
    size_t ranges, int end);
static int reconcile_diff_cmp(const void *a, const void *b);


/* Listed by ledger (in the order compared), then key. */
static int
reconcile_diff_cmp(const void *a, const void *b)
{
    const reconcile_diff_t  *x = a, *y = b;

    if (x->ledger != y->ledger) {
        return x->ledger < y->ledger ? -1 : 1;
    }
    return strcmp(x->sk, y->sk);
}


static double
reconcile_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/* An SQL error (with the map's query) or a lost connection. */
static int
reconcile_fail(reconcile_ledger_t *L, int side, int q, PGresult *res)
{
    const char  *msg;
    size_t       n;

    msg = res ? PQresultErrorMessage(res) : "";
    if (*msg == '\0') {
        msg = PQerrorMessage(L->c[side]);
    }
    n = strcspn(msg, "\n");
    if (PQstatus(L->c[side]) == CONNECTION_BAD) {
        cutover_error_set(L->err, "connection_lost", "connection to the %s"
                          " database lost (ledger %s): %.*s",
                          reconcile_side_name[side], L->lm->name, (int) n,
                          msg);
        return RECONCILE_ERROR;
    }
    cutover_error_set(L->err, "sql_error", "%s database, ledger %s: %.*s",
                      reconcile_side_name[side], L->lm->name, (int) n, msg);
    snprintf(L->run->detail, sizeof(L->run->detail),
             "the %s query of map %s line %d (in the %s step):\n%s",
             reconcile_side_name[side], L->run->map->path,
             L->lm->line[side], reconcile_q_names[q], L->lm->sql[side]);
    return RECONCILE_ERROR;
}


static int
reconcile_send(reconcile_ledger_t *L, int side, int q,
    const char *const *params, int n)
{
    int  i;

    L->res->queries++;
    L->res->bytes += (int64_t) strlen(L->q[q][side]);
    for (i = 0; i < n; i++) {
        L->res->bytes += params[i] ? (int64_t) strlen(params[i]) : 0;
    }
    if (!PQsendQueryParams(L->c[side], L->q[q][side], n, NULL, params, NULL,
                           NULL, 0))
    {
        return reconcile_fail(L, side, q, NULL);
    }
    return RECONCILE_OK;
}


static void
reconcile_count_bytes(reconcile_ledger_t *L, PGresult *res)
{
    int  r, c, nr, nc;

    nr = PQntuples(res);
    nc = PQnfields(res);
    for (r = 0; r < nr; r++) {
        for (c = 0; c < nc; c++) {
            L->res->bytes += PQgetlength(res, r, c);
        }
    }
}


/*
 * Query q on each side whose params[side] is not NULL, both at once;
 * waits on both sockets and gives each side's result (PGRES_TUPLES_OK).
 */
static int
reconcile_exec2(reconcile_ledger_t *L, int q, const char *const *params[2],
    const int n[2], PGresult *res[2])
{
    int             s, busy[2], np, rc, failed;
    double          t0;
    PGresult       *r;
    struct pollfd   pfd[2];

    rc = RECONCILE_OK;
    failed = -1;
    t0 = reconcile_now();
    for (s = 0; s < 2; s++) {
        res[s] = NULL;
        busy[s] = 0;
        if (params[s] == NULL) {
            continue;
        }
        if (reconcile_send(L, s, q, params[s], n[s]) != RECONCILE_OK) {
            rc = RECONCILE_ERROR;
            failed = s;
            break;
        }
        busy[s] = 1;
    }

    while (busy[0] || busy[1]) {
        for (s = 0; s < 2; s++) {
            if (!busy[s]) {
                continue;
            }
            if (!PQconsumeInput(L->c[s])) {
                if (rc == RECONCILE_OK) {
                    rc = reconcile_fail(L, s, q, NULL);
                }
                busy[s] = 0;
                continue;
            }
            while (busy[s] && !PQisBusy(L->c[s])) {
                r = PQgetResult(L->c[s]);
                if (r == NULL) {
                    busy[s] = 0;
                } else if (res[s] == NULL) {
                    res[s] = r;
                } else {
                    PQclear(r);
                }
            }
        }
        np = 0;
        for (s = 0; s < 2; s++) {
            if (busy[s]) {
                pfd[np].fd = PQsocket(L->c[s]);
                pfd[np].events = POLLIN;
                pfd[np].revents = 0;
                np++;
            }
        }
        if (np > 0 && poll(pfd, np, 1000) < 0 && errno != EINTR) {
            cutover_error_set(L->err, "poll", "poll: %s", strerror(errno));
            rc = RECONCILE_ERROR;
            break;
        }
    }

    for (s = 0; s < 2; s++) {
        if (params[s] == NULL || s == failed) {
            continue;
        }
        if (res[s] == NULL || PQresultStatus(res[s]) != PGRES_TUPLES_OK) {
            if (rc == RECONCILE_OK) {
                rc = reconcile_fail(L, s, q, res[s]);
            }
        } else {
            reconcile_count_bytes(L, res[s]);
        }
    }
    if (rc != RECONCILE_OK) {
        PQclear(res[0]);
        PQclear(res[1]);
        res[0] = res[1] = NULL;
    }
    if (getenv("CUTOVER_RECONCILE_TRACE") != NULL) {
        fprintf(stderr, "trace: %s %s%s %.3f s\n", L->lm->name,
                reconcile_q_names[q], params[0] == NULL ? " legacy"
                : params[1] == NULL ? " new" : "", reconcile_now() - t0);
    }
    return rc;
}


/* A command without parameters on both sides (BEGIN, COMMIT). */
static int
reconcile_simple(reconcile_ledger_t *L, const char *sql)
{
    int        s, ok;
    PGresult  *r;

    for (s = 0; s < 2; s++) {
        r = PQexec(L->c[s], sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            reconcile_fail(L, s, Q_TOP, r);
            PQclear(r);
            return RECONCILE_ERROR;
        }
        PQclear(r);
    }
    return RECONCILE_OK;
}


/* Records a difference: a and b are single-row results (or NULL) of
 * columns sk, k0.., v0..; listed while under the cap, always counted. */
static int
reconcile_add_diff(reconcile_ledger_t *L, int kind, PGresult *a, PGresult *b)
{
    int                  i, s;
    size_t               cap;
    PGresult            *side[2], *any;
    reconcile_run_t     *run;
    reconcile_diff_t    *d;
    const char          *cols[RECONCILE_MAX_COLS];

    run = L->run;
    L->res->differences++;
    if (L->res->listed >= run->cfg.list_cap) {
        return RECONCILE_OK;
    }
    if (run->ndiffs == run->diffs_cap) {
        cap = run->diffs_cap ? run->diffs_cap * 2 : 64;
        d = realloc(run->diffs, cap * sizeof(*d));
        if (d == NULL) {
            cutover_error_set(L->err, "no_memory", "out of memory");
            return RECONCILE_ERROR;
        }
        run->diffs = d;
        run->diffs_cap = cap;
    }
    side[0] = a;
    side[1] = b;
    any = a ? a : b;
    d = &run->diffs[run->ndiffs];
    memset(d, 0, sizeof(*d));
    d->ledger = L->li;
    d->kind = kind;
    d->sk = strdup(PQgetvalue(any, 0, 0));
    for (i = 0; i < L->lm->nkeys; i++) {
        cols[i] = PQgetvalue(any, 0, 1 + i);
    }
    d->key = reconcile_row_json(L->lm, 0, cols);
    for (s = 0; s < 2; s++) {
        if (side[s] == NULL) {
            continue;
        }
        for (i = 0; i < L->lm->nvals; i++) {
            cols[i] = PQgetisnull(side[s], 0, 1 + L->lm->nkeys + i) ? NULL
                      : PQgetvalue(side[s], 0, 1 + L->lm->nkeys + i);
        }
        d->val[s] = reconcile_row_json(L->lm, 1, cols);
        if (d->val[s] == NULL) {
            break;
        }
    }
    if (d->sk == NULL || d->key == NULL || (a && d->val[0] == NULL)
        || (b && d->val[1] == NULL))
    {
        free(d->sk);
        free(d->key);
        free(d->val[0]);
        free(d->val[1]);
        cutover_error_set(L->err, "no_memory", "out of memory");
        return RECONCILE_ERROR;
    }
    run->ndiffs++;
    L->res->listed++;
    return RECONCILE_OK;
}


/*
 * Sends query q to both sides and merges the two row streams (single-row
 * mode, sorted by sk) into differences.
 */
static int
reconcile_merge(reconcile_ledger_t *L, int q, const char *const *params[2],
    const int n[2])
{
    int        s, c, cmp, same, nc, rc, done[2];
    PGresult  *row[2], *r;

    rc = RECONCILE_OK;
    for (s = 0; s < 2; s++) {
        row[s] = NULL;
        done[s] = 1;
        if (reconcile_send(L, s, q, params[s], n[s]) != RECONCILE_OK) {
            rc = RECONCILE_ERROR;
            break;
        }
        done[s] = 0;
        PQsetSingleRowMode(L->c[s]);
    }

    for ( ;; ) {
        /* the next row of each side that has none in hand */
        for (s = 0; s < 2; s++) {
            while (!done[s] && row[s] == NULL) {
                r = PQgetResult(L->c[s]);
                if (r == NULL) {
                    done[s] = 1;
                } else if (PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
                    reconcile_count_bytes(L, r);
                    L->res->rows_fetched++;
                    row[s] = r;
                } else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
                    PQclear(r);
                } else {
                    if (rc == RECONCILE_OK) {
                        rc = reconcile_fail(L, s, q, r);
                    }
                    PQclear(r);
                }
            }
        }
        if (row[0] == NULL && row[1] == NULL) {
            break;
        }
        if (rc != RECONCILE_OK) {
            /* drain */
            for (s = 0; s < 2; s++) {
                PQclear(row[s]);
                row[s] = NULL;
            }
            continue;
        }

        if (row[0] == NULL) {
            cmp = 1;
        } else if (row[1] == NULL) {
            cmp = -1;
        } else {
            cmp = strcmp(PQgetvalue(row[0], 0, 0), PQgetvalue(row[1], 0, 0));
        }

        if (cmp == 0) {
            nc = PQnfields(row[0]);
            same = 1;
            for (c = 1 + L->lm->nkeys; c < nc; c++) {
                if (PQgetisnull(row[0], 0, c) != PQgetisnull(row[1], 0, c)
                    || strcmp(PQgetvalue(row[0], 0, c),
                              PQgetvalue(row[1], 0, c)) != 0)
                {
                    same = 0;
                    break;
                }
            }
            if (!same) {
                rc = reconcile_add_diff(L, RECONCILE_VALUE, row[0], row[1]);
            }
            PQclear(row[0]);
            PQclear(row[1]);
            row[0] = row[1] = NULL;
        } else if (cmp < 0) {
            rc = reconcile_add_diff(L, RECONCILE_MISSING_LEGACY, row[0],
                                    NULL);
            PQclear(row[0]);
            row[0] = NULL;
        } else {
            rc = reconcile_add_diff(L, RECONCILE_MISSING_NEW, NULL, row[1]);
            PQclear(row[1]);
            row[1] = NULL;
        }
    }
    return rc;
}


/* Rows of the ranges r[0..n) from both sides, merged. */
static int
reconcile_fetch(reconcile_ledger_t *L, reconcile_range_t *r, size_t n)
{
    int                  rc, np[2];
    const char          *p[5];
    const char *const   *params[2];
    reconcile_buckets_t  b;

    if (reconcile_buckets(r, n, &b) != RECONCILE_OK) {
        cutover_error_set(L->err, "no_memory", "out of memory");
        return RECONCILE_ERROR;
    }
    p[0] = L->run->stores_lit;
    p[1] = b.thresholds;
    p[2] = b.wanted;
    p[3] = r[0].lo;
    p[4] = r[n - 1].hi;
    params[0] = params[1] = p;
    np[0] = np[1] = 5;
    rc = reconcile_merge(L, b.nbuckets <= RECONCILE_FEW ? Q_FETCH : Q_FETCHM,
                         params, np);
    reconcile_buckets_free(&b);
    return rc;
}


/*
 * Per bucket (int8[] literals, 1-based as the buckets): the splitter's
 * rows in the wanted buckets before it, and its tile size (ceil(rows /
 * tiles), tiles of about per rows, at most maxt).
 */
static int
reconcile_tiles(const reconcile_ranges_t *grp, const reconcile_buckets_t *b,
    int s, int64_t per, int64_t maxt, char **off, char **size)
{
    size_t    k, len, zlen;
    int64_t   before, rows, tiles, ts;
    char     *o, *z;

    o = malloc(b->nbuckets * 22 + 3);
    z = malloc(b->nbuckets * 22 + 3);
    if (o == NULL || z == NULL) {
        free(o);
        free(z);
        return RECONCILE_ERROR;
    }
    before = 0;
    o[0] = z[0] = '{';
    len = zlen = 1;
    for (k = 0; k < b->nbuckets; k++) {
        rows = b->map[k] >= 0 ? grp->r[b->map[k]].n[s] : 0;
        tiles = (rows + per - 1) / per;
        tiles = tiles > maxt ? maxt : tiles < 1 ? 1 : tiles;
        ts = (rows + tiles - 1) / tiles;
        ts = ts < 1 ? 1 : ts;
        len += (size_t) sprintf(o + len, "%s%lld", k ? "," : "",
                                (long long) before);
        zlen += (size_t) sprintf(z + zlen, "%s%lld", k ? "," : "",
                                 (long long) ts);
        before += rows;
    }
    strcpy(o + len, "}");
    strcpy(z + zlen, "}");
    *off = o;
    *size = z;
    return RECONCILE_OK;
}


/*
 * Splits the ranges r[0..n) (each larger than fetch_rows on some side):
 * the side with more rows gives each range's tiles (their first keys),
 * then both sides hash all the sub-ranges at once; those that differ are
 * appended to next, in key order.
 */
static int
reconcile_split_chunk(reconcile_ledger_t *L, reconcile_range_t *r, size_t n,
    reconcile_ranges_t *next, size_t *nsubs)
{
    int                  s, rc, np[2], row, nrows, b, ri;
    char                *off[2], *size[2];
    int64_t              maxt, per;
    size_t               i, cnt;
    uint64_t             h;
    const char          *p[2][7], **mins;
    const char *const   *params[2];
    PGresult            *res[2], *hres[2];
    reconcile_range_t   *sr;
    reconcile_ranges_t   subs, grp[2];
    reconcile_buckets_t  bk[2], sb;

    memset(&subs, 0, sizeof(subs));
    memset(grp, 0, sizeof(grp));
    off[0] = off[1] = size[0] = size[1] = NULL;
    memset(bk, 0, sizeof(bk));
    memset(&sb, 0, sizeof(sb));
    res[0] = res[1] = hres[0] = hres[1] = NULL;
    mins = NULL;
    rc = RECONCILE_ERROR;
    /*
     * Tiles of 3/4 fetch_rows rows, so that one split usually leaves
     * ranges small enough to fetch; at most fanout per range and
     * RECONCILE_SUBS per query (memory).
     */
    per = L->run->cfg.fetch_rows * 3 / 4;   /* room for a few more rows */
    per = per < 1 ? 1 : per;
    maxt = L->run->cfg.fanout;
    maxt = maxt > (int64_t) (RECONCILE_SUBS / n)
           ? (int64_t) (RECONCILE_SUBS / n) : maxt;
    maxt = maxt < 2 ? 2 : maxt;

    /* the splitter of each range: the side with more rows */
    for (i = 0; i < n; i++) {
        s = r[i].n[1] > r[i].n[0];
        if (reconcile_ranges_push(&grp[s], r[i].lo, r[i].hi)
            != RECONCILE_OK)
        {
            goto nomem;
        }
        grp[s].r[grp[s].n - 1].n[s] = r[i].n[s];
    }
    for (s = 0; s < 2; s++) {
        params[s] = NULL;
        np[s] = 7;
        if (grp[s].n == 0) {
            continue;
        }
        if (reconcile_buckets(grp[s].r, grp[s].n, &bk[s]) != RECONCILE_OK
            || reconcile_tiles(&grp[s], &bk[s], s, per, maxt, &off[s],
                               &size[s]) != RECONCILE_OK)
        {
            goto nomem;
        }
        p[s][0] = L->run->stores_lit;
        p[s][1] = bk[s].thresholds;
        p[s][2] = bk[s].wanted;
        p[s][3] = grp[s].r[0].lo;
        p[s][4] = grp[s].r[grp[s].n - 1].hi;
        p[s][5] = off[s];
        p[s][6] = size[s];
        params[s] = p[s];
    }
    if (reconcile_exec2(L, Q_SPLIT, params, np, res) != RECONCILE_OK) {
        goto failed;
    }

    mins = malloc(((size_t) maxt + 2) * sizeof(*mins));
    if (mins == NULL) {
        goto nomem;
    }

    /* rows (b, first key of a tile) by bucket: the sub-ranges, in order */
    {
        int  cur[2] = { 0, 0 }, gi[2] = { 0, 0 };

        for (i = 0; i < n; i++) {
            s = r[i].n[1] > r[i].n[0];
            nrows = PQntuples(res[s]);
            cnt = 0;
            for (row = cur[s]; row < nrows; row++) {
                b = atoi(PQgetvalue(res[s], row, 0));
                ri = b >= 1 && (size_t) b <= bk[s].nbuckets
                     ? bk[s].map[b - 1] : -1;
                if (ri != gi[s]) {
                    break;
                }
                if (cnt < (size_t) maxt + 1) {
                    mins[cnt++] = PQgetvalue(res[s], row, 1);
                }
            }
            cur[s] = row;
            gi[s]++;
            if (reconcile_split(&r[i], mins, cnt, &subs) != RECONCILE_OK) {
                goto nomem;
            }
        }
    }

    /* both sides hash the sub-ranges */
    if (reconcile_buckets(subs.r, subs.n, &sb) != RECONCILE_OK) {
        goto nomem;
    }
    for (s = 0; s < 2; s++) {
        p[s][0] = L->run->stores_lit;
        p[s][1] = sb.thresholds;
        p[s][2] = sb.wanted;
        p[s][3] = subs.r[0].lo;
        p[s][4] = subs.r[subs.n - 1].hi;
        params[s] = p[s];
        np[s] = 5;
    }
    if (reconcile_exec2(L, sb.nbuckets <= RECONCILE_FEW ? Q_HASH : Q_HASHM,
                        params, np, hres) != RECONCILE_OK)
    {
        goto failed;
    }
    for (s = 0; s < 2; s++) {
        nrows = PQntuples(hres[s]);
        for (row = 0; row < nrows; row++) {
            b = atoi(PQgetvalue(hres[s], row, 0));
            ri = b >= 1 && (size_t) b <= sb.nbuckets ? sb.map[b - 1] : -1;
            if (ri < 0) {
                continue;
            }
            sr = &subs.r[ri];
            sr->n[s] = strtoll(PQgetvalue(hres[s], row, 1), NULL, 10);
            if (reconcile_hash_parse(PQgetvalue(hres[s], row, 2), &h)
                != RECONCILE_OK)
            {
                cutover_error_set(L->err, "bad_hash", "%s database: ledger"
                                  " %s: a hash that is no number",
                                  reconcile_side_name[s], L->lm->name);
                goto failed;
            }
            sr->h[s] = h;
            L->res->rows_hashed += sr->n[s];
        }
    }

    for (i = 0; i < subs.n; i++) {
        sr = &subs.r[i];
        (*nsubs)++;
        if (sr->n[0] == sr->n[1] && sr->h[0] == sr->h[1]) {
            continue;
        }
        if (reconcile_ranges_push(next, sr->lo, sr->hi) != RECONCILE_OK) {
            goto nomem;
        }
        memcpy(next->r[next->n - 1].n, sr->n, sizeof(sr->n));
        memcpy(next->r[next->n - 1].h, sr->h, sizeof(sr->h));
    }
    rc = RECONCILE_OK;
    goto failed;

nomem:
    cutover_error_set(L->err, "no_memory", "out of memory");

failed:
    free(mins);
    for (s = 0; s < 2; s++) {
        PQclear(res[s]);
        PQclear(hres[s]);
        reconcile_buckets_free(&bk[s]);
        reconcile_ranges_clear(&grp[s]);
        free(grp[s].r);
        free(off[s]);
        free(size[s]);
    }
    reconcile_buckets_free(&sb);
    reconcile_ranges_clear(&subs);
    free(subs.r);
    return rc;
}


/*
 * The differing ranges r[0..n) at depth `depth`: small ones fetched, the
 * others split a chunk at a time, and the differing sub-ranges of each
 * chunk (at most RECONCILE_SUBS) followed at once, depth first: memory
 * holds one list per depth, whatever the ledger's size.
 */
static int
reconcile_descend(reconcile_ledger_t *L, const reconcile_range_t *r,
    size_t n, int depth)
{
    size_t              i, j, nsubs;
    int64_t             lim;
    reconcile_ranges_t  small, big, next;

    memset(&small, 0, sizeof(small));
    memset(&big, 0, sizeof(big));
    memset(&next, 0, sizeof(next));
    if (depth > RECONCILE_MAX_LEVEL) {
        cutover_error_set(L->err, "no_progress", "ledger %s: no progress"
                          " after %d levels (are the keys unique?)",
                          L->lm->name, RECONCILE_MAX_LEVEL);
        return RECONCILE_ERROR;
    }
    L->res->levels = depth > L->res->levels ? depth : L->res->levels;

    lim = L->run->cfg.fetch_rows;
    for (i = 0; i < n; i++) {
        reconcile_ranges_t  *to;

        to = r[i].n[0] <= lim && r[i].n[1] <= lim ? &small : &big;
        if (reconcile_ranges_push(to, r[i].lo, r[i].hi) != RECONCILE_OK) {
            goto nomem;
        }
        to->r[to->n - 1].n[0] = r[i].n[0];
        to->r[to->n - 1].n[1] = r[i].n[1];
    }

    for (i = 0; i < big.n; i += RECONCILE_CHUNK) {
        j = big.n - i < RECONCILE_CHUNK ? big.n - i : RECONCILE_CHUNK;
        nsubs = 0;
        if (reconcile_split_chunk(L, &big.r[i], j, &next, &nsubs)
            != RECONCILE_OK)
        {
            goto failed;
        }
        reconcile_progress(L, depth, next.n, 0);

        /* a wrong map or the wrong database: say so before the long part */
        if (depth == 1 && nsubs >= 8 && next.n * 10 >= nsubs * 9) {
            L->res->nearly_all = 1;
            fprintf(stderr, "%scutover-reconcile: ledger %s: nearly"
                    " everything differs (%zu of %zu key ranges): a wrong"
                    " map or the wrong database?  Listing at most %lld"
                    " differences.\n", L->run->cfg.progress ? "\n" : "",
                    L->lm->name, next.n, nsubs,
                    (long long) L->run->cfg.list_cap);
        }

        if (next.n > 0
            && reconcile_descend(L, next.r, next.n, depth + 1)
               != RECONCILE_OK)
        {
            goto failed;
        }
        reconcile_ranges_clear(&next);
    }

    for (i = 0; i < small.n; i += RECONCILE_CHUNK) {
        j = small.n - i < RECONCILE_CHUNK ? small.n - i : RECONCILE_CHUNK;
        if (reconcile_fetch(L, &small.r[i], j) != RECONCILE_OK) {
            goto failed;
        }
        reconcile_progress(L, depth, small.n - i - j, 0);
    }
    reconcile_ranges_clear(&small);
    reconcile_ranges_clear(&big);
    free(small.r);
    free(big.r);
    free(next.r);
    return RECONCILE_OK;

nomem:
    cutover_error_set(L->err, "no_memory", "out of memory");

failed:
    reconcile_ranges_clear(&small);
    reconcile_ranges_clear(&big);
    reconcile_ranges_clear(&next);
    free(small.r);
    free(big.r);
    free(next.r);
    return RECONCILE_ERROR;
}


static void
reconcile_progress(reconcile_ledger_t *L, int depth, size_t ranges, int end)
{
    if (!L->run->cfg.progress) {
        return;
    }
    fprintf(stderr, "\r\033[Kcutover-reconcile: %s: level %d, %zu ranges"
            " to go, %lld rows fetched, %lld differences%s",
            L->lm->name, depth, ranges,
            (long long) L->res->rows_fetched,
            (long long) L->res->differences, end ? "\n" : "");
}


static int
reconcile_ledger(reconcile_ledger_t *L)
{
    int                 s, np[2], rc;
    const char         *p[1];
    const char *const  *params[2];
    PGresult           *res[2];
    uint64_t            h[2];
    reconcile_ranges_t  cur;

    memset(&cur, 0, sizeof(cur));

    p[0] = L->run->stores_lit;
    params[0] = params[1] = p;
    np[0] = np[1] = 1;
    if (reconcile_exec2(L, Q_TOP, params, np, res) != RECONCILE_OK) {
        return RECONCILE_ERROR;
    }
    rc = RECONCILE_ERROR;
    for (s = 0; s < 2; s++) {
        L->res->rows[s] = strtoll(PQgetvalue(res[s], 0, 0), NULL, 10);
        L->res->rows_hashed += L->res->rows[s];
        if (reconcile_hash_parse(PQgetvalue(res[s], 0, 1), &h[s])
            != RECONCILE_OK)
        {
            cutover_error_set(L->err, "bad_hash", "%s database: ledger %s:"
                              " a hash that is no number",
                              reconcile_side_name[s], L->lm->name);
            goto done;
        }
        if (strcmp(PQgetvalue(res[s], 0, 2), "0") != 0) {
            cutover_error_set(L->err, "null_value", "%s database: ledger %s:"
                              " %s rows with NULL in a key or value column"
                              " (first: %s): fix the map (coalesce) or the"
                              " data", reconcile_side_name[s], L->lm->name,
                              PQgetvalue(res[s], 0, 2),
                              PQgetvalue(res[s], 0, 4));
            goto done;
        }
        if (strcmp(PQgetvalue(res[s], 0, 3), "0") != 0) {
            cutover_error_set(L->err, "bad_key", "%s database: ledger %s:"
                              " %s rows whose key is not printable ASCII"
                              " (first: %.60s); keys must sort alike in"
                              " both databases", reconcile_side_name[s],
                              L->lm->name, PQgetvalue(res[s], 0, 3),
                              PQgetvalue(res[s], 0, 5));
            goto done;
        }
    }
    for (s = 0; s < 2; s++) {
        if (L->res->rows[s] == 0
            && L->res->rows[1 - s] > L->run->cfg.fetch_rows)
        {
            cutover_error_set(L->err, "empty_side", "ledger %s: the %s side"
                              " is empty while the %s side has %lld rows"
                              " (an unseeded database, the wrong database"
                              " or a wrong map?)", L->lm->name,
                              reconcile_side_name[s],
                              reconcile_side_name[1 - s],
                              (long long) L->res->rows[1 - s]);
            goto done;
        }
    }
    rc = RECONCILE_OK;
    if (L->res->rows[0] == L->res->rows[1] && h[0] == h[1]) {
        goto done;
    }

    if (reconcile_ranges_push(&cur, "", NULL) != RECONCILE_OK) {
        cutover_error_set(L->err, "no_memory", "out of memory");
        rc = RECONCILE_ERROR;
        goto done;
    }
    memcpy(cur.r[0].n, L->res->rows, sizeof(cur.r[0].n));
    memcpy(cur.r[0].h, h, sizeof(h));

    rc = reconcile_descend(L, cur.r, cur.n, 1);
    reconcile_progress(L, L->res->levels, 0, 1);

done:
    PQclear(res[0]);
    PQclear(res[1]);
    reconcile_ranges_clear(&cur);
    free(cur.r);
    return rc;
}


/*
 * After the settle delay: the listed differences of this ledger fetched
 * again by key (a fresh snapshot) and kept only when they still differ.
 */
static int
reconcile_settle(reconcile_ledger_t *L)
{
    int                 np[2], rc;
    size_t              i, k, n, keep, old_ndiffs;
    int64_t             listed;
    char               *lit;
    const char         *p[2], **keys;
    const char *const  *params[2];
    reconcile_run_t    *run;
    reconcile_diff_t   *d;

    run = L->run;
    listed = L->res->listed;
    if (listed == 0) {
        return RECONCILE_OK;
    }
    keys = malloc((size_t) listed * sizeof(*keys));
    if (keys == NULL) {
        cutover_error_set(L->err, "no_memory", "out of memory");
        return RECONCILE_ERROR;
    }

    /* this ledger's listed differences move out of the list */
    n = 0;
    keep = 0;
    old_ndiffs = run->ndiffs;
    d = malloc(old_ndiffs * sizeof(*d));
    if (d == NULL) {
        free(keys);
        cutover_error_set(L->err, "no_memory", "out of memory");
        return RECONCILE_ERROR;
    }
    for (i = 0; i < old_ndiffs; i++) {
        if (run->diffs[i].ledger == L->li) {
            d[n++] = run->diffs[i];
        } else {
            run->diffs[keep++] = run->diffs[i];
        }
    }
    run->ndiffs = keep;
    for (i = 0; i < n; i++) {
        keys[i] = d[i].sk;
    }
    L->res->differences -= listed;
    L->res->listed = 0;

    rc = reconcile_simple(L, "BEGIN ISOLATION LEVEL REPEATABLE READ,"
                          " READ ONLY");
    for (i = 0; rc == RECONCILE_OK && i < n; i += RECONCILE_KEYS_CHUNK) {
        k = n - i < RECONCILE_KEYS_CHUNK ? n - i : RECONCILE_KEYS_CHUNK;
        lit = reconcile_text_array(&keys[i], k);
        if (lit == NULL) {
            cutover_error_set(L->err, "no_memory", "out of memory");
            rc = RECONCILE_ERROR;
            break;
        }
        p[0] = run->stores_lit;
        p[1] = lit;
        params[0] = params[1] = p;
        np[0] = np[1] = 2;
        rc = reconcile_merge(L, Q_KEYS, params, np);
        free(lit);
    }
    if (rc == RECONCILE_OK) {
        rc = reconcile_simple(L, "COMMIT");
    }

    for (i = 0; i < n; i++) {
        free(d[i].sk);
        free(d[i].key);
        free(d[i].val[0]);
        free(d[i].val[1]);
    }
    free(d);
    free(keys);
    return rc;
}


int
reconcile_run(reconcile_run_t *run, cutover_error_t *err)
{
    int                  i, s, rc, q;
    double               t0, start;
    PGresult            *r;
    reconcile_ledger_t   led[RECONCILE_MAX_LEDGERS];

    memset(led, 0, sizeof(led));
    start = reconcile_now();
    rc = RECONCILE_ERROR;

    for (s = 0; s < 2; s++) {
        run->conn[s] = PQconnectdb(run->cfg.conninfo[s]);
        if (run->conn[s] == NULL
            || PQstatus(run->conn[s]) != CONNECTION_OK)
        {
            cutover_error_set(err, "unreachable", "cannot connect to the %s"
                              " database: %.*s", reconcile_side_name[s],
                              run->conn[s]
                              ? (int) strcspn(PQerrorMessage(run->conn[s]),
                                              "\n") : 13,
                              run->conn[s] ? PQerrorMessage(run->conn[s])
                                           : "out of memory");
            goto done;
        }
        /* the splits sort a range's keys: in memory, not on disk */
        r = PQexec(run->conn[s], "SET application_name = 'cutover-reconcile';"
                   " SET work_mem = '256MB'");
        PQclear(r);
    }

    for (i = 0; i < run->nsel; i++) {
        reconcile_ledger_t  *L = &led[i];

        L->run = run;
        L->li = run->sel[i];
        L->lm = &run->map->ledgers[run->sel[i]];
        L->res = &run->res[i];
        L->c[0] = run->conn[0];
        L->c[1] = run->conn[1];
        L->err = err;
        for (q = 0; q < 7; q++) {
            for (s = 0; s < 2; s++) {
                L->q[q][s] = reconcile_sql(L->lm, s, reconcile_q_names[q]);
                if (L->q[q][s] == NULL) {
                    cutover_error_set(err, "no_memory", "out of memory");
                    goto done;
                }
            }
        }
        t0 = reconcile_now();
        if (reconcile_simple(L, "BEGIN ISOLATION LEVEL REPEATABLE READ,"
                             " READ ONLY") != RECONCILE_OK
            || reconcile_ledger(L) != RECONCILE_OK
            || reconcile_simple(L, "COMMIT") != RECONCILE_OK)
        {
            goto done;
        }
        L->res->seconds = reconcile_now() - t0;
    }

    if (run->cfg.settle_ms > 0 && run->ndiffs > 0) {
        fprintf(stderr, "cutover-reconcile: %zu difference%s, checking"
                " again in %llu ms\n", run->ndiffs,
                run->ndiffs == 1 ? "" : "s",
                (unsigned long long) run->cfg.settle_ms);
        usleep((useconds_t) (run->cfg.settle_ms % 1000) * 1000);
        sleep((unsigned) (run->cfg.settle_ms / 1000));
        for (i = 0; i < run->nsel; i++) {
            t0 = reconcile_now();
            if (reconcile_settle(&led[i]) != RECONCILE_OK) {
                goto done;
            }
            led[i].res->seconds += reconcile_now() - t0;
        }
    }
    for (i = 0; i < run->nsel; i++) {
        run->res[i].done = 1;
    }
    if (run->ndiffs > 1) {
        qsort(run->diffs, run->ndiffs, sizeof(*run->diffs),
              reconcile_diff_cmp);
    }
    rc = RECONCILE_OK;

done:
    for (i = 0; i < RECONCILE_MAX_LEDGERS; i++) {
        for (q = 0; q < 7; q++) {
            free(led[i].q[q][0]);
            free(led[i].q[q][1]);
        }
    }
    run->seconds = reconcile_now() - start;
    return rc;
}


void
reconcile_run_free(reconcile_run_t *run)
{
    size_t  i;

    for (i = 0; i < run->ndiffs; i++) {
        free(run->diffs[i].sk);
        free(run->diffs[i].key);
        free(run->diffs[i].val[0]);
        free(run->diffs[i].val[1]);
    }
    free(run->diffs);
    free(run->stores_lit);
    PQfinish(run->conn[0]);
    PQfinish(run->conn[1]);
    reconcile_map_free(run->map);
}
