/* legacy: the stand-in legacy store system's business and its quirks. */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bson/bson.h>

#include "legacy_adapter/legacy_convert.h"
#include "legacy_adapter/legacy_db.h"
#include "legacy_adapter/legacy_json.h"
#include "legacy_adapter/legacy_sim.h"

#define SIM_LINES_MAX  100
#define SIM_QTY_MAX    100000

struct legacy_sim_s {
    legacy_sim_config_t  cfg;
    char                *conninfo;
    pthread_key_t        db_key;
};

/* One request in flight. */
typedef struct {
    legacy_sim_t    *sim;
    PGconn          *db;
    int              code;
    char             msg[200];
    bson_t           data;
    int              has_data;
} sim_req_t;

typedef struct {
    const char  *spbm;
    int64_t      sl;
    int64_t      dj;
    int          has_dj;
    int64_t      je;
} sim_line_t;

typedef int (*sim_op_fn)(sim_req_t *r, const bson_t *body);

/* A sales order being created. */
typedef struct {
    const char   *mdbh;
    const char   *hyh;
    const char   *djh;
    int64_t       qd;
    int64_t       zffs;
    int64_t       zf_je;
    int64_t       total;
    int64_t       points;
    sim_line_t    lines[SIM_LINES_MAX];
    size_t        n;
    char          djh_buf[64];
} sim_order_t;


