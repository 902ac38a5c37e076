/*
 * shadow_replay: the replay client: ready keys take turns, a record goes
 * to the other side over libcurl's multi interface (pooled transfers,
 * sockets watched with epoll), and a write the other side could not take
 * waits out a capped, jittered backoff.
 */

#include <sys/epoll.h>

#include "shadow/shadow_engine.h"


static int shadow_hop_by_hop(const cutover_str_t *name);
static int shadow_reserve(void *buf, size_t *cap, size_t need, size_t size);
static char *shadow_line(char *p, const char *a, size_t alen, const char *sep,
    size_t slen, const char *b, size_t blen);
static size_t shadow_headers_measure(const cutover_record_t *r,
    const cutover_str_t **key, int *have_ctype, size_t *n);
static int shadow_request_headers(shadow_xfer_t *x, const cutover_record_t *r);
static shadow_xfer_t *shadow_xfer_get(shadow_daemon_t *d);
static void shadow_set_method(CURL *easy, const cutover_record_t *r);
static int shadow_start(shadow_daemon_t *d, shadow_item_t *it);
static size_t shadow_on_body(char *p, size_t size, size_t n, void *ctx);
static size_t shadow_on_header(char *p, size_t size, size_t n, void *ctx);
static int shadow_retry_reason(shadow_item_t *it, CURLcode cc, long status);
static int shadow_retry_transient(int reason);
static void shadow_wait_set(shadow_daemon_t *d, shadow_item_t *it, int reason);
static void shadow_key_next(shadow_daemon_t *d, shadow_keyq_t *kq);
static void shadow_finish(shadow_daemon_t *d, shadow_item_t *it, CURLcode cc);
static int shadow_on_socket(CURL *easy, curl_socket_t s, int what,
    void *ctx, void *sp);
static int shadow_on_timer(CURLM *multi, long ms, void *ctx);


/* ---- the wake-ups ----------------------------------------------------- */

/*
 * curl tells which sockets to watch and when its next timeout is; epoll
 * wakes the loop for those sockets only, and curl_multi_socket_action()
 * handles only the transfer whose socket is ready, so a wake-up costs the
 * same with 256 replays waiting on a slow side as with one.
 */
int
shadow_curl_setup(shadow_daemon_t *d)
{
    d->curl_due_ms = -1;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd == -1) {
        return SHADOW_ERROR;
    }

    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, shadow_on_socket);
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, shadow_on_timer);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
    return SHADOW_OK;
}


/* curl remembers for us what a socket is watched for (its socketp, the
 * events + 1): an unchanged one costs no epoll_ctl(2). */
static int
shadow_on_socket(CURL *easy, curl_socket_t s, int what, void *ctx, void *sp)
{
    int                  op;
    shadow_daemon_t     *d = ctx;
    struct epoll_event   ev;

    (void) easy;

    if (what == CURL_POLL_REMOVE) {
        /* a socket already closed has left the set by itself */
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }

    if ((intptr_t) sp == what + 1) {
        return 0;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0)
                | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = s;
    op = sp == NULL ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

    if (epoll_ctl(d->epfd, op, s, &ev) == -1
        && (errno != (op == EPOLL_CTL_ADD ? EEXIST : ENOENT)
            || epoll_ctl(d->epfd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD
                                                      : EPOLL_CTL_ADD,
                         s, &ev)
               == -1))
    {
        shadow_log(d, SHADOW_LOG_ERR, "epoll_ctl(%d): %s", (int) s,
                   strerror(errno));
        return -1;
    }

    curl_multi_assign(d->multi, s, (void *) (intptr_t) (what + 1));
    return 0;
}


static int
shadow_on_timer(CURLM *multi, long ms, void *ctx)
{
    shadow_daemon_t  *d = ctx;

    (void) multi;
    d->curl_due_ms = ms < 0 ? -1 : shadow_mono_ms() + ms;
    return 0;
}


/* curl's timeout, when due: new transfers start, timed out ones end. */
void
shadow_curl_timer(shadow_daemon_t *d)
{
    int  still;

    if (d->curl_due_ms >= 0 && shadow_mono_ms() >= d->curl_due_ms) {
        d->curl_due_ms = -1;
        curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    }
}


/* Sleeps up to wait_ms (less when curl's timer is due sooner) and hands
 * each ready socket to curl. */
