/*
 * ngx_http_cutover_admin: the signed admin API: status, metrics, history,
 * dial and rollback, with every change attempt in the audit trail.
 */

#include "ngx_http_cutover.h"


#define NGX_HTTP_CUTOVER_MAX_TOKENS   (2 * CUTOVER_MAX_IDS + 64)
#define NGX_HTTP_CUTOVER_REASON_MAX   1024
#define NGX_HTTP_CUTOVER_HISTORY_MAX  1000
#define NGX_HTTP_CUTOVER_HISTORY_WINDOW  (256 * 1024)  /* > 2 lines */
#define NGX_HTTP_CUTOVER_HISTORY_OUT     (1024 * 1024)
#define NGX_HTTP_CUTOVER_HISTORY_SCAN    (64 * 1024 * 1024)
#define NGX_HTTP_CUTOVER_AUDIT_RULE_MAX  12288


typedef enum {
    NGX_HTTP_CUTOVER_EP_STATUS = 0,
    NGX_HTTP_CUTOVER_EP_METRICS,
    NGX_HTTP_CUTOVER_EP_HISTORY,
    NGX_HTTP_CUTOVER_EP_DIAL,
    NGX_HTTP_CUTOVER_EP_ROLLBACK,
    NGX_HTTP_CUTOVER_EP_ACCEPT,
    NGX_HTTP_CUTOVER_EP_UNKNOWN
} ngx_http_cutover_endpoint_e;


typedef struct {
    ngx_http_cutover_zone_t      *zone;
    ngx_http_cutover_endpoint_e   ep;
    const char                   *key_id;     /* once known */
    const char                   *reason;     /* once known */
    u_char                       *body;
    size_t                        body_len;
} ngx_http_cutover_admin_t;


/* the auth reasons, then the other unauthenticated refusals */
static const char  *ngx_http_cutover_auth_reasons[] = {
    "missing", "bad_format", "unknown_key", "stale", "bad_signature",
    "replay", "method_not_allowed", "body_too_large", "busy"
};


static ngx_int_t ngx_http_cutover_admin_process(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
static void ngx_http_cutover_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_cutover_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len, const char *type);
static ngx_int_t ngx_http_cutover_error(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_uint_t status, const char *code,
    const char *message);
static ngx_uint_t ngx_http_cutover_authenticate(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_int_t *rc);
static ngx_int_t ngx_http_cutover_status(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
static ngx_int_t ngx_http_cutover_metrics(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
static ngx_int_t ngx_http_cutover_history(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
static ngx_int_t ngx_http_cutover_change(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
static void ngx_http_cutover_discard(ngx_http_request_t *r);
static ngx_int_t ngx_http_cutover_refuse(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_int_t reason, ngx_uint_t status,
    const char *code, const char *message);
static ngx_uint_t ngx_http_cutover_refusal_count(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_uint_t reason);
static void ngx_http_cutover_refusals_flush(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log);
static void ngx_http_cutover_refusal_write(void *data, ngx_log_t *log);
static void ngx_http_cutover_history_read(void *data, ngx_log_t *log);
static void ngx_http_cutover_history_done(ngx_event_t *ev);
static void ngx_http_cutover_written(ngx_event_t *ev);


static ngx_http_cutover_endpoint_e
ngx_http_cutover_endpoint(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t   name;

    /* the last path segment names the call: /cutover/status -> status */
    last = r->uri.data + r->uri.len;
    p = last;

    while (p > r->uri.data && p[-1] != '/') {
        p--;
    }

    name.data = p;
    name.len = last - p;

    if (name.len == 6 && ngx_strncmp(p, "status", 6) == 0) {
        return NGX_HTTP_CUTOVER_EP_STATUS;
    }

    if (name.len == 7 && ngx_strncmp(p, "metrics", 7) == 0) {
        return NGX_HTTP_CUTOVER_EP_METRICS;
    }

    if (name.len == 7 && ngx_strncmp(p, "history", 7) == 0) {
        return NGX_HTTP_CUTOVER_EP_HISTORY;
    }

    if (name.len == 4 && ngx_strncmp(p, "dial", 4) == 0) {
        return NGX_HTTP_CUTOVER_EP_DIAL;
    }

    if (name.len == 8 && ngx_strncmp(p, "rollback", 8) == 0) {
        return NGX_HTTP_CUTOVER_EP_ROLLBACK;
    }

    if (name.len == 6 && ngx_strncmp(p, "accept", 6) == 0) {
        return NGX_HTTP_CUTOVER_EP_ACCEPT;
    }

    return NGX_HTTP_CUTOVER_EP_UNKNOWN;
}


ngx_int_t
ngx_http_cutover_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_table_elt_t              *allow;
    ngx_http_cutover_ctx_t       *ctx;
    ngx_http_cutover_admin_t     *a;
    ngx_http_cutover_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);

    /* the module's one ctx type; only "admin" is set for an admin call */
    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_ctx_t));
    a = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_admin_t));
    if (ctx == NULL || a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->admin = a;

    a->zone = lcf->admin_zone->data;
    a->ep = ngx_http_cutover_endpoint(r);
    a->key_id = "-";
    a->reason = "";
    ngx_http_set_ctx(r, ctx, ngx_http_cutover_module);

    if (a->ep == NGX_HTTP_CUTOVER_EP_UNKNOWN) {
        ngx_http_cutover_discard(r);
        return ngx_http_cutover_error(r, a, NGX_HTTP_NOT_FOUND, "not_found",
                                      "unknown admin call; see status, "
                                      "metrics, history, dial, rollback, "
                                      "accept");
    }

    if (a->ep >= NGX_HTTP_CUTOVER_EP_DIAL) {
        if (r->method != NGX_HTTP_POST) {
            ngx_http_cutover_discard(r);

            allow = ngx_list_push(&r->headers_out.headers);
            if (allow) {
                allow->hash = 1;
                ngx_str_set(&allow->key, "Allow");
                ngx_str_set(&allow->value, "POST");
            }

            return ngx_http_cutover_refuse(r, a,
                                           NGX_HTTP_CUTOVER_REFUSE_METHOD,
                                           NGX_HTTP_NOT_ALLOWED,
                                           "method_not_allowed",
                                           "a change is made by POST only");
        }

        if (r->headers_in.content_length_n > NGX_HTTP_CUTOVER_BODY_MAX) {
            ngx_http_cutover_discard(r);
            return ngx_http_cutover_refuse(r, a, NGX_HTTP_CUTOVER_REFUSE_BODY,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "body_too_large",
                                           "admin bodies are at most 64 KiB");
        }

        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_cutover_admin_body);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        ngx_http_cutover_discard(r);

        allow = ngx_list_push(&r->headers_out.headers);
        if (allow) {
            allow->hash = 1;
            ngx_str_set(&allow->key, "Allow");
            ngx_str_set(&allow->value, "GET, HEAD");
        }

        return ngx_http_cutover_error(r, a, NGX_HTTP_NOT_ALLOWED,
                                      "method_not_allowed",
                                      "this call is read by GET");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_cutover_admin_process(r, a);
}


