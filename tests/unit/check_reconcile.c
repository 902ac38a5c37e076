/*
 * Unit tests of cutover-reconcile's pieces that need no database: hash
 * arithmetic, key ranges, their splitting at quantiles and the thresholds
 * of a level, the map file, the queries, and the output formats.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "common/cutover_embed.h"
#include "common/cutover_json.h"
#include "compare/reconcile.h"

CUTOVER_EMBED_FILE(check_reconcile_map, "compare/reconcile_map.json");
extern const char check_reconcile_map[];

static void check_run(reconcile_run_t *run, reconcile_map_t *map);
static void check_run_free(reconcile_run_t *run);
static Suite *reconcile_suite(void);

static const char *stock_map =
    "{\n"
    "  \"stock\": {\n"
    "    \"key\": [\"store_id\", \"sku\"],\n"
    "    \"values\": {\"on_hand\": \"integer\"},\n"
    "    \"new\": \"SELECT store_id, sku, on_hand FROM s;\",\n"
    "    \"legacy\": [\"SELECT mdbh AS store_id, spbm AS sku,\",\n"
    "               \"       kcsl AS on_hand FROM kc\"]\n"
    "  },\n"
    "  \"orders\": {\n"
    "    \"key\": [\"order_id\"],\n"
    "    \"values\": {\"status\": \"text\", \"total\": \"decimal\"},\n"
    "    \"new\": \"SELECT 1\", \"legacy\": \"SELECT 2\"\n"
    "  }\n"
    "}\n";


START_TEST(test_hash_parse_wraps)
{
    uint64_t  h;

    ck_assert_int_eq(reconcile_hash_parse("0", &h), RECONCILE_OK);
    ck_assert_uint_eq(h, 0);
    ck_assert_int_eq(reconcile_hash_parse("-1", &h), RECONCILE_OK);
    ck_assert_uint_eq(h, UINT64_MAX);
    ck_assert_int_eq(reconcile_hash_parse("18446744073709551616", &h),
                     RECONCILE_OK);
    ck_assert_uint_eq(h, 0);                /* 2^64 */
    ck_assert_int_eq(reconcile_hash_parse("-9223372036854775808", &h),
                     RECONCILE_OK);
    ck_assert_uint_eq(h, (uint64_t) 1 << 63);
    ck_assert_int_eq(reconcile_hash_parse("", &h), RECONCILE_ERROR);
    ck_assert_int_eq(reconcile_hash_parse("12a", &h), RECONCILE_ERROR);
    ck_assert_int_eq(reconcile_hash_parse("1.5", &h), RECONCILE_ERROR);
}
END_TEST


/* A range's sum (any size, as PostgreSQL's numeric) is the wrapping sum
 * of its parts' sums, in any order. */
START_TEST(test_hash_combine_is_the_sum_of_parts)
{
    int       i;
    char      text[64];
    uint64_t  a, b, c, whole, parts;
    int64_t   v[6] = { INT64_MAX, INT64_MAX, -5, INT64_MIN, 77, -1 };
    __int128  sum;

    sum = 0;
    for (i = 0; i < 6; i++) {
        sum += v[i];
    }
    /* the numeric text of the whole sum, exact */
    snprintf(text, sizeof(text), "%s%llu%019llu", sum < 0 ? "-" : "",
             (unsigned long long) ((sum < 0 ? -sum : sum)
                                   / (__int128) 10000000000000000000ULL),
             (unsigned long long) ((sum < 0 ? -sum : sum)
                                   % (__int128) 10000000000000000000ULL));
    ck_assert_int_eq(reconcile_hash_parse(text, &whole), RECONCILE_OK);

    snprintf(text, sizeof(text), "%lld", (long long) v[0]);
    reconcile_hash_parse(text, &a);
    parts = a;
    for (i = 1; i < 6; i++) {
        snprintf(text, sizeof(text), "%lld", (long long) v[i]);
        reconcile_hash_parse(text, &b);
        parts = reconcile_hash_combine(parts, b);
    }
    ck_assert_uint_eq(whole, parts);

    reconcile_hash_parse("3", &a);
    reconcile_hash_parse("-3", &b);
    c = reconcile_hash_combine(a, b);
    ck_assert_uint_eq(c, 0);
    ck_assert_uint_eq(reconcile_hash_combine(a, b),
                      reconcile_hash_combine(b, a));
}
END_TEST


