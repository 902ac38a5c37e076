/*
 * Unit tests of the module's plain-C core: JSON tokenizer, percent parsing,
 * buckets, rule matching, dial changes, state file, signatures, audit chain.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_hash.h"
#include "ngx_module/cutover_auth.h"
#include "ngx_module/cutover_dial.h"
#include "common/cutover_json.h"
#include "tests/unit/corpus.h"


/* --- percent ------------------------------------------------------------ */

static const struct {
    const char  *text;
    int32_t      bp;
} percent_cases[] = {
    { "0", 0 }, { "100", 10000 }, { "12.5", 1250 }, { "12.50", 1250 },
    { "0.01", 1 }, { "99.99", 9999 }, { "1e1", 1000 }, { "1.25e1", 1250 },
    { "1E2", 10000 }, { "-0", 0 }, { "0e999", 0 }, { "5000e-2", 5000 },
    { "5e-2", 5 },
    { "0.010", 1 },
    { "-1", -1 }, { "100.001", -1 }, { "100.01", -1 }, { "abc", -1 },
    { "NaN", -1 }, { "1e999", -1 }, { "1e-999", -1 }, { "", -1 },
    { "12.", -1 }, { ".5", -1 }, { "0.001", -1 }, { "1e", -1 },
    { "12.5x", -1 }, { "99999999999999999999999", -1 }, { "+5", -1 },
    { "Infinity", -1 }, { "-0.01", -1 }
};


START_TEST(test_percent_parse)
{
    cutover_error_t  err;
    const char      *t = percent_cases[_i].text;

    ck_assert_int_eq(cutover_percent_parse(t, strlen(t), &err),
                     percent_cases[_i].bp);
}
END_TEST


START_TEST(test_percent_format)
{
    char  buf[16];

    cutover_percent_format(1250, buf);
    ck_assert_str_eq(buf, "12.5");
    cutover_percent_format(1, buf);
    ck_assert_str_eq(buf, "0.01");
    cutover_percent_format(10000, buf);
    ck_assert_str_eq(buf, "100");
    cutover_percent_format(1205, buf);
    ck_assert_str_eq(buf, "12.05");
}
END_TEST


/* --- buckets ------------------------------------------------------------ */

START_TEST(test_bucket_stable_and_uniform)
{
    int       i, hist[10] = { 0 };
    char      key[32];
    uint32_t  b;

    /* pinned: a change of hash would move every store at once */
    ck_assert_uint_eq(cutover_bucket("S001:pos", 8),
                      cutover_bucket("S001:pos", 8));
    ck_assert_uint_lt(cutover_bucket("", 0), CUTOVER_BUCKETS);

    for (i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "S%05d:pos", i);
        b = cutover_bucket(key, strlen(key));
        ck_assert_uint_lt(b, CUTOVER_BUCKETS);
        hist[b / 1000]++;
    }

    /* each tenth of the buckets gets 10 % +- 0.5 % of similar keys */
    for (i = 0; i < 10; i++) {
        ck_assert_int_gt(hist[i], 9500);
        ck_assert_int_lt(hist[i], 10500);
    }
}
END_TEST


START_TEST(test_bucket_pinned_values)
{
    /* the bucket function is part of the contract: a store must keep its
     * bucket across upgrades, so these values never change */
    ck_assert_uint_eq(cutover_bucket("S001:pos", 8), 4589);
    ck_assert_uint_eq(cutover_bucket("S002:eshop", 10), 9811);
    ck_assert_uint_eq(cutover_bucket("S200:marketplace", 16), 8237);
    ck_assert_uint_eq(cutover_bucket("", 0), 9367);
}
END_TEST


static int
cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}


START_TEST(test_record_ids_unique)
{
    int        i, n = 100000;
    char      *ids, a[32], b[32];
    uint64_t   s0 = 0x0123456789abcdefULL, s1 = 0xfedcba9876543210ULL;

    ids = malloc((size_t) n * 32);
    ck_assert_ptr_nonnull(ids);

    for (i = 0; i < n; i++) {
        cutover_record_id(s0, s1, (uint64_t) i + 1, ids + 32 * i);
    }

    /* no id repeats within a worker */
    qsort(ids, (size_t) n, 32, cmp_id);
    for (i = 1; i < n; i++) {
        ck_assert(memcmp(ids + 32 * (i - 1), ids + 32 * i, 32) != 0);
    }

    for (i = 0; i < 32; i++) {
        ck_assert(strchr("0123456789abcdef", ids[i]) != NULL);
    }

    /* another worker's seed gives another id for the same counter */
    cutover_record_id(s0, s1, 7, a);
    cutover_record_id(s0 + 1, s1, 7, b);
    ck_assert(memcmp(a, b, 32) != 0);
    cutover_record_id(s0, s1, 7, b);
    ck_assert(memcmp(a, b, 32) == 0);

    free(ids);
}
END_TEST


