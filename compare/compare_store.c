/*
 * compare_store: results into PostgreSQL in batches (multi-row INSERT, ON
 * CONFLICT DO NOTHING), or into a bounded outbox of fsynced files while
 * PostgreSQL is away; the outbox drains when it returns.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bson/bson.h>

#include "compare/compare_diff.h"
#include "compare/compare_store.h"

#define COMPARE_PAIR_COLS    16
#define COMPARE_DIFF_COLS    6
#define COMPARE_PAIR_CHUNK   200
#define COMPARE_DIFF_CHUNK   500
#define COMPARE_RETRY_US     250000
#define COMPARE_RETRY_MAX_US 2000000

struct compare_store_s {
    char       *conninfo;
    char       *outbox;
    PGconn     *conn;
    int         schema_ok;
    bson_t    **queue;
    size_t      nqueue;
    size_t      capqueue;
    uint64_t    pending;
    uint64_t    written;
    uint64_t    rejected;
    uint64_t    seq;
    uint64_t    outbox_max;
    int64_t     next_try;
    int64_t     backoff;      /* doubles while PostgreSQL stays away */
};


static int compare_store_fail(compare_error_t *err, const char *what,
    const char *why);
static int64_t compare_now_us(void);
static int compare_store_connect(compare_store_t *st, compare_error_t *err);
static const char *compare_str(const char *s);
static void compare_append_text(bson_t *rec, const char *key, const char *s);
static const char *compare_get(const bson_t *rec, const char *key, char *buf,
    size_t size);
static int compare_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *values, ExecStatusType want, compare_error_t *err);
static char *compare_values_sql(const char *head, const char *tail, size_t n,
    int cols, const char *const *casts);
static char *compare_pairs_sql(size_t n);
static char *compare_diffs_sql(size_t n);
static int compare_prepare(PGconn *conn, compare_error_t *err);
static const char *compare_at_text(const bson_t *rec, char *buf);
static int compare_insert_pairs(PGconn *conn, bson_t **recs, size_t n,
    uint8_t *fresh, compare_error_t *err);
static int compare_insert_diffs(PGconn *conn, const char **vals, char *seqs,
    size_t n, compare_error_t *err);
static int compare_insert_all_diffs(PGconn *conn, bson_t **recs,
    const uint8_t *fresh, size_t n, compare_error_t *err);
static int compare_store_insert(compare_store_t *st, bson_t **recs, size_t n,
    compare_error_t *err);
static int compare_outbox_name(const char *name, uint64_t *seq,
    uint64_t *count);
static void compare_outbox_count(compare_store_t *st);
static int compare_fsync_dir(const char *path);
static int compare_outbox_write(compare_store_t *st, bson_t **recs, size_t n,
    compare_error_t *err);
static int compare_name_cmp(const void *a, const void *b);
static int compare_outbox_reject(compare_store_t *st, const char *name,
    bson_t **recs, size_t n, compare_error_t *err);
static int compare_outbox_file(compare_store_t *st, const char *name,
    uint64_t count, compare_error_t *err);
static int compare_outbox_drain(compare_store_t *st, compare_error_t *err);


static int
compare_store_fail(compare_error_t *err, const char *what, const char *why)
{
    if (err != NULL) {
        err->code = COMPARE_ERROR;
        snprintf(err->message, sizeof(err->message), "%s: %.200s", what,
                 why ? why : "");
        if (strlen(err->message) > 0
            && err->message[strlen(err->message) - 1] == '\n')
        {
            err->message[strlen(err->message) - 1] = '\0';
        }
    }
    return COMPARE_ERROR;
}


static int64_t
compare_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


