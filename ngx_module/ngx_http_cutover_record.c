/*
 * ngx_http_cutover_record: the dual-run log.  A body filter tees the
 * primary's response (a prefix up to the body limit and a SHA-256 of all
 * of it); when the request ends, one framed record goes to the log with one
 * write(2).  Recording never changes, delays or fails the client's answer:
 * a record that cannot be written is counted as dropped.
 */

#define OPENSSL_SUPPRESS_DEPRECATED  /* SHA256_CTX lives in r->pool */

#include "ngx_http_cutover.h"

#include <openssl/sha.h>


#define NGX_HTTP_CUTOVER_MAX_HEADERS    64
#define NGX_HTTP_CUTOVER_FRAME_KEEP     (64 * 1024)


struct ngx_http_cutover_tee_s {
    ngx_pool_t               *pool;
    u_char                   *body;         /* grows up to body_limit */
    size_t                    body_len;
    size_t                    body_cap;
    size_t                    expect;       /* Content-Length, if known */
    off_t                     body_total;
    SHA256_CTX                sha;          /* once past the limit */
    ngx_uint_t                truncated;
};


static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_int_t ngx_http_cutover_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_cutover_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cutover_tee(ngx_http_cutover_tee_t *tee,
    u_char *p, size_t len, size_t limit);
static ngx_int_t ngx_http_cutover_tee_file(ngx_http_request_t *r,
    ngx_http_cutover_tee_t *tee, ngx_buf_t *b, size_t limit);
static ngx_int_t ngx_http_cutover_add_header(ngx_http_request_t *r,
    const char *name, size_t name_len, ngx_str_t *value, ngx_uint_t keep);


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


/* cutover_log <path> [segment=<size>] [max=<size>] */
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
                                   "already defined; give segment= and max= "
                                   "once", &path);
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

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (log->max && log->max < 2 * log->segment) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "max= must be at least two "
                           "segments (segment=%O)", log->segment);
        return NGX_CONF_ERROR;
    }

    shadow_writer_init(&log->writer, (char *) log->path.data,
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

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_cutover_record_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cutover_log_handler;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_cutover_body_filter;

    return NGX_OK;
}


/* Sets (keep = 0) or adds when absent (keep = 1) a request header that the
 * proxy passes upstream. */
static ngx_int_t
ngx_http_cutover_add_header(ngx_http_request_t *r, const char *name,
    size_t name_len, ngx_str_t *value, ngx_uint_t keep)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name_len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, name_len) == 0)
        {
            if (!keep) {
                h[i].value = *value;
            }

            return NGX_OK;
        }
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = name_len;
    h->value = *value;
    h->lowcase_key = ngx_pnalloc(r->pool, name_len);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(h->lowcase_key, (u_char *) name, name_len);

    return NGX_OK;
}


/* Called once routing is decided: the request ids go upstream, and a
 * request chosen for the log gets its tee. */
ngx_int_t
ngx_http_cutover_record_start(ngx_http_request_t *r,
    ngx_http_cutover_ctx_t *ctx)
{
    ngx_str_t                     id;
    ngx_uint_t                    write;
    ngx_http_cutover_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);

    if (lcf->record == NGX_HTTP_CUTOVER_RECORD_OFF || r != r->main) {
        return NGX_OK;
    }

    write = r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH
                         |NGX_HTTP_DELETE);

    if (!write && lcf->record == NGX_HTTP_CUTOVER_RECORD_WRITES
        && (ngx_int_t) (ngx_random() % CUTOVER_BUCKETS) >= lcf->record_reads)
    {
        return NGX_OK;
    }

    if (ngx_http_cutover_request_id(r, &id) != NGX_OK) {
        return NGX_ERROR;
    }

    /* both sides dedupe a write by the same key: the client's own
     * Idempotency-Key when it sends one, else the record id */
    if (ngx_http_cutover_add_header(r, "X-Cutover-Request-Id",
                                    sizeof("X-Cutover-Request-Id") - 1, &id,
                                    0) != NGX_OK
        || ngx_http_cutover_add_header(r, "Idempotency-Key",
                                       sizeof("Idempotency-Key") - 1, &id, 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->tee = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_tee_t));
    if (ctx->tee == NULL) {
        return NGX_ERROR;
    }

    ctx->tee->pool = r->pool;

    return NGX_OK;
}


/* Keeps a piece of the body while under the limit.  A body that outgrows
 * the limit is hashed from then on, the kept prefix first: the record
 * carries a SHA-256 only for truncated bodies (a whole body is its own
 * proof).  The copy grows by doubling (most answers are small; a
 * body_limit-sized buffer per request would be a large allocation every
 * time). */