static int sim_fail(sim_req_t *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sim_db_fail(sim_req_t *r, legacy_error_t *err);
static int sim_doc_str(const bson_t *d, const char *key, const char **out);
static int sim_doc_int(const bson_t *d, const char *key, int64_t *out);
static PGconn *sim_db(legacy_sim_t *sim, legacy_error_t *err);
static int sim_load_order(sim_req_t *r, const char *djh);
static void sim_db_destroy(void *p);
static int sim_line_cmp(const void *a, const void *b);
static int sim_read_lines(sim_req_t *r, const bson_t *body,
    sim_line_t *lines, size_t *n);
static int sim_read_order(sim_req_t *r, const bson_t *body, sim_order_t *o);
static int sim_count(sim_req_t *r, const char *sql, int nparams,
    const char **p);
static int sim_price_order(sim_req_t *r, sim_order_t *o);
static int sim_insert_order(sim_req_t *r, sim_order_t *o);
static int sim_take_stock(sim_req_t *r, sim_order_t *o);
static int sim_member_points(sim_req_t *r, const char *hyh, int64_t delta);
static int sim_stock_answer(sim_req_t *r, PGresult *res, const char *mdbh,
    const char *spbm);
static int sim_create_order(sim_req_t *r, const bson_t *body);
static int sim_query_order(sim_req_t *r, const bson_t *body);
static int sim_cancel_order(sim_req_t *r, const bson_t *body);
static int sim_query_stock(sim_req_t *r, const bson_t *body);
static int sim_adjust_stock(sim_req_t *r, const bson_t *body);
static int sim_query_member(sim_req_t *r, const bson_t *body);
static int sim_write(sim_req_t *r, const char *route, const bson_t *body,
    sim_op_fn op);
static int sim_idem_begin(sim_req_t *r, const char *key, const char *route,
    const bson_t *body);
static int sim_idem_finish(sim_req_t *r, const char *key);
static void sim_reply(sim_req_t *r, int want_bson, legacy_response_t *resp);
static void sim_log(legacy_sim_t *sim, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


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


static int
sim_fail(sim_req_t *r, int code, const char *fmt, ...)
{
    va_list  ap;

    r->code = code;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    return code;
}


static int
sim_db_fail(sim_req_t *r, legacy_error_t *err)
{
    sim_log(r->sim, LEGACY_LOG_ERR, "database: %s", err->message);
    return sim_fail(r, LEGACY_SIM_BUSY, "系统繁忙 (database error)");
}


/* 1 found (string), 0 missing or null, -1 wrong type. */
static int
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


static int
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


static void
sim_db_destroy(void *p)
{
    PQfinish(p);
}


static PGconn *
sim_db(legacy_sim_t *sim, legacy_error_t *err)
{
    PGconn  *db = pthread_getspecific(sim->db_key);

    if (db != NULL && PQstatus(db) == CONNECTION_OK) {
        return db;
    }
    if (db != NULL) {
        PQreset(db);
        if (PQstatus(db) == CONNECTION_OK) {
            return db;
        }
        legacy_error_set(err, LEGACY_E_DB, "reconnect failed");
        return NULL;
    }
    db = legacy_db_connect(sim->conninfo, err);
    if (db != NULL) {
        pthread_setspecific(sim->db_key, db);
    }
    return db;
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
    sim->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    sim->cfg.conninfo = sim->conninfo;
    if (sim->conninfo == NULL
        || pthread_key_create(&sim->db_key, sim_db_destroy) != 0)
    {
        free(sim->conninfo);
        free(sim);
        legacy_error_set(err, LEGACY_E_INTERNAL, "out of resources");
        return NULL;
    }
    return sim;
}


void
legacy_sim_free(legacy_sim_t *sim)
{
    PGconn  *db;

    if (sim == NULL) {
        return;
    }
    /* The server's threads are gone; this thread may hold one too. */
    db = pthread_getspecific(sim->db_key);
    PQfinish(db);
    pthread_key_delete(sim->db_key);
    free(sim->conninfo);
    free(sim);
}


static int
sim_load_order(sim_req_t *r, const char *djh)
{
    static const char  q_order[] =
        "SELECT djh, mdbh, qd, hyh, zt, zje_fen, jf,"
        " extract(epoch FROM cjsj)::bigint FROM legacy.xsd WHERE djh = $1";
    static const char  q_lines[] =
        "SELECT spbm, sl, dj_fen, je_fen FROM legacy.xsd_mx"
        " WHERE djh = $1 ORDER BY hh";
    const char        *params[1] = { djh };
    legacy_error_t     err;
    PGresult          *o, *l;
    bson_t             mx, line;
    char               key[16], when[LEGACY_TIME_LEN];
    int                i;

    o = legacy_db_exec(r->db, q_order, 1, params, PGRES_TUPLES_OK, &err);
    if (o == NULL) {
        return sim_db_fail(r, &err);
    }
    if (PQntuples(o) == 0) {
        PQclear(o);
        return sim_fail(r, LEGACY_SIM_NO_RECORD, "单据 %s 不存在", djh);
    }
    l = legacy_db_exec(r->db, q_lines, 1, params, PGRES_TUPLES_OK, &err);
    if (l == NULL) {
        PQclear(o);
        return sim_db_fail(r, &err);
    }

    bson_init(&r->data);
    r->has_data = 1;
    BSON_APPEND_UTF8(&r->data, "djh", PQgetvalue(o, 0, 0));
    BSON_APPEND_UTF8(&r->data, "mdbh", PQgetvalue(o, 0, 1));
    BSON_APPEND_INT32(&r->data, "qd", atoi(PQgetvalue(o, 0, 2)));
    if (PQgetisnull(o, 0, 3)) {
        BSON_APPEND_NULL(&r->data, "hyh");
    } else {
        BSON_APPEND_UTF8(&r->data, "hyh", PQgetvalue(o, 0, 3));
    }
    BSON_APPEND_INT32(&r->data, "zt", atoi(PQgetvalue(o, 0, 4)));
    BSON_APPEND_ARRAY_BEGIN(&r->data, "mx", &mx);
    for (i = 0; i < PQntuples(l); i++) {
        snprintf(key, sizeof(key), "%d", i);
        BSON_APPEND_DOCUMENT_BEGIN(&mx, key, &line);
        BSON_APPEND_UTF8(&line, "spbm", PQgetvalue(l, i, 0));
        BSON_APPEND_INT32(&line, "sl", atoi(PQgetvalue(l, i, 1)));
        BSON_APPEND_INT64(&line, "dj_fen", atoll(PQgetvalue(l, i, 2)));
        BSON_APPEND_INT64(&line, "je_fen", atoll(PQgetvalue(l, i, 3)));
        bson_append_document_end(&mx, &line);
    }
    bson_append_array_end(&r->data, &mx);
    BSON_APPEND_INT64(&r->data, "zje_fen", atoll(PQgetvalue(o, 0, 5)));
    BSON_APPEND_INT32(&r->data, "jf", atoi(PQgetvalue(o, 0, 6)));
    legacy_time_from_unix((time_t) atoll(PQgetvalue(o, 0, 7)),
                          r->sim->cfg.time_offset_min, when);
    BSON_APPEND_UTF8(&r->data, "cjsj", when);

    PQclear(o);
    PQclear(l);
    return LEGACY_SIM_OK;
}


static int
sim_line_cmp(const void *a, const void *b)
{
    return strcmp(((const sim_line_t *) a)->spbm,
                  ((const sim_line_t *) b)->spbm);
}


/* Reads mx[] into lines; returns 0 or an envelope code. */
static int
sim_read_lines(sim_req_t *r, const bson_t *body, sim_line_t *lines,
    size_t *n)
{
    bson_iter_t     it, arr;
    bson_t          line;
    const uint8_t  *data;
    uint32_t        len;
    int             has;

    if (!bson_iter_init_find(&it, body, "mx") || !BSON_ITER_HOLDS_ARRAY(&it))
    {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "mx 必须为数组");
    }
    bson_iter_recurse(&it, &arr);
    for (*n = 0; bson_iter_next(&arr); (*n)++) {
        if (*n == SIM_LINES_MAX || !BSON_ITER_HOLDS_DOCUMENT(&arr)) {
            return sim_fail(r, LEGACY_SIM_BAD_PARAM, "mx 明细无效");
        }
        bson_iter_document(&arr, &len, &data);
        bson_init_static(&line, data, len);
        if (sim_doc_str(&line, "spbm", &lines[*n].spbm) != 1
            || sim_doc_int(&line, "sl", &lines[*n].sl) != 1
            || lines[*n].sl < 1 || lines[*n].sl > SIM_QTY_MAX)
        {
            return sim_fail(r, LEGACY_SIM_BAD_PARAM,
                            "mx[%zu]: spbm/sl 无效", *n);
        }
        has = sim_doc_int(&line, "dj_fen", &lines[*n].dj);
        if (has < 0 || (has && (lines[*n].dj < 0
                                || lines[*n].dj > LEGACY_FEN_MAX / 1000)))
        {
            return sim_fail(r, LEGACY_SIM_BAD_PARAM,
                            "mx[%zu]: dj_fen 无效", *n);
        }
        lines[*n].has_dj = has;
    }
    if (*n == 0) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "mx 不能为空");
    }
    return LEGACY_SIM_OK;
}