/* cutover_metrics: the Prometheus text without a signature, for scrapers
 * (the location is protected with allow/deny instead). */
ngx_int_t
ngx_http_cutover_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_cutover_admin_t     *a;
    ngx_http_cutover_loc_conf_t  *lcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);

    a = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_admin_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a->zone = lcf->metrics_zone->data;
    a->ep = NGX_HTTP_CUTOVER_EP_METRICS;

    return ngx_http_cutover_metrics(r, a);
}


static void
ngx_http_cutover_admin_body(ngx_http_request_t *r)
{
    u_char                    *p;
    size_t                     len;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_cutover_ctx_t    *ctx;
    ngx_http_cutover_admin_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cutover_module);
    a = ctx->admin;

    len = 0;
    for (cl = r->request_body ? r->request_body->bufs : NULL; cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (b->in_file) {
            /* cannot happen with a 64 KiB memory buffer; refuse anyway */
            ngx_http_finalize_request(r,
                ngx_http_cutover_error(r, a,
                                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "body_too_large",
                                       "admin bodies are at most 64 KiB"));
            return;
        }

        len += b->last - b->pos;
    }

    if (len > NGX_HTTP_CUTOVER_BODY_MAX) {
        ngx_http_finalize_request(r,
            ngx_http_cutover_refuse(r, a, NGX_HTTP_CUTOVER_REFUSE_BODY,
                                    NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    "body_too_large",
                                   "admin bodies are at most 64 KiB"));
        return;
    }

    a->body = ngx_pnalloc(r->pool, len + 1);
    if (a->body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = a->body;
    for (cl = r->request_body ? r->request_body->bufs : NULL; cl;
         cl = cl->next)
    {
        if (cl->buf->last > cl->buf->pos) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    *p = '\0';
    a->body_len = len;

    ngx_http_finalize_request(r, ngx_http_cutover_admin_process(r, a));
}


static ngx_int_t
ngx_http_cutover_admin_process(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a)
{
    ngx_int_t  rc;

    /* on refusal the answer is already sent and rc is what to return */
    if (!ngx_http_cutover_authenticate(r, a, &rc)) {
        return rc;
    }

    switch (a->ep) {

    case NGX_HTTP_CUTOVER_EP_STATUS:
        return ngx_http_cutover_status(r, a);

    case NGX_HTTP_CUTOVER_EP_METRICS:
        return ngx_http_cutover_metrics(r, a);

    case NGX_HTTP_CUTOVER_EP_HISTORY:
        return ngx_http_cutover_history(r, a);

    default:
        return ngx_http_cutover_change(r, a);
    }
}


static ngx_int_t
ngx_http_cutover_send(ngx_http_request_t *r, ngx_uint_t status, u_char *data,
    size_t len, const char *type)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = len ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_cutover_error(ngx_http_request_t *r, ngx_http_cutover_admin_t *a,
    ngx_uint_t status, const char *code, const char *message)
{
    int         n;
    u_char     *buf, *p;
    size_t      cap;
    ngx_uint_t  level;

    cap = 128 + 6 * ngx_strlen(message) + ngx_strlen(code);

    buf = ngx_pnalloc(r->pool, cap);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    n = cutover_json_escape(message, ngx_strlen(message), (char *) p,
                            cap - (p - buf) - 8);
    p += n < 0 ? 0 : n;
    p = ngx_cpymem(p, "\"}}\n", 4);

    level = status >= 500 ? NGX_LOG_ERR : NGX_LOG_INFO;
    ngx_log_error(level, r->connection->log, 0,
                  "cutover admin: %ui %s (key \"%s\"): %s", status, code,
                  a ? a->key_id : "-", message);

    return ngx_http_cutover_send(r, status, buf, p - buf,
                                 "application/json");
}


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


static ngx_uint_t
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
                                       : "this call needs the viewer role");
        return 0;
    }

    return 1;
}


/* The rules with their request counts; caller holds no lock. */
static u_char *
ngx_http_cutover_rules_json(ngx_http_request_t *r, ngx_http_cutover_zone_t *z,
    cutover_state_t *st, u_char *p, u_char *last)
{
    int        n;
    ngx_uint_t i, c;

    *p++ = '[';

    for (i = 0; i < st->nrules; i++) {
        if (i) {
            *p++ = ',';
        }

        n = cutover_state_rule_json(st, (int) i, (char *) p, last - p - 128);
        if (n < 0) {
            return NULL;
        }

        p += n - 1;                                 /* reopen the object */
        c = st->rules[i].counter % CUTOVER_MAX_RULES;
        p = ngx_sprintf(p, ",\"requests\":{\"new\":%uA,\"legacy\":%uA}}",
                        z->sh->requests[c][1], z->sh->requests[c][0]);
    }

    *p++ = ']';
    return p;
}


