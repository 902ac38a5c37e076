/*
 * shadow_replay: the replay client: ready keys take turns, a record goes
 * to the other side over libcurl's multi interface, and a write the
 * other side could not take waits out a capped, jittered backoff.
 */

#include "shadow/shadow_engine.h"


static int shadow_hop_by_hop(const cutover_str_t *name);
static struct curl_slist *shadow_request_headers(const cutover_record_t *r);
static int shadow_start(shadow_daemon_t *d, shadow_item_t *it);
static size_t shadow_on_body(char *p, size_t size, size_t n, void *ctx);
static size_t shadow_on_header(char *p, size_t size, size_t n, void *ctx);
static int shadow_retry_reason(shadow_item_t *it, CURLcode cc, long status);
static int shadow_retry_transient(int reason);
static void shadow_wait_set(shadow_daemon_t *d, shadow_item_t *it, int reason);
static void shadow_key_next(shadow_daemon_t *d, shadow_keyq_t *kq);
static void shadow_finish(shadow_daemon_t *d, shadow_item_t *it, CURLcode cc);


/* ---- replaying -------------------------------------------------------- */

void
shadow_dispatch(shadow_daemon_t *d)
{
    int64_t         now;
    shadow_keyq_t  *kq;
    shadow_item_t  *it, **pp;

    now = shadow_mono_ms();

    /* records whose retry is due */
    for (pp = &d->backoff; *pp; ) {
        it = *pp;
        if (it->retry_at_ms > now) {
            pp = &it->bnext;
            continue;
        }

        *pp = it->bnext;
        if (shadow_start(d, it) != SHADOW_OK) {
            shadow_finish(d, it, CURLE_FAILED_INIT);
        }
    }

    if (d->cfg->rate_limit > 0) {
        d->tokens += (now - d->tokens_ms) * d->cfg->rate_limit / 1000.0;
        d->tokens_ms = now;
        if (d->tokens > d->cfg->rate_limit / 10 + 1) {
            d->tokens = d->cfg->rate_limit / 10 + 1;
        }
    }

    while (d->running < d->cfg->concurrency && d->ready_head != NULL) {
        if (d->cfg->rate_limit > 0) {
            if (d->tokens < 1) {
                break;
            }

            d->tokens -= 1;
        }

        kq = d->ready_head;
        d->ready_head = kq->rnext;
        if (d->ready_head == NULL) {
            d->ready_tail = NULL;
        }

        kq->ready = 0;
        kq->busy = 1;
        it = kq->head;
        d->running++;

        if (shadow_start(d, it) != SHADOW_OK) {
            shadow_finish(d, it, CURLE_FAILED_INIT);
        }
    }
}


