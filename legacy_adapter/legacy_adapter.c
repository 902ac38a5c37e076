/* legacy: the adapter's request path, canonical in, dialect out and back. */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "common/cutover_api.h"
#include "common/cutover_hash.h"
#include "legacy_adapter/legacy_adapter.h"
#include "legacy_adapter/legacy_json.h"

#define ADAPTER_REPLY_MAX   (4 * 1024 * 1024)
#define ADAPTER_ID_MAX      CUTOVER_API_ID_MAX
#define ADAPTER_LEGACY_KEY  64          /* the legacy system's strings */
#define ADAPTER_CALLS       32

/*
 * The client pool: idle handles (each with its keep-alive connection) are
 * taken last in, first out, so that the fewest connections stay warm.
 */
struct legacy_adapter_s {
    legacy_adapter_config_t  cfg;
    char                    *legacy_url;
    pthread_mutex_t          lock;
    pthread_cond_t           returned;
    CURL                   **idle;
    unsigned                 nidle;
    unsigned                 made;
    struct curl_slist        hdrs[3];    /* the fixed request headers */
};

/* What the canonical request asked for. */
typedef struct {
    int          route;           /* legacy_route_id_t, -1 none */
    int          is_write;
    int          ok_status;
    const char  *ids[2];
    char         buf[2][ADAPTER_ID_MAX + 1];
} adapter_call_t;


static int adapter_route(const char *method, const char *path,
    adapter_call_t *call, int *status, const char **code);
static int adapter_build_request(legacy_adapter_t *ad,
    const legacy_request_t *req, adapter_call_t *call, bson_t *legacy,
    legacy_error_t *err);
static void adapter_reply_error(legacy_response_t *resp, int status,
    const char *code, const char *message);
static void adapter_log(legacy_adapter_t *ad, int level, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
static int adapter_business_error(const legacy_map_t *map, int64_t code,
    const char *msg, int *status, char **json, size_t *json_len,
    legacy_error_t *err);
static size_t adapter_collect(char *ptr, size_t size, size_t n, void *data);
static void adapter_health(legacy_adapter_t *ad, legacy_response_t *resp);
static int adapter_check_ids(const bson_t *doc, const char *where,
    legacy_error_t *err);
static int adapter_check_canonical(const bson_t *canonical,
    legacy_error_t *err);
static CURL *adapter_curl_get(legacy_adapter_t *ad, CURLcode *rc);
static void adapter_curl_put(legacy_adapter_t *ad, CURL *h);


static void
adapter_log(legacy_adapter_t *ad, int level, const char *fmt, ...)
{
    char     msg[768];
    va_list  ap;

    if (ad->cfg.log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ad->cfg.log(ad->cfg.log_data, level, msg);
}


char *
legacy_adapter_error_body(const char *code, const char *message, size_t *len)
{
    bson_t          doc, e;
    legacy_buf_t    out = { 0 };
    legacy_error_t  err;

    bson_init(&doc);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "error", &e);
    BSON_APPEND_UTF8(&e, "code", code);
    if (!bson_utf8_validate(message, strlen(message), false)) {
        message = "(message not valid UTF-8)";
    }
    BSON_APPEND_UTF8(&e, "message", message);
    bson_append_document_end(&doc, &e);
    if (legacy_json_write(&doc, &out, &err) != LEGACY_OK) {
        legacy_buf_free(&out);
    }
    bson_destroy(&doc);
    *len = out.len;
    return out.data;
}


static void
adapter_reply_error(legacy_response_t *resp, int status, const char *code,
    const char *message)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = legacy_adapter_error_body(code, message, &resp->body_len);
}