static int
sim_read_order(sim_req_t *r, const bson_t *body, sim_order_t *o)
{
    bson_iter_t     it;
    bson_t          zf;
    const uint8_t  *data;
    uint32_t        len;
    int             rc;

    o->zf_je = -1;
    if (sim_doc_str(body, "mdbh", &o->mdbh) != 1
        || sim_doc_int(body, "qd", &o->qd) != 1
        || sim_doc_str(body, "hyh", &o->hyh) < 0
        || sim_doc_str(body, "djh", &o->djh) < 0)
    {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "mdbh/qd/hyh/djh 无效");
    }
    rc = sim_read_lines(r, body, o->lines, &o->n);
    if (rc != LEGACY_SIM_OK) {
        return rc;
    }
    if (!bson_iter_init_find(&it, body, "zf") || BSON_ITER_HOLDS_NULL(&it)) {
        return LEGACY_SIM_OK;
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "zf 无效");
    }
    bson_iter_document(&it, &len, &data);
    bson_init_static(&zf, data, len);
    if (sim_doc_int(&zf, "zffs", &o->zffs) != 1 || o->zffs < 1
        || o->zffs > 3 || sim_doc_int(&zf, "je_fen", &o->zf_je) < 0)
    {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "zf 支付方式无效");
    }
    return LEGACY_SIM_OK;
}