/* The first sub-range starts at the parent's start, the last ends at its
 * end, the tiles' first keys are the bounds between. */
START_TEST(test_split_at_quantiles)
{
    reconcile_range_t   parent;
    reconcile_ranges_t  out;
    const char         *mins[3] = { "A\001SKU1", "B\001SKU5", "C\001SKU9" };

    memset(&out, 0, sizeof(out));
    parent.lo = "A";
    parent.hi = "D";
    ck_assert_int_eq(reconcile_split(&parent, mins, 3, &out), RECONCILE_OK);
    ck_assert_uint_eq(out.n, 3);
    ck_assert_str_eq(out.r[0].lo, "A");
    ck_assert_str_eq(out.r[0].hi, "B\001SKU5");
    ck_assert_str_eq(out.r[1].lo, "B\001SKU5");
    ck_assert_str_eq(out.r[1].hi, "C\001SKU9");
    ck_assert_str_eq(out.r[2].lo, "C\001SKU9");
    ck_assert_str_eq(out.r[2].hi, "D");
    ck_assert_int_eq(out.r[1].n[0], 0);
    reconcile_ranges_clear(&out);

    /* the end of the key space; no tile keeps the parent */
    parent.lo = "";
    parent.hi = NULL;
    ck_assert_int_eq(reconcile_split(&parent, mins, 2, &out), RECONCILE_OK);
    ck_assert_uint_eq(out.n, 2);
    ck_assert_str_eq(out.r[0].lo, "");
    ck_assert_ptr_null(out.r[1].hi);
    reconcile_ranges_clear(&out);
    ck_assert_int_eq(reconcile_split(&parent, mins, 0, &out), RECONCILE_OK);
    ck_assert_uint_eq(out.n, 1);
    ck_assert_str_eq(out.r[0].lo, "");
    ck_assert_ptr_null(out.r[0].hi);
    reconcile_ranges_clear(&out);
    free(out.r);
}
END_TEST


/* Gaps between ranges (key ranges that agreed) get buckets of their own,
 * never wanted; adjacent ranges share a bound. */
START_TEST(test_buckets_with_gaps)
{
    reconcile_range_t    r[3];
    reconcile_buckets_t  b;

    memset(r, 0, sizeof(r));
    r[0].lo = "a";
    r[0].hi = "c";
    r[1].lo = "c";                  /* adjacent */
    r[1].hi = "f";
    r[2].lo = "k";                  /* after a gap [f, k) */
    r[2].hi = "m";                  /* then [m, end) */
    ck_assert_int_eq(reconcile_buckets(r, 3, &b), RECONCILE_OK);
    ck_assert_str_eq(b.thresholds, "{\"a\",\"c\",\"f\",\"k\",\"m\"}");
    ck_assert_uint_eq(b.nbuckets, 5);
    ck_assert_int_eq(b.map[0], 0);
    ck_assert_int_eq(b.map[1], 1);
    ck_assert_int_eq(b.map[2], -1);
    ck_assert_int_eq(b.map[3], 2);
    ck_assert_int_eq(b.map[4], -1);
    ck_assert_str_eq(b.wanted, "{1,2,4}");
    reconcile_buckets_free(&b);

    /* the whole key space: one bucket */
    r[0].lo = "";
    r[0].hi = NULL;
    ck_assert_int_eq(reconcile_buckets(r, 1, &b), RECONCILE_OK);
    ck_assert_str_eq(b.thresholds, "{\"\"}");
    ck_assert_str_eq(b.wanted, "{1}");
    reconcile_buckets_free(&b);
}
END_TEST


