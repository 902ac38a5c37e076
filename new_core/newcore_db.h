/* PostgreSQL for the core: a connection pool with prepared statements that
 * reconnects after a restart, schema installation and the demo seed. */

#ifndef NEWCORE_DB_H
#define NEWCORE_DB_H

#include <libpq-fe.h>

#include "new_core/newcore_buf.h"

typedef struct newcore_pool_s  newcore_pool_t;

/* Event reporter: level is "INFO", "WARN" or "ERROR". */
typedef void (*newcore_log_pt)(void *ctx, const char *level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The prepared statements every pooled connection holds. */
typedef enum {
    NEWCORE_STMT_HEALTH = 0,
    NEWCORE_STMT_QUOTE,
    NEWCORE_STMT_PLACE,
    NEWCORE_STMT_CANCEL,
    NEWCORE_STMT_ADJUST,
    NEWCORE_STMT_ORDER_GET,
    NEWCORE_STMT_STOCK_GET,
    NEWCORE_STMT_MEMBER_GET,
    NEWCORE_STMT_COUNT
} newcore_stmt_e;

/* The schema.sql text, compiled in. */
extern const char newcore_schema_sql[];

/*
 * A pool of `size` connections, opened lazily (and again after a failure),
 * so the core starts and keeps running while PostgreSQL is down.  log may
 * be NULL.  Free with newcore_pool_free().
 */
newcore_pool_t *newcore_pool_new(const char *conninfo, int size,
    newcore_log_pt log, void *log_ctx, newcore_error_t *err);
void newcore_pool_free(newcore_pool_t *pool);

/*
 * A connected connection with every statement prepared, or NULL with err
 * set to 503 unavailable.  Blocks while all connections are in use.  Give
 * it back with newcore_pool_release().
 */
PGconn *newcore_pool_acquire(newcore_pool_t *pool, newcore_error_t *err);
void newcore_pool_release(newcore_pool_t *pool, PGconn *conn);

/*
 * Runs a prepared statement; returns the result (caller PQclear()s it) when
 * its status is PGRES_TUPLES_OK, else NULL with err set: 503 unavailable
 * when the connection broke (the pool reconnects it on next use) or the
 * server gave up on the statement (timeout, deadlock, shutdown), 500
 * internal otherwise.  NULL values are NULL pointers.
 */
PGresult *newcore_db_exec(PGconn *conn, newcore_stmt_e stmt, int nparams,
    const char *const *values, newcore_error_t *err);

/* Applies schema.sql (create or migrate) over a connection of its own. */
int newcore_db_init_schema(const char *conninfo, newcore_error_t *err);

/* Loads the demo data set; *loaded is 0 when it was there already. */
int newcore_db_seed(const char *conninfo, int *loaded, newcore_error_t *err);

/* The ledger invariant, checked over the whole database. */
typedef struct {
    long long  stock_rows;
    long long  stock_units;
    long long  stock_off;       /* store/SKUs whose entries != on_hand */
    long long  members;
    long long  points;
    long long  points_off;      /* members whose entries != points */
    long long  orders;
    long long  paid_fen;
    long long  money_off;       /* orders whose entries != paid - refunded */
} newcore_ledger_check_t;

/* Fills check; the ledger balances when every *_off is 0. */
int newcore_db_check_ledger(const char *conninfo,
    newcore_ledger_check_t *check, newcore_error_t *err);

#endif /* NEWCORE_DB_H */
