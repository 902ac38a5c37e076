/*
 * ngx_http_cutover_guard: cutover_guard (the window of each rule fed in
 * the log phase, the check once a second, the trip), the ramp's steps,
 * and the upstream figures by side and rule.
 *
 * Once a second per zone, one worker (whichever first crosses into a new
 * second, from a request's log phase or from its one-second timer, by an
 * atomic on the zone) rotates the windows, checks them and takes a due
 * ramp step.  Requests only add to their bucket with atomic adds.  A trip
 * and a ramp step are written like an admin change, by a thread-pool
 * thread under the writer lock; the event loop never waits for a disk.
 */

#include "ngx_http_cutover_admin.h"


#define NGX_HTTP_CUTOVER_GUARD_REASONS  2       /* error_rate, latency */
#define NGX_HTTP_CUTOVER_GUARD_TEXT     320


/* In the zone, when cutover_guard is set. */
typedef struct {
    uint32_t                   window;         /* what the windows are for */
    size_t                     wsize;          /* bytes of one window */
    u_char                    *windows;        /* CUTOVER_MAX_RULES */

    /* the dial each rule slot had at the last check: a change restarts
     * the window; touched by the worker that checks only */
    uint32_t                   seen_bp[CUTOVER_MAX_RULES];
    uint32_t                   seen_rolled_back[CUTOVER_MAX_RULES];
    uint32_t                   seen[CUTOVER_MAX_RULES];

    /* after an alert, the rule is not checked again for a window */
    uint32_t                   quiet_until[CUTOVER_MAX_RULES];

    ngx_atomic_t               trips[CUTOVER_MAX_RULES][
                                   NGX_HTTP_CUTOVER_GUARD_REASONS];
    ngx_atomic_t               trips_skipped;  /* a trip still in flight */

    /* the last trip, under shpool->mutex */
    ngx_uint_t                 has_trip;
    time_t                     trip_time;
    char                       trip_rule[CUTOVER_ID_MAX + 1];
    char                       trip_reason[NGX_HTTP_CUTOVER_GUARD_TEXT];
    ngx_uint_t                 trip_kind;
    ngx_uint_t                 trip_action;
    ngx_int_t                  trip_persisted; /* -1: pending or n/a */
} ngx_http_cutover_guard_sh_t;


/* A ramp step or an alert entry, written by a thread-pool thread. */
typedef struct {
    ngx_http_cutover_zone_t   *zone;
    cutover_state_t           *cur;
    cutover_state_t           *next;
    char                      *from;
    char                      *to;
    ngx_int_t                  rule;
    ngx_uint_t                 done;           /* the step was taken */
    char                       reason[NGX_HTTP_CUTOVER_GUARD_TEXT];
    u_char                     tmpname[NGX_MAX_PATH];
} ngx_http_cutover_step_t;


/* Per worker and zone. */
typedef struct {
    ngx_http_cutover_zone_t   *zone;
    ngx_event_t                timer;
    cutover_state_t           *st;             /* scratch copy */

    ngx_thread_task_t         *trip;           /* ngx_http_cutover_write_t */
    ngx_http_cutover_admin_t   trip_admin;
    ngx_uint_t                 trip_busy;
    char                       trip_reason[NGX_HTTP_CUTOVER_GUARD_TEXT];

    ngx_thread_task_t         *step;           /* ngx_http_cutover_step_t */
    ngx_uint_t                 step_busy;
    ngx_thread_task_t         *alert;          /* ngx_http_cutover_step_t */
    ngx_uint_t                 alert_busy;
} ngx_http_cutover_guard_worker_t;


static ngx_int_t ngx_http_cutover_guard_log(ngx_http_request_t *r);
static void ngx_http_cutover_guard_timer(ngx_event_t *ev);
static void ngx_http_cutover_guard_tick(ngx_http_cutover_guard_worker_t *wk,
    uint32_t now);
static void ngx_http_cutover_guard_check(ngx_http_cutover_guard_worker_t *wk,
    ngx_http_cutover_guard_sh_t *g, uint32_t last, uint32_t now);
static void ngx_http_cutover_guard_trip(ngx_http_cutover_guard_worker_t *wk,
    ngx_http_cutover_guard_sh_t *g, cutover_rule_t *rule, int verdict,
    const char *reason);
static void ngx_http_cutover_guard_tripped(ngx_event_t *ev);
static void ngx_http_cutover_alert_write(void *data, ngx_log_t *log);
static void ngx_http_cutover_alert_done(ngx_event_t *ev);
static void ngx_http_cutover_step_post(ngx_http_cutover_guard_worker_t *wk,
    int rule);
