/*
 * shadow_metrics: Prometheus text for cutover-shadowd, served by
 * libmicrohttpd from a snapshot the replay loop publishes.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "common/cutover_httpd.h"
#include "shadow/shadow_metrics.h"
#include "shadow/shadow_reader.h"


struct shadow_metrics_s {
    cutover_httpd_t    *mhd;
    pthread_mutex_t     lock;
    shadow_stats_t      stats;
};


const char *shadow_retry_reason_names[SHADOW_RETRY_REASONS] = {
    "connect", "timeout", "transport", "502", "503", "504", "429",
    "in_progress", "5xx"
};


static size_t shadow_metrics_render_outcomes(const shadow_stats_t *s,
    char *buf, size_t cap);
static void shadow_metrics_add(char *buf, size_t cap, size_t *len,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static size_t shadow_metrics_render_zones(const shadow_stats_t *s,
    char *buf, size_t cap);
static enum MHD_Result shadow_metrics_answer(void *cls,
    struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_len,
    void **state);


/*
 * Kept whole (past 80 lines): one buffer written metric after metric, in
 * the order scrapers see them.
 */
size_t
shadow_metrics_render(const shadow_stats_t *s, char *buf, size_t cap)
{
    int  n;

    n = snprintf(buf, cap,
        "# HELP cutover_shadow_records_read_total Records read from the "
        "dual-run log.\n"
        "# TYPE cutover_shadow_records_read_total counter\n"
        "cutover_shadow_records_read_total %llu\n"
        "# HELP cutover_shadow_replayed_total Replays the shadow answered "
        "for good (2xx, 3xx or 4xx; compared).\n"
        "# TYPE cutover_shadow_replayed_total counter\n"
        "cutover_shadow_replayed_total %llu\n"
        "# HELP cutover_shadow_failed_total Replays given up after "
        "\"retries\": reads without an answer or answered 5xx, writes "
        "answered 500 and the like (a write the other side did not take "
        "is never given up).\n"
        "# TYPE cutover_shadow_failed_total counter\n"
        "cutover_shadow_failed_total %llu\n"
        "# HELP cutover_shadow_retried_total Replay attempts retried.\n"
        "# TYPE cutover_shadow_retried_total counter\n"
        "cutover_shadow_retried_total %llu\n"
        "# HELP cutover_shadow_inflight Replays on the wire.\n"
        "# TYPE cutover_shadow_inflight gauge\n"
        "cutover_shadow_inflight %lld\n"
        "# HELP cutover_shadow_corrupt_frames_total Corrupt frames or "
        "records skipped.\n"
        "# TYPE cutover_shadow_corrupt_frames_total counter\n"
        "cutover_shadow_corrupt_frames_total %llu\n"
        "# HELP cutover_shadow_lost_total Records the checkpoint passed "
        "without a replay or a stored result (out of memory; each is "
        "logged with its id).\n"
        "# TYPE cutover_shadow_lost_total counter\n"
        "cutover_shadow_lost_total %llu\n"
        "# HELP cutover_shadow_lag_records Records read and not yet "
        "durable.\n"
        "# TYPE cutover_shadow_lag_records gauge\n"
        "cutover_shadow_lag_records %lld\n"
        "# HELP cutover_shadow_lag_bytes Log bytes not yet read.\n"
        "# TYPE cutover_shadow_lag_bytes gauge\n"
        "cutover_shadow_lag_bytes %llu\n"
        "# HELP cutover_shadow_lag_seconds Age of the oldest unfinished "
        "record.\n"
        "# TYPE cutover_shadow_lag_seconds gauge\n"
        "cutover_shadow_lag_seconds %.3f\n"
        "# HELP cutover_shadow_verdicts_total Compared pairs by verdict.\n"
        "# TYPE cutover_shadow_verdicts_total counter\n"
        "cutover_shadow_verdicts_total{verdict=\"equal\"} %llu\n"
        "cutover_shadow_verdicts_total{verdict=\"different\"} %llu\n"
        "cutover_shadow_verdicts_total{verdict=\"unparseable\"} %llu\n"
        "cutover_shadow_verdicts_total{verdict=\"shadow_failed\"} %llu\n"
        "# HELP cutover_shadow_store_pending Results waiting in the "
        "outbox.\n"
        "# TYPE cutover_shadow_store_pending gauge\n"
        "cutover_shadow_store_pending %llu\n"
        "# HELP cutover_shadow_checkpoint_segment Segment of the "
        "checkpoint.\n"
        "# TYPE cutover_shadow_checkpoint_segment gauge\n"
        "cutover_shadow_checkpoint_segment %llu\n"
        "# HELP cutover_shadow_checkpoint_offset Offset of the "
        "checkpoint.\n"
        "# TYPE cutover_shadow_checkpoint_offset gauge\n"
        "cutover_shadow_checkpoint_offset %llu\n",
        (unsigned long long) s->read, (unsigned long long) s->replayed,
        (unsigned long long) s->failed, (unsigned long long) s->retried,
        (long long) s->inflight, (unsigned long long) s->corrupt,
        (unsigned long long) s->lost,
        (long long) s->lag_records, (unsigned long long) s->lag_bytes,
        s->lag_seconds,
        (unsigned long long) s->equal, (unsigned long long) s->different,
        (unsigned long long) s->unparseable,
        (unsigned long long) s->shadow_failed,
        (unsigned long long) s->store_pending,
        (unsigned long long) s->ckpt_seq, (unsigned long long) s->ckpt_off);

    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }

    if ((size_t) n >= cap) {
        return cap - 1;
    }

    n += (int) shadow_metrics_render_outcomes(s, buf + n, cap - (size_t) n);

    return (size_t) n + shadow_metrics_render_zones(s, buf + n,
                                                    cap - (size_t) n);
}


