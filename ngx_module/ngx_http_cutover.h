/*
 * ngx_http_cutover: types shared by the module's files (configuration,
 * the shared zone, per-request routing context).
 */

#ifndef NGX_HTTP_CUTOVER_H
#define NGX_HTTP_CUTOVER_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if !(NGX_THREADS)
#error "cutover needs nginx built --with-threads (its admin writes run in a thread pool)"
#endif

#include <ngx_thread_pool.h>

#include <openssl/rand.h>

#include "common/cutover_hash.h"
#include "cutover_dial.h"
#include "common/cutover_record.h"
#include "cutover_auth.h"
#include "common/cutover_json.h"
#include "common/cutover_guard.h"


#define NGX_HTTP_CUTOVER_NONCES        4096
#define NGX_HTTP_CUTOVER_NONCE_PROBES  32
#define NGX_HTTP_CUTOVER_BODY_MAX      65536

/* Refused change attempts that never authenticated (bad or missing
 * signature, wrong method, oversized body) or found the nonce table full
 * are not written one by one: they are counted by reason and by client
 * address, and one "refusals" entry a period at most carries the counts,
 * so a flood cannot fill the disk or hold the trail's lock in fsync.
 * Signed refusals are always written. */
#define NGX_HTTP_CUTOVER_REFUSAL_PERIOD 60      /* seconds between entries */
#define NGX_HTTP_CUTOVER_REFUSAL_ADDRS  16      /* addresses named in one */
#define NGX_HTTP_CUTOVER_ADDR_MAX       48
#define NGX_HTTP_CUTOVER_MIN_ZONE      (512 * 1024)

/* cutover_upstream_response_seconds: its buckets' bounds (ms), +Inf last */
#define NGX_HTTP_CUTOVER_UP_BUCKETS    12

typedef enum {
    NGX_HTTP_CUTOVER_AUTH_MISSING = 0,
    NGX_HTTP_CUTOVER_AUTH_BAD_FORMAT,
    NGX_HTTP_CUTOVER_AUTH_UNKNOWN_KEY,
    NGX_HTTP_CUTOVER_AUTH_STALE,
    NGX_HTTP_CUTOVER_AUTH_BAD_SIGNATURE,
    NGX_HTTP_CUTOVER_AUTH_REPLAY,
    NGX_HTTP_CUTOVER_AUTH_NREASONS
} ngx_http_cutover_auth_reason_e;

/* reasons of unauthenticated refusals: the auth reasons, then these */
#define NGX_HTTP_CUTOVER_REFUSE_METHOD    NGX_HTTP_CUTOVER_AUTH_NREASONS
#define NGX_HTTP_CUTOVER_REFUSE_BODY      (NGX_HTTP_CUTOVER_AUTH_NREASONS + 1)
#define NGX_HTTP_CUTOVER_REFUSE_BUSY      (NGX_HTTP_CUTOVER_AUTH_NREASONS + 2)
#define NGX_HTTP_CUTOVER_REFUSE_NREASONS  (NGX_HTTP_CUTOVER_AUTH_NREASONS + 3)

typedef struct {
    u_char                        text[NGX_HTTP_CUTOVER_ADDR_MAX];
    ngx_uint_t                    count;
} ngx_http_cutover_refusal_addr_t;


/* Why a record was dropped (cutover_records_dropped_total{reason=}). */
typedef enum {
    NGX_HTTP_CUTOVER_DROP_FULL = 0,     /* log at max=: shadowd is behind */
    NGX_HTTP_CUTOVER_DROP_ERROR,        /* any other failure */
    NGX_HTTP_CUTOVER_DROP_TOO_LARGE,    /* request body over the limit */
    NGX_HTTP_CUTOVER_DROP_DISK_FULL,    /* ENOSPC, EDQUOT */
    NGX_HTTP_CUTOVER_DROP_NREASONS
} ngx_http_cutover_drop_reason_e;


#define NGX_HTTP_CUTOVER_RECORD_OFF     0
#define NGX_HTTP_CUTOVER_RECORD_WRITES  1
#define NGX_HTTP_CUTOVER_RECORD_ALL     2


