/* Unit tests of the new core's library: money, points, validation, routing
 * and the JSON front end over the JSONTestSuite corpus. */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "tests/unit/corpus.h"
#include "new_core/newcore_api.h"
#include "new_core/newcore_buf.h"
#include "new_core/newcore_db.h"
#include "new_core/newcore_http.h"
#include "new_core/newcore_money.h"
#include "new_core/newcore_order.h"

#define ORDER_OK \
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"member_id\":\"M000123\"," \
    "\"lines\":[{\"sku\":\"SKU00042\",\"qty\":2,\"unit_price\":\"129.00\"}," \
    "{\"sku\":\"SKU00007\",\"qty\":1}]," \
    "\"payment\":{\"method\":\"cash\"}}"


/* --- money ------------------------------------------------------------- */

static const struct {
    const char  *in;
    int64_t      fen;
} money_good[] = {
    { "0", 0 },
    { "12", 1200 },
    { "12.5", 1250 },
    { "12.50", 1250 },
    { "12.05", 1205 },
    { "0.01", 1 },
    { "499.99", 49999 },
    { "99999999999.99", INT64_C(9999999999999) },
    { "007.10", 710 },
};

static const char  *money_bad[] = {
    "", ".", "1.", ".5", "1.005", "1.000", "-1", "+1", "1e2", " 1", "1 ",
    "1,00", "abc", "12.5x", "999999999999", "0x10", "1..2", "NaN", "1.-1",
};


START_TEST(test_money_parse_good)
{
    int64_t  fen = -1;

    ck_assert_int_eq(newcore_money_parse(money_good[_i].in,
                                         strlen(money_good[_i].in), &fen),
                     NEWCORE_OK);
    ck_assert_int_eq(fen, money_good[_i].fen);
}
END_TEST


START_TEST(test_money_parse_bad)
{
    int64_t  fen = 42;

    ck_assert_int_eq(newcore_money_parse(money_bad[_i], strlen(money_bad[_i]),
                                         &fen),
                     NEWCORE_ERROR);
    ck_assert_int_eq(fen, 42);
}
END_TEST


START_TEST(test_money_format)
{
    char  buf[NEWCORE_MONEY_STRLEN];

    ck_assert_str_eq(newcore_money_format(0, buf, sizeof(buf)), "0.00");
    ck_assert_str_eq(newcore_money_format(5, buf, sizeof(buf)), "0.05");
    ck_assert_str_eq(newcore_money_format(25800, buf, sizeof(buf)),
                     "258.00");
    ck_assert_str_eq(newcore_money_format(-5, buf, sizeof(buf)), "-0.05");
    ck_assert_str_eq(newcore_money_format(INT64_MIN, buf, sizeof(buf)),
                     "-92233720368547758.08");
    ck_assert_str_eq(newcore_money_format(NEWCORE_MONEY_MAX_FEN, buf,
                                          sizeof(buf)),
                     "99999999999.99");
}
END_TEST


START_TEST(test_money_round_trip)
{
    int64_t  fen, back;
    char     buf[NEWCORE_MONEY_STRLEN];

    for (fen = 0; fen < 100000; fen += 7) {
        newcore_money_format(fen, buf, sizeof(buf));
        ck_assert_int_eq(newcore_money_parse(buf, strlen(buf), &back),
                         NEWCORE_OK);
        ck_assert_int_eq(back, fen);
    }
}
END_TEST


START_TEST(test_money_overflow)
{
    int64_t  r;

    ck_assert_int_eq(newcore_money_mul(25800, 10000, &r), NEWCORE_OK);
    ck_assert_int_eq(r, 258000000);
    ck_assert_int_eq(newcore_money_mul(NEWCORE_MONEY_MAX_FEN, 2, &r),
                     NEWCORE_ERROR);
    ck_assert_int_eq(newcore_money_mul(INT64_MAX, INT64_MAX, &r),
                     NEWCORE_ERROR);
    ck_assert_int_eq(newcore_money_mul(-1, 1, &r), NEWCORE_ERROR);
    ck_assert_int_eq(newcore_money_add(NEWCORE_MONEY_MAX_FEN, 1, &r),
                     NEWCORE_ERROR);
    ck_assert_int_eq(newcore_money_add(1, 2, &r), NEWCORE_OK);
    ck_assert_int_eq(r, 3);
}
END_TEST