/* --- rules and dials ---------------------------------------------------- */

static cutover_state_t *
state_new(void)
{
    cutover_state_t  *st = malloc(sizeof(cutover_state_t));

    ck_assert_ptr_nonnull(st);
    cutover_state_init(st);
    return st;
}


static void
dial(cutover_state_t *st, const char *rule, int32_t bp, const char *store,
    const char *channel)
{
    cutover_dial_t   *d = calloc(1, sizeof(cutover_dial_t));
    cutover_state_t  *next = malloc(sizeof(cutover_state_t));
    cutover_error_t   err;

    snprintf(d->rule, sizeof(d->rule), "%s", rule);
    d->bp = bp;

    if (store) {
        d->stores[0] = store;
        d->nstores = 1;
        d->has_stores = 1;
    }

    if (channel) {
        d->channels[0] = channel;
        d->nchannels = 1;
        d->has_channels = 1;
    }

    ck_assert_msg(cutover_state_dial(next, st, d, 1, &err) == CUTOVER_OK,
                  "%s", err.message);
    memcpy(st, next, sizeof(*st));
    free(next);
    free(d);
}


START_TEST(test_route_default)
{
    cutover_route_t   r;
    cutover_state_t  *st = state_new();

    cutover_state_route(st, "S001", 4, "pos", 3, 0, &r);
    ck_assert_str_eq(r.rule_id, "default");
    ck_assert_int_eq(r.to_new, 0);

    dial(st, "default", 1, NULL, NULL);
    cutover_state_route(st, "S001", 4, "pos", 3, 0, &r);
    ck_assert_int_eq(r.to_new, 1);
    cutover_state_route(st, "S001", 4, "pos", 3, 1, &r);
    ck_assert_int_eq(r.to_new, 0);
    ck_assert_uint_eq(r.version, 2);

    free(st);
}
END_TEST


START_TEST(test_route_rules_in_order)
{
    cutover_route_t   r;
    cutover_state_t  *st = state_new();

    dial(st, "pilot", 10000, "S001", NULL);
    dial(st, "eshop", 5000, NULL, "eshop");
    dial(st, "pilot_pos", 0, "S002", "pos");

    /* rules are checked in creation order, default last */
    ck_assert_int_eq(cutover_state_find(st, "pilot"), 0);
    ck_assert_int_eq(cutover_state_find(st, "eshop"), 1);
    ck_assert_int_eq(cutover_state_find(st, "pilot_pos"), 2);
    ck_assert_int_eq(cutover_state_find(st, "default"), 3);

    cutover_state_route(st, "S001", 4, "eshop", 5, 9999, &r);
    ck_assert_str_eq(r.rule_id, "pilot");
    ck_assert_int_eq(r.to_new, 1);

    cutover_state_route(st, "S002", 4, "eshop", 5, 100, &r);
    ck_assert_str_eq(r.rule_id, "eshop");
    ck_assert_int_eq(r.to_new, 1);

    cutover_state_route(st, "S002", 4, "pos", 3, 100, &r);
    ck_assert_str_eq(r.rule_id, "pilot_pos");
    ck_assert_int_eq(r.to_new, 0);

    cutover_state_route(st, "S0021", 5, "pos", 3, 100, &r);
    ck_assert_str_eq(r.rule_id, "default");

    /* a prefix of a store id is not the store */
    cutover_state_route(st, "S00", 3, "pos", 3, 100, &r);
    ck_assert_str_eq(r.rule_id, "default");

    free(st);
}
END_TEST


START_TEST(test_raise_only_moves_to_new)
{
    int               i, was;
    char              key[32];
    uint32_t          b;
    cutover_route_t   r;
    cutover_state_t  *st = state_new();

    for (i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "S%04d:app", i);
        b = cutover_bucket(key, strlen(key));

        dial(st, "default", 1000, NULL, NULL);
        cutover_state_route(st, key, 5, "app", 3, b, &r);
        was = r.to_new;

        dial(st, "default", 2000, NULL, NULL);
        cutover_state_route(st, key, 5, "app", 3, b, &r);
        ck_assert(!was || r.to_new);

        if (i > 200) {
            break;
        }
    }

    free(st);
}
END_TEST


