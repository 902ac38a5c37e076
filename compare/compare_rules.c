/*
 * compare_rules: loading and validating the rules file; rule paths.
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>
#include <openssl/rand.h>

#include "compare/compare_json.h"
#include "compare/compare_rules.h"


static int compare_rules_fail(compare_error_t *err, int idx, const char *match,
    const char *fmt, ...);
static int compare_seg_parse(const char **pp, compare_seg_t *seg);
static int compare_rules_routes(compare_rules_t *rules, bson_iter_t *it,
    compare_error_t *err);
static int compare_rules_mask_key(compare_rules_t *rules,
    compare_error_t *err);
static int compare_seg_match(const compare_seg_t *pat,
    const compare_seg_t *seg);
static size_t compare_put(char *buf, size_t size, size_t off, const char *s,
    size_t n);
static int compare_plain_name(const char *s, size_t n);
static int compare_hexval(int c);
static int compare_rules_key(compare_rules_t *rules, const char *hex,
    compare_error_t *err);
static void compare_route_free(compare_route_t *route);
static int compare_count(bson_iter_t *it);
static int compare_route_match(compare_route_t *route, const char *match,
    int idx, compare_error_t *err);
static int compare_route_paths(bson_iter_t *it, compare_path_t **out, int *nout,
    int idx, const char *match, const char *what, compare_error_t *err);
static int compare_decimal_member(bson_iter_t *it, compare_decimal_t *out);
static int compare_route_tolerance(compare_route_t *route, bson_iter_t *it,
    int idx, compare_error_t *err);
static int compare_route_sets(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err);
static int compare_norm_flag(const char *s, unsigned *flags);
static int compare_route_normalize(compare_route_t *route, bson_iter_t *it,
    int idx, compare_error_t *err);
static int compare_route_status(
    compare_route_t *route, bson_iter_t *it, int idx, compare_error_t *err);
static int compare_route_headers(compare_route_t *route, bson_iter_t *it,
    int idx, compare_error_t *err);
static int compare_route_parse(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err);


static int
compare_rules_fail(compare_error_t *err, int idx, const char *match,
    const char *fmt, ...)
{
    char     what[200];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    err->code = COMPARE_ERROR;
    if (idx < 0) {
        snprintf(err->message, sizeof(err->message), "rules: %s", what);
    } else {
        snprintf(err->message, sizeof(err->message), "rule %d (%s): %s",
                 idx + 1, match ? match : "no match", what);
    }
    return -1;
}


/* --- paths ------------------------------------------------------------- */

/* One segment of a rule path at *pp: .name, .*, ["name"], [n], [*],
 * [field=value].  0, or -1 with *pp where it went wrong. */
static int
compare_seg_parse(const char **pp, compare_seg_t *seg)
{
    const char     *p = *pp, *s, *eq;
    char           *endp;
    unsigned long   v;

    memset(seg, 0, sizeof(*seg));
    if (*p == '.') {
        for (s = ++p; *p && *p != '.' && *p != '['; p++) {
            /* the name */
        }
        if (p == s) {
            return -1;
        }
        seg->type = (p - s == 1 && *s == '*') ? COMPARE_SEG_ANY_FIELD
                                              : COMPARE_SEG_FIELD;
        seg->name = s;
        seg->len = (size_t) (p - s);
    } else if (*p == '[' && p[1] == '"') {
        s = p + 2;               /* ["odd.name"]: no escapes inside */
        p = strchr(s, '"');
        if (p == NULL || p[1] != ']') {
            return -1;
        }
        seg->type = COMPARE_SEG_FIELD;
        seg->name = s;
        seg->len = (size_t) (p - s);
        p += 2;
    } else if (*p == '[') {
        s = ++p;
        p = strchr(s, ']');
        if (p == NULL || p == s) {
            return -1;
        }
        eq = memchr(s, '=', (size_t) (p - s));
        if (p - s == 1 && *s == '*') {
            seg->type = COMPARE_SEG_ANY_INDEX;
        } else if (eq != NULL) {
            if (eq == s) {
                return -1;
            }
            seg->type = COMPARE_SEG_KEY;
            seg->name = s;
            seg->len = (size_t) (eq - s);
            seg->value = eq + 1;
            seg->vlen = (size_t) (p - eq - 1);
        } else {
            errno = 0;
            v = isdigit((unsigned char) *s) ? strtoul(s, &endp, 10) : 0;
            if (!isdigit((unsigned char) *s) || endp != p || errno != 0
                || v > UINT32_MAX)
            {
                return -1;
            }
            seg->type = COMPARE_SEG_INDEX;
            seg->index = (uint32_t) v;
        }
        p++;
    } else {
        return -1;
    }
    *pp = p;
    return 0;
}


