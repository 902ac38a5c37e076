/*
 * shadow_json: dual-run records to and from JSON lines (cutover-logtool).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bson/bson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/cutover_hash.h"
#include "common/cutover_json.h"
#include "compare/compare_json.h"
#include "shadow/shadow_json.h"


typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
    int      oom;
} shadow_sb_t;


static void sb_add(shadow_sb_t *sb, const char *p, size_t n);
static int sb_sink(void *data, const char *p, size_t n);
static void sb_str(shadow_sb_t *sb, const char *p, size_t n);
static void sb_key(shadow_sb_t *sb, const char *key);
static void sb_body(shadow_sb_t *sb, const char *name, const uint8_t *p,
    size_t n);
static void sb_headers(shadow_sb_t *sb, const char *name,
    const cutover_header_t *h, size_t n);
static int shadow_utf8_valid(const uint8_t *p, size_t n);
static int shadow_json_headers(bson_iter_t *it, cutover_header_t **out,
    size_t *n, shadow_error_t *err);
static int shadow_json_body(bson_iter_t *it, int b64, uint8_t **keep,
    const uint8_t **body, size_t *len, shadow_error_t *err);
static int shadow_json_field(bson_iter_t *it, shadow_json_record_t *jr,
    shadow_error_t *err);
static int shadow_json_defaults(shadow_json_record_t *jr,
    shadow_error_t *err);


int
shadow_json_object(const char *text, size_t len, void *doc,
    bson_iter_t *obj, shadow_error_t *err)
{
    bson_iter_t      root;
    compare_error_t  cerr;

    if (compare_json_parse((const uint8_t *) text, len, doc, &cerr)
        != COMPARE_PARSE_OK)
    {
        return shadow_error_set(err, SHADOW_ERROR, "not JSON: %s",
                                cerr.message);
    }

    if (!bson_iter_init_find(&root, doc, "$")
        || !BSON_ITER_HOLDS_DOCUMENT(&root)
        || !bson_iter_recurse(&root, obj))
    {
        bson_destroy(doc);
        return shadow_error_set(err, SHADOW_ERROR, "not a JSON object");
    }

    return SHADOW_OK;
}


int
shadow_json_number(const bson_iter_t *it, double *v)
{
    char                s[BSON_DECIMAL128_STRING];
    char               *end;
    bson_decimal128_t   d;

    if (BSON_ITER_HOLDS_NUMBER(it)) {
        *v = bson_iter_as_double(it);
        return 1;
    }

    if (BSON_ITER_HOLDS_DECIMAL128(it) && bson_iter_decimal128(it, &d)) {
        bson_decimal128_to_string(&d, s);
        *v = strtod(s, &end);
        return *end == '\0';
    }

    return 0;
}


static void
sb_add(shadow_sb_t *sb, const char *p, size_t n)
{
    char    *np;
    size_t   cap;

    if (sb->oom) {
        return;
    }

    if (sb->len + n + 1 > sb->cap) {
        cap = sb->cap ? sb->cap : 1024;
        while (cap < sb->len + n + 1) {
            cap *= 2;
        }

        np = realloc(sb->p, cap);
        if (np == NULL) {
            sb->oom = 1;
            return;
        }

        sb->p = np;
        sb->cap = cap;
    }

    memcpy(sb->p + sb->len, p, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}


/* A JSON string; bytes that are not UTF-8 become \u00XX (Latin-1). */
static void
sb_str(shadow_sb_t *sb, const char *p, size_t n)
{
    sb_add(sb, "\"", 1);
    (void) cutover_json_write(p, n,
                              CUTOVER_JSON_ESC_SHORT|CUTOVER_JSON_ESC_LATIN1,
                              sb_sink, sb);
    sb_add(sb, "\"", 1);
}


static int
sb_sink(void *data, const char *p, size_t n)
{
    sb_add(data, p, n);
    return 0;
}


static void
sb_key(shadow_sb_t *sb, const char *key)
{
    sb_add(sb, ",", 1);
    sb_str(sb, key, strlen(key));
    sb_add(sb, ":", 1);
}


static int
shadow_utf8_valid(const uint8_t *p, size_t n)
{
    return bson_utf8_validate((const char *) p, n, false);
}