static const struct {
    const char  *rule;
    int32_t      bp;
    const char  *store;
    const char  *channel;
    const char  *code;
} bad_dials[] = {
    { "newrule", 100, NULL, NULL, "unknown_rule" },
    { "default", 100, "S001", NULL, "invalid_request" },
    { "bad id!", 100, "S001", NULL, "invalid_request" },
    { "r", 100, "S 01", NULL, "invalid_request" },
    { "r", 100, NULL, "a,b", "invalid_request" },
    { "r", 10001, "S001", NULL, "invalid_percent" },
    { "r", -5, "S001", NULL, "invalid_percent" },
    { "", 100, "S001", NULL, "invalid_request" },
    { "abc/def", 100, "S001", NULL, "invalid_request" }
};


START_TEST(test_dial_errors)
{
    cutover_dial_t   *d = calloc(1, sizeof(cutover_dial_t));
    cutover_state_t  *st = state_new(), *next = malloc(sizeof(*next));
    cutover_error_t   err;

    snprintf(d->rule, sizeof(d->rule), "%s", bad_dials[_i].rule);
    d->bp = bad_dials[_i].bp;

    if (bad_dials[_i].store) {
        d->stores[0] = bad_dials[_i].store;
        d->nstores = 1;
        d->has_stores = 1;
    }

    if (bad_dials[_i].channel) {
        d->channels[0] = bad_dials[_i].channel;
        d->nchannels = 1;
        d->has_channels = 1;
    }

    ck_assert_int_eq(cutover_state_dial(next, st, d, 1, &err),
                     CUTOVER_ERROR);
    ck_assert_str_eq(err.name, bad_dials[_i].code);
    ck_assert_uint_eq(st->version, 1);

    free(d);
    free(st);
    free(next);
}
END_TEST


START_TEST(test_rules_limit)
{
    int               i;
    char              id[16], store[16];
    cutover_dial_t   *d = calloc(1, sizeof(cutover_dial_t));
    cutover_state_t  *st = state_new(), *next = malloc(sizeof(*next));
    cutover_error_t   err;

    for (i = 0; i < CUTOVER_MAX_RULES - 1; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        snprintf(store, sizeof(store), "S%d", i);
        dial(st, id, 100, store, NULL);
    }

    ck_assert_uint_eq(st->nrules, CUTOVER_MAX_RULES);

    snprintf(d->rule, sizeof(d->rule), "one_more");
    d->stores[0] = "S9";
    d->nstores = 1;
    d->has_stores = 1;
    ck_assert_int_eq(cutover_state_dial(next, st, d, 1, &err), CUTOVER_ERROR);
    ck_assert_str_eq(err.name, "too_many_rules");

    free(d);
    free(st);
    free(next);
}
END_TEST


START_TEST(test_rollback)
{
    cutover_route_t   r;
    cutover_state_t  *st = state_new();

    dial(st, "pilot", 10000, "S001", NULL);
    dial(st, "default", 5000, NULL, NULL);
    cutover_state_rollback(st, 5);

    ck_assert_int_eq(st->rolled_back, 1);
    ck_assert_uint_eq(st->version, 4);
    cutover_state_route(st, "S001", 4, "pos", 3, 0, &r);
    ck_assert_int_eq(r.to_new, 0);

    /* a later dial makes the zone active again */
    dial(st, "default", 100, NULL, NULL);
    ck_assert_int_eq(st->rolled_back, 0);

    free(st);
}
END_TEST


/* --- state file --------------------------------------------------------- */

START_TEST(test_state_roundtrip)
{
    int               n;
    char             *buf = malloc(CUTOVER_STATE_TEXT_MAX);
    cutover_state_t  *st = state_new(), *back = state_new();
    cutover_error_t   err;

    dial(st, "pilot", 1250, "S001", "pos");
    dial(st, "eshop", 5000, NULL, "eshop");
    cutover_state_rollback(st, 77);
    dial(st, "default", 1, NULL, NULL);

    n = cutover_state_encode(st, "erp", buf, CUTOVER_STATE_TEXT_MAX);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(cutover_state_decode(back, buf, (size_t) n, &err),
                     CUTOVER_OK);

    ck_assert_uint_eq(back->version, st->version);
    ck_assert_uint_eq(back->nrules, 3);
    ck_assert_str_eq(back->rules[0].id, "pilot");
    ck_assert_uint_eq(back->rules[0].bp, 0);
    ck_assert_uint_eq(back->rules[2].bp, 1);
    ck_assert_uint_eq(back->rules[1].counter, st->rules[1].counter);

    /* every single-byte corruption is caught */
    buf[20] ^= 1;
    ck_assert_int_eq(cutover_state_decode(back, buf, (size_t) n, &err),
                     CUTOVER_ERROR);
    buf[20] ^= 1;
    ck_assert_int_eq(cutover_state_decode(back, buf, (size_t) n - 1, &err),
                     CUTOVER_ERROR);
    ck_assert_int_eq(cutover_state_decode(back, "garbage\n", 8, &err),
                     CUTOVER_ERROR);

    free(buf);
    free(st);
    free(back);
}
END_TEST


