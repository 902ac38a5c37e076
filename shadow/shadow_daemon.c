/*
 * shadow_daemon: the replay engine of cutover-shadowd.
 *
 * Records read from the log sit in a window, in log order.  Each is also
 * queued on its ordering key; a key with a record in flight is busy, so a
 * key's records go out one at a time in log order, and ready keys take
 * turns up to the concurrency limit.  A finished record is compared and
 * put into the result store; a flush makes results durable; the checkpoint
 * is the start of the oldest record not yet durable (or the reader's
 * position when none is held), so a crash replays at most what was not
 * durable, and the Idempotency-Key makes that safe.
 *
 * A write is replayed only when the primary applied it (2xx; a route may
 * say "always"): one the primary refused (4xx) is stored as
 * primary_refused, one of unknown outcome (5xx, no answer) as
 * indeterminate, and neither touches the other side.  A write the other
 * side could not take (no connection, timeout, 502/503/504/429, a 409
 * "idempotency_in_progress") is tried again with a capped, jittered
 * backoff for as long as it takes, holding its key while other keys go
 * on; with max_wait_ms, a key whose record waited that long is parked: the
 * record and every later one of the key go to the dead-letter store
 * (fsynced before the checkpoint passes them) until an operator replays
 * or discards them.
 */

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


#define SHADOW_KEY_BUCKETS  4096

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

typedef struct {
    uint8_t  *data;
    size_t    len;
    size_t    cap;
    size_t    total;        /* the whole body, kept or not */
    size_t    limit;        /* bytes kept for comparing */
    void     *sha;          /* EVP_MD_CTX over the whole body */
} shadow_buf_t;

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
    cutover_record_t        rec;
    shadow_item_state_t    state;
    int                    attempts;
    int                    reason;      /* of the last failed attempt */
    int                    waiting;     /* on the waiting list */
    int                    from_dl;     /* from the dead-letter store */
    int                    is_write;
    const char            *park_reason;
    int64_t                first_fail_ms;
    int64_t                retry_at_ms;
    CURL                  *easy;
    struct curl_slist     *hdrs;
    shadow_buf_t           body;
    char                 **resp_hdrs;
    size_t                 n_resp_hdrs;
    int                    status;
    double                 ms;
    char                   errbuf[CURL_ERROR_SIZE];
    char                  *ctype;
    compare_result_t      *result;
};

struct shadow_keyq_s {
    shadow_keyq_t  *hnext;
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

    shadow_keyq_t          *keys[SHADOW_KEY_BUCKETS];
    shadow_keyq_t          *ready_head;
    shadow_keyq_t          *ready_tail;

    CURL                  **pool;
    int                     npool;

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


static int64_t shadow_mono_ms(void);
static void shadow_log(shadow_daemon_t *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void shadow_read_more(shadow_daemon_t *d);
static void shadow_item_add(shadow_daemon_t *d, shadow_frame_t *f);
static void shadow_item_free(shadow_daemon_t *d, shadow_item_t *it);
static shadow_keyq_t *shadow_keyq_get(shadow_daemon_t *d, const char *key,
    size_t len);
static void shadow_keyq_ready(shadow_daemon_t *d, shadow_keyq_t *kq);
static void shadow_keyq_drop(shadow_daemon_t *d, shadow_keyq_t *kq);
static uint32_t shadow_key_hash(const char *key, size_t len);
static void shadow_order_key(shadow_daemon_t *d, const cutover_record_t *r,
    char *buf, size_t cap, size_t *len);
static void shadow_dispatch(shadow_daemon_t *d);
static int shadow_start(shadow_daemon_t *d, shadow_item_t *it);
static void shadow_reap(shadow_daemon_t *d);
static void shadow_finish(shadow_daemon_t *d, shadow_item_t *it,
    CURLcode cc);
static void shadow_compare(shadow_daemon_t *d, shadow_item_t *it,
    const char *error, int verdict, const char *detail);
static void shadow_pair_fill(shadow_item_t *it, compare_pair_t *pair,
    const char **ph, char *sha, const char *error);
static void shadow_count_verdict(shadow_daemon_t *d, const cutover_record_t *r,
    const compare_result_t *result);
static void shadow_flush(shadow_daemon_t *d, int force);
static void shadow_advance(shadow_daemon_t *d, int force);
static void shadow_delete_consumed(shadow_daemon_t *d);
static void shadow_publish(shadow_daemon_t *d);
static size_t shadow_on_body(char *p, size_t size, size_t n, void *ctx);
static size_t shadow_on_header(char *p, size_t size, size_t n, void *ctx);
static int shadow_hop_by_hop(const cutover_str_t *name);
static struct curl_slist *shadow_request_headers(const cutover_record_t *r);
static void shadow_reset_response(shadow_item_t *it);
static shadow_primary_t shadow_primary_outcome(shadow_daemon_t *d,
    const cutover_record_t *r);
static void shadow_unreplayed(shadow_daemon_t *d, shadow_item_t *it,
    shadow_primary_t outcome);
static void shadow_done(shadow_daemon_t *d, shadow_item_t *it);
static int shadow_retry_reason(shadow_item_t *it, CURLcode cc, long status);
static int shadow_retry_transient(int reason);
static void shadow_wait_set(shadow_daemon_t *d, shadow_item_t *it,
    int reason);
static void shadow_wait_clear(shadow_daemon_t *d, shadow_item_t *it);
static void shadow_release_handle(shadow_daemon_t *d, shadow_item_t *it);
static void shadow_key_next(shadow_daemon_t *d, shadow_keyq_t *kq);
static void shadow_park_key(shadow_daemon_t *d, shadow_item_t *it);
static void shadow_park_item(shadow_daemon_t *d, shadow_item_t *it,
    const char *reason);
static void shadow_park_flush(shadow_daemon_t *d);
static void shadow_keyq_enqueue(shadow_daemon_t *d, shadow_keyq_t *kq,
    shadow_item_t *it);
static void shadow_dl_sync_key(shadow_daemon_t *d, shadow_keyq_t *kq);
static int shadow_dl_load_entry(void *ctx, const shadow_dl_entry_t *e);
static void shadow_dl_poll(shadow_daemon_t *d, int force);
static int shadow_dl_startup(shadow_daemon_t *d, shadow_error_t *err);
static void shadow_dl_item_done(shadow_daemon_t *d, shadow_item_t *it);
static int shadow_dl_first(void *ctx, const shadow_dl_entry_t *e);


static int64_t
shadow_mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static void
shadow_log(shadow_daemon_t *d, int level, const char *fmt, ...)
{
    char     msg[1024];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (d->log != NULL) {
        d->log(level, msg);
    }
}


shadow_daemon_t *
shadow_daemon_new(const shadow_config_t *cfg, shadow_log_pt log,
    shadow_error_t *err)
{
    int               rc;
    shadow_pos_t      pos = { 0, 0 };
    compare_error_t   cerr;
    shadow_daemon_t  *d;

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "out of memory");
        return NULL;
    }

    d->cfg = cfg;
    d->log = log;

    rc = shadow_checkpoint_read(cfg->checkpoint, &pos, err);
    if (rc == SHADOW_ERROR) {
        goto failed;
    }

    if (rc == SHADOW_NOTFOUND) {
        shadow_log(d, SHADOW_LOG_INFO, "no checkpoint \"%s\": starting at "
                   "the oldest segment", cfg->checkpoint);
    }

    d->reader = shadow_reader_new(cfg->log, pos, cfg->grace_ms, err);
    if (d->reader == NULL) {
        goto failed;
    }

    d->ckpt = shadow_reader_pos(d->reader);
    d->deleted_below = 0;
    d->parking_last = &d->parking;
    srandom((unsigned) (time(NULL) ^ getpid()));

