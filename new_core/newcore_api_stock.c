/*
 * The core's stock (read, adjusted) and members (read).
 */

#include "new_core/newcore_api_int.h"


void
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


void
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


void
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