static size_t
ngx_http_cutover_state_size(cutover_state_t *st)
{
    return 2048 + st->nrules * 400 + st->nids * (CUTOVER_ID_MAX + 4);
}


/* {"zone","version","state","changed_at","rules"[,"counters"]} */
static ngx_int_t
ngx_http_cutover_state_reply(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, cutover_state_t *st, ngx_uint_t counters)
{
    u_char                    *buf, *p, *last;
    ngx_uint_t                 i, side;
    ngx_atomic_uint_t          total[2], auth;
    ngx_http_cutover_shctx_t  *sh = a->zone->sh;

    buf = ngx_pnalloc(r->pool, ngx_http_cutover_state_size(st));
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = buf + ngx_http_cutover_state_size(st);

    p = ngx_sprintf(buf, "{\"zone\":\"%V\",\"version\":%uL,\"state\":\"%s\","
                    "\"changed_at\":%L,\"rules\":", &a->zone->name,
                    st->version, st->rolled_back ? "rolled_back" : "active",
                    st->changed_at);

    p = ngx_http_cutover_rules_json(r, a->zone, st, p, last);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (counters) {
        total[0] = total[1] = 0;
        for (i = 0; i < CUTOVER_MAX_RULES; i++) {
            for (side = 0; side < 2; side++) {
                total[side] += sh->requests[i][side];
            }
        }

        auth = 0;
        for (i = 0; i < NGX_HTTP_CUTOVER_AUTH_NREASONS; i++) {
            auth += sh->auth_failures[i];
        }

        p = ngx_sprintf(p, ",\"counters\":{\"requests_new\":%uA,"
                        "\"requests_legacy\":%uA,\"empty_key\":%uA,"
                        "\"auth_failures\":%uA,\"forbidden\":%uA,"
                        "\"changes_accepted\":%uA,\"changes_refused\":%uA,"
                        "\"persist_failures\":%uA,\"records\":%uA,"
                        "\"records_dropped\":%uA}",
                        total[1], total[0], sh->empty_key, auth,
                        sh->forbidden, sh->changes_accepted,
                        sh->changes_refused, sh->persist_failures,
                        sh->records,
                        ngx_http_cutover_dropped_total(sh));

        /* read without the writer lock: a view, as the metrics are */
        p = ngx_sprintf(p, ",\"audit\":{\"ok\":%s,\"head\":%uL,"
                        "\"pending_break\":", sh->audit_ok ? "true" : "false",
                        sh->audit_seq);
        p = sh->audit_pending_break
            ? ngx_sprintf(p, "%uL", sh->audit_pending_break)
            : ngx_cpymem(p, "null", 4);
        p = ngx_cpymem(p, ",\"damaged_line\":", 16);
        p = sh->audit_damaged ? ngx_sprintf(p, "%uL}", sh->audit_damaged)
                              : ngx_cpymem(p, "null}", 5);
    }

    p = ngx_cpymem(p, "}\n", 2);

    return ngx_http_cutover_send(r, NGX_HTTP_OK, buf, p - buf,
                                 "application/json");
}


static ngx_int_t
ngx_http_cutover_status(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    cutover_state_t  *st;

    st = ngx_http_cutover_zone_snapshot(a->zone, r->pool);

    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_cutover_state_reply(r, a, st, 1);
}


