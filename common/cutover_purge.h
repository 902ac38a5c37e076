/*
 * cutover_purge: a background thread that deletes expired rows in small
 * batches over a PostgreSQL connection of its own (the stored idempotent
 * answers of cutover-newcore and legacy-store-sim).
 */

#ifndef CUTOVER_PURGE_H
#define CUTOVER_PURGE_H

#include <stdint.h>

#define CUTOVER_PURGE_BATCH  1000

typedef struct cutover_purge_s  cutover_purge_t;

/*
 * Every min(ttl / 4, 60) seconds (at least 1) runs sql with $1 = ttl in
 * seconds and $2 = CUTOVER_PURGE_BATCH until a run deletes fewer rows than
 * a batch.  sql deletes at most $2 rows older than $1 seconds, e.g.
 *   DELETE FROM t WHERE ctid IN (SELECT ctid FROM t WHERE created_at <
 *   now() - make_interval(secs => $1) LIMIT $2)
 * Each batch is its own short transaction, so writers never wait behind a
 * whole purge.  One log line per round that deleted rows ("purged N <what>
 * older than <ttl>"); failures are logged and retried next round.  NULL
 * when the thread cannot start.  The strings are copied.
 */
cutover_purge_t *cutover_purge_start(const char *program,
    const char *conninfo, const char *what, const char *sql, uint64_t ttl);
void cutover_purge_stop(cutover_purge_t *purge);

/* Rows deleted so far. */
uint64_t cutover_purge_total(cutover_purge_t *purge);

#endif /* CUTOVER_PURGE_H */