    d->dl = shadow_dl_open(cfg->dead_letter, err);
    if (d->dl == NULL || shadow_dl_startup(d, err) != SHADOW_OK) {
        goto failed;
    }

    if (cfg->rules != NULL) {
        d->rules = compare_rules_load(cfg->rules, &cerr);
        if (d->rules == NULL) {
            shadow_error_set(err, SHADOW_ERROR, "rules \"%s\": %s",
                             cfg->rules, cerr.message);
            goto failed;
        }
    }

    d->store = compare_store_open(cfg->results_db, cfg->outbox, &cerr);
    if (d->store == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "result store: %s",
                         cerr.message);
        goto failed;
    }

    d->multi = curl_multi_init();
    d->pool = calloc(cfg->concurrency, sizeof(CURL *));
    if (d->multi == NULL || d->pool == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "cannot set up libcurl");
        goto failed;
    }

    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS,
                      (long) cfg->concurrency * 2);
    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long) cfg->concurrency);

    if (cfg->guard != NULL) {
        d->guard = shadow_guard_new(cfg->guard, log, err);
        if (d->guard == NULL) {
            goto failed;
        }
    }

    if (cfg->metrics_listen != NULL) {
        d->stats.lag_bytes = shadow_reader_unread(d->reader);
        d->metrics = shadow_metrics_start(cfg->metrics_listen, &d->stats,
                                          err);
        if (d->metrics == NULL) {
            goto failed;
        }
    }

    d->last_flush_ms = shadow_mono_ms();
    d->last_ckpt_ms = d->last_flush_ms;
    d->indet_logged_ms = d->last_flush_ms - 1000;
    d->tokens_ms = d->last_flush_ms;
    d->tokens = 1;
    return d;

failed:

    shadow_daemon_free(d);
    return NULL;
}


void
shadow_daemon_free(shadow_daemon_t *d)
{
    int             i;
    shadow_item_t  *it, *next;
    shadow_keyq_t  *kq, *kn;

    if (d == NULL) {
        return;
    }

    shadow_metrics_stop(d->metrics);
    shadow_guard_free(d->guard);

    for (it = d->head; it; it = next) {
        next = it->next;
        shadow_item_free(d, it);
    }

    for (it = d->dl_items; it; it = next) {
        next = it->anext;
        shadow_item_free(d, it);
    }

    shadow_dl_free(d->dl);

    for (i = 0; i < SHADOW_KEY_BUCKETS; i++) {
        for (kq = d->keys[i]; kq; kq = kn) {
            kn = kq->hnext;
            free(kq);
        }
    }

    for (i = 0; i < d->npool; i++) {
        curl_easy_cleanup(d->pool[i]);
    }

    free(d->pool);

    if (d->multi != NULL) {
        curl_multi_cleanup(d->multi);
    }

    compare_store_free(d->store);
    compare_rules_free(d->rules);
    shadow_reader_free(d->reader);
    free(d);
}


/* ---- reading ---------------------------------------------------------- */

static void
shadow_read_more(shadow_daemon_t *d)
{
    int             rc;
    shadow_frame_t  f;
    shadow_error_t  err;

    d->reader_idle = 0;

    while (d->held < d->cfg->window
           && d->held_bytes < (uint64_t) d->cfg->window_mb << 20)
    {
        rc = shadow_reader_next(d->reader, &f, &err);

        if (rc == SHADOW_OK) {
            shadow_item_add(d, &f);
            continue;
        }

        if (rc == SHADOW_CORRUPT) {
            d->stats.corrupt++;
            shadow_log(d, SHADOW_LOG_WARN, "%s", err.message);
            continue;
        }

        if (rc == SHADOW_ERROR
            && strcmp(err.message, d->last_read_error) != 0)
        {
            /* once per distinct error, not once per poll */
            shadow_log(d, SHADOW_LOG_ERR, "%s", err.message);
            memcpy(d->last_read_error, err.message,
                   sizeof(d->last_read_error));
        }

        if (rc == SHADOW_AGAIN) {
            d->last_read_error[0] = '\0';
        }

        d->reader_idle = 1;
        return;
    }
}


static void
shadow_order_key(shadow_daemon_t *d, const cutover_record_t *r, char *buf,
    size_t cap, size_t *len)
{
    int  n;

    switch (d->cfg->order_key) {

    case SHADOW_ORDER_STORE_CHANNEL:
        n = snprintf(buf, cap, "%.*s:%.*s", (int) r->store.len,
                     r->store.data ? r->store.data : "",
                     (int) r->channel.len,
                     r->channel.data ? r->channel.data : "");
        break;

    case SHADOW_ORDER_KEY:
        n = snprintf(buf, cap, "k:%.*s", (int) r->key.len,
                     r->key.data ? r->key.data : "");
        break;

    default:
        n = snprintf(buf, cap, "%.*s", (int) r->store.len,
                     r->store.data ? r->store.data : "");
        break;
    }

    /* a record without a store touches no store's ledger: no ordering */
    if (r->store.len == 0 && d->cfg->order_key != SHADOW_ORDER_KEY) {
        n = snprintf(buf, cap, "id:%.*s", (int) r->id.len, r->id.data);
    }

    *len = (size_t) n < cap ? (size_t) n : cap - 1;
}


static void
shadow_item_add(shadow_daemon_t *d, shadow_frame_t *f)
{
    char              key[512];
    size_t            klen;
    shadow_item_t    *it;
    shadow_error_t    err;
    shadow_primary_t  outcome;

    it = calloc(1, sizeof(*it));
    if (it == NULL || (it->payload = malloc(f->len)) == NULL) {
        /* not held: the checkpoint cannot pass it, it is read again */
        free(it);
        shadow_log(d, SHADOW_LOG_ERR, "out of memory holding a record");
        return;
    }

    memcpy(it->payload, f->payload, f->len);
    it->len = f->len;
    it->at = f->at;
    d->stats.read++;

    if (d->tail) {
        d->tail->next = it;

    } else {
        d->head = it;
    }

    d->tail = it;
    d->held++;
    d->held_bytes += f->len;

    if (shadow_record_decode(it->payload, f->len, &it->rec, &err)
        != SHADOW_OK)
    {
        d->stats.corrupt++;
        shadow_log(d, SHADOW_LOG_WARN, "record in segment %llu at offset "
                   "%llu skipped: %s", (unsigned long long) f->at.seq,
                   (unsigned long long) f->at.off, err.message);
        it->state = SHADOW_ITEM_DURABLE;
        return;
    }

    it->is_write = !shadow_method_is_read(it->rec.method.data,
                                          it->rec.method.len);
    outcome = shadow_primary_outcome(d, &it->rec);
    if (outcome != SHADOW_PRIMARY_REPLAY) {
        shadow_unreplayed(d, it, outcome);
        return;
    }

    shadow_order_key(d, &it->rec, key, sizeof(key), &klen);
    it->kq = shadow_keyq_get(d, key, klen);
    if (it->kq == NULL) {
        shadow_log(d, SHADOW_LOG_ERR, "out of memory queuing record %s",
                   it->rec.id.data);
        d->stats.lost++;
        it->state = SHADOW_ITEM_DURABLE;
        return;
    }

    if (it->kq->parked || it->kq->nparking > 0) {
        /* behind a parked record: to the dead letters too, in order */
        shadow_park_item(d, it, "key parked");
        return;
    }

    shadow_keyq_enqueue(d, it->kq, it);
}


static void
shadow_keyq_enqueue(shadow_daemon_t *d, shadow_keyq_t *kq, shadow_item_t *it)
{
    it->kq = kq;
    it->knext = NULL;
    it->state = SHADOW_ITEM_QUEUED;

    if (kq->tail) {
        kq->tail->knext = it;

    } else {
        kq->head = it;
    }

    kq->tail = it;
    shadow_keyq_ready(d, kq);
}