legacy_adapter_t *
legacy_adapter_new(const legacy_adapter_config_t *cfg, legacy_error_t *err)
{
    legacy_adapter_t  *ad;
    size_t             n;

    if (cfg->legacy_url == NULL
        || (strncmp(cfg->legacy_url, "http://", 7) != 0
            && strncmp(cfg->legacy_url, "https://", 8) != 0))
    {
        legacy_error_set(err, LEGACY_E_CONFIG,
                         "--legacy \"%s\": expected http://HOST:PORT",
                         cfg->legacy_url ? cfg->legacy_url : "");
        return NULL;
    }
    ad = calloc(1, sizeof(*ad));
    if (ad == NULL) {
        legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
        return NULL;
    }
    ad->cfg = *cfg;
    if (ad->cfg.calls == 0) {
        ad->cfg.calls = ADAPTER_CALLS;
    }
    ad->legacy_url = strdup(cfg->legacy_url);
    ad->idle = calloc(ad->cfg.calls, sizeof(CURL *));
    if (ad->legacy_url == NULL || ad->idle == NULL) {
        free(ad->idle);
        free(ad->legacy_url);
        free(ad);
        legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&ad->lock, NULL);
    pthread_cond_init(&ad->returned, NULL);
    ad->hdrs[0].data = (char *) "Content-Type: application/bson";
    ad->hdrs[0].next = &ad->hdrs[1];
    ad->hdrs[1].data = (char *) "Accept: application/bson";
    ad->hdrs[1].next = &ad->hdrs[2];
    ad->hdrs[2].data = (char *) "Expect:";
    ad->hdrs[2].next = NULL;
    n = strlen(ad->legacy_url);
    while (n > 0 && ad->legacy_url[n - 1] == '/') {
        ad->legacy_url[--n] = '\0';
    }
    ad->cfg.legacy_url = ad->legacy_url;
    return ad;
}


/* The server is stopped: every handle is back in the pool. */
void
legacy_adapter_free(legacy_adapter_t *ad)
{
    unsigned  i;

    if (ad == NULL) {
        return;
    }
    for (i = 0; i < ad->nidle; i++) {
        curl_easy_cleanup(ad->idle[i]);
    }
    pthread_cond_destroy(&ad->returned);
    pthread_mutex_destroy(&ad->lock);
    free(ad->idle);
    free(ad->legacy_url);
    free(ad);
}


/* Copies one path segment (up to '/' or end) into out; 0 if not an id. */
static int
adapter_segment(const char **p, char *out)
{
    size_t  n = strcspn(*p, "/");

    if (!cutover_api_id_valid(*p, n)) {
        return 0;
    }
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    return 1;
}


static int
adapter_route(const char *method, const char *path, adapter_call_t *call,
    int *status, const char **code)
{
    const char  *p;
    int          get = strcmp(method, "GET") == 0;
    int          post = strcmp(method, "POST") == 0;
    int          want_post;

    call->route = -1;
    call->ok_status = 200;
    *status = 404;
    *code = "not_found";

    if (strncmp(path, "/api/v1/", 8) != 0) {
        return LEGACY_ERROR;
    }
    p = path + 8;

    if (strcmp(p, "orders") == 0) {
        call->route = LEGACY_ROUTE_CREATE_ORDER;
        call->ok_status = 201;
        want_post = 1;

    } else if (strncmp(p, "orders/", 7) == 0) {
        p += 7;
        if (!adapter_segment(&p, call->buf[0])) {
            return LEGACY_ERROR;
        }
        if (*p == '\0') {
            call->route = LEGACY_ROUTE_GET_ORDER;
            want_post = 0;
        } else if (strcmp(p, "/cancel") == 0) {
            call->route = LEGACY_ROUTE_CANCEL_ORDER;
            want_post = 1;
        } else {
            return LEGACY_ERROR;
        }

    } else if (strcmp(p, "inventory/adjust") == 0) {
        call->route = LEGACY_ROUTE_ADJUST_INVENTORY;
        want_post = 1;

    } else if (strncmp(p, "inventory/", 10) == 0) {
        p += 10;
        if (!adapter_segment(&p, call->buf[0]) || *p++ != '/'
            || !adapter_segment(&p, call->buf[1]) || *p != '\0')
        {
            return LEGACY_ERROR;
        }
        call->route = LEGACY_ROUTE_GET_INVENTORY;
        want_post = 0;

    } else if (strncmp(p, "members/", 8) == 0) {
        p += 8;
        if (!adapter_segment(&p, call->buf[0]) || *p != '\0') {
            return LEGACY_ERROR;
        }
        call->route = LEGACY_ROUTE_GET_MEMBER;
        want_post = 0;

    } else {
        return LEGACY_ERROR;
    }

    call->ids[0] = call->buf[0];
    call->ids[1] = call->buf[1];
    call->is_write = want_post;
    if ((want_post && !post) || (!want_post && !get)) {
        *status = 405;
        *code = "method_not_allowed";
        return LEGACY_ERROR;
    }
    return LEGACY_OK;
}


