/*
 * ngx_http_cutover_route: which side serves a request (the preaccess
 * handler), its request id, and the $cutover_* variables.
 */

#include "ngx_http_cutover.h"


static void ngx_http_cutover_ctx_cleanup(void *data);
static ngx_http_cutover_ctx_t *ngx_http_cutover_route(ngx_http_request_t *r);
static ngx_int_t ngx_http_cutover_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


typedef enum {
    NGX_HTTP_CUTOVER_VAR_UPSTREAM = 0,
    NGX_HTTP_CUTOVER_VAR_SIDE,
    NGX_HTTP_CUTOVER_VAR_BUCKET,
    NGX_HTTP_CUTOVER_VAR_RULE,
    NGX_HTTP_CUTOVER_VAR_VERSION,
    NGX_HTTP_CUTOVER_VAR_REQUEST_ID
} ngx_http_cutover_var_e;


static ngx_http_variable_t  ngx_http_cutover_vars[] = {

    { ngx_string("cutover_upstream"), NULL, ngx_http_cutover_variable,
      NGX_HTTP_CUTOVER_VAR_UPSTREAM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cutover_side"), NULL, ngx_http_cutover_variable,
      NGX_HTTP_CUTOVER_VAR_SIDE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cutover_bucket"), NULL, ngx_http_cutover_variable,
      NGX_HTTP_CUTOVER_VAR_BUCKET, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cutover_rule"), NULL, ngx_http_cutover_variable,
      NGX_HTTP_CUTOVER_VAR_RULE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cutover_version"), NULL, ngx_http_cutover_variable,
      NGX_HTTP_CUTOVER_VAR_VERSION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cutover_request_id"), NULL, ngx_http_cutover_variable,
      NGX_HTTP_CUTOVER_VAR_REQUEST_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t  ngx_http_cutover_request_id_index;
static uint64_t   ngx_http_cutover_seed[2];
static uint64_t   ngx_http_cutover_counter;


/*
 * The routing context.  nginx clears the modules' contexts on an internal
 * redirect (error_page, try_files, X-Accel-Redirect, named locations), but
 * the request is routed once, with the decision of its first pass: that
 * context is also kept in a cleanup of the request's pool (as the realip
 * module keeps the original address) and found there again.
 */
ngx_http_cutover_ctx_t *
ngx_http_cutover_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_cutover_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cutover_module);

    if (ctx == NULL && r == r->main && (r->internal || r->filter_finalize)) {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_cutover_ctx_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_cutover_module);
                break;
            }
        }
    }

    return ctx;
}


static void
ngx_http_cutover_ctx_cleanup(void *data)
{
    /* only a marker: the context lives in the request's pool */
}


/*
 * Decides the side of a request once; later calls return the same ctx.
 * Kept whole (past 80 lines): the key, the bucket and the rule are decided
 * in one pass.
 */
static ngx_http_cutover_ctx_t *
ngx_http_cutover_route(ngx_http_request_t *r)
{
    u_char                       *p;
    ngx_str_t                     store, channel, key;
    ngx_pool_cleanup_t           *cln;
    ngx_http_cutover_ctx_t       *ctx;
    ngx_http_cutover_zone_t      *zone;
    ngx_http_cutover_loc_conf_t  *lcf;

    ctx = ngx_http_cutover_get_ctx(r);
    if (ctx) {
        return ctx->admin ? NULL : ctx;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);
    if (lcf->zone == NULL) {
        return NULL;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    if (r == r->main) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NULL;
        }

        cln->handler = ngx_http_cutover_ctx_cleanup;
        cln->data = ctx;
    }

    zone = lcf->zone->data;
    ctx->zone = zone;
    ctx->lcf = lcf;

    if (ngx_http_complex_value(r, lcf->store, &store) != NGX_OK
        || ngx_http_complex_value(r, lcf->channel, &channel) != NGX_OK)
    {
        return NULL;
    }

    if (lcf->key) {
        if (ngx_http_complex_value(r, lcf->key, &key) != NGX_OK) {
            return NULL;
        }

    } else if (store.len) {
        /* the default key: store ":" channel */
        key.len = store.len + 1 + channel.len;
        key.data = ngx_pnalloc(r->pool, key.len);
        if (key.data == NULL) {
            return NULL;
        }

        p = ngx_cpymem(key.data, store.data, store.len);
        *p++ = ':';
        ngx_memcpy(p, channel.data, channel.len);

    } else {
        ngx_str_null(&key);
    }

    if (key.len == 0) {
        /* nothing to be sticky on: legacy, and counted */
        ctx->empty_key = 1;
        ctx->bucket = CUTOVER_BUCKETS;
        (void) ngx_atomic_fetch_add(&zone->sh->empty_key, 1);

    } else {
        ctx->bucket = cutover_bucket(key.data, key.len);
    }

    ngx_http_cutover_zone_route(zone, &store, &channel, ctx->bucket,
                                &ctx->route);

    ctx->store = store;
    ctx->channel = channel;
    ctx->key = key;

    (void) ngx_atomic_fetch_add(
                  &zone->sh->requests[ctx->route.counter][ctx->route.to_new],
                  1);

    ngx_http_set_ctx(r, ctx, ngx_http_cutover_module);

    if (ngx_http_cutover_record_start(r, ctx) != NGX_OK) {
        return NULL;
    }

    return ctx;
}


