/*
 * compare_report: reporting queries over the result store.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compare/compare_norm.h"
#include "compare/compare_report.h"

#define COMPARE_WINDOW \
    " ($1::timestamptz IS NULL OR p.at >= $1::timestamptz)" \
    " AND ($2::timestamptz IS NULL OR p.at < $2::timestamptz)"

#define COMPARE_MISMATCH  "p.verdict IN ('different', 'unparseable')"

/* pairs whose two answers were compared: not the writes left unreplayed
 * (refused by the primary, or of unknown outcome there), not the replays
 * that got no answer */
#define COMPARE_COMPARED \
    "p.verdict NOT IN ('shadow_failed', 'primary_refused', 'indeterminate')"

#define COMPARE_GROUP(col) \
    "SELECT " col " AS " col ", count(*) AS pairs," \
    " count(*) FILTER (WHERE " COMPARE_MISMATCH ") AS mismatches," \
    " round(100.0 * count(*) FILTER (WHERE " COMPARE_MISMATCH ")" \
    "  / greatest(count(*) FILTER (WHERE " COMPARE_COMPARED "), 1)," \
    "  2) AS mismatch_pct," \
    " count(*) FILTER (WHERE p.verdict = 'shadow_failed') AS shadow_failed," \
    " array_to_string((array_agg(p.record_id ORDER BY p.at DESC)" \
    "  FILTER (WHERE " COMPARE_MISMATCH "))[1:3], ' ') AS sample_ids" \
    " FROM compare_pairs p WHERE" COMPARE_WINDOW \
    " GROUP BY " col " ORDER BY mismatches DESC, " col " LIMIT $3::bigint"

/* the first $3 fields, ranked as the fields report ranks them */
#define COMPARE_TOP_FIELDS \
    "f AS (SELECT p.route, d.path, d.kind, count(*) AS differences" \
    " FROM compare_diffs d JOIN compare_pairs p USING (record_id)" \
    " WHERE" COMPARE_WINDOW \
    " GROUP BY p.route, d.path, d.kind" \
    " ORDER BY differences DESC, p.route, d.path, d.kind LIMIT $3::bigint)"

/* the time step of a trend: the shortest of these that cuts the span of
 * the window's results into at most 48 steps */
#define COMPARE_TREND_STEP \
    "w AS (SELECT coalesce((SELECT s FROM unnest('{1 second, 2 seconds," \
    " 5 seconds, 10 seconds, 30 seconds, 1 minute, 2 minutes, 5 minutes," \
    " 10 minutes, 30 minutes, 1 hour, 2 hours, 6 hours, 12 hours, 1 day," \
    " 7 days, 30 days}'::interval[]) AS s WHERE s * 48 >= (SELECT" \
    " max(p.at) - min(p.at) FROM compare_pairs p WHERE" COMPARE_WINDOW ")" \
    " ORDER BY s LIMIT 1), interval '30 days') AS step)"

#define COMPARE_TREND_AT \
    "date_bin(w.step, p.at, timestamptz '2000-01-01 00:00:00+00')"

static const char *compare_report_names[] = {
    "summary", "routes", "stores", "channels", "fields", "samples", "export",
    "hours", "indeterminate", "route_trend", "store_channels", "field_trend",
    "field_samples"
};