static ngx_int_t
ngx_http_cutover_tee(ngx_http_cutover_tee_t *tee, u_char *p, size_t len,
    size_t limit)
{
    size_t   n, cap;
    u_char  *body;

    tee->body_total += len;

    n = ngx_min(len, limit - tee->body_len);

    if (n < len) {
        if (!tee->truncated) {
            tee->truncated = 1;
            SHA256_Init(&tee->sha);
            SHA256_Update(&tee->sha, tee->body, tee->body_len);
        }

        SHA256_Update(&tee->sha, p, len);
    }

    if (n == 0) {
        return NGX_OK;
    }

    if (tee->body_len + n > tee->body_cap) {
        /* the announced length, else start small: pool memory up to a
         * page, a heap allocation beyond */
        cap = tee->body_cap ? tee->body_cap * 2
                            : tee->expect ? tee->expect : 1024;
        cap = ngx_max(cap, tee->body_len + n);
        cap = ngx_min(cap, limit);

        body = ngx_pnalloc(tee->pool, cap);
        if (body == NULL) {
            return NGX_ERROR;
        }

        if (tee->body_len) {
            ngx_memcpy(body, tee->body, tee->body_len);
        }

        if (tee->body_cap) {
            (void) ngx_pfree(tee->pool, tee->body);   /* frees large ones */
        }

        tee->body = body;
        tee->body_cap = cap;
    }

    ngx_memcpy(tee->body + tee->body_len, p, n);
    tee->body_len += n;

    return NGX_OK;
}


/* A response nginx buffered to a temp file: read it back in pieces. */
static ngx_int_t
ngx_http_cutover_tee_file(ngx_http_request_t *r, ngx_http_cutover_tee_t *tee,
    ngx_buf_t *b, size_t limit)
{
    off_t     pos;
    size_t    n;
    ssize_t   got;
    u_char    chunk[8192];

    for (pos = b->file_pos; pos < b->file_last; pos += got) {
        n = (size_t) ngx_min((off_t) sizeof(chunk), b->file_last - pos);

        got = ngx_read_file(b->file, chunk, n, pos);
        if (got <= 0) {
            return NGX_ERROR;
        }

        if (ngx_http_cutover_tee(tee, chunk, (size_t) got, limit)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cutover_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                  *cl;
    ngx_http_cutover_ctx_t       *ctx;
    ngx_http_cutover_loc_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cutover_module);

    if (ctx == NULL || ctx->tee == NULL || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);

    if (ctx->tee->body_cap == 0 && r->headers_out.content_length_n > 0
        && r->headers_out.content_length_n <= (off_t) lcf->body_limit)
    {
        ctx->tee->expect = (size_t) r->headers_out.content_length_n;
    }

    for (cl = in; cl; cl = cl->next) {
        if (ngx_buf_special(cl->buf)) {
            continue;
        }

        if (ngx_buf_in_memory(cl->buf)
            ? ngx_http_cutover_tee(ctx->tee, cl->buf->pos,
                                   cl->buf->last - cl->buf->pos,
                                   lcf->body_limit) != NGX_OK
            : cl->buf->in_file
              && ngx_http_cutover_tee_file(r, ctx->tee, cl->buf,
                                           lcf->body_limit) != NGX_OK)
        {
            /* the client still gets its answer; the record is dropped */
            ctx->tee = NULL;
            (void) ngx_atomic_fetch_add(
                &ctx->zone->sh->records_dropped[NGX_HTTP_CUTOVER_DROP_ERROR],
                1);
            break;
        }
    }

    return ngx_http_next_body_filter(r, in);
}


/* Copies the headers named in `names` (lower case) into out. */
static size_t
ngx_http_cutover_pick_headers(ngx_list_t *list, ngx_array_t *names,
    shadow_header_t *out, size_t n, size_t max)
{
    ngx_str_t        *want;
    ngx_uint_t        i, k;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    want = names ? names->elts : NULL;
    part = &list->part;
    h = part->elts;

    for (i = 0; n < max; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if (names) {
            for (k = 0; k < names->nelts; k++) {
                /* names are lower case; so is lowcase_key, when set */
                if (want[k].len == h[i].key.len
                    && (h[i].lowcase_key
                        ? ngx_memcmp(want[k].data, h[i].lowcase_key,
                                     want[k].len) == 0
                        : ngx_strncasecmp(want[k].data, h[i].key.data,
                                          want[k].len) == 0))
                {
                    break;
                }
            }

            if (k == names->nelts) {
                continue;
            }
        }

        out[n].name.data = (char *) h[i].key.data;
        out[n].name.len = h[i].key.len;
        out[n].value.data = (char *) h[i].value.data;
        out[n].value.len = h[i].value.len;
        n++;
    }

    return n;
}


/* The request body as nginx read it (memory or a temp file), or NULL
 * with *too_large set when it exceeds the limit. */
static u_char *
ngx_http_cutover_request_body(ngx_http_request_t *r, size_t limit,
    size_t *len, ngx_uint_t *too_large)
{
    u_char       *body, *p;
    off_t         total;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *len = 0;
    *too_large = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return (u_char *) "";
    }

    total = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        total += b->in_file ? b->file_last - b->file_pos
                            : b->last - b->pos;
    }

    if (total > (off_t) limit) {
        *too_large = 1;
        return NULL;
    }

    body = ngx_pnalloc(r->pool, (size_t) total + 1);
    if (body == NULL) {
        return NULL;
    }

    p = body;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NULL;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *len = p - body;
    return body;
}


