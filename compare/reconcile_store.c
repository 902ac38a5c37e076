/*
 * reconcile_store: cutover-reconcile's runs in the comparison result store
 * (compare/reconcile_schema.sql), and the "ledgers" report read from them.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/cutover_embed.h"
#include "compare/reconcile.h"
#include "compare/reconcile_report.h"

CUTOVER_EMBED_FILE(reconcile_schema_sql, "compare/reconcile_schema.sql");
extern const char reconcile_schema_sql[];

/* the latest run of each ledger in the window, and its differences */
#define RECONCILE_LATEST                                                     \
    "WITH latest AS (SELECT DISTINCT ON (l.ledger) l.*, r.finished_at,"      \
    " r.status FROM reconcile_ledgers l JOIN reconcile_runs r USING (run_id)" \
    " WHERE ($1::timestamptz IS NULL OR r.finished_at >= $1::timestamptz)"   \
    " AND ($2::timestamptz IS NULL OR r.finished_at < $2::timestamptz)"      \
    " ORDER BY l.ledger, r.run_id DESC)"

static void reconcile_quiet(void *arg, const char *message);
static int reconcile_cmd(PGconn *conn, const char *sql, int n,
    const char *const *params, cutover_error_t *err);


static void
reconcile_quiet(void *arg, const char *message)
{
    (void) arg;
    (void) message;
}


static int
reconcile_cmd(PGconn *conn, const char *sql, int n, const char *const *params,
    cutover_error_t *err)
{
    int        ok;
    PGresult  *res;

    res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK
         || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) {
        cutover_error_set(err, "results", "result store: %.*s",
                          (int) strcspn(PQerrorMessage(conn), "\n"),
                          PQerrorMessage(conn));
    }
    PQclear(res);
    return ok ? RECONCILE_OK : RECONCILE_ERROR;
}


int
reconcile_schema_apply(PGconn *conn, cutover_error_t *err)
{
    int        ok;
    PGresult  *res;

    PQsetNoticeProcessor(conn, reconcile_quiet, NULL);
    if (reconcile_cmd(conn, "BEGIN", 0, NULL, err) != RECONCILE_OK) {
        return RECONCILE_ERROR;
    }
    ok = reconcile_cmd(conn, "SELECT pg_advisory_xact_lock(72620432)", 0,
                       NULL, err) == RECONCILE_OK;
    if (ok) {
        /* DDL without parameters, from the versioned schema file */
        res = PQexec(conn, reconcile_schema_sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) {
            cutover_error_set(err, "results", "result store: schema: %.*s",
                              (int) strcspn(PQerrorMessage(conn), "\n"),
                              PQerrorMessage(conn));
        }
        PQclear(res);
    }
    if (reconcile_cmd(conn, ok ? "COMMIT" : "ROLLBACK", 0, NULL,
                      ok ? err : NULL) != RECONCILE_OK)
    {
        return RECONCILE_ERROR;
    }
    return ok ? RECONCILE_OK : RECONCILE_ERROR;
}


/*
 * The run, its ledgers and listed differences in one transaction; with
 * failure set, only the run, marked failed with that message.
 */