/* --- points and tier ----------------------------------------------------- */

static const struct {
    int64_t  total_fen;
    int64_t  points;
} points_table[] = {
    { 0, 0 }, { 1, 0 }, { 49, 0 }, { 50, 1 }, { 99, 1 }, { 100, 1 },
    { 1249, 12 }, { 1250, 13 }, { 25800, 258 }, { 31433, 314 },
    { 31450, 315 }, { -100, 0 },
};


START_TEST(test_points_rule)
{
    ck_assert_int_eq(newcore_points_earned(points_table[_i].total_fen),
                     points_table[_i].points);
}
END_TEST


START_TEST(test_member_tier)
{
    ck_assert_str_eq(newcore_member_tier(0), "standard");
    ck_assert_str_eq(newcore_member_tier(999), "standard");
    ck_assert_str_eq(newcore_member_tier(1000), "silver");
    ck_assert_str_eq(newcore_member_tier(2999), "silver");
    ck_assert_str_eq(newcore_member_tier(3000), "gold");
    ck_assert_str_eq(newcore_member_tier(4999), "gold");
}
END_TEST


/* --- order validation ---------------------------------------------------- */

START_TEST(test_order_parse_ok)
{
    newcore_order_t  *o;
    newcore_error_t   err;

    o = newcore_order_new();
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(newcore_order_parse(o, ORDER_OK, strlen(ORDER_OK), &err),
                     NEWCORE_OK);
    ck_assert_str_eq(o->store_id, "S001");
    ck_assert_str_eq(o->channel, "pos");
    ck_assert_str_eq(o->member_id, "M000123");
    ck_assert_str_eq(o->order_id, "");
    ck_assert_str_eq(o->payment_method, "cash");
    ck_assert_int_eq(o->payment_fen, -1);
    ck_assert_uint_eq(o->nlines, 2);
    ck_assert_str_eq(o->lines[0].sku, "SKU00042");
    ck_assert_int_eq(o->lines[0].qty, 2);
    ck_assert_int_eq(o->lines[0].unit_price_fen, 12900);
    ck_assert_int_eq(o->lines[1].unit_price_fen, -1);
    newcore_order_free(o);
}
END_TEST


START_TEST(test_order_price)
{
    newcore_order_t  *o;
    newcore_error_t   err;
    newcore_buf_t     b;

    o = newcore_order_new();
    ck_assert_int_eq(newcore_order_parse(o, ORDER_OK, strlen(ORDER_OK), &err),
                     NEWCORE_OK);
    o->lines[1].unit_price_fen = 5633;
    ck_assert_int_eq(newcore_order_price(o, &err), NEWCORE_OK);
    ck_assert_int_eq(o->lines[0].amount_fen, 25800);
    ck_assert_int_eq(o->total_fen, 31433);
    ck_assert_int_eq(o->points_earned, 314);

    strcpy(o->order_id, "NC1");
    strcpy(o->created_at, "2026-01-02T03:04:05.006Z");
    newcore_buf_init(&b);
    newcore_order_json(o, &b);
    ck_assert_str_eq(b.data,
        "{\"order_id\":\"NC1\",\"store_id\":\"S001\",\"channel\":\"pos\","
        "\"member_id\":\"M000123\",\"status\":\"paid\",\"lines\":["
        "{\"sku\":\"SKU00042\",\"qty\":2,\"unit_price\":\"129.00\","
        "\"amount\":\"258.00\"},{\"sku\":\"SKU00007\",\"qty\":1,"
        "\"unit_price\":\"56.33\",\"amount\":\"56.33\"}],\"total\":\"314.33\","
        "\"points_earned\":314,\"created_at\":\"2026-01-02T03:04:05.006Z\"}");
    newcore_buf_free(&b);

    /* no member: no points; a payment amount must equal the total */
    o->member_id[0] = '\0';
    o->payment_fen = 31433;
    ck_assert_int_eq(newcore_order_price(o, &err), NEWCORE_OK);
    ck_assert_int_eq(o->points_earned, 0);
    o->payment_fen = 31434;
    ck_assert_int_eq(newcore_order_price(o, &err), NEWCORE_ERROR);
    ck_assert_int_eq(err.code, 400);
    ck_assert_str_eq(err.name, "invalid_request");

    /* a line amount past the bound */
    o->payment_fen = -1;
    o->lines[0].unit_price_fen = NEWCORE_MONEY_MAX_FEN;
    ck_assert_int_eq(newcore_order_price(o, &err), NEWCORE_ERROR);
    newcore_order_free(o);
}
END_TEST


