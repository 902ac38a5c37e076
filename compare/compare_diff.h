/*
 * compare_diff: the field-level diff of two documents under a route's rules
 * (used by compare_pair_run() and by the noise learner).
 */

#ifndef COMPARE_DIFF_H
#define COMPARE_DIFF_H

#include <bson/bson.h>

#include "compare/compare.h"
#include "compare/compare_rules.h"

struct compare_result_s {
    compare_verdict_t   verdict;
    size_t              ndiffs;
    size_t              nkept;
    size_t              cap;
    compare_diff_t     *diffs;
    char               *route;
    char                detail[320];
    int                 oom;
};

compare_result_t *compare_result_new(void);

/* Diff two parsed documents ({"$": value}) into result. */
void compare_docs(const compare_rules_t *rules, const compare_route_t *route,
    const bson_t *a, const bson_t *b, compare_result_t *result);

/* Append one difference (strings copied); a and b may be NULL. */
int compare_result_add(compare_result_t *result, const char *path,
    compare_diff_kind_t kind, const char *a, const char *b);

#endif /* COMPARE_DIFF_H */