/*
 * What became of every record read, and the writes waiting for the other
 * side: read = replayed + failed + primary_refused + indeterminate +
 * dead_lettered + lost + corrupt_records once the lag is 0. Kept whole: one
 * buffer written metric after metric.
 */
static size_t
shadow_metrics_render_outcomes(const shadow_stats_t *s, char *buf,
    size_t cap)
{
    size_t    len = 0;
    unsigned  i;

    shadow_metrics_add(buf, cap, &len,
        "# HELP cutover_shadow_primary_refused_total Writes the primary "
        "refused (4xx): not executed on the other side.\n"
        "# TYPE cutover_shadow_primary_refused_total counter\n"
        "cutover_shadow_primary_refused_total %llu\n"
        "# HELP cutover_shadow_indeterminate_total Writes whose outcome on "
        "the primary is unknown (5xx, no answer): not replayed, stored for "
        "reconciliation.\n"
        "# TYPE cutover_shadow_indeterminate_total counter\n"
        "cutover_shadow_indeterminate_total %llu\n"
        "# HELP cutover_shadow_dead_lettered_total Records moved to the "
        "dead-letter store (max_wait_ms).\n"
        "# TYPE cutover_shadow_dead_lettered_total counter\n"
        "cutover_shadow_dead_lettered_total %llu\n"
        "# HELP cutover_shadow_dead_letter_replays_total Dead letters "
        "replayed after an operator's \"dead-letter replay\".\n"
        "# TYPE cutover_shadow_dead_letter_replays_total counter\n"
        "cutover_shadow_dead_letter_replays_total %llu\n"
        "# HELP cutover_shadow_corrupt_records_total Records read but not "
        "decodable (skipped, logged).\n"
        "# TYPE cutover_shadow_corrupt_records_total counter\n"
        "cutover_shadow_corrupt_records_total %llu\n"
        "# HELP cutover_shadow_dead_letter_keys Ordering keys parked in the "
        "dead-letter store.\n"
        "# TYPE cutover_shadow_dead_letter_keys gauge\n"
        "cutover_shadow_dead_letter_keys %lld\n"
        "# HELP cutover_shadow_dead_letter_pending Records of parked keys "
        "not yet written to the dead-letter store.\n"
        "# TYPE cutover_shadow_dead_letter_pending gauge\n"
        "cutover_shadow_dead_letter_pending %lld\n"
        "# HELP cutover_shadow_retrying Records waiting for their next "
        "attempt (their key waits behind them).\n"
        "# TYPE cutover_shadow_retrying gauge\n"
        "cutover_shadow_retrying %lld\n"
        "# HELP cutover_shadow_oldest_wait_seconds Time since the first "
        "failed attempt of the oldest record still waiting.\n"
        "# TYPE cutover_shadow_oldest_wait_seconds gauge\n"
        "cutover_shadow_oldest_wait_seconds %.3f\n"
        "# HELP cutover_shadow_process_cpu_seconds_total User and system "
        "CPU time the daemon has used.\n"
        "# TYPE cutover_shadow_process_cpu_seconds_total counter\n"
        "cutover_shadow_process_cpu_seconds_total %.3f\n"
        "# HELP cutover_shadow_nice The daemon's scheduling niceness.\n"
        "# TYPE cutover_shadow_nice gauge\n"
        "cutover_shadow_nice %d\n"
        "# HELP cutover_shadow_sched_idle 1 when the daemon runs under "
        "SCHED_IDLE (only on CPU time nothing else wants).\n"
        "# TYPE cutover_shadow_sched_idle gauge\n"
        "cutover_shadow_sched_idle %d\n",
        (unsigned long long) s->primary_refused,
        (unsigned long long) s->indeterminate,
        (unsigned long long) s->dead_lettered,
        (unsigned long long) s->dl_replays,
        (unsigned long long) s->corrupt_records,
        (long long) s->parked_keys, (long long) s->parking,
        (long long) s->retrying,
        s->oldest_wait_seconds, s->cpu_seconds, s->nice, s->sched_idle);

    shadow_metrics_add(buf, cap, &len,
        "# HELP cutover_shadow_retrying_by_reason Records waiting for "
        "their next attempt, by the last failure.\n"
        "# TYPE cutover_shadow_retrying_by_reason gauge\n");

    for (i = 0; i < SHADOW_RETRY_REASONS; i++) {
        shadow_metrics_add(buf, cap, &len,
            "cutover_shadow_retrying_by_reason{reason=\"%s\"} %lld\n",
            shadow_retry_reason_names[i], (long long) s->retrying_by[i]);
    }

    shadow_metrics_add(buf, cap, &len,
        "# HELP cutover_shadow_retries_total Attempts tried again, by "
        "reason.\n"
        "# TYPE cutover_shadow_retries_total counter\n");

    for (i = 0; i < SHADOW_RETRY_REASONS; i++) {
        shadow_metrics_add(buf, cap, &len,
            "cutover_shadow_retries_total{reason=\"%s\"} %llu\n",
            shadow_retry_reason_names[i],
            (unsigned long long) s->retries_by[i]);
    }

    return len;
}