int
compare_path_parse(const char *text, compare_path_t *path,
    compare_error_t *err)
{
    const char     *p;
    int             cap = 8;
    size_t          len;
    compare_seg_t  *n;

    memset(path, 0, sizeof(*path));
    if (text[0] != '$') {
        snprintf(err->message, sizeof(err->message),
                 "path \"%.100s\" must start with '$'", text);
        return -1;
    }
    len = strlen(text);
    path->text = malloc(len + 1);
    path->segs = malloc(sizeof(compare_seg_t) * (size_t) cap);
    if (path->text == NULL || path->segs == NULL) {
        compare_path_free(path);
        snprintf(err->message, sizeof(err->message), "out of memory");
        return -1;
    }
    memcpy(path->text, text, len + 1);
    p = path->text + 1;
    while (*p) {
        if (path->nsegs == cap) {
            n = realloc(path->segs, sizeof(compare_seg_t) * (size_t) cap * 2);
            if (n == NULL) {
                break;
            }
            path->segs = n;
            cap *= 2;
        }
        if (compare_seg_parse(&p, &path->segs[path->nsegs]) != 0) {
            break;
        }
        path->nsegs++;
    }
    if (*p == '\0') {
        return 0;
    }
    snprintf(err->message, sizeof(err->message),
             "bad path \"%.100s\" near offset %d", text,
             (int) (p - path->text));
    compare_path_free(path);
    return -1;
}


void
compare_path_free(compare_path_t *path)
{
    free(path->text);
    free(path->segs);
    path->text = NULL;
    path->segs = NULL;
    path->nsegs = 0;
}


static int
compare_seg_match(const compare_seg_t *pat, const compare_seg_t *seg)
{
    switch (pat->type) {
    case COMPARE_SEG_FIELD:
        return seg->type == COMPARE_SEG_FIELD && seg->len == pat->len
               && memcmp(seg->name, pat->name, pat->len) == 0;
    case COMPARE_SEG_ANY_FIELD:
        return seg->type == COMPARE_SEG_FIELD;
    case COMPARE_SEG_INDEX:
        return seg->type == COMPARE_SEG_INDEX && seg->index == pat->index;
    case COMPARE_SEG_ANY_INDEX:
        return seg->type == COMPARE_SEG_INDEX || seg->type == COMPARE_SEG_KEY;
    case COMPARE_SEG_KEY:
        return seg->type == COMPARE_SEG_KEY && seg->len == pat->len
               && seg->vlen == pat->vlen
               && memcmp(seg->name, pat->name, pat->len) == 0
               && memcmp(seg->value, pat->value, pat->vlen) == 0;
    }
    return 0;
}


int
compare_path_match(const compare_path_t *pattern, const compare_seg_t *segs,
    int n)
{
    int  i;

    if (pattern->nsegs != n) {
        return 0;
    }
    for (i = n - 1; i >= 0; i--) {
        if (!compare_seg_match(&pattern->segs[i], &segs[i])) {
            return 0;
        }
    }
    return 1;
}


static size_t
compare_put(char *buf, size_t size, size_t off, const char *s, size_t n)
{
    if (off < size) {
        size_t room = size - off - 1;

        memcpy(buf + off, s, n < room ? n : room);
        buf[off + (n < room ? n : room)] = '\0';
    }
    return off + n;
}


static int
compare_plain_name(const char *s, size_t n)
{
    size_t  i;

    if (n == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!(isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '-'
              || (unsigned char) s[i] >= 0x80))
        {
            return 0;
        }
    }
    return 1;
}