static int
shadow_hop_by_hop(const cutover_str_t *name)
{
    size_t              i;
    static const char  *drop[] = {
        "connection", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "proxy-connection", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "host",
        "content-length", "expect", "idempotency-key",
        "x-cutover-request-id", "x-cutover-replay", NULL
    };

    for (i = 0; drop[i]; i++) {
        if (strlen(drop[i]) == name->len
            && strncasecmp(drop[i], name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The replay's headers: the recorded ones minus hop-by-hop, plus ours. Kept
 * whole: the list is built in one pass.
 */
static struct curl_slist *
shadow_request_headers(const cutover_record_t *r)
{
    char                line[128], *hl;
    size_t              i;
    int                 have_ctype = 0;
    struct curl_slist  *h = NULL, *n;
    const cutover_str_t *key = &r->id;

    for (i = 0; i < r->n_req_headers; i++) {
        /* the primary deduped by the client's own key when it sent one
         * (the gateway forwards it): the shadow must use the same */
        if (r->req_headers[i].name.len == 15
            && strncasecmp(r->req_headers[i].name.data, "idempotency-key", 15)
               == 0
            && r->req_headers[i].value.len > 0)
        {
            key = &r->req_headers[i].value;
        }

        if (shadow_hop_by_hop(&r->req_headers[i].name)) {
            continue;
        }

        if (r->req_headers[i].name.len == 12
            && strncasecmp(r->req_headers[i].name.data, "content-type", 12)
               == 0)
        {
            have_ctype = 1;
        }

        /* "Name;" is how curl sends a header with an empty value */
        if (asprintf(&hl, r->req_headers[i].value.len ? "%.*s: %.*s"
                                                      : "%.*s;%.*s",
                     (int) r->req_headers[i].name.len,
                     r->req_headers[i].name.data,
                     (int) r->req_headers[i].value.len,
                     r->req_headers[i].value.data ? r->req_headers[i].value.data
                                                  : "")
            == -1)
        {
            curl_slist_free_all(h);
            return NULL;
        }

        n = curl_slist_append(h, hl);
        free(hl);
        if (n == NULL) {
            curl_slist_free_all(h);
            return NULL;
        }

        h = n;
    }

    if (asprintf(&hl, "Idempotency-Key: %.*s", (int) key->len, key->data)
        == -1)
    {
        curl_slist_free_all(h);
        return NULL;
    }

    n = curl_slist_append(h, hl);
    free(hl);
    if (n == NULL) {
        curl_slist_free_all(h);
        return NULL;
    }

    h = n;
    snprintf(line, sizeof(line), "X-Cutover-Request-Id: %s", r->id.data);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "X-Cutover-Replay: 1");

    /* no 100-continue round trip; no form content type made up by curl */
    h = curl_slist_append(h, "Expect:");
    n = have_ctype ? h : curl_slist_append(h, "Content-Type:");

    return n;
}


static int
shadow_start(shadow_daemon_t *d, shadow_item_t *it)
{
    char                   *url;
    const char             *base;
    const cutover_record_t *r = &it->rec;

    base = (r->side.len == 3) ? d->cfg->legacy_url : d->cfg->new_url;

    if (it->easy == NULL) {
        it->easy = d->npool ? d->pool[--d->npool] : curl_easy_init();
        if (it->easy == NULL) {
            return SHADOW_ERROR;
        }
    }

    shadow_reset_response(it);
    it->body.limit = d->cfg->body_limit;
    curl_easy_reset(it->easy);
    it->attempts++;

    if (it->hdrs == NULL) {
        it->hdrs = shadow_request_headers(r);
        if (it->hdrs == NULL) {
            return SHADOW_ERROR;
        }
    }

    /* curl copies the URL */
    if (asprintf(&url, "%s%s", base, r->uri.data) == -1) {
        return SHADOW_ERROR;
    }

    curl_easy_setopt(it->easy, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(it->easy, CURLOPT_HTTPHEADER, it->hdrs);
    curl_easy_setopt(it->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(it->easy, CURLOPT_TIMEOUT_MS, (long) d->cfg->timeout_ms);
    curl_easy_setopt(it->easy, CURLOPT_WRITEFUNCTION, shadow_on_body);
    curl_easy_setopt(it->easy, CURLOPT_WRITEDATA, it);
    curl_easy_setopt(it->easy, CURLOPT_HEADERFUNCTION, shadow_on_header);
    curl_easy_setopt(it->easy, CURLOPT_HEADERDATA, it);
    curl_easy_setopt(it->easy, CURLOPT_PRIVATE, it);
    curl_easy_setopt(it->easy, CURLOPT_ERRORBUFFER, it->errbuf);
    it->errbuf[0] = '\0';

    if (strcmp(r->method.data, "GET") == 0 && r->req_body_len == 0) {
        curl_easy_setopt(it->easy, CURLOPT_HTTPGET, 1L);

    } else if (strcmp(r->method.data, "HEAD") == 0) {
        curl_easy_setopt(it->easy, CURLOPT_NOBODY, 1L);

    } else {
        if (r->req_body_len > 0 || strcmp(r->method.data, "POST") == 0
            || strcmp(r->method.data, "PUT") == 0
            || strcmp(r->method.data, "PATCH") == 0)
        {
            curl_easy_setopt(it->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t) r->req_body_len);
            curl_easy_setopt(it->easy, CURLOPT_POSTFIELDS,
                             r->req_body ? (const char *) r->req_body : "");
        }

        curl_easy_setopt(it->easy, CURLOPT_CUSTOMREQUEST, r->method.data);
    }

    if (curl_multi_add_handle(d->multi, it->easy) != CURLM_OK) {
        return SHADOW_ERROR;
    }

    it->state = SHADOW_ITEM_RUNNING;
    d->stats.inflight++;
    return SHADOW_OK;
}


void
shadow_reset_response(shadow_item_t *it)
{
    size_t  i;

    for (i = 0; i < it->n_resp_hdrs; i++) {
        free(it->resp_hdrs[i]);
    }

    free(it->resp_hdrs);
    free(it->body.data);
    EVP_MD_CTX_free(it->body.sha);
    free(it->ctype);
    it->resp_hdrs = NULL;
    it->n_resp_hdrs = 0;
    it->ctype = NULL;
    memset(&it->body, 0, sizeof(it->body));
}


static size_t
shadow_on_body(char *p, size_t size, size_t n, void *ctx)
{
    size_t          len = size * n, keep, cap;
    uint8_t        *np;
    shadow_item_t  *it = ctx;

    /* past the body limit only the hash and the length are kept: the
     * hash starts there, over the kept prefix first (a body held whole
     * needs none) */
    it->body.total += len;
    keep = it->body.len >= it->body.limit ? 0
           : len < it->body.limit - it->body.len ? len
           : it->body.limit - it->body.len;

    if (keep < len) {
        if (it->body.sha == NULL) {
            it->body.sha = EVP_MD_CTX_new();
            if (it->body.sha == NULL
                || !EVP_DigestInit_ex(it->body.sha, EVP_sha256(), NULL)
                || !EVP_DigestUpdate(it->body.sha,
                                     it->body.data ? it->body.data
                                                   : (uint8_t *) "",
                                     it->body.len))
            {
                return 0;
            }
        }

        if (!EVP_DigestUpdate(it->body.sha, p, len)) {
            return 0;
        }
    }

    if (keep == 0) {
        return len;
    }

    if (it->body.len + keep > it->body.cap) {
        cap = it->body.cap ? it->body.cap * 2 : 4096;
        while (cap < it->body.len + keep) {
            cap *= 2;
        }

        np = realloc(it->body.data, cap);
        if (np == NULL) {
            return 0;
        }

        it->body.data = np;
        it->body.cap = cap;
    }

    memcpy(it->body.data + it->body.len, p, keep);
    it->body.len += keep;
    return len;
}


static size_t
shadow_on_header(char *p, size_t size, size_t n, void *ctx)
{
    size_t          len = size * n, i;
    char          **nh, *h;
    shadow_item_t  *it = ctx;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue): forget the old headers */
        for (i = 0; i < it->n_resp_hdrs; i++) {
            free(it->resp_hdrs[i]);
        }

        it->n_resp_hdrs = 0;
        return len;
    }

    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }

    if (len == 0 || memchr(p, ':', len) == NULL) {
        return size * n;
    }

    nh = realloc(it->resp_hdrs, (it->n_resp_hdrs + 1) * sizeof(char *));
    if (nh == NULL) {
        return 0;
    }

    it->resp_hdrs = nh;
    h = strndup(p, len);
    if (h == NULL) {
        return 0;
    }

    it->resp_hdrs[it->n_resp_hdrs++] = h;
    return size * n;
}


void
shadow_reap(shadow_daemon_t *d)
{
    int             left;
    CURLMsg        *msg;
    shadow_item_t  *it;

    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &it);
        curl_multi_remove_handle(d->multi, it->easy);
        d->stats.inflight--;
        shadow_finish(d, it, msg->data.result);
    }
}