void
shadow_curl_wait(shadow_daemon_t *d, int wait_ms)
{
    int                 i, n, still, mask;
    int64_t             left;
    struct epoll_event  ev[64];

    if (d->curl_due_ms >= 0) {
        left = d->curl_due_ms - shadow_mono_ms();
        if (left < wait_ms) {
            wait_ms = left < 0 ? 0 : (int) left;
        }
    }

    n = epoll_wait(d->epfd, ev, 64, wait_ms);

    for (i = 0; i < n; i++) {
        mask = ((ev[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0)
               | ((ev[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0)
               | ((ev[i].events & (EPOLLERR | EPOLLHUP))
                  ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(d->multi, ev[i].data.fd, mask, &still);
    }

    shadow_curl_timer(d);
}


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
    size_t  i;

#define SHADOW_DROP(s)  { s, sizeof(s) - 1 }
    static const struct {
        const char  *name;
        size_t       len;
    } drop[] = {
        SHADOW_DROP("connection"), SHADOW_DROP("keep-alive"),
        SHADOW_DROP("proxy-authenticate"), SHADOW_DROP("proxy-authorization"),
        SHADOW_DROP("proxy-connection"), SHADOW_DROP("te"),
        SHADOW_DROP("trailer"), SHADOW_DROP("trailers"),
        SHADOW_DROP("transfer-encoding"), SHADOW_DROP("upgrade"),
        SHADOW_DROP("host"), SHADOW_DROP("content-length"),
        SHADOW_DROP("expect"), SHADOW_DROP("idempotency-key"),
        SHADOW_DROP("x-cutover-request-id"), SHADOW_DROP("x-cutover-replay")
    };
#undef SHADOW_DROP

    for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
        if (drop[i].len == name->len
            && strncasecmp(drop[i].name, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* Grows *buf to hold need bytes; keeps what it holds. */
static int
shadow_reserve(void *buf, size_t *cap, size_t need, size_t size)
{
    void    *p;
    size_t   n = *cap ? *cap : 16;

    if (need <= *cap) {
        return SHADOW_OK;
    }

    while (n < need) {
        n *= 2;
    }

    p = realloc(*(void **) buf, n * size);
    if (p == NULL) {
        return SHADOW_ERROR;
    }

    *(void **) buf = p;
    *cap = n;
    return SHADOW_OK;
}


static char *
shadow_line(char *p, const char *a, size_t alen, const char *sep,
    size_t slen, const char *b, size_t blen)
{
    memcpy(p, a, alen);
    memcpy(p + alen, sep, slen);
    memcpy(p + alen + slen, b, blen);
    p[alen + slen + blen] = '\0';
    return p + alen + slen + blen + 1;
}


/*
 * What the replay's header lines need: their bytes (the recorded headers
 * minus hop-by-hop, plus ours), how many lines, which Idempotency-Key and
 * whether a Content-Type is among them.
 */
static size_t
shadow_headers_measure(const cutover_record_t *r, const cutover_str_t **key,
    int *have_ctype, size_t *n)
{
    size_t                i, need = 0;
    const cutover_str_t  *nm, *v;

    *key = &r->id;
    *have_ctype = 0;
    *n = 5;

    for (i = 0; i < r->n_req_headers; i++) {
        nm = &r->req_headers[i].name;
        v = &r->req_headers[i].value;

        /* the primary deduped by the client's own key when it sent one
         * (the gateway forwards it): the shadow must use the same */
        if (nm->len == 15 && strncasecmp(nm->data, "idempotency-key", 15)
                             == 0
            && v->len > 0)
        {
            *key = v;
        }

        if (shadow_hop_by_hop(nm)) {
            continue;
        }

        if (nm->len == 12 && strncasecmp(nm->data, "content-type", 12) == 0)
        {
            *have_ctype = 1;
        }

        need += nm->len + 2 + v->len + 1;
        (*n)++;
    }

    return need + sizeof("Idempotency-Key: ") + (*key)->len
           + sizeof("X-Cutover-Request-Id: ") + r->id.len
           + sizeof("X-Cutover-Replay: 1") + sizeof("Expect:")
           + sizeof("Content-Type:");
}


/*
 * The replay's headers as lines in x->hbuf with our own curl_slist over
 * them (x->hlist): no allocation once the buffers have grown.
 */
static int
shadow_request_headers(shadow_xfer_t *x, const cutover_record_t *r)
{
    char                 *p;
    size_t                i, n, need;
    int                   have_ctype;
    const cutover_str_t  *key, *nm, *v;

    need = shadow_headers_measure(r, &key, &have_ctype, &n);

    if (shadow_reserve(&x->hbuf, &x->hbuf_cap, need, 1) != SHADOW_OK
        || shadow_reserve(&x->hlist, &x->hlist_cap, n,
                          sizeof(struct curl_slist))
           != SHADOW_OK)
    {
        return SHADOW_ERROR;
    }

    p = x->hbuf;
    n = 0;

    for (i = 0; i < r->n_req_headers; i++) {
        nm = &r->req_headers[i].name;
        v = &r->req_headers[i].value;

        if (shadow_hop_by_hop(nm)) {
            continue;
        }

        x->hlist[n++].data = p;
        /* "Name;" is how curl sends a header with an empty value */
        p = shadow_line(p, nm->data, nm->len, v->len ? ": " : ";",
                        v->len ? 2 : 1, v->data ? v->data : "", v->len);
    }

    x->hlist[n++].data = p;
    p = shadow_line(p, "Idempotency-Key", 15, ": ", 2, key->data, key->len);
    x->hlist[n++].data = p;
    p = shadow_line(p, "X-Cutover-Request-Id", 20, ": ", 2, r->id.data,
                    r->id.len);
    x->hlist[n++].data = p;
    p = shadow_line(p, "X-Cutover-Replay", 16, ": ", 2, "1", 1);

    /* no 100-continue round trip; no form content type made up by curl */
    x->hlist[n++].data = p;
    p = shadow_line(p, "Expect", 6, ":", 1, "", 0);
    if (!have_ctype) {
        x->hlist[n++].data = p;
        shadow_line(p, "Content-Type", 12, ":", 1, "", 0);
    }

    for (i = 0; i < n; i++) {
        x->hlist[i].next = i + 1 < n ? &x->hlist[i + 1] : NULL;
    }

    return SHADOW_OK;
}


static shadow_xfer_t *
shadow_xfer_get(shadow_daemon_t *d)
{
    shadow_xfer_t  *x = d->pool;

    if (x != NULL) {
        d->pool = x->next;
        d->npool--;
        return x;
    }

    x = calloc(1, sizeof(*x));
    if (x == NULL || (x->easy = curl_easy_init()) == NULL) {
        free(x);
        return NULL;
    }

    /* what every replay shares; the rest is set per replay (the handle
     * is not reset between replays: a reset costs more than the replay's
     * own options) */
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long) d->cfg->timeout_ms);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, shadow_on_body);
    curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, shadow_on_header);
    return x;
}


void
shadow_xfer_free(shadow_xfer_t *x)
{
    if (x == NULL) {
        return;
    }

    curl_easy_cleanup(x->easy);
    EVP_MD_CTX_free(x->body.sha);
    free(x->url);
    free(x->hbuf);
    free(x->hlist);
    free(x->body.data);
    free(x->rbuf);
    free(x->roff);
    free(x->rptr);
    free(x);
}


/* The method and body, from a clean GET whatever the handle's last
 * replay was (it is not reset): no body, no HEAD, no custom method. */
static void
shadow_set_method(CURL *easy, const cutover_record_t *r)
{
    const char  *m = r->method.data;

    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) -1);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(easy, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);

    if (strcmp(m, "GET") == 0 && r->req_body_len == 0) {
        return;
    }

    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        return;
    }

    if (r->req_body_len > 0 || strcmp(m, "POST") == 0
        || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0)
    {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) r->req_body_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
                         r->req_body ? (const char *) r->req_body : "");
    }

    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, m);
}


