/*
 * fuzz_compare: libFuzzer target for the parser and the diff.  The input is
 * split at its first NUL byte (or in half) into the two bodies of a pair,
 * compared under rules that exercise every rule kind; the whole input is
 * also parsed alone, as JSON, as BSON and as a rules file.
 */

#include <stdlib.h>
#include <string.h>

#include "compare/compare.h"
#include "compare/compare_json.h"
#include "compare/compare_rules.h"

static const char *fuzz_rules_text =
    "{\"mask_key\": \"000102030405060708090a0b0c0d0e0f\", \"routes\": ["
    "{\"match\": \"POST /f\", \"ignore\": [\"$.a[*].t\", \"$.*.u\"],"
    " \"tolerance\": {\"$.n\": {\"abs\": \"0.01\"}, \"$.m\": {\"rel\": 0.1},"
    "  \"$[*]\": {\"abs\": \"1\"}},"
    " \"sets\": {\"$.a\": \"k\", \"$.b[*].c\": \"id\"},"
    " \"mask\": [\"$.p\", \"$.b[*].q\"],"
    " \"normalize\": {\"$.s\": [\"case\", \"space\", \"time\"],"
    "  \"$.a[*].s\": \"time\"},"
    " \"status_equal\": [[200, 201]], \"headers\": [\"content-type\"]}]}";

static compare_rules_t *fuzz_rules;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t     *nul = memchr(data, 0, size);
    size_t             la = nul ? (size_t) (nul - data) : size / 2;
    size_t             lb = nul ? size - la - 1 : size - la;
    compare_pair_t     pair;
    compare_error_t    err;
    compare_result_t  *res;
    bson_t             doc;

    if (fuzz_rules == NULL) {
        fuzz_rules = compare_rules_parse(fuzz_rules_text,
                                         strlen(fuzz_rules_text), &err);
        if (fuzz_rules == NULL) {
            abort();
        }
    }
    if (compare_json_parse(data, size, &doc, &err) == COMPARE_PARSE_OK) {
        bson_destroy(&doc);
    }
    if (compare_bson_parse(data, size, &doc, &err) == COMPARE_PARSE_OK) {
        bson_destroy(&doc);
    }
    /* the input as a rules file: loads or names its problem */
    {
        compare_rules_t *r = compare_rules_parse((const char *) data, size,
                                                 &err);

        if (r == NULL && err.message[0] == '\0') {
            abort();
        }
        compare_rules_free(r);
    }
    memset(&pair, 0, sizeof(pair));
    pair.record_id = "0123456789abcdef0123456789abcdef";
    pair.method = "POST";
    pair.uri = "/f";
    pair.side_served = "new";
    pair.primary.status = 200;
    pair.primary.body = data;
    pair.primary.body_len = la;
    pair.shadow.status = 201;
    pair.shadow.body = data + size - lb;
    pair.shadow.body_len = lb;
    res = compare_pair_run(fuzz_rules, &pair, &err);
    if (res == NULL) {
        abort();
    }
    compare_result_free(res);
    /* with the bodies swapped, the count of differences is the same */
    {
        compare_response_t  t = pair.primary;
        compare_result_t   *r1, *r2;

        pair.primary.status = pair.shadow.status = 200;
        t.status = 200;
        r1 = compare_pair_run(NULL, &pair, &err);
        pair.primary = pair.shadow;
        pair.shadow = t;
        r2 = compare_pair_run(NULL, &pair, &err);
        if (r1 == NULL || r2 == NULL
            || (compare_result_verdict(r1) != COMPARE_VERDICT_UNPARSEABLE
                && compare_result_ndiffs(r1) != compare_result_ndiffs(r2)
                && compare_result_ndiffs(r1) < COMPARE_MAX_DIFFS_KEPT))
        {
            abort();
        }
        compare_result_free(r1);
        compare_result_free(r2);
    }
    return 0;
}