/* --- JSON --------------------------------------------------------------- */

START_TEST(test_json_tokens)
{
    int                 n, v;
    char                s[64];
    cutover_json_tok_t  t[32];
    const char         *j = "{\"a\": [1, {\"b\": null}], \"c\": \"x\\u00e9\\n\","
                            " \"d\": true}";

    n = cutover_json_parse(j, strlen(j), t, 32, s, sizeof(s));
    ck_assert_int_eq(n, 11);
    ck_assert_int_eq(t[0].type, CUTOVER_JSON_OBJECT);
    ck_assert_uint_eq(t[0].size, 3);

    v = cutover_json_get(j, t, 0, "c");
    ck_assert_int_gt(v, 0);
    ck_assert_int_eq(cutover_json_string(j, &t[v], s, sizeof(s)), 4);
    ck_assert_str_eq(s, "x\xc3\xa9\n");

    v = cutover_json_get(j, t, 0, "d");
    ck_assert_int_eq(t[v].type, CUTOVER_JSON_TRUE);
    ck_assert_int_eq(cutover_json_get(j, t, 0, "zz"), -1);

    /* too few tokens is an error, not an overflow */
    ck_assert_int_eq(cutover_json_parse(j, strlen(j), t, 3, s, sizeof(s)),
                     -1);
}
END_TEST


START_TEST(test_json_corpus)
{
    int                  n, fails = 0;
    char                 err[128];
    corpus_t             c;
    cutover_json_tok_t  *toks = malloc(4096 * sizeof(cutover_json_tok_t));

    corpus_open(&c);

    while (corpus_next(&c)) {
        n = cutover_json_parse(c.doc, c.len, toks, 4096, err, sizeof(err));

        /* the validate-only mode (toks NULL) agrees with the full one */
        ck_assert_msg((cutover_json_parse(c.doc, c.len, NULL, 0, err,
                                          sizeof(err)) >= 0) == (n >= 0),
                      "modes disagree on %s", c.name);

        if ((c.name[0] == 'y' && n < 0) || (c.name[0] == 'n' && n >= 0)) {
            fprintf(stderr, "corpus: %s: %s\n", c.name,
                    n < 0 ? err : "accepted");
            fails++;
        }
    }

    free(toks);

    corpus_check_count(&c);
    ck_assert_int_eq(fails, 0);
}
END_TEST


/* --- signatures and keys ------------------------------------------------ */

START_TEST(test_sign_known_vector)
{
    char           sig[65];
    unsigned char  secret[16];

    memset(secret, 0xab, sizeof(secret));

    /* computed independently: python3 hmac/hashlib over the same string */
    ck_assert_int_eq(cutover_auth_sign(secret, 16, "GET", 3,
                                       "/cutover/status", 15, 1700000000,
                                       "00112233445566778899aabbccddeeff",
                                       "", 0, sig), 0);
    ck_assert_str_eq(sig, "25ebf1c8d4dceb3b18f4db10b5fe1d7e"
                          "07ccf0e846b0648c7617a17ca2267876");
}
END_TEST


/* What cutoverctl and shadowd's guard send is what the module accepts. */
START_TEST(test_auth_header_round_trip)
{
    char             line[512];
    cutover_key_t    key;
    cutover_auth_t   auth;
    cutover_error_t  err;
    const char      *k = "ops operator 000102030405060708090a0b0c0d0e0f\n";
    const char      *prefix = "Authorization: ";

    ck_assert_int_eq(cutover_key_parse_line(k, strlen(k), &key, &err), 1);
    ck_assert_int_eq(cutover_auth_header(key.id, key.secret, key.secret_len,
                                         "POST",
                                         "http://[::1]:8080/cutover/dial?x=1",
                                         "{\"reason\":\"r\"}", 42, line,
                                         sizeof(line), &err), CUTOVER_OK);
    ck_assert(strncmp(line, prefix, strlen(prefix)) == 0);
    ck_assert_int_eq(cutover_auth_parse(line + strlen(prefix),
                                        strlen(line) - strlen(prefix),
                                        &auth, &err), 0);
    ck_assert_str_eq(auth.key_id, "ops");
    ck_assert_int_eq(auth.timestamp, 42);
    ck_assert_int_eq(cutover_auth_verify(&key, &auth, "POST", 4,
                                         "/cutover/dial?x=1", 17,
                                         "{\"reason\":\"r\"}", 14), 1);
    /* the body is signed */
    ck_assert_int_eq(cutover_auth_verify(&key, &auth, "POST", 4,
                                         "/cutover/dial?x=1", 17,
                                         "{\"reason\":\"s\"}", 14), 0);
    /* no path to sign */
    ck_assert_int_eq(cutover_auth_header(key.id, key.secret, key.secret_len,
                                         "GET", "http://gw", NULL, 42, line,
                                         sizeof(line), &err), CUTOVER_ERROR);
    ck_assert_str_eq(err.name, "bad_url");
}
END_TEST


