/*
 * compare_json: a strict RFC 8259 parser writing straight into BSON.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare/compare_json.h"


/* 1 for bytes that may appear unescaped in a string and end no run */
static const uint8_t compare_json_plain[256] = {
#define COMPARE_R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    COMPARE_R16(0), COMPARE_R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /* '"' */
    COMPARE_R16(1), COMPARE_R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* '\\' */
    COMPARE_R16(1), COMPARE_R16(1),
    COMPARE_R16(0), COMPARE_R16(0), COMPARE_R16(0), COMPARE_R16(0),
    COMPARE_R16(0), COMPARE_R16(0), COMPARE_R16(0), COMPARE_R16(0)
#undef COMPARE_R16
};

typedef struct {
    const uint8_t   *p;
    const uint8_t   *start;
    const uint8_t   *end;
    compare_error_t *err;
    int              too_deep;
    char            *sbuf;       /* decoded string scratch */
    size_t           scap;
} compare_json_ctx_t;


static int compare_json_fail(compare_json_ctx_t *ctx, const char *what);
static void compare_json_ws(compare_json_ctx_t *ctx);
static int compare_json_literal(compare_json_ctx_t *ctx, const char *lit);
static int compare_json_object(compare_json_ctx_t *ctx, bson_t *child,
    int depth);
static int compare_json_next(compare_json_ctx_t *ctx, char close);
static int compare_json_array(compare_json_ctx_t *ctx, bson_t *child,
    int depth);
static int compare_json_value(compare_json_ctx_t *ctx, bson_t *parent,
    const char *key, size_t keylen, int depth);
static int compare_json_put(
    compare_json_ctx_t *ctx, size_t *olen, const char *s, size_t n);
static int compare_json_hex4(compare_json_ctx_t *ctx, uint32_t *v);
static int compare_json_escape_u(compare_json_ctx_t *ctx, size_t *olen);
static int compare_json_utf8(compare_json_ctx_t *ctx, size_t *olen);
static int compare_json_utf8_check(compare_json_ctx_t *ctx);
static int compare_json_string(compare_json_ctx_t *ctx, const char **str,
    size_t *len);
static int compare_json_escape(compare_json_ctx_t *ctx, size_t *olen);
static int compare_json_digits(compare_json_ctx_t *ctx);
static int compare_json_number(compare_json_ctx_t *ctx, bson_t *parent,
    const char *key, size_t keylen);
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
compare_json_fail(compare_json_ctx_t *ctx, const char *what)
{
    if (ctx->err->message[0] == '\0') {
        snprintf(ctx->err->message, sizeof(ctx->err->message),
                 "%s at byte %zu", what, (size_t) (ctx->p - ctx->start));
    }
    return -1;
}


static void
compare_json_ws(compare_json_ctx_t *ctx)
{
    while (ctx->p < ctx->end && (*ctx->p == ' ' || *ctx->p == '\t'
                                 || *ctx->p == '\n' || *ctx->p == '\r'))
    {
        ctx->p++;
    }
}


