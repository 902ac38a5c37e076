/*
 * ngx_http_cutover_module: sticky grayscale routing between the legacy
 * system and the new core, by a dial held in shared memory.  Here: the
 * module, its directives and their configuration.  Routing and the
 * variables are in _route.c, postconfiguration and the directories in
 * _init.c.
 */

#include "ngx_http_cutover.h"


static void ngx_http_cutover_exit_process(ngx_cycle_t *cycle);
static void *ngx_http_cutover_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_cutover_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_cutover_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_cutover_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_cutover_upstreams(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cutover_admin_keys(ngx_conf_t *cf, ngx_command_t *cmd,
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


static void
ngx_http_cutover_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_cutover_record_process(cycle, 1);
    ngx_http_cutover_fleet_exit_process(cycle);
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


/*
 * cutover_zone <name> [size=<size>] state=<path> [audit=<path>]
 * [fleet=<conninfo> gateway=<name>]. Kept
 * whole: the directive's arguments are read once, in order, each error
 * quoting its value.
 */
static char *
ngx_http_cutover_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_main_conf_t  *cmcf = conf;

    ssize_t                   size;
    ngx_str_t                *value, s, name, state, audit, fleet, gw;
    ngx_uint_t                i;
    ngx_shm_zone_t           *shm_zone, **zp;
    ngx_http_cutover_zone_t  *zone;

    value = cf->args->elts;
    name = value[1];
    size = 1024 * 1024;
    ngx_str_null(&state);
    ngx_str_null(&audit);
    ngx_str_null(&fleet);
    ngx_str_null(&gw);

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

        if (ngx_strncmp(value[i].data, "fleet=", 6) == 0
            && value[i].len > 6)
        {
            fleet.data = value[i].data + 6;
            fleet.len = value[i].len - 6;
            continue;
        }

        if (ngx_strncmp(value[i].data, "gateway=", 8) == 0) {
            gw.data = value[i].data + 8;
            gw.len = value[i].len - 8;

            if (!cutover_id_valid((char *) gw.data, gw.len)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid gateway "
                                   "name \"%V\": 1 to 32 of A-Z a-z 0-9 _ "
                                   ". -", &gw);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if ((fleet.len == 0) != (gw.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "zone \"%V\": fleet= and "
                           "gateway= go together (the fleet names each "
                           "gateway)", &name);
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
    zone->name_hash = ngx_crc32_short(name.data, name.len);
    zone->state_path = state;

    /* used as C strings by libpq and in the fleet's rows */
    if (fleet.len) {
        zone->fleet.len = fleet.len;
        zone->fleet.data = ngx_pnalloc(cf->pool, fleet.len + 1);
        zone->gateway.len = gw.len;
        zone->gateway.data = ngx_pnalloc(cf->pool, gw.len + 1);
        if (zone->fleet.data == NULL || zone->gateway.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(zone->fleet.data, fleet.data, fleet.len + 1);
        ngx_cpystrn(zone->gateway.data, gw.data, gw.len + 1);
    }

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


/*
 * cutover_admin_keys <file>: lines "<key-id> <role> <hex secret>". Kept
 * whole: one read of the file, line by line, each error naming its line.
 */
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