size_t
compare_path_format(const compare_seg_t *segs, int n, char *buf, size_t size)
{
    size_t  off = 0;
    char    num[16];
    int     i;

    if (size > 0) {
        buf[0] = '\0';
    }
    off = compare_put(buf, size, off, "$", 1);
    for (i = 0; i < n; i++) {
        const compare_seg_t *s = &segs[i];

        switch (s->type) {
        case COMPARE_SEG_FIELD:
            if (compare_plain_name(s->name, s->len)) {
                off = compare_put(buf, size, off, ".", 1);
                off = compare_put(buf, size, off, s->name, s->len);
            } else {
                off = compare_put(buf, size, off, "[\"", 2);
                off = compare_put(buf, size, off, s->name, s->len);
                off = compare_put(buf, size, off, "\"]", 2);
            }
            break;
        case COMPARE_SEG_INDEX:
            snprintf(num, sizeof(num), "[%u]", s->index);
            off = compare_put(buf, size, off, num, strlen(num));
            break;
        case COMPARE_SEG_KEY:
            off = compare_put(buf, size, off, "[", 1);
            off = compare_put(buf, size, off, s->name, s->len);
            off = compare_put(buf, size, off, "=", 1);
            off = compare_put(buf, size, off, s->value, s->vlen);
            off = compare_put(buf, size, off, "]", 1);
            break;
        case COMPARE_SEG_ANY_INDEX:
            off = compare_put(buf, size, off, "[*]", 3);
            break;
        case COMPARE_SEG_ANY_FIELD:
            off = compare_put(buf, size, off, ".*", 2);
            break;
        }
    }
    return off;
}


/* --- loading ----------------------------------------------------------- */

compare_rules_t *
compare_rules_load(const char *path, compare_error_t *err)
{
    FILE             *f;
    char             *text = NULL;
    size_t            len = 0, cap = 0, n;
    compare_rules_t  *rules;

    err->code = 0;
    err->message[0] = '\0';
    if (path == NULL) {
        return compare_rules_parse("{\"routes\": []}", 14, err);
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err->message, sizeof(err->message), "rules: %s: %s", path,
                 strerror(errno));
        err->code = COMPARE_ERROR;
        return NULL;
    }
    for ( ;; ) {
        if (len + 4096 > cap) {
            char *nt = realloc(text, cap = cap ? cap * 2 : 8192);

            if (nt == NULL) {
                free(text);
                fclose(f);
                compare_rules_fail(err, -1, NULL, "out of memory");
                return NULL;
            }
            text = nt;
        }
        n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0 || len > COMPARE_MAX_BODY) {
            break;
        }
    }
    fclose(f);
    rules = compare_rules_parse(text, len, err);
    free(text);
    return rules;
}


static int
compare_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


static int
compare_rules_key(compare_rules_t *rules, const char *hex,
    compare_error_t *err)
{
    size_t  n = strlen(hex), i;

    if (n < 32 || n % 2 != 0 || n / 2 > sizeof(rules->mask_key)) {
        return compare_rules_fail(err, -1, NULL,
            "mask_key must be 32 to 128 hex digits");
    }
    for (i = 0; i < n / 2; i++) {
        int hi = compare_hexval(hex[2 * i]);
        int lo = compare_hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return compare_rules_fail(err, -1, NULL,
                "mask_key must be 32 to 128 hex digits");
        }
        rules->mask_key[i] = (unsigned char) (hi << 4 | lo);
    }
    rules->mask_key_len = n / 2;
    return 0;
}


/* The "routes" array. */
static int
compare_rules_routes(compare_rules_t *rules, bson_iter_t *it,
    compare_error_t *err)
{
    bson_iter_t  routes;
    int          i, n;

    if (!BSON_ITER_HOLDS_ARRAY(it)) {
        return compare_rules_fail(err, -1, NULL,
                                  "\"routes\" must be an array");
    }
    n = compare_count(it);
    rules->routes = calloc((size_t) n + 1, sizeof(compare_route_t));
    if (rules->routes == NULL) {
        return compare_rules_fail(err, -1, NULL, "out of memory");
    }
    bson_iter_recurse(it, &routes);
    for (i = 0; i < n && bson_iter_next(&routes); i++) {
        rules->nroutes = i + 1;
        if (compare_route_parse(&rules->routes[i], &routes, i, err) != 0) {
            return -1;
        }
    }
    return 0;
}