/* The id fields of one object: the canonical API's id alphabet. */
static int
adapter_check_ids(const bson_t *doc, const char *where, legacy_error_t *err)
{
    size_t        i;
    uint32_t      len;
    bson_iter_t   it;
    const char   *s;

    static const char *const  ids[] = {
        "order_id", "store_id", "member_id", "sku", NULL
    };

    for (i = 0; ids[i] != NULL; i++) {
        if (!bson_iter_init_find(&it, doc, ids[i])
            || !BSON_ITER_HOLDS_UTF8(&it))
        {
            continue;       /* absent, null or not a string: the map says */
        }
        s = bson_iter_utf8(&it, &len);
        if (!cutover_api_id_valid(s, len)) {
            return legacy_error_set(err, LEGACY_E_INVALID,
                                    "$%s.%s must be 1-%d characters of A-Z"
                                    " a-z 0-9 . _ -", where, ids[i],
                                    CUTOVER_API_ID_MAX);
        }
    }
    return LEGACY_OK;
}


/*
 * The legacy system's request serial number (qqlsh) for an Idempotency-Key.
 * The canonical API takes keys of up to 255 characters, the legacy system
 * strings of up to 64: a longer key goes as "~" and the first 63 hex digits
 * of its SHA-256, the same key always the same serial number.
 */
static void
adapter_legacy_key(const char *key, char out[ADAPTER_LEGACY_KEY + 1])
{
    char    hex[65];
    size_t  len = strlen(key);

    if (len <= ADAPTER_LEGACY_KEY) {
        memcpy(out, key, len + 1);
        return;
    }

    cutover_sha256_hex(key, len, hex);
    out[0] = '~';
    memcpy(out + 1, hex, ADAPTER_LEGACY_KEY - 1);
    out[ADAPTER_LEGACY_KEY] = '\0';
}


/*
 * The canonical API's rules the map cannot say: ids, the number of lines.
 * The same rules as the new core's (common/cutover_api.h).
 */
static int
adapter_check_canonical(const bson_t *canonical, legacy_error_t *err)
{
    bson_t          line;
    bson_iter_t     it, li;
    const uint8_t  *data;
    uint32_t        len;
    char            where[32];
    int             n;

    if (adapter_check_ids(canonical, "", err) != LEGACY_OK) {
        return LEGACY_ERROR;
    }
    if (!bson_iter_init_find(&it, canonical, "lines")
        || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &li))
    {
        return LEGACY_OK;
    }
    for (n = 0; bson_iter_next(&li); n++) {
        if (n == CUTOVER_API_LINES_MAX) {
            return legacy_error_set(err, LEGACY_E_INVALID,
                                    "more than %d lines",
                                    CUTOVER_API_LINES_MAX);
        }
        if (!BSON_ITER_HOLDS_DOCUMENT(&li)) {
            continue;
        }
        bson_iter_document(&li, &len, &data);
        if (!bson_init_static(&line, data, len)) {
            continue;
        }
        snprintf(where, sizeof(where), ".lines[%d]", n);
        if (adapter_check_ids(&line, where, err) != LEGACY_OK) {
            return LEGACY_ERROR;
        }
    }
    return LEGACY_OK;
}


/* The legacy request document for the call (out initialised here). */
static int
adapter_build_request(legacy_adapter_t *ad, const legacy_request_t *req,
    adapter_call_t *call, bson_t *legacy, legacy_error_t *err)
{
    const legacy_map_t    *map = ad->cfg.map;
    const legacy_route_t  *route = &map->routes[call->route];
    const char            *key;
    char                   serial[ADAPTER_LEGACY_KEY + 1];
    bson_t                 canonical;
    int                    rc;

    bson_init(legacy);

    switch (call->route) {
    case LEGACY_ROUTE_CREATE_ORDER:
    case LEGACY_ROUTE_ADJUST_INVENTORY:
        if (legacy_json_parse_object((const char *) req->body,
                                     req->body_len, &canonical, err)
            != LEGACY_OK)
        {
            bson_destroy(&canonical);
            return LEGACY_ERROR;
        }
        break;
    case LEGACY_ROUTE_GET_INVENTORY:
        bson_init(&canonical);
        BSON_APPEND_UTF8(&canonical, "store_id", call->ids[0]);
        BSON_APPEND_UTF8(&canonical, "sku", call->ids[1]);
        break;
    case LEGACY_ROUTE_GET_MEMBER:
        bson_init(&canonical);
        BSON_APPEND_UTF8(&canonical, "member_id", call->ids[0]);
        break;
    default:    /* an order by id */
        bson_init(&canonical);
        BSON_APPEND_UTF8(&canonical, "order_id", call->ids[0]);
        break;
    }

    rc = legacy_map_convert(map, route->request, 1, &canonical, legacy, err);
    if (rc == LEGACY_OK) {
        rc = adapter_check_canonical(&canonical, err);
    }
    bson_destroy(&canonical);
    if (rc != LEGACY_OK) {
        return LEGACY_ERROR;
    }

    key = legacy_request_header(req, "Idempotency-Key");
    if (call->is_write && key != NULL) {
        if (!cutover_api_idem_key_valid(key)) {
            return legacy_error_set(err, LEGACY_E_INVALID,
                                    "Idempotency-Key must be 1-%d printable"
                                    " ASCII characters",
                                    CUTOVER_API_IDEM_KEY_MAX);
        }
        adapter_legacy_key(key, serial);
        BSON_APPEND_UTF8(legacy, map->idempotency_field, serial);
    }
    return LEGACY_OK;
}


