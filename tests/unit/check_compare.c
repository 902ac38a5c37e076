/*
 * check_compare: the comparator library: parser (JSONTestSuite), every rule
 * kind and every difference kind (tables), properties, limits, rules file
 * errors, decimals, normalisation, noise learning, the outbox.
 */

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/corpus.h"
#include "compare/compare.h"
#include "compare/compare_decimal.h"
#include "compare/compare_json.h"
#include "compare/compare_norm.h"
#include "compare/compare_rules.h"

#define ROUTE "POST /api/v1/orders"
#define LINES_AB "{\"lines\":[{\"sku\":\"A\",\"q\":1},{\"sku\":\"B\",\"q\":2}]}"

static const char *rules_all =
    "{\"mask_key\": \"000102030405060708090a0b0c0d0e0f\","
    " \"routes\": [{\"match\": \"POST /api/v1/orders\","
    " \"ignore\": [\"$.created_at\", \"$.lines[*].updated_at\"],"
    " \"tolerance\": {\"$.total\": {\"abs\": \"0.01\"},"
    "   \"$.points\": {\"rel\": 0.001}},"
    " \"sets\": {\"$.lines\": \"sku\"},"
    " \"mask\": [\"$.member.phone\", \"$.member.name\"],"
    " \"normalize\": {\"$.name\": [\"case\", \"space\"], \"$.at\": \"time\"},"
    " \"status_equal\": [[200, 201]],"
    " \"headers\": [\"content-type\"]},"
    " {\"match\": \"GET /api/v1/orders/{id}\", \"ignore\": [\"$.x\"]}]}";


static compare_rules_t *
rules_from(const char *text)
{
    compare_error_t   err;
    compare_rules_t  *r = compare_rules_parse(text, strlen(text), &err);

    ck_assert_msg(r != NULL, "rules: %s", err.message);
    return r;
}


static void
fill(compare_response_t *r, int status, const char *body, const char **hdrs,
    size_t nh)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_type = "application/json";
    r->body = (const uint8_t *) body;
    r->body_len = strlen(body);
    r->headers = hdrs;
    r->nheaders = nh;
    r->latency_ms = 1.5;
}


static compare_result_t *
run_pair(const compare_rules_t *rules, const char *route, int sa,
    const char *a, int sb, const char *b)
{
    compare_pair_t     pair;
    compare_error_t    err;
    compare_result_t  *res;
    char               method[16] = "POST";
    const char        *uri = "/api/v1/orders";

    if (route != NULL) {
        const char *sp = strchr(route, ' ');

        memcpy(method, route, (size_t) (sp - route));
        method[sp - route] = '\0';
        uri = sp + 1;
    }
    memset(&pair, 0, sizeof(pair));
    pair.record_id = "0123456789abcdef0123456789abcdef";
    pair.zone = "erp";
    pair.method = method;
    pair.uri = uri;
    pair.store = "S001";
    pair.channel = "pos";
    pair.side_served = "legacy";
    fill(&pair.primary, sa, a, NULL, 0);
    fill(&pair.shadow, sb, b, NULL, 0);
    res = compare_pair_run(rules, &pair, &err);
    ck_assert_ptr_nonnull(res);
    return res;
}


/* --- every difference kind, no rules ------------------------------------ */

typedef struct {
    const char  *a;
    const char  *b;
    size_t       ndiffs;
    const char  *path;
    const char  *kind;
    const char  *va;
    const char  *vb;
} diff_case_t;

static const diff_case_t diff_cases[] = {
    { "{\"a\":1}", "{\"a\":1}", 0, NULL, NULL, NULL, NULL },
    { "{\"a\":1,\"b\":2}", "{\"a\":1}", 1, "$.b", "missing", "2", NULL },
    { "{\"a\":1}", "{\"a\":1,\"c\":[1]}", 1, "$.c", "extra", NULL, "[1]" },
    { "{\"a\":1}", "{\"a\":\"1\"}", 1, "$.a", "type", "1", "\"1\"" },
    { "{\"a\":1}", "{\"a\":2}", 1, "$.a", "value", "1", "2" },
    { "{\"a\":[1,2,3]}", "{\"a\":[3,1,2]}", 1, "$.a", "order", "[1,2,3]",
      "[3,1,2]" },
    { "{\"a\":[1,2]}", "{\"a\":[1,2,3]}", 1, "$.a[2]", "extra", NULL, "3" },
    { "{\"a\":{\"b\":[{\"c\":true}]}}", "{\"a\":{\"b\":[{\"c\":false}]}}", 1,
      "$.a.b[0].c", "value", "true", "false" },
    { "{\"a\":1.0}", "{\"a\":1}", 0, NULL, NULL, NULL, NULL },
    { "{\"a\":1e2}", "{\"a\":100}", 0, NULL, NULL, NULL, NULL },
    { "{\"a\":\"12.5\"}", "{\"a\":\"12.50\"}", 1, "$.a", "value", NULL, NULL },
    { "[1,2]", "[1,2]", 0, NULL, NULL, NULL, NULL },
    { "\"x\"", "\"y\"", 1, "$", "value", "\"x\"", "\"y\"" },
    { "{\"a b\":1}", "{\"a b\":2}", 1, "$[\"a b\"]", "value", "1", "2" },
    { "{\"a\":null}", "{}", 1, "$.a", "missing", "null", NULL },
    { "{\"k\":1,\"k\":2}", "{\"k\":1,\"k\":3}", 1, "$.k", "value", "2", "3" },
    { "{\"s\":\"a\\nb\"}", "{\"s\":\"a\\tb\"}", 1, "$.s", "value",
      "\"a\\nb\"", "\"a\\tb\"" },
};


