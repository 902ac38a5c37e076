/*
 * cutover_guard: the guard's arithmetic: a sliding window of one-second
 * buckets (requests, errors, a latency histogram), its sum, the p99 from
 * the histogram, the thresholds and the reason of a trip.
 *
 * Plain C without nginx headers, so that the unit tests and cutover-shadowd
 * use the same code as the module.  The buckets hold no pointers and are
 * counted with atomic adds: they live in the zone's shared memory, written
 * by every worker at once without a lock.
 */

#ifndef CUTOVER_GUARD_H
#define CUTOVER_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_error.h"

/* Latency histogram: bucket 0 holds 0 ms, bucket i >= 1 holds
 * [1.1^(i-1), 1.1^i) ms, the last one everything above: a value read
 * from it as the bucket's geometric middle is within 5 % of the truth. */
#define CUTOVER_GUARD_HIST          128
#define CUTOVER_GUARD_WINDOW_MAX    300      /* seconds */

#define CUTOVER_GUARD_ROLLBACK      0
#define CUTOVER_GUARD_ALERT         1

#define CUTOVER_GUARD_OK            0
#define CUTOVER_GUARD_ERROR_RATE    1
#define CUTOVER_GUARD_LATENCY       2
#define CUTOVER_GUARD_MISMATCH      3

typedef struct {
    uint32_t  sec;                 /* the second it counts, 0: none */
    uint32_t  requests;
    uint32_t  errors;
    uint32_t  hist[CUTOVER_GUARD_HIST];
} cutover_guard_bucket_t;

/* One rule's window: window + 2 buckets (the seconds of the window, the
 * current one, and the next one, cleared ahead of time). */
typedef struct {
    uint32_t                since;     /* seconds <= since do not count */
    uint32_t                nbuckets;
    cutover_guard_bucket_t  b[1];      /* nbuckets of them */
} cutover_guard_window_t;

/* What a window holds. */
typedef struct {
    uint64_t  requests;
    uint64_t  errors;
    uint64_t  hist[CUTOVER_GUARD_HIST];
} cutover_guard_sum_t;

/* The thresholds of a guard; 0 means "not checked". */
typedef struct {
    uint32_t  error_rate_bp;       /* basis points of requests, 1..10000 */
    uint32_t  latency_ms;          /* p99 */
    uint32_t  mismatch_bp;
    uint32_t  window;              /* seconds, 1..CUTOVER_GUARD_WINDOW_MAX */
    uint32_t  min_requests;
    int       action;
} cutover_guard_conf_t;

/* Bytes of one rule's window for a window of `seconds`. */
size_t cutover_guard_window_size(uint32_t seconds);

/* Sets up a zeroed window. */
void cutover_guard_window_init(cutover_guard_window_t *w, uint32_t seconds);

/* Clears the buckets of the seconds after `last` up to and including
 * now + 1 that still hold older seconds (after an idle gap, all of them),
 * so that writers of second `now` and `now + 1` find their bucket ready.
 * Called by one process at a time, once a second. */
void cutover_guard_rotate(cutover_guard_window_t *w, uint32_t last,
    uint32_t now);

/* Counts one request of second `now` (atomic adds).  Returns 0 when the
 * bucket of `now` was not ready (it is then not counted). */
int cutover_guard_add(cutover_guard_window_t *w, uint32_t now, int error,
    uint64_t ms);

/* Sums the seconds now - window + 1 .. now that are after w->since. */
void cutover_guard_sum(const cutover_guard_window_t *w, uint32_t now,
    uint32_t window, cutover_guard_sum_t *sum);

/* Starts the window afresh: only seconds after `now` count. */
void cutover_guard_restart(cutover_guard_window_t *w, uint32_t now);

/* Histogram bucket of a latency, and the latency a bucket stands for. */
unsigned cutover_guard_hist_index(uint64_t ms);
double cutover_guard_hist_value(unsigned index);

/* The pct-th percentile (0 < pct <= 100) of the histogram in ms, 0 when
 * it is empty. */
double cutover_guard_percentile(const uint64_t *hist, double pct);

/* Error rate of a sum in percent. */
double cutover_guard_error_rate(const cutover_guard_sum_t *sum);

/* Checks a sum against the thresholds: CUTOVER_GUARD_OK or what was
 * crossed; on a crossing the reason, e.g. "guard: error_rate 7.5% > 2%
 * over 30s on rule default (412 requests)", goes to reason. */
int cutover_guard_check(const cutover_guard_conf_t *conf,
    const cutover_guard_sum_t *sum, const char *rule, char *reason,
    size_t cap);

/* The mismatch check (shadowd): pairs and pairs with a difference. */
int cutover_guard_check_mismatch(const cutover_guard_conf_t *conf,
    uint64_t pairs, uint64_t differing, const char *rule, char *reason,
    size_t cap);

/* Reason names for metrics: "error_rate", "latency", "mismatch". */
const char *cutover_guard_reason_name(int verdict);

/* "30s", "10m", "2h", "45" (seconds) -> seconds; -1 on anything else. */
int64_t cutover_duration_parse(const char *s, size_t len);

/* "800ms", "1.5s", "2s" -> milliseconds; -1 on anything else. */
int64_t cutover_msec_parse(const char *s, size_t len);

/* One "name=value" parameter of cutover_guard (or of the shadowd guard:
 * "mismatch", "window", "min_pairs"); -1 with err when bad. */
int cutover_guard_param(cutover_guard_conf_t *conf, const char *s,
    size_t len, cutover_error_t *err);

/* Checks a parsed configuration (a window, some threshold). */
int cutover_guard_conf_check(const cutover_guard_conf_t *conf,
    cutover_error_t *err);

#endif /* CUTOVER_GUARD_H */