START_TEST(test_verify)
{
    char             sig[65], hdr[300];
    cutover_key_t    key;
    cutover_auth_t   auth;
    cutover_error_t  err;
    const char      *line = "ops operator "
                            "000102030405060708090a0b0c0d0e0f\n";

    ck_assert_int_eq(cutover_key_parse_line(line, strlen(line), &key, &err),
                     1);
    ck_assert_str_eq(key.id, "ops");
    ck_assert_int_eq(key.role, CUTOVER_ROLE_OPERATOR);

    cutover_auth_sign(key.secret, key.secret_len, "POST", 4, "/c/dial", 7,
                      42, "0123456789abcdef", "{}", 2, sig);
    snprintf(hdr, sizeof(hdr), "CUTOVER-HMAC-SHA256 KeyId=ops, "
             "Timestamp=42, Nonce=0123456789abcdef, Signature=%s", sig);

    ck_assert_int_eq(cutover_auth_parse(hdr, strlen(hdr), &auth, &err), 0);
    ck_assert_int_eq(auth.timestamp, 42);
    ck_assert(cutover_auth_verify(&key, &auth, "POST", 4, "/c/dial", 7, "{}",
                                  2));

    /* any change of method, path, body or time breaks it */
    ck_assert(!cutover_auth_verify(&key, &auth, "GET", 3, "/c/dial", 7,
                                   "{}", 2));
    ck_assert(!cutover_auth_verify(&key, &auth, "POST", 4, "/c/dia", 6,
                                   "{}", 2));
    ck_assert(!cutover_auth_verify(&key, &auth, "POST", 4, "/c/dial", 7,
                                   "{ }", 3));
    auth.timestamp = 43;
    ck_assert(!cutover_auth_verify(&key, &auth, "POST", 4, "/c/dial", 7,
                                   "{}", 2));
}
END_TEST


#define ZERO64 \
    "0000000000000000000000000000000000000000000000000000000000000000"

static const char  *bad_headers[] = {
    "Basic abc",
    "CUTOVER-HMAC-SHA256 KeyId=ops, Timestamp=1, Nonce=0123456789abcdef",
    "CUTOVER-HMAC-SHA256 KeyId=ops, Timestamp=x1, Nonce=0123456789abcdef, "
    "Signature=" ZERO64,
    "CUTOVER-HMAC-SHA256 KeyId=ops, Timestamp=1, Nonce=0123, "
    "Signature=" ZERO64,
    "CUTOVER-HMAC-SHA256 KeyId=ops, Timestamp=1, Nonce=0123456789abcdeg, "
    "Signature=" ZERO64,
    "CUTOVER-HMAC-SHA256 KeyId=ops, Timestamp=1, Nonce=0123456789abcdef, "
    "Signature=00",
    "CUTOVER-HMAC-SHA256 KeyId=, Timestamp=1, Nonce=0123456789abcdef, "
    "Signature=" ZERO64,
};


START_TEST(test_bad_headers)
{
    cutover_auth_t   auth;
    cutover_error_t  err;

    ck_assert_int_eq(cutover_auth_parse(bad_headers[_i],
                                        strlen(bad_headers[_i]), &auth,
                                        &err), -1);
}
END_TEST


static const char  *bad_keys[] = {
    "ops operator 0011",
    "ops king 000102030405060708090a0b0c0d0e0f",
    "o!ps viewer 000102030405060708090a0b0c0d0e0f",
    "ops viewer 000102030405060708090a0b0c0d0e0g",
    "ops viewer",
    "ops viewer 000102030405060708090a0b0c0d0e0f extra",
};


START_TEST(test_bad_keys)
{
    cutover_key_t    key;
    cutover_error_t  err;

    ck_assert_int_eq(cutover_key_parse_line(bad_keys[_i],
                                            strlen(bad_keys[_i]), &key,
                                            &err), -1);
}
END_TEST