/*
 * A write is replayed only when the primary applied it, unless its route
 * says "always": executing one the primary refused would put on the other
 * ledger what the client was told did not happen; one of unknown outcome
 * is left to reconciliation (a client retry under the same
 * Idempotency-Key that succeeds is recorded and replayed by itself).
 */
static shadow_primary_t
shadow_primary_outcome(shadow_daemon_t *d, const cutover_record_t *r)
{
    int32_t  st = r->status;

    if (shadow_method_is_read(r->method.data, r->method.len)
        || shadow_replay_mode(d->cfg, r->method.data, r->method.len,
                              r->uri.data, r->uri.len)
           == SHADOW_REPLAY_ALWAYS)
    {
        return SHADOW_PRIMARY_REPLAY;
    }

    if (st >= 200 && st < 300) {
        return SHADOW_PRIMARY_REPLAY;
    }

    /* 499: the client went away, the primary may have applied it */
    if (st >= 400 && st < 500 && st != 499) {
        return SHADOW_PRIMARY_REFUSED;
    }

    return SHADOW_PRIMARY_INDETERMINATE;
}


static void
shadow_unreplayed(shadow_daemon_t *d, shadow_item_t *it,
    shadow_primary_t outcome)
{
    char                    detail[256];
    const cutover_record_t  *r = &it->rec;

    if (outcome == SHADOW_PRIMARY_REFUSED) {
        d->stats.primary_refused++;
        snprintf(detail, sizeof(detail), "refused by the %s side (%d): not "
                 "executed on the other side", r->side.data, (int) r->status);
        shadow_compare(d, it, NULL, COMPARE_VERDICT_PRIMARY_REFUSED, detail);

    } else {
        d->stats.indeterminate++;
        snprintf(detail, sizeof(detail), "outcome unknown on the %s side "
                 "(%d): not replayed, request id %s for reconciliation",
                 r->side.data, (int) r->status, r->id.data);
        /* an outage makes many: one line a second at most, with a count
         * (every request id is in the result store) */
        if (shadow_mono_ms() - d->indet_logged_ms >= 1000) {
            shadow_log(d, SHADOW_LOG_WARN, "%s %s (id %s): outcome unknown "
                       "on the %s side (%d), not replayed: stored as "
                       "indeterminate (and %llu more since the last such "
                       "line)", r->method.data, r->uri.data, r->id.data,
                       r->side.data, (int) r->status,
                       (unsigned long long) d->indet_unlogged);
            d->indet_logged_ms = shadow_mono_ms();
            d->indet_unlogged = 0;

        } else {
            d->indet_unlogged++;
        }
        shadow_compare(d, it, NULL, COMPARE_VERDICT_INDETERMINATE, detail);
    }

    shadow_done(d, it);
}


static void
shadow_done(shadow_daemon_t *d, shadow_item_t *it)
{
    d->done++;
    it->state = SHADOW_ITEM_DONE;
    it->dnext = d->done_list;
    d->done_list = it;
}


static void
shadow_item_free(shadow_daemon_t *d, shadow_item_t *it)
{
    if (it->easy != NULL) {
        curl_multi_remove_handle(d->multi, it->easy);
        curl_easy_cleanup(it->easy);
    }

    shadow_reset_response(it);
    curl_slist_free_all(it->hdrs);
    compare_result_free(it->result);
    shadow_record_clear(&it->rec);
    free(it->payload);
    free(it);
}


static uint32_t
shadow_key_hash(const char *key, size_t len)
{
    size_t    i;
    uint32_t  h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ (uint8_t) key[i]) * 16777619u;
    }

    return h % SHADOW_KEY_BUCKETS;
}


/* An idle key with nothing queued is forgotten (keys may be unbounded). */
static void
shadow_keyq_drop(shadow_daemon_t *d, shadow_keyq_t *kq)
{
    shadow_keyq_t  **pp;

    if (kq->parked || kq->replay_left > 0 || kq->nparking > 0
        || kq->head != NULL || kq->busy)
    {
        return;
    }

    pp = &d->keys[shadow_key_hash(kq->key, kq->len)];

    while (*pp != NULL && *pp != kq) {
        pp = &(*pp)->hnext;
    }

    if (*pp == kq) {
        *pp = kq->hnext;
        free(kq);
    }
}


static shadow_keyq_t *
shadow_keyq_get(shadow_daemon_t *d, const char *key, size_t len)
{
    uint32_t        h = shadow_key_hash(key, len);
    shadow_keyq_t  *kq;

    for (kq = d->keys[h]; kq; kq = kq->hnext) {
        if (kq->len == len && memcmp(kq->key, key, len) == 0) {
            return kq;
        }
    }

    kq = calloc(1, sizeof(*kq) + len + 1);
    if (kq == NULL) {
        return NULL;
    }

    memcpy(kq->key, key, len);
    kq->len = len;
    kq->hnext = d->keys[h];
    d->keys[h] = kq;
    return kq;
}


static void
shadow_keyq_ready(shadow_daemon_t *d, shadow_keyq_t *kq)
{
    if (kq->busy || kq->ready || kq->head == NULL) {
        return;
    }

    kq->ready = 1;
    kq->rnext = NULL;

    if (d->ready_tail) {
        d->ready_tail->rnext = kq;

    } else {
        d->ready_head = kq;
    }

    d->ready_tail = kq;
}


/* ---- replaying -------------------------------------------------------- */

static void
shadow_dispatch(shadow_daemon_t *d)
{
    int64_t         now;
    shadow_keyq_t  *kq;
    shadow_item_t  *it, **pp;

    now = shadow_mono_ms();

    /* records whose retry is due */
    for (pp = &d->backoff; *pp; ) {
        it = *pp;
        if (it->retry_at_ms > now) {
            pp = &it->bnext;
            continue;
        }

        *pp = it->bnext;
        if (shadow_start(d, it) != SHADOW_OK) {
            shadow_finish(d, it, CURLE_FAILED_INIT);
        }
    }

    if (d->cfg->rate_limit > 0) {
        d->tokens += (now - d->tokens_ms) * d->cfg->rate_limit / 1000.0;
        d->tokens_ms = now;
        if (d->tokens > d->cfg->rate_limit / 10 + 1) {
            d->tokens = d->cfg->rate_limit / 10 + 1;
        }
    }

    while (d->running < d->cfg->concurrency && d->ready_head != NULL) {
        if (d->cfg->rate_limit > 0) {
            if (d->tokens < 1) {
                break;
            }

            d->tokens -= 1;
        }

        kq = d->ready_head;
        d->ready_head = kq->rnext;
        if (d->ready_head == NULL) {
            d->ready_tail = NULL;
        }

        kq->ready = 0;
        kq->busy = 1;
        it = kq->head;
        d->running++;

        if (shadow_start(d, it) != SHADOW_OK) {
            shadow_finish(d, it, CURLE_FAILED_INIT);
        }
    }
}


