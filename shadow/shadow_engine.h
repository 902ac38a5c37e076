/*
 * shadow_engine.h: what the replay engine's files share (the window,
 * the key queues, the daemon); private to shadow_daemon.c and its
 * neighbours, see shadow_daemon.c for the design.
 */

#ifndef SHADOW_ENGINE_H
#define SHADOW_ENGINE_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include <dirent.h>
#include <sys/stat.h>

#include "common/cutover_hash.h"
#include "compare/compare.h"
#include "shadow/shadow_daemon.h"
#include "shadow/shadow_deadletter.h"
#include "shadow/shadow_guard.h"
#include "shadow/shadow_metrics.h"


/* the key table starts with this many buckets and doubles past one key
 * a bucket, so a lookup stays O(1) however many keys wait */
#define SHADOW_KEY_BUCKETS  4096
/* idle key queues, items and buffers kept for reuse, at most */
#define SHADOW_FREE_KEYS    4096
#define SHADOW_FREE_ITEMS   1024
/* key bytes of a reusable key queue (longer keys are allocated apart) */
#define SHADOW_KEY_SMALL    64
/* a payload buffer larger than this is not kept for reuse */
#define SHADOW_REUSE_MAX    65536

typedef enum {
    SHADOW_ITEM_QUEUED = 0,
    SHADOW_ITEM_RUNNING,
    SHADOW_ITEM_BACKOFF,
    SHADOW_ITEM_DONE,           /* compared and put, not yet flushed */
    SHADOW_ITEM_PARKING,        /* to be written to the dead-letter store */
    SHADOW_ITEM_DURABLE
} shadow_item_state_t;

/* What the primary's answer means for the other side. */
typedef enum {
    SHADOW_PRIMARY_REPLAY = 0,
    SHADOW_PRIMARY_REFUSED,
    SHADOW_PRIMARY_INDETERMINATE
} shadow_primary_t;

typedef struct shadow_keyq_s  shadow_keyq_t;
typedef struct shadow_item_s  shadow_item_t;
typedef struct shadow_xfer_s  shadow_xfer_t;

typedef struct {
    uint8_t  *data;
    size_t    len;
    size_t    cap;
    size_t    total;        /* the whole body, kept or not */
    size_t    limit;        /* bytes kept for comparing */
    void     *sha;          /* EVP_MD_CTX over the whole body */
} shadow_buf_t;

/*
 * What a replay in flight needs, kept in a pool for the next one (so a
 * record costs no allocation here once the pool is warm): the easy handle,
 * the URL, the request's header lines (with our own curl_slist over them),
 * the response's body and header lines.
 */
struct shadow_xfer_s {
    shadow_xfer_t         *next;        /* the pool */
    CURL                  *easy;
    char                  *url;
    size_t                 url_cap;
    char                  *hbuf;        /* request header lines */
    size_t                 hbuf_cap;
    struct curl_slist     *hlist;       /* over hbuf; not curl's to free */
    size_t                 hlist_cap;
    shadow_buf_t           body;
    char                  *rbuf;        /* response header lines, each */
    size_t                 rbuf_len;    /* ended by a NUL */
    size_t                 rbuf_cap;
    size_t                *roff;        /* where each line starts */
    const char           **rptr;        /* the lines, filled for compare/ */
    size_t                 rptr_cap;
    size_t                 nresp;
    size_t                 resp_cap;
};

struct shadow_item_s {
    shadow_item_t         *next;        /* log order */
    shadow_item_t         *knext;       /* same key, log order */
    shadow_item_t         *bnext;       /* backoff list */
    shadow_item_t         *dnext;       /* done, awaiting the flush */
    shadow_item_t         *pnext;       /* parking list */
    shadow_item_t         *wprev;       /* waiting list: failed at least */
    shadow_item_t         *wnext;       /* once, not finished */
    shadow_item_t         *aprev;       /* dead letters being replayed */
    shadow_item_t         *anext;
    shadow_keyq_t         *kq;
    shadow_pos_t           at;
    uint8_t               *payload;
    uint32_t               len;
    cutover_record_t       rec;
    shadow_item_state_t    state;
    int                    attempts;
    int                    reason;      /* of the last failed attempt */
    int                    waiting;     /* on the waiting list */
    int                    from_dl;     /* from the dead-letter store */
    int                    is_write;
    const char            *park_reason;
    int64_t                first_fail_ms;
    int64_t                retry_at_ms;
    uint32_t               payload_cap;
    shadow_xfer_t         *x;           /* from its start to its end */
    int                    have_hdrs;   /* x's request headers are its */
    int                    status;
    double                 ms;
    char                   errbuf[CURL_ERROR_SIZE];
    const char            *ctype;       /* curl's, while x is held */
    compare_result_t      *result;
};

