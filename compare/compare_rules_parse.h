/*
 * compare_rules_parse.h: what the rules file's reader shares between
 * compare_rules.c, compare_route.c and compare_path.c (not a public
 * interface: see compare_rules.h).
 */

#ifndef COMPARE_RULES_PARSE_H
#define COMPARE_RULES_PARSE_H

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


int compare_rules_fail(compare_error_t *err, int idx, const char *match,
    const char *fmt, ...);
int compare_count(bson_iter_t *it);
int compare_route_match(compare_route_t *route, const char *match, int idx,
    compare_error_t *err);
int compare_route_paths(bson_iter_t *it, compare_path_t **out, int *nout,
    int idx, const char *match, const char *what, compare_error_t *err);
int compare_route_tolerance(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err);
int compare_route_sets(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err);
int compare_route_normalize(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err);
int compare_route_status(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err);
int compare_route_headers(compare_route_t *route, bson_iter_t *it, int idx,
    compare_error_t *err);

#endif /* COMPARE_RULES_PARSE_H */
