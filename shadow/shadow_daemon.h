/*
 * shadow_daemon: cutover-shadowd's engine: tails the dual-run log, replays
 * each record on the side that did not serve it (libcurl multi, per-key
 * order), hands pairs to compare/, checkpoints the durable prefix, serves
 * Prometheus metrics (libmicrohttpd).
 */

#ifndef SHADOW_DAEMON_H
#define SHADOW_DAEMON_H

#include <signal.h>
#include <stdint.h>

#include "shadow/shadow_reader.h"

typedef enum {
    SHADOW_ORDER_STORE = 0,     /* records of one store in log order */
    SHADOW_ORDER_STORE_CHANNEL,
    SHADOW_ORDER_KEY            /* the routing key of the record */
} shadow_order_t;

typedef struct {
    char            *log;
    char            *checkpoint;
    char            *new_url;
    char            *legacy_url;
    char            *rules;           /* NULL: no comparison rules */
    char            *results_db;      /* NULL: outbox only */
    char            *outbox;
    char            *metrics_listen;  /* NULL: no metrics server */
    int              concurrency;
    int              timeout_ms;
    int              retries;
    int              backoff_ms;      /* first retry delay, doubles */
    int              poll_ms;
    int              grace_ms;        /* segment straggler window */
    int              flush_ms;        /* store flush + checkpoint period */
    int              window;          /* records held before checkpoint */
    int              window_mb;       /* and their bytes, MiB */
    double           rate_limit;      /* replays per second, 0 = none */
    int              delete_consumed;
    shadow_order_t   order_key;
    size_t           body_limit;      /* shadow body kept for comparing */
} shadow_config_t;

/* Parse the JSON configuration file (SPEC.md "cutover-shadowd
 * configuration"); unknown keys are an error naming the key.  Release
 * with shadow_config_clear(). */
int shadow_config_load(const char *path, shadow_config_t *cfg,
    shadow_error_t *err);
void shadow_config_clear(shadow_config_t *cfg);

#define SHADOW_LOG_ERR   0
#define SHADOW_LOG_WARN  1
#define SHADOW_LOG_INFO  2

/* The program's logger: the engine reports events through it. */
typedef void (*shadow_log_pt)(int level, const char *msg);

typedef struct shadow_daemon_s  shadow_daemon_t;

/* Opens the rules, the result store, the log at the checkpoint and the
 * metrics listener.  Caller frees with shadow_daemon_free(). */
shadow_daemon_t *shadow_daemon_new(const shadow_config_t *cfg,
    shadow_log_pt log, shadow_error_t *err);

/* Runs until *stop becomes non-zero (a signal handler sets it), then
 * abandons what is in flight, makes what is finished durable and writes
 * the checkpoint.  SHADOW_OK on a clean stop. */
int shadow_daemon_run(shadow_daemon_t *d, volatile sig_atomic_t *stop);

void shadow_daemon_free(shadow_daemon_t *d);

#endif /* SHADOW_DAEMON_H */