/* Number of rows a statement returns; -1 (reply made) on failure. */
static int
sim_count(sim_req_t *r, const char *sql, int nparams, const char **p)
{
    legacy_error_t   err;
    PGresult        *res;
    int              n;

    res = legacy_db_exec(r->db, sql, nparams, p, PGRES_TUPLES_OK, &err);
    if (res == NULL) {
        sim_db_fail(r, &err);
        return -1;
    }
    n = PQntuples(res);
    PQclear(res);
    return n;
}


/* The store, its channel and the member exist; prices and the total. */
static int
sim_price_order(sim_req_t *r, sim_order_t *o)
{
    const char      *p[2];
    char             qd[32];
    legacy_error_t   err;
    PGresult        *res;
    size_t           i;
    int              n;

    snprintf(qd, sizeof(qd), "%lld", (long long) o->qd);
    p[0] = o->mdbh;
    p[1] = qd;
    n = sim_count(r, "SELECT 1 FROM legacy.md WHERE mdbh = $1", 1, p);
    if (n <= 0) {
        return n < 0 ? r->code : sim_fail(r, LEGACY_SIM_NO_RECORD,
                                          "门店 %s 不存在", o->mdbh);
    }
    n = sim_count(r, "SELECT 1 FROM legacy.md_qd WHERE mdbh = $1"
                  " AND qd = $2::int", 2, p);
    if (n <= 0) {
        return n < 0 ? r->code : sim_fail(r, LEGACY_SIM_BAD_REFERENCE,
                                          "门店 %s 不经营渠道 %lld", o->mdbh,
                                          (long long) o->qd);
    }
    if (o->hyh != NULL) {
        p[0] = o->hyh;
        n = sim_count(r, "SELECT 1 FROM legacy.hy WHERE hyh = $1", 1, p);
        if (n <= 0) {
            return n < 0 ? r->code : sim_fail(r, LEGACY_SIM_NO_RECORD,
                                              "会员 %s 不存在", o->hyh);
        }
    }

    for (i = 0; i < o->n; i++) {
        p[0] = o->lines[i].spbm;
        res = legacy_db_exec(r->db, "SELECT lsj_fen FROM legacy.sp"
                             " WHERE spbm = $1", 1, p, PGRES_TUPLES_OK,
                             &err);
        if (res == NULL) {
            return sim_db_fail(r, &err);
        }
        if (PQntuples(res) == 0) {
            PQclear(res);
            return sim_fail(r, LEGACY_SIM_NO_RECORD, "商品 %s 不存在",
                            o->lines[i].spbm);
        }
        if (!o->lines[i].has_dj) {
            o->lines[i].dj = atoll(PQgetvalue(res, 0, 0));
        }
        PQclear(res);
        o->lines[i].je = o->lines[i].dj * o->lines[i].sl;
        o->total += o->lines[i].je;
    }

    if (o->zf_je >= 0 && o->zf_je != o->total) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM,
                        "支付金额 %lld 与订单金额 %lld 不符",
                        (long long) o->zf_je, (long long) o->total);
    }

    /* Quirk points_floor: the old system truncates, the new core rounds. */
    if (o->hyh != NULL) {
        o->points = r->sim->cfg.points_floor ? o->total / 100
                                             : (o->total + 50) / 100;
    }
    return LEGACY_SIM_OK;
}