static ngx_int_t
ngx_http_cutover_metrics(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    char                       pct[16];
    u_char                    *buf, *p;
    size_t                     size;
    ngx_str_t                 *zn = &a->zone->name;
    ngx_uint_t                 i, c;
    cutover_rule_t            *rule;
    cutover_state_t           *st;
    ngx_http_cutover_shctx_t  *sh = a->zone->sh;

    st = ngx_http_cutover_zone_snapshot(a->zone, r->pool);

    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 12288 + st->nrules * 600;
    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf,
            "# HELP cutover_requests_total Requests routed, by side and rule.\n"
            "# TYPE cutover_requests_total counter\n");

    for (i = 0; i < st->nrules; i++) {
        rule = &st->rules[i];
        c = rule->counter % CUTOVER_MAX_RULES;
        p = ngx_sprintf(p,
                "cutover_requests_total{zone=\"%V\",side=\"new\","
                "rule=\"%s\"} %uA\n"
                "cutover_requests_total{zone=\"%V\",side=\"legacy\","
                "rule=\"%s\"} %uA\n",
                zn, rule->id, sh->requests[c][1],
                zn, rule->id, sh->requests[c][0]);
    }

    p = ngx_sprintf(p,
            "# HELP cutover_dial_percent Share of a rule's buckets on the "
            "new core.\n# TYPE cutover_dial_percent gauge\n");

    for (i = 0; i < st->nrules; i++) {
        cutover_percent_format(st->rules[i].bp, pct);
        p = ngx_sprintf(p, "cutover_dial_percent{zone=\"%V\",rule=\"%s\"} "
                        "%s\n", zn, st->rules[i].id, pct);
    }

    p = ngx_sprintf(p,
            "# HELP cutover_state_version Version of the dial state.\n"
            "# TYPE cutover_state_version gauge\n"
            "cutover_state_version{zone=\"%V\"} %uL\n"
            "# HELP cutover_rolled_back 1 while the zone is rolled back.\n"
            "# TYPE cutover_rolled_back gauge\n"
            "cutover_rolled_back{zone=\"%V\"} %uD\n"
            "# HELP cutover_empty_key_total Requests without a key, sent to "
            "legacy.\n# TYPE cutover_empty_key_total counter\n"
            "cutover_empty_key_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_auth_failures_total Admin requests refused "
            "before their signature was accepted.\n"
            "# TYPE cutover_auth_failures_total counter\n",
            zn, st->version, zn, st->rolled_back, zn, sh->empty_key);

    for (i = 0; i < NGX_HTTP_CUTOVER_AUTH_NREASONS; i++) {
        p = ngx_sprintf(p, "cutover_auth_failures_total{zone=\"%V\","
                        "reason=\"%s\"} %uA\n", zn,
                        ngx_http_cutover_auth_reasons[i],
                        sh->auth_failures[i]);
    }

    p = ngx_sprintf(p,
            "# HELP cutover_admin_forbidden_total Signed admin requests "
            "refused for their role.\n"
            "# TYPE cutover_admin_forbidden_total counter\n"
            "cutover_admin_forbidden_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_admin_changes_total Dial and rollback requests.\n"
            "# TYPE cutover_admin_changes_total counter\n"
            "cutover_admin_changes_total{zone=\"%V\",result=\"accepted\"} "
            "%uA\n"
            "cutover_admin_changes_total{zone=\"%V\",result=\"refused\"} "
            "%uA\n"
            "# HELP cutover_state_persist_failures_total Changes refused "
            "because the state or audit file could not be written.\n"
            "# TYPE cutover_state_persist_failures_total counter\n"
            "cutover_state_persist_failures_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_nonce_table_full_total Signed requests refused "
            "because the replay table was full.\n"
            "# TYPE cutover_nonce_table_full_total counter\n"
            "cutover_nonce_table_full_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_routing_torn_reads_total Requests sent to legacy "
            "because the dial state was being rewritten.\n"
            "# TYPE cutover_routing_torn_reads_total counter\n"
            "cutover_routing_torn_reads_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_audit_ok 0 when the audit trail cannot be "
            "written (changes are refused).\n"
            "# TYPE cutover_audit_ok gauge\n"
            "cutover_audit_ok{zone=\"%V\"} %ui\n"
            "# HELP cutover_audit_break_pending 1 while the audit trail "
            "holds a break no admin accepted (dial is refused).\n"
            "# TYPE cutover_audit_break_pending gauge\n"
            "cutover_audit_break_pending{zone=\"%V\"} %ui\n"
            "# HELP cutover_audit_refusals_pending Unauthenticated change "
            "attempts refused and counted, not yet in a \"refusals\" "
            "entry.\n"
            "# TYPE cutover_audit_refusals_pending gauge\n"
            "cutover_audit_refusals_pending{zone=\"%V\"} %ui\n"
            "# HELP cutover_records_total Exchanges written to the dual-run "
            "log.\n# TYPE cutover_records_total counter\n"
            "cutover_records_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_records_truncated_total Records whose response "
            "body was cut at cutover_body_limit (hash kept).\n"
            "# TYPE cutover_records_truncated_total counter\n"
            "cutover_records_truncated_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_records_dropped_total Exchanges that should have "
            "been recorded and were not.\n"
            "# TYPE cutover_records_dropped_total counter\n",
            zn, sh->forbidden, zn, sh->changes_accepted, zn,
            sh->changes_refused, zn, sh->persist_failures, zn,
            sh->nonce_full, zn, sh->torn_reads, zn, sh->audit_ok,
            zn, (ngx_uint_t) (sh->audit_pending_break || sh->audit_damaged),
            zn, sh->refusals_pending_total, zn, sh->records, zn,
            sh->records_truncated);

    p = ngx_sprintf(p,
            "# HELP cutover_admin_refusals_total Unauthenticated change "
            "attempts refused, by reason (aggregated in the audit trail).\n"
            "# TYPE cutover_admin_refusals_total counter\n");

    for (i = 0; i < NGX_HTTP_CUTOVER_REFUSE_NREASONS; i++) {
        p = ngx_sprintf(p, "cutover_admin_refusals_total{zone=\"%V\","
                        "reason=\"%s\"} %uA\n", zn,
                        ngx_http_cutover_auth_reasons[i], sh->refusals[i]);
    }

    for (i = 0; i < NGX_HTTP_CUTOVER_DROP_NREASONS; i++) {
        p = ngx_sprintf(p, "cutover_records_dropped_total{zone=\"%V\","
                        "reason=\"%s\"} %uA\n", zn,
                        ngx_http_cutover_drop_names[i],
                        sh->records_dropped[i]);
    }

    return ngx_http_cutover_send(r, NGX_HTTP_OK, buf, p - buf,
                                 "text/plain; version=0.0.4");
}


/* GET history: the trail's tail is read by a thread-pool thread (the
 * event loop never waits for the disk), newest entry first; changes only
 * unless ?all=1 (then refusals too). */
typedef struct {
    ngx_http_request_t         *r;
    ngx_http_cutover_admin_t   *a;
    u_char                     *buf;            /* the read window */
    u_char                     *out;
    size_t                      out_cap;
    size_t                      out_len;
    ngx_int_t                   limit;
    ngx_uint_t                  all;
    ngx_err_t                   err;
} ngx_http_cutover_history_t;


static ngx_int_t
ngx_http_cutover_history(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    ngx_str_t                    arg;
    ngx_thread_task_t           *task;
    ngx_http_cutover_history_t  *h;

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_cutover_history_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = task->ctx;
    h->r = r;
    h->a = a;
    h->limit = 20;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        h->limit = ngx_atoi(arg.data, arg.len);

        if (h->limit < 1 || h->limit > NGX_HTTP_CUTOVER_HISTORY_MAX) {
            return ngx_http_cutover_error(r, a, NGX_HTTP_BAD_REQUEST,
                                          "invalid_request",
                                          "limit must be 1..1000");
        }
    }

    if (ngx_http_arg(r, (u_char *) "all", 3, &arg) == NGX_OK) {
        if (arg.len != 1 || (arg.data[0] != '0' && arg.data[0] != '1')) {
            return ngx_http_cutover_error(r, a, NGX_HTTP_BAD_REQUEST,
                                          "invalid_request",
                                          "all must be 0 or 1");
        }

        h->all = arg.data[0] == '1';
    }

    h->out_cap = ngx_min((size_t) h->limit * CUTOVER_AUDIT_LINE_MAX,
                         NGX_HTTP_CUTOVER_HISTORY_OUT);
    h->buf = ngx_pnalloc(r->pool, NGX_HTTP_CUTOVER_HISTORY_WINDOW);
    h->out = ngx_pnalloc(r->pool, h->out_cap + 8);
    if (h->buf == NULL || h->out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->handler = ngx_http_cutover_history_read;
    task->event.handler = ngx_http_cutover_history_done;
    task->event.data = h;

    if (ngx_thread_task_post(a->zone->thread_pool, task) != NGX_OK) {
        return ngx_http_cutover_error(r, a, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "busy", "the gateway's thread pool is "
                                      "full; retry");
    }

    r->main->count++;
    return NGX_DONE;
}