static void ngx_http_cutover_step_write(void *data, ngx_log_t *log);
static void ngx_http_cutover_step_done(ngx_event_t *ev);
static ngx_http_cutover_guard_sh_t *ngx_http_cutover_guard_sh(
    ngx_http_cutover_zone_t *zone);
static cutover_guard_window_t *ngx_http_cutover_guard_window(
    ngx_http_cutover_guard_sh_t *g, ngx_uint_t slot);


/* upper bounds of cutover_upstream_response_seconds, ms; +Inf last */
static ngx_msec_t  ngx_http_cutover_up_bounds[NGX_HTTP_CUTOVER_UP_BUCKETS - 1]
    = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };

static const char  *ngx_http_cutover_up_labels[NGX_HTTP_CUTOVER_UP_BUCKETS]
    = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
        "5", "10", "+Inf" };


/* cutover_guard <zone> error_rate=2% latency_p99=800ms window=30s
 *               min_requests=200 action=rollback|alert */
char *
ngx_http_cutover_guard(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_main_conf_t  *cmcf = conf;

    ngx_str_t                *value;
    ngx_uint_t                i;
    cutover_error_t           err;
    ngx_shm_zone_t          **zones, *shm_zone;
    cutover_guard_conf_t     *gc;
    ngx_http_cutover_zone_t  *zone;

    value = cf->args->elts;
    shm_zone = NULL;
    zones = cmcf->zones.elts;

    for (i = 0; i < cmcf->zones.nelts; i++) {
        if (zones[i]->shm.name.len == value[1].len
            && ngx_strncmp(zones[i]->shm.name.data, value[1].data,
                           value[1].len) == 0)
        {
            shm_zone = zones[i];
            break;
        }
    }

    if (shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "no cutover_zone \"%V\" "
                           "before this cutover_guard", &value[1]);
        return NGX_CONF_ERROR;
    }

    zone = shm_zone->data;

    if (zone->guard) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "duplicate cutover_guard "
                           "for zone \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    gc = ngx_pcalloc(cf->pool, sizeof(cutover_guard_conf_t));
    if (gc == NULL) {
        return NGX_CONF_ERROR;
    }

    gc->min_requests = 100;
    gc->action = CUTOVER_GUARD_ROLLBACK;

    for (i = 2; i < cf->args->nelts; i++) {
        if ((value[i].len > 9
             && ngx_strncmp(value[i].data, "mismatch=", 9) == 0)
            || (value[i].len > 10
                && ngx_strncmp(value[i].data, "min_pairs=", 10) == 0)
            || cutover_guard_param(gc, (char *) value[i].data, value[i].len,
                                   &err) != 0)
        {
            if (value[i].data[0] == 'm' && value[i].data[1] == 'i'
                && value[i].data[2] != 'n')
            {
                cutover_error_set(&err, "invalid_guard", "mismatch= is "
                                  "cutover-shadowd's guard, not nginx's");

            } else if (ngx_strncmp(value[i].data, "min_pairs=", 10) == 0) {
                cutover_error_set(&err, "invalid_guard", "unknown parameter "
                                  "\"min_pairs\" (min_requests here)");
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "cutover_guard: %s",
                               err.message);
            return NGX_CONF_ERROR;
        }
    }

    if (gc->window == 0) {
        gc->window = 30;
    }

    if (cutover_guard_conf_check(gc, &err) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "cutover_guard: %s",
                           err.message);
        return NGX_CONF_ERROR;
    }

    zone->guard = gc;

    /* the windows live in the zone, on top of its size= */
    shm_zone->shm.size += CUTOVER_MAX_RULES
                          * cutover_guard_window_size(gc->window)
                          + sizeof(ngx_http_cutover_guard_sh_t)
                          + 16 * ngx_pagesize;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_cutover_guard_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cutover_guard_log;

    return NGX_OK;
}