/* The order head and its lines; a taken order number is code 3001. */
static int
sim_insert_order(sim_req_t *r, sim_order_t *o)
{
    const char      *p[7];
    char             s1[32], s2[32], s3[32], s4[32];
    legacy_error_t   err;
    PGresult        *res;
    size_t           i;
    int              n;

    if (o->djh == NULL) {
        res = legacy_db_exec(r->db, "SELECT 'LS' || lpad(nextval("
                             "'legacy.djh_seq')::text, 10, '0')", 0, NULL,
                             PGRES_TUPLES_OK, &err);
        if (res == NULL) {
            return sim_db_fail(r, &err);
        }
        snprintf(o->djh_buf, sizeof(o->djh_buf), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        o->djh = o->djh_buf;
    }

    snprintf(s1, sizeof(s1), "%lld", (long long) o->qd);
    snprintf(s2, sizeof(s2), "%lld", (long long) o->total);
    snprintf(s3, sizeof(s3), "%lld", (long long) o->points);
    snprintf(s4, sizeof(s4), "%lld", (long long) o->zffs);
    p[0] = o->djh;
    p[1] = o->mdbh;
    p[2] = s1;
    p[3] = o->hyh;
    p[4] = s2;
    p[5] = s3;
    p[6] = o->zffs ? s4 : NULL;
    n = sim_count(r, "INSERT INTO legacy.xsd (djh, mdbh, qd, hyh, zt,"
                  " zje_fen, jf, zffs) VALUES ($1, $2, $3::int, $4, 1,"
                  " $5::bigint, $6::int, $7::int) ON CONFLICT (djh)"
                  " DO NOTHING RETURNING djh", 7, p);
    if (n <= 0) {
        return n < 0 ? r->code : sim_fail(r, LEGACY_SIM_DUP_ORDER,
                                          "单号 %s 重复", o->djh);
    }

    for (i = 0; i < o->n; i++) {
        snprintf(s1, sizeof(s1), "%zu", i + 1);
        snprintf(s2, sizeof(s2), "%lld", (long long) o->lines[i].sl);
        snprintf(s3, sizeof(s3), "%lld", (long long) o->lines[i].dj);
        snprintf(s4, sizeof(s4), "%lld", (long long) o->lines[i].je);
        p[0] = o->djh;
        p[1] = s1;
        p[2] = o->lines[i].spbm;
        p[3] = s2;
        p[4] = s3;
        p[5] = s4;
        if (legacy_db_command(r->db, "INSERT INTO legacy.xsd_mx (djh, hh,"
                              " spbm, sl, dj_fen, je_fen) VALUES ($1,"
                              " $2::int, $3, $4::int, $5::bigint,"
                              " $6::bigint)", 6, p, &err) != LEGACY_OK)
        {
            return sim_db_fail(r, &err);
        }
    }
    return LEGACY_SIM_OK;
}


/* Takes the stock, in SKU order so concurrent sales lock rows alike. */
static int
sim_take_stock(sim_req_t *r, sim_order_t *o)
{
    const char  *p[4];
    char         sl[32];
    size_t       i;
    int          n;

    qsort(o->lines, o->n, sizeof(sim_line_t), sim_line_cmp);
    for (i = 0; i < o->n; i++) {
        snprintf(sl, sizeof(sl), "%lld", (long long) o->lines[i].sl);
        p[0] = o->mdbh;
        p[1] = o->lines[i].spbm;
        p[2] = sl;
        /* Quirk oversell: the old system sells what it does not have. */
        p[3] = r->sim->cfg.oversell ? "true" : "false";
        n = sim_count(r, "UPDATE legacy.kc SET kcsl = kcsl - $3::int"
                      " WHERE mdbh = $1 AND spbm = $2 AND ($4::boolean"
                      " OR kcsl - ydsl >= $3::int) RETURNING kcsl", 4, p);
        if (n <= 0) {
            return n < 0 ? r->code : sim_fail(r, LEGACY_SIM_NO_STOCK,
                                              "商品 %s 库存不足",
                                              o->lines[i].spbm);
        }
    }
    return LEGACY_SIM_OK;
}


/* Adds (or with a negative delta takes back) points; the tier follows. */
static int
sim_member_points(sim_req_t *r, const char *hyh, int64_t delta)
{
    const char      *p[2];
    char             d[32];
    legacy_error_t   err;

    snprintf(d, sizeof(d), "%lld", (long long) delta);
    p[0] = hyh;
    p[1] = d;
    if (legacy_db_command(r->db, "UPDATE legacy.hy SET jf = jf + $2::int,"
                          " hydj = CASE WHEN jf + $2::int >= 3000 THEN 3"
                          " WHEN jf + $2::int >= 1000 THEN 2 ELSE 1 END"
                          " WHERE hyh = $1", 2, p, &err) != LEGACY_OK)
    {
        return sim_db_fail(r, &err);
    }
    return LEGACY_SIM_OK;
}


static int
sim_create_order(sim_req_t *r, const bson_t *body)
{
    sim_order_t  *o;
    int           rc;

    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return sim_fail(r, LEGACY_SIM_BUSY, "系统繁忙 (out of memory)");
    }
    rc = sim_read_order(r, body, o);
    if (rc == LEGACY_SIM_OK) {
        rc = sim_price_order(r, o);
    }
    if (rc == LEGACY_SIM_OK) {
        rc = sim_insert_order(r, o);
    }
    if (rc == LEGACY_SIM_OK) {
        rc = sim_take_stock(r, o);
    }
    if (rc == LEGACY_SIM_OK && o->hyh != NULL) {
        rc = sim_member_points(r, o->hyh, o->points);
    }
    if (rc == LEGACY_SIM_OK) {
        rc = sim_load_order(r, o->djh);
    }
    free(o);
    return rc;
}