/* Whether history shows a line: whole entries only; refusals with all. */
static ngx_uint_t
ngx_http_cutover_history_shows(ngx_http_cutover_history_t *h, u_char *line,
    size_t len)
{
    cutover_error_t       err;
    cutover_audit_head_t  head;

    static const char  refused[] = "\",\"result\":\"refused:";

    if (cutover_audit_parse_head((char *) line, len, &head, &err) != 0) {
        return 0;
    }

    if (h->all) {
        return 1;
    }

    return ngx_strcmp(head.action, "refusals") != 0
           && ngx_strlcasestrn(line, line + len, (u_char *) refused,
                               sizeof(refused) - 2) == NULL;
}


/* In a thread-pool thread: reads windows of the trail from its end. */
static void
ngx_http_cutover_history_read(void *data, ngx_log_t *log)
{
    ngx_http_cutover_history_t  *h = data;

    u_char           *p, *e, *start, *line;
    off_t             end, off, scanned;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_int_t         count;
    ngx_file_info_t   fi;

    p = h->out;
    *p++ = '[';
    count = 0;

    fd = ngx_open_file(h->a->zone->audit_path.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        h->err = ngx_errno == NGX_ENOENT ? 0 : ngx_errno;
        goto done;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        h->err = ngx_errno;
        goto close;
    }

    end = ngx_file_size(&fi);
    scanned = 0;

    while (end > 0 && count < h->limit
           && scanned < NGX_HTTP_CUTOVER_HISTORY_SCAN)
    {
        off = ngx_max(end - NGX_HTTP_CUTOVER_HISTORY_WINDOW, 0);

        n = pread(fd, h->buf, end - off, off);
        if (n != end - off) {
            h->err = n == -1 ? ngx_errno : EIO;
            goto close;
        }

        scanned += n;
        e = h->buf + n;

        /* a line not finished (being written, or torn) is not shown */
        while (e > h->buf && e[-1] != '\n') {
            e--;
        }

        /* a window that starts mid-file starts mid-line: that line is read
         * with the next window */
        start = h->buf;
        if (off > 0) {
            start = ngx_strlchr(h->buf, e, '\n');
            if (start == NULL) {
                break;
            }

            start++;
        }

        while (e > start && count < h->limit) {
            e--;                                    /* its newline */

            line = e;
            while (line > start && line[-1] != '\n') {
                line--;
            }

            if (ngx_http_cutover_history_shows(h, line, e - line)) {
                if ((size_t) (p - h->out) + (e - line) + 4 > h->out_cap)
                {
                    goto close;
                }

                if (count++) {
                    *p++ = ',';
                }

                p = ngx_cpymem(p, line, e - line);
            }

            e = line;
        }

        end = off + (start - h->buf);
    }

close:

    ngx_close_file(fd);

done:

    p = ngx_cpymem(p, "]\n", 2);
    h->out_len = p - h->out;
}