/* From the zone's init: the guard's part of the zone, once. */
ngx_int_t
ngx_http_cutover_guard_init_zone(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log)
{
    ngx_uint_t                    i;
    ngx_http_cutover_guard_sh_t  *g;

    if (zone->guard == NULL || zone->sh->guard) {
        /* a kept zone keeps its windows; a changed window= changes the
         * zone's size, and nginx then makes a new zone */
        return NGX_OK;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    g = ngx_slab_calloc_locked(zone->shpool,
                               sizeof(ngx_http_cutover_guard_sh_t));
    if (g) {
        g->window = zone->guard->window;
        g->wsize = ngx_align(cutover_guard_window_size(g->window), 8);
        g->windows = ngx_slab_alloc_locked(zone->shpool,
                                           CUTOVER_MAX_RULES * g->wsize);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (g == NULL || g->windows == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "cutover zone \"%V\" has no "
                      "room for the guard's windows", &zone->name);
        return NGX_ERROR;
    }

    for (i = 0; i < CUTOVER_MAX_RULES; i++) {
        cutover_guard_window_init(ngx_http_cutover_guard_window(g, i),
                                  g->window);
    }

    g->trip_persisted = -1;
    zone->sh->guard = g;

    return NGX_OK;
}


static ngx_http_cutover_guard_sh_t *
ngx_http_cutover_guard_sh(ngx_http_cutover_zone_t *zone)
{
    ngx_http_cutover_guard_sh_t  *g = zone->sh->guard;

    if (zone->guard == NULL || g == NULL || g->window != zone->guard->window) {
        return NULL;
    }

    return g;
}


static cutover_guard_window_t *
ngx_http_cutover_guard_window(ngx_http_cutover_guard_sh_t *g, ngx_uint_t slot)
{
    return (cutover_guard_window_t *) (g->windows
                                       + (slot % CUTOVER_MAX_RULES) * g->wsize);
}


/* Each worker: its timer, its tasks, a scratch state, for each zone. */
ngx_int_t
ngx_http_cutover_guard_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                        i;
    ngx_shm_zone_t                  **zones;
    ngx_http_cutover_zone_t          *zone;
    ngx_http_cutover_write_t         *w;
    ngx_http_cutover_step_t          *s;
    ngx_http_cutover_main_conf_t     *cmcf;
    ngx_http_cutover_guard_worker_t  *wk;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_cutover_module);
    if (cmcf == NULL) {
        return NGX_OK;
    }

    zones = cmcf->zones.elts;

    for (i = 0; i < cmcf->zones.nelts; i++) {
        zone = zones[i]->data;

        wk = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cutover_guard_worker_t));
        if (wk == NULL) {
            return NGX_ERROR;
        }

        wk->zone = zone;
        wk->st = ngx_palloc(cycle->pool, sizeof(cutover_state_t));

        wk->trip = ngx_thread_task_alloc(cycle->pool,
                                         sizeof(ngx_http_cutover_write_t));
        wk->step = ngx_thread_task_alloc(cycle->pool,
                                         sizeof(ngx_http_cutover_step_t));
        wk->alert = ngx_thread_task_alloc(cycle->pool,
                                          sizeof(ngx_http_cutover_step_t));
        if (wk->st == NULL || wk->trip == NULL || wk->step == NULL
            || wk->alert == NULL)
        {
            return NGX_ERROR;
        }

        w = wk->trip->ctx;
        w->c = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cutover_change_t));
        w->cur = ngx_palloc(cycle->pool, sizeof(cutover_state_t));
        w->next = ngx_palloc(cycle->pool, sizeof(cutover_state_t));
        w->from = ngx_pnalloc(cycle->pool, 128);
        w->to = ngx_pnalloc(cycle->pool, 128);
        if (w->c == NULL || w->cur == NULL || w->next == NULL
            || w->from == NULL || w->to == NULL)
        {
            return NGX_ERROR;
        }

        wk->trip->handler = ngx_http_cutover_change_write;
        wk->trip->event.handler = ngx_http_cutover_guard_tripped;
        wk->trip->event.data = wk;

        s = wk->step->ctx;
        s->zone = zone;
        s->cur = ngx_palloc(cycle->pool, sizeof(cutover_state_t));
        s->next = ngx_palloc(cycle->pool, sizeof(cutover_state_t));
        s->from = ngx_pnalloc(cycle->pool, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX);
        s->to = ngx_pnalloc(cycle->pool, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX);
        if (s->cur == NULL || s->next == NULL || s->from == NULL
            || s->to == NULL)
        {
            return NGX_ERROR;
        }

        wk->step->handler = ngx_http_cutover_step_write;
        wk->step->event.handler = ngx_http_cutover_step_done;
        wk->step->event.data = wk;

        s = wk->alert->ctx;
        s->zone = zone;
        wk->alert->handler = ngx_http_cutover_alert_write;
        wk->alert->event.handler = ngx_http_cutover_alert_done;
        wk->alert->event.data = wk;

        zone->guard_worker = wk;

        /* the timer does not keep a worker from shutting down */
        wk->timer.handler = ngx_http_cutover_guard_timer;
        wk->timer.data = wk;
        wk->timer.log = cycle->log;
        wk->timer.cancelable = 1;
        ngx_add_timer(&wk->timer, 1000);
    }

    return NGX_OK;
}


static void
ngx_http_cutover_guard_timer(ngx_event_t *ev)
{
    ngx_http_cutover_guard_worker_t  *wk = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_http_cutover_guard_tick(wk, (uint32_t) ngx_time());

    ngx_add_timer(&wk->timer, 1000);
}


