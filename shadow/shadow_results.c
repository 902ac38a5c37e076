/*
 * shadow_results: a finished pair compared, counted and put into the
 * result store; flushes make the results durable.
 */

#include "shadow/shadow_engine.h"


static void shadow_pair_fill(shadow_item_t *it, compare_pair_t *pair,
    const char **ph, char *sha, const char *error);
static const char **shadow_primary_headers(shadow_daemon_t *d,
    const cutover_record_t *r);
static void shadow_count_verdict(shadow_daemon_t *d, const cutover_record_t *r,
    const compare_result_t *result);


/* The pair compare/ sees: the recorded primary answer, the replayed one. */
static void
shadow_pair_fill(shadow_item_t *it, compare_pair_t *pair, const char **ph,
    char *sha, const char *error)
{
    size_t                  i;
    unsigned int            mdlen;
    unsigned char           md[32];
    shadow_xfer_t          *x = it->x;
    const cutover_record_t  *r = &it->rec;

    memset(pair, 0, sizeof(*pair));
    pair->record_id = r->id.data;
    pair->time_us = r->time_us;
    pair->zone = r->zone.data ? r->zone.data : "";
    pair->method = r->method.data;
    pair->uri = r->uri.data;
    pair->store = r->store.data ? r->store.data : "";
    pair->channel = r->channel.data ? r->channel.data : "";
    pair->side_served = r->side.data;

    pair->primary.status = r->status;
    pair->primary.content_type = r->content_type.data;
    pair->primary.body = r->resp_body;
    pair->primary.body_len = r->resp_body_len;
    pair->primary.body_truncated = r->resp_truncated;
    pair->primary.body_sha256 = r->resp_sha256.len ? r->resp_sha256.data
                                                   : NULL;
    pair->primary.headers = ph;
    pair->primary.nheaders = ph ? r->n_resp_headers : 0;
    pair->primary.latency_ms = r->upstream_ms;

    /* a digest only for a truncated body: compare/ hashes a whole one
     * itself when the other side was truncated */
    sha[0] = '\0';
    if (error == NULL && x != NULL && x->body.sha != NULL
        && EVP_DigestFinal_ex(x->body.sha, md, &mdlen))
    {
        cutover_hex(md, 32, sha);
    }

    pair->shadow.status = error ? 0 : it->status;
    pair->shadow.content_type = it->ctype;
    pair->shadow.body_sha256 = sha[0] ? sha : NULL;
    pair->shadow.latency_ms = error ? -1 : it->ms;

    if (x == NULL) {
        return;
    }

    pair->shadow.body = x->body.data;
    pair->shadow.body_len = x->body.len;
    pair->shadow.body_truncated = x->body.total > x->body.len;

    /* the header lines as pointers, now that their buffer stays put */
    if (x->nresp > 0
        && (x->rptr == NULL || x->resp_cap > x->rptr_cap))
    {
        free(x->rptr);
        x->rptr = malloc(x->resp_cap * sizeof(char *));
        x->rptr_cap = x->rptr ? x->resp_cap : 0;
    }

    for (i = 0; x->rptr != NULL && i < x->nresp; i++) {
        x->rptr[i] = x->rbuf + x->roff[i];
    }

    pair->shadow.headers = x->rptr;
    pair->shadow.nheaders = x->rptr ? x->nresp : 0;
    pair->shadow.error = error;
}


static void
shadow_count_verdict(shadow_daemon_t *d, const cutover_record_t *r,
    const compare_result_t *result)
{
    compare_verdict_t  v = compare_result_verdict(result);

    shadow_stats_count_pair(&d->stats, &r->zone,
                            r->side.len == 3
                            && memcmp(r->side.data, "new", 3) == 0,
                            (unsigned) v);

    if (v == COMPARE_VERDICT_EQUAL || v == COMPARE_VERDICT_DIFFERENT) {
        shadow_guard_pair(d->guard, &r->rule,
                          v == COMPARE_VERDICT_DIFFERENT);
    }

    switch (v) {
    case COMPARE_VERDICT_EQUAL:
        d->stats.equal++;
        break;
    case COMPARE_VERDICT_DIFFERENT:
        d->stats.different++;
        break;
    case COMPARE_VERDICT_UNPARSEABLE:
        d->stats.unparseable++;
        break;
    default:
        d->stats.shadow_failed++;
        break;
    }
}


