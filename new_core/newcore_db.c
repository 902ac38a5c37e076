/* PostgreSQL for the core: a connection pool with prepared statements that
 * reconnects after a restart, schema installation and the demo seed. */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "new_core/newcore_db.h"


typedef struct {
    PGconn  *pg;
    int      ready;             /* connected and every statement prepared */
} newcore_slot_t;

/* A request waiting for a connection; served first come, first served. */
typedef struct newcore_waiter_s  newcore_waiter_t;

struct newcore_waiter_s {
    pthread_cond_t     cond;
    int                slot;    /* -1 until a connection is handed over */
    newcore_waiter_t  *next;
};

struct newcore_pool_s {
    char             *conninfo;
    int               size;
    newcore_slot_t   *slots;
    int              *free_list;
    int               nfree;
    int               down;     /* last attempt failed: log recovery once */
    newcore_waiter_t *first;    /* the queue of waiting requests */
    newcore_waiter_t *last;
    pthread_mutex_t   lock;
    newcore_log_pt    log;
    void             *log_ctx;
};

typedef struct {
    const char  *name;
    const char  *sql;
} newcore_stmt_t;


static int newcore_slot_open(newcore_pool_t *pool, newcore_slot_t *slot,
    newcore_error_t *err);
static PGconn *newcore_db_connect(const char *conninfo);
static PGconn *newcore_db_open(const char *conninfo, newcore_error_t *err);
static int newcore_pool_take(newcore_pool_t *pool);
static void newcore_pool_put(newcore_pool_t *pool, int idx);
static void newcore_db_error(PGconn *conn, const char *what,
    newcore_error_t *err);
static void newcore_pool_set_down(newcore_pool_t *pool, int down,
    const char *why);
static void newcore_log_none(void *ctx, const char *level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));


static const newcore_stmt_t  newcore_stmts[NEWCORE_STMT_COUNT] = {
    { "health", "SELECT 1" },

    { "quote",
      "SELECT (SELECT $2::text = ANY (s.channels) FROM newcore.stores s"
      "        WHERE s.store_id = $1::text),"
      "       ($3::text IS NULL OR EXISTS (SELECT 1 FROM newcore.members m"
      "                                   WHERE m.member_id = $3::text)),"
      "       ARRAY(SELECT (SELECT k.price_fen FROM newcore.skus k"
      "                     WHERE k.sku = u.sku)"
      "             FROM unnest($4::text[]) WITH ORDINALITY AS u(sku, i)"
      "             ORDER BY u.i)::text,"
      "       CASE WHEN $5::bool THEN nextval('newcore.order_seq') END,"
      "       i.request_hash, i.status, i.body"
      " FROM (VALUES (1)) AS one(x)"
      " LEFT JOIN newcore.idempotency i ON i.idem_key = $6::text" },

    { "place",
      "SELECT o_outcome, o_detail, o_status, o_body FROM newcore.place_order("
      "$1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,"
      " $8::timestamptz, $9::text, $10::text[], $11::int[], $12::bigint[],"
      " $13::bigint[], $14::bigint, $15::bigint)" },

    { "cancel",
      "SELECT o_outcome, o_detail, o_status, o_body FROM newcore.cancel_order("
      "$1::text, $2::text, $3::text, $4::text, $5::timestamptz)" },

    { "adjust",
      "SELECT o_outcome, o_detail, o_status, o_body FROM newcore.adjust_stock("
      "$1::text, $2::text, $3::text, $4::text, $5::bigint, $6::text,"
      " $7::timestamptz)" },

    { "order_get",
      "SELECT o.order_id, o.store_id, o.channel, o.member_id, o.status,"
      "       o.total_fen, o.points_earned,"
      "       to_char(o.created_at AT TIME ZONE 'UTC',"
      "               'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
      "       o.payment_method, l.sku, l.qty, l.unit_price_fen, l.amount_fen"
      " FROM newcore.orders o"
      " JOIN newcore.order_lines l ON l.order_id = o.order_id"
      " WHERE o.order_id = $1::text ORDER BY l.line_no" },

    { "stock_get",
      "SELECT on_hand, reserved FROM newcore.stock"
      " WHERE store_id = $1::text AND sku = $2::text" },

    { "member_get",
      "SELECT points, tier FROM newcore.members WHERE member_id = $1::text" },
};


static void
newcore_log_none(void *ctx, const char *level, const char *fmt, ...)
{
    (void) ctx;
    (void) level;
    (void) fmt;
}


