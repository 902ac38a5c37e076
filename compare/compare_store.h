/*
 * compare_store: internals shared by the result store and cutover-report.
 */

#ifndef COMPARE_STORE_H
#define COMPARE_STORE_H

#include <libpq-fe.h>

#include "compare/compare.h"

#define COMPARE_SCHEMA_VERSION      1
#define COMPARE_OUTBOX_MAX_RECORDS  1000000

extern const char compare_schema_sql[];

/* Create or migrate the schema on an open connection; 0 or -1. */
int compare_schema_apply(PGconn *conn, compare_error_t *err);

/* A libpq notice processor that drops notices. */
void compare_quiet(void *arg, const char *message);

/* Bound the outbox (records); beyond it compare_store_flush() fails and
 * keeps the queue, so the caller does not checkpoint. */
void compare_store_set_outbox_limit(compare_store_t *store, uint64_t max);

#endif /* COMPARE_STORE_H */