typedef struct ngx_http_cutover_ring_s  ngx_http_cutover_ring_t;
typedef struct ngx_http_cutover_zone_s  ngx_http_cutover_zone_t;

/* One dual-run log; the writer state is per worker process, the buffer
 * (ngx_http_cutover_logbuf.c) is shared by the workers. */
typedef struct {
    ngx_str_t                     path;           /* NUL-terminated */
    off_t                         segment;
    off_t                         max;            /* 0: no limit */
    size_t                        buffer;         /* 0: buffer=off */
    cutover_writer_t              writer;
    ngx_http_cutover_ring_t      *ring;           /* NULL: buffer=off */
    ngx_event_t                   flush_ev;       /* posted: flush */
    ngx_http_cutover_zone_t      *first_zone;     /* a zone recording here */
    uint32_t                      zone_hash;      /* the last zone looked */
    void                         *zone_sh;        /* up, by name hash */

    /* the records this worker dropped since it last wrote one: logged
     * when recording resumes, for reconciliation */
    ngx_uint_t                    gap;
    ngx_uint_t                    gap_reasons[NGX_HTTP_CUTOVER_DROP_NREASONS];
    u_char                        gap_first[32];
    u_char                        gap_last[32];
    time_t                        gap_first_sec;
    time_t                        gap_last_sec;
} ngx_http_cutover_log_t;


/* Fleet mode (ngx_http_cutover_fleet.c): who listens, what it saw, and a
 * rollback made while PostgreSQL was out of reach, to be written back. */
typedef struct {
    ngx_atomic_t                  owner;          /* pid of the listener */
    ngx_atomic_t                  connected;
    ngx_atomic_t                  version_seen;
    ngx_atomic_t                  applies;        /* fleet states applied */
    ngx_atomic_t                  errors;         /* failed attempts */
    ngx_atomic_t                  connects;
    ngx_atomic_t                  unavailable;    /* dials refused */
    ngx_atomic_t                  writebacks;     /* rollbacks written back */
    ngx_uint_t                    pending;        /* under the writer lock */
    int64_t                       pending_time;
    char                          pending_key[CUTOVER_ID_MAX + 1];
    char                          pending_reason[1025];
} ngx_http_cutover_fleet_sh_t;


typedef struct {
    uint64_t                      h1;
    uint64_t                      h2;
    int64_t                       time;
} ngx_http_cutover_nonce_t;


/* The shared zone.  Readers of the dial state take no lock: they read
 * slot[active] and retry when its sequence number moved (a seqlock).
 * Writers hold the writer lock and write the inactive slot; shpool->mutex
 * guards the replay cache and the refusal counts, never across I/O. */