START_TEST(test_text_array_and_stores)
{
    char             *s;
    const char       *items[3] = { "S001", "a\"b", "c\\d" };
    cutover_error_t   err;

    s = reconcile_text_array(items, 3);
    ck_assert_str_eq(s, "{\"S001\",\"a\\\"b\",\"c\\\\d\"}");
    free(s);
    s = reconcile_stores_literal("S001,S002", &err);
    ck_assert_str_eq(s, "{\"S001\",\"S002\"}");
    free(s);
    ck_assert_ptr_null(reconcile_stores_literal(",", &err));
    ck_assert_ptr_null(reconcile_stores_literal("S\xe9", &err));
    ck_assert_int_eq(reconcile_key_ok("S001 x~"), 1);
    ck_assert_int_eq(reconcile_key_ok("S\001"), 0);
    ck_assert_int_eq(reconcile_key_ok("\xe9\x97\xa8"), 0);
}
END_TEST


START_TEST(test_durations)
{
    uint64_t  ms;

    ck_assert_int_eq(reconcile_parse_duration("10s", &ms), RECONCILE_OK);
    ck_assert_uint_eq(ms, 10000);
    ck_assert_int_eq(reconcile_parse_duration("250ms", &ms), RECONCILE_OK);
    ck_assert_uint_eq(ms, 250);
    ck_assert_int_eq(reconcile_parse_duration("2m", &ms), RECONCILE_OK);
    ck_assert_uint_eq(ms, 120000);
    ck_assert_int_eq(reconcile_parse_duration("0", &ms), RECONCILE_OK);
    ck_assert_uint_eq(ms, 0);
    ck_assert_int_eq(reconcile_parse_duration("10", &ms), RECONCILE_ERROR);
    ck_assert_int_eq(reconcile_parse_duration("1y", &ms), RECONCILE_ERROR);
    ck_assert_int_eq(reconcile_parse_duration("-1s", &ms), RECONCILE_ERROR);
}
END_TEST


START_TEST(test_map_parse)
{
    reconcile_map_t  *map;
    cutover_error_t   err;

    map = reconcile_map_parse("m.json", stock_map, strlen(stock_map), &err);
    ck_assert_ptr_nonnull(map);
    ck_assert_int_eq(map->n, 2);
    ck_assert_str_eq(map->ledgers[0].name, "stock");
    ck_assert_int_eq(map->ledgers[0].nkeys, 2);
    ck_assert_int_eq(map->ledgers[0].has_store, 1);
    ck_assert_int_eq(map->ledgers[1].has_store, 0);
    ck_assert_int_eq(map->ledgers[1].types[1], RECONCILE_DECIMAL);
    /* the trailing semicolon goes, array lines are joined */
    ck_assert_str_eq(map->ledgers[0].sql[0],
                     "SELECT store_id, sku, on_hand FROM s");
    ck_assert_str_eq(map->ledgers[0].sql[1],
                     "SELECT mdbh AS store_id, spbm AS sku,\n"
                     "       kcsl AS on_hand FROM kc");
    ck_assert_int_eq(map->ledgers[0].line[0], 5);
    ck_assert_int_eq(map->ledgers[0].line[1], 6);
    ck_assert_int_eq(reconcile_map_find(map, "orders"), 1);
    ck_assert_int_eq(reconcile_map_find(map, "points"), -1);
    reconcile_map_free(map);

    /* the shipped map: three ledgers as the surface names them */
    map = reconcile_map_parse("shipped", check_reconcile_map,
                              strlen(check_reconcile_map), &err);
    ck_assert_ptr_nonnull(map);
    ck_assert_int_eq(map->n, 3);
    ck_assert_int_ge(reconcile_map_find(map, "stock"), 0);
    ck_assert_int_ge(reconcile_map_find(map, "points"), 0);
    ck_assert_int_ge(reconcile_map_find(map, "orders"), 0);
    reconcile_map_free(map);
}
END_TEST