/*
 * The frame is built in one buffer per worker, kept between requests up to
 * NGX_HTTP_CUTOVER_FRAME_KEEP bytes; a larger frame gets its own allocation
 * (bounded by the body limits) that is freed once written.
 */
static u_char  *ngx_http_cutover_frame;
static size_t   ngx_http_cutover_frame_cap;


static u_char *
ngx_http_cutover_frame_buffer(size_t size, ngx_log_t *log)
{
    if (size > NGX_HTTP_CUTOVER_FRAME_KEEP) {
        return ngx_alloc(size, log);
    }

    if (size > ngx_http_cutover_frame_cap) {
        ngx_free(ngx_http_cutover_frame);

        ngx_http_cutover_frame_cap = ngx_min(ngx_max(ngx_max(size, 4096),
                                             2 * ngx_http_cutover_frame_cap),
                                             NGX_HTTP_CUTOVER_FRAME_KEEP);
        ngx_http_cutover_frame = ngx_alloc(ngx_http_cutover_frame_cap, log);

        if (ngx_http_cutover_frame == NULL) {
            ngx_http_cutover_frame_cap = 0;
            return NULL;
        }
    }

    return ngx_http_cutover_frame;
}


static void
ngx_http_cutover_frame_release(u_char *frame)
{
    if (frame != NULL && frame != ngx_http_cutover_frame) {
        ngx_free(frame);
    }
}