START_TEST(test_diff_kinds)
{
    const diff_case_t     *c = &diff_cases[_i];
    compare_result_t      *res = run_pair(NULL, NULL, 200, c->a, 200, c->b);
    const compare_diff_t  *d;

    ck_assert_msg(compare_result_ndiffs(res) == c->ndiffs,
                  "case %d: %zu diffs, want %zu", _i,
                  compare_result_ndiffs(res), c->ndiffs);
    ck_assert_int_eq(compare_result_verdict(res),
                     c->ndiffs ? COMPARE_VERDICT_DIFFERENT
                               : COMPARE_VERDICT_EQUAL);
    if (c->path != NULL) {
        d = compare_result_diff(res, 0);
        ck_assert_str_eq(d->path, c->path);
        ck_assert_str_eq(compare_diff_kind_name(d->kind), c->kind);
        if (c->va != NULL) {
            ck_assert_str_eq(d->a, c->va);
        }
        if (c->vb != NULL) {
            ck_assert_str_eq(d->b, c->vb);
        }
        if (strcmp(c->kind, "missing") == 0) {
            ck_assert_ptr_null(d->b);
        }
        if (strcmp(c->kind, "extra") == 0) {
            ck_assert_ptr_null(d->a);
        }
    }
    compare_result_free(res);
}
END_TEST


/* --- every rule kind ---------------------------------------------------- */

typedef struct {
    const char  *route;
    int          sa;
    const char  *a;
    int          sb;
    const char  *b;
    size_t       ndiffs;
    const char  *path;
    const char  *kind;
} rule_case_t;

static const rule_case_t rule_cases[] = {
    /* ignore, with and without wildcards */
    { ROUTE, 200, "{\"created_at\":\"1\",\"v\":1}", 200,
      "{\"created_at\":\"2\",\"v\":1}", 0, NULL, NULL },
    { ROUTE, 200, "{\"lines\":[{\"sku\":\"A\",\"updated_at\":1}]}", 200,
      "{\"lines\":[{\"sku\":\"A\",\"updated_at\":2}]}", 0, NULL, NULL },
    { ROUTE, 200, "{\"created_at\":\"1\"}", 200, "{}", 0, NULL, NULL },
    /* tolerance abs, decimal strings as decimals */
    { ROUTE, 200, "{\"total\":\"12.5\"}", 200, "{\"total\":\"12.50\"}", 0,
      NULL, NULL },
    { ROUTE, 200, "{\"total\":\"258.00\"}", 200, "{\"total\":\"258.01\"}", 0,
      NULL, NULL },
    { ROUTE, 200, "{\"total\":\"258.00\"}", 200, "{\"total\":\"258.02\"}", 1,
      "$.total", "value" },
    { ROUTE, 200, "{\"total\":\"0.1\"}", 200, "{\"total\":0.11}", 0, NULL,
      NULL },
    { ROUTE, 200, "{\"total\":\"x\"}", 200, "{\"total\":\"1.00\"}", 1,
      "$.total", "value" },
    /* tolerance rel */
    { ROUTE, 200, "{\"points\":100000}", 200, "{\"points\":100100}", 0, NULL,
      NULL },
    { ROUTE, 200, "{\"points\":100000}", 200, "{\"points\":100101}", 1,
      "$.points", "value" },
    /* sets keyed by a field */
    { ROUTE, 200, LINES_AB, 200,
      "{\"lines\":[{\"sku\":\"B\",\"q\":2},{\"sku\":\"A\",\"q\":1}]}", 0,
      NULL, NULL },
    { ROUTE, 200, LINES_AB, 200,
      "{\"lines\":[{\"sku\":\"B\",\"q\":3},{\"sku\":\"A\",\"q\":1}]}", 1,
      "$.lines[sku=B].q", "value" },
    { ROUTE, 200, "{\"lines\":[{\"sku\":\"A\"}]}", 200,
      "{\"lines\":[{\"sku\":\"A\"},{\"sku\":\"C\"}]}", 1, "$.lines[sku=C]",
      "extra" },
    { ROUTE, 200, "{\"lines\":[{\"sku\":7}]}", 200, "{\"lines\":[]}", 1,
      "$.lines[sku=7]", "missing" },
    /* normalisation */
    { ROUTE, 200, "{\"name\":\"  Li  Lei \"}", 200, "{\"name\":\"li lei\"}", 0,
      NULL, NULL },
    { ROUTE, 200, "{\"name\":\"Li Lei\"}", 200, "{\"name\":\"Li Mei\"}", 1,
      "$.name", "value" },
    { ROUTE, 200, "{\"at\":\"2026-11-21T10:00:00Z\"}", 200,
      "{\"at\":\"2026-11-21 18:00:00+08:00\"}", 0, NULL, NULL },
    { ROUTE, 200, "{\"at\":\"2026-11-21T10:00:00.000Z\"}", 200,
      "{\"at\":\"1795255200\"}", 0, NULL, NULL },
    { ROUTE, 200, "{\"at\":\"2026-11-21T10:00:00Z\"}", 200,
      "{\"at\":\"2026-11-21T10:00:01Z\"}", 1, "$.at", "value" },
    /* status classes */
    { ROUTE, 200, "{}", 201, "{}", 0, NULL, NULL },
    { ROUTE, 200, "{}", 404, "{}", 1, "status", "status" },
    { "POST /api/v2/orders", 200, "{}", 201, "{}", 1, "status", "status" },
    /* masking: equal values match, different ones differ */
    { ROUTE, 200, "{\"member\":{\"phone\":\"13800000000\"}}", 200,
      "{\"member\":{\"phone\":\"13800000000\"}}", 0, NULL, NULL },
    { ROUTE, 200, "{\"member\":{\"phone\":\"13800000000\"}}", 200,
      "{\"member\":{\"phone\":\"13800000001\"}}", 1, "$.member.phone",
      "value" },
    /* path templates: {id} matches, rules of another route do not apply */
    { "GET /api/v1/orders/O42", 200, "{\"x\":1}", 200, "{\"x\":2}", 0, NULL,
      NULL },
    { "GET /api/v1/orders/O42/more", 200, "{\"x\":1}", 200, "{\"x\":2}", 1,
      "$.x", "value" },
};


