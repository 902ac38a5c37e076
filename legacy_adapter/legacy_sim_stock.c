/*
 * legacy: the stand-in's stock (query, adjust) and members.
 */

#include "legacy_adapter/legacy_sim_internal.h"


static int sim_stock_answer(sim_req_t *r, PGresult *res, const char *mdbh,
    const char *spbm);


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


int
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


int
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


int
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