static const struct {
    const char  *text;
    const char  *want;          /* in the message: file and line */
} bad_maps[] = {
    { "{\n\"stock\": {\n\"key\": [\"a\" \"b\"]}}", "m.json:3:" },
    { "[]", "m.json:1:" },
    { "{\"s\": {\n\"values\": {\"v\": \"integer\"},\n"
      "\"new\": \"x\", \"legacy\": \"y\"}}", "\"key\"" },
    { "{\"s\": {\"key\": [\"k\"],\n\"values\": {\"v\": \"float\"},\n"
      "\"new\": \"x\", \"legacy\": \"y\"}}", "m.json:2:" },
    { "{\"s\": {\"key\": [\"k;drop\"], \"values\": {\"v\": \"text\"},"
      " \"new\": \"x\", \"legacy\": \"y\"}}", "key column name" },
    { "{\"s\": {\"key\": [\"k\"], \"values\": {\"v\": \"text\"},\n"
      "\"new\": \"x\"}}", "no \"legacy\" SQL" },
    { "{\"s\": {\"key\": [\"k\"], \"values\": {\"v\": \"text\"},\n"
      "\"new\": \"x\",\n\"legacy\": \" ; \"}}", "m.json:3:" },
};


START_TEST(test_map_bad)
{
    reconcile_map_t  *map;
    cutover_error_t   err;

    memset(&err, 0, sizeof(err));
    map = reconcile_map_parse("m.json", bad_maps[_i].text,
                              strlen(bad_maps[_i].text), &err);
    ck_assert_ptr_null(map);
    ck_assert_msg(strstr(err.message, bad_maps[_i].want) != NULL,
                  "case %d: \"%s\" lacks \"%s\"", _i, err.message,
                  bad_maps[_i].want);
}
END_TEST


START_TEST(test_queries)
{
    char             *q;
    reconcile_map_t  *map;
    cutover_error_t   err;

    map = reconcile_map_parse("m.json", stock_map, strlen(stock_map), &err);
    ck_assert_ptr_nonnull(map);
    q = reconcile_sql_base(&map->ledgers[0], RECONCILE_LEGACY);
    /* composite key joined by \x01 in the C collation; the map's SQL as a
     * subquery; the --store filter on store_id */
    ck_assert_ptr_nonnull(strstr(q, "m.\"store_id\"::text || E'\\001' ||"
                                    " m.\"sku\"::text) COLLATE \"C\""));
    ck_assert_ptr_nonnull(strstr(q, "kcsl AS on_hand FROM kc\n) m"));
    ck_assert_ptr_nonnull(strstr(q, "m.\"store_id\"::text = ANY"));
    free(q);
    q = reconcile_sql(&map->ledgers[1], RECONCILE_NEW, "split");
    ck_assert_ptr_nonnull(strstr(q, "($6::bigint[])[g]"));
    ck_assert_ptr_nonnull(strstr(q, "unnest($2::text[])"));
    ck_assert_ptr_null(strstr(q, "ANY ($1::text[])"));  /* no store_id */
    free(q);
    q = reconcile_sql(&map->ledgers[1], RECONCILE_NEW, "fetchm");
    ck_assert_ptr_nonnull(strstr(q, "SELECT sk, k0, v0, v1"));
    free(q);
    ck_assert_ptr_null(reconcile_sql(&map->ledgers[1], 0, "nonsense"));
    reconcile_map_free(map);
}
END_TEST


