/*
 * reconcile: cutover-reconcile, the ledger states of the two systems
 * compared by keyed hash bisection computed inside each database.
 *
 * A ledger is a set of canonical rows (key columns, value columns, all as
 * text) that a map file's SQL yields on each side.  Every key is turned into
 * one sort key (the key columns joined by \x01, compared in the "C"
 * collation), so a composite key orders as its tuple does.  A key range is
 * [lo, hi) over sort keys; each side gives a row count and an
 * order-independent 64-bit hash (the sum of the first 8 bytes of the MD5 of
 * each row's text) per range, ranges are split at key quantiles taken from
 * the side with more rows, and rows are fetched only for small ranges.
 */

#ifndef RECONCILE_H
#define RECONCILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cutover_error.h"

#define RECONCILE_OK          0
#define RECONCILE_ERROR      -1

#define RECONCILE_NEW         0
#define RECONCILE_LEGACY      1

#define RECONCILE_MAX_COLS    8
#define RECONCILE_MAX_LEDGERS 8

/* value types: how a value is written in JSON */
#define RECONCILE_TEXT        0
#define RECONCILE_INTEGER     1
#define RECONCILE_DECIMAL     2

/* difference kinds */
#define RECONCILE_VALUE           0
#define RECONCILE_MISSING_NEW     1
#define RECONCILE_MISSING_LEGACY  2

typedef struct {
    char   *name;
    int     nkeys;
    char   *keys[RECONCILE_MAX_COLS];
    int     nvals;
    char   *vals[RECONCILE_MAX_COLS];
    int     types[RECONCILE_MAX_COLS];
    char   *sql[2];             /* per side, a SELECT of the canonical rows */
    int     line[2];            /* where that SQL starts in the map file */
    int     has_store;          /* a store_id column: --store applies */
} reconcile_ledger_map_t;

typedef struct {
    char                    *path;
    char                    *text;
    int                      n;
    reconcile_ledger_map_t   ledgers[RECONCILE_MAX_LEDGERS];
} reconcile_map_t;

/* A key range [lo, hi): lo "" is the start, hi NULL the end. */
typedef struct {
    char      *lo;
    char      *hi;
    int64_t    n[2];
    uint64_t   h[2];
} reconcile_range_t;

typedef struct {
    reconcile_range_t  *r;
    size_t              n;
    size_t              cap;
} reconcile_ranges_t;

/* The thresholds of width_bucket() for consecutive sorted ranges: bucket k
 * (1-based) is range map[k - 1], or a gap between ranges (-1). */
typedef struct {
    char   *thresholds;         /* a text[] literal */
    char   *wanted;             /* an int[] literal of the ranges' buckets */
    int    *map;
    size_t  nbuckets;
} reconcile_buckets_t;

typedef struct {
    int     ledger;
    int     kind;
    char   *sk;
    char   *key;                /* JSON objects */
    char   *val[2];             /* JSON object or NULL */
} reconcile_diff_t;

typedef struct {
    int64_t   rows[2];
    int64_t   differences;
    int64_t   listed;
    int64_t   rows_fetched;
    int64_t   rows_hashed;
    int64_t   queries;
    int64_t   bytes;
    int       levels;
    int       nearly_all;
    double    seconds;
    int       done;
} reconcile_ledger_result_t;

typedef struct {
    const char        *conninfo[2];
    const char        *stores;      /* comma separated, or NULL */
    const char        *ledgers;     /* comma separated, or NULL: all */
    uint64_t           settle_ms;
    int                json;
    int                stats;
    int                progress;
    int64_t            fetch_rows;  /* a range this small is fetched */
    int                fanout;      /* sub-ranges per split */
    int64_t            list_cap;    /* differences listed per ledger */
} reconcile_config_t;

typedef struct {
    reconcile_config_t         cfg;
    reconcile_map_t           *map;
    int                        nsel;
    int                        sel[RECONCILE_MAX_LEDGERS];
    reconcile_ledger_result_t  res[RECONCILE_MAX_LEDGERS];
    reconcile_diff_t          *diffs;
    size_t                     ndiffs;
    size_t                     diffs_cap;
    char                      *stores_lit;  /* text[] literal or NULL */
    void                      *conn[2];
    char                       started_at[40];
    char                       detail[2048];  /* an SQL error's query */
    double                     seconds;
} reconcile_run_t;

extern const char *reconcile_side_name[2];
extern const char *reconcile_kind_name[3];

/* reconcile_map.c */
reconcile_map_t *reconcile_map_load(const char *path, cutover_error_t *err);
reconcile_map_t *reconcile_map_parse(const char *path, const char *text,
    size_t len, cutover_error_t *err);
void reconcile_map_free(reconcile_map_t *map);
int reconcile_map_find(const reconcile_map_t *map, const char *name);

/* reconcile_util.c: the pure pieces */
int reconcile_hash_parse(const char *text, uint64_t *out);
uint64_t reconcile_hash_combine(uint64_t a, uint64_t b);
int reconcile_ranges_push(reconcile_ranges_t *rs, const char *lo,
    const char *hi);
void reconcile_ranges_clear(reconcile_ranges_t *rs);
int reconcile_split(const reconcile_range_t *parent, const char **mins,
    size_t ntiles, reconcile_ranges_t *out);
int reconcile_buckets(const reconcile_range_t *r, size_t n,
    reconcile_buckets_t *b);
void reconcile_buckets_free(reconcile_buckets_t *b);
char *reconcile_text_array(const char *const *items, size_t n);
char *reconcile_stores_literal(const char *list, cutover_error_t *err);
int reconcile_key_ok(const char *s);
char *reconcile_row_json(const reconcile_ledger_map_t *lm, int vals,
    const char *const *cols);
int reconcile_parse_duration(const char *s, uint64_t *ms);

/* reconcile_sql.c */
char *reconcile_sql_base(const reconcile_ledger_map_t *lm, int side);
char *reconcile_sql(const reconcile_ledger_map_t *lm, int side,
    const char *what);

/* reconcile_run.c */
int reconcile_run(reconcile_run_t *run, cutover_error_t *err);
void reconcile_run_free(reconcile_run_t *run);

/* reconcile_out.c */
void reconcile_print_json(const reconcile_run_t *run, FILE *out);
void reconcile_print_text(const reconcile_run_t *run, FILE *out);
int64_t reconcile_total_differences(const reconcile_run_t *run);

/* reconcile_store.c */
int reconcile_store_write(const char *conninfo, const reconcile_run_t *run,
    const char *failure, cutover_error_t *err);

#endif /* RECONCILE_H */