/* --- audit chain -------------------------------------------------------- */

START_TEST(test_audit_chain)
{
    int                    i, n[3];
    char                   lines[3][CUTOVER_AUDIT_LINE_MAX], hash[3][65];
    char                   h[65];
    cutover_error_t        err;
    cutover_audit_entry_t  e;

    for (i = 0; i < 3; i++) {
        memset(&e, 0, sizeof(e));
        e.seq = (uint64_t) i + 1;
        e.time = 1700000000 + i;
        e.key_id = "ops";
        e.action = "dial";
        e.result = i == 1 ? "refused:forbidden" : "accepted";
        e.to = "{\"percent\":10}";
        e.reason = "raise \"pilot\"\n";
        e.pending_break = i == 2 ? 2 : 0;
        e.prev = i ? hash[i - 1] : CUTOVER_AUDIT_GENESIS;
        n[i] = cutover_audit_format(&e, lines[i], sizeof(lines[i]), hash[i]);
        ck_assert_int_gt(n[i], 0);
    }

    ck_assert_int_eq(cutover_audit_check_line(lines[0], (size_t) n[0], 1,
                                              CUTOVER_AUDIT_GENESIS, h, &err),
                     0);
    ck_assert_str_eq(h, hash[0]);
    ck_assert_int_eq(cutover_audit_check_line(lines[1], (size_t) n[1], 2,
                                              hash[0], h, &err), 0);

    /* an unaccepted break is written only when there is one, and is
     * covered by the hash */
    ck_assert_ptr_null(strstr(lines[1], "pending_break"));
    ck_assert_ptr_nonnull(strstr(lines[2], ",\"pending_break\":2,\"prev\":"));
    ck_assert_int_eq(cutover_audit_check_line(lines[2], (size_t) n[2], 3,
                                              hash[1], h, &err), 0);
    *strstr(lines[2], "break\":2") = 'B';
    ck_assert_int_eq(cutover_audit_check_line(lines[2], (size_t) n[2], 3,
                                              hash[1], h, &err), -1);

    /* removed entry: line 3 where 2 was expected */
    ck_assert_int_eq(cutover_audit_check_line(lines[2], (size_t) n[2], 2,
                                              hash[0], h, &err), -1);

    /* edited entry */
    lines[1][40] = lines[1][40] == 'x' ? 'y' : 'x';
    ck_assert_int_eq(cutover_audit_check_line(lines[1], (size_t) n[1], 2,
                                              hash[0], h, &err), -1);
}
END_TEST


/* The writer and the reader of a line share one definition: whatever is
 * written reads back as written, with or without its newline, whatever the
 * free text holds; a line cut anywhere, or with any byte changed, does
 * not. */
START_TEST(test_audit_head_roundtrip)
{
    int                    n, cut;
    char                   line[CUTOVER_AUDIT_LINE_MAX], hash[65];
    char                   prev[65];
    cutover_error_t        err;
    cutover_audit_head_t   head;
    cutover_audit_entry_t  e;

    static const char  *reasons[] = {
        "", "plain", "\",\"action\":\"rollback", ",\"pending_break\":7",
        ",\"prev\":\"0000\",\"hash\":\"", "\"}\n{\"seq\":9,", "\xc3\xa9\x01"
    };

    memset(prev, 'a', 64);
    prev[64] = '\0';

    memset(&e, 0, sizeof(e));
    e.seq = 12345678901ULL;
    e.time = 1700000000;
    e.key_id = "ops";
    e.action = _i % 2 ? "audit_break" : "rollback";
    e.result = "accepted";
    e.from = "{\"line\":3}";
    e.reason = reasons[_i];
    e.pending_break = _i % 3 ? 0 : 42;
    e.prev = prev;

    n = cutover_audit_format(&e, line, sizeof(line), hash);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(line[n - 1], '\n');

    ck_assert_int_eq(cutover_audit_parse_head(line, (size_t) n, &head, &err),
                     0);
    ck_assert_uint_eq(head.seq, e.seq);
    ck_assert_uint_eq(head.pending_break, e.pending_break);
    ck_assert_str_eq(head.action, e.action);
    ck_assert_str_eq(head.prev, prev);
    ck_assert_str_eq(head.hash, hash);

    ck_assert_int_eq(cutover_audit_parse_head(line, (size_t) n - 1, &head,
                                              &err), 0);
    ck_assert_str_eq(head.hash, hash);

    /* torn anywhere: never read as an entry */
    for (cut = 0; cut < n - 1; cut++) {
        ck_assert_int_eq(cutover_audit_parse_head(line, (size_t) cut, &head,
                                                  &err), -1);
    }

    /* any byte edited (but the newline): refused */
    for (cut = 0; cut < n - 1; cut++) {
        char c = line[cut];

        line[cut] = c == '7' ? '8' : '7';
        ck_assert_msg(cutover_audit_parse_head(line, (size_t) n, &head, &err)
                      == -1, "byte %d edited", cut);
        line[cut] = c;
    }
}
END_TEST