void
shadow_stats_count_pair(shadow_stats_t *s, const cutover_str_t *zone,
    int served_new, unsigned v)
{
    unsigned              i;
    size_t                len = zone->len < 32 ? zone->len : 32;
    shadow_zone_stats_t  *z = NULL;

    for (i = 0; i < s->nzones; i++) {
        if (strncmp(s->zones[i].zone, zone->data, len) == 0
            && s->zones[i].zone[len] == '\0')
        {
            z = &s->zones[i];
            break;
        }
    }

    if (z == NULL) {
        if (s->nzones < SHADOW_STATS_ZONES - 1) {
            z = &s->zones[s->nzones++];
            memcpy(z->zone, zone->data, len);
            z->zone[len] = '\0';

        } else {
            /* the last slot gathers every further zone */
            z = &s->zones[SHADOW_STATS_ZONES - 1];
            strcpy(z->zone, "other");
            s->nzones = SHADOW_STATS_ZONES;
        }
    }

    z->pairs[served_new ? 1 : 0][v < 4 ? v : 3]++;
}


/* Appends to buf at *len, never past cap (the text is cut there). */
static void
shadow_metrics_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    if (*len + 1 >= cap) {
        return;
    }

    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);

    if (n > 0) {
        *len = *len + (size_t) n < cap ? *len + (size_t) n : cap - 1;
    }
}


/* cutover_shadow_pairs_total{zone,side,verdict} and the mismatch ratio
 * per zone and side. */