compare_parse_status_t
compare_json_parse(const uint8_t *text, size_t len, bson_t *doc,
    compare_error_t *err)
{
    compare_json_ctx_t  ctx;
    int                 rc;

    err->code = 0;
    err->message[0] = '\0';
    if (len > COMPARE_MAX_BODY) {
        snprintf(err->message, sizeof(err->message),
                 "body of %zu bytes is over the %d byte limit", len,
                 COMPARE_MAX_BODY);
        return COMPARE_PARSE_TOO_LARGE;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.p = text;
    ctx.start = text;
    ctx.end = text + len;
    ctx.err = err;
    compare_json_ws(&ctx);
    if (ctx.p == ctx.end) {
        snprintf(err->message, sizeof(err->message), "empty body");
        return COMPARE_PARSE_EMPTY;
    }
    bson_init(doc);
    rc = compare_json_value(&ctx, doc, "$", 1, 0);
    if (rc == 0) {
        compare_json_ws(&ctx);
        if (ctx.p != ctx.end) {
            rc = compare_json_fail(&ctx, "trailing data");
        }
    }
    free(ctx.sbuf);
    if (rc != 0) {
        bson_destroy(doc);
        return ctx.too_deep ? COMPARE_PARSE_TOO_DEEP : COMPARE_PARSE_INVALID;
    }
    return COMPARE_PARSE_OK;
}


static int
compare_json_literal(compare_json_ctx_t *ctx, const char *lit)
{
    size_t  n = strlen(lit);

    if ((size_t) (ctx->end - ctx->p) < n || memcmp(ctx->p, lit, n) != 0) {
        return compare_json_fail(ctx, "invalid literal");
    }
    ctx->p += n;
    return 0;
}


static int
compare_json_object(compare_json_ctx_t *ctx, bson_t *child, int depth)
{
    size_t       klen, i;
    const char  *str;
    char        *key;
    int          rc;

    ctx->p++;
    compare_json_ws(ctx);
    if (ctx->p < ctx->end && *ctx->p == '}') {
        ctx->p++;
        return 0;
    }
    for ( ;; ) {
        compare_json_ws(ctx);
        if (ctx->p >= ctx->end || *ctx->p != '"') {
            return compare_json_fail(ctx, "expected a member name");
        }
        if (compare_json_string(ctx, &str, &klen) != 0) {
            return -1;
        }
        key = NULL;
        /* BSON keys are C strings: an escaped NUL is kept as its escape */
        if (str == ctx->sbuf && memchr(ctx->sbuf, '\0', klen) != NULL) {
            char   *fixed = malloc(klen * 6 + 1);
            size_t  o = 0;

            if (fixed == NULL) {
                return compare_json_fail(ctx, "out of memory");
            }
            for (i = 0; i < klen; i++) {
                if (str[i] == '\0') {
                    memcpy(fixed + o, "\\u0000", 6);
                    o += 6;
                } else {
                    fixed[o++] = str[i];
                }
            }
            key = fixed;
            str = fixed;
            klen = o;
        } else if (str == ctx->sbuf) {
            /* the value may reuse the scratch buffer */
            key = bson_strndup(str, klen);
            str = key;
        }
        compare_json_ws(ctx);
        if (ctx->p >= ctx->end || *ctx->p != ':') {
            free(key);
            return compare_json_fail(ctx, "expected ':'");
        }
        ctx->p++;
        rc = compare_json_value(ctx, child, str, klen, depth + 1);
        free(key);
        if (rc != 0) {
            return -1;
        }
        rc = compare_json_next(ctx, '}');
        if (rc != 1) {
            return rc;
        }
    }
}


/* After a member or an element: 1 when a ',' announces another, 0 past
 * the closing character, -1 on anything else. */
static int
compare_json_next(compare_json_ctx_t *ctx, char close)
{
    compare_json_ws(ctx);
    if (ctx->p < ctx->end && *ctx->p == ',') {
        ctx->p++;
        return 1;
    }
    if (ctx->p < ctx->end && *ctx->p == close) {
        ctx->p++;
        return 0;
    }
    return compare_json_fail(ctx, close == '}' ? "expected ',' or '}'"
                                               : "expected ',' or ']'");
}


static int
compare_json_array(compare_json_ctx_t *ctx, bson_t *child, int depth)
{
    int          rc;
    uint32_t     i = 0;
    char         buf[16];
    const char  *key;
    size_t       klen;

    ctx->p++;
    compare_json_ws(ctx);
    if (ctx->p < ctx->end && *ctx->p == ']') {
        ctx->p++;
        return 0;
    }
    for ( ;; ) {
        klen = bson_uint32_to_string(i++, &key, buf, sizeof(buf));
        if (compare_json_value(ctx, child, key, klen, depth + 1) != 0) {
            return -1;
        }
        rc = compare_json_next(ctx, ']');
        if (rc != 1) {
            return rc;
        }
    }
}


static int
compare_json_value(compare_json_ctx_t *ctx, bson_t *parent, const char *key,
    size_t keylen, int depth)
{
    bson_t       child;
    size_t       len;
    const char  *str;
    int          rc;

    compare_json_ws(ctx);
    if (ctx->p >= ctx->end) {
        return compare_json_fail(ctx, "unexpected end");
    }
    if ((*ctx->p == '{' || *ctx->p == '[') && depth >= COMPARE_MAX_DEPTH) {
        ctx->too_deep = 1;
        return compare_json_fail(ctx, "nesting deeper than the limit");
    }
    switch (*ctx->p) {
    case '{':
        bson_append_document_begin(parent, key, (int) keylen, &child);
        rc = compare_json_object(ctx, &child, depth);
        bson_append_document_end(parent, &child);
        return rc;
    case '[':
        bson_append_array_begin(parent, key, (int) keylen, &child);
        rc = compare_json_array(ctx, &child, depth);
        bson_append_array_end(parent, &child);
        return rc;
    case '"':
        if (compare_json_string(ctx, &str, &len) != 0) {
            return -1;
        }
        bson_append_utf8(parent, key, (int) keylen, str, (int) len);
        return 0;
    case 't':
        if (compare_json_literal(ctx, "true") != 0) {
            return -1;
        }
        bson_append_bool(parent, key, (int) keylen, true);
        return 0;
    case 'f':
        if (compare_json_literal(ctx, "false") != 0) {
            return -1;
        }
        bson_append_bool(parent, key, (int) keylen, false);
        return 0;
    case 'n':
        if (compare_json_literal(ctx, "null") != 0) {
            return -1;
        }
        bson_append_null(parent, key, (int) keylen);
        return 0;
    default:
        return compare_json_number(ctx, parent, key, keylen);
    }
}


static int
compare_json_put(compare_json_ctx_t *ctx, size_t *olen, const char *s,
    size_t n)
{
    if (*olen + n + 1 > ctx->scap) {
        size_t  cap = ctx->scap ? ctx->scap * 2 : 256;
        char   *nb;

        while (cap < *olen + n + 1) {
            cap *= 2;
        }
        nb = realloc(ctx->sbuf, cap);
        if (nb == NULL) {
            return compare_json_fail(ctx, "out of memory");
        }
        ctx->sbuf = nb;
        ctx->scap = cap;
    }
    memcpy(ctx->sbuf + *olen, s, n);
    *olen += n;
    ctx->sbuf[*olen] = '\0';
    return 0;
}


static int
compare_json_hex4(compare_json_ctx_t *ctx, uint32_t *v)
{
    int  i, c;

    if (ctx->end - ctx->p < 4) {
        return compare_json_fail(ctx, "short \\u escape");
    }
    *v = 0;
    for (i = 0; i < 4; i++) {
        c = ctx->p[i];
        *v <<= 4;
        if (c >= '0' && c <= '9') {
            *v |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            *v |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            *v |= c - 'A' + 10;
        } else {
            return compare_json_fail(ctx, "bad \\u escape");
        }
    }
    ctx->p += 4;
    return 0;
}


static int
compare_json_escape_u(compare_json_ctx_t *ctx, size_t *olen)
{
    uint32_t  cp, lo;
    char      out[4];
    size_t    n;

    if (compare_json_hex4(ctx, &cp) != 0) {
        return -1;
    }
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return compare_json_fail(ctx, "lone low surrogate");
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (ctx->end - ctx->p < 6 || ctx->p[0] != '\\' || ctx->p[1] != 'u') {
            return compare_json_fail(ctx, "lone high surrogate");
        }
        ctx->p += 2;
        if (compare_json_hex4(ctx, &lo) != 0) {
            return -1;
        }
        if (lo < 0xDC00 || lo > 0xDFFF) {
            return compare_json_fail(ctx, "bad surrogate pair");
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp < 0x80) {
        out[0] = (char) cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char) (0xC0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char) (0xE0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char) (0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (char) (0xF0 | (cp >> 18));
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char) (0x80 | (cp & 0x3F));
        n = 4;
    }
    return compare_json_put(ctx, olen, out, n);
}