/* The log phase: upstream figures by side and rule, and the guard's
 * window for requests the new side served. */
static ngx_int_t
ngx_http_cutover_guard_log(ngx_http_request_t *r)
{
    uint32_t                          now;
    ngx_uint_t                        side, slot, b, error;
    ngx_msec_t                        ms;
    ngx_http_cutover_ctx_t           *ctx;
    ngx_http_cutover_zone_t          *zone;
    ngx_http_upstream_state_t        *state;
    ngx_http_cutover_guard_sh_t      *g;
    ngx_http_cutover_guard_worker_t  *wk;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cutover_module);

    if (ctx == NULL || ctx->admin || ctx->zone == NULL
        || r->upstream_states == NULL || r->upstream_states->nelts == 0)
    {
        return NGX_OK;
    }

    state = r->upstream_states->elts;
    state = &state[r->upstream_states->nelts - 1];

    if (state->status == 0) {
        return NGX_OK;          /* no answer yet: the client went away */
    }

    /* nginx's own 502 and 504 (no answer) are statuses here too */
    error = state->status >= NGX_HTTP_INTERNAL_SERVER_ERROR;
    ms = state->response_time == (ngx_msec_t) -1 ? 0 : state->response_time;

    zone = ctx->zone;
    side = ctx->route.to_new ? 1 : 0;
    slot = ctx->route.counter % CUTOVER_MAX_RULES;

    for (b = 0; b < NGX_HTTP_CUTOVER_UP_BUCKETS - 1; b++) {
        if (ms <= ngx_http_cutover_up_bounds[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&zone->sh->upstream_hist[slot][side][b], 1);
    (void) ngx_atomic_fetch_add(&zone->sh->upstream_ms[slot][side], ms);

    if (error) {
        (void) ngx_atomic_fetch_add(&zone->sh->upstream_errors[slot][side],
                                    1);
    }

    g = ngx_http_cutover_guard_sh(zone);
    wk = zone->guard_worker;

    if (!side || g == NULL || wk == NULL) {
        return NGX_OK;
    }

    now = (uint32_t) ngx_time();

    if (zone->sh->tick_sec < now) {
        ngx_http_cutover_guard_tick(wk, now);
    }

    (void) cutover_guard_add(ngx_http_cutover_guard_window(g, slot), now,
                             (int) error, ms);

    return NGX_OK;
}


/* Once a second per zone, in whichever worker wins the second. */
static void
ngx_http_cutover_guard_tick(ngx_http_cutover_guard_worker_t *wk, uint32_t now)
{
    int                           n;
    ngx_atomic_uint_t             last;
    ngx_http_cutover_zone_t      *zone = wk->zone;
    ngx_http_cutover_guard_sh_t  *g;

    last = zone->sh->tick_sec;

    if (last >= now
        || !ngx_atomic_cmp_set(&zone->sh->tick_sec, last, now))
    {
        return;
    }

    ngx_http_cutover_zone_copy(zone, wk->st);

    g = ngx_http_cutover_guard_sh(zone);
    if (g) {
        ngx_http_cutover_guard_check(wk, g, (uint32_t) last, now);
    }

    n = cutover_state_ramp_due(wk->st, (int64_t) now);

    if (n >= 0 && !wk->step_busy) {
        ngx_http_cutover_step_post(wk, n);
    }
}


static void
ngx_http_cutover_guard_check(ngx_http_cutover_guard_worker_t *wk,
    ngx_http_cutover_guard_sh_t *g, uint32_t last, uint32_t now)
{
    int                      verdict;
    char                     reason[NGX_HTTP_CUTOVER_GUARD_TEXT];
    uint32_t                 i, slot;
    cutover_rule_t          *rule;
    cutover_state_t         *st = wk->st;
    cutover_guard_sum_t      sum;
    cutover_guard_conf_t    *gc = wk->zone->guard;
    cutover_guard_window_t  *w;

    for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
        rule = &st->rules[i];
        slot = rule->counter % CUTOVER_MAX_RULES;
        w = ngx_http_cutover_guard_window(g, slot);

        cutover_guard_rotate(w, last, now);

        /* a changed dial (dial, ramp step, rollback) starts afresh: the
         * change was made during the last second, so this second's
         * requests already count */
        if (!g->seen[slot] || g->seen_bp[slot] != rule->bp
            || g->seen_rolled_back[slot] != st->rolled_back)
        {
            if (g->seen[slot]) {
                cutover_guard_restart(w, now - 1);
                g->quiet_until[slot] = 0;
            }

            g->seen[slot] = 1;
            g->seen_bp[slot] = rule->bp;
            g->seen_rolled_back[slot] = st->rolled_back;
            continue;
        }

        if (st->rolled_back || rule->bp == 0) {
            continue;               /* the new side serves nothing */
        }

        if (now < g->quiet_until[slot]) {
            continue;               /* alerted within the window */
        }

        cutover_guard_sum(w, now, gc->window, &sum);

        verdict = cutover_guard_check(gc, &sum, rule->id, reason,
                                      sizeof(reason));
        if (verdict != CUTOVER_GUARD_OK) {
            /* once per crossing: a rollback changes the dial, which starts
             * the window afresh; an alert is not repeated for a window */
            cutover_guard_restart(w, now);

            if (gc->action == CUTOVER_GUARD_ALERT) {
                g->quiet_until[slot] = now + gc->window;
            }

            ngx_http_cutover_guard_trip(wk, g, rule, verdict, reason);
        }
    }
}


