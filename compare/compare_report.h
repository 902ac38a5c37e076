/*
 * compare_report: the queries behind cutover-report (reusable by the later
 * HTML report): mismatch rates by route, store, channel, field and hour,
 * samples and the full export, over a time window.
 */

#ifndef COMPARE_REPORT_H
#define COMPARE_REPORT_H

#include <libpq-fe.h>

#include "compare/compare.h"

typedef enum {
    COMPARE_REPORT_SUMMARY = 0,
    COMPARE_REPORT_ROUTES,
    COMPARE_REPORT_STORES,
    COMPARE_REPORT_CHANNELS,
    COMPARE_REPORT_FIELDS,
    COMPARE_REPORT_SAMPLES,
    COMPARE_REPORT_EXPORT,
    COMPARE_REPORT_HOURS,
    COMPARE_REPORT_INDETERMINATE,
    COMPARE_REPORT_ROUTE_TREND,     /* mismatch rate per route over time */
    COMPARE_REPORT_STORE_CHANNELS,  /* mismatches per store and channel */
    COMPARE_REPORT_FIELD_TREND,     /* differences over time, first N fields */
    COMPARE_REPORT_FIELD_SAMPLES    /* sample pairs of the first N fields */
} compare_report_kind_t;

/* field_samples: at most this many pairs per field, each with at most
 * COMPARE_SAMPLE_DIFFS differences, values cut at COMPARE_SAMPLE_VALUE
 * characters (kept as text: they are spliced into the SQL) */
#define COMPARE_SAMPLES_PER_FIELD  "3"
#define COMPARE_SAMPLE_DIFFS       "12"
#define COMPARE_SAMPLE_VALUE       "400"

/* "summary" -> COMPARE_REPORT_SUMMARY; -1 when unknown. */
int compare_report_kind(const char *name);

/* Run one report.  since/until: timestamptz text or NULL; limit bounds
 * samples.  Returns a PGRES_TUPLES_OK result the caller PQclear()s, or
 * NULL with err filled. */
PGresult *compare_report_query(PGconn *conn, compare_report_kind_t kind,
    const char *since, const char *until, long limit, compare_error_t *err);

/* Pairs that differ (different or unparseable) in the window; -1 on error. */
long long compare_report_mismatches(PGconn *conn, const char *since,
    const char *until, compare_error_t *err);

/* "2026-11-21T10:00:00Z", "2026-11-21 10:00", "90s", "15m", "2h", "7d"
 * (ago) into timestamptz text in buf; 0 or -1. */
int compare_report_time(const char *text, char *buf, size_t size);

#endif /* COMPARE_REPORT_H */