int
reconcile_store_write(const char *conninfo, const reconcile_run_t *run,
    const char *failure, cutover_error_t *err)
{
    int                               i, rc;
    size_t                            k;
    char                              settle[24], secs[32], num[6][24];
    char                              run_id[24];
    const char                       *p[9];
    PGconn                           *conn;
    PGresult                         *res;
    const reconcile_diff_t           *d;
    const reconcile_ledger_result_t  *r;

    conn = PQconnectdb(conninfo);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        cutover_error_set(err, "results", "cannot connect to the result"
                          " store: %.*s", conn
                          ? (int) strcspn(PQerrorMessage(conn), "\n") : 13,
                          conn ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        return RECONCILE_ERROR;
    }
    rc = RECONCILE_ERROR;
    if (reconcile_schema_apply(conn, err) != RECONCILE_OK
        || reconcile_cmd(conn, "BEGIN", 0, NULL, err) != RECONCILE_OK)
    {
        goto done;
    }

    snprintf(settle, sizeof(settle), "%llu",
             (unsigned long long) run->cfg.settle_ms);
    snprintf(secs, sizeof(secs), "%.3f", run->seconds);
    p[0] = run->started_at;
    p[1] = failure ? "failed"
           : reconcile_total_differences(run) > 0 ? "differ" : "agree";
    p[2] = failure;
    p[3] = run->cfg.stores;
    p[4] = settle;
    p[5] = secs;
    res = PQexecParams(conn, "INSERT INTO reconcile_runs (started_at, status,"
                       " error, stores, settle_ms, seconds) VALUES ($1, $2,"
                       " $3, $4, $5, $6) RETURNING run_id", 6, NULL, p, NULL,
                       NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cutover_error_set(err, "results", "result store: %.*s",
                          (int) strcspn(PQerrorMessage(conn), "\n"),
                          PQerrorMessage(conn));
        PQclear(res);
        goto rollback;
    }
    snprintf(run_id, sizeof(run_id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    for (i = 0; failure == NULL && run->map != NULL && i < run->nsel; i++)
    {
        r = &run->res[i];
        snprintf(num[0], 24, "%lld", (long long) r->rows[0]);
        snprintf(num[1], 24, "%lld", (long long) r->rows[1]);
        snprintf(num[2], 24, "%lld", (long long) r->differences);
        snprintf(num[3], 24, "%lld", (long long) r->listed);
        snprintf(num[4], 24, "%lld", (long long) r->rows_fetched);
        snprintf(num[5], 24, "%.3f", r->seconds);
        p[0] = run_id;
        p[1] = run->map->ledgers[run->sel[i]].name;
        p[2] = num[0];
        p[3] = num[1];
        p[4] = num[2];
        p[5] = num[3];
        p[6] = num[4];
        p[7] = num[5];
        if (reconcile_cmd(conn, "INSERT INTO reconcile_ledgers (run_id,"
                          " ledger, rows_new, rows_legacy, differences,"
                          " listed, rows_fetched, seconds) VALUES ($1, $2,"
                          " $3, $4, $5, $6, $7, $8)", 8, p, err)
            != RECONCILE_OK)
        {
            goto rollback;
        }
    }
    for (k = 0; failure == NULL && k < run->ndiffs; k++) {
        d = &run->diffs[k];
        p[0] = run_id;
        p[1] = run->map->ledgers[d->ledger].name;
        p[2] = reconcile_kind_name[d->kind];
        p[3] = d->key;
        p[4] = d->val[0];
        p[5] = d->val[1];
        if (reconcile_cmd(conn, "INSERT INTO reconcile_differences (run_id,"
                          " ledger, kind, key, new, legacy) VALUES ($1, $2,"
                          " $3, $4, $5, $6)", 6, p, err) != RECONCILE_OK)
        {
            goto rollback;
        }
    }
    rc = reconcile_cmd(conn, "COMMIT", 0, NULL, err);
    goto done;

rollback:
    reconcile_cmd(conn, "ROLLBACK", 0, NULL, NULL);

done:
    PQfinish(conn);
    return rc;
}


PGresult *
reconcile_report_query(PGconn *conn, const char *since, const char *until,
    cutover_error_t *err)
{
    const char  *p[2];
    PGresult    *res;

    if (reconcile_schema_apply(conn, err) != RECONCILE_OK) {
        return NULL;
    }
    p[0] = since;
    p[1] = until;
    res = PQexecParams(conn, RECONCILE_LATEST
        " SELECT la.ledger, la.run_id, to_char(la.finished_at AT TIME ZONE"
        " 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS at,"
        " CASE WHEN la.differences > 0 THEN 'differ' ELSE 'agree' END"
        " AS status,"
        " la.rows_new, la.rows_legacy, la.differences, la.rows_fetched,"
        " la.seconds, d.kind, d.key, d.new, d.legacy, NULL::text AS error"
        " FROM latest la LEFT JOIN reconcile_differences d"
        " ON d.run_id = la.run_id AND d.ledger = la.ledger"
        " UNION ALL"
        " SELECT NULL, r.run_id, to_char(r.finished_at AT TIME ZONE 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), r.status, NULL, NULL, NULL,"
        " NULL, r.seconds, NULL, NULL, NULL, NULL, r.error"
        " FROM reconcile_runs r WHERE r.status = 'failed' AND r.run_id ="
        " (SELECT max(run_id) FROM reconcile_runs x"
        "  WHERE ($1::timestamptz IS NULL OR x.finished_at >= $1::timestamptz)"
        "  AND ($2::timestamptz IS NULL OR x.finished_at < $2::timestamptz))"
        " ORDER BY 1 NULLS LAST, 10 NULLS FIRST, 11",
        2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cutover_error_set(err, "report", "ledgers: %.*s",
                          (int) strcspn(PQerrorMessage(conn), "\n"),
                          PQerrorMessage(conn));
        PQclear(res);
        return NULL;
    }
    return res;
}


long long
reconcile_report_differences(PGconn *conn, const char *since,
    const char *until, cutover_error_t *err)
{
    long long    n;
    const char  *p[2];
    PGresult    *res;

    p[0] = since;
    p[1] = until;
    res = PQexecParams(conn, RECONCILE_LATEST
                       " SELECT coalesce(sum(differences), 0) FROM latest",
                       2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cutover_error_set(err, "report", "ledgers: %.*s",
                          (int) strcspn(PQerrorMessage(conn), "\n"),
                          PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}