static void
check_run(reconcile_run_t *run, reconcile_map_t *map)
{
    memset(run, 0, sizeof(*run));
    run->map = map;
    run->nsel = 2;
    run->sel[0] = 0;
    run->sel[1] = 1;
    run->res[0].rows[0] = 10;
    run->res[0].rows[1] = 9;
    run->res[0].differences = 3;
    run->res[0].listed = 2;
    run->res[0].rows_fetched = 19;
    run->diffs = calloc(2, sizeof(*run->diffs));
    run->ndiffs = 2;
    run->diffs[0].ledger = 0;
    run->diffs[0].kind = RECONCILE_MISSING_LEGACY;
    run->diffs[0].key = strdup("{\"store_id\": \"S1\", \"sku\": \"A\"}");
    run->diffs[0].val[0] = strdup("{\"on_hand\": 12}");
    run->diffs[1].ledger = 0;
    run->diffs[1].kind = RECONCILE_VALUE;
    run->diffs[1].key = strdup("{\"store_id\": \"S1\", \"sku\": \"B\"}");
    run->diffs[1].val[0] = strdup("{\"on_hand\": 1}");
    run->diffs[1].val[1] = strdup("{\"on_hand\": 2}");
}


static void
check_run_free(reconcile_run_t *run)
{
    size_t  i;

    for (i = 0; i < run->ndiffs; i++) {
        free(run->diffs[i].key);
        free(run->diffs[i].val[0]);
        free(run->diffs[i].val[1]);
    }
    free(run->diffs);
}


START_TEST(test_output_json)
{
    int                  n, led, d, at;
    char                *buf;
    size_t               len;
    FILE                *f;
    reconcile_map_t     *map;
    reconcile_run_t      run;
    cutover_error_t      err;
    cutover_json_tok_t   toks[256];
    char                 s[64];

    map = reconcile_map_parse("m.json", stock_map, strlen(stock_map), &err);
    check_run(&run, map);
    f = open_memstream(&buf, &len);
    reconcile_print_json(&run, f);
    fclose(f);

    n = cutover_json_parse(buf, len, toks, 256, s, sizeof(s));
    ck_assert_msg(n > 0, "%s: %s", s, buf);
    led = cutover_json_get(buf, toks, 0, "ledgers");
    ck_assert_int_eq(toks[led].size, 2);
    at = cutover_json_get(buf, toks, led + 1, "rows_new");
    ck_assert_int_eq(atoi(buf + toks[at].start), 10);
    at = cutover_json_get(buf, toks, led + 1, "differences");
    ck_assert_int_eq(atoi(buf + toks[at].start), 3);
    at = cutover_json_get(buf, toks, led + 1, "rows_fetched");
    ck_assert_int_eq(atoi(buf + toks[at].start), 19);
    ck_assert_int_ge(cutover_json_get(buf, toks, led + 1, "seconds"), 0);
    ck_assert_int_eq(cutover_json_get(buf, toks, led + 1, "stats"), -1);

    d = cutover_json_get(buf, toks, 0, "differences");
    ck_assert_int_eq(toks[d].size, 2);
    at = cutover_json_get(buf, toks, d + 1, "kind");
    cutover_json_string(buf, &toks[at], s, sizeof(s));
    ck_assert_str_eq(s, "missing_legacy");
    at = cutover_json_get(buf, toks, d + 1, "legacy");
    ck_assert_int_eq(toks[at].type, CUTOVER_JSON_NULL);
    at = cutover_json_get(buf, toks, d + 1, "key");
    ck_assert_int_eq(toks[at].type, CUTOVER_JSON_OBJECT);
    at = cutover_json_get(buf, toks, 0, "truncated");
    ck_assert_int_eq(toks[at].type, CUTOVER_JSON_TRUE);
    free(buf);

    /* --stats adds its figures */
    run.cfg.stats = 1;
    f = open_memstream(&buf, &len);
    reconcile_print_json(&run, f);
    fclose(f);
    n = cutover_json_parse(buf, len, toks, 256, s, sizeof(s));
    ck_assert_int_gt(n, 0);
    led = cutover_json_get(buf, toks, 0, "ledgers");
    at = cutover_json_get(buf, toks, led + 1, "stats");
    ck_assert_int_ge(cutover_json_get(buf, toks, at, "rows_hashed"), 0);
    ck_assert_int_ge(cutover_json_get(buf, toks, at, "bytes"), 0);
    free(buf);

    check_run_free(&run);
    reconcile_map_free(map);
}
END_TEST


