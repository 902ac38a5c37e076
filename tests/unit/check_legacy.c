/* Unit tests of legacy_adapter: every mapping rule, the map loader, the
 * envelope translation, the JSON front end over JSONTestSuite, round trips. */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "tests/unit/corpus.h"
#include "legacy_adapter/legacy_adapter.h"
#include "legacy_adapter/legacy_convert.h"
#include "legacy_adapter/legacy_json.h"
#include "legacy_adapter/legacy_map.h"
#include "legacy_adapter/legacy_sim.h"

#define MAP_PATH  "legacy_adapter/map.json"

static legacy_map_t  *map;


static void
map_setup(void)
{
    legacy_error_t  err;

    map = legacy_map_new_from_file(MAP_PATH, &err);
    ck_assert_msg(map != NULL, "%s", err.message);
}


static void
map_teardown(void)
{
    legacy_map_free(map);
    map = NULL;
}


/* A fixed-seed PRNG (xorshift64*), the same sequence on every run. */
static uint64_t  prng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
prng(void)
{
    prng_state ^= prng_state >> 12;
    prng_state ^= prng_state << 25;
    prng_state ^= prng_state >> 27;
    return prng_state * 2685821657736338717ULL;
}


/* --- fen <-> yuan --------------------------------------------------------- */

static const struct {
    const char  *yuan;
    int          allow_negative;
    int          ok;
    int64_t      fen;
} yuan_cases[] = {
    { "12.50", 0, 1, 1250 },
    { "12.5", 0, 1, 1250 },
    { "12", 0, 1, 1200 },
    { "0.01", 0, 1, 1 },
    { "0.00", 0, 1, 0 },
    { "0", 0, 1, 0 },
    { "499.99", 0, 1, 49999 },
    { "100000000000.00", 0, 1, 10000000000000LL },
    { "100000000000.01", 0, 0, 0 },
    { "-0.05", 1, 1, -5 },
    { "-3", 1, 1, -300 },
    { "-0.05", 0, 0, 0 },
    { "-0", 1, 0, 0 },
    { "1.234", 0, 0, 0 },
    { "1.", 0, 0, 0 },
    { ".5", 0, 0, 0 },
    { "012.00", 0, 0, 0 },
    { "1e2", 0, 0, 0 },
    { "12.5a", 0, 0, 0 },
    { " 12.50", 0, 0, 0 },
    { "+1.00", 0, 0, 0 },
    { "", 0, 0, 0 },
    { "99999999999999999999", 0, 0, 0 },
};


START_TEST(test_yuan_to_fen)
{
    legacy_error_t  err;
    int64_t         fen = -999;
    int             rc;

    rc = legacy_yuan_to_fen(yuan_cases[_i].yuan,
                            yuan_cases[_i].allow_negative, &fen, &err);
    ck_assert_msg((rc == LEGACY_OK) == yuan_cases[_i].ok, "\"%s\"",
                  yuan_cases[_i].yuan);
    if (yuan_cases[_i].ok) {
        ck_assert_int_eq(fen, yuan_cases[_i].fen);
    } else {
        ck_assert_int_eq(err.code, LEGACY_E_INVALID);
    }
}
END_TEST


static const struct {
    int64_t      fen;
    const char  *yuan;
} fen_cases[] = {
    { 0, "0.00" }, { 1, "0.01" }, { 10, "0.10" }, { 100, "1.00" },
    { 25800, "258.00" }, { 49999, "499.99" }, { -5, "-0.05" },
    { -12345, "-123.45" }, { 10000000000000LL, "100000000000.00" },
};


START_TEST(test_fen_to_yuan)
{
    char  buf[LEGACY_YUAN_LEN];

    legacy_fen_to_yuan(fen_cases[_i].fen, buf);
    ck_assert_str_eq(buf, fen_cases[_i].yuan);
}
END_TEST


START_TEST(test_fen_round_trip)
{
    char            buf[LEGACY_YUAN_LEN];
    legacy_error_t  err;
    int64_t         fen, back;
    int             i;

    for (i = 0; i < 5000; i++) {
        fen = (int64_t) (prng() % (2 * LEGACY_FEN_MAX + 1)) - LEGACY_FEN_MAX;
        legacy_fen_to_yuan(fen, buf);
        ck_assert_int_eq(legacy_yuan_to_fen(buf, 1, &back, &err), LEGACY_OK);
        ck_assert_int_eq(back, fen);
    }
}
END_TEST


/* --- time ----------------------------------------------------------------- */

static const struct {
    const char  *legacy;
    int          offset;
    const char  *rfc;     /* NULL: invalid */
} time_cases[] = {
    { "20261122074443", 480, "2026-11-21T23:44:43Z" },
    { "20240101000000", 480, "2023-12-31T16:00:00Z" },
    { "20240229235959", 480, "2024-02-29T15:59:59Z" },
    { "20240229235959", 0, "2024-02-29T23:59:59Z" },
    { "19700101080000", 480, "1970-01-01T00:00:00Z" },
    { "20230229120000", 480, NULL },
    { "20241301120000", 480, NULL },
    { "20240101246000", 480, NULL },
    { "2024010112000", 480, NULL },
    { "202401011200001", 480, NULL },
    { "2024-01-01 12:0", 480, NULL },
};