static void
ngx_http_cutover_guard_trip(ngx_http_cutover_guard_worker_t *wk,
    ngx_http_cutover_guard_sh_t *g, cutover_rule_t *rule, int verdict,
    const char *reason)
{
    ngx_uint_t                   slot;
    cutover_guard_conf_t        *gc = wk->zone->guard;
    ngx_http_cutover_step_t     *s;
    ngx_http_cutover_write_t    *w;
    ngx_http_cutover_admin_t    *a;
    ngx_http_cutover_zone_t     *zone = wk->zone;

    slot = rule->counter % CUTOVER_MAX_RULES;

    (void) ngx_atomic_fetch_add(&g->trips[slot][verdict
                                           == CUTOVER_GUARD_LATENCY], 1);

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "cutover zone \"%V\": %s; %s", &zone->name, reason,
                  gc->action == CUTOVER_GUARD_ALERT
                  ? "action=alert: nothing changed" : "rolling back");

    ngx_shmtx_lock(&zone->shpool->mutex);

    g->has_trip = 1;
    g->trip_time = ngx_time();
    ngx_cpystrn((u_char *) g->trip_rule, (u_char *) rule->id,
                sizeof(g->trip_rule));
    ngx_cpystrn((u_char *) g->trip_reason, (u_char *) reason,
                sizeof(g->trip_reason));
    g->trip_kind = (ngx_uint_t) verdict;
    g->trip_action = (ngx_uint_t) gc->action;
    g->trip_persisted = -1;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (gc->action == CUTOVER_GUARD_ALERT) {
        if (wk->alert_busy) {
            (void) ngx_atomic_fetch_add(&g->trips_skipped, 1);
            return;
        }

        s = wk->alert->ctx;
        ngx_cpystrn((u_char *) s->reason, (u_char *) reason,
                    sizeof(s->reason));

        if (ngx_thread_task_post(zone->thread_pool, wk->alert) == NGX_OK) {
            wk->alert_busy = 1;
        }

        return;
    }

    if (wk->trip_busy) {
        /* this worker's rollback is still being written: it covers it */
        (void) ngx_atomic_fetch_add(&g->trips_skipped, 1);
        return;
    }

    ngx_cpystrn((u_char *) wk->trip_reason, (u_char *) reason,
                sizeof(wk->trip_reason));

    a = &wk->trip_admin;
    ngx_memzero(a, sizeof(ngx_http_cutover_admin_t));
    a->zone = zone;
    a->ep = NGX_HTTP_CUTOVER_EP_ROLLBACK;
    a->key_id = "guard";
    a->reason = wk->trip_reason;

    w = wk->trip->ctx;
    ngx_memzero(&w->answer, sizeof(ngx_http_cutover_answer_t));
    w->answer.a = a;
    w->persisted = 0;

    if (ngx_thread_task_post(zone->thread_pool, wk->trip) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cutover zone \"%V\": the guard's rollback could not "
                      "be queued; the next check tries again", &zone->name);
        cutover_guard_restart(ngx_http_cutover_guard_window(g, slot), 0);
        return;
    }

    wk->trip_busy = 1;
}


static void
ngx_http_cutover_guard_tripped(ngx_event_t *ev)
{
    ngx_http_cutover_guard_worker_t  *wk = ev->data;

    ngx_uint_t                    level;
    ngx_http_cutover_write_t     *w = wk->trip->ctx;
    ngx_http_cutover_zone_t      *zone = wk->zone;
    ngx_http_cutover_guard_sh_t  *g = zone->sh->guard;

    wk->trip_busy = 0;
    level = w->persisted ? NGX_LOG_WARN : NGX_LOG_ERR;

    ngx_log_error(level, ngx_cycle->log, 0,
                  "cutover zone \"%V\": rolled back by the guard, version "
                  "%uL%s: %s", &zone->name, w->next->version,
                  w->persisted ? "" : " (in memory only: the state file "
                  "could not be written)", wk->trip_reason);

    if (g) {
        ngx_shmtx_lock(&zone->shpool->mutex);
        g->trip_persisted = w->persisted ? 1 : 0;
        ngx_shmtx_unlock(&zone->shpool->mutex);
    }
}