/* Why this attempt should be tried again, or -1 for a final answer. */
static int
shadow_retry_reason(shadow_item_t *it, CURLcode cc, long status)
{
    static const char  busy[] = "idempotency_in_progress";

    switch (cc) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return SHADOW_RETRY_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return SHADOW_RETRY_TIMEOUT;
    default:
        return SHADOW_RETRY_TRANSPORT;
    }

    switch (status) {
    case 502:
        return SHADOW_RETRY_502;
    case 503:
        return SHADOW_RETRY_503;
    case 504:
        return SHADOW_RETRY_504;
    case 429:
        return SHADOW_RETRY_429;
    case 409:
        /* an earlier attempt under the same key still runs there */
        if (it->body.data != NULL
            && memmem(it->body.data, it->body.len, busy, sizeof(busy) - 1)
               != NULL)
        {
            return SHADOW_RETRY_IN_PROGRESS;
        }

        return -1;
    default:
        return status >= 500 ? SHADOW_RETRY_5XX : -1;
    }
}


/* The other side did not take it: it is down, overloaded or busy with an
 * earlier attempt.  Only these make a write wait without limit. */
static int
shadow_retry_transient(int reason)
{
    return reason >= 0 && reason != SHADOW_RETRY_5XX;
}


static void
shadow_wait_set(shadow_daemon_t *d, shadow_item_t *it, int reason)
{
    if (it->waiting) {
        d->stats.retrying_by[it->reason]--;

    } else {
        it->waiting = 1;
        it->first_fail_ms = shadow_mono_ms();
        it->wnext = NULL;
        it->wprev = d->wait_tail;
        if (d->wait_tail) {
            d->wait_tail->wnext = it;

        } else {
            d->wait_head = it;
        }

        d->wait_tail = it;
        d->stats.retrying++;
    }

    it->reason = reason;
    d->stats.retrying_by[reason]++;
    d->stats.retries_by[reason]++;
}


