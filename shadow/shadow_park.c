/*
 * shadow_park: keys parked in the dead-letter store (fsynced before the
 * checkpoint passes their records), and dead letters an operator hands
 * back, replayed in order.
 */

#include "shadow/shadow_engine.h"


static void shadow_dl_sync_key(shadow_daemon_t *d, shadow_keyq_t *kq);
static int shadow_dl_load_entry(void *ctx, const shadow_dl_entry_t *e);
static int shadow_dl_first(void *ctx, const shadow_dl_entry_t *e);


/*
 * The key's head record waited max_wait_ms: it and every later record of
 * the key go to the dead-letter store, and so does whatever of the key is
 * read until an operator acts: replaying the later ones without it would
 * apply them out of order.
 */
void
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


void
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


/* ---- the dead-letter store ------------------------------------------- */

/*
 * Writes the parking records, in log order, under the store's lock (the
 * dead-letter command holds it while it acts; then we try next time).  A
 * key whose .dl file we wrote is gone was replayed or discarded by an
 * operator: it is unparked first, and its records go out as usual.  Kept
 * whole (past 80 lines): it is one sequence under the store's lock.
 */
void
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
    it = kq ? shadow_item_new(d, e->payload, e->len) : NULL;
    if (it == NULL) {
        shadow_log(d, SHADOW_LOG_ERR, "out of memory loading dead letters");
        return 1;
    }

    it->from_dl = 1;

    if (shadow_record_decode(it->payload, it->len, &it->rec, &err)
        != SHADOW_OK)
    {
        shadow_log(d, SHADOW_LOG_WARN, "dead letter of key \"%s\" skipped: "
                   "%s", kq->key, err.message);
        shadow_item_free(d, it);
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
void
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
void
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
int
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