START_TEST(test_json_escape)
{
    char  buf[64];

    ck_assert_int_eq(cutover_json_escape("a\"b\\\x01\xc3\xa9\xff", 8, buf,
                                         sizeof(buf)), 20);
    ck_assert_str_eq(buf, "a\\\"b\\\\\\u0001\xc3\xa9\\ufffd");
    ck_assert_int_eq(cutover_json_escape("abcdef", 6, buf, 4), -1);
}
END_TEST


/* --- ramps -------------------------------------------------------------- */

static void
ramp_start(cutover_state_t *st, const char *rule, int32_t to, int32_t step,
    int64_t every, int64_t now)
{
    cutover_state_t  *next = malloc(sizeof(cutover_state_t));
    cutover_error_t   err;

    ck_assert_int_eq(cutover_state_ramp_start(next, st, rule, to, step,
                                              every, now, &err), CUTOVER_OK);
    memcpy(st, next, sizeof(*st));
    free(next);
}


static void
ramp_step(cutover_state_t *st, int64_t now)
{
    int               n;
    cutover_state_t  *next = malloc(sizeof(cutover_state_t));
    cutover_error_t   err;

    n = cutover_state_ramp_due(st, now);
    ck_assert_int_ge(n, 0);
    ck_assert_int_eq(cutover_state_ramp_step(next, st, n, now, &err),
                     CUTOVER_OK);
    memcpy(st, next, sizeof(*st));
    free(next);
}


START_TEST(test_ramp_schedule)
{
    uint64_t          v;
    cutover_state_t  *st = state_new();

    dial(st, "default", 500, NULL, NULL);
    v = st->version;

    ramp_start(st, "default", 2000, 700, 600, 1000);
    ck_assert_uint_eq(st->version, v + 1);
    ck_assert_uint_eq(st->rules[0].bp, 500);
    ck_assert_int_eq(st->rules[0].ramp_next, 1600);

    /* nothing before its time */
    ck_assert_int_eq(cutover_state_ramp_due(st, 1599), -1);

    ramp_step(st, 1600);
    ck_assert_uint_eq(st->rules[0].bp, 1200);
    ck_assert_int_eq(st->rules[0].ramp_next, 2200);

    /* a step taken late keeps the schedule when it can */
    ramp_step(st, 2203);
    ck_assert_uint_eq(st->rules[0].bp, 1900);
    ck_assert_int_eq(st->rules[0].ramp_next, 2800);

    /* the last step stops at "to" and ends the ramp */
    ramp_step(st, 2800);
    ck_assert_uint_eq(st->rules[0].bp, 2000);
    ck_assert_uint_eq(st->rules[0].ramp_step, 0);
    ck_assert_int_eq(cutover_state_ramp_due(st, 99999), -1);

    free(st);
}
END_TEST


START_TEST(test_ramp_ends)
{
    cutover_state_t  *st = state_new();

    dial(st, "pilot", 100, "S001", NULL);
    dial(st, "default", 100, NULL, NULL);
    ramp_start(st, "pilot", 5000, 100, 60, 0);
    ramp_start(st, "default", 5000, 100, 60, 0);

    /* a dial of another rule keeps the ramp, of the rule ends it */
    dial(st, "default", 200, NULL, NULL);
    ck_assert_uint_eq(st->rules[0].ramp_step, 100);
    ck_assert_uint_eq(st->rules[1].ramp_step, 0);

    /* a rollback ends every ramp */
    cutover_state_rollback(st, 5);
    ck_assert_uint_eq(st->rules[0].ramp_step, 0);
    ck_assert_int_eq(cutover_state_ramp_due(st, 99999), -1);

    free(st);
}
END_TEST