START_TEST(test_rule_kinds)
{
    const rule_case_t     *c = &rule_cases[_i];
    compare_rules_t       *rules = rules_from(rules_all);
    compare_result_t      *res;
    const compare_diff_t  *d;

    res = run_pair(rules, c->route, c->sa, c->a, c->sb, c->b);
    ck_assert_msg(compare_result_ndiffs(res) == c->ndiffs,
                  "case %d: %zu diffs, want %zu (%s)", _i,
                  compare_result_ndiffs(res), c->ndiffs,
                  compare_result_ndiffs(res)
                      ? compare_result_diff(res, 0)->path : "");
    if (c->path != NULL) {
        d = compare_result_diff(res, 0);
        ck_assert_str_eq(d->path, c->path);
        ck_assert_str_eq(compare_diff_kind_name(d->kind), c->kind);
    }
    compare_result_free(res);
    compare_rules_free(rules);
}
END_TEST


START_TEST(test_mask_never_clear)
{
    compare_rules_t       *rules = rules_from(rules_all);
    compare_result_t      *res;
    const compare_diff_t  *d;
    size_t                 i;

    res = run_pair(rules, ROUTE, 200,
                   "{\"member\":{\"phone\":\"13800000000\",\"name\":\"Wang\"}}",
                   200, "{\"member\":[1]}");
    ck_assert_uint_eq(compare_result_ndiffs(res), 1);
    d = compare_result_diff(res, 0);
    ck_assert_str_eq(d->path, "$.member");
    ck_assert_ptr_null(strstr(d->a, "13800000000"));
    ck_assert_ptr_null(strstr(d->a, "Wang"));
    ck_assert_ptr_nonnull(strstr(d->a, "hmac:"));
    compare_result_free(res);
    res = run_pair(rules, ROUTE, 200,
                   "{\"member\":{\"phone\":\"13800000000\"}}", 200,
                   "{\"member\":{\"phone\":\"13900000000\"}}");
    for (i = 0; (d = compare_result_diff(res, i)) != NULL; i++) {
        ck_assert_ptr_null(strstr(d->a, "13800000000"));
        ck_assert_ptr_null(strstr(d->b, "13900000000"));
        ck_assert_int_eq(strncmp(d->a, "\"hmac:", 6), 0);
    }
    compare_result_free(res);
    compare_rules_free(rules);
}
END_TEST


START_TEST(test_headers)
{
    compare_rules_t       *rules = rules_from(rules_all);
    compare_pair_t         pair;
    compare_error_t        err;
    compare_result_t      *res;
    const char            *ha[] = { "Content-Type: application/json",
                                    "X-Other: 1" };
    const char            *hb[] = { "content-type: text/plain",
                                    "X-Other: 2" };
    const compare_diff_t  *d;

    memset(&pair, 0, sizeof(pair));
    pair.record_id = "0123456789abcdef0123456789abcdef";
    pair.method = "POST";
    pair.uri = "/api/v1/orders?x=1";
    fill(&pair.primary, 200, "{}", ha, 2);
    fill(&pair.shadow, 200, "{}", hb, 2);
    res = compare_pair_run(rules, &pair, &err);
    ck_assert_uint_eq(compare_result_ndiffs(res), 1);
    d = compare_result_diff(res, 0);
    ck_assert_str_eq(d->path, "header:content-type");
    ck_assert_int_eq(d->kind, COMPARE_DIFF_HEADER);
    ck_assert_str_eq(d->b, "\"text/plain\"");
    ck_assert_str_eq(compare_result_route(res), ROUTE);
    compare_result_free(res);
    compare_rules_free(rules);
}
END_TEST


