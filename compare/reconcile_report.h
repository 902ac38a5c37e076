/*
 * reconcile_report: the "ledgers" report of cutover-report, from the runs
 * cutover-reconcile --results stored.
 */

#ifndef RECONCILE_REPORT_H
#define RECONCILE_REPORT_H

#include <libpq-fe.h>

#include "common/cutover_error.h"

/* Applies compare/reconcile_schema.sql; RECONCILE_OK or RECONCILE_ERROR. */
int reconcile_schema_apply(PGconn *conn, cutover_error_t *err);

/* Per ledger its latest run in the window (since/until: timestamptz text
 * or NULL) with its listed differences, a row each; and the latest run
 * when it failed.  A PGRES_TUPLES_OK result or NULL with err set. */
PGresult *reconcile_report_query(PGconn *conn, const char *since,
    const char *until, cutover_error_t *err);

/* The differences of those latest runs together; -1 on error. */
long long reconcile_report_differences(PGconn *conn, const char *since,
    const char *until, cutover_error_t *err);

#endif /* RECONCILE_REPORT_H */