/* The mask key: the file's, else CUTOVER_MASK_KEY, else a random one (then
 * masked values still match within this process). */
static int
compare_rules_mask_key(compare_rules_t *rules, compare_error_t *err)
{
    const char  *env;

    if (rules->mask_key_len > 0) {
        return 0;
    }
    env = getenv("CUTOVER_MASK_KEY");
    if (env != NULL && env[0] != '\0') {
        if (compare_rules_key(rules, env, err) != 0) {
            return compare_rules_fail(err, -1, NULL,
                "CUTOVER_MASK_KEY must be 32 to 128 hex digits");
        }
        return 0;
    }
    if (RAND_bytes(rules->mask_key, 32) != 1) {
        return compare_rules_fail(err, -1, NULL, "no random mask key");
    }
    rules->mask_key_len = 32;
    return 0;
}


compare_rules_t *
compare_rules_parse(const char *text, size_t len, compare_error_t *err)
{
    bson_t            doc;
    bson_iter_t       it, top;
    compare_rules_t  *rules;
    compare_error_t   perr;
    const char       *k;
    int               rc = 0;

    err->code = 0;
    err->message[0] = '\0';
    if (compare_json_parse((const uint8_t *) text, len, &doc, &perr)
        != COMPARE_PARSE_OK)
    {
        compare_rules_fail(err, -1, NULL, "not JSON: %s", perr.message);
        return NULL;
    }
    rules = calloc(1, sizeof(*rules));
    if (rules == NULL) {
        rc = compare_rules_fail(err, -1, NULL, "out of memory");
    } else if (!bson_iter_init_find(&it, &doc, "$")
               || !BSON_ITER_HOLDS_DOCUMENT(&it)
               || !bson_iter_recurse(&it, &top))
    {
        rc = compare_rules_fail(err, -1, NULL, "the file must hold an object");
    }
    while (rc == 0 && bson_iter_next(&top)) {
        k = bson_iter_key(&top);
        if ((strcmp(k, "routes") == 0 && rules->routes != NULL)
            || (strcmp(k, "mask_key") == 0 && rules->mask_key_len > 0))
        {
            rc = compare_rules_fail(err, -1, NULL, "\"%s\" is given twice",
                                    k);
        } else if (strcmp(k, "routes") == 0) {
            rc = compare_rules_routes(rules, &top, err);
        } else if (strcmp(k, "mask_key") == 0) {
            if (!BSON_ITER_HOLDS_UTF8(&top)
                || compare_rules_key(rules, bson_iter_utf8(&top, NULL), err)
                   != 0)
            {
                rc = compare_rules_fail(err, -1, NULL,
                                        "mask_key must be 32 to 128 hex "
                                        "digits");
            }
        } else {
            rc = compare_rules_fail(err, -1, NULL, "unknown member \"%s\"",
                                    k);
        }
    }
    if (rc == 0) {
        rc = compare_rules_mask_key(rules, err);
    }
    bson_destroy(&doc);
    if (rc != 0) {
        compare_rules_free(rules);
        return NULL;
    }
    return rules;
}


void
compare_rules_free(compare_rules_t *rules)
{
    int  i;

    if (rules == NULL) {
        return;
    }
    for (i = 0; i < rules->nroutes; i++) {
        compare_route_free(&rules->routes[i]);
    }
    free(rules->routes);
    OPENSSL_cleanse(rules->mask_key, sizeof(rules->mask_key));
    free(rules);
}


static void
compare_route_free(compare_route_t *route)
{
    int  i;

    free(route->match);
    free(route->method);
    for (i = 0; i < route->ntsegs; i++) {
        free(route->tsegs[i]);
    }
    free(route->tsegs);
    for (i = 0; i < route->nignore; i++) {
        compare_path_free(&route->ignore[i]);
    }
    free(route->ignore);
    for (i = 0; i < route->nmask; i++) {
        compare_path_free(&route->mask[i]);
    }
    free(route->mask);
    for (i = 0; i < route->ntolerance; i++) {
        compare_path_free(&route->tolerance[i].path);
    }
    free(route->tolerance);
    for (i = 0; i < route->nsets; i++) {
        compare_path_free(&route->sets[i].path);
        free(route->sets[i].key);
    }
    free(route->sets);
    for (i = 0; i < route->nnormalize; i++) {
        compare_path_free(&route->normalize[i].path);
    }
    free(route->normalize);
    free(route->status_class);
    for (i = 0; i < route->nheaders; i++) {
        free(route->headers[i]);
    }
    free(route->headers);
}