static int
shadow_hop_by_hop(const cutover_str_t *name)
{
    size_t              i;
    static const char  *drop[] = {
        "connection", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "proxy-connection", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "host",
        "content-length", "expect", "idempotency-key",
        "x-cutover-request-id", "x-cutover-replay", NULL
    };

    for (i = 0; drop[i]; i++) {
        if (strlen(drop[i]) == name->len
            && strncasecmp(drop[i], name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* The replay's headers: the recorded ones minus hop-by-hop, plus ours. */
static struct curl_slist *
shadow_request_headers(const cutover_record_t *r)
{
    char                line[128], *hl;
    size_t              i;
    int                 have_ctype = 0;
    struct curl_slist  *h = NULL, *n;
    const cutover_str_t *key = &r->id;

    for (i = 0; i < r->n_req_headers; i++) {
        /* the primary deduped by the client's own key when it sent one
         * (the gateway forwards it): the shadow must use the same */
        if (r->req_headers[i].name.len == 15
            && strncasecmp(r->req_headers[i].name.data, "idempotency-key", 15)
               == 0
            && r->req_headers[i].value.len > 0)
        {
            key = &r->req_headers[i].value;
        }

        if (shadow_hop_by_hop(&r->req_headers[i].name)) {
            continue;
        }

        if (r->req_headers[i].name.len == 12
            && strncasecmp(r->req_headers[i].name.data, "content-type", 12)
               == 0)
        {
            have_ctype = 1;
        }

        /* "Name;" is how curl sends a header with an empty value */
        if (asprintf(&hl, r->req_headers[i].value.len ? "%.*s: %.*s"
                                                      : "%.*s;%.*s",
                     (int) r->req_headers[i].name.len,
                     r->req_headers[i].name.data,
                     (int) r->req_headers[i].value.len,
                     r->req_headers[i].value.data ? r->req_headers[i].value.data
                                                  : "")
            == -1)
        {
            curl_slist_free_all(h);
            return NULL;
        }

        n = curl_slist_append(h, hl);
        free(hl);
        if (n == NULL) {
            curl_slist_free_all(h);
            return NULL;
        }

        h = n;
    }

    if (asprintf(&hl, "Idempotency-Key: %.*s", (int) key->len, key->data)
        == -1)
    {
        curl_slist_free_all(h);
        return NULL;
    }

    n = curl_slist_append(h, hl);
    free(hl);
    if (n == NULL) {
        curl_slist_free_all(h);
        return NULL;
    }

    h = n;
    snprintf(line, sizeof(line), "X-Cutover-Request-Id: %s", r->id.data);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "X-Cutover-Replay: 1");

    /* no 100-continue round trip; no form content type made up by curl */
    h = curl_slist_append(h, "Expect:");
    n = have_ctype ? h : curl_slist_append(h, "Content-Type:");

    return n;
}


static int
shadow_start(shadow_daemon_t *d, shadow_item_t *it)
{
    char                   *url;
    const char             *base;
    const cutover_record_t  *r = &it->rec;

    base = (r->side.len == 3) ? d->cfg->legacy_url : d->cfg->new_url;

    if (it->easy == NULL) {
        it->easy = d->npool ? d->pool[--d->npool] : curl_easy_init();
        if (it->easy == NULL) {
            return SHADOW_ERROR;
        }
    }

    shadow_reset_response(it);
    it->body.limit = d->cfg->body_limit;
    curl_easy_reset(it->easy);
    it->attempts++;

    if (it->hdrs == NULL) {
        it->hdrs = shadow_request_headers(r);
        if (it->hdrs == NULL) {
            return SHADOW_ERROR;
        }
    }

    /* curl copies the URL */
    if (asprintf(&url, "%s%s", base, r->uri.data) == -1) {
        return SHADOW_ERROR;
    }

    curl_easy_setopt(it->easy, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(it->easy, CURLOPT_HTTPHEADER, it->hdrs);
    curl_easy_setopt(it->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(it->easy, CURLOPT_TIMEOUT_MS, (long) d->cfg->timeout_ms);
    curl_easy_setopt(it->easy, CURLOPT_WRITEFUNCTION, shadow_on_body);
    curl_easy_setopt(it->easy, CURLOPT_WRITEDATA, it);
    curl_easy_setopt(it->easy, CURLOPT_HEADERFUNCTION, shadow_on_header);
    curl_easy_setopt(it->easy, CURLOPT_HEADERDATA, it);
    curl_easy_setopt(it->easy, CURLOPT_PRIVATE, it);
    curl_easy_setopt(it->easy, CURLOPT_ERRORBUFFER, it->errbuf);
    it->errbuf[0] = '\0';

    if (strcmp(r->method.data, "GET") == 0 && r->req_body_len == 0) {
        curl_easy_setopt(it->easy, CURLOPT_HTTPGET, 1L);

    } else if (strcmp(r->method.data, "HEAD") == 0) {
        curl_easy_setopt(it->easy, CURLOPT_NOBODY, 1L);

    } else {
        if (r->req_body_len > 0 || strcmp(r->method.data, "POST") == 0
            || strcmp(r->method.data, "PUT") == 0
            || strcmp(r->method.data, "PATCH") == 0)
        {
            curl_easy_setopt(it->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t) r->req_body_len);
            curl_easy_setopt(it->easy, CURLOPT_POSTFIELDS,
                             r->req_body ? (const char *) r->req_body : "");
        }

        curl_easy_setopt(it->easy, CURLOPT_CUSTOMREQUEST, r->method.data);
    }

    if (curl_multi_add_handle(d->multi, it->easy) != CURLM_OK) {
        return SHADOW_ERROR;
    }

    it->state = SHADOW_ITEM_RUNNING;
    d->stats.inflight++;
    return SHADOW_OK;
}


static void
shadow_reset_response(shadow_item_t *it)
{
    size_t  i;

    for (i = 0; i < it->n_resp_hdrs; i++) {
        free(it->resp_hdrs[i]);
    }

    free(it->resp_hdrs);
    free(it->body.data);
    EVP_MD_CTX_free(it->body.sha);
    free(it->ctype);
    it->resp_hdrs = NULL;
    it->n_resp_hdrs = 0;
    it->ctype = NULL;
    memset(&it->body, 0, sizeof(it->body));
}


static size_t
shadow_on_body(char *p, size_t size, size_t n, void *ctx)
{
    size_t          len = size * n, keep, cap;
    uint8_t        *np;
    shadow_item_t  *it = ctx;

    /* past the body limit only the hash and the length are kept: the
     * hash starts there, over the kept prefix first (a body held whole
     * needs none) */
    it->body.total += len;
    keep = it->body.len >= it->body.limit ? 0
           : len < it->body.limit - it->body.len ? len
           : it->body.limit - it->body.len;

    if (keep < len) {
        if (it->body.sha == NULL) {
            it->body.sha = EVP_MD_CTX_new();
            if (it->body.sha == NULL
                || !EVP_DigestInit_ex(it->body.sha, EVP_sha256(), NULL)
                || !EVP_DigestUpdate(it->body.sha,
                                     it->body.data ? it->body.data
                                                   : (uint8_t *) "",
                                     it->body.len))
            {
                return 0;
            }
        }

        if (!EVP_DigestUpdate(it->body.sha, p, len)) {
            return 0;
        }
    }

    if (keep == 0) {
        return len;
    }

    if (it->body.len + keep > it->body.cap) {
        cap = it->body.cap ? it->body.cap * 2 : 4096;
        while (cap < it->body.len + keep) {
            cap *= 2;
        }

        np = realloc(it->body.data, cap);
        if (np == NULL) {
            return 0;
        }

        it->body.data = np;
        it->body.cap = cap;
    }

    memcpy(it->body.data + it->body.len, p, keep);
    it->body.len += keep;
    return len;
}


static size_t
shadow_on_header(char *p, size_t size, size_t n, void *ctx)
{
    size_t          len = size * n, i;
    char          **nh, *h;
    shadow_item_t  *it = ctx;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue): forget the old headers */
        for (i = 0; i < it->n_resp_hdrs; i++) {
            free(it->resp_hdrs[i]);
        }

        it->n_resp_hdrs = 0;
        return len;
    }

    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }

    if (len == 0 || memchr(p, ':', len) == NULL) {
        return size * n;
    }

    nh = realloc(it->resp_hdrs, (it->n_resp_hdrs + 1) * sizeof(char *));
    if (nh == NULL) {
        return 0;
    }

    it->resp_hdrs = nh;
    h = strndup(p, len);
    if (h == NULL) {
        return 0;
    }

    it->resp_hdrs[it->n_resp_hdrs++] = h;
    return size * n;
}


static void
shadow_reap(shadow_daemon_t *d)
{
    int             left;
    CURLMsg        *msg;
    shadow_item_t  *it;

    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &it);
        curl_multi_remove_handle(d->multi, it->easy);
        d->stats.inflight--;
        shadow_finish(d, it, msg->data.result);
    }
}


