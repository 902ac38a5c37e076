/*
 * ngx_http_cutover_admin: the signed admin API's entry: which endpoint,
 * the body, the answer and the error shapes, and GET status.  Signing
 * and refusals are in _admin_auth.c, metrics in _admin_metrics.c, history
 * in _admin_history.c, dial/rollback/accept in _admin_dial.c.
 */

#include "ngx_http_cutover_admin.h"


static void ngx_http_cutover_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_cutover_admin_process(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
static ngx_int_t ngx_http_cutover_status(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);


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

    if (name.len == 4 && ngx_strncmp(p, "ramp", 4) == 0) {
        return NGX_HTTP_CUTOVER_EP_RAMP;
    }

    return NGX_HTTP_CUTOVER_EP_UNKNOWN;
}


/*
 * Kept whole (past 80 lines): the order of the checks (endpoint, method,
 * body size) is the order of the refusals a client sees.
 */
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
                                      "accept, ramp");
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

    case NGX_HTTP_CUTOVER_EP_RAMP:
        return ngx_http_cutover_ramp(r, a);

    default:
        return ngx_http_cutover_change(r, a);
    }
}


ngx_int_t
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


ngx_int_t
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
        p = ngx_sprintf(p, ",\"requests\":{\"new\":%uA,\"legacy\":%uA}",
                        z->sh->requests[c][1], z->sh->requests[c][0]);
        p = ngx_http_cutover_ramp_json(&st->rules[i], p);
        *p++ = '}';
    }

    *p++ = ']';
    return p;
}


static size_t
ngx_http_cutover_state_size(cutover_state_t *st)
{
    /* the fleet object: a gateway id and three figures */
    return 2048 + st->nrules * 500 + st->nids * (CUTOVER_ID_MAX + 4)
           + ngx_http_cutover_guard_status_size(st) + 256;
}


/* {"zone","version","state","changed_at","rules"[,"counters"]} */
ngx_int_t
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

        p = ngx_http_cutover_guard_status(a->zone, st, p);
        p = ngx_http_cutover_fleet_status(a->zone, p);
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