static int
compare_count(bson_iter_t *it)
{
    bson_iter_t  c;
    int          n = 0;

    if (!bson_iter_recurse(it, &c)) {
        return 0;
    }
    while (bson_iter_next(&c)) {
        n++;
    }
    return n;
}


static int
compare_route_match(compare_route_t *route, const char *match, int idx,
    compare_error_t *err)
{
    const char  *sp = strchr(match, ' '), *p, *s;
    int          cap = 0;

    route->match = strdup(match);
    if (sp == NULL || sp == match || sp[1] != '/' || route->match == NULL) {
        return compare_rules_fail(err, idx, match,
            "\"match\" must be \"METHOD /path/{param}\"");
    }
    route->method = strndup(match, (size_t) (sp - match));
    for (p = sp + 1; *p; p++) {
        cap += (*p == '/');
    }
    route->tsegs = calloc((size_t) cap + 1, sizeof(char *));
    if (route->method == NULL || route->tsegs == NULL) {
        return compare_rules_fail(err, idx, match, "out of memory");
    }
    p = sp + 1;
    while (*p == '/') {
        s = ++p;
        while (*p && *p != '/') {
            p++;
        }
        if (p - s == 1 && *s == '*' && *p == '\0') {
            route->prefix = 1;
            break;
        }
        if (p == s && *p == '\0') {
            break;
        }
        route->tsegs[route->ntsegs++] = strndup(s, (size_t) (p - s));
    }
    if (*p != '\0') {
        return compare_rules_fail(err, idx, match, "bad path template");
    }
    return 0;
}


static int
compare_route_paths(bson_iter_t *it, compare_path_t **out, int *nout,
    int idx, const char *match, const char *what, compare_error_t *err)
{
    bson_iter_t      c;
    compare_error_t  perr;

    if (!BSON_ITER_HOLDS_ARRAY(it)) {
        return compare_rules_fail(err, idx, match,
                                  "\"%s\" must be an array of paths", what);
    }
    *out = calloc((size_t) compare_count(it) + 1, sizeof(compare_path_t));
    if (*out == NULL) {
        return compare_rules_fail(err, idx, match, "out of memory");
    }
    bson_iter_recurse(it, &c);
    while (bson_iter_next(&c)) {
        if (!BSON_ITER_HOLDS_UTF8(&c)) {
            return compare_rules_fail(err, idx, match,
                                      "\"%s\" must hold strings", what);
        }
        if (compare_path_parse(bson_iter_utf8(&c, NULL), &(*out)[*nout],
                               &perr) != 0)
        {
            return compare_rules_fail(err, idx, match, "%s: %s", what,
                                      perr.message);
        }
        (*nout)++;
    }
    return 0;
}


static int
compare_decimal_member(bson_iter_t *it, compare_decimal_t *out)
{
    char  buf[BSON_DECIMAL128_STRING + 32];

    if (BSON_ITER_HOLDS_UTF8(it)) {
        uint32_t     n;
        const char  *s = bson_iter_utf8(it, &n);

        return compare_decimal_parse(s, n, out);
    }
    if (BSON_ITER_HOLDS_INT64(it) || BSON_ITER_HOLDS_INT32(it)) {
        snprintf(buf, sizeof(buf), "%lld", (long long) bson_iter_as_int64(it));
    } else if (BSON_ITER_HOLDS_DECIMAL128(it)) {
        bson_decimal128_t d;

        bson_iter_decimal128(it, &d);
        bson_decimal128_to_string(&d, buf);
    } else if (BSON_ITER_HOLDS_DOUBLE(it)) {
        snprintf(buf, sizeof(buf), "%.17g", bson_iter_double(it));
    } else {
        return -1;
    }
    return compare_decimal_parse(buf, strlen(buf), out);
}