/* An alert's entry in the audit trail (no state change). */
static void
ngx_http_cutover_alert_write(void *data, ngx_log_t *log)
{
    ngx_http_cutover_step_t  *s = data;

    cutover_audit_entry_t      e;
    ngx_http_cutover_zone_t   *z = s->zone;

    ngx_http_cutover_writer_lock(z->sh);

    (void) ngx_http_cutover_audit_sync(z, log);

    ngx_memzero(&e, sizeof(e));
    e.time = ngx_time();
    e.key_id = "guard";
    e.action = "guard_alert";
    e.result = "recorded";
    e.reason = s->reason;

    if (ngx_http_cutover_audit_append(z, &e, log) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": the "
                      "guard's alert has no audit entry (the trail cannot "
                      "be written): %s", &z->name, s->reason);
    }

    ngx_http_cutover_writer_unlock(z->sh);
}


static void
ngx_http_cutover_alert_done(ngx_event_t *ev)
{
    ngx_http_cutover_guard_worker_t  *wk = ev->data;

    wk->alert_busy = 0;
}


static void
ngx_http_cutover_step_post(ngx_http_cutover_guard_worker_t *wk, int rule)
{
    ngx_http_cutover_step_t  *s = wk->step->ctx;

    s->rule = rule;
    s->done = 0;

    if (ngx_thread_task_post(wk->zone->thread_pool, wk->step) == NGX_OK) {
        wk->step_busy = 1;
    }
}


/* A ramp step, as POST dial writes a dial: state file, entry, commit. */
static void
ngx_http_cutover_step_write(void *data, ngx_log_t *log)
{
    ngx_http_cutover_step_t  *s = data;

    int                        n;
    char                       pct[3][16];
    int64_t                    now;
    ngx_str_t                  tmp;
    cutover_rule_t            *rule;
    cutover_error_t            err;
    cutover_audit_entry_t      e;
    ngx_http_cutover_zone_t   *z = s->zone;
    ngx_http_cutover_shctx_t  *sh = z->sh;

    tmp.data = s->tmpname;
    now = ngx_time();

    ngx_http_cutover_writer_lock(sh);

    ngx_http_cutover_zone_copy(z, s->cur);
    (void) ngx_http_cutover_audit_sync(z, log);

    /* due still (not ended or taken meanwhile by another worker)? */
    n = cutover_state_ramp_due(s->cur, now);
    if (n < 0) {
        goto done;
    }

    if (!sh->audit_ok || sh->audit_pending_break) {
        /* as for a dial: no change without its entry; tried again */
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": a ramp "
                      "step waits: the audit trail cannot be written or "
                      "holds an unaccepted break", &z->name);
        goto failed;
    }

    if (cutover_state_ramp_step(s->next, s->cur, n, now, &err) != CUTOVER_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": ramp step "
                      "failed: %s", &z->name, err.message);
        goto failed;
    }

    rule = &s->cur->rules[n];
    cutover_percent_format(rule->bp, pct[0]);
    cutover_percent_format(s->next->rules[n].bp, pct[1]);
    cutover_percent_format(rule->ramp_to, pct[2]);

    ngx_snprintf((u_char *) s->reason, sizeof(s->reason) - 1,
                 "ramp: rule %s %s%% -> %s%% (to %s%%, every %uDs)%Z",
                 rule->id, pct[0], pct[1], pct[2], rule->ramp_every);
    s->reason[sizeof(s->reason) - 1] = '\0';

    ngx_http_cutover_audit_rule(s->cur, n, s->from);
    ngx_http_cutover_audit_rule(s->next, n, s->to);

    if (ngx_http_cutover_zone_persist(z, s->next, log, &tmp) != NGX_OK) {
        goto failed;
    }

    ngx_memzero(&e, sizeof(e));
    e.time = now;
    e.key_id = "ramp";
    e.action = "dial";
    e.result = "accepted";
    e.from = s->from;
    e.to = s->to;
    e.reason = s->reason;

    if (ngx_http_cutover_audit_append(z, &e, log) != NGX_OK) {
        (void) ngx_delete_file(tmp.data);
        goto failed;
    }

    if (ngx_http_cutover_zone_commit(z, s->next, &tmp, log) != NGX_OK) {
        goto failed;
    }

    ngx_http_cutover_zone_publish(z, s->next);
    s->done = 1;

    (void) ngx_atomic_fetch_add(&sh->changes_accepted, 1);
    goto done;

