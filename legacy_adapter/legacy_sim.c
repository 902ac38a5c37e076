/*
 * legacy: the stand-in legacy store system: set-up, one request's
 * database and idempotency, the dispatch and the reply.  Its business is
 * in legacy_sim_orders.c (sales orders) and legacy_sim_stock.c (stock,
 * members).
 */

#include "legacy_adapter/legacy_sim_internal.h"


static void sim_log(legacy_sim_t *sim, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sim_db_alive(PGconn *db);
static PGconn *sim_db_get(legacy_sim_t *sim, legacy_error_t *err);
static void sim_db_put(legacy_sim_t *sim, PGconn *db);
static int sim_idem_begin(sim_req_t *r, const char *key, const char *route,
    const bson_t *body);
static int sim_idem_finish(sim_req_t *r, const char *key);
static int sim_write(sim_req_t *r, const char *route, const bson_t *body,
    sim_op_fn op);
static void sim_reply(sim_req_t *r, int want_bson, legacy_response_t *resp);


static void
sim_log(legacy_sim_t *sim, int level, const char *fmt, ...)
{
    char     msg[512];
    va_list  ap;

    if (sim->cfg.log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sim->cfg.log(sim->cfg.log_data, level, msg);
}


int
sim_fail(sim_req_t *r, int code, const char *fmt, ...)
{
    va_list  ap;

    r->code = code;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    return code;
}


int
sim_db_fail(sim_req_t *r, legacy_error_t *err)
{
    sim_log(r->sim, LEGACY_LOG_ERR, "database: %s", err->message);
    return sim_fail(r, LEGACY_SIM_BUSY, "系统繁忙 (database error)");
}


/* 1 found (string), 0 missing or null, -1 wrong type. */
int
sim_doc_str(const bson_t *d, const char *key, const char **out)
{
    bson_iter_t  it;
    uint32_t     len;

    if (!bson_iter_init_find(&it, d, key) || BSON_ITER_HOLDS_NULL(&it)) {
        return 0;
    }
    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        return -1;
    }
    *out = bson_iter_utf8(&it, &len);
    if (len == 0 || len > 64 || strlen(*out) != len) {
        return -1;
    }
    return 1;
}


int
sim_doc_int(const bson_t *d, const char *key, int64_t *out)
{
    bson_iter_t  it;

    if (!bson_iter_init_find(&it, d, key) || BSON_ITER_HOLDS_NULL(&it)) {
        return 0;
    }
    if (BSON_ITER_HOLDS_INT32(&it)) {
        *out = bson_iter_int32(&it);
        return 1;
    }
    if (BSON_ITER_HOLDS_INT64(&it)) {
        *out = bson_iter_int64(&it);
        return 1;
    }
    return -1;
}


/*
 * An idle connection owes us nothing: input on it is the server going away
 * (a restart's FATAL, then the close), which libpq learns only when a
 * statement fails.
 */
static int
sim_db_alive(PGconn *db)
{
    struct pollfd  pfd;

    if (PQstatus(db) != CONNECTION_OK) {
        return 0;
    }
    pfd.fd = PQsocket(db);
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) == 0;
}


/*
 * A connection from the pool (a new one while fewer than cfg.connections
 * exist, else the first returned).  One found dead before this request is
 * reconnected once: nothing of the request was sent on it yet.
 */
static PGconn *
sim_db_get(legacy_sim_t *sim, legacy_error_t *err)
{
    PGconn  *db = NULL;
    char    *nl;

    pthread_mutex_lock(&sim->lock);
    while (sim->nidle == 0 && sim->made == sim->cfg.connections) {
        pthread_cond_wait(&sim->returned, &sim->lock);
    }
    if (sim->nidle > 0) {
        db = sim->idle[--sim->nidle];
    } else {
        sim->made++;
    }
    pthread_mutex_unlock(&sim->lock);

    if (db == NULL) {
        db = legacy_db_connect(sim->conninfo, err);
    } else if (!sim_db_alive(db)) {
        PQreset(db);
        if (PQstatus(db) == CONNECTION_OK) {
            sim_log(sim, LEGACY_LOG_INFO, "database connection was lost,"
                    " reconnected");
        } else {
            legacy_error_set(err, LEGACY_E_DB, "reconnect failed: %s",
                             PQerrorMessage(db));
            nl = strchr(err->message, '\n');
            if (nl != NULL) {
                *nl = '\0';
            }
            PQfinish(db);
            db = NULL;
        }
    }
    if (db == NULL) {
        pthread_mutex_lock(&sim->lock);
        sim->made--;
        pthread_cond_signal(&sim->returned);
        pthread_mutex_unlock(&sim->lock);
    }
    return db;
}