static int
sim_query_order(sim_req_t *r, const bson_t *body)
{
    const char  *djh;

    if (sim_doc_str(body, "djh", &djh) != 1) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "djh 必填");
    }
    return sim_load_order(r, djh);
}


static int
sim_cancel_order(sim_req_t *r, const bson_t *body)
{
    const char      *djh, *p[2];
    char             hyh[80], mdbh[80], jf[32];
    int              zt, has_member;
    PGresult        *res;
    legacy_error_t   err;

    if (sim_doc_str(body, "djh", &djh) != 1) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "djh 必填");
    }
    p[0] = djh;
    res = legacy_db_exec(r->db, "SELECT zt, hyh, jf, mdbh FROM legacy.xsd"
                         " WHERE djh = $1 FOR UPDATE", 1, p,
                         PGRES_TUPLES_OK, &err);
    if (res == NULL) {
        return sim_db_fail(r, &err);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return sim_fail(r, LEGACY_SIM_NO_RECORD, "单据 %s 不存在", djh);
    }
    zt = atoi(PQgetvalue(res, 0, 0));
    has_member = !PQgetisnull(res, 0, 1);
    snprintf(hyh, sizeof(hyh), "%s", PQgetvalue(res, 0, 1));
    snprintf(jf, sizeof(jf), "%s", PQgetvalue(res, 0, 2));
    snprintf(mdbh, sizeof(mdbh), "%s", PQgetvalue(res, 0, 3));
    PQclear(res);
    if (zt == 2) {
        /* Already void: nothing changes, the order is answered as it is. */
        return sim_load_order(r, djh);
    }

    p[1] = mdbh;
    if (legacy_db_command(r->db, "UPDATE legacy.kc k SET kcsl = k.kcsl + m.sl"
                          " FROM (SELECT spbm, sum(sl)::int AS sl FROM"
                          " legacy.xsd_mx WHERE djh = $1 GROUP BY spbm) m"
                          " WHERE k.mdbh = $2 AND k.spbm = m.spbm", 2, p,
                          &err) != LEGACY_OK)
    {
        return sim_db_fail(r, &err);
    }

    /* Quirk cancel_keeps_points: the old system forgets to take back. */
    if (has_member && !r->sim->cfg.cancel_keeps_points
        && sim_member_points(r, hyh, -atoll(jf)) != LEGACY_SIM_OK)
    {
        return r->code;
    }

    p[0] = djh;
    if (legacy_db_command(r->db, "UPDATE legacy.xsd SET zt = 2, qxsj = now()"
                          " WHERE djh = $1", 1, p, &err) != LEGACY_OK)
    {
        return sim_db_fail(r, &err);
    }
    return sim_load_order(r, djh);
}