static int
compare_route_tolerance(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err)
{
    bson_iter_t           c, t;
    compare_tolerance_t  *tol;
    compare_error_t       perr;
    const char           *m = route->match;

    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        return compare_rules_fail(err, idx, m, "\"tolerance\" must be an "
                                  "object of path: {\"abs\"|\"rel\": n}");
    }
    route->tolerance = calloc((size_t) compare_count(it) + 1, sizeof(*tol));
    if (route->tolerance == NULL) {
        return compare_rules_fail(err, idx, m, "out of memory");
    }
    bson_iter_recurse(it, &c);
    while (bson_iter_next(&c)) {
        tol = &route->tolerance[route->ntolerance];
        if (compare_path_parse(bson_iter_key(&c), &tol->path, &perr) != 0) {
            return compare_rules_fail(err, idx, m, "tolerance: %s",
                                      perr.message);
        }
        route->ntolerance++;
        if (!BSON_ITER_HOLDS_DOCUMENT(&c)) {
            return compare_rules_fail(err, idx, m, "tolerance \"%s\" must be "
                                      "an object", bson_iter_key(&c));
        }
        bson_iter_recurse(&c, &t);
        while (bson_iter_next(&t)) {
            const char         *k = bson_iter_key(&t);
            compare_decimal_t  *d;

            if (strcmp(k, "abs") == 0) {
                d = &tol->abs;
                tol->has_abs = 1;
            } else if (strcmp(k, "rel") == 0) {
                d = &tol->rel;
                tol->has_rel = 1;
            } else {
                return compare_rules_fail(err, idx, m, "tolerance \"%s\": "
                    "unknown member \"%s\" (abs or rel)", bson_iter_key(&c), k);
            }
            if (compare_decimal_member(&t, d) != 0 || d->neg) {
                return compare_rules_fail(err, idx, m, "tolerance \"%s\": %s "
                    "must be a non-negative number or decimal string",
                    bson_iter_key(&c), k);
            }
        }
        if (!tol->has_abs && !tol->has_rel) {
            return compare_rules_fail(err, idx, m, "tolerance \"%s\" needs "
                                      "abs or rel", bson_iter_key(&c));
        }
    }
    return 0;
}


static int
compare_route_sets(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err)
{
    bson_iter_t      c;
    compare_error_t  perr;
    compare_set_t   *set;
    const char      *m = route->match;

    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        return compare_rules_fail(err, idx, m, "\"sets\" must be an object "
                                  "of path: key field");
    }
    route->sets = calloc((size_t) compare_count(it) + 1, sizeof(*set));
    if (route->sets == NULL) {
        return compare_rules_fail(err, idx, m, "out of memory");
    }
    bson_iter_recurse(it, &c);
    while (bson_iter_next(&c)) {
        set = &route->sets[route->nsets];
        if (compare_path_parse(bson_iter_key(&c), &set->path, &perr) != 0) {
            return compare_rules_fail(err, idx, m, "sets: %s", perr.message);
        }
        route->nsets++;
        if (!BSON_ITER_HOLDS_UTF8(&c) || bson_iter_utf8(&c, NULL)[0] == '\0') {
            return compare_rules_fail(err, idx, m, "sets \"%s\": the key must "
                                      "be a field name", bson_iter_key(&c));
        }
        set->key = strdup(bson_iter_utf8(&c, NULL));
        if (set->key == NULL) {
            return compare_rules_fail(err, idx, m, "out of memory");
        }
    }
    return 0;
}


static int
compare_norm_flag(const char *s, unsigned *flags)
{
    if (strcmp(s, "case") == 0) {
        *flags |= COMPARE_NORM_CASE;
    } else if (strcmp(s, "space") == 0 || strcmp(s, "whitespace") == 0) {
        *flags |= COMPARE_NORM_SPACE;
    } else if (strcmp(s, "time") == 0) {
        *flags |= COMPARE_NORM_TIME;
    } else {
        return -1;
    }
    return 0;
}


