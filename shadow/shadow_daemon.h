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

/* Which writes are replayed (reads always are). */
typedef enum {
    SHADOW_REPLAY_APPLIED = 0,  /* only when the primary applied it (2xx) */
    SHADOW_REPLAY_ALWAYS        /* whatever the primary answered */
} shadow_replay_t;

/* "METHOD /path" of the "replay" configuration object: the method or "*",
 * path segments compared one by one, "{name}" matching any one segment
 * and a last segment "*" matching the rest. */
typedef struct {
    char             *method;
    char             *path;
    shadow_replay_t   mode;
} shadow_replay_rule_t;

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
    int              backoff_max_ms;  /* retry delay cap */
    int              max_wait_ms;     /* 0: a write waits for ever */
    int              nice;            /* setpriority(2) at start, 0..19 */
    int              sched_idle;      /* SCHED_IDLE: run on idle CPU only */
    char            *dead_letter;     /* dead-letter directory */
    shadow_replay_rule_t  *replay;    /* first match wins */
    size_t           nreplay;
    shadow_replay_t  replay_default;  /* writes no rule names */
    struct shadow_guard_conf_s  *guard;   /* NULL: no mismatch guard */
} shadow_config_t;

/* The replay mode of a write (method, URI with its query) under cfg. */
shadow_replay_t shadow_replay_mode(const shadow_config_t *cfg,
    const char *method, size_t mlen, const char *uri, size_t ulen);

/* 1 for a method that changes nothing (GET, HEAD, OPTIONS). */
int shadow_method_is_read(const char *method, size_t len);

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

/* cutover-shadowd dead-letter list|replay|discard [--key K] [--reason R]
 * --config FILE: argv starts at "dead-letter".  Returns the exit code. */
int shadow_dead_letter_main(int argc, char **argv);

#endif /* SHADOW_DAEMON_H */