static int
sim_stock_answer(sim_req_t *r, PGresult *res, const char *mdbh,
    const char *spbm)
{
    int64_t  kcsl, ydsl;

    if (PQntuples(res) == 0) {
        PQclear(res);
        return sim_fail(r, LEGACY_SIM_NO_RECORD, "门店 %s 商品 %s 无库存记录",
                        mdbh, spbm);
    }
    kcsl = atoll(PQgetvalue(res, 0, 0));
    ydsl = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);

    bson_init(&r->data);
    r->has_data = 1;
    BSON_APPEND_UTF8(&r->data, "mdbh", mdbh);
    BSON_APPEND_UTF8(&r->data, "spbm", spbm);
    BSON_APPEND_INT32(&r->data, "kcsl", (int32_t) kcsl);
    BSON_APPEND_INT32(&r->data, "ydsl", (int32_t) ydsl);
    BSON_APPEND_INT32(&r->data, "kysl", (int32_t) (kcsl - ydsl));
    return LEGACY_SIM_OK;
}


static int
sim_query_stock(sim_req_t *r, const bson_t *body)
{
    const char      *p[2];
    PGresult        *res;
    legacy_error_t   err;

    if (sim_doc_str(body, "mdbh", &p[0]) != 1
        || sim_doc_str(body, "spbm", &p[1]) != 1)
    {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "mdbh/spbm 必填");
    }
    res = legacy_db_exec(r->db, "SELECT kcsl, ydsl FROM legacy.kc"
                         " WHERE mdbh = $1 AND spbm = $2", 2, p,
                         PGRES_TUPLES_OK, &err);
    if (res == NULL) {
        return sim_db_fail(r, &err);
    }
    return sim_stock_answer(r, res, p[0], p[1]);
}


static int
sim_adjust_stock(sim_req_t *r, const bson_t *body)
{
    const char      *p[3];
    char             s[32];
    int64_t          tzsl, tzyy;
    PGresult        *res;
    legacy_error_t   err;

    if (sim_doc_str(body, "mdbh", &p[0]) != 1
        || sim_doc_str(body, "spbm", &p[1]) != 1
        || sim_doc_int(body, "tzsl", &tzsl) != 1
        || tzsl == 0 || tzsl < -SIM_QTY_MAX * 10 || tzsl > SIM_QTY_MAX * 10
        || sim_doc_int(body, "tzyy", &tzyy) != 1 || tzyy < 1 || tzyy > 3)
    {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "mdbh/spbm/tzsl/tzyy 无效");
    }
    snprintf(s, sizeof(s), "%lld", (long long) tzsl);
    p[2] = s;
    res = legacy_db_exec(r->db, "UPDATE legacy.kc SET kcsl = kcsl + $3::int"
                         " WHERE mdbh = $1 AND spbm = $2"
                         " RETURNING kcsl, ydsl", 3, p, PGRES_TUPLES_OK,
                         &err);
    if (res == NULL) {
        return sim_db_fail(r, &err);
    }
    if (PQntuples(res) == 1 && tzsl < 0
        && atoll(PQgetvalue(res, 0, 0)) < atoll(PQgetvalue(res, 0, 1)))
    {
        PQclear(res);
        return sim_fail(r, LEGACY_SIM_NO_STOCK, "商品 %s 调整后库存不足",
                        p[1]);
    }
    return sim_stock_answer(r, res, p[0], p[1]);
}


static int
sim_query_member(sim_req_t *r, const bson_t *body)
{
    const char      *p[1];
    PGresult        *res;
    legacy_error_t   err;

    if (sim_doc_str(body, "hyh", &p[0]) != 1) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "hyh 必填");
    }
    res = legacy_db_exec(r->db, "SELECT jf, hydj FROM legacy.hy"
                         " WHERE hyh = $1", 1, p, PGRES_TUPLES_OK, &err);
    if (res == NULL) {
        return sim_db_fail(r, &err);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return sim_fail(r, LEGACY_SIM_NO_RECORD, "会员 %s 不存在", p[0]);
    }
    bson_init(&r->data);
    r->has_data = 1;
    BSON_APPEND_UTF8(&r->data, "hyh", p[0]);
    BSON_APPEND_INT32(&r->data, "jf", atoi(PQgetvalue(res, 0, 0)));
    BSON_APPEND_INT32(&r->data, "hydj", atoi(PQgetvalue(res, 0, 1)));
    PQclear(res);
    return LEGACY_SIM_OK;
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

    r.db = sim_db(sim, &err);
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
