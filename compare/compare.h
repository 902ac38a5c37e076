/*
 * compare: the comparator library's public interface (pairs in, verdicts and
 * field-level differences out, results stored durably in PostgreSQL).
 *
 * The shadow daemon uses only what is declared here.  Plain C, no nginx
 * headers; the library never logs and never exits.
 */

#ifndef COMPARE_H
#define COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_error.h"

#define COMPARE_OK     0
#define COMPARE_ERROR  -1

typedef cutover_error_t  compare_error_t;

/* One side's answer, as recorded or as received.  Borrowed pointers. */
typedef struct {
    int              status;        /* HTTP status; 0 = no answer */
    const char      *content_type;  /* may be NULL */
    const uint8_t   *body;
    size_t           body_len;
    int              body_truncated; /* body is a prefix of the real one */
    const char      *body_sha256;   /* hex of the whole body, may be NULL */
    const char     **headers;       /* "name: value" strings, may be NULL */
    size_t           nheaders;
    double           latency_ms;    /* < 0 when unknown */
    const char      *error;         /* transport error text, NULL if none */
} compare_response_t;

/* One exchange, served by one side and replayed on the other. */
typedef struct {
    const char          *record_id;   /* 32 hex digits */
    int64_t              time_us;     /* when the primary served it, Unix us */
    const char          *zone;
    const char          *method;
    const char          *uri;         /* path and query */
    const char          *store;       /* may be "" */
    const char          *channel;     /* may be "" */
    const char          *side_served; /* "new" or "legacy" */
    compare_response_t   primary;     /* the side that served the client */
    compare_response_t   shadow;      /* the other side, replayed */
} compare_pair_t;

typedef enum {
    COMPARE_VERDICT_EQUAL = 0,
    COMPARE_VERDICT_DIFFERENT,
    COMPARE_VERDICT_UNPARSEABLE,      /* a body could not be parsed */
    COMPARE_VERDICT_SHADOW_FAILED,    /* the replay got no answer */
    COMPARE_VERDICT_PRIMARY_REFUSED,  /* a write the primary refused (4xx):
                                         not executed on the other side */
    COMPARE_VERDICT_INDETERMINATE     /* a write whose outcome on the
                                         primary is unknown (5xx, no
                                         answer): not replayed, left to
                                         reconciliation */
} compare_verdict_t;

typedef struct compare_rules_s   compare_rules_t;
typedef struct compare_result_s  compare_result_t;
typedef struct compare_store_s   compare_store_t;

/* Rules file (SPEC.md "Comparison rules file"); NULL path = no rules.
 * Returns NULL and fills err on a bad file, naming the rule and problem.
 * Caller frees with compare_rules_free(). */
compare_rules_t *compare_rules_load(const char *path, compare_error_t *err);
void compare_rules_free(compare_rules_t *rules);

/* Compare one pair.  Never fails on bad bodies (that is a verdict); returns
 * NULL only when out of memory.  Caller frees with compare_result_free(). */
compare_result_t *compare_pair_run(const compare_rules_t *rules,
    const compare_pair_t *pair, compare_error_t *err);
compare_verdict_t compare_result_verdict(const compare_result_t *result);

/* The result of a pair that was not replayed (verdict
 * COMPARE_VERDICT_PRIMARY_REFUSED or COMPARE_VERDICT_INDETERMINATE): its
 * route and the detail text, no differences.  NULL only when out of
 * memory.  Caller frees with compare_result_free(). */
compare_result_t *compare_pair_unreplayed(const compare_rules_t *rules,
    const compare_pair_t *pair, compare_verdict_t verdict,
    const char *detail, compare_error_t *err);
size_t compare_result_ndiffs(const compare_result_t *result);
void compare_result_free(compare_result_t *result);

/* Result store: PostgreSQL with a bounded on-disk outbox for the time
 * PostgreSQL is away.  conninfo may be NULL (outbox only). */
compare_store_t *compare_store_open(const char *conninfo,
    const char *outbox_dir, compare_error_t *err);

/* Queue one pair and its result (copied).  Not yet durable. */
int compare_store_put(compare_store_t *store, const compare_pair_t *pair,
    const compare_result_t *result, compare_error_t *err);

/* Make every queued result durable: inserted in PostgreSQL (idempotent on
 * record id) or written and fsynced to the outbox.  COMPARE_OK means the
 * caller may forget the queued pairs (shadowd checkpoints after this).
 * Fails, keeping the queue, when PostgreSQL is away and there is no outbox
 * or the outbox holds its limit (1 000 000 results); waiting outbox files
 * are written first whenever PostgreSQL is reachable. */
int compare_store_flush(compare_store_t *store, compare_error_t *err);

/* Results waiting in the outbox (a metric). */
uint64_t compare_store_pending(const compare_store_t *store);

void compare_store_free(compare_store_t *store);

/* --- additions: reading a result ------------------------------------- */

typedef enum {
    COMPARE_DIFF_MISSING = 0,   /* only on the primary side (A) */
    COMPARE_DIFF_EXTRA,         /* only on the shadow side (B) */
    COMPARE_DIFF_TYPE,
    COMPARE_DIFF_VALUE,
    COMPARE_DIFF_STATUS,
    COMPARE_DIFF_HEADER,
    COMPARE_DIFF_ORDER
} compare_diff_kind_t;

/* One difference.  a and b are JSON texts of the two values (NULL when
 * absent); masked values appear only as "hmac:<hex>". */
typedef struct {
    const char           *path;
    compare_diff_kind_t   kind;
    const char           *a;
    const char           *b;
} compare_diff_t;

#define COMPARE_MAX_DIFFS_KEPT  256

/* The i-th difference kept (the first COMPARE_MAX_DIFFS_KEPT are kept;
 * compare_result_ndiffs() counts all), or NULL.  Owned by the result. */
const compare_diff_t *compare_result_diff(const compare_result_t *result,
    size_t i);

/* Why the verdict is what it is ("unparseable on the legacy side: ..."),
 * "" when equal.  Owned by the result. */
const char *compare_result_detail(const compare_result_t *result);

/* The route template that matched ("POST /api/v1/orders/{id}"), or the
 * method and path with id-like segments as {id} when no rule matched. */
const char *compare_result_route(const compare_result_t *result);

const char *compare_verdict_name(compare_verdict_t verdict);
const char *compare_diff_kind_name(compare_diff_kind_t kind);

/* Noise learning: several answers of ONE system to the same requests are
 * compared in pairs; paths that differ are noise.  Feed results of such
 * pairs with compare_noise_add(). */
typedef struct compare_noise_s  compare_noise_t;

compare_noise_t *compare_noise_new(void);
/* route NULL: the result's own route. */
void compare_noise_add(compare_noise_t *noise, const char *route,
    const compare_result_t *result);
/* Paths seen noisy at least min_count times, as JSON text:
 * {"pairs": N, "noisy": [{"route", "path", "count"}],
 *  "rules": {"routes": [{"match", "ignore": [...]}]}}; caller free()s. */
char *compare_noise_report(const compare_noise_t *noise, uint64_t min_count);
/* Only the "rules" part: a rules file of ignore rules; caller free()s. */
char *compare_noise_rules(const compare_noise_t *noise, uint64_t min_count);
void compare_noise_free(compare_noise_t *noise);

/* Results written to PostgreSQL so far by this store (a metric). */
uint64_t compare_store_written(const compare_store_t *store);

/* Results PostgreSQL refused while up (bad data, not an outage); they are
 * kept in <outbox>/<file>.rejected for an operator (a metric, an alarm). */
uint64_t compare_store_rejected(const compare_store_t *store);

#endif /* COMPARE_H */