/* Why this attempt should be tried again, or -1 for a final answer. */
static int
shadow_retry_reason(shadow_item_t *it, CURLcode cc, long status)
{
    static const char  busy[] = "idempotency_in_progress";

    switch (cc) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return SHADOW_RETRY_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return SHADOW_RETRY_TIMEOUT;
    default:
        return SHADOW_RETRY_TRANSPORT;
    }

    switch (status) {
    case 502:
        return SHADOW_RETRY_502;
    case 503:
        return SHADOW_RETRY_503;
    case 504:
        return SHADOW_RETRY_504;
    case 429:
        return SHADOW_RETRY_429;
    case 409:
        /* an earlier attempt under the same key still runs there */
        if (it->body.data != NULL
            && memmem(it->body.data, it->body.len, busy, sizeof(busy) - 1)
               != NULL)
        {
            return SHADOW_RETRY_IN_PROGRESS;
        }

        return -1;
    default:
        return status >= 500 ? SHADOW_RETRY_5XX : -1;
    }
}


/* The other side did not take it: it is down, overloaded or busy with an
 * earlier attempt.  Only these make a write wait without limit. */
static int
shadow_retry_transient(int reason)
{
    return reason >= 0 && reason != SHADOW_RETRY_5XX;
}


static void
shadow_wait_set(shadow_daemon_t *d, shadow_item_t *it, int reason)
{
    if (it->waiting) {
        d->stats.retrying_by[it->reason]--;

    } else {
        it->waiting = 1;
        it->first_fail_ms = shadow_mono_ms();
        it->wnext = NULL;
        it->wprev = d->wait_tail;
        if (d->wait_tail) {
            d->wait_tail->wnext = it;

        } else {
            d->wait_head = it;
        }

        d->wait_tail = it;
        d->stats.retrying++;
    }

    it->reason = reason;
    d->stats.retrying_by[reason]++;
    d->stats.retries_by[reason]++;
}


static void
shadow_wait_clear(shadow_daemon_t *d, shadow_item_t *it)
{
    if (!it->waiting) {
        return;
    }

    if (it->wprev) {
        it->wprev->wnext = it->wnext;

    } else {
        d->wait_head = it->wnext;
    }

    if (it->wnext) {
        it->wnext->wprev = it->wprev;

    } else {
        d->wait_tail = it->wprev;
    }

    it->waiting = 0;
    it->wprev = it->wnext = NULL;
    d->stats.retrying--;
    d->stats.retrying_by[it->reason]--;
}


static void
shadow_release_handle(shadow_daemon_t *d, shadow_item_t *it)
{
    if (it->easy != NULL && d->npool < d->cfg->concurrency) {
        d->pool[d->npool++] = it->easy;

    } else if (it->easy != NULL) {
        curl_easy_cleanup(it->easy);
    }

    it->easy = NULL;
    curl_slist_free_all(it->hdrs);
    it->hdrs = NULL;
}


/* The key's head record is finished: the next one of the key may go. */
static void
shadow_key_next(shadow_daemon_t *d, shadow_keyq_t *kq)
{
    kq->head = kq->head->knext;
    if (kq->head == NULL) {
        kq->tail = NULL;
    }

    kq->busy = 0;

    if (kq->head == NULL) {
        shadow_keyq_drop(d, kq);

    } else {
        shadow_keyq_ready(d, kq);
    }
}