static ngx_int_t
ngx_http_cutover_log_handler(ngx_http_request_t *r)
{
    int                           rc;
    u_char                       *frame, hash[SHA256_DIGEST_LENGTH];
    u_char                        hex[2 * SHA256_DIGEST_LENGTH];
    size_t                        size, len;
    ngx_uint_t                    too_large, n;
    ngx_time_t                   *tp;
    shadow_header_t               req_h[NGX_HTTP_CUTOVER_MAX_HEADERS];
    shadow_header_t               resp_h[NGX_HTTP_CUTOVER_MAX_HEADERS];
    shadow_record_t               rec;
    ngx_http_cutover_ctx_t       *ctx;
    ngx_http_cutover_tee_t       *tee;
    ngx_http_cutover_shctx_t     *sh;
    ngx_str_t                     id;
    ngx_http_cutover_loc_conf_t  *lcf;
    ngx_http_upstream_state_t    *us;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cutover_module);
    if (ctx == NULL || ctx->tee == NULL) {
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);
    tee = ctx->tee;
    sh = ctx->zone->sh;

    if (lcf->log == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&rec, sizeof(shadow_record_t));

    rec.req_body = ngx_http_cutover_request_body(r, lcf->body_limit,
                                                 &rec.req_body_len,
                                                 &too_large);
    if (rec.req_body == NULL) {
        n = too_large ? NGX_HTTP_CUTOVER_DROP_TOO_LARGE
                      : NGX_HTTP_CUTOVER_DROP_ERROR;
        (void) ngx_atomic_fetch_add(&sh->records_dropped[n], 1);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cutover record dropped: request body %s",
                      too_large ? "over cutover_body_limit" : "unreadable");
        return NGX_OK;
    }

    if (ngx_http_cutover_request_id(r, &id) != NGX_OK) {
        return NGX_OK;
    }

    tp = ngx_timeofday();

    rec.id.data = (char *) id.data;
    rec.id.len = id.len;
    rec.time_us = (int64_t) tp->sec * 1000000 + (int64_t) tp->msec * 1000;
    rec.zone.data = (char *) ctx->zone->name.data;
    rec.zone.len = ctx->zone->name.len;
    rec.rule.data = ctx->route.rule_id;
    rec.rule.len = ngx_strlen(ctx->route.rule_id);
    rec.side.data = ctx->route.to_new ? "new" : "legacy";
    rec.side.len = ctx->route.to_new ? 3 : 6;
    rec.bucket = ctx->empty_key ? -1 : (int32_t) ctx->bucket;
    rec.key.data = (char *) ctx->key.data;
    rec.key.len = ctx->key.len;
    rec.store.data = (char *) ctx->store.data;
    rec.store.len = ctx->store.len;
    rec.channel.data = (char *) ctx->channel.data;
    rec.channel.len = ctx->channel.len;
    rec.version = (int64_t) ctx->route.version;
    rec.method.data = (char *) r->method_name.data;
    rec.method.len = r->method_name.len;
    rec.uri.data = (char *) r->unparsed_uri.data;
    rec.uri.len = r->unparsed_uri.len;

    rec.req_headers = req_h;
    rec.n_req_headers = ngx_http_cutover_pick_headers(&r->headers_in.headers,
                                                      lcf->record_headers,
                                                      req_h, 0,
                                               NGX_HTTP_CUTOVER_MAX_HEADERS);

    rec.status = (int32_t) r->headers_out.status;

    n = 0;
    if (r->headers_out.content_type.len) {
        resp_h[n].name.data = "Content-Type";
        resp_h[n].name.len = sizeof("Content-Type") - 1;
        resp_h[n].value.data = (char *) r->headers_out.content_type.data;
        resp_h[n].value.len = r->headers_out.content_type.len;
        n++;
    }

    rec.resp_headers = resp_h;
    rec.n_resp_headers = ngx_http_cutover_pick_headers(&r->headers_out.headers,
                                                       NULL, resp_h, n,
                                               NGX_HTTP_CUTOVER_MAX_HEADERS);

    if (tee->truncated) {
        SHA256_Final(hash, &tee->sha);
        ngx_hex_dump(hex, hash, sizeof(hash));
        rec.resp_sha256.data = (char *) hex;
        rec.resp_sha256.len = sizeof(hex);
    }

    rec.resp_body = tee->body ? tee->body : (u_char *) "";
    rec.resp_body_len = tee->body_len;
    rec.resp_body_total = tee->body_total;
    rec.resp_truncated = tee->truncated;
    rec.content_type.data = (char *) r->headers_out.content_type.data;
    rec.content_type.len = r->headers_out.content_type.len;

    rec.upstream_ms = -1;
    if (r->upstream_states && r->upstream_states->nelts) {
        us = r->upstream_states->elts;
        us = &us[r->upstream_states->nelts - 1];
        rec.upstream_ms = (double) us->response_time;
    }

    size = shadow_record_size(&rec);
    frame = ngx_http_cutover_frame_buffer(size, r->connection->log);
    if (frame == NULL
        || shadow_record_frame(&rec, frame, size, &len) != SHADOW_OK)
    {
        ngx_http_cutover_frame_release(frame);
        (void) ngx_atomic_fetch_add(
                     &sh->records_dropped[NGX_HTTP_CUTOVER_DROP_ERROR], 1);
        return NGX_OK;
    }

    rc = shadow_writer_append(&lcf->log->writer, frame, len);
    ngx_http_cutover_frame_release(frame);

    if (rc == SHADOW_NOSPACE) {
        (void) ngx_atomic_fetch_add(
                     &sh->records_dropped[NGX_HTTP_CUTOVER_DROP_FULL], 1);

        if (!lcf->log->full) {
            lcf->log->full = 1;
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cutover log \"%V\" is full (max=%O): new "
                          "records are dropped until cutover-shadowd "
                          "catches up", &lcf->log->path, lcf->log->max);
        }

        return NGX_OK;
    }

    if (rc != SHADOW_OK) {
        (void) ngx_atomic_fetch_add(
                     &sh->records_dropped[NGX_HTTP_CUTOVER_DROP_ERROR], 1);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, lcf->log->writer.err,
                      "cutover record dropped: cannot write log \"%V\"",
                      &lcf->log->path);
        return NGX_OK;
    }

    if (lcf->log->full) {
        lcf->log->full = 0;
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "cutover log \"%V\" has room again", &lcf->log->path);
    }

    (void) ngx_atomic_fetch_add(&sh->records, 1);

    if (tee->truncated) {
        (void) ngx_atomic_fetch_add(&sh->records_truncated, 1);
    }

    return NGX_OK;
}