static int
adapter_envelope_code(const bson_t *env, const char *field, int64_t *code)
{
    bson_iter_t  it;

    if (!bson_iter_init_find(&it, env, field)) {
        return LEGACY_ERROR;
    }
    if (BSON_ITER_HOLDS_INT32(&it)) {
        *code = bson_iter_int32(&it);
    } else if (BSON_ITER_HOLDS_INT64(&it)) {
        *code = bson_iter_int64(&it);
    } else {
        return LEGACY_ERROR;
    }
    return LEGACY_OK;
}


/* A legacy business error as its canonical status and error body. */
static int
adapter_business_error(const legacy_map_t *map, int64_t code,
    const char *msg, int *status, char **json, size_t *json_len,
    legacy_error_t *err)
{
    const legacy_errmap_t  *em;
    char                    text[300];

    em = legacy_map_error(map, code);
    if (em == NULL) {
        return legacy_error_set(err, LEGACY_E_UPSTREAM, "legacy code %lld is"
                                " not in the map: %.160s", (long long) code,
                                msg);
    }
    snprintf(text, sizeof(text), "%s (legacy code %lld)", msg,
             (long long) code);
    *status = em->status;
    *json = legacy_adapter_error_body(em->code, text, json_len);
    return LEGACY_OK;
}


/*
 * Kept whole (past 80 lines): request, legacy call and answer are one
 * sequence with one cleanup path.
 */
int
legacy_adapter_translate(const legacy_map_t *map, int route,
    int http_status, const char *content_type, const uint8_t *body,
    size_t len, int *status, char **json, size_t *json_len,
    int64_t *legacy_code, legacy_error_t *err)
{
    bson_t                  env, data, canonical;
    bson_iter_t             it;
    const uint8_t          *d;
    uint32_t                dlen;
    const char             *msg = "";
    legacy_buf_t            out = { 0 };
    legacy_error_t          e2;
    int                     rc;

    *legacy_code = -1;
    *json = NULL;

    if (http_status != 200) {
        legacy_error_set(err, LEGACY_E_UPSTREAM, "legacy answered HTTP %d",
                         http_status);
        goto bad;
    }
    if (legacy_body_parse(content_type, body, len, &env, &e2) != LEGACY_OK) {
        bson_destroy(&env);
        legacy_error_set(err, LEGACY_E_UPSTREAM, "legacy body: %s",
                         e2.message);
        goto bad;
    }
    if (adapter_envelope_code(&env, map->env_code, legacy_code)
        != LEGACY_OK)
    {
        bson_destroy(&env);
        legacy_error_set(err, LEGACY_E_UPSTREAM,
                         "legacy envelope has no integer \"%s\"",
                         map->env_code);
        goto bad;
    }
    if (bson_iter_init_find(&it, &env, map->env_message)
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        msg = bson_iter_utf8(&it, NULL);
    }

    if (*legacy_code != 0) {
        rc = adapter_business_error(map, *legacy_code, msg, status, json,
                                    json_len, err);
        bson_destroy(&env);
        if (rc != LEGACY_OK) {
            goto bad;
        }
        return LEGACY_OK;
    }

    if (!bson_iter_init_find(&it, &env, map->env_data)
        || !BSON_ITER_HOLDS_DOCUMENT(&it))
    {
        bson_destroy(&env);
        legacy_error_set(err, LEGACY_E_UPSTREAM,
                         "legacy envelope has no \"%s\" object",
                         map->env_data);
        goto bad;
    }
    bson_iter_document(&it, &dlen, &d);
    bson_init_static(&data, d, dlen);
    bson_init(&canonical);
    rc = legacy_map_convert(map, map->routes[route].response, 0, &data,
                            &canonical, &e2);
    if (rc == LEGACY_OK) {
        rc = legacy_json_write(&canonical, &out, &e2);
    }
    bson_destroy(&canonical);
    bson_destroy(&env);
    if (rc != LEGACY_OK) {
        legacy_buf_free(&out);
        legacy_error_set(err, LEGACY_E_UPSTREAM, "legacy data: %s",
                         e2.message);
        goto bad;
    }

    *status = route == LEGACY_ROUTE_CREATE_ORDER ? 201 : 200;
    *json = out.data;
    *json_len = out.len;
    return LEGACY_OK;

bad:
    *status = 502;
    *json = legacy_adapter_error_body("bad_gateway", err->message, json_len);
    return LEGACY_ERROR;
}