START_TEST(test_verdicts)
{
    compare_pair_t     pair;
    compare_error_t    err;
    compare_result_t  *res;

    memset(&pair, 0, sizeof(pair));
    pair.method = "GET";
    pair.uri = "/api/v1/orders/ORD0042";
    pair.side_served = "new";
    fill(&pair.primary, 200, "{}", NULL, 0);
    fill(&pair.shadow, 0, "", NULL, 0);
    pair.shadow.error = "timeout";
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res),
                     COMPARE_VERDICT_SHADOW_FAILED);
    ck_assert_str_eq(compare_result_route(res), "GET /api/v1/orders/{id}");
    compare_result_free(res);
    fill(&pair.shadow, 200, "{\"a\":", NULL, 0);
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_UNPARSEABLE);
    ck_assert_ptr_nonnull(strstr(compare_result_detail(res),
                                 "on the legacy side"));
    compare_result_free(res);
    /* other content types: bytes and hashes */
    fill(&pair.shadow, 200, "<html>", NULL, 0);
    fill(&pair.primary, 200, "<html>", NULL, 0);
    pair.primary.content_type = "text/html";
    pair.shadow.content_type = "text/html";
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_EQUAL);
    compare_result_free(res);
    fill(&pair.shadow, 200, "<html>!", NULL, 0);
    pair.shadow.content_type = "text/html";
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_DIFFERENT);
    ck_assert_ptr_nonnull(strstr(compare_result_diff(res, 0)->a, "sha256:"));
    compare_result_free(res);
    /* empty bodies on both sides are equal */
    fill(&pair.primary, 204, "", NULL, 0);
    fill(&pair.shadow, 204, "", NULL, 0);
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_EQUAL);
    compare_result_free(res);
    /* an empty body beside a document: unparseable when it claims to be
     * JSON, else missing on that side */
    fill(&pair.primary, 200, "{\"a\":1}", NULL, 0);
    fill(&pair.shadow, 204, "", NULL, 0);
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_UNPARSEABLE);
    ck_assert_ptr_nonnull(strstr(compare_result_detail(res), "empty body"));
    compare_result_free(res);
    pair.shadow.content_type = NULL;
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_DIFFERENT);
    ck_assert_int_eq(compare_result_diff(res, 1)->kind, COMPARE_DIFF_MISSING);
    ck_assert_str_eq(compare_result_diff(res, 1)->path, "$");
    ck_assert_ptr_null(compare_result_diff(res, 1)->b);
    compare_result_free(res);
    /* truncated bodies by their hashes */
    fill(&pair.primary, 200, "{\"a\":", NULL, 0);
    fill(&pair.shadow, 200, "{\"a\":", NULL, 0);
    pair.primary.body_truncated = 1;
    pair.shadow.body_truncated = 1;
    pair.primary.body_sha256 = "ab";
    pair.shadow.body_sha256 = "cd";
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_DIFFERENT);
    compare_result_free(res);
    /* one side whole and without a hash (recorded under a larger limit),
     * the other truncated: the whole body is hashed to compare */
    fill(&pair.primary, 200, "0123456789", NULL, 0);
    fill(&pair.shadow, 200, "0123", NULL, 0);
    pair.primary.body_truncated = 0;
    pair.primary.body_sha256 = NULL;
    pair.shadow.body_truncated = 1;
    pair.shadow.body_sha256 =
        "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882";
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_EQUAL);
    compare_result_free(res);
    fill(&pair.primary, 200, "0123456780", NULL, 0);
    pair.primary.body_sha256 = NULL;
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_DIFFERENT);
    compare_result_free(res);
}
END_TEST


START_TEST(test_bson_body)
{
    bson_t             *doc = BCON_NEW("a", BCON_INT32(1), "b", "[",
                                       BCON_UTF8("x"), "]");
    compare_pair_t      pair;
    compare_error_t     err;
    compare_result_t   *res;

    memset(&pair, 0, sizeof(pair));
    pair.method = "GET";
    pair.uri = "/x";
    fill(&pair.primary, 200, "{\"a\": 1, \"b\": [\"x\"]}", NULL, 0);
    fill(&pair.shadow, 200, "", NULL, 0);
    pair.shadow.content_type = "application/bson";
    pair.shadow.body = bson_get_data(doc);
    pair.shadow.body_len = doc->len;
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_EQUAL);
    compare_result_free(res);
    /* detected without a content type */
    pair.shadow.content_type = NULL;
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_EQUAL);
    compare_result_free(res);
    /* dates far outside what a calendar prints are still shown */
    {
        bson_t  *d1 = BCON_NEW("t", BCON_DATE_TIME(INT64_MAX));
        bson_t  *d2 = BCON_NEW("t", BCON_DATE_TIME(INT64_MIN));

        pair.primary.content_type = "application/bson";
        pair.primary.body = bson_get_data(d1);
        pair.primary.body_len = d1->len;
        pair.shadow.body = bson_get_data(d2);
        pair.shadow.body_len = d2->len;
        res = compare_pair_run(NULL, &pair, &err);
        ck_assert_uint_eq(compare_result_ndiffs(res), 1);
        ck_assert_ptr_nonnull(strstr(compare_result_diff(res, 0)->a, "ms"));
        compare_result_free(res);
        bson_destroy(d1);
        bson_destroy(d2);
        fill(&pair.primary, 200, "{\"a\": 1, \"b\": [\"x\"]}", NULL, 0);
        pair.shadow.body = bson_get_data(doc);
    }
    /* a corrupt BSON body */
    pair.shadow.content_type = "application/bson";
    pair.shadow.body_len = doc->len - 1;
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_UNPARSEABLE);
    compare_result_free(res);
    bson_destroy(doc);
}
END_TEST


/* --- rules file errors name the rule and the problem --------------------- */

typedef struct {
    const char  *text;
    const char  *want;
} rules_err_case_t;

