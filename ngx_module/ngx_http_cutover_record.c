/*
 * ngx_http_cutover_record: the dual-run log.  A body filter tees the
 * primary's response (a prefix up to the body limit and a SHA-256 of all
 * of it); when the request ends, one framed record goes to the log's shared
 * buffer, written out at the end of the event loop iteration.  Recording
 * never changes, delays or fails the client's answer: a record that cannot
 * be written is counted as dropped.
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
static void ngx_http_cutover_dropped(ngx_http_request_t *r,
    ngx_http_cutover_ctx_t *ctx, ngx_uint_t reason);
static void ngx_http_cutover_drop(ngx_http_cutover_log_t *log,
    ngx_http_cutover_shctx_t *sh, const u_char *id, ngx_uint_t reason,
    ngx_err_t err);
static void ngx_http_cutover_gap_report(ngx_http_cutover_log_t *log,
    ngx_log_t *errlog, ngx_uint_t resumed);


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

    lcf = ctx->lcf;

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

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_cutover_get_ctx(r);

    if (ctx == NULL || ctx->tee == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    lcf = ctx->lcf;

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
            ngx_http_cutover_dropped(r, ctx, NGX_HTTP_CUTOVER_DROP_ERROR);
            ctx->tee = NULL;
            break;
        }
    }

    return ngx_http_next_body_filter(r, in);
}


/* Copies the headers named in `names` (lower case) into out. */
static size_t
ngx_http_cutover_pick_headers(ngx_list_t *list, ngx_array_t *names,
    cutover_header_t *out, size_t n, size_t max)
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


/*
 * The log phase: one record per request to the log.  Kept whole (past 80
 * lines): the record's fields are gathered from the request into one stack
 * frame and handed to the log's buffer (ngx_http_cutover_logbuf.c); every
 * exit counts a drop.
 */
static ngx_int_t
ngx_http_cutover_log_handler(ngx_http_request_t *r)
{
    u_char                       *frame, hash[SHA256_DIGEST_LENGTH];
    u_char                        hex[2 * SHA256_DIGEST_LENGTH];
    size_t                        size, len;
    ngx_uint_t                    too_large, n;
    ngx_time_t                   *tp;
    cutover_header_t              req_h[NGX_HTTP_CUTOVER_MAX_HEADERS];
    cutover_header_t              resp_h[NGX_HTTP_CUTOVER_MAX_HEADERS];
    cutover_record_t              rec;
    ngx_http_cutover_ctx_t       *ctx;
    ngx_http_cutover_tee_t       *tee;
    ngx_str_t                     id;
    ngx_http_cutover_loc_conf_t  *lcf;
    ngx_http_upstream_state_t    *us;

    /* the routing context of the request's first pass, also after an
     * internal redirect; the log and its settings are of the location
     * that routed it */
    ctx = ngx_http_cutover_get_ctx(r);
    if (ctx == NULL || ctx->tee == NULL) {
        return NGX_OK;
    }

    lcf = ctx->lcf;
    tee = ctx->tee;

    if (lcf->log == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&rec, sizeof(cutover_record_t));

    rec.req_body = ngx_http_cutover_request_body(r, lcf->body_limit,
                                                 &rec.req_body_len,
                                                 &too_large);
    if (rec.req_body == NULL) {
        ngx_http_cutover_dropped(r, ctx,
                                 too_large ? NGX_HTTP_CUTOVER_DROP_TOO_LARGE
                                           : NGX_HTTP_CUTOVER_DROP_ERROR);
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

    size = cutover_record_size(&rec);
    frame = ngx_http_cutover_frame_buffer(size, r->connection->log);
    if (frame == NULL
        || cutover_record_frame(&rec, frame, size, &len) != CUTOVER_OK)
    {
        ngx_http_cutover_frame_release(frame);
        ngx_http_cutover_dropped(r, ctx, NGX_HTTP_CUTOVER_DROP_ERROR);
        return NGX_OK;
    }

    ngx_http_cutover_log_write(lcf->log, ctx->zone, id.data, tee->truncated,
                               frame, len, r->connection->log);
    ngx_http_cutover_frame_release(frame);

    return NGX_OK;
}


/* A record reached the log (rc CUTOVER_OK) or did not: counted either
 * way, in the zone it was routed in. */
void
ngx_http_cutover_log_result(ngx_http_cutover_log_t *log,
    ngx_http_cutover_shctx_t *sh, const u_char *id, ngx_uint_t truncated,
    int rc, ngx_log_t *errlog)
{
    ngx_err_t  err;

    if (sh == NULL) {
        return;
    }

    if (rc == CUTOVER_NOSPACE) {
        ngx_http_cutover_drop(log, sh, id, NGX_HTTP_CUTOVER_DROP_FULL, 0);
        return;
    }

    if (rc != CUTOVER_OK) {
        err = log->writer.err;
        ngx_http_cutover_drop(log, sh, id,
                              (err == NGX_ENOSPC || err == EDQUOT)
                              ? NGX_HTTP_CUTOVER_DROP_DISK_FULL
                              : NGX_HTTP_CUTOVER_DROP_ERROR, err);
        return;
    }

    if (log->gap) {
        ngx_http_cutover_gap_report(log, errlog, 1);
    }

    (void) ngx_atomic_fetch_add(&sh->records, 1);

    if (truncated) {
        (void) ngx_atomic_fetch_add(&sh->records_truncated, 1);
    }
}


static u_char *
ngx_http_cutover_gmtime(u_char *p, time_t sec)
{
    ngx_tm_t  tm;

    ngx_gmtime(sec, &tm);

    return ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02dZ", tm.ngx_tm_year,
                       tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                       tm.ngx_tm_min, tm.ngx_tm_sec);
}


