/*
 * compare_pair: one exchange's two answers to a verdict: statuses, chosen
 * headers, then the bodies (documents, or bytes and hashes).
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_hash.h"
#include "common/cutover_json.h"
#include "compare/compare_diff.h"
#include "compare/compare_json.h"


/* compare_json_quote()'s output buffer */
typedef struct {
    char    *out;
    size_t   o;
    size_t   size;
} compare_quote_t;


static void compare_side_names(const compare_pair_t *pair, const char **p,
    const char **s);
static int compare_structured(const compare_response_t *r);
static int compare_untyped(const compare_response_t *r);
static void compare_hash_text(const compare_response_t *r, char *out,
    size_t size);
static void compare_bytes(const compare_response_t *a,
    const compare_response_t *b, compare_result_t *res);
static const char *compare_header_value(const compare_response_t *r,
    const char *name, size_t *len);
static void compare_json_quote(const char *s, size_t n, char *out, size_t size);
static int compare_quote_sink(void *data, const char *p, size_t n);
static void compare_headers(const compare_route_t *route,
    const compare_pair_t *pair, compare_result_t *res);
static char *compare_route_guess(const char *method, const char *uri);
static void compare_bodies(const compare_rules_t *rules,
    const compare_route_t *route, const compare_pair_t *pair,
    compare_result_t *res);


static void
compare_side_names(const compare_pair_t *pair, const char **p,
    const char **s)
{
    if (pair->side_served != NULL && strcmp(pair->side_served, "new") == 0) {
        *p = "new";
        *s = "legacy";
    } else if (pair->side_served != NULL
               && strcmp(pair->side_served, "legacy") == 0)
    {
        *p = "legacy";
        *s = "new";
    } else {
        *p = "A";
        *s = "B";
    }
}


static int
compare_untyped(const compare_response_t *r)
{
    return r->content_type == NULL || r->content_type[0] == '\0';
}


/* JSON or BSON by content type, or by the look of it when there is none. */
static int
compare_structured(const compare_response_t *r)
{
    size_t  i;

    if (r->content_type != NULL && r->content_type[0] != '\0') {
        return strcasestr(r->content_type, "json") != NULL
               || strcasestr(r->content_type, "bson") != NULL;
    }
    if (compare_bson_detect(r->body, r->body_len)) {
        return 1;
    }
    for (i = 0; i < r->body_len && isspace(r->body[i]); i++) {
        /* skip */
    }
    return i < r->body_len && strchr("{[\"-0123456789tfn", r->body[i]) != NULL
           && r->body[i] != '\0';
}


static void
compare_hash_text(const compare_response_t *r, char *out, size_t size)
{
    char  hex[65];

    if (r->body_truncated && r->body_sha256 != NULL) {
        snprintf(out, size, "\"sha256:%.64s\"", r->body_sha256);
        return;
    }
    cutover_sha256_hex(r->body ? r->body : (const uint8_t *) "", r->body_len,
                       hex);
    snprintf(out, size, "\"sha256:%s (%zu bytes)\"", hex, r->body_len);
}


/* The hex SHA-256 of the whole body into hex[65]: the one given, else
 * computed from a body held whole (recorders hash only what they
 * truncate); 0 when a truncated body came without one. */
static int
compare_body_digest(const compare_response_t *r, char *hex)
{
    if (r->body_sha256 != NULL) {
        snprintf(hex, 65, "%.64s", r->body_sha256);
        return 1;
    }
    if (r->body_truncated) {
        return 0;
    }
    cutover_sha256_hex(r->body ? r->body : (const uint8_t *) "", r->body_len,
                       hex);
    return 1;
}


static void
compare_bytes(const compare_response_t *a, const compare_response_t *b,
    compare_result_t *res)
{
    char  ta[128], tb[128];
    char  ha[65], hb[65];
    int   equal;

    /* a truncated side is compared by the hash of the whole body; the two
     * sides may keep different prefixes (cutover_body_limit in nginx,
     * body_limit in cutover-shadowd) */
    if ((a->body_truncated || b->body_truncated)
        && compare_body_digest(a, ha)
        && compare_body_digest(b, hb))
    {
        equal = strcasecmp(ha, hb) == 0;
    } else {
        equal = a->body_len == b->body_len
                && (a->body_len == 0 || memcmp(a->body, b->body, a->body_len)
                                        == 0);
    }
    if (!equal) {
        compare_hash_text(a, ta, sizeof(ta));
        compare_hash_text(b, tb, sizeof(tb));
        compare_result_add(res, "$", COMPARE_DIFF_VALUE, ta, tb);
    }
}