failed:

    (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);

done:

    ngx_http_cutover_writer_unlock(sh);
}


static void
ngx_http_cutover_step_done(ngx_event_t *ev)
{
    ngx_http_cutover_guard_worker_t  *wk = ev->data;

    ngx_http_cutover_step_t  *s = wk->step->ctx;

    wk->step_busy = 0;

    if (s->done) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "cutover zone \"%V\": %s, version %uL",
                      &wk->zone->name, s->reason, s->next->version);
    }
}


/* ,"ramp":{"to","step","every","next_at"} while a ramp runs */
u_char *
ngx_http_cutover_ramp_json(cutover_rule_t *rule, u_char *p)
{
    char  to[16], step[16];

    if (rule->ramp_step == 0) {
        return p;
    }

    cutover_percent_format(rule->ramp_to, to);
    cutover_percent_format(rule->ramp_step, step);

    return ngx_sprintf(p, ",\"ramp\":{\"to\":%s,\"step\":%s,\"every\":%uD,"
                       "\"next_at\":%L}", to, step, rule->ramp_every,
                       rule->ramp_next);
}


size_t
ngx_http_cutover_guard_status_size(cutover_state_t *st)
{
    return 1024 + NGX_HTTP_CUTOVER_GUARD_TEXT + st->nrules * 160;
}


/* ,"guard":{"window","action","rules":[...],"last_trip":{...}|null} */
u_char *
ngx_http_cutover_guard_status(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, u_char *p)
{
    uint32_t                      i, now;
    cutover_guard_sum_t          *sum;
    ngx_http_cutover_guard_sh_t  *g;

    g = ngx_http_cutover_guard_sh(zone);

    if (g == NULL) {
        return ngx_cpymem(p, ",\"guard\":null", 13);
    }

    sum = ngx_alloc(sizeof(cutover_guard_sum_t), ngx_cycle->log);
    if (sum == NULL) {
        return ngx_cpymem(p, ",\"guard\":null", 13);
    }

    now = (uint32_t) ngx_time();

    p = ngx_sprintf(p, ",\"guard\":{\"window\":%uD,\"action\":\"%s\","
                    "\"rules\":[", zone->guard->window,
                    zone->guard->action == CUTOVER_GUARD_ALERT ? "alert"
                                                               : "rollback");

    for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
        cutover_guard_sum(ngx_http_cutover_guard_window(g,
                              st->rules[i].counter),
                          now, zone->guard->window, sum);

        p = ngx_sprintf(p, "%s{\"id\":\"%s\",\"requests\":%uL,"
                        "\"error_rate\":%.2f,\"latency_p99_ms\":%.1f}",
                        i ? "," : "", st->rules[i].id, sum->requests,
                        cutover_guard_error_rate(sum),
                        cutover_guard_percentile(sum->hist, 99));
    }

    ngx_free(sum);

    p = ngx_cpymem(p, "],\"last_trip\":", 14);

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (!g->has_trip) {
        p = ngx_cpymem(p, "null", 4);

    } else {
        p = ngx_sprintf(p, "{\"time\":%T,\"rule\":\"%s\",\"reason\":\"%s\","
                        "\"kind\":\"%s\",\"action\":\"%s\",\"persisted\":%s}",
                        g->trip_time, g->trip_rule, g->trip_reason,
                        cutover_guard_reason_name((int) g->trip_kind),
                        g->trip_action == CUTOVER_GUARD_ALERT ? "alert"
                                                              : "rollback",
                        g->trip_persisted < 0 ? "null"
                        : g->trip_persisted ? "true" : "false");
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return ngx_cpymem(p, "}", 1);
}


size_t
ngx_http_cutover_guard_metrics_size(cutover_state_t *st)
{
    return 4096 + st->nrules * (2 * NGX_HTTP_CUTOVER_UP_BUCKETS + 16) * 160;
}


