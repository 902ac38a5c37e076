/*
 * shadow_guard: cutover-shadowd's mismatch guard.  Per rule, the share of
 * compared pairs with a difference (after the comparison rules and the
 * learned noise) over a sliding window; past the threshold it asks the
 * gateway for a rollback (the signed POST rollback, with a key of the role
 * guard), and tries again until the gateway answers.
 */

#ifndef SHADOW_GUARD_H
#define SHADOW_GUARD_H

#include <stdint.h>

#include <bson/bson.h>

#include "common/cutover_guard.h"
#include "common/cutover_record.h"
#include "shadow/shadow_reader.h"

typedef struct shadow_guard_conf_s {
    cutover_guard_conf_t  limits;         /* mismatch_bp, window,
                                             min_requests (min_pairs) */
    char                 *admin_url;      /* .../cutover/ */
    char                 *key_id;
    unsigned char         secret[64];
    size_t                secret_len;
} shadow_guard_conf_t;

typedef struct shadow_guard_s  shadow_guard_t;

/* What the metrics show. */
typedef struct {
    uint64_t  trips;                      /* mismatch crossings */
    uint64_t  rollbacks;                  /* rollbacks the gateway took */
    uint64_t  rollback_failures;          /* attempts that did not get 200 */
    int64_t   pending;                    /* a rollback still to be made */
} shadow_guard_stats_t;

/* The "guard" object of the configuration; its key file is read here. */
int shadow_guard_config(bson_iter_t *it, shadow_guard_conf_t **out,
    shadow_error_t *err);
void shadow_guard_config_free(shadow_guard_conf_t *conf);

typedef void (*shadow_guard_log_pt)(int level, const char *msg);

shadow_guard_t *shadow_guard_new(const shadow_guard_conf_t *conf,
    shadow_guard_log_pt log, shadow_error_t *err);
void shadow_guard_free(shadow_guard_t *g);

/* One compared pair of a rule (NULL-safe on g). */
void shadow_guard_pair(shadow_guard_t *g, const cutover_str_t *rule,
    int differing);

/* Once a second at most: the windows, the check, a pending rollback.
 * The rollback call is bounded by a 2 s timeout.  NULL-safe on g. */
void shadow_guard_poll(shadow_guard_t *g, shadow_guard_stats_t *stats);

#endif /* SHADOW_GUARD_H */