/* Back to the pool; one broken or left in a transaction is closed. */
static void
sim_db_put(legacy_sim_t *sim, PGconn *db)
{
    if (db == NULL) {
        return;
    }
    if (PQstatus(db) != CONNECTION_OK
        || PQtransactionStatus(db) != PQTRANS_IDLE)
    {
        PQfinish(db);
        db = NULL;
    }

    pthread_mutex_lock(&sim->lock);
    if (db != NULL) {
        sim->idle[sim->nidle++] = db;
    } else {
        sim->made--;
    }
    pthread_cond_signal(&sim->returned);
    pthread_mutex_unlock(&sim->lock);
}


int
legacy_sim_parse_quirks(const char *list, legacy_sim_config_t *cfg,
    legacy_error_t *err)
{
    char  *copy, *tok, *save = NULL;
    int    rc = LEGACY_OK;

    cfg->points_floor = 0;
    cfg->oversell = 0;
    cfg->cancel_keeps_points = 0;

    copy = strdup(list);
    if (copy == NULL) {
        return legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
    }
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save))
    {
        if (strcmp(tok, "points_floor") == 0) {
            cfg->points_floor = 1;
        } else if (strcmp(tok, "oversell") == 0) {
            cfg->oversell = 1;
        } else if (strcmp(tok, "cancel_keeps_points") == 0) {
            cfg->cancel_keeps_points = 1;
        } else if (strcmp(tok, "none") != 0) {
            rc = legacy_error_set(err, LEGACY_E_CONFIG,
                                  "unknown quirk \"%s\" (points_floor,"
                                  " oversell, cancel_keeps_points)", tok);
            break;
        }
    }
    free(copy);
    return rc;
}


int
legacy_sim_init_schema(const char *conninfo, legacy_error_t *err)
{
    PGconn  *db;
    int      rc;

    db = legacy_db_connect(conninfo, err);
    if (db == NULL) {
        return LEGACY_ERROR;
    }
    rc = legacy_db_script(db, legacy_sim_schema, err);
    PQfinish(db);
    return rc;
}


int
legacy_sim_seed(const char *conninfo, legacy_error_t *err)
{
    static const char  seed[] =
        "BEGIN;\n"
        "TRUNCATE legacy.xsd_mx, legacy.xsd, legacy.qqlsh, legacy.kc,"
        " legacy.md_qd, legacy.md, legacy.sp, legacy.hy;\n"
        "ALTER SEQUENCE legacy.djh_seq RESTART;\n"
        "INSERT INTO legacy.md (mdbh, mdmc)"
        " SELECT 'S' || lpad(s::text, 3, '0'), 'Store ' || lpad(s::text, 3,"
        " '0') FROM generate_series(1, 200) s;\n"
        "INSERT INTO legacy.md_qd (mdbh, qd) SELECT mdbh, q"
        " FROM legacy.md, generate_series(1, 4) q;\n"
        "INSERT INTO legacy.sp (spbm, spmc, lsj_fen)"
        " SELECT 'SKU' || lpad(n::text, 5, '0'), 'Item ' || lpad(n::text, 5,"
        " '0'), 100 + (n * 7919) % 49900 FROM generate_series(1, 2000) n;\n"
        "INSERT INTO legacy.kc (mdbh, spbm, kcsl, ydsl)"
        " SELECT 'S' || lpad(s::text, 3, '0'), 'SKU' || lpad(n::text, 5,"
        " '0'), 20 + (s * 31 + n * 17) % 181, 0"
        " FROM generate_series(1, 200) s, generate_series(1, 2000) n;\n"
        "INSERT INTO legacy.hy (hyh, jf, hydj)"
        " SELECT 'M' || lpad(m::text, 6, '0'), (m * 97) % 5000,"
        " CASE WHEN (m * 97) % 5000 >= 3000 THEN 3"
        " WHEN (m * 97) % 5000 >= 1000 THEN 2 ELSE 1 END"
        " FROM generate_series(1, 10000) m;\n"
        "COMMIT;\n";
    PGconn  *db;
    int      rc;

    db = legacy_db_connect(conninfo, err);
    if (db == NULL) {
        return LEGACY_ERROR;
    }
    rc = legacy_db_script(db, seed, err);
    PQfinish(db);
    return rc;
}


legacy_sim_t *
legacy_sim_new(const legacy_sim_config_t *cfg, legacy_error_t *err)
{
    legacy_sim_t  *sim;

    sim = calloc(1, sizeof(*sim));
    if (sim == NULL) {
        legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
        return NULL;
    }
    sim->cfg = *cfg;
    if (sim->cfg.connections == 0) {
        sim->cfg.connections = SIM_CONNECTIONS;
    }
    sim->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    sim->cfg.conninfo = sim->conninfo;
    sim->idle = calloc(sim->cfg.connections, sizeof(PGconn *));
    if (sim->conninfo == NULL || sim->idle == NULL) {
        free(sim->idle);
        free(sim->conninfo);
        free(sim);
        legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&sim->lock, NULL);
    pthread_cond_init(&sim->returned, NULL);
    return sim;
}