static const rules_err_case_t rules_err_cases[] = {
    { "[", "not JSON" },
    { "[]", "must hold an object" },
    { "{\"routes\": 1}", "\"routes\" must be an array" },
    { "{\"routes\": [{}]}", "rule 1 (no match): \"match\" is missing" },
    { "{\"routes\": [{\"match\": \"POST\"}]}", "rule 1 (POST)" },
    { "{\"routes\": [{\"match\": \"GET /a\"}, {\"match\": \"GET /b\","
      " \"ignore\": [\"lines\"]}]}", "rule 2 (GET /b): ignore: path" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"tolerance\": {\"$.t\":"
      " {\"abs\": \"x\"}}}]}", "tolerance \"$.t\": abs must be" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"tolerance\": {\"$.t\":"
      " {\"pct\": 1}}}]}", "unknown member \"pct\"" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"sets\": {\"$.l\": 1}}]}",
      "sets \"$.l\"" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"status_equal\": [[200, 999]]}]}",
      "999 is not an HTTP status" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"normalize\": {\"$.x\":"
      " \"upper\"}}]}", "normalize \"$.x\"" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"ignore\": [\"$.a[\"]}]}",
      "bad path" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"colour\": 1}]}",
      "unknown member \"colour\"" },
    { "{\"mask_key\": \"zz\", \"routes\": []}", "mask_key" },
    { "{\"routes\": [], \"extra\": 1}", "unknown member \"extra\"" },
    { "{\"routes\": [{\"match\": \"GET /a\", \"sets\": {\"$.l\": \"k\"},"
      " \"sets\": {\"$.m\": \"k\"}}]}",
      "rule 1 (GET /a): \"sets\" is given twice" },
    { "{\"routes\": [], \"routes\": []}", "\"routes\" is given twice" },
};


START_TEST(test_rules_errors)
{
    const rules_err_case_t  *c = &rules_err_cases[_i];
    compare_error_t          err;
    compare_rules_t         *r;

    r = compare_rules_parse(c->text, strlen(c->text), &err);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err.message, c->want) != NULL,
                  "case %d: \"%s\" lacks \"%s\"", _i, err.message, c->want);
}
END_TEST


START_TEST(test_rules_load_file)
{
    compare_error_t   err;
    compare_rules_t  *r;
    char              path[] = "/tmp/check_compare_rulesXXXXXX";
    int               fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, rules_all, strlen(rules_all)),
                     (ssize_t) strlen(rules_all));
    close(fd);
    r = compare_rules_load(path, &err);
    ck_assert_ptr_nonnull(r);
    compare_rules_free(r);
    unlink(path);
    ck_assert_ptr_null(compare_rules_load("/nonexistent/rules.json", &err));
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/rules.json"));
    r = compare_rules_load(NULL, &err);
    ck_assert_ptr_nonnull(r);
    compare_rules_free(r);
    compare_rules_free(NULL);
}
END_TEST


/* --- decimals ------------------------------------------------------------ */

typedef struct {
    const char  *a;
    const char  *b;
    const char  *abs;
    const char  *rel;
    int          within;
} dec_case_t;

static const dec_case_t dec_cases[] = {
    { "12.5", "12.50", NULL, NULL, 1 },
    { "12.5", "12.51", "0.01", NULL, 1 },
    { "12.5", "12.52", "0.01", NULL, 0 },
    { "-1", "1", "2", NULL, 1 },
    { "-1", "1", "1.99", NULL, 0 },
    { "1000", "1001", NULL, "0.001", 1 },
    { "1000", "1001.01", NULL, "0.001", 0 },
    { "0.1", "0.3", "0.2", NULL, 1 },
    { "1e3", "1000.00", NULL, NULL, 1 },
    { "0", "-0.00", NULL, NULL, 1 },
    { "99999999999999999999.01", "99999999999999999999.02", "0.01", NULL, 1 },
    { "1e-300", "1e300", "1", NULL, -1 },
};


START_TEST(test_decimal)
{
    const dec_case_t   *c = &dec_cases[_i];
    compare_decimal_t   a, b, t, r;

    ck_assert_int_eq(compare_decimal_parse(c->a, strlen(c->a), &a), 0);
    ck_assert_int_eq(compare_decimal_parse(c->b, strlen(c->b), &b), 0);
    if (c->abs) {
        compare_decimal_parse(c->abs, strlen(c->abs), &t);
    }
    if (c->rel) {
        compare_decimal_parse(c->rel, strlen(c->rel), &r);
    }
    ck_assert_int_eq(compare_decimal_within(&a, &b, c->abs ? &t : NULL,
                                            c->rel ? &r : NULL), c->within);
    ck_assert_int_eq(compare_decimal_within(&b, &a, c->abs ? &t : NULL,
                                            c->rel ? &r : NULL), c->within);
}
END_TEST


START_TEST(test_decimal_parse)
{
    static const char  *bad[] = { "", "-", "1.", ".5", "1e", "1x", "--1",
                                  "1e+", "0x10" };
    compare_decimal_t   d;
    char                buf[64];
    size_t              i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(compare_decimal_parse(bad[i], strlen(bad[i]), &d),
                         -1);
    }
    compare_decimal_parse("012.500", 7, &d);
    compare_decimal_format(&d, buf, sizeof(buf));
    ck_assert_str_eq(buf, "12.5");
    compare_decimal_parse("-0.0012", 7, &d);
    compare_decimal_format(&d, buf, sizeof(buf));
    ck_assert_str_eq(buf, "-0.0012");
    compare_decimal_parse("1.5e3", 5, &d);
    compare_decimal_format(&d, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1500");
}
END_TEST


/* --- normalisation is idempotent --------------------------------------- */

static const char *norm_inputs[] = {
    "  Hello   World ", "ABC", "", "   ", "2026-11-21T10:00:00Z",
    "2026-11-21 18:00:00+08:00", "2026/11/21 10:00", "1763719200",
    "1763719200123", "2026-11-21T10:00:00.123456789Z", "not a time",
    "\t tab\nnew line ", "ÄÖÜ mixed Case",
};


