/*
 * The canonical API of the core: routing, replies, idempotency and
 * health, free of HTTP server details so tests and other front ends can
 * drive it.  Orders are in newcore_api_orders.c, stock and members in
 * newcore_api_stock.c.
 */

#include "new_core/newcore_api_int.h"


#define NEWCORE_PATH_MAX  512
#define NEWCORE_SEGS_MAX  8

typedef struct {
    char   buf[NEWCORE_PATH_MAX];
    char  *seg[NEWCORE_SEGS_MAX];
    int    n;
} newcore_path_t;


static int newcore_path_split(newcore_path_t *p, const char *path);
static int newcore_path_is(const newcore_path_t *p, int n, ...);
static int newcore_method(newcore_reply_t *reply, const char *method,
    const char *allowed);
static int newcore_idem_key(const newcore_request_t *req,
    newcore_reply_t *reply);
static void newcore_api_health(newcore_pool_t *pool, newcore_reply_t *reply);


void
newcore_reply_init(newcore_reply_t *reply)
{
    memset(reply, 0, sizeof(*reply));
    newcore_buf_init(&reply->body);
}


void
newcore_reply_free(newcore_reply_t *reply)
{
    newcore_buf_free(&reply->body);
}


void
newcore_request_hash(const newcore_request_t *req, char *out)
{
    unsigned char      md[EVP_MAX_MD_SIZE];
    unsigned int       mdlen;
    EVP_MD_CTX        *ctx;

    mdlen = 0;
    ctx = EVP_MD_CTX_new();

    if (ctx == NULL
        || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(ctx, req->method, strlen(req->method)) != 1
        || EVP_DigestUpdate(ctx, "\n", 1) != 1
        || EVP_DigestUpdate(ctx, req->path, strlen(req->path)) != 1
        || EVP_DigestUpdate(ctx, "\n", 1) != 1
        || EVP_DigestUpdate(ctx, req->body ? req->body : "",
                            req->body_len) != 1
        || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
    {
        mdlen = 0;
    }

    EVP_MD_CTX_free(ctx);

    cutover_hex(md, mdlen < 32 ? mdlen : 32, out);
}


void
newcore_now_rfc3339(char *out, size_t size)
{
    struct timespec  ts;
    struct tm        tm;
    char             base[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}


static int
newcore_path_split(newcore_path_t *p, const char *path)
{
    char  *s;

    p->n = 0;

    if (path == NULL || path[0] != '/' || strlen(path) >= NEWCORE_PATH_MAX) {
        return NEWCORE_ERROR;
    }

    strcpy(p->buf, path + 1);

    for (s = p->buf; ; ) {
        if (p->n == NEWCORE_SEGS_MAX) {
            return NEWCORE_ERROR;
        }
        p->seg[p->n++] = s;

        s = strchr(s, '/');
        if (s == NULL) {
            break;
        }
        *s++ = '\0';
    }

    return NEWCORE_OK;
}


/* Segments match: NULL in the list is a wildcard. */
static int
newcore_path_is(const newcore_path_t *p, int n, ...)
{
    int          i, ok;
    va_list      ap;
    const char  *want;

    if (p->n != n) {
        return 0;
    }

    ok = 1;
    va_start(ap, n);
    for (i = 0; i < n; i++) {
        want = va_arg(ap, const char *);
        if (want != NULL ? strcmp(want, p->seg[i]) != 0
                         : p->seg[i][0] == '\0')
        {
            ok = 0;
        }
    }
    va_end(ap);

    return ok;
}


void
newcore_reply_error(newcore_reply_t *reply, int status, const char *code,
    const char *fmt, ...)
{
    va_list  ap;

    reply->status = status;
    snprintf(reply->err.name, sizeof(reply->err.name), "%s", code);
    reply->err.code = status;

    va_start(ap, fmt);
    vsnprintf(reply->err.message, sizeof(reply->err.message), fmt, ap);
    va_end(ap);

    newcore_buf_reset(&reply->body);
    newcore_buf_error(&reply->body, &reply->err);
}


void
newcore_reply_err(newcore_reply_t *reply, const newcore_error_t *err)
{
    newcore_error_t  copy;

    /* err is often reply->err itself */
    copy = *err;
    newcore_reply_error(reply, copy.code ? copy.code : 500,
                        copy.name[0] ? copy.name : "internal", "%s",
                        copy.message);
}


static int
newcore_method(newcore_reply_t *reply, const char *method,
    const char *allowed)
{
    if (strcmp(method, allowed) == 0) {
        return 1;
    }

    reply->allow = allowed;
    newcore_reply_error(reply, 405, "method_not_allowed",
                        "%s is not allowed here; use %s", method, allowed);
    return 0;
}


static int
newcore_idem_key(const newcore_request_t *req, newcore_reply_t *reply)
{
    if (req->idem_key != NULL && !cutover_api_idem_key_valid(req->idem_key)) {
        newcore_reply_error(reply, 400, "invalid_request",
                            "Idempotency-Key must be 1-%d printable ASCII "
                            "characters", CUTOVER_API_IDEM_KEY_MAX);
        return NEWCORE_ERROR;
    }

    return NEWCORE_OK;
}


void
newcore_api_handle(newcore_pool_t *pool, const newcore_request_t *req,
    newcore_reply_t *reply)
{
    newcore_path_t  p;

    if (req->body_too_large) {
        newcore_reply_error(reply, 413, "invalid_request",
                            "body larger than %d bytes", NEWCORE_BODY_MAX);
        return;
    }

    if (newcore_path_split(&p, req->path) != NEWCORE_OK) {
        goto not_found;
    }

    if (newcore_path_is(&p, 1, "health")) {
        if (newcore_method(reply, req->method, "GET")) {
            newcore_api_health(pool, reply);
        }
        return;
    }

    if (p.n < 3 || strcmp(p.seg[0], "api") || strcmp(p.seg[1], "v1")) {
        goto not_found;
    }

    if (newcore_path_is(&p, 3, "api", "v1", "orders")) {
        if (newcore_method(reply, req->method, "POST")
            && newcore_idem_key(req, reply) == NEWCORE_OK)
        {
            newcore_api_order_create(pool, req, reply);
        }

    } else if (newcore_path_is(&p, 4, "api", "v1", "orders", NULL)) {
        if (newcore_method(reply, req->method, "GET")) {
            newcore_api_order_get(pool, p.seg[3], reply);
        }

    } else if (newcore_path_is(&p, 5, "api", "v1", "orders", NULL, "cancel"))
    {
        if (newcore_method(reply, req->method, "POST")
            && newcore_idem_key(req, reply) == NEWCORE_OK)
        {
            newcore_api_order_cancel(pool, req, p.seg[3], reply);
        }

    } else if (newcore_path_is(&p, 4, "api", "v1", "inventory", "adjust")) {
        if (newcore_method(reply, req->method, "POST")
            && newcore_idem_key(req, reply) == NEWCORE_OK)
        {
            newcore_api_inventory_adjust(pool, req, reply);
        }

    } else if (newcore_path_is(&p, 5, "api", "v1", "inventory", NULL, NULL)) {
        if (newcore_method(reply, req->method, "GET")) {
            newcore_api_inventory_get(pool, p.seg[3], p.seg[4], reply);
        }

    } else if (newcore_path_is(&p, 4, "api", "v1", "members", NULL)) {
        if (newcore_method(reply, req->method, "GET")) {
            newcore_api_member_get(pool, p.seg[3], reply);
        }

    } else {
        goto not_found;
    }

    return;

not_found:

    newcore_reply_error(reply, 404, "not_found", "no such route");
}


static void
newcore_api_health(newcore_pool_t *pool, newcore_reply_t *reply)
{
    PGconn    *conn;
    PGresult  *res;

    conn = newcore_pool_acquire(pool, &reply->err);
    if (conn == NULL) {
        newcore_reply_err(reply, &reply->err);
        return;
    }

    res = newcore_db_exec(conn, NEWCORE_STMT_HEALTH, 0, NULL, &reply->err);
    newcore_pool_release(pool, conn);

    if (res == NULL) {
        reply->err.code = 503;
        snprintf(reply->err.name, sizeof(reply->err.name), "unavailable");
        newcore_reply_err(reply, &reply->err);
        return;
    }

    PQclear(res);
    reply->status = 200;
    newcore_buf_puts(&reply->body, "{\"status\":\"ok\"}");
}


/* The answer of a write function: o_outcome, o_detail, o_status, o_body. */
void
newcore_api_outcome(PGresult *res, newcore_reply_t *reply)
{
    const char  *outcome, *detail;

    outcome = PQgetvalue(res, 0, 0);
    detail = PQgetvalue(res, 0, 1);

    if (strcmp(outcome, "ok") == 0 || strcmp(outcome, "replay") == 0) {
        reply->status = atoi(PQgetvalue(res, 0, 2));
        newcore_buf_reset(&reply->body);
        newcore_buf_puts(&reply->body, PQgetvalue(res, 0, 3));

    } else if (strcmp(outcome, "mismatch") == 0) {
        newcore_reply_error(reply, 422, "idempotency_mismatch",
                            "Idempotency-Key was used for another request");

    } else if (strcmp(outcome, "in_progress") == 0) {
        newcore_reply_error(reply, 409, "idempotency_in_progress",
                            "a request with this Idempotency-Key is still "
                            "running");

    } else if (strcmp(outcome, "duplicate_order") == 0) {
        newcore_reply_error(reply, 409, "duplicate_order",
                            "an order with this order_id exists");

    } else if (strcmp(outcome, "out_of_stock") == 0) {
        newcore_reply_error(reply, 409, "out_of_stock",
                            "not enough stock of %s", detail);

    } else if (strcmp(outcome, "not_found") == 0) {
        newcore_reply_error(reply, 404, "not_found", "no such record");

    } else {
        newcore_reply_error(reply, 500, "internal", "unexpected outcome %s",
                            outcome);
    }
}