typedef struct {
    ngx_atomic_t                  active;
    ngx_atomic_t                  seq[2];
    cutover_state_t               slot[2];

    ngx_atomic_t                  requests[CUTOVER_MAX_RULES][2];
    ngx_atomic_t                  empty_key;
    ngx_atomic_t                  torn_reads;
    ngx_atomic_t                  auth_failures[NGX_HTTP_CUTOVER_AUTH_NREASONS];
    ngx_atomic_t                  forbidden;
    ngx_atomic_t                  changes_accepted;
    ngx_atomic_t                  changes_refused;
    ngx_atomic_t                  persist_failures;
    ngx_atomic_t                  nonce_full;

    /* the dual-run log */
    ngx_atomic_t                  records;
    ngx_atomic_t                  records_truncated;
    ngx_atomic_t                  records_dropped[
                                      NGX_HTTP_CUTOVER_DROP_NREASONS];
    ngx_atomic_t                  dropped_logged_sec; /* one line a second */
    ngx_atomic_t                  dropped_logged;     /* drops it counted */

    /* the pid of the process one of whose threads is writing the state
     * file or the audit trail, 0 when none (ngx_http_cutover_writer_lock) */
    ngx_atomic_t                  writer;

    /* the audit trail's head, under the writer lock (ngx_http_cutover_zone.c
     * explains the break and its acceptance) */
    uint64_t                      audit_seq;
    char                          audit_hash[65];
    ngx_uint_t                    audit_ok;       /* the head is known */
    ngx_uint_t                    audit_torn;     /* no final newline */
    uint64_t                      audit_pending_break;
    uint64_t                      audit_damaged;  /* first damaged line,
                                                     not yet recorded */
    char                          audit_damage[128];

    /* unauthenticated refusals: all-time counts (atomic), and those since
     * the last "refusals" entry, under shpool->mutex */
    ngx_atomic_t                  refusals[NGX_HTTP_CUTOVER_REFUSE_NREASONS];
    ngx_uint_t                    refusals_pending[
                                      NGX_HTTP_CUTOVER_REFUSE_NREASONS];
    ngx_uint_t                    refusals_pending_total;
    ngx_uint_t                    refusals_other_addrs;
    ngx_http_cutover_refusal_addr_t
                                  refusal_addrs[
                                      NGX_HTTP_CUTOVER_REFUSAL_ADDRS];
    time_t                        refusals_since;
    time_t                        refusals_written;
    ngx_atomic_t                  refusals_flushing;

    /* the last second the guard and ramp check ran (one worker a second,
     * ngx_http_cutover_guard.c) */
    ngx_atomic_t                  tick_sec;
    void                         *guard;      /* ngx_http_cutover_guard_sh_t */

    /* upstream answers by rule slot and side (0 legacy, 1 new) */
    ngx_atomic_t                  upstream_hist[CUTOVER_MAX_RULES][2][
                                      NGX_HTTP_CUTOVER_UP_BUCKETS];
    ngx_atomic_t                  upstream_ms[CUTOVER_MAX_RULES][2];
    ngx_atomic_t                  upstream_errors[CUTOVER_MAX_RULES][2];

    ngx_http_cutover_nonce_t      nonces[NGX_HTTP_CUTOVER_NONCES];

    ngx_http_cutover_fleet_sh_t   fleet;          /* fleet mode */
} ngx_http_cutover_shctx_t;


struct ngx_http_cutover_zone_s {
    ngx_http_cutover_shctx_t     *sh;
    ngx_slab_pool_t              *shpool;
    ngx_str_t                     name;
    uint32_t                      name_hash;      /* ngx_crc32_short */
    ngx_str_t                     state_path;     /* NUL-terminated */
    ngx_str_t                     audit_path;     /* NUL-terminated */
    ngx_thread_pool_t            *thread_pool;    /* file writes and fsyncs */
    cutover_guard_conf_t         *guard;          /* cutover_guard, or NULL */
    void                         *guard_worker;   /* this worker's part */
    ngx_str_t                     fleet;          /* conninfo, NUL-ended */
    ngx_str_t                     gateway;        /* NUL-terminated */
    void                         *fleet_ctx;      /* per worker */
};


typedef struct {
    ngx_array_t                   zones;          /* ngx_shm_zone_t * */
    ngx_array_t                   logs;           /* ngx_http_cutover_log_t * */
    ngx_array_t                   dirs;           /* directories workers
                                                     write (module.c) */
} ngx_http_cutover_main_conf_t;


typedef struct {
    ngx_shm_zone_t               *zone;           /* cutover */
    ngx_http_complex_value_t     *store;
    ngx_http_complex_value_t     *channel;
    ngx_http_complex_value_t     *key;
    ngx_str_t                     upstream_new;
    ngx_str_t                     upstream_legacy;

    ngx_uint_t                    record;         /* cutover_record */
    ngx_int_t                     record_reads;   /* basis points */
    ngx_http_cutover_log_t       *log;            /* cutover_log */
    size_t                        body_limit;     /* cutover_body_limit */
    ngx_array_t                  *record_headers; /* ngx_str_t, lower case */

    ngx_shm_zone_t               *admin_zone;     /* cutover_admin */
    ngx_array_t                  *keys;           /* cutover_key_t */
    ngx_shm_zone_t               *metrics_zone;   /* cutover_metrics */
} ngx_http_cutover_loc_conf_t;