struct shadow_keyq_s {
    shadow_keyq_t  *hnext;      /* same bucket, or the free list */
    shadow_keyq_t **hprev;      /* what points at it in its bucket */
    uint32_t        hash;
    int             small;      /* SHADOW_KEY_SMALL key bytes: reusable */
    shadow_keyq_t  *rnext;
    shadow_keyq_t  *pnext;      /* parked keys */
    shadow_item_t  *head;
    shadow_item_t  *tail;
    int             busy;
    int             ready;
    int             parked;     /* new records go to the dead letters */
    int             dl_written; /* its .dl file exists (we wrote it) */
    long            nparking;   /* its records on the parking list */
    long            replay_left; /* dead letters still being replayed */
    off_t           dl_verified;
    size_t          len;
    char            key[];
};

struct shadow_daemon_s {
    const shadow_config_t  *cfg;
    shadow_log_pt           log;
    shadow_reader_t        *reader;
    compare_rules_t        *rules;
    compare_store_t        *store;
    CURLM                  *multi;
    int                     epfd;       /* the sockets curl watches */
    int64_t                 curl_due_ms; /* curl's timer, -1: none */
    shadow_metrics_t       *metrics;
    shadow_stats_t          stats;

    shadow_item_t          *head;       /* window, log order */
    shadow_item_t          *tail;
    long                    held;
    uint64_t                held_bytes;
    long                    running;    /* in flight or in backoff */
    long                    done;       /* DONE, not yet flushed */
    shadow_item_t          *done_list;
    shadow_item_t          *backoff;

    shadow_keyq_t         **keys;       /* nkeys_cap buckets, or NULL */
    size_t                  nkeys;
    size_t                  nkeys_cap;
    shadow_keyq_t          *free_keys;
    long                    nfree_keys;
    shadow_keyq_t          *ready_head;
    shadow_keyq_t          *ready_tail;

    shadow_xfer_t          *pool;
    long                    npool;
    shadow_item_t          *free_items;
    long                    nfree_items;
    const char            **ph;         /* scratch: primary header lines */
    size_t                  ph_cap;
    char                   *ph_buf;
    size_t                  ph_buf_cap;

    shadow_pos_t            ckpt;       /* last written */
    uint64_t                deleted_below;
    int64_t                 last_flush_ms;
    int64_t                 last_ckpt_ms;
    double                  tokens;
    int64_t                 tokens_ms;
    int                     reader_idle;
    char                    last_read_error[256];
    int                     flush_failing;

    shadow_item_t          *wait_head;  /* waiting list, oldest first */
    shadow_item_t          *wait_tail;
    shadow_dl_t            *dl;
    shadow_item_t          *parking;    /* log order */
    shadow_item_t         **parking_last;
    shadow_keyq_t          *parked;
    shadow_item_t          *dl_items;   /* replayed dead letters alive */
    int64_t                 last_dl_poll_ms;
    struct timespec         dl_mtime;
    int                     park_failing;
    int64_t                 indet_logged_ms;
    uint64_t                indet_unlogged;
    shadow_guard_t         *guard;      /* the mismatch guard, or NULL */
};


int64_t shadow_mono_ms(void);
void shadow_log(shadow_daemon_t *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void shadow_read_more(shadow_daemon_t *d);
void shadow_keyq_enqueue(shadow_daemon_t *d, shadow_keyq_t *kq,
    shadow_item_t *it);
void shadow_done(shadow_daemon_t *d, shadow_item_t *it);
shadow_item_t *shadow_item_new(shadow_daemon_t *d, const uint8_t *payload,
    uint32_t len);
void shadow_item_free(shadow_daemon_t *d, shadow_item_t *it);
void shadow_items_free(shadow_daemon_t *d);
void shadow_keyq_drop(shadow_daemon_t *d, shadow_keyq_t *kq);
shadow_keyq_t *shadow_keyq_get(shadow_daemon_t *d, const char *key,
    size_t len);
void shadow_keyq_ready(shadow_daemon_t *d, shadow_keyq_t *kq);
void shadow_keys_free(shadow_daemon_t *d);
void shadow_dispatch(shadow_daemon_t *d);
void shadow_reset_response(shadow_item_t *it);
void shadow_reap(shadow_daemon_t *d);
int shadow_curl_setup(shadow_daemon_t *d);
void shadow_curl_timer(shadow_daemon_t *d);
void shadow_curl_wait(shadow_daemon_t *d, int wait_ms);
void shadow_wait_clear(shadow_daemon_t *d, shadow_item_t *it);
void shadow_release_handle(shadow_daemon_t *d, shadow_item_t *it);
void shadow_xfer_free(shadow_xfer_t *x);
void shadow_park_key(shadow_daemon_t *d, shadow_item_t *it);
void shadow_park_item(shadow_daemon_t *d, shadow_item_t *it,
    const char *reason);
void shadow_compare(shadow_daemon_t *d, shadow_item_t *it, const char *error,
    int verdict, const char *detail);
void shadow_flush(shadow_daemon_t *d, int force);
void shadow_park_flush(shadow_daemon_t *d);
void shadow_dl_item_done(shadow_daemon_t *d, shadow_item_t *it);
void shadow_dl_poll(shadow_daemon_t *d, int force);
int shadow_dl_startup(shadow_daemon_t *d, shadow_error_t *err);

#endif /* SHADOW_ENGINE_H */