static int
compare_route_normalize(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err)
{
    bson_iter_t      c, f;
    compare_error_t  perr;
    compare_norm_t  *nm;
    const char      *m = route->match;
    int              bad;

    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        return compare_rules_fail(err, idx, m, "\"normalize\" must be an "
                                  "object of path: [\"case\"|\"space\"|"
                                  "\"time\"]");
    }
    route->normalize = calloc((size_t) compare_count(it) + 1, sizeof(*nm));
    if (route->normalize == NULL) {
        return compare_rules_fail(err, idx, m, "out of memory");
    }
    bson_iter_recurse(it, &c);
    while (bson_iter_next(&c)) {
        nm = &route->normalize[route->nnormalize];
        if (compare_path_parse(bson_iter_key(&c), &nm->path, &perr) != 0) {
            return compare_rules_fail(err, idx, m, "normalize: %s",
                                      perr.message);
        }
        route->nnormalize++;
        bad = 0;
        if (BSON_ITER_HOLDS_UTF8(&c)) {
            bad = compare_norm_flag(bson_iter_utf8(&c, NULL), &nm->flags);
        } else if (BSON_ITER_HOLDS_ARRAY(&c)) {
            bson_iter_recurse(&c, &f);
            while (!bad && bson_iter_next(&f)) {
                bad = !BSON_ITER_HOLDS_UTF8(&f)
                      || compare_norm_flag(bson_iter_utf8(&f, NULL),
                                           &nm->flags) != 0;
            }
        } else {
            bad = 1;
        }
        if (bad || nm->flags == 0) {
            return compare_rules_fail(err, idx, m, "normalize \"%s\": use "
                "\"case\", \"space\" or \"time\"", bson_iter_key(&c));
        }
    }
    return 0;
}


static int
compare_route_status(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err)
{
    bson_iter_t  c, s;
    int          cls = 0, n = 0;
    const char  *m = route->match;

    if (!BSON_ITER_HOLDS_ARRAY(it)) {
        goto bad;
    }
    bson_iter_recurse(it, &c);
    while (bson_iter_next(&c)) {
        if (!BSON_ITER_HOLDS_ARRAY(&c)) {
            goto bad;
        }
        n += compare_count(&c);
    }
    route->status_class = calloc((size_t) n * 2 + 1, sizeof(int));
    if (route->status_class == NULL) {
        return compare_rules_fail(err, idx, m, "out of memory");
    }
    bson_iter_recurse(it, &c);
    while (bson_iter_next(&c)) {
        cls++;
        bson_iter_recurse(&c, &s);
        while (bson_iter_next(&s)) {
            int64_t v;

            if (!BSON_ITER_HOLDS_INT64(&s) && !BSON_ITER_HOLDS_INT32(&s)) {
                goto bad;
            }
            v = bson_iter_as_int64(&s);
            if (v < 100 || v > 599) {
                return compare_rules_fail(err, idx, m, "status_equal: %lld "
                                          "is not an HTTP status",
                                          (long long) v);
            }
            route->status_class[route->nstatus * 2] = (int) v;
            route->status_class[route->nstatus * 2 + 1] = cls;
            route->nstatus++;
        }
    }
    return 0;
bad:
    return compare_rules_fail(err, idx, m, "\"status_equal\" must be an "
                              "array of arrays of statuses");
}


static int
compare_route_headers(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err)
{
    bson_iter_t  c;
    const char  *m = route->match;

    if (!BSON_ITER_HOLDS_ARRAY(it)) {
        return compare_rules_fail(err, idx, m, "\"headers\" must be an array "
                                  "of header names");
    }
    route->headers = calloc((size_t) compare_count(it) + 1, sizeof(char *));
    if (route->headers == NULL) {
        return compare_rules_fail(err, idx, m, "out of memory");
    }
    bson_iter_recurse(it, &c);
    while (bson_iter_next(&c)) {
        if (!BSON_ITER_HOLDS_UTF8(&c) || bson_iter_utf8(&c, NULL)[0] == '\0'
            || strchr(bson_iter_utf8(&c, NULL), ':') != NULL)
        {
            return compare_rules_fail(err, idx, m, "\"headers\" must hold "
                                      "header names");
        }
        route->headers[route->nheaders++] = strdup(bson_iter_utf8(&c, NULL));
    }
    return 0;
}