static void
sb_body(shadow_sb_t *sb, const char *name, const uint8_t *p, size_t n)
{
    char   key[64];
    char  *b64;

    if (n == 0 || shadow_utf8_valid(p, n)) {
        sb_key(sb, name);
        sb_str(sb, (const char *) p, n);
        return;
    }

    snprintf(key, sizeof(key), "%s_b64", name);
    b64 = malloc(4 * ((n + 2) / 3) + 1);
    if (b64 == NULL) {
        sb->oom = 1;
        return;
    }

    EVP_EncodeBlock((unsigned char *) b64, p, (int) n);
    sb_key(sb, key);
    sb_str(sb, b64, strlen(b64));
    free(b64);
}


static void
sb_headers(shadow_sb_t *sb, const char *name, const cutover_header_t *h,
    size_t n)
{
    size_t  i;

    sb_key(sb, name);
    sb_add(sb, "[", 1);

    for (i = 0; i < n; i++) {
        sb_add(sb, i ? ",[" : "[", i ? 2 : 1);
        sb_str(sb, h[i].name.data, h[i].name.len);
        sb_add(sb, ",", 1);
        sb_str(sb, h[i].value.data, h[i].value.len);
        sb_add(sb, "]", 1);
    }

    sb_add(sb, "]", 1);
}


char *
shadow_json_record_dump(const cutover_record_t *r, shadow_pos_t pos)
{
    char         num[96], sha[65];
    shadow_sb_t  sb = { NULL, 0, 0, 0 };

#define SB_STR(name, f)                                                     \
    sb_key(&sb, name);                                                      \
    sb_str(&sb, r->f.data, r->f.len)
#define SB_NUM(name, fmt, v)                                                \
    sb_key(&sb, name);                                                      \
    sb_add(&sb, num, (size_t) snprintf(num, sizeof(num), fmt, v))

    snprintf(num, sizeof(num), "{\"segment\":%llu,\"offset\":%llu",
             (unsigned long long) pos.seq, (unsigned long long) pos.off);
    sb_add(&sb, num, strlen(num));
    SB_STR("id", id);
    SB_NUM("time_us", "%lld", (long long) r->time_us);
    SB_STR("zone", zone);
    SB_STR("rule", rule);
    SB_STR("side", side);
    SB_NUM("bucket", "%d", (int) r->bucket);
    SB_STR("key", key);
    SB_STR("store", store);
    SB_STR("channel", channel);
    SB_NUM("version", "%lld", (long long) r->version);
    SB_STR("method", method);
    SB_STR("uri", uri);
    sb_headers(&sb, "req_headers", r->req_headers, r->n_req_headers);
    sb_body(&sb, "req_body", r->req_body, r->req_body_len);
    SB_NUM("status", "%d", (int) r->status);
    sb_headers(&sb, "resp_headers", r->resp_headers, r->n_resp_headers);
    sb_body(&sb, "resp_body", r->resp_body, r->resp_body_len);
    SB_NUM("resp_body_len", "%lld", (long long) r->resp_body_total);
    sb_key(&sb, "resp_truncated");
    sb_add(&sb, r->resp_truncated ? "true" : "false",
           r->resp_truncated ? 4 : 5);
    if (r->resp_sha256.len) {
        SB_STR("resp_sha256", resp_sha256);

    } else {
        /* writers hash only truncated bodies; the rest is here whole */
        cutover_sha256_hex(r->resp_body ? r->resp_body : (uint8_t *) "",
                           r->resp_body_len, sha);
        sb_key(&sb, "resp_sha256");
        sb_str(&sb, sha, 64);
    }
    SB_NUM("upstream_ms", "%.3f", r->upstream_ms);
    SB_STR("content_type", content_type);
    sb_add(&sb, "}", 1);

    if (sb.oom) {
        free(sb.p);
        return NULL;
    }

    return sb.p;
}


static int
shadow_json_headers(bson_iter_t *it, cutover_header_t **out, size_t *n,
    shadow_error_t *err)
{
    size_t            i = 0, cnt = 0;
    uint32_t          len;
    bson_iter_t       arr, pair;
    cutover_header_t  *h;

    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &arr)) {
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\" must be an array "
                                "of [name, value]", bson_iter_key(it));
    }

    while (bson_iter_next(&arr)) {
        cnt++;
    }

    h = calloc(cnt + 1, sizeof(*h));
    if (h == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    bson_iter_recurse(it, &arr);
    while (bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_ARRAY(&arr) || !bson_iter_recurse(&arr, &pair)
            || !bson_iter_next(&pair) || !BSON_ITER_HOLDS_UTF8(&pair))
        {
            goto bad;
        }

        h[i].name.data = bson_iter_utf8(&pair, &len);
        h[i].name.len = len;

        if (!bson_iter_next(&pair) || !BSON_ITER_HOLDS_UTF8(&pair)) {
            goto bad;
        }

        h[i].value.data = bson_iter_utf8(&pair, &len);
        h[i].value.len = len;
        i++;
    }

    *out = h;
    *n = i;
    return SHADOW_OK;