/* metric labels and log words of the drop reasons, in their order */
const char  *ngx_http_cutover_drop_names[NGX_HTTP_CUTOVER_DROP_NREASONS] = {
    "full", "error", "too_large", "disk_full"
};


ngx_atomic_uint_t
ngx_http_cutover_dropped_total(ngx_http_cutover_shctx_t *sh)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  n = 0;

    for (i = 0; i < NGX_HTTP_CUTOVER_DROP_NREASONS; i++) {
        n += sh->records_dropped[i];
    }

    return n;
}


/*
 * A dropped record: counted by its reason, and kept in this worker's gap
 * (the records dropped since it last wrote one).  The error log says it
 * at most once a second for all workers of the zone, with the number of
 * drops since the line before; the gap, with its first and last request
 * ids, is logged once recording resumes, so that reconciliation can find
 * those requests.
 */
static void
ngx_http_cutover_dropped(ngx_http_request_t *r, ngx_http_cutover_ctx_t *ctx,
    ngx_uint_t reason)
{
    ngx_str_t  id;

    if (ngx_http_cutover_request_id(r, &id) != NGX_OK || id.len != 32) {
        ngx_str_set(&id, "00000000000000000000000000000000");
    }

    ngx_http_cutover_drop(ctx->lcf->log, ctx->zone->sh, id.data, reason, 0);
}


static void
ngx_http_cutover_drop(ngx_http_cutover_log_t *log,
    ngx_http_cutover_shctx_t *sh, const u_char *id, ngx_uint_t reason,
    ngx_err_t err)
{
    u_char             *p, text[128];
    time_t              now;
    ngx_atomic_uint_t   sec, last, total;

    now = ngx_time();

    (void) ngx_atomic_fetch_add(&sh->records_dropped[reason], 1);

    if (log->gap == 0) {
        ngx_memzero(log->gap_reasons, sizeof(log->gap_reasons));
        ngx_memcpy(log->gap_first, id, 32);
        log->gap_first_sec = now;
    }

    ngx_memcpy(log->gap_last, id, 32);
    log->gap_last_sec = now;
    log->gap++;
    log->gap_reasons[reason]++;

    sec = (ngx_atomic_uint_t) now;
    last = sh->dropped_logged_sec;

    if (last == sec
        || !ngx_atomic_cmp_set(&sh->dropped_logged_sec, last, sec))
    {
        return;
    }

    total = ngx_http_cutover_dropped_total(sh) - sh->dropped_logged;
    sh->dropped_logged += total;

    switch (reason) {

    case NGX_HTTP_CUTOVER_DROP_FULL:
        p = ngx_sprintf(text, "the log is full (max=%O): cutover-shadowd "
                        "is behind", log->max);
        break;

    case NGX_HTTP_CUTOVER_DROP_DISK_FULL:
        p = ngx_sprintf(text, "the disk is full");
        break;

    case NGX_HTTP_CUTOVER_DROP_TOO_LARGE:
        p = ngx_sprintf(text, "request body over cutover_body_limit");
        break;

    default:
        p = ngx_sprintf(text, "cannot make or write the record");
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, err,
                  "cutover log \"%V\": %uA record%s dropped since the last "
                  "report (%s: %*s); clients are not affected and recording "
                  "resumes by itself", &log->path, total,
                  total == 1 ? "" : "s", ngx_http_cutover_drop_names[reason],
                  p - text, text);
}


/* The gap of this worker, logged when recording resumes (or the worker
 * exits first); then closed. */
static void
ngx_http_cutover_gap_report(ngx_http_cutover_log_t *log, ngx_log_t *errlog,
    ngx_uint_t resumed)
{
    u_char      *p, reasons[128], first[32], last[32];
    ngx_uint_t   i;

    p = reasons;

    for (i = 0; i < NGX_HTTP_CUTOVER_DROP_NREASONS; i++) {
        if (log->gap_reasons[i]) {
            p = ngx_sprintf(p, "%s%s=%ui", p == reasons ? "" : " ",
                            ngx_http_cutover_drop_names[i],
                            log->gap_reasons[i]);
        }
    }

    ngx_http_cutover_gmtime(first, log->gap_first_sec);
    ngx_http_cutover_gmtime(last, log->gap_last_sec);

    ngx_log_error(NGX_LOG_WARN, errlog, 0,
                  "cutover log \"%V\": %s; gap of %ui record%s not "
                  "recorded (%*s) from request id %*s at %*s to request id "
                  "%*s at %*s", &log->path,
                  resumed ? "recording resumed"
                          : "the worker exits before recording resumed",
                  log->gap, log->gap == 1 ? "" : "s", p - reasons, reasons,
                  (size_t) 32, log->gap_first, (size_t) 20, first,
                  (size_t) 32, log->gap_last, (size_t) 20, last);

    log->gap = 0;
}


/* A worker that starts readies its logs' buffers; one that exits writes
 * them out, and with records in its gap still says so. */
void
ngx_http_cutover_record_process(ngx_cycle_t *cycle, ngx_uint_t exiting)
{
    ngx_uint_t                     i;
    ngx_http_cutover_log_t       **lp;
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_cutover_module);
    if (cmcf == NULL) {
        return;
    }

    lp = cmcf->logs.elts;
    for (i = 0; i < cmcf->logs.nelts; i++) {
        if (!exiting) {
            ngx_http_cutover_logbuf_start(lp[i], cycle->log);
            continue;
        }

        ngx_http_cutover_logbuf_flush(lp[i], cycle->log);

        if (lp[i]->gap) {
            ngx_http_cutover_gap_report(lp[i], cycle->log, 0);
        }
    }
}