static const char *compare_report_sql[] = {
    /* summary */
    "SELECT count(*) AS pairs,"
    " count(*) FILTER (WHERE p.verdict = 'equal') AS equal,"
    " count(*) FILTER (WHERE p.verdict = 'different') AS different,"
    " count(*) FILTER (WHERE p.verdict = 'unparseable') AS unparseable,"
    " count(*) FILTER (WHERE p.verdict = 'shadow_failed') AS shadow_failed,"
    " count(*) FILTER (WHERE p.verdict = 'primary_refused')"
    "  AS primary_refused,"
    " count(*) FILTER (WHERE p.verdict = 'indeterminate') AS indeterminate,"
    " round(100.0 * count(*) FILTER (WHERE " COMPARE_MISMATCH ")"
    "  / greatest(count(*) FILTER (WHERE " COMPARE_COMPARED "), 1),"
    "  2) AS mismatch_pct,"
    " (SELECT count(*) FROM compare_diffs d JOIN compare_pairs p"
    "  USING (record_id) WHERE" COMPARE_WINDOW ") AS differences,"
    " min(p.at) AS first_at, max(p.at) AS last_at"
    " FROM compare_pairs p WHERE" COMPARE_WINDOW
    " AND $3::bigint IS NOT NULL",
    COMPARE_GROUP("route"),
    COMPARE_GROUP("store"),
    COMPARE_GROUP("channel"),
    /* fields */
    "SELECT p.route AS route, d.path AS path, d.kind AS kind,"
    " count(*) AS differences, count(DISTINCT d.record_id) AS pairs,"
    " array_to_string((array_agg(DISTINCT d.record_id))[1:3], ' ')"
    "  AS sample_ids"
    " FROM compare_diffs d JOIN compare_pairs p USING (record_id)"
    " WHERE" COMPARE_WINDOW
    " GROUP BY p.route, d.path, d.kind"
    " ORDER BY differences DESC, p.route, d.path, d.kind LIMIT $3::bigint",
    /* samples */
    "SELECT p.record_id, p.at, p.route, p.store, p.channel, p.side_served,"
    " p.primary_status, p.shadow_status, p.verdict, p.ndiffs, p.detail,"
    " (SELECT string_agg(d.path || ' ' || d.kind, '; ' ORDER BY d.seq)"
    "  FROM (SELECT * FROM compare_diffs d WHERE d.record_id = p.record_id"
    "  ORDER BY d.seq LIMIT 5) d) AS first_differences"
    " FROM compare_pairs p WHERE" COMPARE_WINDOW
    " AND p.verdict NOT IN ('equal', 'primary_refused', 'indeterminate')"
    " ORDER BY p.at DESC, p.record_id"
    " LIMIT $3::bigint",
    /* export */
    "SELECT p.record_id, p.at, p.zone, p.method, p.route, p.uri, p.store,"
    " p.channel, p.side_served, p.primary_status, p.shadow_status,"
    " p.primary_ms, p.shadow_ms, p.verdict, p.ndiffs, p.detail"
    " FROM compare_pairs p WHERE" COMPARE_WINDOW
    " AND $3::bigint IS NOT NULL ORDER BY p.at, p.record_id",
    /* hours: the mismatch rate over time */
    "SELECT date_trunc('hour', p.at) AS hour, count(*) AS pairs,"
    " count(*) FILTER (WHERE " COMPARE_MISMATCH ") AS mismatches,"
    " round(100.0 * count(*) FILTER (WHERE " COMPARE_MISMATCH ")"
    "  / greatest(count(*) FILTER (WHERE " COMPARE_COMPARED "), 1),"
    "  2) AS mismatch_pct,"
    " count(*) FILTER (WHERE p.verdict = 'shadow_failed') AS shadow_failed"
    " FROM compare_pairs p WHERE" COMPARE_WINDOW
    " GROUP BY 1 ORDER BY 1 DESC LIMIT $3::bigint",
    /* indeterminate: writes whose outcome on the primary is unknown, for
     * reconciliation (the request id is the record id) */
    "SELECT p.record_id, p.at, p.method, p.uri, p.route, p.store, p.channel,"
    " p.side_served, p.primary_status, p.detail"
    " FROM compare_pairs p WHERE" COMPARE_WINDOW
    " AND p.verdict = 'indeterminate' ORDER BY p.at, p.record_id"
    " LIMIT $3::bigint",
    /* route_trend: the mismatch rate over time per route */
    "WITH " COMPARE_TREND_STEP
    " SELECT p.route AS route, " COMPARE_TREND_AT " AS at,"
    " extract(epoch FROM w.step)::bigint AS step_s, count(*) AS pairs,"
    " count(*) FILTER (WHERE " COMPARE_COMPARED ") AS compared,"
    " count(*) FILTER (WHERE " COMPARE_MISMATCH ") AS mismatches,"
    " round(100.0 * count(*) FILTER (WHERE " COMPARE_MISMATCH ")"
    "  / greatest(count(*) FILTER (WHERE " COMPARE_COMPARED "), 1),"
    "  2) AS mismatch_pct"
    " FROM compare_pairs p, w WHERE" COMPARE_WINDOW
    " GROUP BY 1, 2, 3 ORDER BY 1, 2 LIMIT $3::bigint",
    /* store_channels: stores by channel */
    "SELECT p.store AS store, p.channel AS channel, count(*) AS pairs,"
    " count(*) FILTER (WHERE " COMPARE_MISMATCH ") AS mismatches,"
    " round(100.0 * count(*) FILTER (WHERE " COMPARE_MISMATCH ")"
    "  / greatest(count(*) FILTER (WHERE " COMPARE_COMPARED "), 1),"
    "  2) AS mismatch_pct"
    " FROM compare_pairs p WHERE" COMPARE_WINDOW
    " GROUP BY 1, 2 ORDER BY mismatches DESC, 1, 2 LIMIT $3::bigint",
    /* field_trend: differences over time of the first N fields */
    "WITH " COMPARE_TOP_FIELDS ", " COMPARE_TREND_STEP
    " SELECT f.route AS route, f.path AS path, f.kind AS kind,"
    " " COMPARE_TREND_AT " AS at,"
    " extract(epoch FROM w.step)::bigint AS step_s, count(*) AS differences"
    " FROM w, f JOIN compare_diffs d ON d.path = f.path AND d.kind = f.kind"
    " JOIN compare_pairs p ON p.record_id = d.record_id"
    " AND p.route = f.route WHERE" COMPARE_WINDOW
    " GROUP BY f.differences, 1, 2, 3, 4, 5"
    " ORDER BY f.differences DESC, 1, 2, 3, 4",
    /* field_samples: the latest pairs of each of the first N fields, each
     * with its first differences, the field's own first */
    "WITH " COMPARE_TOP_FIELDS ","
    " s0 AS (SELECT DISTINCT f.route, f.path, f.kind, f.differences,"
    "  d.record_id FROM f JOIN compare_diffs d"
    "  ON d.path = f.path AND d.kind = f.kind),"
    " s AS (SELECT s0.*, p.at, p.store, p.channel, p.side_served,"
    "  p.primary_status, p.shadow_status, p.verdict, p.ndiffs,"
    "  row_number() OVER (PARTITION BY s0.route, s0.path, s0.kind"
    "   ORDER BY p.at DESC, p.record_id) AS sample"
    "  FROM s0 JOIN compare_pairs p ON p.record_id = s0.record_id"
    "  AND p.route = s0.route WHERE" COMPARE_WINDOW ")"
    " SELECT s.route, s.path, s.kind, s.sample, s.record_id, s.at, s.store,"
    " s.channel, s.side_served, s.primary_status, s.shadow_status,"
    " s.verdict, s.ndiffs, x.hit, x.seq, x.path AS diff_path,"
    " x.kind AS diff_kind,"
    " left(x.a, " COMPARE_SAMPLE_VALUE ") AS a,"
    " left(x.b, " COMPARE_SAMPLE_VALUE ") AS b,"
    " (coalesce(length(x.a), 0) > " COMPARE_SAMPLE_VALUE
    "  OR coalesce(length(x.b), 0) > " COMPARE_SAMPLE_VALUE ") AS cut"
    " FROM s CROSS JOIN LATERAL (SELECT d.seq, d.path, d.kind, d.a, d.b,"
    "  (d.path = s.path AND d.kind = s.kind) AS hit"
    "  FROM compare_diffs d WHERE d.record_id = s.record_id"
    "  ORDER BY 6 DESC, d.seq LIMIT " COMPARE_SAMPLE_DIFFS ") x"
    " WHERE s.sample <= " COMPARE_SAMPLES_PER_FIELD
    " ORDER BY s.differences DESC, s.route, s.path, s.kind, s.sample,"
    " x.hit DESC, x.seq"
};