/* One UTF-8 sequence, validated (no overlongs, no surrogates), copied. */
static int
compare_json_utf8(compare_json_ctx_t *ctx, size_t *olen)
{
    const uint8_t  *s = ctx->p;

    if (compare_json_utf8_check(ctx) != 0) {
        return -1;
    }
    return compare_json_put(ctx, olen, (const char *) s,
                            (size_t) (ctx->p - s));
}


/* One UTF-8 sequence, validated and skipped. */
static int
compare_json_utf8_check(compare_json_ctx_t *ctx)
{
    const uint8_t  *s = ctx->p;
    uint32_t        cp;
    size_t          n, i;

    if (s[0] < 0x80) {
        n = 1;
        cp = s[0];
    } else if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return compare_json_fail(ctx, "invalid UTF-8");
    }
    if ((size_t) (ctx->end - s) < n) {
        return compare_json_fail(ctx, "truncated UTF-8");
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return compare_json_fail(ctx, "invalid UTF-8");
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800)
        || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF))
    {
        return compare_json_fail(ctx, "invalid UTF-8");
    }
    ctx->p += n;
    return 0;
}


/* A string: *str points into the text when it has no escapes (the common
 * case, no copy), else into the scratch buffer. */
static int
compare_json_string(compare_json_ctx_t *ctx, const char **str, size_t *len)
{
    const uint8_t  *run, *start;
    size_t          olen = 0;

    start = ++ctx->p;
    for ( ;; ) {
        while (ctx->p < ctx->end && compare_json_plain[*ctx->p]) {
            ctx->p++;
        }
        if (ctx->p < ctx->end && *ctx->p >= 0x80) {
            if (compare_json_utf8_check(ctx) != 0) {
                return -1;
            }
            continue;
        }
        break;
    }
    if (ctx->p < ctx->end && *ctx->p == '"') {
        *str = (const char *) start;
        *len = (size_t) (ctx->p - start);
        ctx->p++;
        return 0;
    }
    if (compare_json_put(ctx, &olen, (const char *) start,
                         (size_t) (ctx->p - start)) != 0)
    {
        return -1;
    }
    for ( ;; ) {
        run = ctx->p;
        while (ctx->p < ctx->end && *ctx->p >= 0x20 && *ctx->p < 0x80
               && *ctx->p != '"' && *ctx->p != '\\')
        {
            ctx->p++;
        }
        if (ctx->p > run
            && compare_json_put(ctx, &olen, (const char *) run,
                                (size_t) (ctx->p - run)) != 0)
        {
            return -1;
        }
        if (ctx->p >= ctx->end) {
            return compare_json_fail(ctx, "unterminated string");
        }
        if (*ctx->p == '"') {
            ctx->p++;
            *str = ctx->sbuf;
            *len = olen;
            return 0;
        }
        if (*ctx->p < 0x20) {
            return compare_json_fail(ctx, "control character in string");
        }
        if (*ctx->p >= 0x80) {
            if (compare_json_utf8(ctx, &olen) != 0) {
                return -1;
            }
            continue;
        }
        if (compare_json_escape(ctx, &olen) != 0) {
            return -1;
        }
    }
}