static const char  *order_bad[] = {
    "",
    "   ",
    "[]",
    "null",
    "{",
    "{\"store_id\":\"S001\"",
    "{}",
    /* missing fields */
    "{\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\",\"qty\":1}],"
    "\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"lines\":[{\"sku\":\"A\",\"qty\":1}],"
    "\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[{\"sku\":\"A\",\"qty\":1}]}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[{\"qty\":1}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[{\"sku\":\"A\"}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[{\"sku\":\"A\",\"qty\":1}],\"payment\":{}}",
    /* bad values */
    "{\"store_id\":\"S001\",\"channel\":\"fax\","
    "\"lines\":[{\"sku\":\"A\",\"qty\":1}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S 1\",\"channel\":\"pos\","
    "\"lines\":[{\"sku\":\"A\",\"qty\":1}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":1,\"channel\":\"pos\","
    "\"lines\":[{\"sku\":\"A\",\"qty\":1}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":{},\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[1],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[{\"sku\":\"A\",\"qty\":0}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\","
    "\"lines\":[{\"sku\":\"A\",\"qty\":-1}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":"
    "[{\"sku\":\"A\",\"qty\":10001}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":"
    "[{\"sku\":\"A\",\"qty\":99999999999}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":"
    "[{\"sku\":\"A\",\"qty\":1.5}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":"
    "[{\"sku\":\"A\",\"qty\":\"1\"}],"
    "\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\","
    "\"qty\":1,\"unit_price\":\"1.005\"}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\","
    "\"qty\":1,\"unit_price\":\"-1.00\"}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\","
    "\"qty\":1,\"unit_price\":12.5}],\"payment\":{\"method\":\"cash\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\","
    "\"qty\":1}],\"payment\":{\"method\":\"gold\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\","
    "\"qty\":1}],\"payment\":{\"method\":\"cash\",\"amount\":\"1.001\"}}",
    "{\"store_id\":\"S001\",\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\","
    "\"qty\":1}],\"payment\":\"cash\"}",
};


START_TEST(test_order_parse_bad)
{
    newcore_order_t  *o;
    newcore_error_t   err;

    memset(&err, 0, sizeof(err));
    o = newcore_order_new();
    ck_assert_msg(newcore_order_parse(o, order_bad[_i], strlen(order_bad[_i]),
                                      &err) == NEWCORE_ERROR,
                  "accepted %s", order_bad[_i]);
    ck_assert_int_eq(err.code, 400);
    ck_assert_str_eq(err.name, "invalid_request");
    ck_assert(err.message[0] != '\0');
    newcore_order_free(o);
}
END_TEST


START_TEST(test_order_parse_limits)
{
    size_t            i;
    newcore_order_t  *o;
    newcore_error_t   err;
    newcore_buf_t     b;

    o = newcore_order_new();
    newcore_buf_init(&b);

    /* 100 lines are fine, 101 are not */
    newcore_buf_puts(&b, "{\"store_id\":\"S001\",\"channel\":\"eshop\","
                     "\"member_id\":null,\"lines\":[");
    for (i = 0; i < NEWCORE_ORDER_MAX_LINES; i++) {
        newcore_buf_printf(&b, "%s{\"sku\":\"SKU%05zu\",\"qty\":10000,"
                           "\"unit_price\":null}", i ? "," : "", i + 1);
    }
    newcore_buf_puts(&b, "],\"payment\":{\"method\":\"wallet\"}}");
    ck_assert_int_eq(newcore_order_parse(o, b.data, b.len, &err),
                     NEWCORE_OK);
    ck_assert_uint_eq(o->nlines, NEWCORE_ORDER_MAX_LINES);
    ck_assert_str_eq(o->member_id, "");

    b.len -= strlen("],\"payment\":{\"method\":\"wallet\"}}");
    newcore_buf_puts(&b, ",{\"sku\":\"X\",\"qty\":1}],"
                     "\"payment\":{\"method\":\"wallet\"}}");
    ck_assert_int_eq(newcore_order_parse(o, b.data, b.len, &err),
                     NEWCORE_ERROR);

    /* a body over the limit */
    newcore_buf_reset(&b);
    newcore_buf_puts(&b, "{\"x\":\"");
    while (b.len <= NEWCORE_BODY_MAX) {
        newcore_buf_puts(&b, "0123456789abcdef");
    }
    newcore_buf_puts(&b, "\"}");
    ck_assert_int_eq(newcore_order_parse(o, b.data, b.len, &err),
                     NEWCORE_ERROR);
    ck_assert_int_eq(err.code, 413);

    /* an id of 65 characters */
    newcore_buf_reset(&b);
    newcore_buf_printf(&b, "{\"order_id\":\"%065d\",\"store_id\":\"S001\","
                       "\"channel\":\"pos\",\"lines\":[{\"sku\":\"A\","
                       "\"qty\":1}],\"payment\":{\"method\":\"cash\"}}", 7);
    ck_assert_int_eq(newcore_order_parse(o, b.data, b.len, &err),
                     NEWCORE_ERROR);

    newcore_buf_free(&b);
    newcore_order_free(o);
}
END_TEST


START_TEST(test_adjust_parse)
{
    newcore_adjust_t  a;
    newcore_error_t   err;
    const char       *ok = "{\"store_id\":\"S001\",\"sku\":\"SKU00001\","
                           "\"delta\":-5,\"reason\":\"damage\"}";

    ck_assert_int_eq(newcore_adjust_parse(&a, ok, strlen(ok), &err),
                     NEWCORE_OK);
    ck_assert_str_eq(a.store_id, "S001");
    ck_assert_str_eq(a.sku, "SKU00001");
    ck_assert_int_eq(a.delta, -5);
    ck_assert_str_eq(a.reason, "damage");

#define BAD_ADJUST(s) \
    ck_assert_int_eq(newcore_adjust_parse(&a, s, strlen(s), &err), \
                     NEWCORE_ERROR)

    BAD_ADJUST("{\"store_id\":\"S001\",\"sku\":\"A\",\"delta\":0,"
               "\"reason\":\"receipt\"}");
    BAD_ADJUST("{\"store_id\":\"S001\",\"sku\":\"A\",\"delta\":1,"
               "\"reason\":\"theft\"}");
    BAD_ADJUST("{\"store_id\":\"S001\",\"sku\":\"A\",\"delta\":1.5,"
               "\"reason\":\"receipt\"}");
    BAD_ADJUST("{\"store_id\":\"S001\",\"sku\":\"A\","
               "\"reason\":\"receipt\"}");
    BAD_ADJUST("{\"store_id\":\"S001\",\"delta\":1,\"reason\":\"receipt\"}");
    BAD_ADJUST("{\"store_id\":\"S001\",\"sku\":\"A\",\"delta\":10000000,"
               "\"reason\":\"receipt\"}");
}
END_TEST


START_TEST(test_json_escape)
{
    newcore_buf_t    b;
    newcore_error_t  err;

    newcore_buf_init(&b);
    newcore_buf_json_str(&b, "a\"b\\c\n\x01");
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");

    newcore_buf_reset(&b);
    newcore_buf_json_str(&b, "\xc3\xa9\xff\xf0\x28\xe4\xb8\xad");
    ck_assert_str_eq(b.data, "\"\xc3\xa9\\ufffd\\ufffd(\xe4\xb8\xad\"");

    newcore_buf_reset(&b);
    newcore_error_set(&err, 409, "out_of_stock", "not enough stock of %s",
                      "SKU\"1");
    newcore_buf_error(&b, &err);
    ck_assert_str_eq(b.data, "{\"error\":{\"code\":\"out_of_stock\","
                     "\"message\":\"not enough stock of SKU\\\"1\"}}");
    newcore_buf_free(&b);
}
END_TEST


/* --- routing without a database ------------------------------------------ */

static const struct {
    const char  *method;
    const char  *path;
    const char  *body;
    int          status;
    const char  *code;
} routes[] = {
    { "GET", "/", "", 404, "not_found" },
    { "GET", "/api/v1/nothing", "", 404, "not_found" },
    { "GET", "/api/v2/orders/1", "", 404, "not_found" },
    { "GET", "/api/v1/orders/", "", 404, "not_found" },
    { "GET", "/api/v1/orders", "", 405, "method_not_allowed" },
    { "DELETE", "/api/v1/orders/X1", "", 405, "method_not_allowed" },
    { "GET", "/api/v1/orders/X1/cancel", "", 405, "method_not_allowed" },
    { "GET", "/api/v1/inventory/adjust", "", 405, "method_not_allowed" },
    { "PUT", "/api/v1/members/M1", "", 405, "method_not_allowed" },
    { "POST", "/health", "", 405, "method_not_allowed" },
    { "POST", "/api/v1/orders", "{bad", 400, "invalid_request" },
    { "POST", "/api/v1/orders", "", 400, "invalid_request" },
    { "POST", "/api/v1/inventory/adjust", "{}", 400, "invalid_request" },
};


START_TEST(test_routes)
{
    newcore_request_t  req;
    newcore_reply_t    reply;

    memset(&req, 0, sizeof(req));
    req.method = routes[_i].method;
    req.path = routes[_i].path;
    req.body = routes[_i].body;
    req.body_len = strlen(routes[_i].body);

    newcore_reply_init(&reply);
    newcore_api_handle(NULL, &req, &reply);
    ck_assert_int_eq(reply.status, routes[_i].status);
    ck_assert_ptr_nonnull(reply.body.data);
    ck_assert_ptr_nonnull(strstr(reply.body.data, routes[_i].code));
    ck_assert(strncmp(reply.body.data, "{\"error\":{\"code\":", 17) == 0);
    newcore_reply_free(&reply);
}
END_TEST


START_TEST(test_request_limits)
{
    newcore_request_t  req;
    newcore_reply_t    reply;
    char               key[300];

    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = "/api/v1/orders";
    req.body = ORDER_OK;
    req.body_len = strlen(ORDER_OK);
    req.body_too_large = 1;

    newcore_reply_init(&reply);
    newcore_api_handle(NULL, &req, &reply);
    ck_assert_int_eq(reply.status, 413);
    newcore_reply_free(&reply);

    req.body_too_large = 0;
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    req.idem_key = key;
    newcore_reply_init(&reply);
    newcore_api_handle(NULL, &req, &reply);
    ck_assert_int_eq(reply.status, 400);
    newcore_reply_free(&reply);

    req.idem_key = "has space";
    newcore_reply_init(&reply);
    newcore_api_handle(NULL, &req, &reply);
    ck_assert_int_eq(reply.status, 400);
    newcore_reply_free(&reply);
}
END_TEST


START_TEST(test_request_hash)
{
    newcore_request_t  a, b;
    char               ha[65], hb[65];

    memset(&a, 0, sizeof(a));
    a.method = "POST";
    a.path = "/api/v1/orders";
    a.body = "{}";
    a.body_len = 2;
    b = a;

    newcore_request_hash(&a, ha);
    newcore_request_hash(&b, hb);
    ck_assert_uint_eq(strlen(ha), 64);
    ck_assert_str_eq(ha, hb);

    b.body = "{ }";
    b.body_len = 3;
    newcore_request_hash(&b, hb);
    ck_assert_str_ne(ha, hb);

    b = a;
    b.path = "/api/v1/inventory/adjust";
    newcore_request_hash(&b, hb);
    ck_assert_str_ne(ha, hb);
}
END_TEST


/* A field the core does not know is refused and named, at every level. */
START_TEST(test_unknown_fields)
{
    size_t             i;
    newcore_error_t    err;
    newcore_order_t   *o;
    newcore_adjust_t   adj;

    static const struct {
        const char  *body;
        const char  *named;
    } bad[] = {
        { "{\"store_id\":\"S001\",\"channel\":\"pos\",\"coupon\":1,"
          "\"lines\":[{\"sku\":\"SKU00001\",\"qty\":1}],"
          "\"payment\":{\"method\":\"card\"}}", "$.coupon" },
        { "{\"store_id\":\"S001\",\"channel\":\"pos\","
          "\"lines\":[{\"sku\":\"SKU00001\",\"qty\":1,\"gift\":true}],"
          "\"payment\":{\"method\":\"card\"}}", "$.lines[0].gift" },
        { "{\"store_id\":\"S001\",\"channel\":\"pos\","
          "\"lines\":[{\"sku\":\"SKU00001\",\"qty\":1}],"
          "\"payment\":{\"method\":\"card\",\"tip\":\"1.00\"}}",
          "$.payment.tip" },
    };

    o = newcore_order_new();
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(newcore_order_parse(o, bad[i].body,
                                             strlen(bad[i].body), &err),
                         NEWCORE_ERROR);
        ck_assert_int_eq(err.code, 400);
        ck_assert_str_eq(err.name, "invalid_request");
        ck_assert_msg(strstr(err.message, bad[i].named) != NULL, "%s",
                      err.message);
    }
    newcore_order_free(o);

    ck_assert_int_eq(newcore_adjust_parse(&adj,
        "{\"store_id\":\"S001\",\"sku\":\"SKU1\",\"delta\":1,"
        "\"reason\":\"receipt\",\"note\":\"x\"}", 72, &err),
        NEWCORE_ERROR);
    ck_assert_msg(strstr(err.message, "$.note") != NULL, "%s", err.message);

    /* the id alphabet: dots are in, slashes and quotes are out */
    ck_assert_int_eq(newcore_id_valid("A.b-c_9", 7), 1);
    ck_assert_int_eq(newcore_id_valid("a/b", 3), 0);
    ck_assert_int_eq(newcore_id_valid("a\"b", 3), 0);
}
END_TEST


/* Nothing listens on port 1: every database call is 503 unavailable. */
START_TEST(test_database_down)
{
    static const char  *paths[][2] = {
        { "GET", "/health" },
        { "GET", "/api/v1/members/M000001" },
        { "GET", "/api/v1/inventory/S001/SKU00001" },
        { "GET", "/api/v1/orders/NC1" },
        { "POST", "/api/v1/orders/NC1/cancel" },
        { "POST", "/api/v1/orders" },
    };
    size_t              i;
    newcore_pool_t     *pool;
    newcore_error_t     err;
    newcore_request_t   req;
    newcore_reply_t     reply;

    pool = newcore_pool_new("host=127.0.0.1 port=1 dbname=x "
                            "connect_timeout=2", 2, NULL, NULL, &err);
    ck_assert_ptr_nonnull(pool);

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        memset(&req, 0, sizeof(req));
        req.method = paths[i][0];
        req.path = paths[i][1];
        req.body = ORDER_OK;
        req.body_len = strlen(ORDER_OK);

        newcore_reply_init(&reply);
        newcore_api_handle(pool, &req, &reply);
        ck_assert_msg(reply.status == 503, "%s: %d", req.path, reply.status);
        ck_assert_ptr_nonnull(strstr(reply.body.data, "\"unavailable\""));
        newcore_reply_free(&reply);
    }

    newcore_pool_free(pool);
    newcore_pool_free(NULL);
}
END_TEST


