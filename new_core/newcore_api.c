/* The canonical API of the core: routing and the handlers, free of HTTP
 * server details so tests and other front ends can drive it. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/cutover_hash.h"
#include "new_core/newcore_api.h"
#include "new_core/newcore_money.h"
#include "new_core/newcore_order.h"

#define NEWCORE_PATH_MAX  512
#define NEWCORE_SEGS_MAX  8

typedef struct {
    char   buf[NEWCORE_PATH_MAX];
    char  *seg[NEWCORE_SEGS_MAX];
    int    n;
} newcore_path_t;


static int newcore_path_split(newcore_path_t *p, const char *path);
static int newcore_path_is(const newcore_path_t *p, int n, ...);
static void newcore_reply_error(newcore_reply_t *reply, int status,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void newcore_reply_err(newcore_reply_t *reply,
    const newcore_error_t *err);
static int newcore_method(newcore_reply_t *reply, const char *method,
    const char *allowed);
static int newcore_idem_key(const newcore_request_t *req,
    newcore_reply_t *reply);
static void newcore_api_outcome(PGresult *res, newcore_reply_t *reply);
static void newcore_api_health(newcore_pool_t *pool, newcore_reply_t *reply);
static void newcore_api_order_create(newcore_pool_t *pool,
    const newcore_request_t *req, newcore_reply_t *reply);
static int newcore_order_quote(PGconn *conn, newcore_order_t *order,
    const newcore_request_t *req, const char *hash, newcore_reply_t *reply);
static int newcore_quote_check(PGresult *res, const newcore_order_t *order,
    const char *hash, newcore_reply_t *reply);
static int newcore_quote_prices(newcore_order_t *order, const char *list,
    newcore_reply_t *reply);
static int newcore_order_arrays(const newcore_order_t *order,
    newcore_buf_t *arr);
static int newcore_order_place(PGconn *conn, newcore_order_t *order,
    const newcore_request_t *req, const char *hash, newcore_reply_t *reply);
static int newcore_order_load(PGconn *conn, const char *order_id,
    newcore_order_t *order, newcore_reply_t *reply);
static void newcore_api_order_get(newcore_pool_t *pool, const char *id,
    newcore_reply_t *reply);
static void newcore_api_order_cancel(newcore_pool_t *pool,
    const newcore_request_t *req, const char *id, newcore_reply_t *reply);
static void newcore_api_inventory_get(newcore_pool_t *pool,
    const char *store_id, const char *sku, newcore_reply_t *reply);
static void newcore_api_inventory_adjust(newcore_pool_t *pool,
    const newcore_request_t *req, newcore_reply_t *reply);
static void newcore_api_member_get(newcore_pool_t *pool, const char *id,
    newcore_reply_t *reply);


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


static void
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


static void
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
    const char  *k;
    size_t       i;

    k = req->idem_key;
    if (k == NULL) {
        return NEWCORE_OK;
    }

    for (i = 0; k[i]; i++) {
        if (k[i] < 0x21 || k[i] > 0x7e) {
            break;
        }
    }

    if (i == 0 || k[i] != '\0' || i > NEWCORE_IDEM_KEY_MAX) {
        newcore_reply_error(reply, 400, "invalid_request",
                            "Idempotency-Key must be 1-%d printable ASCII "
                            "characters", NEWCORE_IDEM_KEY_MAX);
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
static void
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


static void
newcore_api_order_create(newcore_pool_t *pool, const newcore_request_t *req,
    newcore_reply_t *reply)
{
    char              hash[65];
    PGconn           *conn;
    newcore_order_t  *order;

    conn = NULL;

    order = newcore_order_new();
    if (order == NULL) {
        newcore_reply_error(reply, 500, "internal", "out of memory");
        return;
    }

    if (newcore_order_parse(order, req->body, req->body_len, &reply->err)
        != NEWCORE_OK)
    {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    newcore_request_hash(req, hash);

    conn = newcore_pool_acquire(pool, &reply->err);
    if (conn == NULL) {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    if (newcore_order_quote(conn, order, req, hash, reply) == NEWCORE_OK) {
        newcore_order_place(conn, order, req, hash, reply);
    }

cleanup:

    newcore_pool_release(pool, conn);
    newcore_order_free(order);
}


/*
 * Looks up what the order refers to in one round trip: the store and its
 * channels, the member, the list prices, an id when the client sent none,
 * and a stored answer under the Idempotency-Key.  Then prices the order.
 * NEWCORE_ERROR when the reply is already made (an error or a replay).
 */
