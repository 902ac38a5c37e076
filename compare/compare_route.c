/*
 * compare_route: one route's entries of the rules file (match, ignore,
 * mask, tolerance, sets, normalize, status_equal, headers), checked.
 */

#include "compare/compare_rules_parse.h"


static int compare_decimal_member(bson_iter_t *it, compare_decimal_t *out);
static int compare_norm_flag(const char *s, unsigned *flags);


int
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


int
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


int
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


int
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


int
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


int
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


int
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