START_TEST(test_time_to_rfc3339)
{
    char            buf[LEGACY_RFC3339_LEN];
    legacy_error_t  err;
    int             rc;

    rc = legacy_time_to_rfc3339(time_cases[_i].legacy, time_cases[_i].offset,
                                buf, &err);
    if (time_cases[_i].rfc == NULL) {
        ck_assert_int_eq(rc, LEGACY_ERROR);
        return;
    }
    ck_assert_int_eq(rc, LEGACY_OK);
    ck_assert_str_eq(buf, time_cases[_i].rfc);
    ck_assert_int_eq(legacy_time_from_rfc3339(buf, time_cases[_i].offset,
                                              buf, &err), LEGACY_OK);
    ck_assert_str_eq(buf, time_cases[_i].legacy);
}
END_TEST


static const struct {
    const char  *rfc;
    const char  *legacy;  /* at +08:00; NULL: invalid */
} rfc_cases[] = {
    { "2026-11-21T23:44:43Z", "20261122074443" },
    { "2026-11-21t23:44:43z", "20261122074443" },
    { "2026-11-21T23:44:43.999Z", "20261122074443" },
    { "2026-11-22T07:44:43+08:00", "20261122074443" },
    { "2026-11-21T18:44:43-05:00", "20261122074443" },
    { "2026-11-21 23:44:43Z", NULL },
    { "2026-11-21T23:44:43", NULL },
    { "2026-11-21T23:44:43+0800", NULL },
    { "2026-02-30T00:00:00Z", NULL },
    { "2026-11-21T23:44:43.Z", NULL },
    { "", NULL },
};


START_TEST(test_time_from_rfc3339)
{
    char            buf[LEGACY_TIME_LEN];
    legacy_error_t  err;
    int             rc;

    rc = legacy_time_from_rfc3339(rfc_cases[_i].rfc, 480, buf, &err);
    if (rfc_cases[_i].legacy == NULL) {
        ck_assert_msg(rc == LEGACY_ERROR, "%s", rfc_cases[_i].rfc);
        return;
    }
    ck_assert_int_eq(rc, LEGACY_OK);
    ck_assert_str_eq(buf, rfc_cases[_i].legacy);
}
END_TEST


START_TEST(test_time_round_trip)
{
    char            legacy[LEGACY_TIME_LEN], rfc[LEGACY_RFC3339_LEN],
                    back[LEGACY_TIME_LEN];
    legacy_error_t  err;
    time_t          t, t2;
    int             i;

    for (i = 0; i < 3000; i++) {
        t = (time_t) (prng() % 4102444800ULL);     /* 1970 .. 2100 */
        legacy_time_from_unix(t, 480, legacy);
        ck_assert_int_eq(legacy_time_parse(legacy, 480, &t2, &err),
                         LEGACY_OK);
        ck_assert_int_eq((long) t2, (long) t);
        ck_assert_int_eq(legacy_time_to_rfc3339(legacy, 480, rfc, &err),
                         LEGACY_OK);
        ck_assert_int_eq(legacy_time_from_rfc3339(rfc, 480, back, &err),
                         LEGACY_OK);
        ck_assert_str_eq(back, legacy);
    }
}
END_TEST


/* --- the map -------------------------------------------------------------- */

static const struct {
    const char  *name;
    int64_t      code;
} channel_cases[] = {
    { "pos", 1 }, { "eshop", 2 }, { "miniapp", 3 }, { "marketplace", 4 },
};


START_TEST(test_channel_codes)
{
    const legacy_codes_t  *c = legacy_map_codes(map, "channel");
    int64_t                code;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(legacy_codes_to_code(c, channel_cases[_i].name, &code),
                     LEGACY_OK);
    ck_assert_int_eq(code, channel_cases[_i].code);
    ck_assert_str_eq(legacy_codes_to_name(c, channel_cases[_i].code),
                     channel_cases[_i].name);
    ck_assert_int_eq(legacy_codes_to_code(c, "POS", &code), LEGACY_ERROR);
    ck_assert_ptr_null(legacy_codes_to_name(c, 9));
}
END_TEST


START_TEST(test_map_shipped)
{
    int  i;

    ck_assert_int_eq(map->time_offset_min, 480);
    ck_assert_str_eq(map->idempotency_field, "qqlsh");
    for (i = 0; i < LEGACY_ROUTE_COUNT; i++) {
        ck_assert_ptr_nonnull(map->routes[i].legacy_path);
    }
    ck_assert_str_eq(map->routes[LEGACY_ROUTE_CREATE_ORDER].legacy_path,
                     "/lsapi/xsd/create");
    ck_assert_int_eq(legacy_map_error(map, 2001)->status, 409);
    ck_assert_str_eq(legacy_map_error(map, 2001)->code, "out_of_stock");
    ck_assert_ptr_null(legacy_map_error(map, 7777));
}
END_TEST