int
compare_schema_apply(PGconn *conn, compare_error_t *err)
{
    PGresult  *res;
    int        ok;

    res = PQexecParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        return compare_store_fail(err, "schema", PQerrorMessage(conn));
    }
    res = PQexecParams(conn, "SELECT pg_advisory_xact_lock(72620431)", 0,
                       NULL, NULL, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (ok) {
        /* DDL without parameters: the one place for a multi-statement
         * PQexec, with the versioned schema file as its text */
        res = PQexec(conn, compare_schema_sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    res = PQexecParams(conn, ok ? "COMMIT" : "ROLLBACK", 0, NULL, NULL, NULL,
                       NULL, 0);
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        return compare_store_fail(err, "schema", PQerrorMessage(conn));
    }
    return COMPARE_OK;
}


compare_store_t *
compare_store_open(const char *conninfo, const char *outbox_dir,
    compare_error_t *err)
{
    compare_store_t  *st;

    if (err != NULL) {
        err->code = 0;
        err->message[0] = '\0';
    }
    if (conninfo == NULL && outbox_dir == NULL) {
        compare_store_fail(err, "store", "needs a database or an outbox");
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        compare_store_fail(err, "store", "out of memory");
        return NULL;
    }
    st->outbox_max = COMPARE_OUTBOX_MAX_RECORDS;
    st->conninfo = conninfo ? strdup(conninfo) : NULL;
    st->outbox = outbox_dir ? strdup(outbox_dir) : NULL;
    if ((conninfo && st->conninfo == NULL)
        || (outbox_dir && st->outbox == NULL))
    {
        compare_store_free(st);
        compare_store_fail(err, "store", "out of memory");
        return NULL;
    }
    if (st->outbox != NULL) {
        if (mkdir(st->outbox, 0700) != 0 && errno != EEXIST) {
            compare_store_fail(err, st->outbox, strerror(errno));
            compare_store_free(st);
            return NULL;
        }
        compare_outbox_count(st);
    }
    if (st->conninfo != NULL && compare_store_connect(st, err) != COMPARE_OK
        && st->outbox == NULL)
    {
        /* without an outbox, an unreachable database is an error now */
        compare_store_free(st);
        return NULL;
    }
    if (err != NULL) {
        err->code = 0;
        err->message[0] = '\0';
    }
    return st;
}


void
compare_store_set_outbox_limit(compare_store_t *store, uint64_t max)
{
    store->outbox_max = max;
}


uint64_t
compare_store_pending(const compare_store_t *store)
{
    return store->pending;
}


uint64_t
compare_store_written(const compare_store_t *store)
{
    return store->written;
}


uint64_t
compare_store_rejected(const compare_store_t *store)
{
    return store->rejected;
}


void
compare_store_free(compare_store_t *store)
{
    size_t  i;

    if (store == NULL) {
        return;
    }
    for (i = 0; i < store->nqueue; i++) {
        bson_destroy(store->queue[i]);
    }
    free(store->queue);
    if (store->conn != NULL) {
        PQfinish(store->conn);
    }
    free(store->conninfo);
    free(store->outbox);
    free(store);
}


/* "relation already exists, skipping" is not news: the library never
 * logs */
void
compare_quiet(void *arg, const char *message)
{
    (void) arg;
    (void) message;
}


static int
compare_store_connect(compare_store_t *st, compare_error_t *err)
{
    const char  *keys[] = { "dbname", "connect_timeout", NULL };
    const char  *vals[] = { st->conninfo, "3", NULL };

    if (st->conn != NULL && PQstatus(st->conn) == CONNECTION_OK) {
        return COMPARE_OK;
    }
    if (compare_now_us() < st->next_try) {
        return compare_store_fail(err, "database", "waiting to reconnect");
    }
    if (st->conn != NULL) {
        PQfinish(st->conn);
    }
    st->schema_ok = 0;
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        st->backoff = st->backoff ? st->backoff * 2 : COMPARE_RETRY_US;
        if (st->backoff > COMPARE_RETRY_MAX_US) {
            st->backoff = COMPARE_RETRY_MAX_US;
        }
        st->next_try = compare_now_us() + st->backoff;
        compare_store_fail(err, "database",
                           st->conn ? PQerrorMessage(st->conn) : "no memory");
        if (st->conn != NULL) {
            PQfinish(st->conn);
            st->conn = NULL;
        }
        return COMPARE_ERROR;
    }
    PQsetNoticeProcessor(st->conn, compare_quiet, NULL);
    if (compare_schema_apply(st->conn, err) != COMPARE_OK
        || compare_prepare(st->conn, err) != COMPARE_OK)
    {
        st->next_try = compare_now_us() + COMPARE_RETRY_US;
        PQfinish(st->conn);
        st->conn = NULL;
        return COMPARE_ERROR;
    }
    st->schema_ok = 1;
    st->backoff = 0;
    return COMPARE_OK;
}


