/*
 * shadow_window: records read from the log into the window, in log order,
 * each queued on its ordering key; what the primary's answer means for
 * the other side; a record's end.
 */

#include "shadow/shadow_engine.h"


static void shadow_order_key(shadow_daemon_t *d, const cutover_record_t *r,
    char *buf, size_t cap, size_t *len);
static void shadow_item_add(shadow_daemon_t *d, shadow_frame_t *f);
static shadow_primary_t shadow_primary_outcome(shadow_daemon_t *d,
    const cutover_record_t *r);
static void shadow_unreplayed(shadow_daemon_t *d, shadow_item_t *it,
    shadow_primary_t outcome);
static uint32_t shadow_key_hash(const char *key, size_t len);
static void shadow_key_link(shadow_keyq_t **table, size_t cap,
    shadow_keyq_t *kq);
static void shadow_key_grow(shadow_daemon_t *d);


/* ---- reading ---------------------------------------------------------- */

void
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

    it = shadow_item_new(d, f->payload, f->len);
    if (it == NULL) {
        /* not held: the checkpoint cannot pass it, it is read again */
        shadow_log(d, SHADOW_LOG_ERR, "out of memory holding a record");
        return;
    }

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


void
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


void
shadow_done(shadow_daemon_t *d, shadow_item_t *it)
{
    d->done++;
    it->state = SHADOW_ITEM_DONE;
    it->dnext = d->done_list;
    d->done_list = it;
}


/* A zeroed item holding a copy of the payload; items and their payload
 * buffers are reused. */
shadow_item_t *
shadow_item_new(shadow_daemon_t *d, const uint8_t *payload, uint32_t len)
{
    uint8_t        *buf = NULL;
    uint32_t        cap = 0;
    shadow_item_t  *it;

    it = d->free_items;
    if (it != NULL) {
        d->free_items = it->next;
        d->nfree_items--;
        buf = it->payload;
        cap = it->payload_cap;
        memset(it, 0, sizeof(*it));

    } else {
        it = calloc(1, sizeof(*it));
        if (it == NULL) {
            return NULL;
        }
    }

    if (cap < len) {
        free(buf);
        cap = len;
        buf = malloc(len);
        if (buf == NULL) {
            free(it);
            return NULL;
        }
    }

    memcpy(buf, payload, len);
    it->payload = buf;
    it->payload_cap = cap;
    it->len = len;
    return it;
}


void
shadow_item_free(shadow_daemon_t *d, shadow_item_t *it)
{
    if (it->x != NULL) {
        curl_multi_remove_handle(d->multi, it->x->easy);
        shadow_release_handle(d, it);
    }

    compare_result_free(it->result);
    shadow_record_clear(&it->rec);

    if (d->nfree_items < SHADOW_FREE_ITEMS) {
        if (it->payload_cap > SHADOW_REUSE_MAX) {
            free(it->payload);
            it->payload = NULL;
            it->payload_cap = 0;
        }

        it->next = d->free_items;
        d->free_items = it;
        d->nfree_items++;
        return;
    }

    free(it->payload);
    free(it);
}


void
shadow_items_free(shadow_daemon_t *d)
{
    shadow_item_t  *it, *next;
    shadow_xfer_t  *x, *xn;

    for (it = d->free_items; it; it = next) {
        next = it->next;
        free(it->payload);
        free(it);
    }

    d->free_items = NULL;

    for (x = d->pool; x; x = xn) {
        xn = x->next;
        shadow_xfer_free(x);
    }

    d->pool = NULL;
}


static uint32_t
shadow_key_hash(const char *key, size_t len)
{
    size_t    i;
    uint32_t  h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ (uint8_t) key[i]) * 16777619u;
    }

    return h;
}


static void
shadow_key_link(shadow_keyq_t **table, size_t cap, shadow_keyq_t *kq)
{
    shadow_keyq_t  **b = &table[kq->hash & (cap - 1)];

    kq->hnext = *b;
    if (*b != NULL) {
        (*b)->hprev = &kq->hnext;
    }

    kq->hprev = b;
    *b = kq;
}


/* Doubles the table; on no memory the old one stays (longer chains). */
static void
shadow_key_grow(shadow_daemon_t *d)
{
    size_t           i, cap;
    shadow_keyq_t  **table, *kq, *next;

    cap = d->nkeys_cap ? d->nkeys_cap * 2 : SHADOW_KEY_BUCKETS;

    table = calloc(cap, sizeof(shadow_keyq_t *));
    if (table == NULL) {
        return;
    }

    for (i = 0; i < d->nkeys_cap; i++) {
        for (kq = d->keys[i]; kq; kq = next) {
            next = kq->hnext;
            shadow_key_link(table, cap, kq);
        }
    }

    free(d->keys);
    d->keys = table;
    d->nkeys_cap = cap;
}


/* An idle key with nothing queued is forgotten (keys may be unbounded). */
void
shadow_keyq_drop(shadow_daemon_t *d, shadow_keyq_t *kq)
{
    if (kq->parked || kq->replay_left > 0 || kq->nparking > 0
        || kq->head != NULL || kq->busy)
    {
        return;
    }

    *kq->hprev = kq->hnext;
    if (kq->hnext != NULL) {
        kq->hnext->hprev = kq->hprev;
    }

    d->nkeys--;

    if (kq->small && d->nfree_keys < SHADOW_FREE_KEYS) {
        kq->hnext = d->free_keys;
        d->free_keys = kq;
        d->nfree_keys++;
        return;
    }

    free(kq);
}


shadow_keyq_t *
shadow_keyq_get(shadow_daemon_t *d, const char *key, size_t len)
{
    uint32_t        h = shadow_key_hash(key, len);
    shadow_keyq_t  *kq;

    if (d->nkeys >= d->nkeys_cap) {
        shadow_key_grow(d);
        if (d->keys == NULL) {
            return NULL;
        }
    }

    for (kq = d->keys[h & (d->nkeys_cap - 1)]; kq; kq = kq->hnext) {
        if (kq->hash == h && kq->len == len
            && memcmp(kq->key, key, len) == 0)
        {
            return kq;
        }
    }

    if (len < SHADOW_KEY_SMALL && d->free_keys != NULL) {
        kq = d->free_keys;
        d->free_keys = kq->hnext;
        d->nfree_keys--;
        memset(kq, 0, sizeof(*kq));

    } else {
        kq = calloc(1, sizeof(*kq)
                       + (len < SHADOW_KEY_SMALL ? SHADOW_KEY_SMALL : len + 1));
        if (kq == NULL) {
            return NULL;
        }
    }

    memcpy(kq->key, key, len);
    kq->key[len] = '\0';
    kq->len = len;
    kq->hash = h;
    kq->small = len < SHADOW_KEY_SMALL;
    shadow_key_link(d->keys, d->nkeys_cap, kq);
    d->nkeys++;
    return kq;
}


void
shadow_keys_free(shadow_daemon_t *d)
{
    size_t          i;
    shadow_keyq_t  *kq, *next;

    for (i = 0; i < d->nkeys_cap; i++) {
        for (kq = d->keys[i]; kq; kq = next) {
            next = kq->hnext;
            free(kq);
        }
    }

    for (kq = d->free_keys; kq; kq = next) {
        next = kq->hnext;
        free(kq);
    }

    free(d->keys);
}


void
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