typedef struct ngx_http_cutover_tee_s  ngx_http_cutover_tee_t;

typedef struct {
    ngx_http_cutover_zone_t      *zone;
    cutover_route_t               route;
    uint32_t                      bucket;
    ngx_uint_t                    empty_key;
    ngx_str_t                     store;
    ngx_str_t                     channel;
    ngx_str_t                     key;
    ngx_http_cutover_tee_t       *tee;            /* when recorded */
    ngx_http_cutover_loc_conf_t  *lcf;            /* where it was routed */
    void                         *admin;          /* an admin API call */
    u_char                        id[32];         /* $cutover_request_id */
    unsigned                      has_id:1;
} ngx_http_cutover_ctx_t;


extern ngx_module_t  ngx_http_cutover_module;


/* A directory the workers write in (for state=, audit=, cutover_log),
 * made and checked when the configuration is applied. */
typedef struct {
    ngx_str_t                     dir;            /* NUL-terminated */
    ngx_str_t                     file;           /* NUL-terminated */
    const char                   *what;
    ngx_str_t                     conf_file;
    ngx_uint_t                    line;
} ngx_http_cutover_dir_t;


/* ngx_http_cutover_route.c */
ngx_int_t ngx_http_cutover_request_id(ngx_http_request_t *r, ngx_str_t *id);
ngx_http_cutover_ctx_t *ngx_http_cutover_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_cutover_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_cutover_route_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_cutover_add_variables(ngx_conf_t *cf);

/* ngx_http_cutover_init.c */
ngx_int_t ngx_http_cutover_init(ngx_conf_t *cf);
ngx_int_t ngx_http_cutover_add_dir(ngx_conf_t *cf, ngx_str_t *file,
    const char *what);
ngx_int_t ngx_http_cutover_init_zone_dirs(ngx_shm_zone_t *shm_zone,
    void *data);

/* ngx_http_cutover_zone.c */
ngx_int_t ngx_http_cutover_init_zone(ngx_shm_zone_t *shm_zone, void *data);
void ngx_http_cutover_zone_route(ngx_http_cutover_zone_t *zone,
    ngx_str_t *store, ngx_str_t *channel, uint32_t bucket,
    cutover_route_t *route);
cutover_state_t *ngx_http_cutover_zone_snapshot(ngx_http_cutover_zone_t *zone,
    ngx_pool_t *pool);
void ngx_http_cutover_zone_copy(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st);
void ngx_http_cutover_writer_lock(ngx_http_cutover_shctx_t *sh);
void ngx_http_cutover_writer_unlock(ngx_http_cutover_shctx_t *sh);
ngx_int_t ngx_http_cutover_zone_persist(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, ngx_log_t *log, ngx_str_t *tmp);
ngx_int_t ngx_http_cutover_zone_commit(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, ngx_str_t *tmp, ngx_log_t *log);
void ngx_http_cutover_zone_publish(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st);
ssize_t ngx_http_cutover_read_file(const char *path, u_char *buf,
    size_t cap, off_t from_end, ngx_log_t *log, ngx_err_t *err);
ngx_int_t ngx_http_cutover_nonce_check(ngx_http_cutover_zone_t *zone,
    const cutover_auth_t *auth, int64_t now);

/* ngx_http_cutover_audit.c */
void ngx_http_cutover_audit_load(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log);
ngx_int_t ngx_http_cutover_audit_sync(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log);
ngx_int_t ngx_http_cutover_audit_append(ngx_http_cutover_zone_t *zone,
    cutover_audit_entry_t *e, ngx_log_t *log);

/* ngx_http_cutover_logbuf.c */
ngx_int_t ngx_http_cutover_logbuf_add(ngx_conf_t *cf,
    ngx_http_cutover_log_t *log, size_t size);
void ngx_http_cutover_logbuf_start(ngx_http_cutover_log_t *log,
    ngx_log_t *errlog);
