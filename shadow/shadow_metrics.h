/*
 * shadow_metrics: cutover-shadowd's counters and their Prometheus text
 * endpoint (libmicrohttpd, its own thread).
 */

#ifndef SHADOW_METRICS_H
#define SHADOW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "shadow/shadow_guard.h"
#include "shadow/shadow_reader.h"

#define SHADOW_STATS_ZONES  8       /* zones told apart; then "other" */

/* Compared pairs of one zone by the side that served the primary
 * (0 legacy, 1 new) and verdict (compare_verdict_t order). */
typedef struct {
    char      zone[33];
    uint64_t  pairs[2][4];
} shadow_zone_stats_t;

/* Why a replay attempt is tried again. */
typedef enum {
    SHADOW_RETRY_CONNECT = 0,   /* no connection to the other side */
    SHADOW_RETRY_TIMEOUT,       /* no answer within timeout_ms */
    SHADOW_RETRY_TRANSPORT,     /* another transport error */
    SHADOW_RETRY_502,
    SHADOW_RETRY_503,
    SHADOW_RETRY_504,
    SHADOW_RETRY_429,
    SHADOW_RETRY_IN_PROGRESS,   /* 409 idempotency_in_progress */
    SHADOW_RETRY_5XX,           /* another 5xx: at most "retries" times */
    SHADOW_RETRY_REASONS
} shadow_retry_reason_t;

extern const char *shadow_retry_reason_names[SHADOW_RETRY_REASONS];

typedef struct {
    uint64_t  read;             /* records read from the log */
    uint64_t  replayed;         /* replays the shadow answered */
    uint64_t  failed;           /* given up after "retries" */
    uint64_t  retried;          /* attempts retried */
    uint64_t  primary_refused;  /* writes the primary refused: not replayed */
    uint64_t  indeterminate;    /* writes of unknown outcome: not replayed */
    uint64_t  dead_lettered;    /* moved to the dead-letter store */
    uint64_t  dl_replays;       /* dead letters replayed by an operator */
    uint64_t  corrupt_records;  /* read but undecodable */
    uint64_t  retries_by[SHADOW_RETRY_REASONS];
    int64_t   retrying_by[SHADOW_RETRY_REASONS];  /* waiting now, by reason */
    int64_t   retrying;         /* records waiting for their next attempt */
    double    oldest_wait_seconds;  /* since the first failed attempt of
                                       the oldest record still waiting */
    int64_t   parked_keys;      /* keys held in the dead-letter store */
    int64_t   parking;          /* records waiting to be written there */
    int64_t   inflight;         /* requests on the wire */
    uint64_t  corrupt;          /* corrupt frames / records skipped */
    uint64_t  lost;             /* passed without replay or stored result */
    int64_t   lag_records;      /* read, not yet durable */
    uint64_t  lag_bytes;        /* log bytes not yet read */
    double    lag_seconds;      /* now - time of oldest unfinished */
    uint64_t  equal;
    uint64_t  different;
    uint64_t  unparseable;
    uint64_t  shadow_failed;
    uint64_t  store_pending;
    uint64_t  ckpt_seq;
    uint64_t  ckpt_off;
    double    cpu_seconds;      /* the daemon's own user + system CPU */
    int       nice;             /* its scheduling niceness */
    int       sched_idle;       /* it runs under SCHED_IDLE */
    unsigned             nzones;
    shadow_zone_stats_t  zones[SHADOW_STATS_ZONES];
    shadow_guard_stats_t guard;
} shadow_stats_t;

/* Counts one compared pair of zone (served by side "new" or not) with the
 * verdict v (0 equal, 1 different, 2 unparseable, 3 shadow failed). */
void shadow_stats_count_pair(shadow_stats_t *s, const cutover_str_t *zone,
    int served_new, unsigned v);

typedef struct shadow_metrics_s  shadow_metrics_t;

/* Listen on "host:port", serving `initial` until the first publish (so a
 * scrape right after start sees the lag already there, not zeros); NULL
 * and err on failure.  Stop with shadow_metrics_stop() (NULL-safe). */
shadow_metrics_t *shadow_metrics_start(const char *listen,
    const shadow_stats_t *initial, shadow_error_t *err);
void shadow_metrics_publish(shadow_metrics_t *m, const shadow_stats_t *s);
void shadow_metrics_stop(shadow_metrics_t *m);

/* The Prometheus text of s into buf; returns its length (truncated to
 * cap - 1). */
size_t shadow_metrics_render(const shadow_stats_t *s, char *buf,
    size_t cap);

#endif /* SHADOW_METRICS_H */