START_TEST(test_norm_idempotent)
{
    const char  *s = norm_inputs[_i];
    unsigned     flags;
    char        *once, *twice;
    size_t       l1, l2;

    for (flags = 1; flags < 8; flags++) {
        once = compare_norm_string(s, strlen(s), flags, &l1);
        twice = compare_norm_string(once, l1, flags, &l2);
        ck_assert_msg(l1 == l2 && memcmp(once, twice, l1) == 0,
                      "\"%s\" flags %u: \"%s\" then \"%s\"", s, flags, once,
                      twice);
        free(once);
        free(twice);
    }
}
END_TEST


START_TEST(test_time_parse)
{
    int64_t  a, b;
    char     buf[40];

    ck_assert_int_eq(compare_time_parse("2026-11-21T10:00:00Z", 20, &a), 0);
    ck_assert_int_eq(compare_time_parse("2026-11-21T18:00:00+0800", 24, &b),
                     0);
    ck_assert(a == b);
    compare_time_format(a, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2026-11-21T10:00:00.000000Z");
    ck_assert_int_eq(compare_time_parse("2026-13-01", 10, &a), -1);
    ck_assert_int_eq(compare_time_parse("yesterday", 9, &a), -1);
}
END_TEST


/* --- the JSONTestSuite corpus through the parser ------------------------ */

START_TEST(test_corpus)
{
    corpus_t           c;
    size_t             len, ny = 0, nn = 0, ni = 0;
    char              *text;
    bson_t             doc;
    compare_error_t    err;
    compare_result_t  *res;
    compare_parse_status_t st;

    corpus_open(&c);
    while (corpus_next(&c)) {
        text = c.doc;
        len = c.len;
        st = compare_json_parse((const uint8_t *) text, len, &doc, &err);
        if (st == COMPARE_PARSE_OK) {
            bson_destroy(&doc);
        }
        if (c.name[0] == 'y') {
            ck_assert_msg(st == COMPARE_PARSE_OK, "%s rejected: %s",
                          c.name, err.message);
            ny++;
        } else if (c.name[0] == 'n') {
            ck_assert_msg(st != COMPARE_PARSE_OK, "%s accepted", c.name);
            nn++;
        } else {
            ni++;
        }
        /* and through a whole pair: a verdict, never a crash */
        res = run_pair(NULL, NULL, 200, "{}", 200, "{}");
        compare_result_free(res);
        {
            compare_pair_t  pair;

            memset(&pair, 0, sizeof(pair));
            pair.method = "GET";
            pair.uri = "/x";
            pair.side_served = "new";
            fill(&pair.primary, 200, "{}", NULL, 0);
            fill(&pair.shadow, 200, "", NULL, 0);
            pair.shadow.body = (const uint8_t *) text;
            pair.shadow.body_len = len;
            res = compare_pair_run(NULL, &pair, &err);
            ck_assert_ptr_nonnull(res);
            if (c.name[0] == 'n') {
                ck_assert_int_eq(compare_result_verdict(res),
                                 COMPARE_VERDICT_UNPARSEABLE);
                ck_assert_ptr_nonnull(strstr(compare_result_detail(res),
                                             "legacy side"));
            }
            if (c.name[0] == 'y') {
                ck_assert_int_ne(compare_result_verdict(res),
                                 COMPARE_VERDICT_UNPARSEABLE);
            }
            compare_result_free(res);
            /* property: a document against itself has no differences */
            pair.primary = pair.shadow;
            res = compare_pair_run(NULL, &pair, &err);
            if (c.name[0] == 'y') {
                ck_assert_msg(compare_result_ndiffs(res) == 0,
                              "%s differs from itself", c.name);
            }
            compare_result_free(res);
        }
    }
    /* every kind of case was seen */
    ck_assert_uint_gt(ny, 20);
    ck_assert_uint_gt(nn, 50);
    ck_assert_uint_gt(ni, 5);
    corpus_check_count(&c);
}
END_TEST


/* property: the count of differences is the same whichever side is first,
 * with missing and extra swapped */
static const char *sym_docs[] = {
    "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":\"x\"}}",
    "{\"a\":2,\"b\":[3,2,1],\"e\":null}",
    "{\"b\":[1,2],\"c\":{\"d\":\"y\",\"f\":[{}]}}",
    "[1,{\"a\":1},[2]]",
    "{\"lines\":[{\"sku\":\"A\",\"q\":1},{\"sku\":\"B\"},{\"sku\":\"A\"}]}",
    "{\"lines\":[{\"sku\":\"B\",\"q\":1},{\"sku\":\"A\",\"q\":2}],"
    "\"total\":\"1.0\"}",
    "{\"k\":1,\"k\":2,\"k\":3}",
    "\"text\"",
    "{\"member\":{\"phone\":\"1\",\"name\":\"n\"},\"total\":\"1.00\"}",
};


START_TEST(test_symmetry)
{
    compare_rules_t       *rules = rules_from(rules_all);
    size_t                 j, n = sizeof(sym_docs) / sizeof(sym_docs[0]), k;
    compare_result_t      *ab, *ba;
    const compare_diff_t  *d;
    int                    miss_ab, extra_ba;

    for (j = 0; j < n; j++) {
        ab = run_pair(rules, ROUTE, 200, sym_docs[_i], 200, sym_docs[j]);
        ba = run_pair(rules, ROUTE, 200, sym_docs[j], 200, sym_docs[_i]);
        ck_assert_msg(compare_result_ndiffs(ab) == compare_result_ndiffs(ba),
                      "%d/%zu: %zu vs %zu", _i, j, compare_result_ndiffs(ab),
                      compare_result_ndiffs(ba));
        miss_ab = extra_ba = 0;
        for (k = 0; (d = compare_result_diff(ab, k)) != NULL; k++) {
            miss_ab += d->kind == COMPARE_DIFF_MISSING;
        }
        for (k = 0; (d = compare_result_diff(ba, k)) != NULL; k++) {
            extra_ba += d->kind == COMPARE_DIFF_EXTRA;
        }
        ck_assert_int_eq(miss_ab, extra_ba);
        if (j == (size_t) _i) {
            ck_assert_uint_eq(compare_result_ndiffs(ab), 0);
        }
        compare_result_free(ab);
        compare_result_free(ba);
    }
    compare_rules_free(rules);
}
END_TEST


/* --- limits ------------------------------------------------------------- */

START_TEST(test_deep_and_large)
{
    size_t             n = 100000, i;
    char              *deep = malloc(2 * n + 1);
    compare_result_t  *res;
    char              *big;
    compare_pair_t     pair;
    compare_error_t    err;

    for (i = 0; i < n; i++) {
        deep[i] = '[';
        deep[n + i] = ']';
    }
    deep[2 * n] = '\0';
    res = run_pair(NULL, NULL, 200, "[]", 200, deep);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_UNPARSEABLE);
    ck_assert_ptr_nonnull(strstr(compare_result_detail(res),
                                 "unparseable/too large (too deep)"));
    compare_result_free(res);
    free(deep);

    big = malloc(50 * 1024 * 1024);
    memset(big, ' ', 50 * 1024 * 1024);
    big[0] = '[';
    big[50 * 1024 * 1024 - 1] = ']';
    memset(&pair, 0, sizeof(pair));
    pair.method = "GET";
    pair.uri = "/";
    fill(&pair.primary, 200, "[]", NULL, 0);
    fill(&pair.shadow, 200, "", NULL, 0);
    pair.shadow.body = (const uint8_t *) big;
    pair.shadow.body_len = 50 * 1024 * 1024;
    res = compare_pair_run(NULL, &pair, &err);
    ck_assert_int_eq(compare_result_verdict(res), COMPARE_VERDICT_UNPARSEABLE);
    ck_assert_ptr_nonnull(strstr(compare_result_detail(res), "too large"));
    compare_result_free(res);
    free(big);
}
END_TEST