/* The recorded primary headers as "name: value" strings, in the daemon's
 * scratch buffers (valid until the next call), or NULL on no memory. */
static const char **
shadow_primary_headers(shadow_daemon_t *d, const cutover_record_t *r)
{
    char    *p;
    size_t   i, need = 0, n = r->n_resp_headers + 1;

    for (i = 0; i < r->n_resp_headers; i++) {
        need += r->resp_headers[i].name.len + 2
                + r->resp_headers[i].value.len + 1;
    }

    if (need > d->ph_buf_cap) {
        free(d->ph_buf);
        d->ph_buf = malloc(need);
        d->ph_buf_cap = d->ph_buf ? need : 0;
    }

    if (n > d->ph_cap) {
        free(d->ph);
        d->ph = malloc(n * sizeof(char *));
        d->ph_cap = d->ph ? n : 0;
    }

    if (d->ph == NULL || (need > 0 && d->ph_buf == NULL)) {
        return NULL;
    }

    p = d->ph_buf;

    for (i = 0; i < r->n_resp_headers; i++) {
        d->ph[i] = p;
        p += sprintf(p, "%s: %s", r->resp_headers[i].name.data,
                     r->resp_headers[i].value.data) + 1;
    }

    d->ph[i] = NULL;
    return d->ph;
}


/* Compares the pair (verdict < 0) or records it unreplayed with that
 * verdict and detail, and puts the result into the store. */
void
shadow_compare(shadow_daemon_t *d, shadow_item_t *it, const char *error,
    int verdict, const char *detail)
{
    char                    sha[65];
    const char            **ph;
    compare_pair_t          pair;
    compare_error_t         cerr;
    const cutover_record_t  *r = &it->rec;

    ph = shadow_primary_headers(d, r);
    shadow_pair_fill(it, &pair, ph, sha, error);

    if (verdict >= 0) {
        pair.shadow.status = 0;
        pair.shadow.latency_ms = -1;
        it->result = compare_pair_unreplayed(d->rules, &pair,
                                             (compare_verdict_t) verdict,
                                             detail, &cerr);

    } else {
        it->result = compare_pair_run(d->rules, &pair, &cerr);
    }

    if (it->result == NULL) {
        shadow_log(d, SHADOW_LOG_ERR, "comparing %s: %s", r->id.data,
                   cerr.message);
        d->stats.lost++;

    } else {
        if (verdict < 0) {
            shadow_count_verdict(d, r, it->result);
        }

        /* the store copies the pair: put now, while its data lives */
        if (compare_store_put(d->store, &pair, it->result, &cerr)
            != COMPARE_OK)
        {
            shadow_log(d, SHADOW_LOG_ERR, "storing the result of %s: %s",
                       r->id.data, cerr.message);
            d->stats.lost++;
            compare_result_free(it->result);
            it->result = NULL;
        }
    }

    /* the response is no longer needed */
    shadow_reset_response(it);
}


/* ---- durability and the checkpoint ----------------------------------- */

void
shadow_flush(shadow_daemon_t *d, int force)
{
    int64_t          now = shadow_mono_ms();
    shadow_item_t   *it, *next;
    compare_error_t  cerr;

    if (d->done == 0) {
        return;
    }

    if (!force && now - d->last_flush_ms < d->cfg->flush_ms
        && d->done < 1024)
    {
        return;
    }

    d->last_flush_ms = now;

    if (compare_store_flush(d->store, &cerr) != COMPARE_OK) {
        if (!d->flush_failing) {
            shadow_log(d, SHADOW_LOG_ERR, "result store flush failed, "
                       "retrying (the checkpoint waits): %s", cerr.message);
        }

        d->flush_failing = 1;
        return;
    }

    if (d->flush_failing) {
        shadow_log(d, SHADOW_LOG_INFO, "result store flush works again");
        d->flush_failing = 0;
    }

    for (it = d->done_list; it; it = next) {
        next = it->dnext;
        it->state = SHADOW_ITEM_DURABLE;
        compare_result_free(it->result);
        it->result = NULL;

        if (it->from_dl) {
            shadow_dl_item_done(d, it);
        }
    }

    d->done_list = NULL;
    d->done = 0;
}
