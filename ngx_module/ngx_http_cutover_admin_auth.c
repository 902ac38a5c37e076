/*
 * ngx_http_cutover_admin_auth: who may use the admin API: the signature
 * check (CUTOVER-HMAC-SHA256), and refusals with their audit entries
 * (unauthenticated ones counted and written in aggregate by a thread).
 */

#include "ngx_http_cutover_admin.h"


static void ngx_http_cutover_refusal_write(void *data, ngx_log_t *log);
static ngx_uint_t ngx_http_cutover_refusal_count(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_uint_t reason);


/* the auth reasons, then the other unauthenticated refusals */
const char  *ngx_http_cutover_auth_reasons[] = {
    "missing", "bad_format", "unknown_key", "stale", "bad_signature",
    "replay", "method_not_allowed", "body_too_large", "busy"
};


static ngx_int_t
ngx_http_cutover_auth_fail(ngx_http_request_t *r, ngx_http_cutover_admin_t *a,
    ngx_http_cutover_auth_reason_e reason, const char *message)
{
    ngx_table_elt_t  *h;

    (void) ngx_atomic_fetch_add(&a->zone->sh->auth_failures[reason], 1);

    h = ngx_list_push(&r->headers_out.headers);
    if (h) {
        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "CUTOVER-HMAC-SHA256");
    }

    return ngx_http_cutover_refuse(r, a, reason, NGX_HTTP_UNAUTHORIZED,
                                   "unauthorized", message);
}


/*
 * Kept whole: each step of the check (header, key, time window, signature,
 * nonce, role) refuses with its own reason, in this order.
 */
ngx_uint_t
ngx_http_cutover_authenticate(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_int_t *out)
{
    char                         *id;
    int64_t                       now;
    ngx_int_t                     rc;
    ngx_uint_t                    i;
    cutover_key_t                *keys, *key;
    cutover_auth_t                auth;
    cutover_error_t               err;
    cutover_role_e                need;
    ngx_table_elt_t              *h;
    ngx_http_cutover_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);
    h = r->headers_in.authorization;

    if (h == NULL) {
        *out = ngx_http_cutover_auth_fail(r, a,
                                          NGX_HTTP_CUTOVER_AUTH_MISSING,
                                          "no Authorization header");
        return 0;
    }

    if (cutover_auth_parse((char *) h->value.data, h->value.len, &auth, &err)
        != 0)
    {
        *out = ngx_http_cutover_auth_fail(r, a,
                                          NGX_HTTP_CUTOVER_AUTH_BAD_FORMAT,
                                          err.message);
        return 0;
    }

    id = ngx_pnalloc(r->pool, sizeof(auth.key_id));
    if (id == NULL) {
        *out = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return 0;
    }

    ngx_memcpy(id, auth.key_id, sizeof(auth.key_id));
    a->key_id = id;

    key = NULL;
    keys = lcf->keys->elts;
    for (i = 0; i < lcf->keys->nelts; i++) {
        if (ngx_strcmp(keys[i].id, auth.key_id) == 0) {
            key = &keys[i];
            break;
        }
    }

    if (key == NULL) {
        *out = ngx_http_cutover_auth_fail(r, a,
                                          NGX_HTTP_CUTOVER_AUTH_UNKNOWN_KEY,
                                          "unknown key id");
        return 0;
    }

    now = ngx_time();

    if (auth.timestamp > now + CUTOVER_AUTH_WINDOW
        || auth.timestamp < now - CUTOVER_AUTH_WINDOW)
    {
        *out = ngx_http_cutover_auth_fail(r, a, NGX_HTTP_CUTOVER_AUTH_STALE,
                                          "timestamp is more than 300 s "
                                          "from the gateway's clock");
        return 0;
    }

    if (!cutover_auth_verify(key, &auth, (char *) r->method_name.data,
                             r->method_name.len,
                             (char *) r->unparsed_uri.data,
                             r->unparsed_uri.len, a->body, a->body_len))
    {
        *out = ngx_http_cutover_auth_fail(r, a,
                                          NGX_HTTP_CUTOVER_AUTH_BAD_SIGNATURE,
                                          "signature does not match");
        return 0;
    }

    rc = ngx_http_cutover_nonce_check(a->zone, &auth, now);

    if (rc == NGX_DECLINED) {
        *out = ngx_http_cutover_auth_fail(r, a, NGX_HTTP_CUTOVER_AUTH_REPLAY,
                                          "nonce already used");
        return 0;
    }

    if (rc == NGX_BUSY) {
        (void) ngx_atomic_fetch_add(&a->zone->sh->nonce_full, 1);
        *out = ngx_http_cutover_refuse(r, a, NGX_HTTP_CUTOVER_REFUSE_BUSY,
                                       NGX_HTTP_SERVICE_UNAVAILABLE, "busy",
                                       "too many signed requests in the "
                                       "replay window; retry later");
        return 0;
    }

    need = a->ep == NGX_HTTP_CUTOVER_EP_ACCEPT ? CUTOVER_ROLE_ADMIN
           : a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK ? CUTOVER_ROLE_GUARD
           : a->ep >= NGX_HTTP_CUTOVER_EP_DIAL ? CUTOVER_ROLE_OPERATOR
           : CUTOVER_ROLE_VIEWER;

    if (key->role < need) {
        (void) ngx_atomic_fetch_add(&a->zone->sh->forbidden, 1);
        *out = ngx_http_cutover_refuse(r, a, -1, NGX_HTTP_FORBIDDEN,
                                       "forbidden",
                                       need == CUTOVER_ROLE_ADMIN
                                       ? "this call needs the admin role"
                                       : need == CUTOVER_ROLE_OPERATOR
                                       ? "this call needs the operator role"
                                       : need == CUTOVER_ROLE_GUARD
                                       ? "this call needs the guard role"
                                       : "this call needs the viewer role");
        return 0;
    }

    return 1;
}