static void
shadow_finish(shadow_daemon_t *d, shadow_item_t *it, CURLcode cc)
{
    int             reason, retry;
    long            status = 0;
    double          secs = 0;
    char           *ct = NULL, error[CURL_ERROR_SIZE + 64];
    int64_t         delay, now;

    if (cc == CURLE_OK) {
        curl_easy_getinfo(it->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(it->easy, CURLINFO_TOTAL_TIME, &secs);
        curl_easy_getinfo(it->easy, CURLINFO_CONTENT_TYPE, &ct);
        it->ctype = ct ? strdup(ct) : NULL;
    }

    it->status = (int) status;
    it->ms = secs * 1000;

    reason = shadow_retry_reason(it, cc, status);
    retry = reason >= 0
            && ((it->is_write && shadow_retry_transient(reason))
                || it->attempts <= d->cfg->retries);

    if (retry) {
        shadow_wait_set(d, it, reason);
        now = shadow_mono_ms();

        if (it->is_write && d->cfg->max_wait_ms > 0
            && now - it->first_fail_ms >= d->cfg->max_wait_ms)
        {
            shadow_park_key(d, it);
            return;
        }

        /* capped exponential backoff, jittered over its upper half so
         * that the records of many keys do not come back at once */
        delay = it->attempts > 20 ? d->cfg->backoff_max_ms
                : (int64_t) d->cfg->backoff_ms << (it->attempts - 1);
        if (delay > d->cfg->backoff_max_ms) {
            delay = d->cfg->backoff_max_ms;
        }

        if (delay < 10 && it->is_write) {
            delay = 10;
        }

        delay = delay / 2 + (delay > 1 ? random() % (delay / 2 + 1) : 0);

        it->retry_at_ms = now + delay;
        it->state = SHADOW_ITEM_BACKOFF;
        it->bnext = d->backoff;
        d->backoff = it;
        d->stats.retried++;
        return;
    }

    shadow_wait_clear(d, it);

    error[0] = '\0';
    if (cc != CURLE_OK) {
        snprintf(error, sizeof(error), "%s", it->errbuf[0] ? it->errbuf
                 : curl_easy_strerror(cc));
    }

    if (reason >= 0) {
        /* given up: a read, or a write answered 500 and the like */
        d->stats.failed++;
        shadow_log(d, SHADOW_LOG_WARN, "replay of %s %s (id %s) failed after "
                   "%d attempts: %s", it->rec.method.data, it->rec.uri.data,
                   it->rec.id.data, it->attempts,
                   error[0] ? error : shadow_retry_reason_names[reason]);

    } else if (it->from_dl) {
        d->stats.dl_replays++;

    } else {
        /* any final answer, a 4xx included, is compared as such */
        d->stats.replayed++;
    }

    shadow_compare(d, it, error[0] ? error : NULL, -1, NULL);
    shadow_release_handle(d, it);
    d->running--;
    shadow_done(d, it);
    shadow_key_next(d, it->kq);
}


/*
 * The key's head record waited max_wait_ms: it and every later record of
 * the key go to the dead-letter store, and so does whatever of the key is
 * read until an operator acts: replaying the later ones without it would
 * apply them out of order.
 */
static void
shadow_park_key(shadow_daemon_t *d, shadow_item_t *it)
{
    shadow_item_t  *x, *next;
    shadow_keyq_t  *kq = it->kq;

    shadow_log(d, SHADOW_LOG_WARN, "key \"%s\" parked: %s %s (id %s) had no "
               "answer from the other side for %lld ms (%d attempts, last: "
               "%s); it and the key's later records go to the dead-letter "
               "store \"%s\"", kq->key, it->rec.method.data,
               it->rec.uri.data, it->rec.id.data,
               (long long) (shadow_mono_ms() - it->first_fail_ms),
               it->attempts, shadow_retry_reason_names[it->reason],
               d->cfg->dead_letter);

    shadow_wait_clear(d, it);
    shadow_release_handle(d, it);
    shadow_reset_response(it);
    d->running--;

    kq->parked = 1;
    kq->pnext = d->parked;
    d->parked = kq;
    d->stats.parked_keys++;

    for (x = kq->head; x; x = next) {
        next = x->knext;
        x->knext = NULL;
        shadow_park_item(d, x, x == it ? "max_wait" : "key parked");
    }

    kq->head = kq->tail = NULL;
    kq->busy = 0;
}


static void
shadow_park_item(shadow_daemon_t *d, shadow_item_t *it, const char *reason)
{
    it->state = SHADOW_ITEM_PARKING;
    it->park_reason = reason;
    it->pnext = NULL;
    *d->parking_last = it;
    d->parking_last = &it->pnext;
    d->stats.parking++;
    it->kq->nparking++;
}


/* The pair compare/ sees: the recorded primary answer, the replayed one. */
static void
shadow_pair_fill(shadow_item_t *it, compare_pair_t *pair, const char **ph,
    char *sha, const char *error)
{
    unsigned int            mdlen;
    unsigned char           md[32];
    const cutover_record_t  *r = &it->rec;

    memset(pair, 0, sizeof(*pair));
    pair->record_id = r->id.data;
    pair->time_us = r->time_us;
    pair->zone = r->zone.data ? r->zone.data : "";
    pair->method = r->method.data;
    pair->uri = r->uri.data;
    pair->store = r->store.data ? r->store.data : "";
    pair->channel = r->channel.data ? r->channel.data : "";
    pair->side_served = r->side.data;

    pair->primary.status = r->status;
    pair->primary.content_type = r->content_type.data;
    pair->primary.body = r->resp_body;
    pair->primary.body_len = r->resp_body_len;
    pair->primary.body_truncated = r->resp_truncated;
    pair->primary.body_sha256 = r->resp_sha256.len ? r->resp_sha256.data
                                                   : NULL;
    pair->primary.headers = ph;
    pair->primary.nheaders = ph ? r->n_resp_headers : 0;
    pair->primary.latency_ms = r->upstream_ms;

    /* a digest only for a truncated body: compare/ hashes a whole one
     * itself when the other side was truncated */
    sha[0] = '\0';
    if (error == NULL && it->body.sha != NULL
        && EVP_DigestFinal_ex(it->body.sha, md, &mdlen))
    {
        cutover_hex(md, 32, sha);
    }

    pair->shadow.status = error ? 0 : it->status;
    pair->shadow.content_type = it->ctype;
    pair->shadow.body = it->body.data;
    pair->shadow.body_len = it->body.len;
    pair->shadow.body_truncated = it->body.total > it->body.len;
    pair->shadow.body_sha256 = sha[0] ? sha : NULL;
    pair->shadow.headers = (const char **) it->resp_hdrs;
    pair->shadow.nheaders = it->n_resp_hdrs;
    pair->shadow.latency_ms = error ? -1 : it->ms;
    pair->shadow.error = error;
}


static void
shadow_count_verdict(shadow_daemon_t *d, const cutover_record_t *r,
    const compare_result_t *result)
{
    compare_verdict_t  v = compare_result_verdict(result);

    shadow_stats_count_pair(&d->stats, &r->zone,
                            r->side.len == 3
                            && memcmp(r->side.data, "new", 3) == 0,
                            (unsigned) v);

    if (v == COMPARE_VERDICT_EQUAL || v == COMPARE_VERDICT_DIFFERENT) {
        shadow_guard_pair(d->guard, &r->rule,
                          v == COMPARE_VERDICT_DIFFERENT);
    }

    switch (v) {
    case COMPARE_VERDICT_EQUAL:
        d->stats.equal++;
        break;
    case COMPARE_VERDICT_DIFFERENT:
        d->stats.different++;
        break;
    case COMPARE_VERDICT_UNPARSEABLE:
        d->stats.unparseable++;
        break;
    default:
        d->stats.shadow_failed++;
        break;
    }
}


/* Compares the pair (verdict < 0) or records it unreplayed with that
 * verdict and detail, and puts the result into the store. */
static void
shadow_compare(shadow_daemon_t *d, shadow_item_t *it, const char *error,
    int verdict, const char *detail)
{
    size_t                  i;
    char                    sha[65];
    const char            **ph;
    compare_pair_t          pair;
    compare_error_t         cerr;
    const cutover_record_t  *r = &it->rec;

    /* the recorded primary headers as "name: value" strings */
    ph = calloc(r->n_resp_headers + 1, sizeof(char *));
    for (i = 0; ph && i < r->n_resp_headers; i++) {
        if (asprintf((char **) &ph[i], "%s: %s", r->resp_headers[i].name.data,
                     r->resp_headers[i].value.data) == -1)
        {
            ph[i] = NULL;
        }
    }

    shadow_pair_fill(it, &pair, ph, sha, error);

    if (verdict >= 0) {
        pair.shadow.status = 0;
        pair.shadow.latency_ms = -1;
        it->result = compare_pair_unreplayed(d->rules, &pair,
                                             (compare_verdict_t) verdict,
                                             detail, &cerr);

    } else {
        it->result = compare_pair_run(d->rules, &pair, &cerr);
    }

    if (it->result == NULL) {
        shadow_log(d, SHADOW_LOG_ERR, "comparing %s: %s", r->id.data,
                   cerr.message);
        d->stats.lost++;

    } else {
        if (verdict < 0) {
            shadow_count_verdict(d, r, it->result);
        }

        /* the store copies the pair: put now, while its data lives */
        if (compare_store_put(d->store, &pair, it->result, &cerr)
            != COMPARE_OK)
        {
            shadow_log(d, SHADOW_LOG_ERR, "storing the result of %s: %s",
                       r->id.data, cerr.message);
            d->stats.lost++;
            compare_result_free(it->result);
            it->result = NULL;
        }
    }

    for (i = 0; ph && i < r->n_resp_headers; i++) {
        free((char *) ph[i]);
    }

    free(ph);

    /* the response is no longer needed */
    shadow_reset_response(it);
}


/* ---- durability and the checkpoint ----------------------------------- */

static void
shadow_flush(shadow_daemon_t *d, int force)
{
    int64_t          now = shadow_mono_ms();
    shadow_item_t   *it, *next;
    compare_error_t  cerr;

    if (d->done == 0) {
        return;
    }

    if (!force && now - d->last_flush_ms < d->cfg->flush_ms
        && d->done < 1024)
    {
        return;
    }

    d->last_flush_ms = now;

    if (compare_store_flush(d->store, &cerr) != COMPARE_OK) {
        if (!d->flush_failing) {
            shadow_log(d, SHADOW_LOG_ERR, "result store flush failed, "
                       "retrying (the checkpoint waits): %s", cerr.message);
        }

        d->flush_failing = 1;
        return;
    }

    if (d->flush_failing) {
        shadow_log(d, SHADOW_LOG_INFO, "result store flush works again");
        d->flush_failing = 0;
    }

    for (it = d->done_list; it; it = next) {
        next = it->dnext;
        it->state = SHADOW_ITEM_DURABLE;
        compare_result_free(it->result);
        it->result = NULL;

        if (it->from_dl) {
            shadow_dl_item_done(d, it);
        }
    }

    d->done_list = NULL;
    d->done = 0;
}


/* ---- the dead-letter store ------------------------------------------- */

/*
 * Writes the parking records, in log order, under the store's lock (the
 * dead-letter command holds it while it acts; then we try next time).  A
 * key whose .dl file we wrote is gone was replayed or discarded by an
 * operator: it is unparked first, and its records go out as usual.
 */
static void
shadow_park_flush(shadow_daemon_t *d)
{
    int                 rc;
    char                path[4096];
    shadow_item_t      *it;
    shadow_error_t      err;
    shadow_keyq_t      *kq;
    shadow_dl_entry_t   e;
    struct timespec     ts;

    rc = shadow_dl_lock(d->dl, 0, &err);
    if (rc != SHADOW_OK) {
        if (rc == SHADOW_ERROR && !d->park_failing) {
            shadow_log(d, SHADOW_LOG_ERR, "%s", err.message);
            d->park_failing = 1;
        }

        return;
    }

    while ((it = d->parking) != NULL) {
        kq = it->kq;

        if (kq->dl_written
            && shadow_dl_path(d->dl, kq->key, kq->len, ".dl", path,
                              sizeof(path)) == SHADOW_OK
            && !shadow_dl_exists(path))
        {
            shadow_dl_sync_key(d, kq);
        }

        if (!kq->parked) {
            d->parking = it->pnext;
            d->stats.parking--;
            kq->nparking--;
            shadow_keyq_enqueue(d, kq, it);
            continue;
        }

        clock_gettime(CLOCK_REALTIME, &ts);
        e.key = kq->key;
        e.key_len = kq->len;
        e.parked_us = (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        e.reason = it->park_reason;
        e.attempts = it->attempts;
        e.payload = it->payload;
        e.len = it->len;

        if (shadow_dl_append(d->dl, &e, &kq->dl_verified, &err)
            != SHADOW_OK)
        {
            if (!d->park_failing) {
                shadow_log(d, SHADOW_LOG_ERR, "%s (retrying; the checkpoint "
                           "waits)", err.message);
                d->park_failing = 1;
            }

            break;
        }

        if (d->park_failing) {
            shadow_log(d, SHADOW_LOG_INFO, "dead-letter store writes again");
            d->park_failing = 0;
        }

        kq->dl_written = 1;
        d->parking = it->pnext;
        d->stats.parking--;
        kq->nparking--;

        if (it->from_dl) {
            d->stats.dl_replays++;
            it->state = SHADOW_ITEM_DURABLE;
            shadow_dl_item_done(d, it);

        } else {
            d->stats.dead_lettered++;
            it->state = SHADOW_ITEM_DURABLE;
        }
    }

    if (d->parking == NULL) {
        d->parking_last = &d->parking;
    }

    shadow_dl_unlock(d->dl);
}


/* Under the lock: the key's .dl file is gone (an operator replayed or
 * discarded it): unpark it and take up what "replay" handed back. */
static void
shadow_dl_sync_key(shadow_daemon_t *d, shadow_keyq_t *kq)
{
    long             n;
    char             path[4096];
    off_t            bad;
    shadow_error_t   err;
    shadow_keyq_t  **pp;

    if (kq->parked) {
        kq->parked = 0;
        d->stats.parked_keys--;

        for (pp = &d->parked; *pp; pp = &(*pp)->pnext) {
            if (*pp == kq) {
                *pp = kq->pnext;
                break;
            }
        }
    }

    kq->dl_written = 0;
    kq->dl_verified = 0;

    if (kq->replay_left > 0
        || shadow_dl_path(d->dl, kq->key, kq->len, ".replay", path,
                          sizeof(path)) != SHADOW_OK
        || !shadow_dl_exists(path))
    {
        shadow_log(d, SHADOW_LOG_INFO, "key \"%s\" unparked", kq->key);
        return;
    }

    n = shadow_dl_read(path, shadow_dl_load_entry, d, &bad, &err);
    if (n < 0) {
        shadow_log(d, SHADOW_LOG_ERR, "%s", err.message);
        return;
    }

    shadow_log(d, SHADOW_LOG_INFO, "key \"%s\" unparked: replaying its %ld "
               "dead letters first", kq->key, n);
}


/* One record of a .replay file: queued on its key like a fresh one. */
static int
shadow_dl_load_entry(void *ctx, const shadow_dl_entry_t *e)
{
    shadow_item_t    *it;
    shadow_error_t    err;
    shadow_keyq_t    *kq;
    shadow_daemon_t  *d = ctx;

    kq = shadow_keyq_get(d, e->key, e->key_len);
    it = calloc(1, sizeof(*it));
    if (kq == NULL || it == NULL || (it->payload = malloc(e->len)) == NULL) {
        free(it);
        shadow_log(d, SHADOW_LOG_ERR, "out of memory loading dead letters");
        return 1;
    }

    memcpy(it->payload, e->payload, e->len);
    it->len = e->len;
    it->from_dl = 1;

    if (shadow_record_decode(it->payload, it->len, &it->rec, &err)
        != SHADOW_OK)
    {
        shadow_log(d, SHADOW_LOG_WARN, "dead letter of key \"%s\" skipped: "
                   "%s", kq->key, err.message);
        free(it->payload);
        free(it);
        return 0;
    }

    it->is_write = !shadow_method_is_read(it->rec.method.data,
                                          it->rec.method.len);

    it->anext = d->dl_items;
    if (d->dl_items) {
        d->dl_items->aprev = it;
    }

    d->dl_items = it;
    kq->replay_left++;
    shadow_keyq_enqueue(d, kq, it);
    return 0;
}


/* A replayed dead letter is durable (its result stored, or parked again):
 * once all of its key are, the .replay file goes. */
static void
shadow_dl_item_done(shadow_daemon_t *d, shadow_item_t *it)
{
    char            path[4096];
    shadow_keyq_t  *kq = it->kq;

    if (it->aprev) {
        it->aprev->anext = it->anext;

    } else {
        d->dl_items = it->anext;
    }

    if (it->anext) {
        it->anext->aprev = it->aprev;
    }

    shadow_item_free(d, it);

    if (--kq->replay_left > 0) {
        return;
    }

    if (shadow_dl_path(d->dl, kq->key, kq->len, ".replay", path,
                       sizeof(path)) == SHADOW_OK
        && unlink(path) == 0)
    {
        shadow_log(d, SHADOW_LOG_INFO, "key \"%s\": its dead letters are "
                   "replayed (\"%s\" deleted)", kq->key, path);
    }

    shadow_keyq_drop(d, kq);
}


/* An operator acted when the store's directory changed: look at the
 * parked keys again. */
static void
shadow_dl_poll(shadow_daemon_t *d, int force)
{
    char            path[4096];
    int64_t         now = shadow_mono_ms();
    struct stat     st;
    shadow_keyq_t  *kq, *next;

    if (d->parked == NULL
        || (!force && now - d->last_dl_poll_ms < 200))
    {
        return;
    }

    d->last_dl_poll_ms = now;

    if (stat(d->cfg->dead_letter, &st) == -1
        || (st.st_mtim.tv_sec == d->dl_mtime.tv_sec
            && st.st_mtim.tv_nsec == d->dl_mtime.tv_nsec))
    {
        return;
    }

    if (shadow_dl_lock(d->dl, 0, NULL) != SHADOW_OK) {
        return;
    }

    d->dl_mtime = st.st_mtim;

    for (kq = d->parked; kq; kq = next) {
        next = kq->pnext;
        if (kq->dl_written
            && shadow_dl_path(d->dl, kq->key, kq->len, ".dl", path,
                              sizeof(path)) == SHADOW_OK
            && !shadow_dl_exists(path))
        {
            shadow_dl_sync_key(d, kq);
        }
    }

    shadow_dl_unlock(d->dl);
}


/* Keys parked by an earlier run stay parked; what "replay" handed back
 * while we were down is replayed first. */
static int
shadow_dl_startup(shadow_daemon_t *d, shadow_error_t *err)
{
    int                 i, n;
    long                c;
    char                path[4096];
    off_t               bad;
    size_t              len;
    shadow_keyq_t      *kq;
    struct dirent     **names = NULL;
    shadow_dl_entry_t   first;

    if (shadow_dl_lock(d->dl, 1, err) != SHADOW_OK) {
        return SHADOW_ERROR;
    }

    n = scandir(d->cfg->dead_letter, &names, NULL, alphasort);
    if (n < 0) {
        shadow_dl_unlock(d->dl);
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\": %s",
                                d->cfg->dead_letter, strerror(errno));
    }

    for (i = 0; i < n; i++) {
        len = strlen(names[i]->d_name);
        snprintf(path, sizeof(path), "%s/%s", d->cfg->dead_letter,
                 names[i]->d_name);

        if (len > 7 && strcmp(names[i]->d_name + len - 7, ".replay") == 0) {
            c = shadow_dl_read(path, shadow_dl_load_entry, d, &bad, err);
            if (c > 0) {
                shadow_log(d, SHADOW_LOG_INFO, "replaying %ld dead letters "
                           "of \"%s\"", c, path);
            }

        } else if (len > 3 && strcmp(names[i]->d_name + len - 3, ".dl") == 0)
        {
            memset(&first, 0, sizeof(first));
            c = shadow_dl_read(path, shadow_dl_first, &first, &bad, err);
            kq = first.key ? shadow_keyq_get(d, first.key, first.key_len)
                           : NULL;
            free((char *) first.key);
            if (kq != NULL && !kq->parked) {
                kq->parked = 1;
                kq->dl_written = 1;
                kq->pnext = d->parked;
                d->parked = kq;
                d->stats.parked_keys++;
                shadow_log(d, SHADOW_LOG_WARN, "key \"%s\" is parked (%ld "
                           "records in \"%s\")", kq->key, c, path);
            }
        }

        free(names[i]);
    }

    free(names);
    shadow_dl_unlock(d->dl);
    return SHADOW_OK;
}


static int
shadow_dl_first(void *ctx, const shadow_dl_entry_t *e)
{
    shadow_dl_entry_t  *first = ctx;

    if (first->key == NULL) {
        first->key = strndup(e->key, e->key_len);
        first->key_len = first->key ? e->key_len : 0;
    }

    return 0;
}


static void
shadow_advance(shadow_daemon_t *d, int force)
{
    int64_t          now = shadow_mono_ms();
    shadow_pos_t     pos;
    shadow_item_t   *it;
    shadow_error_t   err;

    while (d->head && d->head->state == SHADOW_ITEM_DURABLE) {
        it = d->head;
        d->head = it->next;
        if (d->head == NULL) {
            d->tail = NULL;
        }

        d->held--;
        d->held_bytes -= it->len;
        shadow_item_free(d, it);
    }

    pos = d->head ? d->head->at : shadow_reader_pos(d->reader);

    if (pos.seq == d->ckpt.seq && pos.off == d->ckpt.off) {
        return;
    }

    if (!force && now - d->last_ckpt_ms < d->cfg->flush_ms) {
        return;
    }

    if (shadow_checkpoint_write(d->cfg->checkpoint, pos, &err)
        != SHADOW_OK)
    {
        shadow_log(d, SHADOW_LOG_ERR, "%s", err.message);
        return;
    }

    d->last_ckpt_ms = now;
    d->ckpt = pos;
    d->stats.ckpt_seq = pos.seq;
    d->stats.ckpt_off = pos.off;

    if (d->cfg->delete_consumed) {
        shadow_delete_consumed(d);
    }
}


static void
shadow_delete_consumed(shadow_daemon_t *d)
{
    char      path[4096];
    uint8_t   scratch[4096] __attribute__((aligned(8)));
    uint64_t  first, last, s;

    if (d->deleted_below == 0) {
        if (cutover_segment_range(d->cfg->log, scratch, sizeof(scratch),
                                 &first, &last)
            != SHADOW_OK || first == 0)
        {
            return;
        }

        d->deleted_below = first;
    }

    for (s = d->deleted_below; s < d->ckpt.seq; s++) {
        cutover_segment_path(path, sizeof(path), d->cfg->log, s);
        if (unlink(path) == 0) {
            shadow_log(d, SHADOW_LOG_INFO, "deleted consumed segment \"%s\"",
                       path);

        } else if (errno != ENOENT) {
            shadow_log(d, SHADOW_LOG_WARN, "cannot delete \"%s\": %s", path,
                       strerror(errno));
            break;
        }
    }

    d->deleted_below = s;
}


static void
shadow_publish(shadow_daemon_t *d)
{
    struct timespec  ts;
    int64_t          now_us;
    shadow_item_t   *it;

    d->stats.lag_records = d->held;
    d->stats.lag_bytes = shadow_reader_unread(d->reader);
    d->stats.lag_seconds = 0;

    for (it = d->head; it; it = it->next) {
        if (it->state != SHADOW_ITEM_DURABLE && it->rec.time_us > 0) {
            clock_gettime(CLOCK_REALTIME, &ts);
            now_us = (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
            if (now_us > it->rec.time_us) {
                d->stats.lag_seconds = (now_us - it->rec.time_us) / 1e6;
            }

            break;
        }
    }

    d->stats.store_pending = compare_store_pending(d->store);
    d->stats.oldest_wait_seconds = d->wait_head
        ? (shadow_mono_ms() - d->wait_head->first_fail_ms) / 1000.0 : 0;

    if (d->metrics != NULL) {
        shadow_metrics_publish(d->metrics, &d->stats);
    }
}


int
shadow_daemon_run(shadow_daemon_t *d, volatile sig_atomic_t *stop)
{
    int             still, wait_ms;
    int64_t         last_publish = 0, now;
    shadow_item_t  *it;

    shadow_log(d, SHADOW_LOG_INFO, "replaying \"%s\" from segment %llu "
               "offset %llu", d->cfg->log, (unsigned long long) d->ckpt.seq,
               (unsigned long long) d->ckpt.off);

    while (!*stop) {
        shadow_read_more(d);
        shadow_dispatch(d);
        curl_multi_perform(d->multi, &still);
        shadow_reap(d);
        shadow_dl_poll(d, 0);
        if (d->parking != NULL) {
            shadow_park_flush(d);
        }

        shadow_flush(d, 0);
        shadow_advance(d, 0);

        shadow_guard_poll(d->guard, &d->stats.guard);

        now = shadow_mono_ms();
        if (now - last_publish >= 100) {
            shadow_publish(d);
            last_publish = now;
        }

        wait_ms = d->cfg->poll_ms;
        if (!d->reader_idle && d->held < d->cfg->window
            && d->held_bytes < (uint64_t) d->cfg->window_mb << 20)
        {
            wait_ms = 0;
        }

        if (d->backoff != NULL || d->done > 0 || d->parking != NULL) {
            wait_ms = wait_ms > 10 ? 10 : wait_ms;
        }

        if (d->ready_head != NULL && d->running < d->cfg->concurrency) {
            wait_ms = d->cfg->rate_limit > 0 ? 1 : 0;
        }

        curl_multi_poll(d->multi, NULL, 0, wait_ms, NULL);
    }

    /* abandon what is in flight: it is replayed after the restart */
    for (it = d->head; it; it = it->next) {
        if (it->easy != NULL && it->state == SHADOW_ITEM_RUNNING) {
            curl_multi_remove_handle(d->multi, it->easy);
            curl_easy_cleanup(it->easy);
            it->easy = NULL;
        }
    }

    if (d->parking != NULL) {
        shadow_park_flush(d);
    }

    shadow_flush(d, 1);
    shadow_advance(d, 1);
    shadow_publish(d);
    shadow_log(d, SHADOW_LOG_INFO, "stopped at segment %llu offset %llu",
               (unsigned long long) d->ckpt.seq,
               (unsigned long long) d->ckpt.off);
    return SHADOW_OK;
}