bad:

    free(h);
    return shadow_error_set(err, SHADOW_ERROR, "\"%s\" must be an array of "
                            "[name, value] strings", bson_iter_key(it));
}


static int
shadow_json_body(bson_iter_t *it, int b64, uint8_t **keep,
    const uint8_t **body, size_t *len, shadow_error_t *err)
{
    int          n;
    uint32_t     slen;
    const char  *s;

    if (!BSON_ITER_HOLDS_UTF8(it)) {
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\" must be a string",
                                bson_iter_key(it));
    }

    s = bson_iter_utf8(it, &slen);

    if (!b64) {
        *body = (const uint8_t *) s;
        *len = slen;
        return SHADOW_OK;
    }

    free(*keep);
    *keep = malloc(slen / 4 * 3 + 4);
    if (*keep == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    n = slen ? EVP_DecodeBlock(*keep, (const unsigned char *) s, (int) slen)
        : 0;
    if (n < 0 || slen % 4 != 0) {
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\" is not base64",
                                bson_iter_key(it));
    }

    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (slen >= 1 && s[slen - 1] == '=') {
        n--;
    }

    if (slen >= 2 && s[slen - 2] == '=') {
        n--;
    }

    *body = *keep;
    *len = (size_t) n;
    return SHADOW_OK;
}


/*
 * One member of a JSON record.  Kept whole (past 80 lines): it is the table
 * of the record's fields, one test each.
 */
