/*
 * compare_noise: learning noisy paths from pairs of answers of one system
 * (Diffy's idea): a path that differs between two answers of the same
 * system to the same request is noise, and becomes an ignore rule.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "compare/compare_diff.h"

typedef struct {
    char      *route;
    char      *path;       /* generalised: indices and keys as [*] */
    uint64_t   count;      /* pairs in which the path differed */
    uint64_t   last;       /* the pair that counted it last */
} compare_noisy_t;

struct compare_noise_s {
    compare_noisy_t  *items;
    size_t            n;
    size_t            cap;
    uint64_t          pairs;
};


static char *compare_noise_general(const char *path);
static int compare_noise_build(const compare_noise_t *noise,
    uint64_t min_count, bson_t *doc);
static char *compare_noise_json(const bson_t *doc);
static int compare_noisy_cmp(const void *x, const void *y);


compare_noise_t *
compare_noise_new(void)
{
    return calloc(1, sizeof(compare_noise_t));
}


void
compare_noise_free(compare_noise_t *noise)
{
    size_t  i;

    if (noise == NULL) {
        return;
    }
    for (i = 0; i < noise->n; i++) {
        free(noise->items[i].route);
        free(noise->items[i].path);
    }
    free(noise->items);
    free(noise);
}


/* "$.lines[2].x" and "$.lines[sku=A].x" -> "$.lines[*].x" */
static char *
compare_noise_general(const char *path)
{
    char        *out = malloc(strlen(path) + 1), *o;
    const char  *p = path, *e;

    if (out == NULL) {
        return NULL;
    }
    o = out;
    while (*p) {
        if (*p == '[' && p[1] != '"' && (e = strchr(p, ']')) != NULL) {
            memcpy(o, "[*]", 3);
            o += 3;
            p = e + 1;
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    return out;
}


void
compare_noise_add(compare_noise_t *noise, const char *route,
    const compare_result_t *result)
{
    const compare_diff_t  *d;
    size_t                 i, j;
    char                  *g;

    noise->pairs++;
    if (route == NULL) {
        route = compare_result_route(result);
    }
    for (i = 0; (d = compare_result_diff(result, i)) != NULL; i++) {
        if (d->path[0] != '$') {
            continue;    /* statuses and headers are not body noise */
        }
        g = compare_noise_general(d->path);
        if (g == NULL) {
            return;
        }
        for (j = 0; j < noise->n; j++) {
            if (strcmp(noise->items[j].path, g) == 0
                && strcmp(noise->items[j].route, route) == 0)
            {
                break;
            }
        }
        if (j < noise->n) {
            if (noise->items[j].last != noise->pairs) {
                noise->items[j].count++;
                noise->items[j].last = noise->pairs;
            }
            free(g);
            continue;
        }
        if (noise->n == noise->cap) {
            size_t           cap = noise->cap ? noise->cap * 2 : 16;
            compare_noisy_t *ni = realloc(noise->items, cap * sizeof(*ni));

            if (ni == NULL) {
                free(g);
                return;
            }
            noise->items = ni;
            noise->cap = cap;
        }
        noise->items[noise->n].route = strdup(route);
        noise->items[noise->n].path = g;
        noise->items[noise->n].count = 1;
        noise->items[noise->n].last = noise->pairs;
        if (noise->items[noise->n].route == NULL) {
            free(g);
            return;
        }
        noise->n++;
    }
}


static int
compare_noisy_cmp(const void *x, const void *y)
{
    const compare_noisy_t *a = x, *b = y;
    int                    c = strcmp(a->route, b->route);

    if (c != 0) {
        return c;
    }
    if (a->count != b->count) {
        return a->count > b->count ? -1 : 1;
    }
    return strcmp(a->path, b->path);
}


static int
compare_noise_build(const compare_noise_t *noise, uint64_t min_count,
    bson_t *doc)
{
    bson_t            arr, item, rules, routes, route, ign;
    compare_noisy_t  *sorted;
    size_t            i, k = 0, r = 0, g = 0;
    char              key[16];
    const char       *ks;

    sorted = malloc((noise->n + 1) * sizeof(*sorted));
    if (sorted == NULL) {
        return -1;
    }
    if (noise->n > 0) {
        memcpy(sorted, noise->items, noise->n * sizeof(*sorted));
    }
    qsort(sorted, noise->n, sizeof(*sorted), compare_noisy_cmp);
    bson_init(doc);
    BSON_APPEND_INT64(doc, "pairs", (int64_t) noise->pairs);
    BSON_APPEND_ARRAY_BEGIN(doc, "noisy", &arr);
    for (i = 0; i < noise->n; i++) {
        if (sorted[i].count < min_count) {
            continue;
        }
        bson_uint32_to_string((uint32_t) k++, &ks, key, sizeof(key));
        BSON_APPEND_DOCUMENT_BEGIN(&arr, ks, &item);
        BSON_APPEND_UTF8(&item, "route", sorted[i].route);
        BSON_APPEND_UTF8(&item, "path", sorted[i].path);
        BSON_APPEND_INT64(&item, "count", (int64_t) sorted[i].count);
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(doc, &arr);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "rules", &rules);
    BSON_APPEND_ARRAY_BEGIN(&rules, "routes", &routes);
    for (i = 0; i < noise->n; ) {
        size_t j = i;

        bson_uint32_to_string((uint32_t) r, &ks, key, sizeof(key));
        g = 0;
        for (j = i; j < noise->n
             && strcmp(sorted[j].route, sorted[i].route) == 0; j++)
        {
            g += sorted[j].count >= min_count;
        }
        if (g > 0) {
            r++;
            BSON_APPEND_DOCUMENT_BEGIN(&routes, ks, &route);
            BSON_APPEND_UTF8(&route, "match", sorted[i].route);
            BSON_APPEND_ARRAY_BEGIN(&route, "ignore", &ign);
            g = 0;
            for (k = i; k < j; k++) {
                if (sorted[k].count >= min_count) {
                    bson_uint32_to_string((uint32_t) g++, &ks, key,
                                          sizeof(key));
                    BSON_APPEND_UTF8(&ign, ks, sorted[k].path);
                }
            }
            bson_append_array_end(&route, &ign);
            bson_append_document_end(&routes, &route);
        }
        i = j;
    }
    bson_append_array_end(&rules, &routes);
    bson_append_document_end(doc, &rules);
    free(sorted);
    return 0;
}


/* bson_as_relaxed_extended_json() memory into malloc() memory. */
static char *
compare_noise_json(const bson_t *doc)
{
    char  *json = bson_as_relaxed_extended_json(doc, NULL), *out;

    if (json == NULL) {
        return NULL;
    }
    out = strdup(json);
    bson_free(json);
    return out;
}


char *
compare_noise_report(const compare_noise_t *noise, uint64_t min_count)
{
    bson_t   doc;
    char    *json;

    if (compare_noise_build(noise, min_count, &doc) != 0) {
        return NULL;
    }
    json = compare_noise_json(&doc);
    bson_destroy(&doc);
    return json;
}


char *
compare_noise_rules(const compare_noise_t *noise, uint64_t min_count)
{
    bson_t        doc, rules;
    bson_iter_t   it;
    char         *json = NULL;
    uint32_t      len;
    const uint8_t *data;

    if (compare_noise_build(noise, min_count, &doc) != 0) {
        return NULL;
    }
    if (bson_iter_init_find(&it, &doc, "rules")
        && BSON_ITER_HOLDS_DOCUMENT(&it))
    {
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&rules, data, len)) {
            json = compare_noise_json(&rules);
        }
    }
    bson_destroy(&doc);
    return json;
}
