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

#define COMPARE_OK     0
#define COMPARE_ERROR  -1

typedef struct {
    int   code;
    char  message[256];
} compare_error_t;

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
    COMPARE_VERDICT_SHADOW_FAILED     /* the replay got no answer */
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
 * caller may forget the queued pairs (shadowd checkpoints after this). */
int compare_store_flush(compare_store_t *store, compare_error_t *err);

/* Results waiting in the outbox (a metric). */
uint64_t compare_store_pending(const compare_store_t *store);

void compare_store_free(compare_store_t *store);

#endif /* COMPARE_H */