static int
shadow_json_field(bson_iter_t *it, shadow_json_record_t *jr,
    shadow_error_t *err)
{
    double            num;
    uint32_t          len;
    const char       *k = bson_iter_key(it);
    cutover_record_t  *r = &jr->rec;

    if (strcmp(k, "req_headers") == 0 || strcmp(k, "resp_headers") == 0) {
        int  resp = k[1] == 'e' && k[2] == 's';

        free(jr->headers[resp]);
        jr->headers[resp] = NULL;
        return shadow_json_headers(it, &jr->headers[resp],
                                   resp ? &r->n_resp_headers
                                        : &r->n_req_headers, err);
    }

    if (strcmp(k, "req_body") == 0 || strcmp(k, "req_body_b64") == 0) {
        return shadow_json_body(it, k[8] == '_', &jr->bodies[0],
                                &r->req_body, &r->req_body_len, err);
    }

    if (strcmp(k, "resp_body") == 0 || strcmp(k, "resp_body_b64") == 0) {
        return shadow_json_body(it, k[9] == '_', &jr->bodies[1],
                                &r->resp_body, &r->resp_body_len, err);
    }

#define SHADOW_JSTR(f)                                                      \
    if (strcmp(k, #f) == 0) {                                               \
        if (!BSON_ITER_HOLDS_UTF8(it)) {                                    \
            return shadow_error_set(err, SHADOW_ERROR,                      \
                                    "\"%s\" must be a string", k);          \
        }                                                                   \
        r->f.data = bson_iter_utf8(it, &len);                               \
        r->f.len = len;                                                     \
        return SHADOW_OK;                                                   \
    }

    SHADOW_JSTR(id)
    SHADOW_JSTR(zone)
    SHADOW_JSTR(rule)
    SHADOW_JSTR(side)
    SHADOW_JSTR(key)
    SHADOW_JSTR(store)
    SHADOW_JSTR(channel)
    SHADOW_JSTR(method)
    SHADOW_JSTR(uri)
    SHADOW_JSTR(resp_sha256)
    SHADOW_JSTR(content_type)

    if (strcmp(k, "resp_truncated") == 0) {
        r->resp_truncated = bson_iter_as_bool(it);
        return SHADOW_OK;
    }

    if (strcmp(k, "segment") == 0 || strcmp(k, "offset") == 0) {
        return SHADOW_OK;           /* dump output fed back in */
    }

    if (!shadow_json_number(it, &num)) {
        return shadow_error_set(err, SHADOW_ERROR, "unknown or mistyped key "
                                "\"%s\"", k);
    }

    if (strcmp(k, "time_us") == 0) {
        r->time_us = BSON_ITER_HOLDS_INT(it) ? bson_iter_as_int64(it)
                                             : (int64_t) num;

    } else if (strcmp(k, "bucket") == 0) {
        r->bucket = (int32_t) num;

    } else if (strcmp(k, "version") == 0) {
        r->version = BSON_ITER_HOLDS_INT(it) ? bson_iter_as_int64(it)
                                             : (int64_t) num;

    } else if (strcmp(k, "status") == 0) {
        r->status = (int32_t) num;

    } else if (strcmp(k, "resp_body_len") == 0) {
        r->resp_body_total = (int64_t) num;

    } else if (strcmp(k, "upstream_ms") == 0) {
        r->upstream_ms = num;

    } else {
        return shadow_error_set(err, SHADOW_ERROR, "unknown key \"%s\"", k);
    }

    return SHADOW_OK;
}


/* Fill what the line left out; check what a replay needs. */
static int
shadow_json_defaults(shadow_json_record_t *jr, shadow_error_t *err)
{
    int               i;
    unsigned char     rnd[16];
    struct timespec   ts;
    cutover_record_t  *r = &jr->rec;

    if (r->id.len == 0) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return shadow_error_set(err, SHADOW_ERROR, "no random id");
        }

        for (i = 0; i < 16; i++) {
            snprintf(jr->id + 2 * i, 3, "%02x", rnd[i]);
        }

        r->id.data = jr->id;
        r->id.len = 32;
    }

    if (r->time_us == 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        r->time_us = (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }

    if (r->method.len == 0) {
        r->method.data = "GET";
        r->method.len = 3;
    }

    if (r->side.len == 0) {
        r->side.data = "legacy";
        r->side.len = 6;
    }

    if (r->uri.len == 0 || r->uri.data[0] != '/') {
        return shadow_error_set(err, SHADOW_ERROR, "\"uri\" must start with "
                                "\"/\"");
    }

    if (!(r->side.len == 3 && memcmp(r->side.data, "new", 3) == 0)
        && !(r->side.len == 6 && memcmp(r->side.data, "legacy", 6) == 0))
    {
        return shadow_error_set(err, SHADOW_ERROR, "\"side\" must be \"new\" "
                                "or \"legacy\"");
    }

    if (r->resp_body_total < 0) {
        r->resp_body_total = (int64_t) r->resp_body_len;
    }

    if (r->resp_sha256.len == 0) {
        cutover_sha256_hex(r->resp_body ? r->resp_body : (uint8_t *) "",
                           r->resp_body_len, jr->sha256);
        r->resp_sha256.data = jr->sha256;
        r->resp_sha256.len = 64;
    }

    return SHADOW_OK;
}


int
shadow_json_record_parse(const char *json, size_t len,
    shadow_json_record_t *jr, shadow_error_t *err)
{
    bson_iter_t       it;
    cutover_record_t  *r = &jr->rec;

    memset(jr, 0, sizeof(*jr));
    r->resp_body_total = -1;
    r->status = 200;

    jr->doc = malloc(sizeof(bson_t));
    if (jr->doc == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    if (shadow_json_object(json, len, jr->doc, &it, err) != SHADOW_OK) {
        free(jr->doc);
        jr->doc = NULL;
        return SHADOW_ERROR;
    }

    while (bson_iter_next(&it)) {
        if (shadow_json_field(&it, jr, err) != SHADOW_OK) {
            shadow_json_record_clear(jr);
            return SHADOW_ERROR;
        }
    }

    r->req_headers = jr->headers[0];
    r->resp_headers = jr->headers[1];

    if (shadow_json_defaults(jr, err) != SHADOW_OK) {
        shadow_json_record_clear(jr);
        return SHADOW_ERROR;
    }

    return SHADOW_OK;
}


void
shadow_json_record_clear(shadow_json_record_t *jr)
{
    if (jr->doc != NULL) {
        bson_destroy(jr->doc);
        free(jr->doc);
    }

    free(jr->headers[0]);
    free(jr->headers[1]);
    free(jr->bodies[0]);
    free(jr->bodies[1]);
    memset(jr, 0, sizeof(*jr));
}