void ngx_http_cutover_log_write(ngx_http_cutover_log_t *log,
    ngx_http_cutover_zone_t *zone, u_char *id, ngx_uint_t truncated,
    u_char *frame, size_t len, ngx_log_t *errlog);
void ngx_http_cutover_logbuf_flush(ngx_http_cutover_log_t *log,
    ngx_log_t *errlog);
size_t ngx_http_cutover_logbuf_metrics_size(
    ngx_http_cutover_main_conf_t *cmcf);
u_char *ngx_http_cutover_logbuf_metrics(ngx_http_cutover_main_conf_t *cmcf,
    u_char *p);

/* ngx_http_cutover_fleet.c */
typedef ngx_int_t (*ngx_http_cutover_fleet_change_pt)(void *data,
    cutover_state_t *cur, cutover_state_t *next, cutover_audit_entry_t *e);
ngx_int_t ngx_http_cutover_fleet_write(ngx_http_cutover_zone_t *zone,
    ngx_http_cutover_fleet_change_pt change, void *data,
    cutover_state_t *cur, cutover_state_t *next, cutover_audit_entry_t *e,
    ngx_log_t *log);
ngx_int_t ngx_http_cutover_fleet_local(ngx_http_cutover_zone_t *zone,
    cutover_state_t *next, cutover_audit_entry_t *e, ngx_log_t *log);
#define NGX_HTTP_CUTOVER_FLEET_METRICS_MAX  2048
u_char *ngx_http_cutover_fleet_status(ngx_http_cutover_zone_t *zone,
    u_char *p);
u_char *ngx_http_cutover_fleet_metrics(ngx_http_cutover_zone_t *zone,
    u_char *p);
void ngx_http_cutover_fleet_pend(ngx_http_cutover_zone_t *zone,
    cutover_audit_entry_t *e);
ngx_int_t ngx_http_cutover_fleet_init_process(ngx_cycle_t *cycle);
void ngx_http_cutover_fleet_exit_process(ngx_cycle_t *cycle);

/* ngx_http_cutover_record.c */
extern const char  *ngx_http_cutover_drop_names[];
ngx_atomic_uint_t ngx_http_cutover_dropped_total(ngx_http_cutover_shctx_t *sh);
ngx_int_t ngx_http_cutover_record_start(ngx_http_request_t *r,
    ngx_http_cutover_ctx_t *ctx);
ngx_int_t ngx_http_cutover_record_init(ngx_conf_t *cf);
char *ngx_http_cutover_record_merge(ngx_conf_t *cf,
    ngx_http_cutover_loc_conf_t *prev, ngx_http_cutover_loc_conf_t *conf);
char *ngx_http_cutover_record_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cutover_record_reads(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cutover_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_cutover_record_headers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_cutover_record_process(ngx_cycle_t *cycle, ngx_uint_t exiting);
void ngx_http_cutover_log_result(ngx_http_cutover_log_t *log,
    ngx_http_cutover_shctx_t *sh, const u_char *id, ngx_uint_t truncated,
    int rc, ngx_log_t *errlog);

/* ngx_http_cutover_guard.c */
char *ngx_http_cutover_guard(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_cutover_guard_init(ngx_conf_t *cf);
ngx_int_t ngx_http_cutover_guard_init_zone(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log);
ngx_int_t ngx_http_cutover_guard_init_process(ngx_cycle_t *cycle);
u_char *ngx_http_cutover_guard_status(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, u_char *p);
size_t ngx_http_cutover_guard_status_size(cutover_state_t *st);
u_char *ngx_http_cutover_ramp_json(cutover_rule_t *rule, u_char *p);
u_char *ngx_http_cutover_guard_metrics(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, u_char *p);
size_t ngx_http_cutover_guard_metrics_size(cutover_state_t *st);

/* ngx_http_cutover_admin*.c */
ngx_int_t ngx_http_cutover_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_cutover_metrics_handler(ngx_http_request_t *r);

#endif /* NGX_HTTP_CUTOVER_H */
