/*
 * compare_store: results into PostgreSQL in batches (multi-row INSERT, ON
 * CONFLICT DO NOTHING), or into a bounded outbox of fsynced files while
 * PostgreSQL is away; the outbox drains when it returns.  The INSERTs are
 * in compare_store_sql.c, the outbox in compare_outbox.c.
 */

#include "compare/compare_store_int.h"


static int compare_store_connect(compare_store_t *st, compare_error_t *err);
static const char *compare_str(const char *s);
static void compare_append_text(bson_t *rec, const char *key, const char *s);


int
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


int64_t
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