static size_t
adapter_collect(char *ptr, size_t size, size_t n, void *data)
{
    legacy_buf_t  *b = data;

    if (b->len + size * n > ADAPTER_REPLY_MAX
        || legacy_buf_append(b, ptr, size * n) != LEGACY_OK)
    {
        return 0;
    }
    return size * n;
}


/*
 * A handle from the pool, a new one while fewer than cfg.calls exist, else
 * the first one returned within the legacy deadline; NULL with rc set
 * when none came (a timeout) or none could be made.
 */
static CURL *
adapter_curl_get(legacy_adapter_t *ad, CURLcode *rc)
{
    CURL             *h = NULL;
    struct timespec   until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ad->cfg.timeout_ms / 1000;
    until.tv_nsec += (ad->cfg.timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&ad->lock);
    while (ad->nidle == 0 && ad->made == ad->cfg.calls) {
        if (pthread_cond_timedwait(&ad->returned, &ad->lock, &until)
            == ETIMEDOUT)
        {
            break;
        }
    }
    if (ad->nidle > 0) {
        h = ad->idle[--ad->nidle];
        pthread_mutex_unlock(&ad->lock);
        return h;
    }
    if (ad->made == ad->cfg.calls) {
        pthread_mutex_unlock(&ad->lock);
        *rc = CURLE_OPERATION_TIMEDOUT;
        return NULL;
    }
    ad->made++;
    pthread_mutex_unlock(&ad->lock);

    h = curl_easy_init();
    if (h == NULL) {
        pthread_mutex_lock(&ad->lock);
        ad->made--;
        pthread_cond_signal(&ad->returned);
        pthread_mutex_unlock(&ad->lock);
        *rc = CURLE_OUT_OF_MEMORY;
        return NULL;
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ad->cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ad->cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, adapter_collect);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    return h;
}


/* Back to the pool, with what a call set that the next must not inherit. */
static void
adapter_curl_put(legacy_adapter_t *ad, CURL *h)
{
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);

    pthread_mutex_lock(&ad->lock);
    ad->idle[ad->nidle++] = h;
    pthread_cond_signal(&ad->returned);
    pthread_mutex_unlock(&ad->lock);
}


/* POSTs the BSON document; fills reply or returns a curl failure. */
static CURLcode
adapter_post(legacy_adapter_t *ad, const legacy_request_t *req,
    const char *path, const bson_t *doc, legacy_buf_t *reply, long *status,
    char *ctype, size_t ctype_len)
{
    CURL               *h;
    CURLcode            rc;
    struct curl_slist   hdrs[5], *last;
    char                url[512], rid[160], key[100];
    char                serial[ADAPTER_LEGACY_KEY + 1];
    const char         *v, *ct = NULL;

    h = adapter_curl_get(ad, &rc);
    if (h == NULL) {
        return rc;
    }
    snprintf(url, sizeof(url), "%s%s", ad->legacy_url, path);

    /* the fixed headers, then this request's: a list on the stack */
    memcpy(hdrs, ad->hdrs, sizeof(ad->hdrs));
    last = &hdrs[2];
    v = legacy_request_header(req, "X-Cutover-Request-Id");
    if (v != NULL && strlen(v) < 128) {
        snprintf(rid, sizeof(rid), "X-Cutover-Request-Id: %s", v);
        last->next = &hdrs[3];
        last = last->next;
        last->data = rid;
    }
    v = legacy_request_header(req, "Idempotency-Key");
    if (v != NULL && cutover_api_idem_key_valid(v)) {
        adapter_legacy_key(v, serial);
        snprintf(key, sizeof(key), "Idempotency-Key: %s", serial);
        last->next = last == &hdrs[2] ? &hdrs[3] : &hdrs[4];
        last = last->next;
        last->data = key;
    }
    last->next = NULL;
    hdrs[0].next = &hdrs[1];
    hdrs[1].next = &hdrs[2];

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, bson_get_data(doc));
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) doc->len);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);

    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(ctype, ctype_len, "%s", ct ? ct : "");
    }
    adapter_curl_put(ad, h);
    return rc;
}


