/*
 * compare_result: a comparison's verdict and its list of differences
 * (kept up to a limit, counted beyond it).
 */

#include "compare/compare_walk.h"


/* --- results ----------------------------------------------------------- */

compare_result_t *
compare_result_new(void)
{
    return calloc(1, sizeof(compare_result_t));
}


int
compare_result_add(compare_result_t *result, const char *path,
    compare_diff_kind_t kind, const char *a, const char *b)
{
    compare_diff_t  *d;

    result->ndiffs++;
    if (result->nkept >= COMPARE_MAX_DIFFS_KEPT) {
        return 0;
    }
    if (result->nkept == result->cap) {
        size_t          cap = result->cap ? result->cap * 2 : 8;
        compare_diff_t *n = realloc(result->diffs, cap * sizeof(*n));

        if (n == NULL) {
            result->oom = 1;
            return -1;
        }
        result->diffs = n;
        result->cap = cap;
    }
    d = &result->diffs[result->nkept];
    d->kind = kind;
    d->path = strdup(path);
    d->a = a ? strdup(a) : NULL;
    d->b = b ? strdup(b) : NULL;
    if (d->path == NULL || (a && d->a == NULL) || (b && d->b == NULL)) {
        free((char *) d->path);
        free((char *) d->a);
        free((char *) d->b);
        result->oom = 1;
        return -1;
    }
    result->nkept++;
    return 0;
}


void
compare_result_truncate(compare_result_t *result, size_t ndiffs,
    size_t nkept)
{
    while (result->nkept > nkept) {
        compare_diff_t *d = &result->diffs[--result->nkept];

        free((char *) d->path);
        free((char *) d->a);
        free((char *) d->b);
    }
    result->ndiffs = ndiffs;
}


void
compare_result_free(compare_result_t *result)
{
    if (result == NULL) {
        return;
    }
    compare_result_truncate(result, 0, 0);
    free(result->diffs);
    free(result->route);
    free(result);
}


compare_verdict_t
compare_result_verdict(const compare_result_t *result)
{
    return result->verdict;
}


size_t
compare_result_ndiffs(const compare_result_t *result)
{
    return result->ndiffs;
}


const compare_diff_t *
compare_result_diff(const compare_result_t *result, size_t i)
{
    return i < result->nkept ? &result->diffs[i] : NULL;
}


const char *
compare_result_detail(const compare_result_t *result)
{
    return result->detail;
}


const char *
compare_result_route(const compare_result_t *result)
{
    return result->route ? result->route : "";
}


const char *
compare_verdict_name(compare_verdict_t verdict)
{
    switch (verdict) {
    case COMPARE_VERDICT_EQUAL:
        return "equal";
    case COMPARE_VERDICT_DIFFERENT:
        return "different";
    case COMPARE_VERDICT_UNPARSEABLE:
        return "unparseable";
    case COMPARE_VERDICT_SHADOW_FAILED:
        return "shadow_failed";
    case COMPARE_VERDICT_PRIMARY_REFUSED:
        return "primary_refused";
    case COMPARE_VERDICT_INDETERMINATE:
        return "indeterminate";
    }
    return "unknown";
}


const char *
compare_diff_kind_name(compare_diff_kind_t kind)
{
    static const char *names[] = { "missing", "extra", "type", "value",
                                   "status", "header", "order" };

    return (unsigned) kind < 7 ? names[kind] : "unknown";
}
