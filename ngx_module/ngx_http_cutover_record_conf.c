/*
 * ngx_http_cutover_record_conf: the recording directives (cutover_record,
 * cutover_record_reads, cutover_log, cutover_record_headers) and their
 * merge.
 */

#include "ngx_http_cutover.h"


static ngx_str_t  ngx_http_cutover_default_headers[] = {
    ngx_string("content-type"),
    ngx_string("accept"),
    ngx_string("idempotency-key"),
    ngx_string("x-store-id"),
    ngx_string("x-channel"),
    ngx_string("x-member-id"),
    ngx_string("x-cutover-request-id"),
    ngx_null_string
};


/* cutover_record off | writes | all */
char *
ngx_http_cutover_record_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    ngx_str_t  *value = cf->args->elts;

    if (lcf->record != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->record = NGX_HTTP_CUTOVER_RECORD_OFF;

    } else if (ngx_strcmp(value[1].data, "writes") == 0) {
        lcf->record = NGX_HTTP_CUTOVER_RECORD_WRITES;

    } else if (ngx_strcmp(value[1].data, "all") == 0) {
        lcf->record = NGX_HTTP_CUTOVER_RECORD_ALL;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid value \"%V\": "
                           "expected off, writes or all", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* cutover_record_reads <percent>% */
char *
ngx_http_cutover_record_reads(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    size_t            len;
    int32_t           bp;
    ngx_str_t        *value = cf->args->elts;
    cutover_error_t   err;

    if (lcf->record_reads != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    len = value[1].len;
    if (len && value[1].data[len - 1] == '%') {
        len--;
    }

    bp = cutover_percent_parse((char *) value[1].data, len, &err);
    if (bp < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid value \"%V\": a "
                           "percent from 0 to 100 with at most two "
                           "decimals", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->record_reads = bp;
    return NGX_CONF_OK;
}


/*
 * cutover_log <path> [segment=<size>] [max=<size>] [buffer=<size>|off].
 * Kept whole: the
 * directive's arguments are read once, in order, each error quoting its
 * value.
 */
char *
ngx_http_cutover_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    off_t                          size;
    ngx_str_t                     *value, path, s;
    ngx_uint_t                     i;
    ngx_http_cutover_log_t        *log, **lp;
    ngx_http_cutover_main_conf_t  *cmcf;

    if (lcf->log != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cutover_module);

    /* locations naming the same file share one writer */
    lp = cmcf->logs.elts;
    for (i = 0; i < cmcf->logs.nelts; i++) {
        if (lp[i]->path.len == path.len
            && ngx_strncmp(lp[i]->path.data, path.data, path.len) == 0)
        {
            if (cf->args->nelts > 2) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "log \"%V\" is "
                                   "already defined; give segment=, max= and "
                                   "buffer= once", &path);
                return NGX_CONF_ERROR;
            }

            lcf->log = lp[i];
            return NGX_CONF_OK;
        }
    }

    log = ngx_pcalloc(cf->pool, sizeof(ngx_http_cutover_log_t));
    if (log == NULL) {
        return NGX_CONF_ERROR;
    }

    log->path.data = ngx_pnalloc(cf->pool, path.len + 1);
    if (log->path.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(log->path.data, path.data, path.len + 1);
    log->path.len = path.len;
    log->segment = 64 * 1024 * 1024;
    log->buffer = 1024 * 1024;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "segment=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            size = ngx_parse_offset(&s);

            if (size < 4096) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid segment "
                                   "size \"%V\": at least 4k", &value[i]);
                return NGX_CONF_ERROR;
            }

            log->segment = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;
            size = ngx_parse_offset(&s);

            if (size == NGX_ERROR || size == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid log size "
                                   "\"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            log->max = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "buffer=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                log->buffer = 0;
                continue;
            }

            size = ngx_parse_size(&s);

            if (size < 64 * 1024 || size > 1024 * 1024 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid buffer "
                                   "size \"%V\": from 64k to 1g, or off",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            log->buffer = (size_t) size;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (log->max && log->max < 2 * log->segment) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "max= must be at least two "
                           "segments (segment=%O)", log->segment);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_cutover_add_dir(cf, &log->path, "cutover_log") != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (log->buffer
        && ngx_http_cutover_logbuf_add(cf, log, log->buffer) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cutover_writer_init(&log->writer, (char *) log->path.data,
                       (uint64_t) log->segment);
    log->writer.max_bytes = (uint64_t) log->max;

    lp = ngx_array_push(&cmcf->logs);
    if (lp == NULL) {
        return NGX_CONF_ERROR;
    }

    *lp = log;
    lcf->log = log;

    return NGX_CONF_OK;
}


/* cutover_record_headers <name> ... */
char *
ngx_http_cutover_record_headers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_cutover_loc_conf_t  *lcf = conf;

    ngx_str_t   *value, *h;
    ngx_uint_t   i;

    if (lcf->record_headers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->record_headers = ngx_array_create(cf->pool, cf->args->nelts,
                                           sizeof(ngx_str_t));
    if (lcf->record_headers == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        h = ngx_array_push(lcf->record_headers);
        if (h == NULL) {
            return NGX_CONF_ERROR;
        }

        *h = value[i];
        ngx_strlow(h->data, h->data, h->len);
    }

    return NGX_CONF_OK;
}


char *
ngx_http_cutover_record_merge(ngx_conf_t *cf,
    ngx_http_cutover_loc_conf_t *prev, ngx_http_cutover_loc_conf_t *conf)
{
    ngx_str_t  *h, *d;

    ngx_conf_merge_uint_value(conf->record, prev->record,
                              NGX_HTTP_CUTOVER_RECORD_OFF);
    ngx_conf_merge_value(conf->record_reads, prev->record_reads, 0);
    ngx_conf_merge_ptr_value(conf->log, prev->log, NULL);
    ngx_conf_merge_size_value(conf->body_limit, prev->body_limit,
                              256 * 1024);
    ngx_conf_merge_ptr_value(conf->record_headers, prev->record_headers,
                             NULL);

    if (conf->record_headers == NULL) {
        conf->record_headers = ngx_array_create(cf->pool, 8,
                                                sizeof(ngx_str_t));
        if (conf->record_headers == NULL) {
            return NGX_CONF_ERROR;
        }

        for (d = ngx_http_cutover_default_headers; d->len; d++) {
            h = ngx_array_push(conf->record_headers);
            if (h == NULL) {
                return NGX_CONF_ERROR;
            }

            *h = *d;
        }
    }

    if (conf->record != NGX_HTTP_CUTOVER_RECORD_OFF && conf->log == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "cutover_record needs "
                           "cutover_log");
        return NGX_CONF_ERROR;
    }

    if (conf->log != NULL && conf->log->first_zone == NULL
        && conf->zone != NULL)
    {
        conf->log->first_zone = conf->zone->data;
    }

    return NGX_CONF_OK;
}