u_char *
ngx_http_cutover_guard_metrics(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, u_char *p)
{
    uint32_t                      i, now, slot;
    ngx_uint_t                    side, b, k;
    ngx_str_t                    *zn = &zone->name;
    ngx_atomic_uint_t             cum;
    cutover_guard_sum_t          *sum;
    ngx_http_cutover_shctx_t     *sh = zone->sh;
    ngx_http_cutover_guard_sh_t  *g;
    static const char            *sides[2] = { "legacy", "new" };

    p = ngx_sprintf(p,
            "# HELP cutover_upstream_response_seconds Upstream response "
            "time, by side and rule.\n"
            "# TYPE cutover_upstream_response_seconds histogram\n");

    for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
        slot = st->rules[i].counter % CUTOVER_MAX_RULES;

        for (side = 0; side < 2; side++) {
            cum = 0;

            for (b = 0; b < NGX_HTTP_CUTOVER_UP_BUCKETS; b++) {
                cum += sh->upstream_hist[slot][side][b];
                p = ngx_sprintf(p, "cutover_upstream_response_seconds_bucket"
                                "{zone=\"%V\",side=\"%s\",rule=\"%s\","
                                "le=\"%s\"} %uA\n", zn, sides[side],
                                st->rules[i].id,
                                ngx_http_cutover_up_labels[b], cum);
            }

            p = ngx_sprintf(p, "cutover_upstream_response_seconds_sum"
                            "{zone=\"%V\",side=\"%s\",rule=\"%s\"} %uA.%03uA\n"
                            "cutover_upstream_response_seconds_count"
                            "{zone=\"%V\",side=\"%s\",rule=\"%s\"} %uA\n",
                            zn, sides[side], st->rules[i].id,
                            sh->upstream_ms[slot][side] / 1000,
                            sh->upstream_ms[slot][side] % 1000,
                            zn, sides[side], st->rules[i].id, cum);
        }
    }

    p = ngx_sprintf(p,
            "# HELP cutover_upstream_errors_total Upstream answers of 5xx "
            "or none (nginx's 502/504), by side and rule.\n"
            "# TYPE cutover_upstream_errors_total counter\n");

    for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
        slot = st->rules[i].counter % CUTOVER_MAX_RULES;

        for (side = 0; side < 2; side++) {
            p = ngx_sprintf(p, "cutover_upstream_errors_total{zone=\"%V\","
                            "side=\"%s\",rule=\"%s\"} %uA\n", zn,
                            sides[side], st->rules[i].id,
                            sh->upstream_errors[slot][side]);
        }
    }

    g = ngx_http_cutover_guard_sh(zone);
    if (g == NULL) {
        return p;
    }

    sum = ngx_alloc(sizeof(cutover_guard_sum_t), ngx_cycle->log);
    if (sum == NULL) {
        return p;
    }

    now = (uint32_t) ngx_time();

    p = ngx_sprintf(p,
            "# HELP cutover_guard_trips_total Guard trips, by rule and "
            "reason.\n# TYPE cutover_guard_trips_total counter\n");

    for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
        slot = st->rules[i].counter % CUTOVER_MAX_RULES;

        p = ngx_sprintf(p, "cutover_guard_trips_total{zone=\"%V\",rule=\"%s\","
                        "reason=\"error_rate\"} %uA\n"
                        "cutover_guard_trips_total{zone=\"%V\",rule=\"%s\","
                        "reason=\"latency\"} %uA\n",
                        zn, st->rules[i].id, g->trips[slot][0],
                        zn, st->rules[i].id, g->trips[slot][1]);
    }

    for (k = 0; k < 3; k++) {
        p = ngx_sprintf(p, "# HELP cutover_guard_window_%s\n"
                        "# TYPE cutover_guard_window_%s gauge\n",
                        k == 0 ? "requests Requests the new side served in "
                                 "the guard's window."
                        : k == 1 ? "error_rate_percent Error rate of the "
                                   "new side in the guard's window."
                        : "latency_p99_seconds p99 upstream response time "
                          "of the new side in the guard's window.",
                        k == 0 ? "requests" : k == 1 ? "error_rate_percent"
                                                     : "latency_p99_seconds");

        for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
            cutover_guard_sum(ngx_http_cutover_guard_window(g,
                                  st->rules[i].counter),
                              now, zone->guard->window, sum);

            p = ngx_sprintf(p, "cutover_guard_window_%s{zone=\"%V\","
                            "rule=\"%s\"} ",
                            k == 0 ? "requests"
                            : k == 1 ? "error_rate_percent"
                            : "latency_p99_seconds",
                            zn, st->rules[i].id);

            p = k == 0 ? ngx_sprintf(p, "%uL\n", sum->requests)
                : k == 1 ? ngx_sprintf(p, "%.2f\n",
                                       cutover_guard_error_rate(sum))
                : ngx_sprintf(p, "%.4f\n",
                              cutover_guard_percentile(sum->hist, 99)
                              / 1000);
        }
    }

    ngx_free(sum);

    return ngx_sprintf(p,
            "# HELP cutover_guard_trips_skipped_total Trips while the "
            "guard's last rollback was still being written.\n"
            "# TYPE cutover_guard_trips_skipped_total counter\n"
            "cutover_guard_trips_skipped_total{zone=\"%V\"} %uA\n",
            zn, g->trips_skipped);
}