/* --- queueing ---------------------------------------------------------- */

static const char *
compare_str(const char *s)
{
    return s ? s : "";
}


/* Text columns must be UTF-8 for PostgreSQL: values that are not (header
 * borne store, channel, uri; odd keys of a BSON body) get their high bytes
 * as '?', so one odd request cannot block the batch it is in. */
static void
compare_append_text(bson_t *rec, const char *key, const char *s)
{
    size_t  n = strlen(s), i;
    char   *copy;

    if (bson_utf8_validate(s, n, false)) {
        bson_append_utf8(rec, key, -1, s, (int) n);
        return;
    }
    copy = strdup(s);
    if (copy == NULL) {
        bson_append_utf8(rec, key, -1, "?", 1);
        return;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char) copy[i] >= 0x80) {
            copy[i] = '?';
        }
    }
    bson_append_utf8(rec, key, -1, copy, (int) n);
    free(copy);
}


int
compare_store_put(compare_store_t *store, const compare_pair_t *pair,
    const compare_result_t *result, compare_error_t *err)
{
    bson_t                *rec, diffs, d;
    const compare_diff_t  *df;
    size_t                 i;
    char                   key[16];
    const char            *k;

    if (store->nqueue == store->capqueue) {
        size_t   cap = store->capqueue ? store->capqueue * 2 : 64;
        bson_t **nq = realloc(store->queue, cap * sizeof(bson_t *));

        if (nq == NULL) {
            return compare_store_fail(err, "store", "out of memory");
        }
        store->queue = nq;
        store->capqueue = cap;
    }
    rec = bson_new();
    if (rec == NULL) {
        return compare_store_fail(err, "store", "out of memory");
    }
    compare_append_text(rec, "record_id", compare_str(pair->record_id));
    BSON_APPEND_INT64(rec, "time_us", pair->time_us);
    compare_append_text(rec, "zone", compare_str(pair->zone));
    compare_append_text(rec, "method", compare_str(pair->method));
    compare_append_text(rec, "route", compare_result_route(result));
    compare_append_text(rec, "uri", compare_str(pair->uri));
    compare_append_text(rec, "store", compare_str(pair->store));
    compare_append_text(rec, "channel", compare_str(pair->channel));
    compare_append_text(rec, "side", compare_str(pair->side_served));
    BSON_APPEND_INT32(rec, "pstatus", pair->primary.status);
    BSON_APPEND_INT32(rec, "sstatus", pair->shadow.status);
    BSON_APPEND_DOUBLE(rec, "pms", pair->primary.latency_ms);
    BSON_APPEND_DOUBLE(rec, "sms", pair->shadow.latency_ms);
    BSON_APPEND_UTF8(rec, "verdict",
                     compare_verdict_name(compare_result_verdict(result)));
    BSON_APPEND_INT64(rec, "ndiffs", (int64_t) compare_result_ndiffs(result));
    compare_append_text(rec, "detail", compare_result_detail(result));
    BSON_APPEND_ARRAY_BEGIN(rec, "diffs", &diffs);
    for (i = 0; (df = compare_result_diff(result, i)) != NULL; i++) {
        bson_uint32_to_string((uint32_t) i, &k, key, sizeof(key));
        BSON_APPEND_DOCUMENT_BEGIN(&diffs, k, &d);
        compare_append_text(&d, "path", df->path);
        BSON_APPEND_UTF8(&d, "kind", compare_diff_kind_name(df->kind));
        if (df->a != NULL) {
            compare_append_text(&d, "a", df->a);
        }
        if (df->b != NULL) {
            compare_append_text(&d, "b", df->b);
        }
        bson_append_document_end(&diffs, &d);
    }
    bson_append_array_end(rec, &diffs);
    store->queue[store->nqueue++] = rec;
    return COMPARE_OK;
}