/*
 * The record id of a routed request: made from the worker's random seed
 * and a counter (no RAND_bytes() per request, which in OpenSSL 3 costs
 * more than the rest of recording); elsewhere nginx's $request_id.
 */
ngx_int_t
ngx_http_cutover_request_id(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_cutover_ctx_t     *ctx;
    ngx_http_variable_value_t  *vv;

    ctx = ngx_http_cutover_get_ctx(r);

    if (ctx && ctx->admin == NULL) {
        if (!ctx->has_id) {
            cutover_record_id(ngx_http_cutover_seed[0],
                              ngx_http_cutover_seed[1],
                              ++ngx_http_cutover_counter, (char *) ctx->id);
            ctx->has_id = 1;
        }

        id->data = ctx->id;
        id->len = sizeof(ctx->id);
        return NGX_OK;
    }

    vv = ngx_http_get_indexed_variable(r, ngx_http_cutover_request_id_index);
    if (vv == NULL || vv->not_found) {
        return NGX_ERROR;
    }

    id->data = vv->data;
    id->len = vv->len;
    return NGX_OK;
}


ngx_int_t
ngx_http_cutover_init_process(ngx_cycle_t *cycle)
{
    if (RAND_bytes((u_char *) ngx_http_cutover_seed,
                   sizeof(ngx_http_cutover_seed)) != 1)
    {
        /* no entropy from OpenSSL: still distinct per worker and start */
        ngx_http_cutover_seed[0] = ((uint64_t) ngx_pid << 32) ^ ngx_time()
                                   ^ (uint64_t) ngx_random();
        ngx_http_cutover_seed[1] = ((uint64_t) ngx_random() << 31)
                                   ^ (uint64_t) ngx_random();
    }

    if (ngx_http_cutover_guard_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_cutover_record_process(cycle, 0);

    return ngx_http_cutover_fleet_init_process(cycle);
}


ngx_int_t
ngx_http_cutover_route_handler(ngx_http_request_t *r)
{
    ngx_http_cutover_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);

    if (lcf->zone && ngx_http_cutover_route(r) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_cutover_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p;
    ngx_str_t                    *s;
    ngx_http_cutover_ctx_t       *ctx;
    ngx_str_t                     id;
    ngx_http_cutover_loc_conf_t  *lcf;

    if (data == NGX_HTTP_CUTOVER_VAR_REQUEST_ID) {
        /* a routed request has its record id in its ctx */
        (void) ngx_http_cutover_route(r);

        if (ngx_http_cutover_request_id(r, &id) != NGX_OK) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = id.data;
        v->len = id.len;
        v->valid = 1;
        v->no_cacheable = 0;
        v->not_found = 0;
        return NGX_OK;
    }

    ctx = ngx_http_cutover_route(r);
    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    switch (data) {

    case NGX_HTTP_CUTOVER_VAR_UPSTREAM:
        lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);
        s = ctx->route.to_new ? &lcf->upstream_new : &lcf->upstream_legacy;
        v->data = s->data;
        v->len = s->len;
        return NGX_OK;

    case NGX_HTTP_CUTOVER_VAR_SIDE:
        v->data = (u_char *) (ctx->route.to_new ? "new" : "legacy");
        v->len = ctx->route.to_new ? 3 : 6;
        return NGX_OK;

    case NGX_HTTP_CUTOVER_VAR_RULE:
        v->data = (u_char *) ctx->route.rule_id;
        v->len = ngx_strlen(ctx->route.rule_id);
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    if (data == NGX_HTTP_CUTOVER_VAR_BUCKET) {
        if (ctx->empty_key) {
            v->len = 0;
            return NGX_OK;
        }

        v->len = ngx_sprintf(p, "%uD", ctx->bucket) - p;

    } else {
        v->len = ngx_sprintf(p, "%uL", ctx->route.version) - p;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cutover_add_variables(ngx_conf_t *cf)
{
    ngx_str_t             name = ngx_string("request_id");
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_cutover_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    ngx_http_cutover_request_id_index = ngx_http_get_variable_index(cf,
                                                                    &name);
    if (ngx_http_cutover_request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}
