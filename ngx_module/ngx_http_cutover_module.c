/*
 * ngx_http_cutover_module: sticky grayscale routing between the legacy
 * system and the new core, by a dial held in shared memory.
 */

#include "ngx_http_cutover.h"

#include <grp.h>
#include <pwd.h>


typedef enum {
    NGX_HTTP_CUTOVER_VAR_UPSTREAM = 0,
    NGX_HTTP_CUTOVER_VAR_SIDE,
    NGX_HTTP_CUTOVER_VAR_BUCKET,
    NGX_HTTP_CUTOVER_VAR_RULE,
    NGX_HTTP_CUTOVER_VAR_VERSION,
    NGX_HTTP_CUTOVER_VAR_REQUEST_ID
} ngx_http_cutover_var_e;


/* A directory the workers write in (for state=, audit=, cutover_log),
 * made and checked when the configuration is applied. */
typedef struct {
    ngx_str_t                     dir;            /* NUL-terminated */
    ngx_str_t                     file;           /* NUL-terminated */
    const char                   *what;
    ngx_str_t                     conf_file;
    ngx_uint_t                    line;
} ngx_http_cutover_dir_t;


static ngx_http_cutover_ctx_t *ngx_http_cutover_route(ngx_http_request_t *r);
static ngx_int_t ngx_http_cutover_route_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cutover_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_cutover_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_cutover_init_process(ngx_cycle_t *cycle);
static void ngx_http_cutover_exit_process(ngx_cycle_t *cycle);
static void ngx_http_cutover_ctx_cleanup(void *data);
static ngx_int_t ngx_http_cutover_init_zone_dirs(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_cutover_check_dirs(ngx_cycle_t *cycle,
    ngx_http_cutover_main_conf_t *cmcf, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_make_dir(ngx_http_cutover_dir_t *d,
    ngx_core_conf_t *ccf, const char *user, ngx_log_t *log);
static ngx_err_t ngx_http_cutover_probe_dir(ngx_http_cutover_dir_t *d,
    ngx_uint_t *file);
static ngx_int_t ngx_http_cutover_init(ngx_conf_t *cf);
static void *ngx_http_cutover_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_cutover_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_cutover_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_cutover_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover_upstreams(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover_admin_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_cutover_commands[] = {

    { ngx_string("cutover_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cutover_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cutover,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_store"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cutover_loc_conf_t, store),
      NULL },

    { ngx_string("cutover_channel"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cutover_loc_conf_t, channel),
      NULL },

    { ngx_string("cutover_key"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cutover_loc_conf_t, key),
      NULL },

    { ngx_string("cutover_upstreams"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_cutover_upstreams,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_record"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cutover_record_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_record_reads"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cutover_record_reads,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_log"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_cutover_log,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_body_limit"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cutover_loc_conf_t, body_limit),
      NULL },

    { ngx_string("cutover_record_headers"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_cutover_record_headers,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cutover_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cutover_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_guard"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_cutover_guard,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cutover_admin_keys"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cutover_admin_keys,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_cutover_module_ctx = {
    ngx_http_cutover_add_variables,        /* preconfiguration */
    ngx_http_cutover_init,                 /* postconfiguration */

    ngx_http_cutover_create_main_conf,     /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_cutover_create_loc_conf,      /* create location configuration */
    ngx_http_cutover_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_cutover_module = {
    NGX_MODULE_V1,
    &ngx_http_cutover_module_ctx,          /* module context */
    ngx_http_cutover_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_cutover_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_cutover_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


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

/* the configuration being applied, whose directories the first cutover
 * zone's init makes and checks (it runs after the "user" directive is
 * known and before the new configuration replaces the old one) */
static ngx_http_cutover_main_conf_t  *ngx_http_cutover_dirs_pending;
static ngx_cycle_t                   *ngx_http_cutover_dirs_cycle;


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


/* Decides the side of a request once; later calls return the same ctx. */
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


static ngx_int_t
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

    return ngx_http_cutover_guard_init_process(cycle);
}


static void
ngx_http_cutover_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_cutover_record_exit(cycle);
}


static ngx_int_t
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


static ngx_int_t
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


static ngx_int_t
ngx_http_cutover_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_cutover_dirs_pending = ngx_http_conf_get_module_main_conf(cf,
                                                    ngx_http_cutover_module);
    ngx_http_cutover_dirs_cycle = cf->cycle;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cutover_route_handler;

    if (ngx_http_cutover_guard_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_cutover_record_init(cf);
}


static void *
ngx_http_cutover_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cutover_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->zones, cf->pool, 2, sizeof(ngx_shm_zone_t *))
        != NGX_OK
        || ngx_array_init(&cmcf->logs, cf->pool, 2,
                          sizeof(ngx_http_cutover_log_t *))
           != NGX_OK
        || ngx_array_init(&cmcf->dirs, cf->pool, 4,
                          sizeof(ngx_http_cutover_dir_t))
           != NGX_OK)
    {
        return NULL;
    }

    return cmcf;
}


static void *
ngx_http_cutover_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_cutover_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cutover_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->upstream_new = { 0, NULL };
     *     conf->upstream_legacy = { 0, NULL };
     */

    conf->zone = NGX_CONF_UNSET_PTR;
    conf->store = NGX_CONF_UNSET_PTR;
    conf->channel = NGX_CONF_UNSET_PTR;
    conf->key = NGX_CONF_UNSET_PTR;
    conf->record = NGX_CONF_UNSET_UINT;
    conf->record_reads = NGX_CONF_UNSET;
    conf->log = NGX_CONF_UNSET_PTR;
    conf->body_limit = NGX_CONF_UNSET_SIZE;
    conf->record_headers = NGX_CONF_UNSET_PTR;
    conf->admin_zone = NULL;
    conf->keys = NULL;

    return conf;
}


static ngx_http_complex_value_t *
ngx_http_cutover_default_cv(ngx_conf_t *cf, char *text)
{
    ngx_str_t                         *value;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    value = ngx_palloc(cf->pool, sizeof(ngx_str_t));
    if (cv == NULL || value == NULL) {
        return NULL;
    }

    value->data = (u_char *) text;
    value->len = ngx_strlen(text);

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return cv;
}


static char *
ngx_http_cutover_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_cutover_loc_conf_t  *prev = parent;
    ngx_http_cutover_loc_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->zone, prev->zone, NULL);
    ngx_conf_merge_ptr_value(conf->store, prev->store, NULL);
    ngx_conf_merge_ptr_value(conf->channel, prev->channel, NULL);
    ngx_conf_merge_ptr_value(conf->key, prev->key, NULL);
    ngx_conf_merge_str_value(conf->upstream_new, prev->upstream_new,
                             "new_core");
    ngx_conf_merge_str_value(conf->upstream_legacy, prev->upstream_legacy,
                             "legacy");

    if (ngx_http_cutover_record_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->admin_zone && conf->keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "cutover_admin needs "
                           "cutover_admin_keys in the same location");
        return NGX_CONF_ERROR;
    }

    if (conf->zone == NULL) {
        return NGX_CONF_OK;
    }

    if (conf->store == NULL) {
        conf->store = ngx_http_cutover_default_cv(cf, "$http_x_store_id");
        if (conf->store == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->channel == NULL) {
        conf->channel = ngx_http_cutover_default_cv(cf, "$http_x_channel");
        if (conf->channel == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* cutover_zone <name> [size=<size>] state=<path> [audit=<path>] */
static char *
ngx_http_cutover_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_main_conf_t  *cmcf = conf;

    ssize_t                   size;
    ngx_str_t                *value, s, name, state, audit;
    ngx_uint_t                i;
    ngx_shm_zone_t           *shm_zone, **zp;
    ngx_http_cutover_zone_t  *zone;

    value = cf->args->elts;
    name = value[1];
    size = 1024 * 1024;
    ngx_str_null(&state);
    ngx_str_null(&audit);

    if (!cutover_id_valid((char *) name.data, name.len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone name \"%V\": "
                           "1 to 32 of A-Z a-z 0-9 _ . -", &name);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            size = ngx_parse_size(&s);
            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "state=", 6) == 0
            && value[i].len > 6)
        {
            state.data = value[i].data + 6;
            state.len = value[i].len - 6;
            continue;
        }

        if (ngx_strncmp(value[i].data, "audit=", 6) == 0
            && value[i].len > 6)
        {
            audit.data = value[i].data + 6;
            audit.len = value[i].len - 6;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (size < NGX_HTTP_CUTOVER_MIN_ZONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small: size=%z, at least %uz",
                           &name, size, (size_t) NGX_HTTP_CUTOVER_MIN_ZONE);
        return NGX_CONF_ERROR;
    }

    if (state.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" needs state=<file>: the dial must "
                           "survive a restart", &name);
        return NGX_CONF_ERROR;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_cutover_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->name = name;
    zone->state_path = state;

    /* nginx's "default" pool (32 threads unless thread_pool says else):
     * changes and audit entries are written and fsynced there */
    zone->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (zone->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &zone->state_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (audit.len == 0) {
        /* beside the state file */
        audit.len = zone->state_path.len + sizeof(".audit") - 1;
        audit.data = ngx_pnalloc(cf->pool, audit.len + 1);
        if (audit.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(audit.data, "%V.audit", &zone->state_path);
    }

    zone->audit_path = audit;

    if (ngx_conf_full_name(cf->cycle, &zone->audit_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* both paths are used as C strings: ngx_conf_full_name() copies
     * relative ones with a terminating NUL; make sure of absolute ones */
    for (i = 0; i < 2; i++) {
        ngx_str_t *p = i ? &zone->audit_path : &zone->state_path;
        u_char    *z = ngx_pnalloc(cf->pool, p->len + 1);

        if (z == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(z, p->data, p->len + 1);
        p->data = z;

        if (ngx_http_cutover_add_dir(cf, p, i ? "audit=" : "state=")
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_cutover_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate cutover zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_cutover_init_zone_dirs;
    shm_zone->data = zone;

    zp = ngx_array_push(&cmcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = shm_zone;

    return NGX_CONF_OK;
}


static ngx_shm_zone_t *
ngx_http_cutover_zone_ref(ngx_conf_t *cf, ngx_str_t *name)
{
    /* size 0: a reference; nginx fails at start if no cutover_zone
     * defines it ("zero size shared memory zone") */
    return ngx_shared_memory_add(cf, name, 0, &ngx_http_cutover_module);
}


static char *
ngx_http_cutover(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    ngx_str_t  *value;

    if (lcf->zone != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->zone = NULL;
        return NGX_CONF_OK;
    }

    lcf->zone = ngx_http_cutover_zone_ref(cf, &value[1]);
    if (lcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* cutover_upstreams new=<name> legacy=<name> */
static char *
ngx_http_cutover_upstreams(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    ngx_str_t   *value, *target;
    ngx_uint_t   i;

    if (lcf->upstream_new.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "new=", 4) == 0) {
            target = &lcf->upstream_new;
            value[i].data += 4;
            value[i].len -= 4;

        } else if (ngx_strncmp(value[i].data, "legacy=", 7) == 0) {
            target = &lcf->upstream_legacy;
            value[i].data += 7;
            value[i].len -= 7;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter "
                               "\"%V\": expected new=<upstream> and "
                               "legacy=<upstream>", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (value[i].len == 0 || target->data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter "
                               "\"%V\": expected new=<upstream> and "
                               "legacy=<upstream>", &value[i]);
            return NGX_CONF_ERROR;
        }

        *target = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cutover_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->admin_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->admin_zone = ngx_http_cutover_zone_ref(cf, &value[1]);
    if (lcf->admin_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_cutover_admin_handler;

    /*
     * admin bodies are at most 64 KiB: keep them in one memory buffer; the
     * handler answers larger ones with a JSON 413 (nginx's own
     * client_max_body_size still caps what is read at all)
     */
    if (clcf->client_body_buffer_size == NGX_CONF_UNSET_SIZE) {
        clcf->client_body_buffer_size = NGX_HTTP_CUTOVER_BODY_MAX;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cutover_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->metrics_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->metrics_zone = ngx_http_cutover_zone_ref(cf, &value[1]);
    if (lcf->metrics_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_cutover_metrics_handler;

    return NGX_CONF_OK;
}


/* cutover_admin_keys <file>: lines "<key-id> <role> <hex secret>" */
static char *
ngx_http_cutover_admin_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    u_char           *buf, *p, *eol, *last;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t        *value, path;
    ngx_uint_t        line, i;
    cutover_key_t    *key, *k;
    cutover_error_t   err;
    ngx_file_info_t   fi;

    if (lcf->keys) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    lcf->keys = ngx_array_create(cf->pool, 4, sizeof(cutover_key_t));
    if (lcf->keys == NULL) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open keys file \"%V\"", &path);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 1024 * 1024)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "keys file \"%V\" is unreadable or over 1 MiB",
                           &path);
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    buf = ngx_pnalloc(cf->temp_pool, ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = read(fd, buf, ngx_file_size(&fi));
    ngx_close_file(fd);

    if (n != ngx_file_size(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read keys file \"%V\"", &path);
        return NGX_CONF_ERROR;
    }

    last = buf + n;
    line = 0;

    for (p = buf; p < last; p = eol + 1) {
        line++;
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        key = ngx_array_push(lcf->keys);
        if (key == NULL) {
            return NGX_CONF_ERROR;
        }

        switch (cutover_key_parse_line((char *) p, eol - p, key, &err)) {

        case 0:
            lcf->keys->nelts--;
            continue;

        case 1:
            break;

        default:
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "keys file \"%V\", line %ui: %s", &path, line,
                               err.message);
            return NGX_CONF_ERROR;
        }

        k = lcf->keys->elts;
        for (i = 0; i + 1 < lcf->keys->nelts; i++) {
            if (ngx_strcmp(k[i].id, key->id) == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "keys file \"%V\", line %ui: duplicate "
                                   "key id \"%s\"", &path, line, key->id);
                return NGX_CONF_ERROR;
            }
        }
    }

    ngx_explicit_memzero(buf, n);

    if (lcf->keys->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "keys file \"%V\" has no keys", &path);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The directory of `file` (state=, audit=, cutover_log), made and checked
 * when the configuration is applied.  Remembers the directive's place in
 * the configuration for the error message.
 */
ngx_int_t
ngx_http_cutover_add_dir(ngx_conf_t *cf, ngx_str_t *file, const char *what)
{
    u_char                        *slash;
    ngx_http_cutover_dir_t        *d;
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cutover_module);

    d = ngx_array_push(&cmcf->dirs);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->file = *file;
    d->what = what;
    d->conf_file = cf->conf_file->file.name;
    d->line = cf->conf_file->line;

    /* a full name (ngx_conf_full_name()): there is a slash */
    slash = file->data + file->len;
    while (slash > file->data && slash[-1] != '/') {
        slash--;
    }

    d->dir.len = (slash - 1 > file->data) ? (size_t) (slash - 1 - file->data)
                                          : 1;
    d->dir.data = ngx_pnalloc(cf->pool, d->dir.len + 1);
    if (d->dir.data == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(d->dir.data, file->data, d->dir.len + 1);

    return NGX_OK;
}


/* The first cutover zone's init: the directories of the configuration
 * being applied come first. */
static ngx_int_t
ngx_http_cutover_init_zone_dirs(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_cutover_dirs_pending;

    if (cmcf != NULL) {
        ngx_http_cutover_dirs_pending = NULL;

        if (ngx_http_cutover_check_dirs(ngx_http_cutover_dirs_cycle, cmcf,
                                        shm_zone->shm.log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_cutover_init_zone(shm_zone, data);
}


/*
 * As nginx does for its temp paths: the master makes the directories the
 * workers write in (with their missing parents) and, running as root,
 * gives the ones it made to the worker user.  Then it checks, as the
 * worker user (a child process that takes the workers' identity), that
 * the workers can create files there and write the files already there.
 * Anything wrong fails the configuration (nginx -t, start or reload)
 * naming the path, the user and the directive's place.
 */
static ngx_int_t
ngx_http_cutover_check_dirs(ngx_cycle_t *cycle,
    ngx_http_cutover_main_conf_t *cmcf, ngx_log_t *log)
{
    int                      fds[2], status, rep[3];
    u_char                  *p, errstr[NGX_MAX_ERROR_STR];
    pid_t                    pid;
    ssize_t                  n;
    ngx_err_t                err;
    ngx_uint_t               i, file, root;
    const char              *user;
    struct passwd           *pw;
    ngx_core_conf_t         *ccf;
    ngx_http_cutover_dir_t  *d;
    u_char                   name[32];

    if (cmcf->dirs.nelts == 0) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    root = (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT);

    if (root) {
        user = ccf->username;

    } else {
        pw = getpwuid(geteuid());
        if (pw) {
            user = pw->pw_name;

        } else {
            ngx_sprintf(name, "uid %d%Z", (int) geteuid());
            user = (char *) name;
        }
    }

    d = cmcf->dirs.elts;

    for (i = 0; i < cmcf->dirs.nelts; i++) {
        if (ngx_http_cutover_make_dir(&d[i], ccf, user, log) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    rep[0] = -1;
    rep[1] = 0;
    rep[2] = 0;

    if (!root) {
        /* the workers are this user */
        for (i = 0; i < cmcf->dirs.nelts; i++) {
            err = ngx_http_cutover_probe_dir(&d[i], &file);
            if (err) {
                rep[0] = (int) i;
                rep[1] = (int) file;
                rep[2] = (int) err;
                break;
            }
        }

        goto report;
    }

    if (pipe(fds) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "pipe() failed");
        return NGX_ERROR;
    }

    pid = fork();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "fork() failed");
        close(fds[0]);
        close(fds[1]);
        return NGX_ERROR;
    }

    if (pid == 0) {
        /* the worker's identity, as ngx_worker_process_init() takes it */
        close(fds[0]);

        if (setgid(ccf->group) == -1
            || initgroups(ccf->username, ccf->group) == -1
            || setuid(ccf->user) == -1)
        {
            rep[0] = -2;
            rep[2] = errno;

        } else {
            for (i = 0; i < cmcf->dirs.nelts; i++) {
                err = ngx_http_cutover_probe_dir(&d[i], &file);
                if (err) {
                    rep[0] = (int) i;
                    rep[1] = (int) file;
                    rep[2] = (int) err;
                    break;
                }
            }
        }

        n = write(fds[1], rep, sizeof(rep));
        _exit(n == (ssize_t) sizeof(rep) ? 0 : 1);
    }

    close(fds[1]);

    do {
        n = read(fds[0], rep, sizeof(rep));
    } while (n == -1 && ngx_errno == NGX_EINTR);

    close(fds[0]);

    while (waitpid(pid, &status, 0) == -1 && ngx_errno == NGX_EINTR) {
        /* void */
    }

    if (n != (ssize_t) sizeof(rep)) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "cannot check the directories "
                      "of cutover_zone and cutover_log as the worker user "
                      "\"%s\"", user);
        return NGX_ERROR;
    }

report:

    if (rep[0] == -1) {
        return NGX_OK;
    }

    p = ngx_strerror(rep[2], errstr, sizeof(errstr));

    if (rep[0] == -2) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "cannot take the identity of "
                      "the worker user \"%s\" to check the directories of "
                      "cutover_zone and cutover_log (%d: %*s)", user, rep[2],
                      p - errstr, errstr);
        return NGX_ERROR;
    }

    i = (ngx_uint_t) rep[0];

    if (rep[1]) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "the worker user \"%s\" cannot "
                      "write %s\"%s\" of %s (%d: %*s) in %V:%ui", user,
                      rep[1] == 2 ? "the current segment of " : "the file ",
                      d[i].file.data, d[i].what, rep[2], p - errstr, errstr,
                      &d[i].conf_file, d[i].line);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_EMERG, log, 0, "the worker user \"%s\" cannot "
                  "create files in the directory \"%s\" of %s (%d: %*s) "
                  "in %V:%ui", user, d[i].dir.data, d[i].what, rep[2],
                  p - errstr, errstr, &d[i].conf_file, d[i].line);

    return NGX_ERROR;
}


/* mkdir -p, giving what it makes to the worker user when run as root. */
static ngx_int_t
ngx_http_cutover_make_dir(ngx_http_cutover_dir_t *d, ngx_core_conf_t *ccf,
    const char *user, ngx_log_t *log)
{
    u_char           *p, *path, errstr[NGX_MAX_ERROR_STR];
    ngx_err_t         err;
    ngx_file_info_t   fi;

    path = d->dir.data;

    if (ngx_file_info(path, &fi) == 0 && ngx_is_dir(&fi)) {
        return NGX_OK;
    }

    for (p = path + 1; /* void */; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }

        *p = '\0';

        if (mkdir((char *) path, 0755) == 0) {
            if (geteuid() == 0
                && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
                && chown((char *) path, ccf->user, ccf->group) == -1)
            {
                err = ngx_errno;
                goto failed;
            }

            ngx_log_error(NGX_LOG_NOTICE, log, 0, "created directory \"%s\" "
                          "for %s, owned by the worker user \"%s\"", path,
                          d->what, user);

        } else if (ngx_errno != NGX_EEXIST) {
            err = ngx_errno;
            goto failed;
        }

        if (p == path + d->dir.len) {
            break;
        }

        *p = '/';
    }

    if (ngx_file_info(path, &fi) == -1) {
        err = ngx_errno;
        goto failed;
    }

    if (!ngx_is_dir(&fi)) {
        err = NGX_ENOTDIR;
        goto failed;
    }

    return NGX_OK;

failed:

    /* path ends at the component that failed */
    p = ngx_strerror(err, errstr, sizeof(errstr));

    ngx_log_error(NGX_LOG_EMERG, log, 0, "cannot create the directory \"%s\" "
                  "of %s for the worker user \"%s\" (%d: %*s) in %V:%ui",
                  path, d->what, user, err, p - errstr, errstr,
                  &d->conf_file, d->line);

    return NGX_ERROR;
}


/*
 * Whether this process can create files in the directory and write the
 * file already there (for cutover_log, its current segment): 0 or the
 * errno, with *file 0 for the directory, 1 for the file, 2 for the
 * segment.
 */
static ngx_err_t
ngx_http_cutover_probe_dir(ngx_http_cutover_dir_t *d, ngx_uint_t *file)
{
    u_char    scratch[2048] __attribute__((aligned(8)));
    char      path[4096];
    uint64_t  first, last;

    *file = 0;

    if (access((char *) d->dir.data, W_OK|X_OK) == -1) {
        return ngx_errno;
    }

    if (d->what[0] != 'c') {
        *file = 1;

        if (access((char *) d->file.data, W_OK) == -1
            && ngx_errno != NGX_ENOENT)
        {
            return ngx_errno;
        }

        return 0;
    }

    *file = 2;

    if (cutover_segment_range((char *) d->file.data, scratch, sizeof(scratch),
                             &first, &last)
        != CUTOVER_OK)
    {
        return ngx_errno ? ngx_errno : NGX_EINVAL;
    }

    if (last
        && cutover_segment_path(path, sizeof(path), (char *) d->file.data,
                               last) == CUTOVER_OK
        && access(path, W_OK) == -1)
    {
        return ngx_errno;
    }

    return 0;
}