static int
shadow_start(shadow_daemon_t *d, shadow_item_t *it)
{
    size_t                  blen;
    const char             *base;
    shadow_xfer_t          *x;
    const cutover_record_t *r = &it->rec;

    base = (r->side.len == 3) ? d->cfg->legacy_url : d->cfg->new_url;

    if (it->x == NULL) {
        it->x = shadow_xfer_get(d);
        if (it->x == NULL) {
            return SHADOW_ERROR;
        }

        it->have_hdrs = 0;
    }

    x = it->x;
    shadow_reset_response(it);
    x->body.limit = d->cfg->body_limit;
    it->attempts++;

    if (!it->have_hdrs) {
        if (shadow_request_headers(x, r) != SHADOW_OK) {
            return SHADOW_ERROR;
        }

        it->have_hdrs = 1;
    }

    /* curl copies the URL */
    blen = strlen(base);
    if (shadow_reserve(&x->url, &x->url_cap, blen + r->uri.len + 1, 1)
        != SHADOW_OK)
    {
        return SHADOW_ERROR;
    }

    memcpy(x->url, base, blen);
    memcpy(x->url + blen, r->uri.data, r->uri.len + 1);

    curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hlist);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, it);
    curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, it);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, it);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, it->errbuf);
    it->errbuf[0] = '\0';

    shadow_set_method(x->easy, r);

    if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK) {
        return SHADOW_ERROR;
    }

    it->state = SHADOW_ITEM_RUNNING;
    d->stats.inflight++;
    return SHADOW_OK;
}