const char *
ngx_http_cutover_action(ngx_http_cutover_admin_t *a)
{
    return a->ep == NGX_HTTP_CUTOVER_EP_DIAL ? "dial"
           : a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK ? "rollback"
           : a->ep == NGX_HTTP_CUTOVER_EP_RAMP ? "ramp"
           : "audit_accept";
}


void
ngx_http_cutover_refused(ngx_http_cutover_answer_t *ans, ngx_uint_t status,
    const char *code, const char *message)
{
    ans->status = status;
    cutover_error_set(&ans->err, code, "%s", message);
}


/* The refusal's audit entry; the caller holds the writer lock. */
void
ngx_http_cutover_refusal_audit(ngx_http_cutover_answer_t *ans, ngx_log_t *log)
{
    char                   result[64];
    cutover_audit_entry_t  e;

    (void) ngx_atomic_fetch_add(&ans->a->zone->sh->changes_refused, 1);

    ngx_sprintf((u_char *) result, "refused:%s%Z", ans->err.name);

    ngx_memzero(&e, sizeof(e));
    e.time = ngx_time();
    e.key_id = ans->a->key_id;
    e.action = ngx_http_cutover_action(ans->a);
    e.result = result;
    e.reason = ans->a->reason;

    (void) ngx_http_cutover_audit_append(ans->a->zone, &e, log);
}


/* A refusal before the body is read: the body is discarded (or the
 * connection closed) so that its bytes are never read as the next
 * request of a keep-alive connection. */
void
ngx_http_cutover_discard(ngx_http_request_t *r)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }
}


/* A refused change attempt.  A signed one (reason -1) has its own audit
 * entry, written by a thread-pool thread, and is answered once it is
 * durable.  An unauthenticated one is counted, by reason and by client
 * address, and answered at once; the counts go to the trail as one
 * "refusals" entry a period at most (this refusal waits for it when it is
 * the one that finds the period over). */
ngx_int_t
ngx_http_cutover_refuse(ngx_http_request_t *r, ngx_http_cutover_admin_t *a,
    ngx_int_t reason, ngx_uint_t status, const char *code,
    const char *message)
{
    ngx_thread_task_t          *task;
    ngx_http_cutover_shctx_t   *sh = a->zone->sh;
    ngx_http_cutover_answer_t  *ans;

    if (a->ep < NGX_HTTP_CUTOVER_EP_DIAL) {
        return ngx_http_cutover_error(r, a, status, code, message);
    }

    if (reason >= 0) {
        (void) ngx_atomic_fetch_add(&sh->changes_refused, 1);

        if (!ngx_http_cutover_refusal_count(r, a, (ngx_uint_t) reason)) {
            return ngx_http_cutover_error(r, a, status, code, message);
        }
    }

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_cutover_answer_t));

    if (task != NULL) {
        ans = task->ctx;
        ans->r = r;
        ans->a = a;
        ans->aggregated = reason >= 0;
        ngx_http_cutover_refused(ans, status, code, message);

        task->handler = ngx_http_cutover_refusal_write;
        task->event.handler = ngx_http_cutover_written;
        task->event.data = ans;

        if (ngx_thread_task_post(a->zone->thread_pool, task) == NGX_OK) {
            r->main->count++;
            return NGX_DONE;
        }
    }

    /* no memory, or the pool is full: the refusal is counted as one that
     * failed to persist, and answered */
    if (reason >= 0) {
        sh->refusals_flushing = 0;

    } else {
        (void) ngx_atomic_fetch_add(&sh->changes_refused, 1);
    }

    (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);

    return ngx_http_cutover_error(r, a, status, code, message);
}


/* In a thread-pool thread. */
static void
ngx_http_cutover_refusal_write(void *data, ngx_log_t *log)
{
    ngx_http_cutover_answer_t  *ans = data;
    ngx_http_cutover_zone_t    *z = ans->a->zone;

    ngx_http_cutover_writer_lock(z->sh);
    ngx_http_cutover_refusals_flush(z, log);

    if (ans->aggregated) {
        z->sh->refusals_flushing = 0;

    } else {
        ngx_http_cutover_refusal_audit(ans, log);
    }

    ngx_http_cutover_writer_unlock(z->sh);
}


/* Counts an unauthenticated refusal; 1 when this one is to write the
 * counts to the trail (the period is over and no one else is at it). */