/* --- JSONTestSuite: never a crash, n_ files refused ---------------------- */

START_TEST(test_corpus)
{
    size_t             len;
    char              *data;
    corpus_t           c;
    newcore_order_t   *o;
    newcore_adjust_t   a;
    newcore_error_t    err;

    corpus_open(&c);
    o = newcore_order_new();

    while (corpus_next(&c)) {
        data = c.doc;
        len = c.len;

        /* none of the corpus is an order: everything is refused */
        ck_assert_msg(newcore_order_parse(o, data, len, &err) == NEWCORE_ERROR,
                      "accepted %s", c.name);
        ck_assert_msg(err.code == 400
                      || (err.code == 413 && len > NEWCORE_BODY_MAX),
                      "%s: status %d", c.name, err.code);
        ck_assert_msg(newcore_adjust_parse(&a, data, len, &err)
                      == NEWCORE_ERROR, "accepted %s", c.name);
    }

    newcore_order_free(o);
    corpus_check_count(&c);
}
END_TEST


Suite *
newcore_suite(void)
{
    Suite  *s;
    TCase  *normal, *errors, *limits;

    s = suite_create("newcore");

    normal = tcase_create("normal");
    tcase_add_loop_test(normal, test_money_parse_good, 0,
                        sizeof(money_good) / sizeof(money_good[0]));
    tcase_add_test(normal, test_money_format);
    tcase_add_test(normal, test_money_round_trip);
    tcase_add_loop_test(normal, test_points_rule, 0,
                        sizeof(points_table) / sizeof(points_table[0]));
    tcase_add_test(normal, test_member_tier);
    tcase_add_test(normal, test_order_parse_ok);
    tcase_add_test(normal, test_order_price);
    tcase_add_test(normal, test_adjust_parse);
    tcase_add_test(normal, test_json_escape);
    tcase_add_test(normal, test_request_hash);
    suite_add_tcase(s, normal);

    errors = tcase_create("errors");
    tcase_add_loop_test(errors, test_money_parse_bad, 0,
                        sizeof(money_bad) / sizeof(money_bad[0]));
    tcase_add_loop_test(errors, test_order_parse_bad, 0,
                        sizeof(order_bad) / sizeof(order_bad[0]));
    tcase_add_loop_test(errors, test_routes, 0,
                        sizeof(routes) / sizeof(routes[0]));
    tcase_add_test(errors, test_corpus);
    tcase_add_test(errors, test_unknown_fields);
    tcase_add_test(errors, test_database_down);
    tcase_set_timeout(errors, 60);
    suite_add_tcase(s, errors);

    limits = tcase_create("limits");
    tcase_add_test(limits, test_money_overflow);
    tcase_add_test(limits, test_order_parse_limits);
    tcase_add_test(limits, test_request_limits);
    suite_add_tcase(s, limits);

    return s;
}


int
main(void)
{
    int       failed;
    SRunner  *sr;

    sr = srunner_create(newcore_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
