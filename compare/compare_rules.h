/*
 * compare_rules: the comparison rules file (SPEC.md), routes matched by
 * method and path template, and the path syntax ($.lines[2].qty,
 * $.lines[sku=SKU00042].qty, [*] and .* wildcards).
 */

#ifndef COMPARE_RULES_H
#define COMPARE_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "compare/compare.h"
#include "compare/compare_decimal.h"

typedef enum {
    COMPARE_SEG_FIELD = 0,    /* .name */
    COMPARE_SEG_INDEX,        /* [2] */
    COMPARE_SEG_KEY,          /* [sku=SKU00042] (set element) */
    COMPARE_SEG_ANY_INDEX,    /* [*]: any index or key (patterns only) */
    COMPARE_SEG_ANY_FIELD     /* .* (patterns only) */
} compare_seg_type_t;

typedef struct {
    compare_seg_type_t  type;
    const char         *name;     /* field name, or key field for KEY */
    size_t              len;
    const char         *value;    /* key value for KEY */
    size_t              vlen;
    uint32_t            index;
} compare_seg_t;

typedef struct {
    char            *text;
    compare_seg_t   *segs;
    int              nsegs;
} compare_path_t;

#define COMPARE_NORM_CASE   0x1
#define COMPARE_NORM_SPACE  0x2
#define COMPARE_NORM_TIME   0x4

typedef struct {
    compare_path_t      path;
    int                 has_abs;
    int                 has_rel;
    compare_decimal_t   abs;
    compare_decimal_t   rel;
} compare_tolerance_t;

typedef struct {
    compare_path_t  path;
    char           *key;
} compare_set_t;

typedef struct {
    compare_path_t  path;
    unsigned        flags;
} compare_norm_t;

typedef struct {
    char                 *match;      /* "POST /api/v1/orders/{id}" */
    char                 *method;
    char                **tsegs;      /* template path segments */
    int                   ntsegs;
    int                   prefix;     /* template ends in "*" */
    compare_path_t       *ignore;
    int                   nignore;
    compare_path_t       *mask;
    int                   nmask;
    compare_tolerance_t  *tolerance;
    int                   ntolerance;
    compare_set_t        *sets;
    int                   nsets;
    compare_norm_t       *normalize;
    int                   nnormalize;
    int                  *status_class;  /* status -> class id, pairs */
    int                   nstatus;
    char                **headers;
    int                   nheaders;
} compare_route_t;

struct compare_rules_s {
    compare_route_t  *routes;
    int               nroutes;
    unsigned char     mask_key[64];
    size_t            mask_key_len;
};

/* Parse a rule path; returns 0 or -1 with why in err. */
int compare_path_parse(const char *text, compare_path_t *path,
    compare_error_t *err);
void compare_path_free(compare_path_t *path);

/* Does a pattern match the current path (segs, n)? */
int compare_path_match(const compare_path_t *pattern,
    const compare_seg_t *segs, int n);

/* Append the text form of a path to buf (at most size, NUL-terminated);
 * returns the length it needed. */
size_t compare_path_format(const compare_seg_t *segs, int n, char *buf,
    size_t size);

/* Rules from JSON text (the file's content). */
compare_rules_t *compare_rules_parse(const char *text, size_t len,
    compare_error_t *err);

/* The first route matching method and uri (query ignored), or NULL. */
const compare_route_t *compare_rules_route(const compare_rules_t *rules,
    const char *method, const char *uri);

/* Do two statuses count as equal under the route? */
int compare_route_status_equal(const compare_route_t *route, int a, int b);

#endif /* COMPARE_RULES_H */