static size_t
shadow_metrics_render_zones(const shadow_stats_t *s, char *buf, size_t cap)
{
    size_t              len = 0;
    unsigned            i, side, v;
    uint64_t            all, bad;
    const uint64_t     *p;
    static const char  *sides[] = { "legacy", "new" };
    static const char  *verdicts[] = { "equal", "different", "unparseable",
                                       "shadow_failed" };

    shadow_metrics_add(buf, cap, &len,
        "# HELP cutover_shadow_pairs_total Compared pairs by zone, side "
        "that served the primary, and verdict.\n"
        "# TYPE cutover_shadow_pairs_total counter\n");

    for (i = 0; i < s->nzones; i++) {
        for (side = 0; side < 2; side++) {
            for (v = 0; v < 4; v++) {
                shadow_metrics_add(buf, cap, &len,
                    "cutover_shadow_pairs_total{zone=\"%s\",side=\"%s\","
                    "verdict=\"%s\"} %llu\n", s->zones[i].zone, sides[side],
                    verdicts[v],
                    (unsigned long long) s->zones[i].pairs[side][v]);
            }
        }
    }

    shadow_metrics_add(buf, cap, &len,
        "# HELP cutover_shadow_mismatch_ratio Share of compared pairs that "
        "were not equal, by zone and side.\n"
        "# TYPE cutover_shadow_mismatch_ratio gauge\n");

    for (i = 0; i < s->nzones; i++) {
        for (side = 0; side < 2; side++) {
            p = s->zones[i].pairs[side];
            all = p[0] + p[1] + p[2] + p[3];
            bad = all - p[0];

            shadow_metrics_add(buf, cap, &len,
                "cutover_shadow_mismatch_ratio{zone=\"%s\",side=\"%s\"} "
                "%.6f\n", s->zones[i].zone, sides[side],
                all ? (double) bad / (double) all : 0.0);
        }
    }

    shadow_metrics_add(buf, cap, &len,
        "# HELP cutover_guard_trips_total Mismatch guard trips.\n"
        "# TYPE cutover_guard_trips_total counter\n"
        "cutover_guard_trips_total{reason=\"mismatch\"} %llu\n"
        "# HELP cutover_guard_rollbacks_total Rollbacks the gateway made "
        "for the mismatch guard.\n"
        "# TYPE cutover_guard_rollbacks_total counter\n"
        "cutover_guard_rollbacks_total %llu\n"
        "# HELP cutover_guard_rollback_failures_total Rollback calls that "
        "failed (gateway unreachable or refusing); each is tried again.\n"
        "# TYPE cutover_guard_rollback_failures_total counter\n"
        "cutover_guard_rollback_failures_total %llu\n"
        "# HELP cutover_guard_rollback_pending 1 while a rollback is still "
        "to be made.\n"
        "# TYPE cutover_guard_rollback_pending gauge\n"
        "cutover_guard_rollback_pending %lld\n",
        (unsigned long long) s->guard.trips,
        (unsigned long long) s->guard.rollbacks,
        (unsigned long long) s->guard.rollback_failures,
        (long long) s->guard.pending);

    return len;
}


static enum MHD_Result
shadow_metrics_answer(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **state)
{
    int                   status = MHD_HTTP_OK;
    char                  text[32768];
    size_t                n;
    shadow_stats_t        s;
    enum MHD_Result       rc;
    shadow_metrics_t     *m = cls;
    struct MHD_Response  *resp;

    (void) version;
    (void) upload;
    (void) upload_len;
    (void) state;

    if (strcmp(method, "GET") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        n = snprintf(text, sizeof(text), "only GET\n");

    } else if (strcmp(url, "/metrics") != 0) {
        status = MHD_HTTP_NOT_FOUND;
        n = snprintf(text, sizeof(text), "see /metrics\n");

    } else {
        pthread_mutex_lock(&m->lock);
        s = m->stats;
        pthread_mutex_unlock(&m->lock);
        n = shadow_metrics_render(&s, text, sizeof(text));
    }

    resp = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return MHD_NO;
    }

    MHD_add_response_header(resp, "Content-Type",
                            "text/plain; version=0.0.4");
    rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}


shadow_metrics_t *
shadow_metrics_start(const char *listen, const shadow_stats_t *initial,
    shadow_error_t *err)
{
    shadow_metrics_t       *m;
    cutover_httpd_conf_t    conf;
    cutover_httpd_error_t   herr;

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "out of memory");
        return NULL;
    }

    m->stats = *initial;
    pthread_mutex_init(&m->lock, NULL);

    /* a scrape or two at a time: one thread, few connections, no body */
    memset(&conf, 0, sizeof(conf));
    conf.program = "cutover-shadowd";
    conf.listen = listen;
    cutover_httpd_limits_default(&conf.limits);
    conf.limits.threads = 1;
    conf.limits.max_connections = 64;
    conf.limits.per_ip = 64;
    conf.limits.request_timeout = 10;
    conf.limits.body_max = 0;
    conf.mhd_handler = shadow_metrics_answer;
    conf.data = m;

    m->mhd = cutover_httpd_start(&conf, &herr);
    if (m->mhd == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "metrics_listen: %s",
                         herr.message);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
    }

    return m;
}


void
shadow_metrics_publish(shadow_metrics_t *m, const shadow_stats_t *s)
{
    pthread_mutex_lock(&m->lock);
    m->stats = *s;
    pthread_mutex_unlock(&m->lock);
}


void
shadow_metrics_stop(shadow_metrics_t *m)
{
    if (m == NULL) {
        return;
    }

    cutover_httpd_stop(m->mhd);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