newcore_pool_t *
newcore_pool_new(const char *conninfo, int size, newcore_log_pt log,
    void *log_ctx, newcore_error_t *err)
{
    int              i;
    newcore_pool_t  *pool;

    pool = calloc(1, sizeof(newcore_pool_t));
    if (pool == NULL) {
        goto failed;
    }

    pool->conninfo = strdup(conninfo);
    pool->slots = calloc((size_t) size, sizeof(newcore_slot_t));
    pool->free_list = calloc((size_t) size, sizeof(int));

    if (pool->conninfo == NULL || pool->slots == NULL
        || pool->free_list == NULL)
    {
        goto failed;
    }

    pool->size = size;
    pool->log = log ? log : newcore_log_none;
    pool->log_ctx = log_ctx;

    for (i = 0; i < size; i++) {
        pool->free_list[i] = size - 1 - i;
    }
    pool->nfree = size;

    pthread_mutex_init(&pool->lock, NULL);
    return pool;

failed:

    if (pool != NULL) {
        free(pool->conninfo);
        free(pool->slots);
        free(pool->free_list);
        free(pool);
    }
    newcore_error_set(err, 500, "internal", "out of memory");
    return NULL;
}


void
newcore_pool_free(newcore_pool_t *pool)
{
    int  i;

    if (pool == NULL) {
        return;
    }

    for (i = 0; i < pool->size; i++) {
        if (pool->slots[i].pg != NULL) {
            PQfinish(pool->slots[i].pg);
        }
    }

    pthread_mutex_destroy(&pool->lock);
    free(pool->conninfo);
    free(pool->slots);
    free(pool->free_list);
    free(pool);
}


static void
newcore_pool_set_down(newcore_pool_t *pool, int down, const char *why)
{
    int  was;

    pthread_mutex_lock(&pool->lock);
    was = pool->down;
    pool->down = down;
    pthread_mutex_unlock(&pool->lock);

    if (down && !was) {
        pool->log(pool->log_ctx, "ERROR", "database unavailable: %s", why);
    } else if (!down && was) {
        pool->log(pool->log_ctx, "INFO", "database available again");
    }
}


static void
newcore_db_error(PGconn *conn, const char *what, newcore_error_t *err)
{
    const char  *msg;
    size_t       len;
    char         line[200];

    msg = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(line, sizeof(line), "%s", msg);
    len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' ')) {
        line[--len] = '\0';
    }

    newcore_error_set(err, 503, "unavailable", "%s: %s", what, line);
}


/* conninfo with a connect timeout unless it names one itself. */
static PGconn *
newcore_db_connect(const char *conninfo)
{
    const char  *keys[] = { "connect_timeout", "dbname", NULL };
    const char  *values[] = { "5", conninfo, NULL };

    return PQconnectdbParams(keys, values, 1);
}


/* A connection for a one-shot task (schema, seed, ledger check), or NULL
 * with err set. */
static PGconn *
newcore_db_open(const char *conninfo, newcore_error_t *err)
{
    PGconn  *conn = newcore_db_connect(conninfo);

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        newcore_db_error(conn, "cannot connect to the database", err);
        PQfinish(conn);
        return NULL;
    }

    return conn;
}


static int
newcore_slot_open(newcore_pool_t *pool, newcore_slot_t *slot,
    newcore_error_t *err)
{
    int        i;
    PGresult  *res;

    slot->ready = 0;

    if (slot->pg != NULL) {
        PQreset(slot->pg);
    } else {
        slot->pg = newcore_db_connect(pool->conninfo);
    }

    if (slot->pg == NULL || PQstatus(slot->pg) != CONNECTION_OK) {
        newcore_db_error(slot->pg, "cannot connect to the database", err);
        newcore_pool_set_down(pool, 1, err->message);
        return NEWCORE_ERROR;
    }

    /*
     * The order functions take arrays: with custom plans PostgreSQL would
     * plan their statements again on every call (half the CPU of an order).
     * No request waits on a lock for ever.
     */
    res = PQexec(slot->pg, "SET plan_cache_mode = force_generic_plan;"
                           " SET statement_timeout = '30s'");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        PQclear(res);
        newcore_db_error(slot->pg, "cannot set up the session", err);
        newcore_pool_set_down(pool, 1, err->message);
        return NEWCORE_ERROR;
    }
    PQclear(res);

    for (i = 0; i < NEWCORE_STMT_COUNT; i++) {
        res = PQprepare(slot->pg, newcore_stmts[i].name, newcore_stmts[i].sql,
                        0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            PQclear(res);
            newcore_db_error(slot->pg, "cannot prepare statements (was "
                             "--init-schema run?)", err);
            newcore_pool_set_down(pool, 1, err->message);
            PQfinish(slot->pg);
            slot->pg = NULL;
            return NEWCORE_ERROR;
        }
        PQclear(res);
    }

    slot->ready = 1;
    newcore_pool_set_down(pool, 0, NULL);
    return NEWCORE_OK;
}


