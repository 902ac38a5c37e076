/*
 * compare_store_sql: a batch of results as multi-row INSERTs (prepared
 * once per size, parameters only), pairs first, then their differences.
 */

#include "compare/compare_store_int.h"


static const char *compare_get(const bson_t *rec, const char *key, char *buf,
    size_t size);
static int compare_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *values, ExecStatusType want, compare_error_t *err);
static char *compare_values_sql(const char *head, const char *tail, size_t n,
    int cols, const char *const *casts);
static char *compare_pairs_sql(size_t n);
static char *compare_diffs_sql(size_t n);
static const char *compare_at_text(const bson_t *rec, char *buf);
static int compare_insert_pairs(PGconn *conn, bson_t **recs, size_t n,
    uint8_t *fresh, compare_error_t *err);
static int compare_insert_diffs(PGconn *conn, const char **vals, char *seqs,
    size_t n, compare_error_t *err);
static int compare_insert_all_diffs(PGconn *conn, bson_t **recs,
    const uint8_t *fresh, size_t n, compare_error_t *err);


/* --- PostgreSQL -------------------------------------------------------- */

static const char *
compare_get(const bson_t *rec, const char *key, char *buf, size_t size)
{
    bson_iter_t  it;

    if (!bson_iter_init_find(&it, rec, key)) {
        return NULL;
    }
    switch (bson_iter_type(&it)) {
    case BSON_TYPE_UTF8:
        return bson_iter_utf8(&it, NULL);
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
        snprintf(buf, size, "%lld", (long long) bson_iter_as_int64(&it));
        return buf;
    case BSON_TYPE_DOUBLE:
        if (bson_iter_double(&it) < 0) {
            return NULL;
        }
        snprintf(buf, size, "%.3f", bson_iter_double(&it));
        return buf;
    default:
        return NULL;
    }
}


static int
compare_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *values, ExecStatusType want, compare_error_t *err)
{
    PGresult  *res;
    int        ok;

    res = PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
    ok = PQresultStatus(res) == want;
    if (!ok) {
        compare_store_fail(err, "insert", PQresultErrorMessage(res));
    }
    PQclear(res);
    return ok ? COMPARE_OK : COMPARE_ERROR;
}


/* "INSERT ... VALUES ($1,..,$k),(...)..." for n rows of cols columns. */
static char *
compare_values_sql(const char *head, const char *tail, size_t n, int cols,
    const char *const *casts)
{
    size_t  cap = strlen(head) + strlen(tail) + n * (size_t) cols * 24 + 16;
    char   *sql = malloc(cap), *p;
    size_t  r;
    int     c, k = 1;

    if (sql == NULL) {
        return NULL;
    }
    p = sql + sprintf(sql, "%s", head);
    for (r = 0; r < n; r++) {
        *p++ = r ? ',' : ' ';
        *p++ = '(';
        for (c = 0; c < cols; c++) {
            p += sprintf(p, "%s$%d%s", c ? "," : "", k++,
                         casts[c] ? casts[c] : "");
        }
        *p++ = ')';
    }
    strcpy(p, tail);
    return sql;
}


static char *
compare_pairs_sql(size_t n)
{
    static const char *casts[] = { NULL, "::timestamptz", NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, "::int", "::int", "::float8", "::float8",
        NULL, "::int", NULL };

    return compare_values_sql("INSERT INTO compare_pairs (record_id, at, zone,"
        " method, route, uri, store, channel, side_served, primary_status,"
        " shadow_status, primary_ms, shadow_ms, verdict, ndiffs, detail)"
        " VALUES", " ON CONFLICT (record_id) DO NOTHING RETURNING record_id",
        n, COMPARE_PAIR_COLS, casts);
}


static char *
compare_diffs_sql(size_t n)
{
    static const char *casts[] = { NULL, "::int", NULL, NULL, NULL, NULL };

    return compare_values_sql("INSERT INTO compare_diffs (record_id, seq, path,"
        " kind, a, b) VALUES", " ON CONFLICT (record_id, seq) DO NOTHING", n,
        COMPARE_DIFF_COLS, casts);
}