START_TEST(test_output_text)
{
    char             *buf;
    size_t            len;
    FILE             *f;
    reconcile_map_t  *map;
    reconcile_run_t   run;
    cutover_error_t   err;

    map = reconcile_map_parse("m.json", stock_map, strlen(stock_map), &err);
    check_run(&run, map);
    f = open_memstream(&buf, &len);
    reconcile_print_text(&run, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "stock    DIFFER  rows new 10,"
                                      " legacy 9; 3 differences"));
    ck_assert_ptr_nonnull(strstr(buf, "orders   agree "));
    ck_assert_ptr_nonnull(strstr(buf, "stock {\"store_id\": \"S1\", \"sku\":"
                                      " \"B\"} value: new {\"on_hand\": 1},"
                                      " legacy {\"on_hand\": 2}"));
    ck_assert_ptr_nonnull(strstr(buf, "missing_legacy: new {\"on_hand\":"
                                      " 12}, legacy (none)"));
    ck_assert_ptr_nonnull(strstr(buf, "(2 of 3 differences listed)"));
    ck_assert_ptr_nonnull(strstr(buf, "the ledgers DIFFER"));
    ck_assert_int_eq(reconcile_total_differences(&run), 3);
    free(buf);
    check_run_free(&run);
    reconcile_map_free(map);
}
END_TEST


START_TEST(test_row_json)
{
    char                    *s;
    const char              *cols[3];
    reconcile_ledger_map_t   lm;
    char                     k0[] = "order_id", v0[] = "total",
                             v1[] = "lines", v2[] = "points";

    memset(&lm, 0, sizeof(lm));
    lm.nkeys = 1;
    lm.keys[0] = k0;
    lm.nvals = 3;
    lm.vals[0] = v0;
    lm.types[0] = RECONCILE_DECIMAL;
    lm.vals[1] = v1;
    lm.types[1] = RECONCILE_TEXT;
    lm.vals[2] = v2;
    lm.types[2] = RECONCILE_INTEGER;
    cols[0] = "12.50";
    cols[1] = "A:1,\"B\":2";
    cols[2] = "x1";             /* not a number: stays a string */
    s = reconcile_row_json(&lm, 1, cols);
    ck_assert_str_eq(s, "{\"total\": 12.50, \"lines\": \"A:1,\\\"B\\\":2\","
                        " \"points\": \"x1\"}");
    free(s);
    cols[0] = "0042";
    s = reconcile_row_json(&lm, 0, cols);
    ck_assert_str_eq(s, "{\"order_id\": \"0042\"}");
    free(s);
}
END_TEST


static Suite *
reconcile_suite(void)
{
    Suite  *s;
    TCase  *t;

    s = suite_create("reconcile");
    t = tcase_create("pieces");
    tcase_add_test(t, test_hash_parse_wraps);
    tcase_add_test(t, test_hash_combine_is_the_sum_of_parts);
    tcase_add_test(t, test_split_at_quantiles);
    tcase_add_test(t, test_buckets_with_gaps);
    tcase_add_test(t, test_text_array_and_stores);
    tcase_add_test(t, test_durations);
    tcase_add_test(t, test_map_parse);
    tcase_add_loop_test(t, test_map_bad, 0,
                        (int) (sizeof(bad_maps) / sizeof(bad_maps[0])));
    tcase_add_test(t, test_queries);
    tcase_add_test(t, test_output_json);
    tcase_add_test(t, test_output_text);
    tcase_add_test(t, test_row_json);
    suite_add_tcase(s, t);
    return s;
}


int
main(void)
{
    int       failed;
    SRunner  *sr;

    sr = srunner_create(reconcile_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