static void
ngx_http_cutover_history_done(ngx_event_t *ev)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_cutover_history_t  *h = ev->data;

    r = h->r;
    c = r->connection;

    if (h->err) {
        ngx_log_error(NGX_LOG_ERR, c->log, h->err,
                      "cutover zone \"%V\": cannot read audit trail \"%V\"",
                      &h->a->zone->name, &h->a->zone->audit_path);
        rc = ngx_http_cutover_error(r, h->a, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    "audit_unreadable",
                                    "the audit trail cannot be read");

    } else {
        rc = ngx_http_cutover_send(r, NGX_HTTP_OK, h->out, h->out_len,
                                   "application/json");
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* The answer to a change attempt that a thread-pool thread writes: status
 * and, when not 200, the error (copied: the caller's may be on its stack).
 * A refusal is only this; a change (ngx_http_cutover_write_t) starts with
 * it. */
typedef struct {
    ngx_http_request_t        *r;
    ngx_http_cutover_admin_t  *a;
    ngx_uint_t                 status;
    ngx_uint_t                 aggregated;   /* unauthenticated refusal */
    cutover_error_t            err;
} ngx_http_cutover_answer_t;


static const char *
ngx_http_cutover_action(ngx_http_cutover_admin_t *a)
{
    return a->ep == NGX_HTTP_CUTOVER_EP_DIAL ? "dial"
           : a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK ? "rollback"
           : "audit_accept";
}


static void
ngx_http_cutover_refused(ngx_http_cutover_answer_t *ans, ngx_uint_t status,
    const char *code, const char *message)
{
    ans->status = status;
    cutover_error_set(&ans->err, code, "%s", message);
}


/* The refusal's audit entry; the caller holds the writer lock. */
static void
ngx_http_cutover_refusal_audit(ngx_http_cutover_answer_t *ans, ngx_log_t *log)
{
    char                   result[64];
    cutover_audit_entry_t  e;

    (void) ngx_atomic_fetch_add(&ans->a->zone->sh->changes_refused, 1);

    ngx_sprintf((u_char *) result, "refused:%s%Z", ans->err.code);

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
static void
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
static ngx_int_t
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


/* Writes the counts of unauthenticated refusals as one "refusals" entry,
 * when there are some and the period since the last one is over; the
 * caller holds the writer lock. */
static void
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


/* Decodes an array of id strings into pool memory. */
static ngx_int_t
ngx_http_cutover_ids(ngx_http_request_t *r, const char *json,
    cutover_json_tok_t *toks, int arr, const char **out, size_t *n,
    const char **what)
{
    int       i;
    char     *s;
    uint32_t  k;

    if (toks[arr].type != CUTOVER_JSON_ARRAY) {
        *what = "must be an array of strings";
        return NGX_ERROR;
    }

    if (toks[arr].size > CUTOVER_MAX_IDS) {
        *what = "has too many entries";
        return NGX_ERROR;
    }

    i = arr + 1;

    for (k = 0; k < toks[arr].size; k++) {
        s = ngx_pnalloc(r->pool, CUTOVER_ID_MAX + 1);
        if (s == NULL) {
            *what = "could not be stored (out of memory)";
            return NGX_ERROR;
        }

        if (toks[i].type != CUTOVER_JSON_STRING
            || cutover_json_string(json, &toks[i], s, CUTOVER_ID_MAX + 1) < 1
            || !cutover_id_valid(s, ngx_strlen(s)))
        {
            *what = "must hold ids of 1 to 32 of A-Z a-z 0-9 _ . -";
            return NGX_ERROR;
        }

        out[k] = s;
        i = cutover_json_next(toks, i);
    }

    *n = toks[arr].size;
    return NGX_OK;
}


/* A rule as the audit trail shows it: whole, or counted when its lists
 * would not fit in an entry (the state file keeps them). */
static void
ngx_http_cutover_audit_rule(cutover_state_t *st, int n, char *buf)
{
    char                   pct[16];
    const cutover_rule_t  *rule = &st->rules[n];

    if (cutover_state_rule_json(st, n, buf, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX)
        >= 0)
    {
        return;
    }

    cutover_percent_format(rule->bp, pct);
    ngx_sprintf((u_char *) buf, "{\"id\":\"%s\",\"stores\":%uD,"
                "\"channels\":%uD,\"percent\":%s}%Z", rule->id,
                (uint32_t) rule->nstores, (uint32_t) rule->nchannels, pct);
}


typedef struct {
    cutover_dial_t   dial;
    int64_t          expect_version;      /* -1: not given */
    char             reason[NGX_HTTP_CUTOVER_REASON_MAX + 1];
} ngx_http_cutover_change_t;


/* Parses a dial or rollback body; on error returns the message. */
static const char *
ngx_http_cutover_parse_change(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_change_t *c,
    const char **code)
{
    int                  n, i, v;
    char                *json = (char *) a->body;
    char                *msg, name[32];
    uint32_t             k;
    const char          *what;
    cutover_error_t      err;
    cutover_json_tok_t  *toks;

    *code = "invalid_request";
    c->expect_version = -1;
    ngx_cpystrn((u_char *) c->dial.rule, (u_char *) "default",
                sizeof(c->dial.rule));
    c->dial.bp = -1;

    msg = ngx_pnalloc(r->pool, 256);
    toks = ngx_palloc(r->pool, NGX_HTTP_CUTOVER_MAX_TOKENS
                               * sizeof(cutover_json_tok_t));
    if (msg == NULL || toks == NULL) {
        return "out of memory";
    }

    n = cutover_json_parse(json, a->body_len, toks,
                           NGX_HTTP_CUTOVER_MAX_TOKENS, msg, 200);
    if (n < 0) {
        *code = "malformed_json";
        return msg;
    }

    if (toks[0].type != CUTOVER_JSON_OBJECT) {
        return "the body must be a JSON object";
    }

    /* the reason first, so that even a refusal is audited with it */
    v = cutover_json_get(json, toks, 0, "reason");
    if (v > 0 && toks[v].type == CUTOVER_JSON_STRING
        && cutover_json_string(json, &toks[v], c->reason, sizeof(c->reason))
           >= 0)
    {
        a->reason = c->reason;
    }

    i = 1;

    for (k = 0; k < toks[0].size; k++, i = cutover_json_next(toks, i + 1)) {
        if (cutover_json_string(json, &toks[i], name, sizeof(name)) < 0) {
            return "unknown field";
        }

        /* duplicates would make the meaning depend on the parser */
        if (cutover_json_get(json, toks, 0, name) != i + 1) {
            ngx_sprintf((u_char *) msg, "duplicate field \"%s\"%Z", name);
            return msg;
        }

        v = i + 1;

        if (ngx_strcmp(name, "reason") == 0) {
            if (a->reason != c->reason) {
                return "reason must be a string of at most 1024 bytes";
            }

            continue;
        }

        if (a->ep != NGX_HTTP_CUTOVER_EP_DIAL) {
            ngx_sprintf((u_char *) msg, "unknown field \"%s\" (%s takes "
                        "reason)%Z", name,
                        a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK ? "rollback"
                                                              : "accept");
            return msg;
        }

        if (ngx_strcmp(name, "rule") == 0) {
            if (toks[v].type != CUTOVER_JSON_STRING
                || cutover_json_string(json, &toks[v], c->dial.rule,
                                       sizeof(c->dial.rule)) < 1
                || !cutover_id_valid(c->dial.rule, ngx_strlen(c->dial.rule)))
            {
                return "rule must be an id of 1 to 32 of A-Z a-z 0-9 _ . -";
            }

        } else if (ngx_strcmp(name, "percent") == 0) {
            if (toks[v].type != CUTOVER_JSON_NUMBER) {
                *code = "invalid_percent";
                return "percent must be a number from 0 to 100";
            }

            c->dial.bp = cutover_percent_parse(json + toks[v].start,
                                               toks[v].end - toks[v].start,
                                               &err);
            if (c->dial.bp < 0) {
                *code = "invalid_percent";
                ngx_cpystrn((u_char *) msg, (u_char *) err.message, 200);
                return msg;
            }

        } else if (ngx_strcmp(name, "stores") == 0
                   || ngx_strcmp(name, "channels") == 0)
        {
            int stores = name[0] == 's';

            if (ngx_http_cutover_ids(r, json, toks, v,
                                     stores ? c->dial.stores
                                            : c->dial.channels,
                                     stores ? &c->dial.nstores
                                            : &c->dial.nchannels,
                                     &what) != NGX_OK)
            {
                ngx_sprintf((u_char *) msg, "%s %s%Z", name, what);
                return msg;
            }

            if (stores) {
                c->dial.has_stores = 1;
            } else {
                c->dial.has_channels = 1;
            }

        } else if (ngx_strcmp(name, "expect_version") == 0) {
            c->expect_version = toks[v].type == CUTOVER_JSON_NUMBER
                                ? ngx_atoof((u_char *) json + toks[v].start,
                                            toks[v].end - toks[v].start)
                                : NGX_ERROR;
            if (c->expect_version < 0) {
                return "expect_version must be a non-negative integer";
            }

        } else {
            ngx_sprintf((u_char *) msg, "unknown field \"%s\"%Z", name);
            return msg;
        }
    }

    if (a->ep == NGX_HTTP_CUTOVER_EP_DIAL && c->dial.bp < 0) {
        *code = "invalid_percent";
        return "percent is required";
    }

    for (what = c->reason; *what == ' '; what++) { /* void */ }

    if (*what == '\0') {
        return "reason is required: say why, for the audit trail";
    }

    return NULL;
}


/* A dial or rollback, written by a thread-pool thread: the state file, the
 * audit entry and the directory are fsynced there, never in the event
 * loop; the answer goes out when the thread is done. */
typedef struct {
    ngx_http_cutover_answer_t   answer;       /* first: see the answer */
    ngx_http_cutover_change_t  *c;
    cutover_state_t            *cur;
    cutover_state_t            *next;
    char                       *from;
    char                       *to;
    u_char                      tmpname[NGX_MAX_PATH];
} ngx_http_cutover_write_t;


static void ngx_http_cutover_change_write(void *data, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_dial_prepare(ngx_http_cutover_write_t *w);
static ngx_int_t ngx_http_cutover_change_audit(ngx_http_cutover_write_t *w,
    ngx_log_t *log);


static ngx_int_t
ngx_http_cutover_change(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    const char                 *msg, *code;
    ngx_thread_task_t          *task;
    ngx_http_cutover_zone_t    *z = a->zone;
    ngx_http_cutover_write_t   *w;
    ngx_http_cutover_change_t  *c;

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_cutover_write_t));
    c = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_change_t));
    if (task == NULL || c == NULL
        || z->state_path.len + 5 > NGX_MAX_PATH)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w = task->ctx;
    w->answer.r = r;
    w->answer.a = a;
    w->c = c;
    w->cur = ngx_palloc(r->pool, sizeof(cutover_state_t));
    w->next = ngx_palloc(r->pool, sizeof(cutover_state_t));
    w->from = ngx_pnalloc(r->pool, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX);
    w->to = ngx_pnalloc(r->pool, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX);
    if (w->cur == NULL || w->next == NULL || w->from == NULL
        || w->to == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    msg = ngx_http_cutover_parse_change(r, a, c, &code);
    if (msg) {
        return ngx_http_cutover_refuse(r, a, -1, NGX_HTTP_BAD_REQUEST, code,
                                       msg);
    }

    task->handler = ngx_http_cutover_change_write;
    task->event.handler = ngx_http_cutover_written;
    task->event.data = w;

    if (ngx_thread_task_post(z->thread_pool, task) != NGX_OK) {
        return ngx_http_cutover_error(r, a, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "busy", "the gateway's thread pool is "
                                      "full; retry");
    }

    /* the request lives on until the thread is done */
    r->main->count++;
    return NGX_DONE;
}


/* In a thread-pool thread: no request pool, no event loop.  A rollback
 * fails safe: neither the audit trail's state nor a failed write of the
 * state file or of its entry keeps it from taking effect (each failure is
 * logged and counted).  A dial needs a sound trail with no unaccepted
 * break. */
static void
ngx_http_cutover_change_write(void *data, ngx_log_t *log)
{
    ngx_http_cutover_write_t  *w = data;

    ngx_str_t                   tmp;
    ngx_uint_t                  persisted;
    cutover_state_t            *cur = w->cur, *next = w->next;
    ngx_http_cutover_admin_t   *a = w->answer.a;
    ngx_http_cutover_zone_t    *z = a->zone;
    ngx_http_cutover_shctx_t   *sh = z->sh;

    tmp.data = w->tmpname;
    w->answer.status = NGX_HTTP_OK;

    ngx_http_cutover_writer_lock(sh);

    ngx_http_cutover_refusals_flush(z, log);
    ngx_http_cutover_zone_copy(z, cur);

    /* reads the trail's end again if it moved, records a damaged end */
    (void) ngx_http_cutover_audit_sync(z, log);

    if (a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK) {
        ngx_memcpy(next, cur, sizeof(cutover_state_t));
        cutover_state_rollback(next, ngx_time());
        ngx_sprintf((u_char *) w->from, "{\"version\":%uL,\"state\":\"%s\"}%Z",
                    cur->version, cur->rolled_back ? "rolled_back"
                                                   : "active");
        ngx_sprintf((u_char *) w->to, "{\"version\":%uL,\"state\":"
                    "\"rolled_back\"}%Z", next->version);
        goto rollback;
    }

    if (!sh->audit_ok) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "audit_unavailable", "the audit trail cannot "
                                 "be read or written; no change is made "
                                 "(rollback is still possible)");
        goto failed;
    }

    if (a->ep == NGX_HTTP_CUTOVER_EP_ACCEPT) {
        ngx_memcpy(next, cur, sizeof(cutover_state_t));

        if (sh->audit_pending_break == 0) {
            w->answer.status = NGX_HTTP_CONFLICT;
            cutover_error_set(&w->answer.err, "nothing_to_accept",
                              "the audit trail has no unaccepted break");
            goto refused;
        }

        ngx_sprintf((u_char *) w->from, "{\"break_seq\":%uL}%Z",
                    sh->audit_pending_break);
        w->to = NULL;
        goto audit;
    }

    if (sh->audit_pending_break) {
        w->answer.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        cutover_error_set(&w->answer.err, "audit_break_unaccepted",
                          "the audit trail was damaged (break recorded as "
                          "seq %llu): an admin must accept it (cutoverctl "
                          "audit accept --reason ...) before a dial; "
                          "rollback is still possible",
                          (unsigned long long) sh->audit_pending_break);
        goto refused;
    }

    if (ngx_http_cutover_dial_prepare(w) != NGX_OK) {
        goto refused;
    }

    if (ngx_http_cutover_zone_persist(z, next, log, &tmp) != NGX_OK) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "persist_failed", "the state file cannot be "
                                 "written; no change is made");
        goto failed;
    }

    if (ngx_http_cutover_change_audit(w, log) != NGX_OK) {
        (void) ngx_delete_file(tmp.data);
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "audit_unavailable", "the audit trail cannot "
                                 "be written; no change is made");
        goto failed;
    }

    if (ngx_http_cutover_zone_commit(z, next, &tmp, log) != NGX_OK) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "persist_failed", "the state file cannot be "
                                 "written; no change is made");
        goto failed;
    }

    goto publish;

