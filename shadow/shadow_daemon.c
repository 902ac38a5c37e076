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
 *
 * The engine is in five files around shadow_engine.h: this one (the loop,
 * the checkpoint, publishing), shadow_window.c (records from the log into
 * the window and their keys' queues), shadow_replay.c (the replay client:
 * requests on the other side, retries), shadow_results.c (compare, store,
 * flush) and shadow_park.c (parking keys in the dead-letter store and
 * replaying them).
 */

#include <sched.h>
#include <sys/resource.h>

#include "shadow/shadow_engine.h"


static void shadow_set_nice(shadow_daemon_t *d);
static void shadow_set_autogroup_nice(shadow_daemon_t *d);
static double shadow_cpu_seconds(void);
static void shadow_advance(shadow_daemon_t *d, int force);
static void shadow_delete_consumed(shadow_daemon_t *d);
static void shadow_publish(shadow_daemon_t *d);


int64_t
shadow_mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void
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


/*
 * A background replayer yields the CPU to the gateway it shares the
 * machine with.  By default it runs under SCHED_IDLE: only on CPU time
 * that no ordinary task wants, so nginx is never kept waiting by it (the
 * replay lags instead while the machine is saturated, and catches up
 * after; cutover_shadow_lag_* shows it).  Niceness ("nice") counts when
 * "sched_idle" is false: on a machine of 2 cores, nice alone still left
 * shadowd one core while nginx, wrk and the upstream queued on the other
 * (the scheduler keeps tasks that wake each other together).  Policy and
 * niceness are per thread on Linux: set first, threads started later
 * inherit them.  A failure is worth a warning, not a stop.
 */
static void
shadow_set_nice(shadow_daemon_t *d)
{
    int                 was;
    struct sched_param  sp;

    errno = 0;
    was = getpriority(PRIO_PROCESS, 0);
    if (errno != 0) {
        was = 0;
    }

    d->stats.nice = was;

    if (setpriority(PRIO_PROCESS, 0, d->cfg->nice) == -1) {
        shadow_log(d, SHADOW_LOG_WARN, "cannot set niceness %d (it stays "
                   "%d): %s", d->cfg->nice, was, strerror(errno));

    } else {
        d->stats.nice = d->cfg->nice;
        shadow_log(d, SHADOW_LOG_INFO, "niceness %d (was %d)", d->cfg->nice,
                   was);
    }

    if (d->cfg->sched_idle) {
        memset(&sp, 0, sizeof(sp));

        if (sched_setscheduler(0, SCHED_IDLE, &sp) == -1) {
            shadow_log(d, SHADOW_LOG_WARN, "cannot run under SCHED_IDLE: "
                       "%s", strerror(errno));

        } else {
            d->stats.sched_idle = 1;
            shadow_log(d, SHADOW_LOG_INFO, "scheduling policy SCHED_IDLE");
        }
    }

    shadow_set_autogroup_nice(d);
}


/*
 * With the kernel's autogroups (sched_autogroup_enabled), a session (a
 * daemon started on its own, a service) is scheduled as one group against
 * the other groups, and policy and niceness only count inside it: nginx in
 * another session would still share the CPU with shadowd as equals.  A
 * shadowd that leads its own session sets its group's niceness too (19
 * under SCHED_IDLE); one started in nginx's session leaves the group alone,
 * since its niceness would be nginx's as well.
 */
static void
shadow_set_autogroup_nice(shadow_daemon_t *d)
{
    int    fd, n, nice;
    char   buf[16];

    if (getsid(0) != getpid()) {
        return;
    }

    fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
    if (fd == -1) {
        return;                         /* no autogroups: nothing to do */
    }

    nice = d->stats.sched_idle ? 19 : d->cfg->nice;
    n = snprintf(buf, sizeof(buf), "%d", nice);

    if (write(fd, buf, (size_t) n) != n) {
        shadow_log(d, SHADOW_LOG_WARN, "cannot set the niceness of its "
                   "scheduling group to %d: %s (nginx in another session "
                   "may get no more CPU than shadowd)", nice,
                   strerror(errno));

    } else {
        shadow_log(d, SHADOW_LOG_INFO, "scheduling group niceness %d",
                   nice);
    }

    close(fd);
}


static double
shadow_cpu_seconds(void)
{
    struct rusage  ru;

    if (getrusage(RUSAGE_SELF, &ru) == -1) {
        return 0;
    }

    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
           + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}


/*
 * Kept whole (past 80 lines): every handle is made in order and freed on
 * one cleanup path.
 */
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
    d->epfd = -1;

    /* before any thread starts (metrics, resolver): they inherit it */
    shadow_set_nice(d);

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
    if (d->multi == NULL || shadow_curl_setup(d) != SHADOW_OK) {
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
    shadow_item_t  *it, *next;

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

    shadow_keys_free(d);
    shadow_items_free(d);
    free(d->ph);
    free(d->ph_buf);

    if (d->multi != NULL) {
        curl_multi_cleanup(d->multi);
    }

    if (d->epfd != -1) {
        close(d->epfd);
    }

    compare_store_free(d->store);
    compare_rules_free(d->rules);
    shadow_reader_free(d->reader);
    free(d);
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
    d->stats.cpu_seconds = shadow_cpu_seconds();
    d->stats.oldest_wait_seconds = d->wait_head
        ? (shadow_mono_ms() - d->wait_head->first_fail_ms) / 1000.0 : 0;

    if (d->metrics != NULL) {
        shadow_metrics_publish(d->metrics, &d->stats);
    }
}


int
shadow_daemon_run(shadow_daemon_t *d, volatile sig_atomic_t *stop)
{
    int             wait_ms;
    int64_t         last_publish = 0, now;
    shadow_item_t  *it;

    shadow_log(d, SHADOW_LOG_INFO, "replaying \"%s\" from segment %llu "
               "offset %llu", d->cfg->log, (unsigned long long) d->ckpt.seq,
               (unsigned long long) d->ckpt.off);

    while (!*stop) {
        shadow_read_more(d);
        shadow_dispatch(d);
        shadow_curl_timer(d);
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

        shadow_curl_wait(d, wait_ms);
    }

    /* abandon what is in flight: it is replayed after the restart */
    for (it = d->head; it; it = it->next) {
        if (it->x != NULL && it->state == SHADOW_ITEM_RUNNING) {
            curl_multi_remove_handle(d->multi, it->x->easy);
            shadow_release_handle(d, it);
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