START_TEST(test_many_diffs_kept)
{
    char              *a, *b;
    size_t             i, o = 0, p = 0;
    compare_result_t  *res;

    a = malloc(20000);
    b = malloc(20000);
    a[o++] = '[';
    b[p++] = '[';
    for (i = 0; i < 1000; i++) {
        o += (size_t) sprintf(a + o, "%s%zu", i ? "," : "", i);
        p += (size_t) sprintf(b + p, "%s%zu", i ? "," : "", i + 1);
    }
    a[o++] = ']';
    b[p++] = ']';
    a[o] = b[p] = '\0';
    res = run_pair(NULL, NULL, 200, a, 200, b);
    ck_assert_uint_eq(compare_result_ndiffs(res), 1000);
    ck_assert_ptr_nonnull(compare_result_diff(res, COMPARE_MAX_DIFFS_KEPT - 1));
    ck_assert_ptr_null(compare_result_diff(res, COMPARE_MAX_DIFFS_KEPT));
    compare_result_free(res);
    free(a);
    free(b);
}
END_TEST


/* --- paths -------------------------------------------------------------- */

START_TEST(test_paths)
{
    compare_path_t   p;
    compare_error_t  err;
    compare_seg_t    segs[3];
    char             buf[64];

    ck_assert_int_eq(compare_path_parse("$.lines[sku=SKU00042].qty", &p, &err),
                     0);
    ck_assert_int_eq(p.nsegs, 3);
    ck_assert_int_eq(p.segs[1].type, COMPARE_SEG_KEY);
    segs[0] = p.segs[0];
    segs[1] = p.segs[1];
    segs[2] = p.segs[2];
    compare_path_format(segs, 3, buf, sizeof(buf));
    ck_assert_str_eq(buf, "$.lines[sku=SKU00042].qty");
    compare_path_free(&p);
    ck_assert_int_eq(compare_path_parse("$.a[*].*[\"x.y\"][3]", &p, &err), 0);
    ck_assert_int_eq(p.nsegs, 5);
    ck_assert_int_eq(p.segs[4].index, 3);
    compare_path_free(&p);
    ck_assert_int_eq(compare_path_parse("lines", &p, &err), -1);
    ck_assert_int_eq(compare_path_parse("$..a", &p, &err), -1);
    ck_assert_int_eq(compare_path_parse("$.a[x", &p, &err), -1);
}
END_TEST


/* --- noise learning ----------------------------------------------------- */