audit:

    /* an accept changes no state: only its entry */
    if (ngx_http_cutover_change_audit(w, log) != NGX_OK) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "audit_unavailable", "the audit trail cannot "
                                 "be written; the break is not accepted");
        goto failed;
    }

    ngx_http_cutover_writer_unlock(sh);
    (void) ngx_atomic_fetch_add(&sh->changes_accepted, 1);
    return;

rollback:

    persisted = ngx_http_cutover_zone_persist(z, next, log, &tmp) == NGX_OK;

    if (ngx_http_cutover_change_audit(w, log) != NGX_OK) {
        (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cutover zone \"%V\": rollback by \"%s\" applied "
                      "without its audit entry (the trail cannot be "
                      "written): %s", &z->name, a->key_id, a->reason);
    }

    if (!persisted || ngx_http_cutover_zone_commit(z, next, &tmp, log)
                      != NGX_OK)
    {
        (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cutover zone \"%V\": rollback applied in memory only: "
                      "the state file cannot be written, a restart would "
                      "load the state before it", &z->name);
    }

publish:

    ngx_http_cutover_zone_publish(z, next);
    ngx_http_cutover_writer_unlock(sh);

    (void) ngx_atomic_fetch_add(&sh->changes_accepted, 1);
    return;

failed:

    (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);