int
compare_store_flush(compare_store_t *store, compare_error_t *err)
{
    size_t  i;
    int     rc = COMPARE_ERROR;

    if (err != NULL) {
        err->code = 0;
        err->message[0] = '\0';
    }
    if (store->conninfo != NULL
        && compare_store_connect(store, err) == COMPARE_OK)
    {
        if (store->pending > 0) {
            compare_outbox_drain(store, err);
        }
        if (store->nqueue == 0) {
            return COMPARE_OK;
        }
        rc = compare_store_insert(store, store->queue, store->nqueue, err);
    }
    if (store->nqueue == 0) {
        return COMPARE_OK;
    }
    if (rc != COMPARE_OK) {
        if (store->outbox == NULL) {
            return COMPARE_ERROR;
        }
        rc = compare_outbox_write(store, store->queue, store->nqueue, err);
        if (rc != COMPARE_OK) {
            return rc;
        }
        if (store->conn != NULL && PQstatus(store->conn) == CONNECTION_OK) {
            /* refused while up: sort it out now, record by record */
            compare_outbox_drain(store, NULL);
        }
    }
    for (i = 0; i < store->nqueue; i++) {
        bson_destroy(store->queue[i]);
    }
    store->nqueue = 0;
    return COMPARE_OK;
}


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
static int
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


static int
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


/* --- outbox ------------------------------------------------------------ */

static int
compare_outbox_name(const char *name, uint64_t *seq, uint64_t *count)
{
    unsigned long long  s, c;
    int                 used = 0;

    if (sscanf(name, "%20llu-%llu.bson%n", &s, &c, &used) != 2
        || name[used] != '\0')
    {
        return -1;
    }
    *seq = s;
    *count = c;
    return 0;
}


static void
compare_outbox_count(compare_store_t *st)
{
    DIR            *dir;
    struct dirent  *de;
    uint64_t        seq, count;

    st->pending = 0;
    dir = opendir(st->outbox);
    if (dir == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (compare_outbox_name(de->d_name, &seq, &count) == 0) {
            st->pending += count;
            if (seq >= st->seq) {
                st->seq = seq + 1;
            }
        }
    }
    closedir(dir);
}


static int
compare_fsync_dir(const char *path)
{
    int  fd = open(path, O_RDONLY | O_DIRECTORY);
    int  rc;

    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}


static int
compare_outbox_write(compare_store_t *st, bson_t **recs, size_t n,
    compare_error_t *err)
{
    char     tmp[4096], final[4096];
    int      fd;
    size_t   i;
    ssize_t  w;

    if (st->pending + n > st->outbox_max) {
        return compare_store_fail(err, "outbox", "full; results kept queued");
    }
    snprintf(tmp, sizeof(tmp), "%s/.%020llu.tmp", st->outbox,
             (unsigned long long) st->seq);
    snprintf(final, sizeof(final), "%s/%020llu-%zu.bson", st->outbox,
             (unsigned long long) st->seq, n);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return compare_store_fail(err, tmp, strerror(errno));
    }
    for (i = 0; i < n; i++) {
        const uint8_t  *data = bson_get_data(recs[i]);
        size_t          len = recs[i]->len, off = 0;

        while (off < len) {
            w = write(fd, data + off, len - off);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                close(fd);
                unlink(tmp);
                return compare_store_fail(err, tmp, strerror(errno));
            }
            off += (size_t) w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, final) != 0
        || compare_fsync_dir(st->outbox) != 0)
    {
        compare_store_fail(err, final, strerror(errno));
        unlink(tmp);
        return COMPARE_ERROR;
    }
    st->seq++;
    st->pending += n;
    return COMPARE_OK;
}