static int
newcore_order_quote(PGconn *conn, newcore_order_t *order,
    const newcore_request_t *req, const char *hash, newcore_reply_t *reply)
{
    int             i, rc;
    const char     *v[6];
    PGresult       *res;
    newcore_buf_t   arr[4];

    for (i = 0; i < 4; i++) {
        newcore_buf_init(&arr[i]);
    }

    rc = NEWCORE_ERROR;
    res = NULL;

    if (newcore_order_arrays(order, arr) != NEWCORE_OK) {
        newcore_reply_error(reply, 500, "internal", "out of memory");
        goto cleanup;
    }

    v[0] = order->store_id;
    v[1] = order->channel;
    v[2] = order->member_id[0] ? order->member_id : NULL;
    v[3] = arr[0].data;
    v[4] = order->order_id[0] ? "f" : "t";
    v[5] = req->idem_key;

    res = newcore_db_exec(conn, NEWCORE_STMT_QUOTE, 6, v, &reply->err);
    if (res == NULL || PQntuples(res) != 1) {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    if (newcore_quote_check(res, order, hash, reply) != NEWCORE_OK) {
        goto cleanup;
    }

    if (newcore_quote_prices(order, PQgetvalue(res, 0, 2), reply)
        != NEWCORE_OK)
    {
        goto cleanup;
    }

    if (newcore_order_price(order, &reply->err) != NEWCORE_OK) {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    if (order->order_id[0] == '\0') {
        snprintf(order->order_id, sizeof(order->order_id), "NC%010lld",
                 atoll(PQgetvalue(res, 0, 3)));
    }

    rc = NEWCORE_OK;

cleanup:

    PQclear(res);
    for (i = 0; i < 4; i++) {
        newcore_buf_free(&arr[i]);
    }
    return rc;
}


/*
 * The quote's verdicts: a stored answer under the key (replayed, or 422
 * for another request), the store, its channels, the member.
 */
static int
newcore_quote_check(PGresult *res, const newcore_order_t *order,
    const char *hash, newcore_reply_t *reply)
{
    if (!PQgetisnull(res, 0, 4)) {
        if (strcmp(PQgetvalue(res, 0, 4), hash) == 0) {
            reply->status = atoi(PQgetvalue(res, 0, 5));
            newcore_buf_puts(&reply->body, PQgetvalue(res, 0, 6));
        } else {
            newcore_reply_error(reply, 422, "idempotency_mismatch",
                                "Idempotency-Key was used for another "
                                "request");
        }
        return NEWCORE_ERROR;
    }

    if (PQgetisnull(res, 0, 0)) {
        newcore_reply_error(reply, 404, "not_found", "unknown store %s",
                            order->store_id);
        return NEWCORE_ERROR;
    }

    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        newcore_reply_error(reply, 400, "invalid_request",
                            "store %s does not sell on channel %s",
                            order->store_id, order->channel);
        return NEWCORE_ERROR;
    }

    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        newcore_reply_error(reply, 404, "not_found", "unknown member %s",
                            order->member_id);
        return NEWCORE_ERROR;
    }

    return NEWCORE_OK;
}


/* Fills the prices not given from the list prices ({12300,NULL,500}). */
static int
newcore_quote_prices(newcore_order_t *order, const char *list,
    newcore_reply_t *reply)
{
    size_t       i;
    char        *end;
    const char  *p;
    long long    price;

    p = list;
    if (*p == '{') {
        p++;
    }

    for (i = 0; i < order->nlines; i++) {
        if (strncmp(p, "NULL", 4) == 0) {
            newcore_reply_error(reply, 404, "not_found", "unknown sku %s",
                                order->lines[i].sku);
            return NEWCORE_ERROR;
        }

        price = strtoll(p, &end, 10);
        if (end == p || (*end != ',' && *end != '}')) {
            newcore_reply_error(reply, 500, "internal", "bad price list");
            return NEWCORE_ERROR;
        }
        p = end + 1;

        if (order->lines[i].unit_price_fen < 0) {
            order->lines[i].unit_price_fen = price;
        }
    }

    return NEWCORE_OK;
}


