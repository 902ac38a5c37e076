/*
 * legacy: the stand-in's sales orders: read, priced, created (stock
 * taken, points earned), queried and cancelled.
 */

#include "legacy_adapter/legacy_sim_internal.h"


static int sim_load_order(sim_req_t *r, const char *djh);
static int sim_line_cmp(const void *a, const void *b);
static int sim_read_lines(sim_req_t *r, const bson_t *body, sim_line_t *lines,
    size_t *n);
static int sim_read_order(sim_req_t *r, const bson_t *body, sim_order_t *o);
static int sim_count(sim_req_t *r, const char *sql, int nparams,
    const char **p);
static int sim_price_order(sim_req_t *r, sim_order_t *o);
static int sim_insert_order(sim_req_t *r, sim_order_t *o);
static int sim_take_stock(sim_req_t *r, sim_order_t *o);
static int sim_member_points(sim_req_t *r, const char *hyh, int64_t delta);


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


int
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


int
sim_query_order(sim_req_t *r, const bson_t *body)
{
    const char  *djh;

    if (sim_doc_str(body, "djh", &djh) != 1) {
        return sim_fail(r, LEGACY_SIM_BAD_PARAM, "djh 必填");
    }
    return sim_load_order(r, djh);
}


int
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
