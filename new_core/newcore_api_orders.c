/*
 * The core's orders: created (quoted, priced, placed under the
 * idempotency key), read and cancelled.
 */

#include "new_core/newcore_api_int.h"


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


void
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


void
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


void
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