/* The escape after a backslash, decoded into the scratch buffer. */
static int
compare_json_escape(compare_json_ctx_t *ctx, size_t *olen)
{
    char  c;

    ctx->p++;
    if (ctx->p >= ctx->end) {
        return compare_json_fail(ctx, "unterminated escape");
    }
    switch (*ctx->p++) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u':
        return compare_json_escape_u(ctx, olen);
    default:
        ctx->p--;
        return compare_json_fail(ctx, "invalid escape");
    }
    return compare_json_put(ctx, olen, &c, 1);
}


static int
compare_json_digits(compare_json_ctx_t *ctx)
{
    const uint8_t  *s = ctx->p;

    while (ctx->p < ctx->end && *ctx->p >= '0' && *ctx->p <= '9') {
        ctx->p++;
    }
    return ctx->p > s ? 0 : compare_json_fail(ctx, "expected a digit");
}


/* Integers that fit go in as int64, other numbers as decimal128 when exact,
 * else as double (huge exponents). */
static int
compare_json_number(compare_json_ctx_t *ctx, bson_t *parent, const char *key,
    size_t keylen)
{
    const uint8_t     *s = ctx->p;
    int                is_int = 1;
    char               tmp[128];
    char              *text;
    size_t             n;
    bson_decimal128_t  dec;
    char              *endp;
    long long          ll;
    double             d;

    if (ctx->p < ctx->end && *ctx->p == '-') {
        ctx->p++;
    }
    if (ctx->p < ctx->end && *ctx->p == '0') {
        ctx->p++;
    } else if (compare_json_digits(ctx) != 0) {
        return compare_json_fail(ctx, "invalid value");
    }
    if (ctx->p < ctx->end && *ctx->p == '.') {
        ctx->p++;
        is_int = 0;
        if (compare_json_digits(ctx) != 0) {
            return -1;
        }
    }
    if (ctx->p < ctx->end && (*ctx->p == 'e' || *ctx->p == 'E')) {
        ctx->p++;
        is_int = 0;
        if (ctx->p < ctx->end && (*ctx->p == '+' || *ctx->p == '-')) {
            ctx->p++;
        }
        if (compare_json_digits(ctx) != 0) {
            return -1;
        }
    }
    n = (size_t) (ctx->p - s);
    text = n < sizeof(tmp) ? tmp : malloc(n + 1);
    if (text == NULL) {
        return compare_json_fail(ctx, "out of memory");
    }
    memcpy(text, s, n);
    text[n] = '\0';
    if (is_int && n < 19) {
        const char  *d = text + (text[0] == '-');
        int64_t      v = 0;

        while (*d) {
            v = v * 10 + (*d++ - '0');
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
