/*
 * compare_walk.h: what the comparator's walk shares between
 * compare_diff.c and its neighbours (not a public interface: see
 * compare.h and compare_diff.h).
 */

#ifndef COMPARE_WALK_H
#define COMPARE_WALK_H

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_json.h"
#include "compare/compare_decimal.h"
#include "compare/compare_diff.h"
#include "compare/compare_json.h"
#include "compare/compare_norm.h"


#define COMPARE_TEXT_MAX  1024

typedef enum {
    COMPARE_CLASS_NULL = 0,
    COMPARE_CLASS_BOOL,
    COMPARE_CLASS_NUMBER,
    COMPARE_CLASS_STRING,
    COMPARE_CLASS_OBJECT,
    COMPARE_CLASS_ARRAY,
    COMPARE_CLASS_OTHER
} compare_class_t;

typedef struct {
    char    *buf;
    size_t   len;
    size_t   cap;
    int      oom;
} compare_text_t;

typedef struct {
    const compare_rules_t  *rules;
    const compare_route_t  *route;
    compare_result_t       *res;
    compare_seg_t           segs[COMPARE_MAX_DEPTH + 8];
    int                     depth;
} compare_walk_t;

typedef struct {
    const char   *key;
    uint32_t      klen;
    uint32_t      pos;
    uint32_t      occ;
    int           matched;
    int           kown;       /* key text is in kbuf (numeric set keys) */
    char          kbuf[24];
    bson_iter_t   it;
} compare_member_t;

/* An array element: bson_iter_t is a typedef aligned to 128 bytes with a
 * smaller size, so arrays of it need a wrapper to keep every one aligned */
typedef struct {
    bson_iter_t   it;
} compare_elem_t;

#define compare_mkey(m)  ((m)->kown ? (m)->kbuf : (m)->key)


void compare_result_truncate(compare_result_t *result, size_t ndiffs,
    size_t nkept);
int compare_masked(const compare_walk_t *w);
void compare_push(compare_walk_t *w, compare_seg_type_t type, const char *name,
    size_t len, const char *value, size_t vlen, uint32_t index);
char *compare_value_text(compare_walk_t *w, const bson_iter_t *it);
void compare_emit(compare_walk_t *w, compare_diff_kind_t kind,
    const bson_iter_t *ia, const bson_iter_t *ib);
char *compare_mask_text(compare_walk_t *w, const bson_iter_t *it,
    unsigned flags);
void compare_keyed(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib, const char *setkey);
int compare_raw_cmp(const void *x, const void *y);
void compare_array(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib);
void compare_node(compare_walk_t *w, const bson_iter_t *ia,
    const bson_iter_t *ib);

#endif /* COMPARE_WALK_H */