static const char *
compare_header_value(const compare_response_t *r, const char *name,
    size_t *len)
{
    size_t       i, n = strlen(name);
    const char  *h, *v, *e;

    for (i = 0; r->headers != NULL && i < r->nheaders; i++) {
        h = r->headers[i];
        if (h != NULL && strncasecmp(h, name, n) == 0 && h[n] == ':') {
            v = h + n + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            e = v + strlen(v);
            while (e > v && isspace((unsigned char) e[-1])) {
                e--;
            }
            *len = (size_t) (e - v);
            return v;
        }
    }
    return NULL;
}


/* A header value as a JSON string, cut short to fit out (8 bytes are
 * kept for an escape, the quote and the NUL). */
static void
compare_json_quote(const char *s, size_t n, char *out, size_t size)
{
    compare_quote_t  q;

    q.out = out;
    q.o = 1;
    q.size = size;
    out[0] = '"';
    (void) cutover_json_write(s, n, 0, compare_quote_sink, &q);
    out[q.o++] = '"';
    out[q.o] = '\0';
}


static int
compare_quote_sink(void *data, const char *p, size_t n)
{
    size_t            k;
    compare_quote_t  *q = data;

    if (q->o + 8 >= q->size) {
        return 1;
    }

    if (p[0] != '\\') {
        /* a run of plain bytes (an escape starts with '\\'), taken while
         * there is room */
        k = q->size - 8 - q->o;
        n = n < k ? n : k;
    }

    memcpy(q->out + q->o, p, n);
    q->o += n;
    return 0;
}


static void
compare_headers(const compare_route_t *route, const compare_pair_t *pair,
    compare_result_t *res)
{
    const char  *va, *vb;
    size_t       la = 0, lb = 0;
    char         path[160], ta[300], tb[300];
    int          i;

    for (i = 0; route != NULL && i < route->nheaders; i++) {
        va = compare_header_value(&pair->primary, route->headers[i], &la);
        vb = compare_header_value(&pair->shadow, route->headers[i], &lb);
        if (va == NULL && vb == NULL) {
            continue;
        }
        if (va != NULL && vb != NULL && la == lb
            && strncasecmp(va, vb, la) == 0)
        {
            continue;
        }
        snprintf(path, sizeof(path), "header:%s", route->headers[i]);
        if (va) {
            compare_json_quote(va, la, ta, sizeof(ta));
        }
        if (vb) {
            compare_json_quote(vb, lb, tb, sizeof(tb));
        }
        compare_result_add(res, path, COMPARE_DIFF_HEADER, va ? ta : NULL,
                           vb ? tb : NULL);
    }
}


/* "GET /api/v1/orders/ORD42?x" -> "GET /api/v1/orders/{id}" */
static char *
compare_route_guess(const char *method, const char *uri)
{
    size_t       n = strcspn(uri, "?#"), o, i, s;
    char        *out;
    int          digit;

    out = malloc(strlen(method) + 2 + n * 2 + 8);
    if (out == NULL) {
        return NULL;
    }
    o = (size_t) sprintf(out, "%s ", method);
    for (i = 0; i < n; ) {
        if (uri[i] == '/') {
            out[o++] = uri[i++];
            continue;
        }
        s = i;
        digit = 0;
        while (i < n && uri[i] != '/') {
            digit |= isdigit((unsigned char) uri[i]) != 0;
            i++;
        }
        /* an id has digits; a version segment ("v1") is not an id */
        if (digit && !(uri[s] == 'v' && i - s <= 3
                       && strspn(uri + s + 1, "0123456789") == i - s - 1))
        {
            memcpy(out + o, "{id}", 4);
            o += 4;
        } else {
            memcpy(out + o, uri + s, i - s);
            o += i - s;
        }
    }
    out[o] = '\0';
    return out;
}