#define MAP_HEAD "{\"idempotency_field\": \"qqlsh\",\n" \
    "\"envelope\": {\"code\": \"code\", \"message\": \"msg\",\n" \
    "  \"data\": \"data\"},\n"

static const struct {
    const char  *text;
    const char  *want;     /* a substring of the error */
} bad_maps[] = {
    { "{\"codes\": {\"channel\": {\"pos\": 1,}}}", "map line 1" },
    { "{\n\"codes\": {\n\"channel\": {\"pos\": 1\n\"eshop\": 2}}}",
      "map line 4" },
    { MAP_HEAD "\"codes\": {\"channel\": {\"pos\": \"one\"}}}",
      "codes.channel.pos: code must be an integer" },
    { MAP_HEAD "\"codes\": {\"channel\": {\"pos\": 1, \"eshop\": 1}}}",
      "code 1 used twice" },
    { MAP_HEAD "\"objects\": {\"o\": [\n{\"canonical\": \"a\", \"legacy\": "
      "\"b\", \"type\": \"fenn\"}]}}", "map line 5: objects.o[0].type" },
    { MAP_HEAD "\"objects\": {\"o\": [{\"legacy\": \"b\", \"type\": \"int\"}"
      "]}}", "objects.o[0].canonical: missing" },
    { MAP_HEAD "\"objects\": {\"o\": [{\"canonical\": \"a\", \"legacy\": "
      "\"b\", \"type\": \"code\", \"codes\": \"nope\"}]}}",
      "no code table \"nope\"" },
    { MAP_HEAD "\"objects\": {\"o\": [{\"canonical\": \"a\", \"legacy\": "
      "\"b\", \"type\": \"array\", \"object\": \"zz\"}]}}",
      "no object \"zz\"" },
    { MAP_HEAD "\"objects\": {\"o\": [{\"canonical\": \"a\", \"legacy\": "
      "\"b\", \"type\": \"int\", \"colour\": 1}]}}",
      "objects.o[0].colour: unknown" },
    { MAP_HEAD "\"objects\": {\"o\": [{\"canonical\": \"a\", \"legacy\": "
      "\"b\", \"type\": \"int\"}, {\"canonical\": \"a\", \"legacy\": \"c\","
      " \"type\": \"int\"}]}}", "field mapped twice" },
    { MAP_HEAD "\"routes\": {\"create_order\": {\"legacy\": \"/x\"}}}",
      "routes.create_order: needs" },
    { MAP_HEAD "\"routes\": {\"fly\": {}}}", "routes.fly: unknown route" },
    { MAP_HEAD "\"errors\": [{\"legacy\": 1, \"status\": 200, \"code\": "
      "\"x\"}]}", "errors[0].status" },
    { MAP_HEAD "\"time_offset_minutes\": 9999}", "time_offset_minutes" },
    { MAP_HEAD "\"colour\": 1}", "colour: unknown section" },
    { "[1, 2]", "not a JSON object" },
    { "", "malformed JSON" },
};


START_TEST(test_map_errors)
{
    legacy_error_t  err;
    legacy_map_t   *m;

    m = legacy_map_new_from_json(bad_maps[_i].text,
                                 strlen(bad_maps[_i].text), &err);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, LEGACY_E_CONFIG);
    ck_assert_msg(strstr(err.message, bad_maps[_i].want) != NULL,
                  "case %d: \"%s\" lacks \"%s\"", _i, err.message,
                  bad_maps[_i].want);
}
END_TEST


START_TEST(test_map_missing_file)
{
    legacy_error_t  err;

    ck_assert_ptr_null(legacy_map_new_from_file("/nonexistent/map.json",
                                                &err));
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/map.json"));
}
END_TEST


/* --- document conversion -------------------------------------------------- */

static char *
convert(const char *object, int to_legacy, const char *json, int *code,
    char *msg)
{
    legacy_error_t  err;
    legacy_buf_t    out = { 0 };
    bson_t          in, res;
    int             rc;

    ck_assert_int_eq(legacy_json_parse_object(json, strlen(json), &in, &err),
                     LEGACY_OK);
    bson_init(&res);
    rc = legacy_map_convert(map, legacy_map_object(map, object), to_legacy,
                            &in, &res, &err);
    *code = rc == LEGACY_OK ? 0 : err.code;
    if (msg != NULL) {
        strcpy(msg, rc == LEGACY_OK ? "" : err.message);
    }
    if (rc == LEGACY_OK) {
        ck_assert_int_eq(legacy_json_write(&res, &out, &err), LEGACY_OK);
    }
    bson_destroy(&in);
    bson_destroy(&res);
    return out.data;
}