void
legacy_sim_free(legacy_sim_t *sim)
{
    unsigned  i;

    if (sim == NULL) {
        return;
    }
    /* The server is stopped: every connection is back in the pool. */
    for (i = 0; i < sim->nidle; i++) {
        PQfinish(sim->idle[i]);
    }
    pthread_cond_destroy(&sim->returned);
    pthread_mutex_destroy(&sim->lock);
    free(sim->idle);
    free(sim->conninfo);
    free(sim);
}


/*
 * Reserves the serial number in this transaction.  Returns 0 to go on,
 * -1 when the stored first answer was loaded into r->data (a replay), or an
 * envelope code.  A concurrent first use blocks here until it commits.
 */
static int
sim_idem_begin(sim_req_t *r, const char *key, const char *route,
    const bson_t *body)
{
    bson_t           rest;
    legacy_buf_t     digest = { 0 };
    legacy_error_t   err;
    const char      *p[3];
    PGresult        *res;
    int              rc;

    bson_init(&rest);
    bson_copy_to_excluding_noinit(body, &rest, "qqlsh", NULL);
    rc = legacy_json_write(&rest, &digest, &err);
    bson_destroy(&rest);
    if (rc != LEGACY_OK) {
        legacy_buf_free(&digest);
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "请求无效");
    }

    p[0] = key;
    p[1] = route;
    p[2] = digest.data;
    res = legacy_db_exec(r->db, "INSERT INTO legacy.qqlsh (qqlsh, jk, zy)"
                         " VALUES ($1, $2, md5($3)) ON CONFLICT (qqlsh)"
                         " DO NOTHING RETURNING 1", 3, p, PGRES_TUPLES_OK,
                         &err);
    if (res == NULL) {
        legacy_buf_free(&digest);
        return sim_db_fail(r, &err);
    }
    rc = PQntuples(res);
    PQclear(res);
    if (rc == 1) {
        legacy_buf_free(&digest);
        return 0;
    }

    res = legacy_db_exec(r->db, "SELECT jk = $2 AND zy = md5($3), xy"
                         " FROM legacy.qqlsh WHERE qqlsh = $1", 3, p,
                         PGRES_TUPLES_OK, &err);
    legacy_buf_free(&digest);
    if (res == NULL) {
        return sim_db_fail(r, &err);
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)) {
        PQclear(res);
        return sim_fail(r, LEGACY_SIM_SERIAL_BUSY, "流水号 %s 处理中", key);
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        return sim_fail(r, LEGACY_SIM_SERIAL_CLASH,
                        "流水号 %s 已用于其他请求", key);
    }
    rc = legacy_json_parse_object(PQgetvalue(res, 0, 1),
                                  PQgetlength(res, 0, 1), &r->data, &err);
    PQclear(res);
    r->has_data = 1;
    if (rc != LEGACY_OK) {
        return sim_fail(r, LEGACY_SIM_BUSY, "流水号记录损坏");
    }
    return -1;
}


static int
sim_idem_finish(sim_req_t *r, const char *key)
{
    legacy_buf_t     json = { 0 };
    legacy_error_t   err;
    const char      *p[2];
    int              rc;

    if (legacy_json_write(&r->data, &json, &err) != LEGACY_OK) {
        legacy_buf_free(&json);
        return sim_fail(r, LEGACY_SIM_BUSY, "应答无法保存");
    }
    p[0] = key;
    p[1] = json.data;
    rc = legacy_db_command(r->db, "UPDATE legacy.qqlsh SET xy = $2"
                           " WHERE qqlsh = $1", 2, p, &err);
    legacy_buf_free(&json);
    if (rc != LEGACY_OK) {
        return sim_db_fail(r, &err);
    }
    return LEGACY_SIM_OK;
}


static int
sim_write(sim_req_t *r, const char *route, const bson_t *body, sim_op_fn op)
{
    const char      *key = NULL;
    legacy_error_t   err;
    int              rc;

    if (sim_doc_str(body, "qqlsh", &key) < 0) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "qqlsh 无效");
    }
    if (legacy_db_command(r->db, "BEGIN", 0, NULL, &err) != LEGACY_OK) {
        return sim_db_fail(r, &err);
    }

    rc = key ? sim_idem_begin(r, key, route, body) : 0;
    if (rc == 0) {
        rc = op(r, body);
        if (rc == LEGACY_SIM_OK && key != NULL) {
            rc = sim_idem_finish(r, key);
        }
    }

    if (rc == LEGACY_SIM_OK || rc == -1) {
        if (legacy_db_command(r->db, "COMMIT", 0, NULL, &err) != LEGACY_OK) {
            return sim_db_fail(r, &err);
        }
        if (rc == -1) {
            sim_log(r->sim, LEGACY_LOG_INFO, "%s qqlsh=%s replayed", route,
                    key);
        }
        return LEGACY_SIM_OK;
    }
    legacy_db_command(r->db, "ROLLBACK", 0, NULL, &err);
    return rc;
}