static int
compare_route_parse(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err)
{
    static const char  *names[] = { "match", "ignore", "mask", "tolerance",
                                    "sets", "normalize", "status_equal",
                                    "headers", NULL };
    bson_iter_t         c;
    const char         *k;
    int                 rc = 0, bit;
    unsigned            seen = 0;

    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        return compare_rules_fail(err, idx, NULL, "a route must be an object");
    }
    if (!bson_iter_recurse(it, &c) || !bson_iter_find(&c, "match")
        || !BSON_ITER_HOLDS_UTF8(&c))
    {
        return compare_rules_fail(err, idx, NULL, "\"match\" is missing");
    }
    if (compare_route_match(route, bson_iter_utf8(&c, NULL), idx, err) != 0) {
        return -1;
    }
    bson_iter_recurse(it, &c);
    while (rc == 0 && bson_iter_next(&c)) {
        k = bson_iter_key(&c);
        for (bit = 0; names[bit] != NULL && strcmp(names[bit], k) != 0; bit++) {
            /* find */
        }
        if (names[bit] != NULL && (seen & (1u << bit))) {
            /* ambiguous, and the first one would be lost */
            return compare_rules_fail(err, idx, route->match,
                                      "\"%s\" is given twice", k);
        }
        seen |= 1u << bit;
        if (strcmp(k, "match") == 0) {
            continue;
        } else if (strcmp(k, "ignore") == 0) {
            rc = compare_route_paths(&c, &route->ignore, &route->nignore, idx,
                                     route->match, k, err);
        } else if (strcmp(k, "mask") == 0) {
            rc = compare_route_paths(&c, &route->mask, &route->nmask, idx,
                                     route->match, k, err);
        } else if (strcmp(k, "tolerance") == 0) {
            rc = compare_route_tolerance(route, &c, idx, err);
        } else if (strcmp(k, "sets") == 0) {
            rc = compare_route_sets(route, &c, idx, err);
        } else if (strcmp(k, "normalize") == 0) {
            rc = compare_route_normalize(route, &c, idx, err);
        } else if (strcmp(k, "status_equal") == 0) {
            rc = compare_route_status(route, &c, idx, err);
        } else if (strcmp(k, "headers") == 0) {
            rc = compare_route_headers(route, &c, idx, err);
        } else {
            rc = compare_rules_fail(err, idx, route->match,
                                    "unknown member \"%s\"", k);
        }
    }
    return rc;
}


const compare_route_t *
compare_rules_route(const compare_rules_t *rules, const char *method,
    const char *uri)
{
    const compare_route_t  *r;
    const char             *p, *s, *end;
    int                     i, j;

    if (rules == NULL || method == NULL || uri == NULL) {
        return NULL;
    }
    end = uri + strcspn(uri, "?#");
    for (i = 0; i < rules->nroutes; i++) {
        r = &rules->routes[i];
        if (strcmp(r->method, "*") != 0 && strcasecmp(r->method, method) != 0) {
            continue;
        }
        p = uri;
        for (j = 0; j < r->ntsegs; j++) {
            if (p >= end || *p != '/') {
                break;
            }
            s = ++p;
            while (p < end && *p != '/') {
                p++;
            }
            if (r->tsegs[j][0] == '{') {
                if (p == s) {
                    break;
                }
            } else if (strlen(r->tsegs[j]) != (size_t) (p - s)
                       || memcmp(r->tsegs[j], s, (size_t) (p - s)) != 0)
            {
                break;
            }
        }
        if (j < r->ntsegs) {
            continue;
        }
        if (r->prefix || p == end || (p + 1 == end && *p == '/')) {
            return r;
        }
    }
    return NULL;
}


int
compare_route_status_equal(const compare_route_t *route, int a, int b)
{
    int  i, ca = -1, cb = -2;

    if (a == b) {
        return 1;
    }
    if (route == NULL) {
        return 0;
    }
    for (i = 0; i < route->nstatus; i++) {
        if (route->status_class[2 * i] == a) {
            ca = route->status_class[2 * i + 1];
        }
        if (route->status_class[2 * i] == b) {
            cb = route->status_class[2 * i + 1];
        }
    }
    return ca == cb;
}
