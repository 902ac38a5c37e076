/*
 * cutover_dial: the dial state (rules, version, active/rolled back), the
 * sticky bucket, routing, dial changes and the state file format.
 *
 * Plain C without nginx headers: the nginx module keeps a cutover_state_t
 * in shared memory, cutoverctl and the unit tests use the same code.  The
 * state holds no pointers, so it can live in shared memory and be copied.
 */

#ifndef CUTOVER_DIAL_H
#define CUTOVER_DIAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_error.h"
#include "common/cutover_sign.h"

#define CUTOVER_BUCKETS         10000       /* buckets 0..9999 */
#define CUTOVER_MAX_RULES       64
#define CUTOVER_MAX_IDS         2048        /* stores + channels, all rules */
#define CUTOVER_STATE_TEXT_MAX  (96 * 1024) /* encoded state file */

typedef struct {
    char      id[CUTOVER_ID_MAX + 1];
    uint32_t  bp;            /* dial in basis points, 0..10000 */
    uint32_t  counter;       /* stable slot of this rule's request counters */
    uint16_t  first_store;   /* into cutover_state_t.ids, in given order */
    uint16_t  nstores;
    uint16_t  first_channel;
    uint16_t  nchannels;

    /* a ramp (POST ramp) while ramp_step != 0: the dial rises by ramp_step
     * every ramp_every seconds, the next time at ramp_next, up to ramp_to */
    uint32_t  ramp_to;
    uint32_t  ramp_step;
    uint32_t  ramp_every;
    int64_t   ramp_next;
} cutover_rule_t;

typedef struct {
    uint64_t  hash;
    char      name[CUTOVER_ID_MAX + 1];
} cutover_id_t;

typedef struct {
    uint64_t        version;
    int64_t         changed_at;          /* Unix seconds */
    uint32_t        rolled_back;
    uint32_t        nrules;              /* "default" is always the last */
    uint32_t        nids;
    cutover_rule_t  rules[CUTOVER_MAX_RULES];
    cutover_id_t    ids[CUTOVER_MAX_IDS];
} cutover_state_t;

/* What routing decided for one request. */
typedef struct {
    uint32_t  rule;          /* index into rules */
    uint32_t  counter;
    uint32_t  bp;
    uint64_t  version;
    int       to_new;
    char      rule_id[CUTOVER_ID_MAX + 1];
} cutover_route_t;

/* A requested change of one rule (POST dial). */
typedef struct {
    char         rule[CUTOVER_ID_MAX + 1];
    int32_t      bp;                       /* 0..10000 */
    const char  *stores[CUTOVER_MAX_IDS];  /* NULL-free, nstores of them */
    size_t       nstores;
    int          has_stores;
    const char  *channels[CUTOVER_MAX_IDS];
    size_t       nchannels;
    int          has_channels;
} cutover_dial_t;

/* 64-bit stable hash of a key: FNV-1a, then the murmur3 finalizer. */
uint64_t cutover_hash(const void *data, size_t len);

/* Bucket 0..9999 of a key; stable across versions and machines. */
uint32_t cutover_bucket(const void *key, size_t len);

/* "12.5" -> 1250.  Accepts a JSON number (exponent included) that is
 * exactly a multiple of 0.01 within 0..100.  -1 and err on anything else. */
int32_t cutover_percent_parse(const char *s, size_t len, cutover_error_t *err);

/* A record id: 32 lower-case hex digits from a worker's random 128-bit
 * seed and its request counter.  Both halves are bijections of the
 * counter, so one worker never repeats an id; seeds keep workers apart. */
void cutover_record_id(uint64_t seed0, uint64_t seed1, uint64_t counter,
    char out[32]);

/* Formats basis points as a percent with no needless zeros: "12.5". */
void cutover_percent_format(uint32_t bp, char buf[16]);

/* A fresh state: one rule "default" at 0, version 1, active. */
void cutover_state_init(cutover_state_t *st);

/* Routing: the first rule matching store/channel, and the side for the
 * bucket.  Reads defensively (any index is bounds-checked) so that a state
 * changed under the reader gives a wrong answer, never a crash: callers
 * re-check their sequence number.  Returns CUTOVER_OK. */
int cutover_state_route(const cutover_state_t *st, const char *store,
    size_t store_len, const char *channel, size_t channel_len,
    uint32_t bucket, cutover_route_t *out);

/* Writes into dst the state src with the dial applied, version bumped;
 * a ramp of the dialed rule ends.
 * dst and src must not overlap.  On error dst is undefined. */
int cutover_state_dial(cutover_state_t *dst, const cutover_state_t *src,
    const cutover_dial_t *dial, int64_t now, cutover_error_t *err);

/* Adds n ids to the pool of dst (for a rule's stores or channels): *first
 * and *count say where.  CUTOVER_ERROR with err on a bad or surplus id. */
int cutover_ids_add(cutover_state_t *dst, const char *const *names,
    size_t n, uint16_t *first, uint16_t *count, cutover_error_t *err);

/* Every rule to 0, state rolled back, every ramp ended.  Bumps the
 * version. */
void cutover_state_rollback(cutover_state_t *st, int64_t now);

/* Starts a ramp of a rule (into dst, version bumped): its dial rises by
 * step basis points every `every` seconds up to `to`, the first step
 * `every` after now.  to at or below the dial, step 0 or every 0 -> err. */
int cutover_state_ramp_start(cutover_state_t *dst, const cutover_state_t *src,
    const char *rule, int32_t to, int32_t step, int64_t every, int64_t now,
    cutover_error_t *err);

/* The index of a rule whose ramp step is due at now, or -1. */
int cutover_state_ramp_due(const cutover_state_t *st, int64_t now);

/* Takes the due step of rule n (into dst, version bumped); the ramp ends
 * when the dial reaches its target.  The caller checks it is due. */
int cutover_state_ramp_step(cutover_state_t *dst, const cutover_state_t *src,
    int n, int64_t now, cutover_error_t *err);

/* After a start: a step missed while nothing ran is not taken late, the
 * next one comes `every` after now.  Returns how many ramps moved. */
int cutover_state_ramp_resume(cutover_state_t *st, int64_t now);

/* Index of a rule by id, or -1. */
int cutover_state_find(const cutover_state_t *st, const char *rule);

/* Text of the state file (checksummed); returns the length, or -1. */
int cutover_state_encode(const cutover_state_t *st, const char *zone,
    char *buf, size_t cap);

/* Parses a state file; CUTOVER_ERROR with the reason in err. */
int cutover_state_decode(cutover_state_t *st, const char *text, size_t len,
    cutover_error_t *err);

/* JSON array of the rules ({"id","stores","channels","percent"} each);
 * returns the length written, or -1 when cap is too small. */
int cutover_state_rules_json(const cutover_state_t *st, char *buf,
    size_t cap);

/* Compact JSON of one rule ({"rule","percent"[,"stores","channels"]}),
 * for the audit trail.  Returns the length or -1. */
int cutover_state_rule_json(const cutover_state_t *st, int rule, char *buf,
    size_t cap);

#endif /* CUTOVER_DIAL_H */