/* The response is forgotten; the buffers stay with the transfer (a large
 * body's buffer is let go). */
void
shadow_reset_response(shadow_item_t *it)
{
    shadow_xfer_t  *x = it->x;

    it->ctype = NULL;

    if (x == NULL) {
        return;
    }

    EVP_MD_CTX_free(x->body.sha);
    if (x->body.cap > SHADOW_REUSE_MAX) {
        free(x->body.data);
        x->body.data = NULL;
        x->body.cap = 0;
    }

    x->body.sha = NULL;
    x->body.len = 0;
    x->body.total = 0;
    x->rbuf_len = 0;
    x->nresp = 0;
}


static size_t
shadow_on_body(char *p, size_t size, size_t n, void *ctx)
{
    size_t          len = size * n, keep;
    shadow_item_t  *it = ctx;
    shadow_buf_t   *b = &it->x->body;

    /* past the body limit only the hash and the length are kept: the
     * hash starts there, over the kept prefix first (a body held whole
     * needs none) */
    b->total += len;
    keep = b->len >= b->limit ? 0
           : len < b->limit - b->len ? len
           : b->limit - b->len;

    if (keep < len) {
        if (b->sha == NULL) {
            b->sha = EVP_MD_CTX_new();
            if (b->sha == NULL
                || !EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL)
                || !EVP_DigestUpdate(b->sha,
                                     b->data ? b->data : (uint8_t *) "",
                                     b->len))
            {
                return 0;
            }
        }

        if (!EVP_DigestUpdate(b->sha, p, len)) {
            return 0;
        }
    }

    if (keep == 0) {
        return len;
    }

    if (b->len + keep > b->cap
        && shadow_reserve(&b->data, &b->cap,
                          b->len + keep > 4096 ? b->len + keep : 4096, 1)
           != SHADOW_OK)
    {
        return 0;
    }

    memcpy(b->data + b->len, p, keep);
    b->len += keep;
    return len;
}


static size_t
shadow_on_header(char *p, size_t size, size_t n, void *ctx)
{
    size_t          len = size * n;
    shadow_item_t  *it = ctx;
    shadow_xfer_t  *x = it->x;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue): forget the old headers */
        x->nresp = 0;
        x->rbuf_len = 0;
        return len;
    }

    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }

    if (len == 0 || memchr(p, ':', len) == NULL) {
        return size * n;
    }

    if (shadow_reserve(&x->roff, &x->resp_cap, x->nresp + 1,
                       sizeof(size_t))
        != SHADOW_OK
        || shadow_reserve(&x->rbuf, &x->rbuf_cap, x->rbuf_len + len + 1, 1)
           != SHADOW_OK)
    {
        return 0;
    }

    x->roff[x->nresp++] = x->rbuf_len;
    memcpy(x->rbuf + x->rbuf_len, p, len);
    x->rbuf[x->rbuf_len + len] = '\0';
    x->rbuf_len += len + 1;
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
        curl_multi_remove_handle(d->multi, it->x->easy);
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
        if (it->x != NULL && it->x->body.data != NULL
            && memmem(it->x->body.data, it->x->body.len, busy,
                      sizeof(busy) - 1)
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


/* The transfer goes back to the pool (up to the concurrency) with its
 * buffers, for the next replay. */
void
shadow_release_handle(shadow_daemon_t *d, shadow_item_t *it)
{
    shadow_xfer_t  *x = it->x;

    if (x == NULL) {
        return;
    }

    shadow_reset_response(it);
    it->x = NULL;
    it->have_hdrs = 0;

    if (d->npool < d->cfg->concurrency) {
        x->next = d->pool;
        d->pool = x;
        d->npool++;
        return;
    }

    shadow_xfer_free(x);
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
        curl_easy_getinfo(it->x->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(it->x->easy, CURLINFO_TOTAL_TIME, &secs);
        curl_easy_getinfo(it->x->easy, CURLINFO_CONTENT_TYPE, &ct);
        /* curl's, valid until the handle is used again: the pair is
         * compared before that */
        it->ctype = ct;
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