static void
compare_bodies(const compare_rules_t *rules, const compare_route_t *route,
    const compare_pair_t *pair, compare_result_t *res)
{
    const compare_response_t  *a = &pair->primary, *b = &pair->shadow;
    bson_t                     da, db;
    compare_parse_status_t     sa, sb;
    compare_error_t            ea, eb;
    const char                *na, *nb;
    int                        xa, xb;
    char                       ta[128], tb[128];

    compare_side_names(pair, &na, &nb);
    if (a->body_len == 0 && b->body_len == 0) {
        return;
    }
    if (a->body_truncated || b->body_truncated) {
        compare_bytes(a, b, res);
        return;
    }
    if ((a->body_len == 0 && compare_untyped(a))
        || (b->body_len == 0 && compare_untyped(b)))
    {
        /* no body and no type (a 204, say) beside a body: a difference;
         * an empty body that claims to be JSON is unparseable below */
        compare_hash_text(a->body_len ? a : b, ta, sizeof(ta));
        compare_result_add(res, "$", a->body_len ? COMPARE_DIFF_MISSING
                                                 : COMPARE_DIFF_EXTRA,
                           a->body_len ? ta : NULL, b->body_len ? ta : NULL);
        return;
    }
    xa = compare_structured(a);
    xb = compare_structured(b);
    if (!xa && !xb) {
        compare_bytes(a, b, res);
        return;
    }
    if (xa != xb) {
        compare_hash_text(a, ta, sizeof(ta));
        compare_hash_text(b, tb, sizeof(tb));
        compare_result_add(res, "$", COMPARE_DIFF_TYPE, ta, tb);
        return;
    }
    sa = compare_body_parse(a->content_type, a->body, a->body_len, &da, &ea);
    sb = compare_body_parse(b->content_type, b->body, b->body_len, &db, &eb);
    if (sa != COMPARE_PARSE_OK || sb != COMPARE_PARSE_OK) {
        res->verdict = COMPARE_VERDICT_UNPARSEABLE;
        if (sa != COMPARE_PARSE_OK && sb != COMPARE_PARSE_OK) {
            snprintf(res->detail, sizeof(res->detail),
                     "%s on both sides: %s: %.120s; %s: %.120s",
                     compare_parse_status_name(sa), na, ea.message, nb,
                     eb.message);
        } else {
            snprintf(res->detail, sizeof(res->detail),
                     "%s on the %s side: %.250s",
                     compare_parse_status_name(sa != COMPARE_PARSE_OK ? sa
                                                                      : sb),
                     sa != COMPARE_PARSE_OK ? na : nb,
                     sa != COMPARE_PARSE_OK ? ea.message : eb.message);
        }
        if (sa == COMPARE_PARSE_OK) {
            bson_destroy(&da);
        }
        if (sb == COMPARE_PARSE_OK) {
            bson_destroy(&db);
        }
        return;
    }
    compare_docs(rules, route, &da, &db, res);
    bson_destroy(&da);
    bson_destroy(&db);
}


compare_result_t *
compare_pair_run(const compare_rules_t *rules, const compare_pair_t *pair,
    compare_error_t *err)
{
    compare_result_t       *res;
    const compare_route_t  *route;
    const char             *method = pair->method ? pair->method : "GET";
    const char             *uri = pair->uri ? pair->uri : "/";
    char                    sa[16], sb[16];

    res = compare_result_new();
    if (res == NULL) {
        goto oom;
    }
    route = compare_rules_route(rules, method, uri);
    res->route = route ? strdup(route->match)
                       : compare_route_guess(method, uri);
    if (res->route == NULL) {
        goto oom;
    }
    if (pair->shadow.status == 0 || pair->shadow.error != NULL) {
        res->verdict = COMPARE_VERDICT_SHADOW_FAILED;
        snprintf(res->detail, sizeof(res->detail), "shadow got no answer: %s",
                 pair->shadow.error ? pair->shadow.error : "no status");
        return res;
    }
    if (!compare_route_status_equal(route, pair->primary.status,
                                    pair->shadow.status))
    {
        snprintf(sa, sizeof(sa), "%d", pair->primary.status);
        snprintf(sb, sizeof(sb), "%d", pair->shadow.status);
        compare_result_add(res, "status", COMPARE_DIFF_STATUS, sa, sb);
    }
    compare_headers(route, pair, res);
    compare_bodies(rules, route, pair, res);
    if (res->oom) {
        goto oom;
    }
    if (res->verdict == COMPARE_VERDICT_EQUAL && res->ndiffs > 0) {
        res->verdict = COMPARE_VERDICT_DIFFERENT;
        snprintf(res->detail, sizeof(res->detail), "%zu difference%s",
                 res->ndiffs, res->ndiffs == 1 ? "" : "s");
    }
    return res;
oom:
    compare_result_free(res);
    if (err != NULL) {
        err->code = COMPARE_ERROR;
        snprintf(err->message, sizeof(err->message), "out of memory");
    }
    return NULL;
}


compare_result_t *
compare_pair_unreplayed(const compare_rules_t *rules,
    const compare_pair_t *pair, compare_verdict_t verdict,
    const char *detail, compare_error_t *err)
{
    compare_result_t       *res;
    const compare_route_t  *route;
    const char             *method = pair->method ? pair->method : "GET";
    const char             *uri = pair->uri ? pair->uri : "/";

    res = compare_result_new();
    if (res == NULL) {
        goto oom;
    }
    route = compare_rules_route(rules, method, uri);
    res->route = route ? strdup(route->match)
                       : compare_route_guess(method, uri);
    if (res->route == NULL) {
        goto oom;
    }
    res->verdict = verdict;
    snprintf(res->detail, sizeof(res->detail), "%s", detail ? detail : "");
    return res;
oom:
    compare_result_free(res);
    if (err != NULL) {
        err->code = COMPARE_ERROR;
        snprintf(err->message, sizeof(err->message), "out of memory");
    }
    return NULL;
}