START_TEST(test_ramp_bad)
{
    cutover_state_t  *st = state_new(), *next = state_new();
    cutover_error_t   err;

    dial(st, "default", 1000, NULL, NULL);

    ck_assert_int_eq(cutover_state_ramp_start(next, st, "default", 1000, 100,
                                              60, 0, &err), CUTOVER_ERROR);
    ck_assert_int_eq(cutover_state_ramp_start(next, st, "default", 900, 100,
                                              60, 0, &err), CUTOVER_ERROR);
    ck_assert_int_eq(cutover_state_ramp_start(next, st, "default", 2000, 0,
                                              60, 0, &err), CUTOVER_ERROR);
    ck_assert_int_eq(cutover_state_ramp_start(next, st, "default", 2000, 100,
                                              0, 0, &err), CUTOVER_ERROR);
    ck_assert_int_eq(cutover_state_ramp_start(next, st, "default", 10001,
                                              100, 60, 0, &err),
                     CUTOVER_ERROR);
    ck_assert_int_eq(cutover_state_ramp_start(next, st, "nosuch", 2000, 100,
                                              60, 0, &err), CUTOVER_ERROR);
    ck_assert_str_eq(err.name, "unknown_rule");

    free(st);
    free(next);
}
END_TEST


START_TEST(test_ramp_state_file)
{
    int               n;
    char             *buf = malloc(CUTOVER_STATE_TEXT_MAX);
    cutover_state_t  *st = state_new(), *back = state_new();
    cutover_error_t   err;

    dial(st, "pilot", 100, "S001", NULL);
    ramp_start(st, "pilot", 5000, 250, 600, 1000);

    n = cutover_state_encode(st, "erp", buf, CUTOVER_STATE_TEXT_MAX);
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_nonnull(strstr(buf, "\nramp pilot 5000 250 600 1600\n"));
    ck_assert_int_eq(cutover_state_decode(back, buf, (size_t) n, &err),
                     CUTOVER_OK);
    ck_assert_uint_eq(back->rules[0].ramp_to, 5000);
    ck_assert_uint_eq(back->rules[0].ramp_step, 250);
    ck_assert_uint_eq(back->rules[0].ramp_every, 600);
    ck_assert_int_eq(back->rules[0].ramp_next, 1600);
    ck_assert_uint_eq(back->rules[1].ramp_step, 0);

    /* after a start: a missed step is not taken late */
    ck_assert_int_eq(cutover_state_ramp_resume(back, 1500), 0);
    ck_assert_int_eq(back->rules[0].ramp_next, 1600);
    ck_assert_int_eq(cutover_state_ramp_resume(back, 5000), 1);
    ck_assert_int_eq(back->rules[0].ramp_next, 5600);
    ck_assert_int_eq(cutover_state_ramp_due(back, 5599), -1);

    free(buf);
    free(st);
    free(back);
}
END_TEST


static Suite *
cutover_suite(void)
{
    Suite  *s = suite_create("cutover");
    TCase  *tc;

    tc = tcase_create("percent");
    tcase_add_loop_test(tc, test_percent_parse, 0,
                        sizeof(percent_cases) / sizeof(percent_cases[0]));
    tcase_add_test(tc, test_percent_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("bucket");
    tcase_add_test(tc, test_bucket_stable_and_uniform);
    tcase_add_test(tc, test_bucket_pinned_values);
    tcase_add_test(tc, test_record_ids_unique);
    suite_add_tcase(s, tc);

    tc = tcase_create("rules");
    tcase_add_test(tc, test_route_default);
    tcase_add_test(tc, test_route_rules_in_order);
    tcase_add_test(tc, test_raise_only_moves_to_new);
    tcase_add_loop_test(tc, test_dial_errors, 0,
                        sizeof(bad_dials) / sizeof(bad_dials[0]));
    tcase_add_test(tc, test_rules_limit);
    tcase_add_test(tc, test_rollback);
    suite_add_tcase(s, tc);

    tc = tcase_create("state_file");
    tcase_add_test(tc, test_state_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("ramp");
    tcase_add_test(tc, test_ramp_schedule);
    tcase_add_test(tc, test_ramp_ends);
    tcase_add_test(tc, test_ramp_bad);
    tcase_add_test(tc, test_ramp_state_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_test(tc, test_json_tokens);
    tcase_add_test(tc, test_json_corpus);
    tcase_add_test(tc, test_json_escape);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("auth");
    tcase_add_test(tc, test_sign_known_vector);
    tcase_add_test(tc, test_auth_header_round_trip);
    tcase_add_test(tc, test_verify);
    tcase_add_loop_test(tc, test_bad_headers, 0,
                        sizeof(bad_headers) / sizeof(bad_headers[0]));
    tcase_add_loop_test(tc, test_bad_keys, 0,
                        sizeof(bad_keys) / sizeof(bad_keys[0]));
    tcase_add_test(tc, test_audit_chain);
    tcase_add_loop_test(tc, test_audit_head_roundtrip, 0, 7);
    suite_add_tcase(s, tc);

    return s;
}


int
main(void)
{
    int       failed;
    SRunner  *sr = srunner_create(cutover_suite());

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