START_TEST(test_noise)
{
    compare_noise_t   *noise = compare_noise_new();
    compare_result_t  *res;
    char              *report;
    int                i;

    for (i = 0; i < 3; i++) {
        char a[128], b[128];

        snprintf(a, sizeof(a), "{\"id\":1,\"ts\":%d,\"l\":[{\"t\":%d}]}", i,
                 i);
        snprintf(b, sizeof(b), "{\"id\":1,\"ts\":%d,\"l\":[{\"t\":%d}]}",
                 i + 10, i + (i == 0));
        res = run_pair(NULL, NULL, 200, a, 200, b);
        compare_noise_add(noise, "GET /api/v1/members/{id}", res);
        compare_result_free(res);
    }
    report = compare_noise_report(noise, 2);
    ck_assert_ptr_nonnull(strstr(report, "\"pairs\" : 3"));
    ck_assert_ptr_nonnull(strstr(report, "\"path\" : \"$.ts\", \"count\" : 3"));
    ck_assert_ptr_null(strstr(report, "$.l[*].t"));
    ck_assert_ptr_nonnull(strstr(report, "\"ignore\" : [ \"$.ts\" ]"));
    free(report);
    report = compare_noise_report(noise, 1);
    ck_assert_ptr_nonnull(strstr(report, "$.l[*].t"));
    free(report);
    /* the rules part loads as a rules file and ignores the noise */
    report = compare_noise_rules(noise, 2);
    ck_assert_ptr_nonnull(report);
    {
        compare_rules_t  *r = rules_from(report);

        res = run_pair(r, "GET /api/v1/members/M1", 200, "{\"ts\":1}", 200,
                       "{\"ts\":2}");
        ck_assert_uint_eq(compare_result_ndiffs(res), 0);
        compare_result_free(res);
        compare_rules_free(r);
    }
    free(report);
    compare_noise_free(noise);
    compare_noise_free(NULL);
}
END_TEST


/* --- the outbox (no database) ------------------------------------------- */

START_TEST(test_outbox_only)
{
    char               dir[] = "/tmp/check_compare_outboxXXXXXX";
    char               sub[300];
    compare_store_t   *st;
    compare_error_t    err;
    compare_result_t  *res;
    compare_pair_t     pair;
    int                i;
    DIR               *d;
    struct dirent     *de;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/outbox", dir);
    ck_assert_ptr_null(compare_store_open(NULL, NULL, &err));
    st = compare_store_open(NULL, sub, &err);
    ck_assert_msg(st != NULL, "%s", err.message);
    memset(&pair, 0, sizeof(pair));
    pair.record_id = "0123456789abcdef0123456789abcdef";
    pair.method = "GET";
    pair.uri = "/";
    fill(&pair.primary, 200, "{\"a\":1}", NULL, 0);
    fill(&pair.shadow, 200, "{\"a\":2}", NULL, 0);
    res = compare_pair_run(NULL, &pair, &err);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(compare_store_put(st, &pair, res, &err), COMPARE_OK);
    }
    ck_assert_uint_eq(compare_store_pending(st), 0);
    ck_assert_int_eq(compare_store_flush(st, &err), COMPARE_OK);
    ck_assert_uint_eq(compare_store_pending(st), 5);
    ck_assert_int_eq(compare_store_put(st, &pair, res, &err), COMPARE_OK);
    ck_assert_int_eq(compare_store_flush(st, &err), COMPARE_OK);
    ck_assert_uint_eq(compare_store_pending(st), 6);
    compare_store_free(st);
    /* pending survives a restart */
    st = compare_store_open(NULL, sub, &err);
    ck_assert_uint_eq(compare_store_pending(st), 6);
    compare_store_free(st);
    compare_store_free(NULL);
    compare_result_free(res);
    d = opendir(sub);
    while ((de = readdir(d)) != NULL) {
        char p[600];

        snprintf(p, sizeof(p), "%s/%s", sub, de->d_name);
        if (de->d_name[0] != '.') {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(sub);
    rmdir(dir);
}
END_TEST


Suite *
compare_suite(void)
{
    Suite  *s = suite_create("compare");
    TCase  *tc;

    tc = tcase_create("normal");
    tcase_add_loop_test(tc, test_diff_kinds, 0,
                        sizeof(diff_cases) / sizeof(diff_cases[0]));
    tcase_add_loop_test(tc, test_rule_kinds, 0,
                        sizeof(rule_cases) / sizeof(rule_cases[0]));
    tcase_add_test(tc, test_mask_never_clear);
    tcase_add_test(tc, test_headers);
    tcase_add_test(tc, test_bson_body);
    tcase_add_loop_test(tc, test_decimal, 0,
                        sizeof(dec_cases) / sizeof(dec_cases[0]));
    tcase_add_test(tc, test_decimal_parse);
    tcase_add_test(tc, test_time_parse);
    tcase_add_test(tc, test_paths);
    tcase_add_test(tc, test_noise);
    tcase_add_test(tc, test_outbox_only);
    suite_add_tcase(s, tc);

    tc = tcase_create("properties");
    tcase_add_loop_test(tc, test_norm_idempotent, 0,
                        sizeof(norm_inputs) / sizeof(norm_inputs[0]));
    tcase_add_loop_test(tc, test_symmetry, 0,
                        sizeof(sym_docs) / sizeof(sym_docs[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_verdicts);
    tcase_add_loop_test(tc, test_rules_errors, 0,
                        sizeof(rules_err_cases) / sizeof(rules_err_cases[0]));
    tcase_add_test(tc, test_rules_load_file);
    tcase_add_test(tc, test_corpus);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_deep_and_large);
    tcase_add_test(tc, test_many_diffs_kept);
    suite_add_tcase(s, tc);
    return s;
}


int
main(void)
{
    SRunner  *sr = srunner_create(compare_suite());
    int       failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