static ngx_uint_t
ngx_http_cutover_refusal_count(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_uint_t reason)
{
    size_t                            len;
    time_t                            now = ngx_time();
    ngx_uint_t                        i, due;
    ngx_http_cutover_shctx_t         *sh = a->zone->sh;
    ngx_http_cutover_refusal_addr_t  *ad;

    (void) ngx_atomic_fetch_add(&sh->refusals[reason], 1);

    len = ngx_min(r->connection->addr_text.len, NGX_HTTP_CUTOVER_ADDR_MAX - 1);

    ngx_shmtx_lock(&a->zone->shpool->mutex);

    if (sh->refusals_pending_total++ == 0) {
        sh->refusals_since = now;
    }

    sh->refusals_pending[reason]++;

    for (i = 0; i < NGX_HTTP_CUTOVER_REFUSAL_ADDRS; i++) {
        ad = &sh->refusal_addrs[i];

        if (ad->count == 0) {
            ngx_memcpy(ad->text, r->connection->addr_text.data, len);
            ad->text[len] = '\0';
            ad->count = 1;
            break;
        }

        if (ngx_strncmp(ad->text, r->connection->addr_text.data, len) == 0
            && ad->text[len] == '\0')
        {
            ad->count++;
            break;
        }
    }

    if (i == NGX_HTTP_CUTOVER_REFUSAL_ADDRS) {
        sh->refusals_other_addrs++;
    }

    due = now - sh->refusals_written >= NGX_HTTP_CUTOVER_REFUSAL_PERIOD
          && sh->refusals_flushing == 0;

    if (due) {
        sh->refusals_flushing = 1;
    }

    ngx_shmtx_unlock(&a->zone->shpool->mutex);

    return due;
}


/*
 * Writes the counts of unauthenticated refusals as one "refusals" entry,
 * when there are some and the period since the last one is over; the caller
 * holds the writer lock. Kept whole (past 80 lines): taking the counts and
 * writing the entry are one critical section.
 */
void
ngx_http_cutover_refusals_flush(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log)
{
    int                               k;
    char                              to[4096], reason[128], when[32];
    u_char                           *p, *last;
    time_t                            now = ngx_time(), since;
    ngx_uint_t                        i, pending[
                                          NGX_HTTP_CUTOVER_REFUSE_NREASONS];
    ngx_uint_t                        total, other;
    struct tm                         tm;
    cutover_audit_entry_t             e;
    ngx_http_cutover_shctx_t         *sh = zone->sh;
    ngx_http_cutover_refusal_addr_t   addrs[NGX_HTTP_CUTOVER_REFUSAL_ADDRS];

    ngx_shmtx_lock(&zone->shpool->mutex);

    total = sh->refusals_pending_total;

    if (total == 0
        || now - sh->refusals_written < NGX_HTTP_CUTOVER_REFUSAL_PERIOD)
    {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return;
    }

    ngx_memcpy(pending, sh->refusals_pending, sizeof(pending));
    ngx_memcpy(addrs, sh->refusal_addrs, sizeof(addrs));
    other = sh->refusals_other_addrs;
    since = sh->refusals_since;

    ngx_memzero(sh->refusals_pending, sizeof(sh->refusals_pending));
    ngx_memzero(sh->refusal_addrs, sizeof(sh->refusal_addrs));
    sh->refusals_other_addrs = 0;
    sh->refusals_pending_total = 0;
    sh->refusals_written = now;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    p = (u_char *) to;
    last = p + sizeof(to) - 64;

    p = ngx_sprintf(p, "{\"count\":%ui,\"reasons\":{", total);

    for (k = 0, i = 0; i < NGX_HTTP_CUTOVER_REFUSE_NREASONS; i++) {
        if (pending[i]) {
            p = ngx_sprintf(p, "%s\"%s\":%ui", k++ ? "," : "",
                            ngx_http_cutover_auth_reasons[i], pending[i]);
        }
    }

    p = ngx_cpymem(p, "},\"addresses\":{", 15);

    for (i = 0; i < NGX_HTTP_CUTOVER_REFUSAL_ADDRS && addrs[i].count; i++) {
        if (i) {
            *p++ = ',';
        }

        *p++ = '"';
        k = cutover_json_escape((char *) addrs[i].text,
                                ngx_strlen(addrs[i].text), (char *) p,
                                last - p);
        p += k < 0 ? 0 : k;
        p = ngx_sprintf(p, "\":%ui", addrs[i].count);
    }

    p = ngx_sprintf(p, "},\"other_addresses\":%ui}%Z", other);

    gmtime_r(&since, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    ngx_sprintf((u_char *) reason, "unauthenticated change attempts "
                "refused since %s%Z", when);

    ngx_memzero(&e, sizeof(e));
    e.time = now;
    e.key_id = "-";
    e.action = "refusals";
    e.result = "aggregated";
    e.to = to;
    e.reason = reason;

    if (ngx_http_cutover_audit_append(zone, &e, log) != NGX_OK) {
        (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cutover zone \"%V\": the counts of %ui refused "
                      "unauthenticated change attempts could not be written "
                      "to the audit trail (they stay in the metrics)",
                      &zone->name, total);
    }
}
