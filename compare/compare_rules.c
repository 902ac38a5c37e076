/*
 * compare_rules: loading and validating the rules file (routes, the mask
 * key).  Rule paths are in compare_path.c, one route's entries in
 * compare_route.c.
 */

#include "compare/compare_rules_parse.h"


static int compare_hexval(int c);
static int compare_rules_key(compare_rules_t *rules, const char *hex,
    compare_error_t *err);
static int compare_rules_routes(compare_rules_t *rules, bson_iter_t *it,
    compare_error_t *err);
static int compare_rules_mask_key(compare_rules_t *rules, compare_error_t *err);
static void compare_route_free(compare_route_t *route);
static int compare_route_parse(compare_route_t *route, bson_iter_t *it,
    int idx, compare_error_t *err);


int
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


int
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