static const struct {
    const char  *object;
    int          to_legacy;
    const char  *in;
    const char  *out;      /* NULL: an error containing `error` */
    const char  *error;
} convert_cases[] = {
    { "order_request", 1,
      "{\"store_id\":\"S001\",\"channel\":\"pos\",\"member_id\":null,"
      "\"lines\":[{\"sku\":\"SKU00042\",\"qty\":2,\"unit_price\":\"129.00\"}],"
      "\"payment\":{\"method\":\"cash\",\"amount\":\"258.00\"}}",
      "{\"mdbh\":\"S001\",\"qd\":1,\"hyh\":null,\"mx\":[{\"spbm\":"
      "\"SKU00042\",\"sl\":2,\"dj_fen\":12900}],\"zf\":{\"zffs\":1,"
      "\"je_fen\":25800}}", NULL },
    { "order_request", 1,
      "{\"payment\":{\"method\":\"card\"},\"lines\":[{\"qty\":1,"
      "\"sku\":\"A\"}],\"channel\":\"marketplace\",\"store_id\":\"S2\","
      "\"order_id\":\"T-1\"}",
      "{\"djh\":\"T-1\",\"mdbh\":\"S2\",\"qd\":4,\"mx\":[{\"spbm\":\"A\","
      "\"sl\":1}],\"zf\":{\"zffs\":2}}", NULL },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[]}", NULL, "$.payment: missing" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\"}", NULL,
      "$.lines: missing" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"tv\","
      "\"lines\":[]}", NULL, "$.channel: not a known channel" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[],\"coupon\":\"X\"}", NULL, "$.coupon: unknown field" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[{\"sku\":\"A\",\"qty\":0}]}", NULL,
      "$.lines[0].qty: must be at least 1" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[{\"sku\":\"A\",\"qty\":1.5}]}", NULL,
      "$.lines[0].qty: must be an integer" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[{\"sku\":\"A\",\"qty\":10001}]}", NULL,
      "$.lines[0].qty: must be at most 10000" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[{\"sku\":\"A\",\"qty\":1,\"unit_price\":\"-1.00\"}]}", NULL,
      "$.lines[0].unit_price" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[{\"sku\":\"A\",\"qty\":1,\"unit_price\":12.5}]}", NULL,
      "$.lines[0].unit_price" },
    { "order_request", 1, "{\"store_id\":\"S1\",\"channel\":\"pos\","
      "\"lines\":[],\"payment\":{\"method\":\"cheque\"}}", NULL,
      "$.payment.method: not a known payment_method" },
    { "order_request", 1, "{\"store_id\":null,\"channel\":\"pos\","
      "\"lines\":[]}", NULL, "$.store_id: must not be null" },
    { "adjust_request", 1, "{\"store_id\":\"S1\",\"sku\":\"A\",\"delta\":-5,"
      "\"reason\":\"damage\"}",
      "{\"mdbh\":\"S1\",\"spbm\":\"A\",\"tzsl\":-5,\"tzyy\":3}", NULL },
    { "member", 0, "{\"hyh\":\"M1\",\"jf\":3001,\"hydj\":3,\"extra\":1}",
      "{\"member_id\":\"M1\",\"points\":3001,\"tier\":\"gold\"}", NULL },
    { "member", 0, "{\"hyh\":\"M1\",\"jf\":3001,\"hydj\":7}", NULL,
      "$.hydj: unknown tier code" },
    { "member", 0, "{\"hyh\":\"M1\",\"hydj\":1}", NULL, "$.jf: missing" },
    { "inventory", 0, "{\"mdbh\":\"S1\",\"spbm\":\"A\",\"kcsl\":-2,"
      "\"ydsl\":0,\"kysl\":-2}", "{\"store_id\":\"S1\",\"sku\":\"A\","
      "\"on_hand\":-2,\"reserved\":0,\"available\":-2}", NULL },
    { "order", 0, "{\"djh\":\"LS1\",\"mdbh\":\"S1\",\"qd\":2,\"hyh\":null,"
      "\"zt\":2,\"mx\":[{\"spbm\":\"A\",\"sl\":3,\"dj_fen\":5,"
      "\"je_fen\":15}],\"zje_fen\":15,\"jf\":0,\"cjsj\":\"20240101000000\"}",
      "{\"order_id\":\"LS1\",\"store_id\":\"S1\",\"channel\":\"eshop\","
      "\"member_id\":null,\"status\":\"cancelled\",\"lines\":[{\"sku\":"
      "\"A\",\"qty\":3,\"unit_price\":\"0.05\",\"amount\":\"0.15\"}],"
      "\"total\":\"0.15\",\"points_earned\":0,"
      "\"created_at\":\"2023-12-31T16:00:00Z\"}", NULL },
    { "order", 0, "{\"djh\":\"LS1\",\"mdbh\":\"S1\",\"qd\":2,\"hyh\":null,"
      "\"zt\":1,\"mx\":[{\"spbm\":\"A\",\"sl\":3,\"dj_fen\":\"5\","
      "\"je_fen\":15}],\"zje_fen\":15,\"jf\":0,\"cjsj\":\"20240101000000\"}",
      NULL, "$.mx[0].dj_fen: must be an integer amount in fen" },
    { "order", 0, "{\"djh\":\"LS1\",\"mdbh\":\"S1\",\"qd\":2,\"hyh\":null,"
      "\"zt\":1,\"mx\":[],\"zje_fen\":15,\"jf\":0,\"cjsj\":\"2024\"}",
      NULL, "$.cjsj" },
};


START_TEST(test_convert)
{
    char  *out, msg[256];
    int    code;

    out = convert(convert_cases[_i].object, convert_cases[_i].to_legacy,
                  convert_cases[_i].in, &code, msg);
    if (convert_cases[_i].out != NULL) {
        ck_assert_msg(code == 0, "case %d: %s", _i, msg);
        ck_assert_str_eq(out, convert_cases[_i].out);
    } else {
        ck_assert_ptr_null(out);
        ck_assert_int_eq(code, convert_cases[_i].to_legacy
                         ? LEGACY_E_INVALID : LEGACY_E_UPSTREAM);
        ck_assert_msg(strstr(msg, convert_cases[_i].error) != NULL,
                      "case %d: \"%s\" lacks \"%s\"", _i, msg,
                      convert_cases[_i].error);
    }
    free(out);
}
END_TEST


/* A random canonical order in the map's field order. */
static void
gen_order(legacy_buf_t *b, int response)
{
    static const char  *channels[] = { "pos", "eshop", "miniapp",
                                       "marketplace" };
    static const char  *methods[] = { "cash", "card", "wallet" };
    char                yuan[LEGACY_YUAN_LEN], when[LEGACY_TIME_LEN],
                        rfc[LEGACY_RFC3339_LEN];
    legacy_error_t      err;
    int                 i, n = 1 + (int) (prng() % 5), member;
    int64_t             total = 0, price, qty;

    member = prng() % 3;
    legacy_buf_printf(b, "{");
    if (response || prng() % 2) {
        legacy_buf_printf(b, "\"order_id\":\"T%llu\",",
                          (unsigned long long) (prng() % 1000000));
    }
    legacy_buf_printf(b, "\"store_id\":\"S%03d\",\"channel\":\"%s\",",
                      1 + (int) (prng() % 200), channels[prng() % 4]);
    if (member == 1) {
        legacy_buf_printf(b, "\"member_id\":\"M%06d\",",
                          1 + (int) (prng() % 10000));
    } else if (member == 2 || response) {
        legacy_buf_printf(b, "\"member_id\":null,");
    }
    if (response) {
        legacy_buf_printf(b, "\"status\":\"%s\",",
                          prng() % 2 ? "paid" : "cancelled");
    }
    legacy_buf_printf(b, "\"lines\":[");
    for (i = 0; i < n; i++) {
        price = (int64_t) (prng() % 5000000);
        qty = 1 + (int64_t) (prng() % 50);
        total += price * qty;
        legacy_buf_printf(b, "%s{\"sku\":\"SKU%05d\",\"qty\":%lld",
                          i ? "," : "", 1 + (int) (prng() % 2000),
                          (long long) qty);
        if (response || prng() % 2) {
            legacy_fen_to_yuan(price, yuan);
            legacy_buf_printf(b, ",\"unit_price\":\"%s\"", yuan);
        }
        if (response) {
            legacy_fen_to_yuan(price * qty, yuan);
            legacy_buf_printf(b, ",\"amount\":\"%s\"", yuan);
        }
        legacy_buf_printf(b, "}");
    }
    legacy_buf_printf(b, "]");
    legacy_fen_to_yuan(total, yuan);
    if (response) {
        legacy_time_from_unix((time_t) (prng() % 4102444800ULL), 480, when);
        legacy_time_to_rfc3339(when, 480, rfc, &err);
        legacy_buf_printf(b, ",\"total\":\"%s\",\"points_earned\":%lld,"
                          "\"created_at\":\"%s\"", yuan,
                          (long long) (total / 100), rfc);
    } else {
        legacy_buf_printf(b, ",\"payment\":{\"method\":\"%s\"",
                          methods[prng() % 3]);
        if (prng() % 2) {
            legacy_buf_printf(b, ",\"amount\":\"%s\"", yuan);
        }
        legacy_buf_printf(b, "}");
    }
    legacy_buf_printf(b, "}");
}


START_TEST(test_round_trip_orders)
{
    legacy_error_t  err;
    legacy_buf_t    src = { 0 }, back = { 0 };
    bson_t          canonical, legacy, again, wire;
    int             i, response;

    for (i = 0; i < 3000; i++) {
        response = i % 2;
        src.len = 0;
        back.len = 0;
        gen_order(&src, response);
        ck_assert_msg(legacy_json_parse_object(src.data, src.len, &canonical,
                                               &err) == LEGACY_OK,
                      "%s: %s", src.data, err.message);
        bson_init(&legacy);
        bson_init(&again);
        ck_assert_msg(legacy_map_convert(map, legacy_map_object(map,
                          response ? "order" : "order_request"), 1,
                          &canonical, &legacy, &err) == LEGACY_OK,
                      "%s: %s", src.data, err.message);
        /* the legacy body crosses the wire as BSON bytes */
        ck_assert_int_eq(legacy_bson_parse(bson_get_data(&legacy),
                                           legacy.len, &wire, &err),
                         LEGACY_OK);
        ck_assert_msg(legacy_map_convert(map, legacy_map_object(map,
                          response ? "order" : "order_request"), 0,
                          &wire, &again, &err) == LEGACY_OK,
                      "%s: %s", src.data, err.message);
        ck_assert_int_eq(legacy_json_write(&again, &back, &err), LEGACY_OK);
        ck_assert_str_eq(back.data, src.data);
        bson_destroy(&canonical);
        bson_destroy(&legacy);
        bson_destroy(&wire);
        bson_destroy(&again);
    }
    legacy_buf_free(&src);
    legacy_buf_free(&back);
}
END_TEST


/* --- envelope <-> status -------------------------------------------------- */

static const struct {
    int          route;
    int          http;
    const char  *json;       /* the legacy body, as JSON */
    int          status;
    const char  *contains;
} envelope_cases[] = {
    { LEGACY_ROUTE_GET_MEMBER, 200, "{\"code\":0,\"msg\":\"ok\",\"data\":"
      "{\"hyh\":\"M1\",\"jf\":5,\"hydj\":1}}", 200,
      "{\"member_id\":\"M1\",\"points\":5,\"tier\":\"standard\"}" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"code\":0,\"msg\":\"ok\",\"data\":"
      "{\"djh\":\"LS1\",\"mdbh\":\"S1\",\"qd\":1,\"hyh\":\"M1\",\"zt\":1,"
      "\"mx\":[],\"zje_fen\":0,\"jf\":0,\"cjsj\":\"20240101080000\"}}", 201,
      "\"created_at\":\"2024-01-01T00:00:00Z\"" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"code\":2001,\"msg\":\"SKU00001 "
      "no stock\",\"data\":null}", 409,
      "{\"error\":{\"code\":\"out_of_stock\",\"message\":\"SKU00001 no "
      "stock (legacy code 2001)\"}}" },
    { LEGACY_ROUTE_GET_ORDER, 200, "{\"code\":1004,\"msg\":\"x\"}", 404,
      "\"not_found\"" },
    { LEGACY_ROUTE_GET_ORDER, 200, "{\"code\":1001,\"msg\":\"x\"}", 400,
      "\"invalid_request\"" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"code\":3001,\"msg\":\"x\"}", 409,
      "\"duplicate_order\"" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"code\":3003,\"msg\":\"x\"}", 422,
      "\"idempotency_mismatch\"" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"code\":9001,\"msg\":\"x\"}", 503,
      "\"unavailable\"" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"code\":7777,\"msg\":\"x\"}", 502,
      "legacy code 7777 is not in the map" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"code\":\"0\",\"data\":{}}", 502,
      "no integer \\\"code\\\"" },
    { LEGACY_ROUTE_CREATE_ORDER, 200, "{\"msg\":\"ok\"}", 502,
      "bad_gateway" },
    { LEGACY_ROUTE_GET_MEMBER, 200, "{\"code\":0,\"data\":null}", 502,
      "no \\\"data\\\" object" },
    { LEGACY_ROUTE_GET_MEMBER, 200, "{\"code\":0,\"data\":{\"hyh\":\"M1\"}}",
      502, "legacy data: $.jf: missing" },
    { LEGACY_ROUTE_GET_MEMBER, 500, "{\"code\":0}", 502, "HTTP 500" },
};


START_TEST(test_envelope)
{
    legacy_error_t  err;
    bson_t          env;
    char           *json;
    size_t          len;
    int             status, rc, as_bson;
    int64_t         code;

    for (as_bson = 0; as_bson <= 1; as_bson++) {
        ck_assert_int_eq(legacy_json_parse_object(envelope_cases[_i].json,
                         strlen(envelope_cases[_i].json), &env, &err),
                         LEGACY_OK);
        if (as_bson) {
            rc = legacy_adapter_translate(map, envelope_cases[_i].route,
                     envelope_cases[_i].http, "application/bson",
                     bson_get_data(&env), env.len, &status, &json, &len,
                     &code, &err);
        } else {
            rc = legacy_adapter_translate(map, envelope_cases[_i].route,
                     envelope_cases[_i].http, "application/json",
                     (const uint8_t *) envelope_cases[_i].json,
                     strlen(envelope_cases[_i].json), &status, &json, &len,
                     &code, &err);
        }
        bson_destroy(&env);
        ck_assert_int_eq(rc, status == 502 ? LEGACY_ERROR : LEGACY_OK);
        ck_assert_int_eq(status, envelope_cases[_i].status);
        ck_assert_msg(strstr(json, envelope_cases[_i].contains) != NULL,
                      "case %d: %s lacks %s", _i, json,
                      envelope_cases[_i].contains);
        ck_assert_int_eq(strlen(json), len);
        free(json);
    }
}
END_TEST


START_TEST(test_envelope_garbage)
{
    static const uint8_t  truncated[] = { 0x20, 0, 0, 0, 0x10, 'c', 0 };
    static const uint8_t  html[] = "<html>oops</html>";
    legacy_error_t        err;
    char                 *json;
    size_t                len;
    int                   status;
    int64_t               code;

    ck_assert_int_eq(legacy_adapter_translate(map, 0, 200,
                     "application/bson", truncated, sizeof(truncated),
                     &status, &json, &len, &code, &err), LEGACY_ERROR);
    ck_assert_int_eq(status, 502);
    ck_assert_ptr_nonnull(strstr(json, "malformed BSON"));
    free(json);
    ck_assert_int_eq(legacy_adapter_translate(map, 0, 200, "text/html",
                     html, sizeof(html) - 1, &status, &json, &len, &code,
                     &err), LEGACY_ERROR);
    ck_assert_int_eq(status, 502);
    free(json);
    ck_assert_int_eq(legacy_adapter_translate(map, 0, 200, NULL, NULL, 0,
                     &status, &json, &len, &code, &err), LEGACY_ERROR);
    ck_assert_int_eq(status, 502);
    free(json);
}
END_TEST


/* --- BSON <-> JSON, the JSON front end ------------------------------------ */

START_TEST(test_bson_json)
{
    static const char  text[] =
        "{\"s\":\"a\\\"b\\\\c\\u0001\xe4\xb8\xad\",\"i\":-7,"
        "\"l\":9007199254740993,\"d\":1.5,\"t\":true,\"f\":false,\"n\":null,"
        "\"o\":{\"a\":[1,{\"b\":[]},{}]}}";
    static const char  expect[] =
        "{\"s\":\"a\\\"b\\\\c\\u0001\xe4\xb8\xad\",\"i\":-7,"
        "\"l\":9007199254740993,\"d\":1.5,\"t\":true,\"f\":false,\"n\":null,"
        "\"o\":{\"a\":[1,{\"b\":[]},{}]}}";
    legacy_error_t     err;
    legacy_buf_t       out = { 0 };
    bson_t             doc, copy;

    ck_assert_int_eq(legacy_json_parse_object(text, strlen(text), &doc,
                                              &err), LEGACY_OK);
    ck_assert_int_eq(legacy_bson_parse(bson_get_data(&doc), doc.len, &copy,
                                       &err), LEGACY_OK);
    ck_assert_int_eq(legacy_json_write(&copy, &out, &err), LEGACY_OK);
    ck_assert_str_eq(out.data, expect);
    bson_destroy(&copy);
    ck_assert_int_eq(legacy_bson_parse(bson_get_data(&doc), doc.len - 1,
                                       &copy, &err), LEGACY_ERROR);
    bson_destroy(&copy);
    ck_assert_int_eq(legacy_body_parse("application/bson; x=y",
                                       bson_get_data(&doc), doc.len, &copy,
                                       &err), LEGACY_OK);
    bson_destroy(&copy);
    ck_assert_int_eq(legacy_body_parse("application/json",
                                       bson_get_data(&doc), doc.len, &copy,
                                       &err), LEGACY_ERROR);
    bson_destroy(&copy);
    bson_destroy(&doc);
    legacy_buf_free(&out);
}
END_TEST


static const struct {
    const char  *text;
    int          valid;
} json_cases[] = {
    { "{}", 1 }, { " [1, -0.5e+3, \"\\u00e9\", true, null] ", 1 },
    { "\"\xf0\x9f\x98\x80\"", 1 }, { "0", 1 },
    { "{\"a\":1,}", 0 }, { "[01]", 0 }, { "\"\xc0\xaf\"", 0 },
    { "\"\xed\xa0\x80\"", 0 }, { "[1] x", 0 }, { "\"a\tb\"", 0 },
    { "{'a':1}", 0 }, { "[", 0 }, { "nul", 0 }, { "\"\\x\"", 0 },
    { "\xef\xbb\xbf{}", 0 }, { "[.5]", 0 }, { "[1.]", 0 }, { "[1e]", 0 },
};


START_TEST(test_json_validate)
{
    legacy_error_t  err;

    ck_assert_int_eq(legacy_json_validate(json_cases[_i].text,
                                           strlen(json_cases[_i].text), &err)
                     == LEGACY_OK, json_cases[_i].valid);
}
END_TEST


START_TEST(test_json_deep)
{
    legacy_error_t  err;
    char           *deep;
    size_t          n = 100000;

    deep = malloc(n);
    memset(deep, '[', n);
    ck_assert_int_eq(legacy_json_validate(deep, n, &err), LEGACY_ERROR);
    free(deep);
}
END_TEST


START_TEST(test_json_corpus)
{
    corpus_t         c;
    legacy_error_t   err;
    bson_t           doc;
    size_t           len, i;
    char            *data;
    int              valid, object;

    corpus_open(&c);

    while (corpus_next(&c)) {
        data = c.doc;
        len = c.len;
        valid = legacy_json_validate(data, len, &err) == LEGACY_OK;
        if (c.name[0] == 'y') {
            ck_assert_msg(valid, "%s rejected: %s", c.name, err.message);
        } else if (c.name[0] == 'n') {
            ck_assert_msg(!valid, "%s accepted", c.name);
        }

        /* the whole front end: a request body must be an object */
        for (i = 0; i < len && strchr(" \t\r\n", data[i]); i++) { }
        object = i < len && data[i] == '{';
        if (legacy_json_parse_object(data, len, &doc, &err) == LEGACY_OK) {
            ck_assert_msg(valid && object, "%s: front end accepted",
                          c.name);
        } else if (c.name[0] == 'y' && object) {
            /* libbson cannot hold these valid objects (NUL in keys) */
            ck_assert_msg(strstr(err.message, "not representable") != NULL,
                          "%s: %s", c.name, err.message);
        }
        bson_destroy(&doc);
    }
    corpus_check_count(&c);
}
END_TEST


/* --- the sim's own units -------------------------------------------------- */

START_TEST(test_quirks)
{
    legacy_sim_config_t  cfg;
    legacy_error_t       err;

    memset(&cfg, 0, sizeof(cfg));
    ck_assert_int_eq(legacy_sim_parse_quirks("oversell,points_floor", &cfg,
                                             &err), LEGACY_OK);
    ck_assert(cfg.oversell && cfg.points_floor && !cfg.cancel_keeps_points);
    ck_assert_int_eq(legacy_sim_parse_quirks("cancel_keeps_points", &cfg,
                                             &err), LEGACY_OK);
    ck_assert(!cfg.oversell && !cfg.points_floor && cfg.cancel_keeps_points);
    ck_assert_int_eq(legacy_sim_parse_quirks("none", &cfg, &err), LEGACY_OK);
    ck_assert(!cfg.oversell && !cfg.points_floor && !cfg.cancel_keeps_points);
    ck_assert_int_eq(legacy_sim_parse_quirks("oversell,teleport", &cfg,
                                             &err), LEGACY_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, "teleport"));
}
END_TEST


START_TEST(test_error_body)
{
    size_t  len;
    char   *b = legacy_adapter_error_body("not_found", "no \"x\"", &len);

    ck_assert_str_eq(b, "{\"error\":{\"code\":\"not_found\","
                        "\"message\":\"no \\\"x\\\"\"}}");
    free(b);
}
END_TEST


Suite *
legacy_suite(void)
{
    Suite  *s = suite_create("legacy");
    TCase  *tc;

    tc = tcase_create("normal");
    tcase_add_checked_fixture(tc, map_setup, map_teardown);
    tcase_add_loop_test(tc, test_fen_to_yuan, 0,
                        sizeof(fen_cases) / sizeof(fen_cases[0]));
    tcase_add_loop_test(tc, test_channel_codes, 0,
                        sizeof(channel_cases) / sizeof(channel_cases[0]));
    tcase_add_test(tc, test_map_shipped);
    tcase_add_test(tc, test_bson_json);
    tcase_add_test(tc, test_quirks);
    tcase_add_test(tc, test_error_body);
    tcase_add_test(tc, test_round_trip_orders);
    tcase_add_test(tc, test_fen_round_trip);
    tcase_add_test(tc, test_time_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, map_setup, map_teardown);
    tcase_add_loop_test(tc, test_yuan_to_fen, 0,
                        sizeof(yuan_cases) / sizeof(yuan_cases[0]));
    tcase_add_loop_test(tc, test_time_to_rfc3339, 0,
                        sizeof(time_cases) / sizeof(time_cases[0]));
    tcase_add_loop_test(tc, test_time_from_rfc3339, 0,
                        sizeof(rfc_cases) / sizeof(rfc_cases[0]));
    tcase_add_loop_test(tc, test_map_errors, 0,
                        sizeof(bad_maps) / sizeof(bad_maps[0]));
    tcase_add_test(tc, test_map_missing_file);
    tcase_add_loop_test(tc, test_convert, 0,
                        sizeof(convert_cases) / sizeof(convert_cases[0]));
    tcase_add_loop_test(tc, test_envelope, 0,
                        sizeof(envelope_cases) / sizeof(envelope_cases[0]));
    tcase_add_test(tc, test_envelope_garbage);
    tcase_add_loop_test(tc, test_json_validate, 0,
                        sizeof(json_cases) / sizeof(json_cases[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_json_deep);
    tcase_add_test(tc, test_json_corpus);
    suite_add_tcase(s, tc);

    return s;
}


int
main(void)
{
    SRunner  *sr = srunner_create(legacy_suite());
    int       failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