refused:

    /* the refusal itself is audited, as every signed refused attempt is */
    ngx_http_cutover_refusal_audit(&w->answer, log);
    ngx_http_cutover_writer_unlock(sh);
}


/* The dial's next state and the rule before and after, for its entry. */
static ngx_int_t
ngx_http_cutover_dial_prepare(ngx_http_cutover_write_t *w)
{
    int                         n;
    cutover_state_t            *cur = w->cur, *next = w->next;
    ngx_http_cutover_change_t  *c = w->c;

    if (c->expect_version >= 0
        && (uint64_t) c->expect_version != cur->version)
    {
        w->answer.status = NGX_HTTP_CONFLICT;
        cutover_error_set(&w->answer.err, "version_conflict",
                          "expect_version %lld but the state is at version "
                          "%llu", (long long) c->expect_version,
                          (unsigned long long) cur->version);
        return NGX_ERROR;
    }

    if (cutover_state_dial(next, cur, &c->dial, ngx_time(), &w->answer.err)
        != 0)
    {
        w->answer.status = NGX_HTTP_BAD_REQUEST;
        return NGX_ERROR;
    }

    n = cutover_state_find(cur, c->dial.rule);
    if (n < 0) {
        w->from = NULL;

    } else {
        ngx_http_cutover_audit_rule(cur, n, w->from);
    }

    ngx_http_cutover_audit_rule(next, cutover_state_find(next, c->dial.rule),
                                w->to);

    return NGX_OK;
}


/* The accepted change's entry; the caller holds the writer lock. */
static ngx_int_t
ngx_http_cutover_change_audit(ngx_http_cutover_write_t *w, ngx_log_t *log)
{
    cutover_audit_entry_t      e;
    ngx_http_cutover_admin_t  *a = w->answer.a;

    ngx_memzero(&e, sizeof(e));
    e.time = ngx_time();
    e.key_id = a->key_id;
    e.action = ngx_http_cutover_action(a);
    e.result = "accepted";
    e.from = w->from;
    e.to = w->to;
    e.reason = a->reason;

    return ngx_http_cutover_audit_append(a->zone, &e, log);
}


/* Back in the event loop, for a change or a refusal: the answer. */
static void
ngx_http_cutover_written(ngx_event_t *ev)
{
    ngx_int_t                   rc;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_cutover_write_t   *w;
    ngx_http_cutover_answer_t  *ans = ev->data;

    r = ans->r;
    c = r->connection;

    if (ans->status == NGX_HTTP_OK) {
        /* only a change is answered 200 */
        w = (ngx_http_cutover_write_t *) ans;

        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "cutover zone \"%V\": %s by \"%s\", version %uL: %s",
                      &ans->a->zone->name, ngx_http_cutover_action(ans->a),
                      ans->a->key_id, w->next->version, ans->a->reason);

        rc = ngx_http_cutover_state_reply(r, ans->a, w->next, 0);

    } else {
        rc = ngx_http_cutover_error(r, ans->a, ans->status, ans->err.code,
                                    ans->err.message);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
