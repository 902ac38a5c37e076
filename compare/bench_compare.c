/*
 * bench_compare: figures for bench/bench_compare.py.
 *
 *   bench_compare pairs SIZE SECONDS   pairs/s through compare_pair_run()
 *                                      beside libbson's own JSON reader +
 *                                      a byte comparison (the baseline)
 *   bench_compare store CONNINFO N BATCH   results stored per second
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bson/bson.h>

#include "compare/compare.h"
#include "compare/compare_rules.h"

static const char *bench_rules =
    "{\"routes\": [{\"match\": \"POST /api/v1/orders\","
    " \"ignore\": [\"$.created_at\", \"$.lines[*].updated_at\"],"
    " \"tolerance\": {\"$.total\": {\"abs\": \"0.01\"},"
    "  \"$.lines[*].amount\": {\"abs\": \"0\"}},"
    " \"sets\": {\"$.lines\": \"sku\"}, \"mask\": [\"$.member.phone\"],"
    " \"status_equal\": [[200, 201]]}]}";


/* CPU time of this process: pairs per second per core, whatever else the
 * machine is doing */


static double bench_cpu(void);
static double bench_now(void);
static char *bench_order(size_t size, int variant);
static int bench_pairs(size_t size, double seconds);
static int bench_store(const char *db, long n, long batch);


static double
bench_cpu(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}


static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}


/* An order of about size bytes; variant 1 lists lines in reverse and
 * writes amounts with one decimal fewer. */
static char *
bench_order(size_t size, int variant)
{
    char    *buf = malloc(size + 4096);
    size_t   o = 0;
    int      i, n = 1;

    while ((size_t) n * 108 + 200 < size) {
        n++;
    }
    o += (size_t) sprintf(buf + o, "{\"order_id\": \"ORD-S001-000042\", "
        "\"store_id\": \"S001\", \"channel\": \"pos\", \"member_id\": "
        "\"M000123\", \"member\": {\"phone\": \"13800138000\"}, "
        "\"status\": \"paid\", \"created_at\": \"2026-11-21T10:00:0%dZ\", "
        "\"lines\": [", variant);
    for (i = 0; i < n; i++) {
        int k = variant ? n - 1 - i : i;

        o += (size_t) sprintf(buf + o, "%s{\"sku\": \"SKU%05d\", \"qty\": %d, "
            "\"unit_price\": \"129.00\", \"amount\": \"%s\", "
            "\"updated_at\": %d}", i ? ", " : "", k, k % 5 + 1,
            variant ? "258.0" : "258.00", variant);
    }
    o += (size_t) sprintf(buf + o, "], \"total\": \"%d.00\", "
                          "\"points_earned\": %d}", 258 * n, 258 * n);
    return buf;
}


static int
bench_pairs(size_t size, double seconds)
{
    char              *a = bench_order(size, 0), *b = bench_order(size, 1);
    compare_error_t    err;
    compare_rules_t   *rules;
    compare_pair_t     pair;
    compare_result_t  *res;
    double             t0, t;
    long               n = 0, nb = 0;
    bson_t             da, db;
    bson_error_t       berr;
    volatile int       eq = 0;

    rules = compare_rules_parse(bench_rules, strlen(bench_rules), &err);
    memset(&pair, 0, sizeof(pair));
    pair.method = "POST";
    pair.uri = "/api/v1/orders";
    pair.side_served = "legacy";
    pair.primary.status = 201;
    pair.shadow.status = 201;
    pair.primary.content_type = "application/json";
    pair.shadow.content_type = "application/json";
    pair.primary.body = (const uint8_t *) a;
    pair.primary.body_len = strlen(a);
    pair.shadow.body = (const uint8_t *) b;
    pair.shadow.body_len = strlen(b);
    res = compare_pair_run(rules, &pair, &err);
    if (compare_result_ndiffs(res) != 0) {
        fprintf(stderr, "bench pair differs: %s\n",
                compare_result_diff(res, 0)->path);
        return 1;
    }
    compare_result_free(res);
    t0 = bench_cpu();
    do {
        for (int i = 0; i < 100; i++) {
            res = compare_pair_run(rules, &pair, &err);
            compare_result_free(res);
        }
        n += 100;
        t = bench_cpu() - t0;
    } while (t < seconds);
    printf("pairs %zu %.0f\n", strlen(a), n / t);
    if (getenv("BENCH_NO_BASELINE") != NULL) {
        seconds = 0;
    }
    t0 = bench_cpu();
    do {
        for (int i = 0; i < 100; i++) {
            bson_init_from_json(&da, a, (ssize_t) strlen(a), &berr);
            bson_init_from_json(&db, b, (ssize_t) strlen(b), &berr);
            eq += bson_equal(&da, &db);
            bson_destroy(&da);
            bson_destroy(&db);
        }
        nb += 100;
        t = bench_cpu() - t0;
    } while (t < seconds);
    printf("baseline %zu %.0f\n", strlen(a), nb / t);
    compare_rules_free(rules);
    free(a);
    free(b);
    return 0;
}


static int
bench_store(const char *db, long n, long batch)
{
    compare_error_t    err;
    compare_store_t   *st;
    compare_pair_t     pair;
    compare_result_t  *res;
    char               rid[40];
    double             t0, t;
    long               i;

    st = compare_store_open(db, NULL, &err);
    if (st == NULL) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    memset(&pair, 0, sizeof(pair));
    pair.zone = "erp";
    pair.method = "POST";
    pair.uri = "/api/v1/orders";
    pair.store = "S001";
    pair.channel = "pos";
    pair.side_served = "legacy";
    pair.primary.status = 201;
    pair.shadow.status = 201;
    pair.primary.body = (const uint8_t *) "{\"total\": \"1.00\"}";
    pair.primary.body_len = strlen((const char *) pair.primary.body);
    pair.shadow.body = (const uint8_t *) "{\"total\": \"1.10\"}";
    pair.shadow.body_len = strlen((const char *) pair.shadow.body);
    res = compare_pair_run(NULL, &pair, &err);
    t0 = bench_now();
    for (i = 0; i < n; i++) {
        snprintf(rid, sizeof(rid), "%08lx%024lx", batch, i);
        pair.record_id = rid;
        pair.time_us = (int64_t) i;
        compare_store_put(st, &pair, res, &err);
        if ((i + 1) % batch == 0 && compare_store_flush(st, &err) != 0) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
    }
    if (compare_store_flush(st, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    t = bench_now() - t0;
    printf("store %ld %.0f\n", batch, n / t);
    compare_result_free(res);
    compare_store_free(st);
    return 0;
}


int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "pairs") == 0) {
        return bench_pairs((size_t) atol(argv[2]), atof(argv[3]));
    }
    if (argc == 5 && strcmp(argv[1], "store") == 0) {
        return bench_store(argv[2], atol(argv[3]), atol(argv[4]));
    }
    fprintf(stderr, "usage: bench_compare pairs SIZE SECONDS | "
                    "store CONNINFO N BATCH\n");
    return 2;
}