/*
 * A free connection, or the next one released: handed over directly in
 * arrival order, so a request never waits behind later ones (a condition
 * variable alone lets newcomers overtake, which stretches the p99).
 */
static int
newcore_pool_take(newcore_pool_t *pool)
{
    int               idx;
    newcore_waiter_t  w;

    pthread_mutex_lock(&pool->lock);

    if (pool->nfree > 0) {
        idx = pool->free_list[--pool->nfree];
        pthread_mutex_unlock(&pool->lock);
        return idx;
    }

    pthread_cond_init(&w.cond, NULL);
    w.slot = -1;
    w.next = NULL;

    if (pool->last != NULL) {
        pool->last->next = &w;
    } else {
        pool->first = &w;
    }
    pool->last = &w;

    while (w.slot < 0) {
        pthread_cond_wait(&w.cond, &pool->lock);
    }

    pthread_mutex_unlock(&pool->lock);
    pthread_cond_destroy(&w.cond);
    return w.slot;
}


static void
newcore_pool_put(newcore_pool_t *pool, int idx)
{
    newcore_waiter_t  *w;

    pthread_mutex_lock(&pool->lock);

    w = pool->first;
    if (w != NULL) {
        pool->first = w->next;
        if (pool->first == NULL) {
            pool->last = NULL;
        }
        w->slot = idx;
        pthread_cond_signal(&w->cond);
    } else {
        pool->free_list[pool->nfree++] = idx;
    }

    pthread_mutex_unlock(&pool->lock);
}


PGconn *
newcore_pool_acquire(newcore_pool_t *pool, newcore_error_t *err)
{
    int              idx;
    newcore_slot_t  *slot;

    idx = newcore_pool_take(pool);
    slot = &pool->slots[idx];

    /* notice a connection the server closed (restart) before using it */
    if (slot->pg != NULL
        && (PQconsumeInput(slot->pg) == 0
            || PQstatus(slot->pg) != CONNECTION_OK))
    {
        slot->ready = 0;
    }

    if (!slot->ready && newcore_slot_open(pool, slot, err) != NEWCORE_OK) {
        newcore_pool_put(pool, idx);
        return NULL;
    }

    return slot->pg;
}


void
newcore_pool_release(newcore_pool_t *pool, PGconn *conn)
{
    int  i;

    if (conn == NULL) {
        return;
    }

    for (i = 0; i < pool->size; i++) {
        if (pool->slots[i].pg == conn) {
            break;
        }
    }

    if (i == pool->size) {
        return;
    }

    if (PQstatus(conn) != CONNECTION_OK
        || PQtransactionStatus(conn) != PQTRANS_IDLE)
    {
        pool->slots[i].ready = 0;
    }

    newcore_pool_put(pool, i);
}


PGresult *
newcore_db_exec(PGconn *conn, newcore_stmt_e stmt, int nparams,
    const char *const *values, newcore_error_t *err)
{
    PGresult  *res;

    const char  *state;
    int          retry;

    res = PQexecPrepared(conn, newcore_stmts[stmt].name, nparams, values,
                         NULL, NULL, 0);

    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        return res;
    }

    /*
     * Worth a retry by the client (503): connection trouble (08), a
     * rollback by the server (40: deadlock, serialization), resources (53),
     * operator intervention (57: statement timeout, shutdown).
     */
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    retry = state != NULL && (strncmp(state, "08", 2) == 0
                              || strncmp(state, "40", 2) == 0
                              || strncmp(state, "53", 2) == 0
                              || strncmp(state, "57", 2) == 0);
    PQclear(res);

    if (PQstatus(conn) != CONNECTION_OK) {
        newcore_db_error(conn, "database connection lost", err);
    } else {
        newcore_db_error(conn, newcore_stmts[stmt].name, err);
        if (!retry) {
            err->code = 500;
            snprintf(err->name, sizeof(err->name), "internal");
        }
    }

    return NULL;
}


