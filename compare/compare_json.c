/*
 * compare_json: bodies into the comparator's document model, a BSON
 * document {"$": <root value>}.  JSON is read by the project's one reader
 * (common/cutover_json) and built here: integers as int64, other numbers
 * as decimal128 from their exact text, else as double.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_json.h"
#include "compare/compare_json.h"

#if (COMPARE_MAX_DEPTH > CUTOVER_JSON_DEPTH_LIMIT)
#error "COMPARE_MAX_DEPTH is past what the JSON reader takes"
#endif


typedef struct {
    const char          *text;
    cutover_json_tok_t  *toks;
    char                *sbuf;       /* decoded string scratch */
    size_t               scap;
    compare_error_t     *err;
} compare_json_ctx_t;


static int compare_json_fail(compare_json_ctx_t *ctx, int tok,
    const char *what);
static int compare_json_value(compare_json_ctx_t *ctx, bson_t *parent,
    const char *key, size_t keylen, int tok);
static int compare_json_members(compare_json_ctx_t *ctx, bson_t *child,
    int tok);
static int compare_json_elements(compare_json_ctx_t *ctx, bson_t *child,
    int tok);
static int compare_json_string(compare_json_ctx_t *ctx, int tok,
    const char **str, size_t *len);
static int compare_json_number(compare_json_ctx_t *ctx, bson_t *parent,
    const char *key, size_t keylen, int tok);
static int compare_bson_depth(const bson_t *doc, int depth);


const char *
compare_parse_status_name(compare_parse_status_t st)
{
    switch (st) {
    case COMPARE_PARSE_OK:
        return "ok";
    case COMPARE_PARSE_INVALID:
        return "unparseable";
    case COMPARE_PARSE_TOO_DEEP:
        return "unparseable/too large (too deep)";
    case COMPARE_PARSE_TOO_LARGE:
        return "unparseable/too large";
    case COMPARE_PARSE_EMPTY:
        return "unparseable/empty body";
    }
    return "unparseable";
}


static int
compare_json_fail(compare_json_ctx_t *ctx, int tok, const char *what)
{
    snprintf(ctx->err->message, sizeof(ctx->err->message),
             "%s at byte %u", what, (unsigned) ctx->toks[tok].start);
    return -1;
}


/* Two passes of the tokenizer: the first counts the tokens (and finds any
 * error) with no memory, the second fills an array of just that size. */
compare_parse_status_t
compare_json_parse(const uint8_t *text, size_t len, bson_t *doc,
    compare_error_t *err)
{
    int                  n, rc;
    size_t               i;
    compare_json_ctx_t   ctx;
    cutover_json_opts_t  opts;

    err->code = 0;
    err->message[0] = '\0';
    if (len > COMPARE_MAX_BODY) {
        snprintf(err->message, sizeof(err->message),
                 "body of %zu bytes is over the %d byte limit", len,
                 COMPARE_MAX_BODY);
        return COMPARE_PARSE_TOO_LARGE;
    }
    for (i = 0; i < len && (text[i] == ' ' || text[i] == '\t'
                            || text[i] == '\n' || text[i] == '\r'); i++)
    {
        /* void */
    }
    if (i == len) {
        snprintf(err->message, sizeof(err->message), "empty body");
        return COMPARE_PARSE_EMPTY;
    }

    memset(&opts, 0, sizeof(opts));
    opts.max_depth = COMPARE_MAX_DEPTH;
    opts.strict_surrogates = 1;
    n = cutover_json_parse_opts((const char *) text, len, NULL, 0, &opts,
                                err->message, sizeof(err->message));
    if (n < 0) {
        return opts.too_deep ? COMPARE_PARSE_TOO_DEEP : COMPARE_PARSE_INVALID;
    }

    memset(&ctx, 0, sizeof(ctx));
    ctx.text = (const char *) text;
    ctx.err = err;
    ctx.toks = malloc((size_t) n * sizeof(cutover_json_tok_t));
    if (ctx.toks == NULL
        || cutover_json_parse_opts(ctx.text, len, ctx.toks, (size_t) n,
                                   &opts, err->message,
                                   sizeof(err->message)) != n)
    {
        free(ctx.toks);
        snprintf(err->message, sizeof(err->message), "out of memory");
        return COMPARE_PARSE_INVALID;
    }

    bson_init(doc);
    rc = compare_json_value(&ctx, doc, "$", 1, 0);
    free(ctx.toks);
    free(ctx.sbuf);
    if (rc != 0) {
        bson_destroy(doc);
        return COMPARE_PARSE_INVALID;
    }
    return COMPARE_PARSE_OK;
}