/* The lines as PostgreSQL array literals: skus, qtys, prices, amounts. */
static int
newcore_order_arrays(const newcore_order_t *order, newcore_buf_t *arr)
{
    size_t                 i;
    const char            *sep;
    const newcore_line_t  *line;

    for (i = 0; i < order->nlines; i++) {
        line = &order->lines[i];
        sep = i ? "," : "{";
        newcore_buf_printf(&arr[0], "%s\"%s\"", sep, line->sku);
        newcore_buf_printf(&arr[1], "%s%lld", sep, (long long) line->qty);
        newcore_buf_printf(&arr[2], "%s%lld", sep,
                           (long long) line->unit_price_fen);
        newcore_buf_printf(&arr[3], "%s%lld", sep,
                           (long long) line->amount_fen);
    }

    for (i = 0; i < 4; i++) {
        newcore_buf_puts(&arr[i], "}");
        if (arr[i].failed) {
            return NEWCORE_ERROR;
        }
    }

    return NEWCORE_OK;
}


static int
newcore_order_place(PGconn *conn, newcore_order_t *order,
    const newcore_request_t *req, const char *hash, newcore_reply_t *reply)
{
    int             i, rc;
    char            total[24], points[24];
    const char     *v[15];
    PGresult       *res;
    newcore_buf_t   arr[4], body;

    for (i = 0; i < 4; i++) {
        newcore_buf_init(&arr[i]);
    }
    newcore_buf_init(&body);

    rc = NEWCORE_ERROR;
    res = NULL;

    newcore_now_rfc3339(order->created_at, sizeof(order->created_at));
    newcore_order_json(order, &body);

    if (newcore_order_arrays(order, arr) != NEWCORE_OK || body.failed) {
        newcore_reply_error(reply, 500, "internal", "out of memory");
        goto cleanup;
    }

    snprintf(total, sizeof(total), "%lld", (long long) order->total_fen);
    snprintf(points, sizeof(points), "%lld",
             (long long) order->points_earned);

    v[0] = req->idem_key;
    v[1] = req->idem_key ? hash : NULL;
    v[2] = body.data;
    v[3] = order->order_id;
    v[4] = order->store_id;
    v[5] = order->channel;
    v[6] = order->member_id[0] ? order->member_id : NULL;
    v[7] = order->created_at;
    v[8] = order->payment_method;
    v[9] = arr[0].data;
    v[10] = arr[1].data;
    v[11] = arr[2].data;
    v[12] = arr[3].data;
    v[13] = total;
    v[14] = points;

    res = newcore_db_exec(conn, NEWCORE_STMT_PLACE, 15, v, &reply->err);
    if (res == NULL || PQntuples(res) != 1) {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    newcore_api_outcome(res, reply);
    rc = NEWCORE_OK;

cleanup:

    PQclear(res);
    for (i = 0; i < 4; i++) {
        newcore_buf_free(&arr[i]);
    }
    newcore_buf_free(&body);
    return rc;
}


/* Reads an order with its lines; NEWCORE_ERROR with the reply made. */
static int
newcore_order_load(PGconn *conn, const char *order_id,
    newcore_order_t *order, newcore_reply_t *reply)
{
    int              i, n;
    const char      *v[1];
    PGresult        *res;
    newcore_line_t  *line;

    if (!newcore_id_valid(order_id, strlen(order_id))) {
        newcore_reply_error(reply, 404, "not_found", "no such order");
        return NEWCORE_ERROR;
    }

    v[0] = order_id;
    res = newcore_db_exec(conn, NEWCORE_STMT_ORDER_GET, 1, v, &reply->err);
    if (res == NULL) {
        newcore_reply_err(reply, &reply->err);
        return NEWCORE_ERROR;
    }

    n = PQntuples(res);
    if (n == 0 || n > NEWCORE_ORDER_MAX_LINES) {
        PQclear(res);
        newcore_reply_error(reply, 404, "not_found", "no order %s",
                            order_id);
        return NEWCORE_ERROR;
    }

    memset(order, 0, sizeof(*order));
    snprintf(order->order_id, sizeof(order->order_id), "%s",
             PQgetvalue(res, 0, 0));
    snprintf(order->store_id, sizeof(order->store_id), "%s",
             PQgetvalue(res, 0, 1));
    snprintf(order->channel, sizeof(order->channel), "%s",
             PQgetvalue(res, 0, 2));
    snprintf(order->member_id, sizeof(order->member_id), "%s",
             PQgetvalue(res, 0, 3));
    snprintf(order->status, sizeof(order->status), "%s",
             PQgetvalue(res, 0, 4));
    order->total_fen = atoll(PQgetvalue(res, 0, 5));
    order->points_earned = atoll(PQgetvalue(res, 0, 6));
    snprintf(order->created_at, sizeof(order->created_at), "%s",
             PQgetvalue(res, 0, 7));
    snprintf(order->payment_method, sizeof(order->payment_method), "%s",
             PQgetvalue(res, 0, 8));
    order->payment_fen = order->total_fen;

    for (i = 0; i < n; i++) {
        line = &order->lines[i];
        snprintf(line->sku, sizeof(line->sku), "%s", PQgetvalue(res, i, 9));
        line->qty = atoll(PQgetvalue(res, i, 10));
        line->unit_price_fen = atoll(PQgetvalue(res, i, 11));
        line->amount_fen = atoll(PQgetvalue(res, i, 12));
    }
    order->nlines = (size_t) n;

    PQclear(res);
    return NEWCORE_OK;
}


static void
newcore_api_order_get(newcore_pool_t *pool, const char *id,
    newcore_reply_t *reply)
{
    PGconn           *conn;
    newcore_order_t  *order;

    order = newcore_order_new();
    if (order == NULL) {
        newcore_reply_error(reply, 500, "internal", "out of memory");
        return;
    }

    conn = newcore_pool_acquire(pool, &reply->err);
    if (conn == NULL) {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    if (newcore_order_load(conn, id, order, reply) == NEWCORE_OK) {
        reply->status = 200;
        newcore_order_json(order, &reply->body);
    }

cleanup:

    newcore_pool_release(pool, conn);
    newcore_order_free(order);
}


static void
newcore_api_order_cancel(newcore_pool_t *pool, const newcore_request_t *req,
    const char *id, newcore_reply_t *reply)
{
    char              hash[65], now[40];
    const char       *v[5];
    PGconn           *conn;
    PGresult         *res;
    newcore_buf_t     body;
    newcore_order_t  *order;

    newcore_buf_init(&body);
    res = NULL;

    order = newcore_order_new();
    if (order == NULL) {
        newcore_reply_error(reply, 500, "internal", "out of memory");
        return;
    }

    conn = newcore_pool_acquire(pool, &reply->err);
    if (conn == NULL) {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    if (newcore_order_load(conn, id, order, reply) != NEWCORE_OK) {
        goto cleanup;
    }

    strcpy(order->status, "cancelled");
    newcore_order_json(order, &body);
    newcore_request_hash(req, hash);
    newcore_now_rfc3339(now, sizeof(now));

    v[0] = req->idem_key;
    v[1] = req->idem_key ? hash : NULL;
    v[2] = body.data;
    v[3] = order->order_id;
    v[4] = now;

    if (body.failed) {
        newcore_reply_error(reply, 500, "internal", "out of memory");
        goto cleanup;
    }

    res = newcore_db_exec(conn, NEWCORE_STMT_CANCEL, 5, v, &reply->err);
    if (res == NULL || PQntuples(res) != 1) {
        newcore_reply_err(reply, &reply->err);
        goto cleanup;
    }

    newcore_api_outcome(res, reply);

cleanup:

    PQclear(res);
    newcore_pool_release(pool, conn);
    newcore_buf_free(&body);
    newcore_order_free(order);
}


static void
newcore_api_inventory_get(newcore_pool_t *pool, const char *store_id,
    const char *sku, newcore_reply_t *reply)
{
    const char  *v[2];
    PGconn      *conn;
    PGresult    *res;

    if (!newcore_id_valid(store_id, strlen(store_id))
        || !newcore_id_valid(sku, strlen(sku)))
    {
        newcore_reply_error(reply, 404, "not_found", "no such stock record");
        return;
    }

    conn = newcore_pool_acquire(pool, &reply->err);
    if (conn == NULL) {
        newcore_reply_err(reply, &reply->err);
        return;
    }

    v[0] = store_id;
    v[1] = sku;
    res = newcore_db_exec(conn, NEWCORE_STMT_STOCK_GET, 2, v, &reply->err);
    newcore_pool_release(pool, conn);

    if (res == NULL) {
        newcore_reply_err(reply, &reply->err);
        return;
    }

    if (PQntuples(res) != 1) {
        newcore_reply_error(reply, 404, "not_found",
                            "no stock of %s in store %s", sku, store_id);
    } else {
        reply->status = 200;
        newcore_inventory_json(&reply->body, store_id, sku,
                               atoll(PQgetvalue(res, 0, 0)),
                               atoll(PQgetvalue(res, 0, 1)));
    }

    PQclear(res);
}


static void
newcore_api_inventory_adjust(newcore_pool_t *pool,
    const newcore_request_t *req, newcore_reply_t *reply)
{
    char              hash[65], now[40], delta[24];
    const char       *v[7];
    PGconn           *conn;
    PGresult         *res;
    newcore_adjust_t  adj;

    if (newcore_adjust_parse(&adj, req->body, req->body_len, &reply->err)
        != NEWCORE_OK)
    {
        newcore_reply_err(reply, &reply->err);
        return;
    }

    conn = newcore_pool_acquire(pool, &reply->err);
    if (conn == NULL) {
        newcore_reply_err(reply, &reply->err);
        return;
    }

    newcore_request_hash(req, hash);
    newcore_now_rfc3339(now, sizeof(now));
    snprintf(delta, sizeof(delta), "%lld", (long long) adj.delta);

    v[0] = req->idem_key;
    v[1] = req->idem_key ? hash : NULL;
    v[2] = adj.store_id;
    v[3] = adj.sku;
    v[4] = delta;
    v[5] = adj.reason;
    v[6] = now;

    res = newcore_db_exec(conn, NEWCORE_STMT_ADJUST, 7, v, &reply->err);
    newcore_pool_release(pool, conn);

    if (res == NULL || PQntuples(res) != 1) {
        PQclear(res);
        newcore_reply_err(reply, &reply->err);
        return;
    }

    newcore_api_outcome(res, reply);
    if (reply->status == 404) {
        newcore_reply_error(reply, 404, "not_found",
                            "no stock of %s in store %s", adj.sku,
                            adj.store_id);
    }

    PQclear(res);
}


static void
newcore_api_member_get(newcore_pool_t *pool, const char *id,
    newcore_reply_t *reply)
{
    const char  *v[1];
    PGconn      *conn;
    PGresult    *res;

    if (!newcore_id_valid(id, strlen(id))) {
        newcore_reply_error(reply, 404, "not_found", "no such member");
        return;
    }

    conn = newcore_pool_acquire(pool, &reply->err);
    if (conn == NULL) {
        newcore_reply_err(reply, &reply->err);
        return;
    }

    v[0] = id;
    res = newcore_db_exec(conn, NEWCORE_STMT_MEMBER_GET, 1, v, &reply->err);
    newcore_pool_release(pool, conn);

    if (res == NULL) {
        newcore_reply_err(reply, &reply->err);
        return;
    }

    if (PQntuples(res) != 1) {
        newcore_reply_error(reply, 404, "not_found", "no member %s", id);
    } else {
        reply->status = 200;
        newcore_buf_printf(&reply->body, "{\"member_id\":\"%s\",\"points\":%s,"
                           "\"tier\":\"%s\"}", id, PQgetvalue(res, 0, 0),
                           PQgetvalue(res, 0, 1));
    }

    PQclear(res);
}