void
shadow_wait_clear(shadow_daemon_t *d, shadow_item_t *it)
{
    if (!it->waiting) {
        return;
    }

    if (it->wprev) {
        it->wprev->wnext = it->wnext;

    } else {
        d->wait_head = it->wnext;
    }

    if (it->wnext) {
        it->wnext->wprev = it->wprev;

    } else {
        d->wait_tail = it->wprev;
    }

    it->waiting = 0;
    it->wprev = it->wnext = NULL;
    d->stats.retrying--;
    d->stats.retrying_by[it->reason]--;
}


void
shadow_release_handle(shadow_daemon_t *d, shadow_item_t *it)
{
    if (it->easy != NULL && d->npool < d->cfg->concurrency) {
        d->pool[d->npool++] = it->easy;

    } else if (it->easy != NULL) {
        curl_easy_cleanup(it->easy);
    }

    it->easy = NULL;
    curl_slist_free_all(it->hdrs);
    it->hdrs = NULL;
}


/* The key's head record is finished: the next one of the key may go. */
static void
shadow_key_next(shadow_daemon_t *d, shadow_keyq_t *kq)
{
    kq->head = kq->head->knext;
    if (kq->head == NULL) {
        kq->tail = NULL;
    }

    kq->busy = 0;

    if (kq->head == NULL) {
        shadow_keyq_drop(d, kq);

    } else {
        shadow_keyq_ready(d, kq);
    }
}


/*
 * A replay's end: compared, retried later or given up.  Kept whole (past 80
 * lines): the decision reads the outcome once and each branch ends the
 * record's attempt.
 */
static void
shadow_finish(shadow_daemon_t *d, shadow_item_t *it, CURLcode cc)
{
    int             reason, retry;
    long            status = 0;
    double          secs = 0;
    char           *ct = NULL, error[CURL_ERROR_SIZE + 64];
    int64_t         delay, now;

    if (cc == CURLE_OK) {
        curl_easy_getinfo(it->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(it->easy, CURLINFO_TOTAL_TIME, &secs);
        curl_easy_getinfo(it->easy, CURLINFO_CONTENT_TYPE, &ct);
        it->ctype = ct ? strdup(ct) : NULL;
    }

    it->status = (int) status;
    it->ms = secs * 1000;

    reason = shadow_retry_reason(it, cc, status);
    retry = reason >= 0
            && ((it->is_write && shadow_retry_transient(reason))
                || it->attempts <= d->cfg->retries);

    if (retry) {
        shadow_wait_set(d, it, reason);
        now = shadow_mono_ms();

        if (it->is_write && d->cfg->max_wait_ms > 0
            && now - it->first_fail_ms >= d->cfg->max_wait_ms)
        {
            shadow_park_key(d, it);
            return;
        }

        /* capped exponential backoff, jittered over its upper half so
         * that the records of many keys do not come back at once */
        delay = it->attempts > 20 ? d->cfg->backoff_max_ms
                : (int64_t) d->cfg->backoff_ms << (it->attempts - 1);
        if (delay > d->cfg->backoff_max_ms) {
            delay = d->cfg->backoff_max_ms;
        }

        if (delay < 10 && it->is_write) {
            delay = 10;
        }

        delay = delay / 2 + (delay > 1 ? random() % (delay / 2 + 1) : 0);

        it->retry_at_ms = now + delay;
        it->state = SHADOW_ITEM_BACKOFF;
        it->bnext = d->backoff;
        d->backoff = it;
        d->stats.retried++;
        return;
    }

    shadow_wait_clear(d, it);

    error[0] = '\0';
    if (cc != CURLE_OK) {
        snprintf(error, sizeof(error), "%s", it->errbuf[0] ? it->errbuf
                 : curl_easy_strerror(cc));
    }

    if (reason >= 0) {
        /* given up: a read, or a write answered 500 and the like */
        d->stats.failed++;
        shadow_log(d, SHADOW_LOG_WARN, "replay of %s %s (id %s) failed after "
                   "%d attempts: %s", it->rec.method.data, it->rec.uri.data,
                   it->rec.id.data, it->attempts,
                   error[0] ? error : shadow_retry_reason_names[reason]);

    } else if (it->from_dl) {
        d->stats.dl_replays++;

    } else {
        /* any final answer, a 4xx included, is compared as such */
        d->stats.replayed++;
    }

    shadow_compare(d, it, error[0] ? error : NULL, -1, NULL);
    shadow_release_handle(d, it);
    d->running--;
    shadow_done(d, it);
    shadow_key_next(d, it->kq);
}