static void compare_report_fail(compare_error_t *err, PGconn *conn,
    PGresult *res);


int
compare_report_kind(const char *name)
{
    int  i;

    for (i = 0; i < (int) (sizeof(compare_report_names) / sizeof(char *));
         i++)
    {
        if (strcmp(name, compare_report_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}


static void
compare_report_fail(compare_error_t *err, PGconn *conn, PGresult *res)
{
    const char  *m = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    size_t       n;

    err->code = COMPARE_ERROR;
    snprintf(err->message, sizeof(err->message), "query: %.200s", m);
    n = strlen(err->message);
    if (n > 0 && err->message[n - 1] == '\n') {
        err->message[n - 1] = '\0';
    }
}


PGresult *
compare_report_query(PGconn *conn, compare_report_kind_t kind,
    const char *since, const char *until, long limit, compare_error_t *err)
{
    const char  *vals[3];
    char         lim[32];
    PGresult    *res;

    snprintf(lim, sizeof(lim), "%ld", limit > 0 ? limit : 1000000000L);
    vals[0] = since;
    vals[1] = until;
    vals[2] = lim;
    res = PQexecParams(conn, compare_report_sql[kind], 3, NULL, vals, NULL,
                       NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        compare_report_fail(err, conn, res);
        PQclear(res);
        return NULL;
    }
    return res;
}


long long
compare_report_mismatches(PGconn *conn, const char *since, const char *until,
    compare_error_t *err)
{
    const char  *vals[2] = { since, until };
    PGresult    *res;
    long long    n;

    res = PQexecParams(conn, "SELECT count(*) FROM compare_pairs p WHERE"
                       COMPARE_WINDOW " AND " COMPARE_MISMATCH,
                       2, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        compare_report_fail(err, conn, res);
        PQclear(res);
        return -1;
    }
    n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}


int
compare_report_time(const char *text, char *buf, size_t size)
{
    int64_t   us;
    char     *end;
    long      v;
    long      unit = 0;

    if (compare_time_parse(text, strlen(text), &us) != 0) {
        v = strtol(text, &end, 10);
        if (end == text || v < 0 || end[0] == '\0' || end[1] != '\0') {
            return -1;
        }
        switch (end[0]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default:
            return -1;
        }
        us = ((int64_t) time(NULL) - (int64_t) v * unit) * 1000000;
    }
    compare_time_format(us, buf, size);
    return 0;
}