static int
compare_json_value(compare_json_ctx_t *ctx, bson_t *parent, const char *key,
    size_t keylen, int tok)
{
    bson_t       child;
    size_t       len;
    const char  *str;
    int          rc;

    switch (ctx->toks[tok].type) {
    case CUTOVER_JSON_OBJECT:
        bson_append_document_begin(parent, key, (int) keylen, &child);
        rc = compare_json_members(ctx, &child, tok);
        bson_append_document_end(parent, &child);
        return rc;
    case CUTOVER_JSON_ARRAY:
        bson_append_array_begin(parent, key, (int) keylen, &child);
        rc = compare_json_elements(ctx, &child, tok);
        bson_append_array_end(parent, &child);
        return rc;
    case CUTOVER_JSON_STRING:
        if (compare_json_string(ctx, tok, &str, &len) != 0) {
            return -1;
        }
        bson_append_utf8(parent, key, (int) keylen, str, (int) len);
        return 0;
    case CUTOVER_JSON_TRUE:
    case CUTOVER_JSON_FALSE:
        bson_append_bool(parent, key, (int) keylen,
                         ctx->toks[tok].type == CUTOVER_JSON_TRUE);
        return 0;
    case CUTOVER_JSON_NULL:
        bson_append_null(parent, key, (int) keylen);
        return 0;
    case CUTOVER_JSON_NUMBER:
        return compare_json_number(ctx, parent, key, keylen, tok);
    }
    return compare_json_fail(ctx, tok, "invalid value");
}


static int
compare_json_members(compare_json_ctx_t *ctx, bson_t *child, int tok)
{
    int          k;
    size_t       klen, i, o;
    uint32_t     n;
    const char  *str;
    char        *key;

    k = tok + 1;
    for (n = 0; n < ctx->toks[tok].size; n++) {
        if (compare_json_string(ctx, k, &str, &klen) != 0) {
            return -1;
        }
        key = NULL;
        /* BSON keys are C strings: an escaped NUL is kept as its escape */
        if (str == ctx->sbuf && memchr(str, '\0', klen) != NULL) {
            key = malloc(klen * 6 + 1);
            if (key == NULL) {
                return compare_json_fail(ctx, k, "out of memory");
            }
            for (i = 0, o = 0; i < klen; i++) {
                if (str[i] == '\0') {
                    memcpy(key + o, "\\u0000", 6);
                    o += 6;
                } else {
                    key[o++] = str[i];
                }
            }
            str = key;
            klen = o;
        } else if (str == ctx->sbuf) {
            /* the value may reuse the scratch buffer */
            key = bson_strndup(str, klen);
            str = key;
        }
        if (compare_json_value(ctx, child, str, klen, k + 1) != 0) {
            free(key);
            return -1;
        }
        free(key);
        k = cutover_json_next(ctx->toks, k + 1);
    }
    return 0;
}


static int
compare_json_elements(compare_json_ctx_t *ctx, bson_t *child, int tok)
{
    int          k;
    char         buf[16];
    uint32_t     i;
    size_t       klen;
    const char  *key;

    k = tok + 1;
    for (i = 0; i < ctx->toks[tok].size; i++) {
        klen = bson_uint32_to_string(i, &key, buf, sizeof(buf));
        if (compare_json_value(ctx, child, key, klen, k) != 0) {
            return -1;
        }
        k = cutover_json_next(ctx->toks, k);
    }
    return 0;
}


/* A string: *str points into the text when it has no escapes (the common
 * case, no copy), else into the scratch buffer. */
static int
compare_json_string(compare_json_ctx_t *ctx, int tok, const char **str,
    size_t *len)
{
    int                        n;
    size_t                     raw, cap;
    char                      *nb;
    const cutover_json_tok_t  *t = &ctx->toks[tok];

    raw = t->end - t->start;
    if (memchr(ctx->text + t->start, '\\', raw) == NULL) {
        *str = ctx->text + t->start;
        *len = raw;
        return 0;
    }
    if (raw + 1 > ctx->scap) {
        cap = ctx->scap ? ctx->scap : 256;
        while (cap < raw + 1) {
            cap *= 2;
        }
        nb = realloc(ctx->sbuf, cap);
        if (nb == NULL) {
            return compare_json_fail(ctx, tok, "out of memory");
        }
        ctx->sbuf = nb;
        ctx->scap = cap;
    }
    n = cutover_json_decode(ctx->text, t, ctx->sbuf, ctx->scap);
    if (n < 0) {
        return compare_json_fail(ctx, tok, "invalid string");
    }
    *str = ctx->sbuf;
    *len = (size_t) n;
    return 0;
}


/* Integers that fit go in as int64, other numbers as decimal128 when exact,
 * else as double (huge exponents). */