static int
compare_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static int
compare_outbox_reject(compare_store_t *st, const char *name, bson_t **recs,
    size_t n, compare_error_t *err)
{
    char      path[4096];
    size_t    i;
    int       fd = -1, rc = COMPARE_OK;
    uint64_t  bad = 0;

    snprintf(path, sizeof(path), "%s/%s.rejected", st->outbox, name);
    for (i = 0; i < n && rc == COMPARE_OK; i++) {
        if (compare_store_insert(st, &recs[i], 1, err) == COMPARE_OK) {
            continue;
        }
        if (st->conn == NULL) {
            return COMPARE_ERROR;      /* the connection went: retry later */
        }
        if (fd < 0) {
            fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (fd < 0) {
                return compare_store_fail(err, path, strerror(errno));
            }
        }
        if (write(fd, bson_get_data(recs[i]), recs[i]->len)
            != (ssize_t) recs[i]->len)
        {
            rc = compare_store_fail(err, path, strerror(errno));
        }
        bad++;
    }
    if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0)) {
        rc = compare_store_fail(err, path, strerror(errno));
    }
    st->rejected += bad;
    return rc;
}


static int
compare_outbox_file(compare_store_t *st, const char *name, uint64_t count,
    compare_error_t *err)
{
    char             path[4096];
    bson_reader_t   *reader;
    const bson_t    *doc;
    bson_t         **recs;
    size_t           n = 0, i;
    bool             eof = false;
    int              rc;

    snprintf(path, sizeof(path), "%s/%s", st->outbox, name);
    recs = calloc(count + 1, sizeof(bson_t *));
    reader = bson_reader_new_from_file(path, NULL);
    if (recs == NULL || reader == NULL) {
        free(recs);
        bson_reader_destroy(reader);
        return compare_store_fail(err, path, "cannot read");
    }
    while (n < count && (doc = bson_reader_read(reader, &eof)) != NULL) {
        recs[n++] = bson_copy(doc);
    }
    bson_reader_destroy(reader);
    rc = compare_store_insert(st, recs, n, err);
    if (rc != COMPARE_OK && st->conn != NULL
        && PQstatus(st->conn) == CONNECTION_OK)
    {
        /* the database is up but refuses the batch: insert one by one and
         * set aside what it refuses, so one record cannot block the rest */
        rc = compare_outbox_reject(st, name, recs, n, err);
    }
    for (i = 0; i < n; i++) {
        bson_destroy(recs[i]);
    }
    free(recs);
    if (rc != COMPARE_OK) {
        return rc;
    }
    if (unlink(path) != 0 || compare_fsync_dir(st->outbox) != 0) {
        return compare_store_fail(err, path, strerror(errno));
    }
    st->pending -= count < st->pending ? count : st->pending;
    return COMPARE_OK;
}


static int
compare_outbox_drain(compare_store_t *st, compare_error_t *err)
{
    DIR            *dir;
    struct dirent  *de;
    char          **names = NULL, **nn;
    size_t          n = 0, cap = 0, i;
    uint64_t        seq, count;
    int             rc = COMPARE_OK;

    dir = opendir(st->outbox);
    if (dir == NULL) {
        return compare_store_fail(err, st->outbox, strerror(errno));
    }
    while ((de = readdir(dir)) != NULL) {
        if (compare_outbox_name(de->d_name, &seq, &count) != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            nn = realloc(names, cap * sizeof(char *));
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (names[n] != NULL) {
            n++;
        }
    }
    closedir(dir);
    if (n > 1) {
        qsort(names, n, sizeof(char *), compare_name_cmp);
    }
    for (i = 0; i < n; i++) {
        if (rc == COMPARE_OK) {
            compare_outbox_name(names[i], &seq, &count);
            rc = compare_outbox_file(st, names[i], count, err);
        }
        free(names[i]);
    }
    free(names);
    if (rc == COMPARE_OK) {
        compare_outbox_count(st);
    }
    return rc;
}