static void
adapter_health(legacy_adapter_t *ad, legacy_response_t *resp)
{
    CURL      *h;
    CURLcode   rc;
    long       status = 0;
    char       url[512];
    legacy_buf_t  reply = { 0 };
    static const char  up[] = "{\"status\":\"ok\",\"legacy\":\"up\"}";
    static const char  down[] = "{\"status\":\"degraded\",\"legacy\":\"down\"}";

    h = adapter_curl_get(ad, &rc);
    if (h != NULL) {
        snprintf(url, sizeof(url), "%s/lsapi/health", ad->legacy_url);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        adapter_curl_put(ad, h);
    }
    legacy_buf_free(&reply);

    resp->content_type = "application/json";
    if (rc == CURLE_OK && status == 200) {
        resp->status = 200;
        resp->body = strdup(up);
    } else {
        resp->status = 503;
        resp->body = strdup(down);
    }
    resp->body_len = resp->body ? strlen(resp->body) : 0;
}


/*
 * Kept whole (past 80 lines): the order of the checks is the order of the
 * errors a client sees.
 */
void
legacy_adapter_handle(void *data, const legacy_request_t *req,
    legacy_response_t *resp)
{
    legacy_adapter_t  *ad = data;
    adapter_call_t     call;
    legacy_error_t     err;
    legacy_buf_t       reply = { 0 };
    bson_t             doc;
    const char        *code, *rid;
    char               ctype[128];
    long               http_status = 0;
    int64_t            legacy_code;
    int                status;
    CURLcode           rc;

    if (strcmp(req->path, "/health") == 0) {
        if (strcmp(req->method, "GET") == 0) {
            adapter_health(ad, resp);
        } else {
            adapter_reply_error(resp, 405, "method_not_allowed",
                                "method not allowed here");
            strcpy(resp->extra_name, "Allow");
            strcpy(resp->extra_value, "GET");
        }
        return;
    }

    memset(&call, 0, sizeof(call));
    if (adapter_route(req->method, req->path, &call, &status, &code)
        != LEGACY_OK)
    {
        adapter_reply_error(resp, status, code, status == 405
                            ? "method not allowed here" : "no such resource");
        if (status == 405) {
            strcpy(resp->extra_name, "Allow");
            strcpy(resp->extra_value, call.is_write ? "POST" : "GET");
        }
        return;
    }

    if (adapter_build_request(ad, req, &call, &doc, &err) != LEGACY_OK) {
        bson_destroy(&doc);
        adapter_reply_error(resp, 400, "invalid_request", err.message);
        return;
    }

    rid = legacy_request_header(req, "X-Cutover-Request-Id");
    rc = adapter_post(ad, req, ad->cfg.map->routes[call.route].legacy_path,
                      &doc, &reply, &http_status, ctype, sizeof(ctype));
    bson_destroy(&doc);

    if (rc != CURLE_OK) {
        legacy_buf_free(&reply);
        adapter_log(ad, LEGACY_LOG_ERR, "%s %s: legacy %s (request id %s)",
                    req->method, req->path, curl_easy_strerror(rc),
                    rid ? rid : "-");
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            adapter_reply_error(resp, 504, "timeout",
                                "the legacy system did not answer in time");
        } else {
            adapter_reply_error(resp, 502, "unavailable",
                                "the legacy system is unreachable");
        }
        return;
    }

    if (legacy_adapter_translate(ad->cfg.map, call.route, (int) http_status,
                                 ctype, (const uint8_t *) reply.data,
                                 reply.len, &resp->status, &resp->body,
                                 &resp->body_len, &legacy_code, &err)
        != LEGACY_OK)
    {
        adapter_log(ad, LEGACY_LOG_ERR, "%s %s: %s (request id %s)",
                    req->method, req->path, err.message, rid ? rid : "-");
    } else if (legacy_code > 0) {
        adapter_log(ad, LEGACY_LOG_INFO, "%s %s: legacy code %lld -> %d"
                    " (request id %s)", req->method, req->path,
                    (long long) legacy_code, resp->status, rid ? rid : "-");
    }
    resp->content_type = "application/json";
    legacy_buf_free(&reply);
}