/* Full batches go through statements prepared once per connection. */
int
compare_prepare(PGconn *conn, compare_error_t *err)
{
    char      *sp = compare_pairs_sql(COMPARE_PAIR_CHUNK);
    char      *sd = compare_diffs_sql(COMPARE_DIFF_CHUNK);
    PGresult  *rp = NULL, *rd = NULL;
    int        rc = COMPARE_OK;

    if (sp != NULL && sd != NULL) {
        rp = PQprepare(conn, "compare_pairs_full", sp,
                       COMPARE_PAIR_CHUNK * COMPARE_PAIR_COLS, NULL);
        rd = PQprepare(conn, "compare_diffs_full", sd,
                       COMPARE_DIFF_CHUNK * COMPARE_DIFF_COLS, NULL);
    }
    if (PQresultStatus(rp) != PGRES_COMMAND_OK
        || PQresultStatus(rd) != PGRES_COMMAND_OK)
    {
        rc = compare_store_fail(err, "prepare", PQerrorMessage(conn));
    }
    PQclear(rp);
    PQclear(rd);
    free(sp);
    free(sd);
    return rc;
}


/* The record's time as timestamptz text (UTC, microseconds) in buf[40]. */
static const char *
compare_at_text(const bson_t *rec, char *buf)
{
    bson_iter_t  it;
    int64_t      us = 0, frac;
    time_t       t;
    struct tm    tm;

    if (bson_iter_init_find(&it, rec, "time_us")) {
        us = bson_iter_as_int64(&it);
    }
    frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
    }
    t = (time_t) ((us - frac) / 1000000);
    gmtime_r(&t, &tm);
    strftime(buf, 40, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + strlen(buf), 20, ".%06d+00", (int) frac);
    return buf;
}


/* One multi-row INSERT; fresh[r] = 1 for the rows it really inserted (the
 * others were stored before: their differences are not written again). */
static int
compare_insert_pairs(PGconn *conn, bson_t **recs, size_t n, uint8_t *fresh,
    compare_error_t *err)
{
    static const char *cols[] = { "record_id", "at", "zone", "method",
        "route", "uri", "store", "channel", "side", "pstatus", "sstatus",
        "pms", "sms", "verdict", "ndiffs", "detail" };
    const char   **vals;
    char          *bufs, *sql;
    size_t         r;
    int            c, rc, t;
    PGresult      *res;

    vals = calloc(n * COMPARE_PAIR_COLS, sizeof(char *));
    bufs = malloc(n * COMPARE_PAIR_COLS * 40);
    sql = n == COMPARE_PAIR_CHUNK ? NULL : compare_pairs_sql(n);
    if (vals == NULL || bufs == NULL
        || (sql == NULL && n != COMPARE_PAIR_CHUNK))
    {
        free(vals);
        free(bufs);
        free(sql);
        return compare_store_fail(err, "insert", "out of memory");
    }
    for (r = 0; r < n; r++) {
        for (c = 0; c < COMPARE_PAIR_COLS; c++) {
            char *b = bufs + (r * COMPARE_PAIR_COLS + (size_t) c) * 40;

            if (c == 1) {
                vals[r * COMPARE_PAIR_COLS + 1] = compare_at_text(recs[r], b);
                continue;
            }
            vals[r * COMPARE_PAIR_COLS + (size_t) c] =
                compare_get(recs[r], cols[c], b, 40);
        }
    }
    res = sql ? PQexecParams(conn, sql, (int) (n * COMPARE_PAIR_COLS), NULL,
                             vals, NULL, NULL, 0)
              : PQexecPrepared(conn, "compare_pairs_full",
                               (int) (n * COMPARE_PAIR_COLS), vals, NULL,
                               NULL, 0);
    rc = COMPARE_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = compare_store_fail(err, "insert", PQresultErrorMessage(res));
    }
    for (t = 0; rc == COMPARE_OK && t < PQntuples(res); t++) {
        for (r = 0; r < n; r++) {
            if (!fresh[r]
                && strcmp(vals[r * COMPARE_PAIR_COLS], PQgetvalue(res, t, 0))
                   == 0)
            {
                fresh[r] = 1;
                break;
            }
        }
    }
    PQclear(res);
    free(vals);
    free(bufs);
    free(sql);
    return rc;
}