static int
compare_json_number(compare_json_ctx_t *ctx, bson_t *parent, const char *key,
    size_t keylen, int tok)
{
    int                is_int;
    char               tmp[128];
    char              *text, *endp;
    size_t             n;
    bson_decimal128_t  dec;
    long long          ll;
    double             d;

    n = ctx->toks[tok].end - ctx->toks[tok].start;
    text = n < sizeof(tmp) ? tmp : malloc(n + 1);
    if (text == NULL) {
        return compare_json_fail(ctx, tok, "out of memory");
    }
    memcpy(text, ctx->text + ctx->toks[tok].start, n);
    text[n] = '\0';
    is_int = strpbrk(text, ".eE") == NULL;
    if (is_int && n < 19) {
        const char  *p = text + (text[0] == '-');
        int64_t      v = 0;

        while (*p) {
            v = v * 10 + (*p++ - '0');
        }
        bson_append_int64(parent, key, (int) keylen, text[0] == '-' ? -v : v);
        goto done;
    }
    if (is_int) {
        errno = 0;
        ll = strtoll(text, &endp, 10);
        if (errno == 0 && *endp == '\0') {
            bson_append_int64(parent, key, (int) keylen, (int64_t) ll);
            goto done;
        }
    }
    if (n <= 40 && bson_decimal128_from_string(text, &dec)) {
        char  back[BSON_DECIMAL128_STRING];

        bson_decimal128_to_string(&dec, back);
        if (strcmp(back, "NaN") != 0 && strstr(back, "Inf") == NULL) {
            bson_append_decimal128(parent, key, (int) keylen, &dec);
            goto done;
        }
    }
    d = strtod(text, NULL);
    bson_append_double(parent, key, (int) keylen, d);
done:
    if (text != tmp) {
        free(text);
    }
    return 0;
}


int
compare_bson_detect(const uint8_t *data, size_t len)
{
    uint32_t  n;

    if (len < 5) {
        return 0;
    }
    memcpy(&n, data, 4);
    n = BSON_UINT32_FROM_LE(n);
    return n == len && data[len - 1] == 0;
}


static int
compare_bson_depth(const bson_t *doc, int depth)
{
    bson_iter_t     it;
    const uint8_t  *buf;
    uint32_t        len;
    bson_t          sub;
    int             rc;

    if (depth > COMPARE_MAX_DEPTH) {
        return 1;
    }
    if (!bson_iter_init(&it, doc)) {
        return -1;
    }
    while (bson_iter_next(&it)) {
        if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
            if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
                bson_iter_document(&it, &len, &buf);
            } else {
                bson_iter_array(&it, &len, &buf);
            }
            if (buf == NULL || !bson_init_static(&sub, buf, len)) {
                return -1;
            }
            rc = compare_bson_depth(&sub, depth + 1);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}


compare_parse_status_t
compare_bson_parse(const uint8_t *data, size_t len, bson_t *doc,
    compare_error_t *err)
{
    bson_t  body;
    size_t  off = 0;
    int     rc;

    err->code = 0;
    err->message[0] = '\0';
    if (len > COMPARE_MAX_BODY) {
        snprintf(err->message, sizeof(err->message),
                 "body of %zu bytes is over the %d byte limit", len,
                 COMPARE_MAX_BODY);
        return COMPARE_PARSE_TOO_LARGE;
    }
    /* depth first: bson_validate() recurses without a limit */
    rc = bson_init_static(&body, data, len) ? compare_bson_depth(&body, 1)
                                            : -1;
    if (rc > 0) {
        snprintf(err->message, sizeof(err->message),
                 "BSON nesting deeper than the limit");
        return COMPARE_PARSE_TOO_DEEP;
    }
    if (rc < 0 || !bson_validate(&body, BSON_VALIDATE_UTF8, &off)) {
        snprintf(err->message, sizeof(err->message),
                 "invalid BSON near byte %zu", off);
        return COMPARE_PARSE_INVALID;
    }
    bson_init(doc);
    bson_append_document(doc, "$", 1, &body);
    return COMPARE_PARSE_OK;
}


compare_parse_status_t
compare_body_parse(const char *content_type, const uint8_t *data, size_t len,
    bson_t *doc, compare_error_t *err)
{
    if (content_type != NULL && strcasestr(content_type, "bson") != NULL) {
        return compare_bson_parse(data, len, doc, err);
    }
    if ((content_type == NULL || strcasestr(content_type, "json") == NULL)
        && compare_bson_detect(data, len))
    {
        return compare_bson_parse(data, len, doc, err);
    }
    return compare_json_parse(data, len, doc, err);
}