int
newcore_db_init_schema(const char *conninfo, newcore_error_t *err)
{
    int        rc;
    PGconn    *conn;
    PGresult  *res;

    rc = NEWCORE_ERROR;
    res = NULL;

    conn = newcore_db_open(conninfo, err);
    if (conn == NULL) {
        goto cleanup;
    }

    /* a fixed script with no input in it: the simple query protocol */
    res = PQexec(conn, newcore_schema_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        newcore_db_error(conn, "schema.sql failed", err);
        err->code = 500;
        goto cleanup;
    }

    rc = NEWCORE_OK;

cleanup:

    PQclear(res);
    PQfinish(conn);
    return rc;
}


int
newcore_db_seed(const char *conninfo, int *loaded, newcore_error_t *err)
{
    int        rc;
    PGconn    *conn;
    PGresult  *res;

    rc = NEWCORE_ERROR;
    res = NULL;

    conn = newcore_db_open(conninfo, err);
    if (conn == NULL) {
        goto cleanup;
    }

    res = PQexecParams(conn, "SELECT newcore.seed()", 0, NULL, NULL, NULL,
                       NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        newcore_db_error(conn, "seed failed", err);
        err->code = 500;
        goto cleanup;
    }

    *loaded = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    rc = NEWCORE_OK;

cleanup:

    PQclear(res);
    PQfinish(conn);
    return rc;
}


int
newcore_db_check_ledger(const char *conninfo, newcore_ledger_check_t *check,
    newcore_error_t *err)
{
    int        rc, i;
    long long *out[9];
    PGconn    *conn;
    PGresult  *res;

    static const char  sql[] =
        "SELECT (SELECT count(*) FROM newcore.stock),"
        " (SELECT coalesce(sum(on_hand), 0) FROM newcore.stock),"
        " (SELECT count(*) FROM newcore.stock s LEFT JOIN"
        "   (SELECT store_id, sku, sum(delta) AS d FROM newcore.ledger"
        "    WHERE kind = 'stock' GROUP BY store_id, sku) l"
        "   USING (store_id, sku) WHERE coalesce(l.d, 0) <> s.on_hand),"
        " (SELECT count(*) FROM newcore.members),"
        " (SELECT coalesce(sum(points), 0) FROM newcore.members),"
        " (SELECT count(*) FROM newcore.members m LEFT JOIN"
        "   (SELECT member_id, sum(delta) AS d FROM newcore.ledger"
        "    WHERE kind = 'points' GROUP BY member_id) l"
        "   USING (member_id) WHERE coalesce(l.d, 0) <> m.points),"
        " (SELECT count(*) FROM newcore.orders),"
        " (SELECT coalesce(sum(total_fen), 0) FROM newcore.orders"
        "   WHERE status = 'paid'),"
        " (SELECT count(*) FROM newcore.orders o"
        "  LEFT JOIN (SELECT order_id, sum(delta) AS d FROM newcore.ledger"
        "   WHERE kind = 'money' GROUP BY order_id) l USING (order_id)"
        "  LEFT JOIN (SELECT order_id, sum(CASE kind WHEN 'charge'"
        "   THEN amount_fen ELSE -amount_fen END) AS p"
        "   FROM newcore.payments GROUP BY order_id) p USING (order_id)"
        "  WHERE coalesce(l.d, 0) <> coalesce(p.p, 0)"
        "   OR coalesce(l.d, 0) <> CASE o.status WHEN 'paid'"
        "      THEN o.total_fen ELSE 0 END)";

    rc = NEWCORE_ERROR;
    res = NULL;

    conn = newcore_db_open(conninfo, err);
    if (conn == NULL) {
        goto cleanup;
    }

    res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        newcore_db_error(conn, "ledger check failed", err);
        err->code = 500;
        goto cleanup;
    }

    out[0] = &check->stock_rows;
    out[1] = &check->stock_units;
    out[2] = &check->stock_off;
    out[3] = &check->members;
    out[4] = &check->points;
    out[5] = &check->points_off;
    out[6] = &check->orders;
    out[7] = &check->paid_fen;
    out[8] = &check->money_off;

    for (i = 0; i < 9; i++) {
        *out[i] = atoll(PQgetvalue(res, 0, i));
    }

    rc = NEWCORE_OK;

cleanup:

    PQclear(res);
    PQfinish(conn);
    return rc;
}