static int
compare_insert_diffs(PGconn *conn, const char **vals, char *seqs, size_t n,
    compare_error_t *err)
{
    PGresult  *res;
    char      *sql;
    int        rc = COMPARE_OK;

    (void) seqs;
    if (n == COMPARE_DIFF_CHUNK) {
        res = PQexecPrepared(conn, "compare_diffs_full",
                             (int) (n * COMPARE_DIFF_COLS), vals, NULL, NULL,
                             0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = compare_store_fail(err, "insert", PQresultErrorMessage(res));
        }
        PQclear(res);
        return rc;
    }
    sql = compare_diffs_sql(n);
    if (sql == NULL) {
        return compare_store_fail(err, "insert", "out of memory");
    }
    rc = compare_exec(conn, sql, (int) (n * COMPARE_DIFF_COLS), vals,
                      PGRES_COMMAND_OK, err);
    free(sql);
    return rc;
}


static int
compare_insert_all_diffs(PGconn *conn, bson_t **recs, const uint8_t *fresh,
    size_t n, compare_error_t *err)
{
    const char   *vals[COMPARE_DIFF_CHUNK * COMPARE_DIFF_COLS];
    char          seqs[COMPARE_DIFF_CHUNK * 12];
    bson_iter_t   it, d, f;
    size_t        r, k = 0;
    uint32_t      seq;

    for (r = 0; r < n; r++) {
        if (!fresh[r] || !bson_iter_init_find(&it, recs[r], "diffs")
            || !bson_iter_recurse(&it, &d))
        {
            continue;
        }
        for (seq = 0; bson_iter_next(&d); seq++) {
            const char **v = &vals[k * COMPARE_DIFF_COLS];

            if (!bson_iter_recurse(&d, &f)) {
                continue;
            }
            v[0] = compare_get(recs[r], "record_id", NULL, 0);
            snprintf(seqs + k * 12, 12, "%u", seq);
            v[1] = seqs + k * 12;
            v[2] = v[3] = v[4] = v[5] = NULL;
            while (bson_iter_next(&f)) {
                const char *key = bson_iter_key(&f);
                const char *s = bson_iter_utf8(&f, NULL);

                if (strcmp(key, "path") == 0) {
                    v[2] = s;
                } else if (strcmp(key, "kind") == 0) {
                    v[3] = s;
                } else if (strcmp(key, "a") == 0) {
                    v[4] = s;
                } else if (strcmp(key, "b") == 0) {
                    v[5] = s;
                }
            }
            if (++k == COMPARE_DIFF_CHUNK) {
                if (compare_insert_diffs(conn, vals, seqs, k, err) != 0) {
                    return COMPARE_ERROR;
                }
                k = 0;
            }
        }
    }
    if (k > 0 && compare_insert_diffs(conn, vals, seqs, k, err) != 0) {
        return COMPARE_ERROR;
    }
    return COMPARE_OK;
}


int
compare_store_insert(compare_store_t *st, bson_t **recs, size_t n,
    compare_error_t *err)
{
    size_t    off, m;
    int       rc;
    uint8_t  *fresh;

    fresh = calloc(n + 1, 1);
    if (fresh == NULL) {
        return compare_store_fail(err, "insert", "out of memory");
    }
    rc = compare_exec(st->conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK, err);
    for (off = 0; rc == COMPARE_OK && off < n; off += m) {
        m = n - off < COMPARE_PAIR_CHUNK ? n - off : COMPARE_PAIR_CHUNK;
        rc = compare_insert_pairs(st->conn, recs + off, m, fresh + off, err);
    }
    if (rc == COMPARE_OK) {
        rc = compare_insert_all_diffs(st->conn, recs, fresh, n, err);
    }
    free(fresh);
    if (rc == COMPARE_OK) {
        rc = compare_exec(st->conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK, err);
    } else if (PQstatus(st->conn) == CONNECTION_OK) {
        PGresult *res = PQexecParams(st->conn, "ROLLBACK", 0, NULL, NULL,
                                     NULL, NULL, 0);
        PQclear(res);
    }
    if (rc != COMPARE_OK && PQstatus(st->conn) != CONNECTION_OK) {
        PQfinish(st->conn);
        st->conn = NULL;
        st->next_try = compare_now_us() + COMPARE_RETRY_US;
    }
    if (rc == COMPARE_OK) {
        st->written += n;
    }
    return rc;
}