static void
sim_reply(sim_req_t *r, int want_bson, legacy_response_t *resp)
{
    bson_t          env;
    legacy_buf_t    out = { 0 };
    legacy_error_t  err;
    uint8_t        *bytes;
    size_t          len;

    bson_init(&env);
    BSON_APPEND_INT32(&env, "code", r->code);
    BSON_APPEND_UTF8(&env, "msg", r->code ? r->msg : "成功");
    if (r->code == 0 && r->has_data) {
        BSON_APPEND_DOCUMENT(&env, "data", &r->data);
    } else {
        BSON_APPEND_NULL(&env, "data");
    }

    resp->status = 200;
    if (want_bson) {
        len = env.len;
        bytes = malloc(len);
        if (bytes != NULL) {
            memcpy(bytes, bson_get_data(&env), len);
        }
        bson_destroy(&env);
        resp->body = (char *) bytes;
        resp->body_len = bytes ? len : 0;
        resp->content_type = "application/bson";
        return;
    }

    if (legacy_json_write(&env, &out, &err) != LEGACY_OK) {
        resp->status = 500;
    }
    bson_destroy(&env);
    resp->body = out.data;
    resp->body_len = out.len;
    resp->content_type = "application/json; charset=utf-8";
}


void
legacy_sim_handle(void *data, const legacy_request_t *req,
    legacy_response_t *resp)
{
    legacy_sim_t    *sim = data;
    sim_req_t        r;
    bson_t           body;
    legacy_error_t   err;
    const char      *ct, *accept, *path = req->path;
    int              want_bson;

    memset(&r, 0, sizeof(r));
    r.sim = sim;
    ct = legacy_request_header(req, "Content-Type");
    accept = legacy_request_header(req, "Accept");
    want_bson = (ct && strncasecmp(ct, "application/bson", 16) == 0)
                || (accept && strstr(accept, "application/bson"));

    if (sim->cfg.delay_ms > 0) {
        usleep((useconds_t) sim->cfg.delay_ms * 1000);
    }

    if (strcmp(path, "/lsapi/health") == 0) {
        sim_reply(&r, want_bson, resp);
        return;
    }
    if (strncmp(path, "/lsapi/", 7) != 0 || strcmp(req->method, "POST") != 0)
    {
        resp->status = 404;
        resp->content_type = "text/plain";
        resp->body = strdup("not found\n");
        resp->body_len = resp->body ? strlen(resp->body) : 0;
        return;
    }

    if (legacy_body_parse(ct, (const uint8_t *) req->body, req->body_len,
                          &body, &err)
        != LEGACY_OK)
    {
        bson_destroy(&body);
        sim_fail(&r, LEGACY_SIM_BAD_PARAM, "报文无效: %s", err.message);
        sim_reply(&r, want_bson, resp);
        return;
    }

    r.db = sim_db_get(sim, &err);
    if (r.db == NULL) {
        sim_db_fail(&r, &err);

    } else if (strcmp(path, "/lsapi/xsd/create") == 0) {
        sim_write(&r, "xsd/create", &body, sim_create_order);
    } else if (strcmp(path, "/lsapi/xsd/cancel") == 0) {
        sim_write(&r, "xsd/cancel", &body, sim_cancel_order);
    } else if (strcmp(path, "/lsapi/kc/adjust") == 0) {
        sim_write(&r, "kc/adjust", &body, sim_adjust_stock);
    } else if (strcmp(path, "/lsapi/xsd/query") == 0) {
        sim_query_order(&r, &body);
    } else if (strcmp(path, "/lsapi/kc/query") == 0) {
        sim_query_stock(&r, &body);
    } else if (strcmp(path, "/lsapi/hy/query") == 0) {
        sim_query_member(&r, &body);
    } else {
        sim_fail(&r, LEGACY_SIM_BAD_PARAM, "未知接口 %s", path);
    }

    sim_db_put(sim, r.db);

    if (r.code != 0 && r.has_data) {
        bson_destroy(&r.data);
        r.has_data = 0;
    }
    sim_reply(&r, want_bson, resp);
    if (r.code != 0) {
        sim_log(sim, LEGACY_LOG_INFO, "%s code=%d %s", path, r.code, r.msg);
    }
    if (r.has_data) {
        bson_destroy(&r.data);
    }
    bson_destroy(&body);
}
