/*
 * cutover_guard: the guard's window, histogram and thresholds (see the
 * header).  No allocation, no libm: the module compiles this file.
 */

#include <stdio.h>
#include <string.h>

#include "common/cutover_duration.h"
#include "common/cutover_guard.h"


/* 1.1^k, k = 0..127: the upper bounds of the histogram's buckets. */
static const double  cutover_guard_bounds[CUTOVER_GUARD_HIST] = {
    1.000000, 1.100000, 1.210000, 1.331000, 1.464100, 1.610510, 1.771561,
    1.948717, 2.143589, 2.357948, 2.593742, 2.853117, 3.138428, 3.452271,
    3.797498, 4.177248, 4.594973, 5.054470, 5.559917, 6.115909, 6.727500,
    7.400250, 8.140275, 8.954302, 9.849733, 10.834706, 11.918177, 13.109994,
    14.420994, 15.863093, 17.449402, 19.194342, 21.113777, 23.225154,
    25.547670, 28.102437, 30.912681, 34.003949, 37.404343, 41.144778,
    45.259256, 49.785181, 54.763699, 60.240069, 66.264076, 72.890484,
    80.179532, 88.197485, 97.017234, 106.718957, 117.390853, 129.129938,
    142.042932, 156.247225, 171.871948, 189.059142, 207.965057, 228.761562,
    251.637719, 276.801490, 304.481640, 334.929803, 368.422784, 405.265062,
    445.791568, 490.370725, 539.407798, 593.348578, 652.683435, 717.951779,
    789.746957, 868.721652, 955.593818, 1051.153200, 1156.268519, 1271.895371,
    1399.084909, 1538.993399, 1692.892739, 1862.182013, 2048.400215,
    2253.240236, 2478.564260, 2726.420686, 2999.062754, 3298.969030,
    3628.865933, 3991.752526, 4390.927778, 4830.020556, 5313.022612,
    5844.324873, 6428.757360, 7071.633096, 7778.796406, 8556.676047,
    9412.343651, 10353.578016, 11388.935818, 12527.829400, 13780.612340,
    15158.673574, 16674.540931, 18341.995024, 20176.194527, 22193.813979,
    24413.195377, 26854.514915, 29539.966407, 32493.963047, 35743.359352,
    39317.695287, 43249.464816, 47574.411297, 52331.852427, 57565.037670,
    63321.541437, 69653.695581, 76619.065139, 84280.971653, 92709.068818,
    101979.975700, 112177.973270, 123395.770597, 135735.347656, 149308.882422,
    164239.770664, 180663.747730,
};

/* sqrt(1.1): a bucket's geometric middle is its upper bound over this */
#define CUTOVER_GUARD_HALF_STEP  1.0488088481701516


static void cutover_guard_bp_format(uint32_t bp, char buf[16]);
static void cutover_guard_rate_format(double pct, char buf[32]);
static int64_t cutover_guard_bp_parse(const char *s, size_t len);


size_t
cutover_guard_window_size(uint32_t seconds)
{
    return offsetof(cutover_guard_window_t, b)
           + (size_t) (seconds + 2) * sizeof(cutover_guard_bucket_t);
}


void
cutover_guard_window_init(cutover_guard_window_t *w, uint32_t seconds)
{
    memset(w, 0, cutover_guard_window_size(seconds));
    w->nbuckets = seconds + 2;
}


void
cutover_guard_rotate(cutover_guard_window_t *w, uint32_t last, uint32_t now)
{
    uint32_t                 s, from, to;
    cutover_guard_bucket_t  *b;

    to = now + 1;
    from = last + 1;

    if (last == 0 || to - from >= w->nbuckets || from > to) {
        from = to - (w->nbuckets - 1);
    }

    for (s = from; s != to + 1; s++) {
        b = &w->b[s % w->nbuckets];

        if (__atomic_load_n(&b->sec, __ATOMIC_ACQUIRE) == s) {
            continue;               /* made ready ahead; may hold counts */
        }

        /* writers count only into a bucket stamped with their second */
        __atomic_store_n(&b->sec, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&b->requests, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->errors, 0, __ATOMIC_RELAXED);
        memset(b->hist, 0, sizeof(b->hist));
        __atomic_store_n(&b->sec, s, __ATOMIC_RELEASE);
    }
}


int
cutover_guard_add(cutover_guard_window_t *w, uint32_t now, int error,
    uint64_t ms)
{
    cutover_guard_bucket_t  *b = &w->b[now % w->nbuckets];

    if (__atomic_load_n(&b->sec, __ATOMIC_ACQUIRE) != now) {
        return 0;
    }

    __atomic_fetch_add(&b->requests, 1, __ATOMIC_RELAXED);

    if (error) {
        __atomic_fetch_add(&b->errors, 1, __ATOMIC_RELAXED);
    }

    __atomic_fetch_add(&b->hist[cutover_guard_hist_index(ms)], 1,
                       __ATOMIC_RELAXED);
    return 1;
}


void
cutover_guard_sum(const cutover_guard_window_t *w, uint32_t now,
    uint32_t window, cutover_guard_sum_t *sum)
{
    unsigned                       i;
    uint32_t                       s, k, since;
    const cutover_guard_bucket_t  *b;

    memset(sum, 0, sizeof(*sum));

    if (window > w->nbuckets - 2) {
        window = w->nbuckets - 2;
    }

    since = __atomic_load_n(&w->since, __ATOMIC_ACQUIRE);

    for (k = 0; k < window && k < now; k++) {
        s = now - k;

        if (s <= since) {
            break;
        }

        b = &w->b[s % w->nbuckets];

        if (__atomic_load_n(&b->sec, __ATOMIC_ACQUIRE) != s) {
            continue;               /* an idle second: nothing counted */
        }

        sum->requests += __atomic_load_n(&b->requests, __ATOMIC_RELAXED);
        sum->errors += __atomic_load_n(&b->errors, __ATOMIC_RELAXED);

        for (i = 0; i < CUTOVER_GUARD_HIST; i++) {
            sum->hist[i] += __atomic_load_n(&b->hist[i], __ATOMIC_RELAXED);
        }
    }
}


void
cutover_guard_restart(cutover_guard_window_t *w, uint32_t now)
{
    __atomic_store_n(&w->since, now, __ATOMIC_RELEASE);
}


unsigned
cutover_guard_hist_index(uint64_t ms)
{
    unsigned  lo, hi, mid;

    if (ms == 0) {
        return 0;
    }

    if ((double) ms >= cutover_guard_bounds[CUTOVER_GUARD_HIST - 1]) {
        return CUTOVER_GUARD_HIST - 1;
    }

    /* the first bound above ms */
    lo = 1;
    hi = CUTOVER_GUARD_HIST - 1;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if ((double) ms < cutover_guard_bounds[mid]) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return lo;
}


double
cutover_guard_hist_value(unsigned index)
{
    if (index == 0) {
        return 0;
    }

    if (index >= CUTOVER_GUARD_HIST) {
        index = CUTOVER_GUARD_HIST - 1;
    }

    return cutover_guard_bounds[index] / CUTOVER_GUARD_HALF_STEP;
}


double
cutover_guard_percentile(const uint64_t *hist, double pct)
{
    unsigned  i;
    uint64_t  total = 0, rank, seen = 0;

    for (i = 0; i < CUTOVER_GUARD_HIST; i++) {
        total += hist[i];
    }

    if (total == 0) {
        return 0;
    }

    /* the smallest value with at least pct % of the values at or below */
    rank = (uint64_t) ((double) total * pct / 100.0);
    if ((double) rank < (double) total * pct / 100.0) {
        rank++;
    }

    if (rank == 0) {
        rank = 1;
    }

    for (i = 0; i < CUTOVER_GUARD_HIST; i++) {
        seen += hist[i];

        if (seen >= rank) {
            return cutover_guard_hist_value(i);
        }
    }

    return cutover_guard_hist_value(CUTOVER_GUARD_HIST - 1);
}


double
cutover_guard_error_rate(const cutover_guard_sum_t *sum)
{
    return sum->requests ? 100.0 * (double) sum->errors
                           / (double) sum->requests
                         : 0;
}


int
cutover_guard_check(const cutover_guard_conf_t *conf,
    const cutover_guard_sum_t *sum, const char *rule, char *reason,
    size_t cap)
{
    char    limit[16], rate[32];
    double  p99;

    if (sum->requests == 0 || sum->requests < conf->min_requests) {
        return CUTOVER_GUARD_OK;
    }

    /* crossed means above: errors / requests > bp / 10000 */
    if (conf->error_rate_bp
        && sum->errors * 10000 > (uint64_t) conf->error_rate_bp
                                 * sum->requests)
    {
        cutover_guard_bp_format(conf->error_rate_bp, limit);
        cutover_guard_rate_format(cutover_guard_error_rate(sum), rate);
        snprintf(reason, cap, "guard: error_rate %s%% > %s%% over %us on "
                 "rule %s (%llu requests)", rate, limit, conf->window, rule,
                 (unsigned long long) sum->requests);
        return CUTOVER_GUARD_ERROR_RATE;
    }

    if (conf->latency_ms) {
        p99 = cutover_guard_percentile(sum->hist, 99);

        if (p99 > (double) conf->latency_ms) {
            snprintf(reason, cap, "guard: latency p99 %.0fms > %ums over "
                     "%us on rule %s (%llu requests)", p99, conf->latency_ms,
                     conf->window, rule,
                     (unsigned long long) sum->requests);
            return CUTOVER_GUARD_LATENCY;
        }
    }

    return CUTOVER_GUARD_OK;
}


int
cutover_guard_check_mismatch(const cutover_guard_conf_t *conf,
    uint64_t pairs, uint64_t differing, const char *rule, char *reason,
    size_t cap)
{
    char  limit[16], rate[32];

    if (pairs == 0 || pairs < conf->min_requests || conf->mismatch_bp == 0
        || differing * 10000 <= (uint64_t) conf->mismatch_bp * pairs)
    {
        return CUTOVER_GUARD_OK;
    }

    cutover_guard_bp_format(conf->mismatch_bp, limit);
    cutover_guard_rate_format(100.0 * (double) differing / (double) pairs,
                              rate);
    snprintf(reason, cap, "guard: mismatch %s%% > %s%% over %us on rule %s "
             "(%llu pairs)", rate, limit, conf->window, rule,
             (unsigned long long) pairs);

    return CUTOVER_GUARD_MISMATCH;
}


const char *
cutover_guard_reason_name(int verdict)
{
    switch (verdict) {
    case CUTOVER_GUARD_ERROR_RATE:
        return "error_rate";
    case CUTOVER_GUARD_LATENCY:
        return "latency";
    case CUTOVER_GUARD_MISMATCH:
        return "mismatch";
    default:
        return "none";
    }
}


/* 250 -> "2.5", 200 -> "2", 5 -> "0.05" */
static void
cutover_guard_bp_format(uint32_t bp, char buf[16])
{
    if (bp % 100 == 0) {
        snprintf(buf, 16, "%u", bp / 100);

    } else if (bp % 10 == 0) {
        snprintf(buf, 16, "%u.%u", bp / 100, (bp % 100) / 10);

    } else {
        snprintf(buf, 16, "%u.%02u", bp / 100, bp % 100);
    }
}


/* one decimal, none when it is .0: "7.5", "12" */
static void
cutover_guard_rate_format(double pct, char buf[32])
{
    int  n;

    n = snprintf(buf, 32, "%.1f", pct);

    if (n > 2 && buf[n - 2] == '.' && buf[n - 1] == '0') {
        buf[n - 2] = '\0';
    }
}


/* "2%", "2.5%", "0.05%" (the % is optional) -> basis points, or -1 */
static int64_t
cutover_guard_bp_parse(const char *s, size_t len)
{
    size_t   i = 0;
    int64_t  v = 0;
    int      frac = -1;

    if (len && s[len - 1] == '%') {
        len--;
    }

    if (len == 0 || s[0] < '0' || s[0] > '9') {
        return -1;
    }

    for ( ; i < len; i++) {
        if (s[i] == '.' && frac < 0) {
            frac = 0;
            continue;
        }

        if (s[i] < '0' || s[i] > '9' || frac >= 2 || v > 100000) {
            return -1;
        }

        v = v * 10 + (s[i] - '0');

        if (frac >= 0) {
            frac++;
        }
    }

    if (frac == 0) {
        return -1;                  /* "2." */
    }

    for (frac = frac < 0 ? 0 : frac; frac < 2; frac++) {
        v *= 10;
    }

    return v;
}


int64_t
cutover_duration_parse(const char *s, size_t len)
{
    int64_t  ms = cutover_duration_ms(s, len, 1000, 0);

    return ms < 0 || ms % 1000 ? -1 : ms / 1000;
}


int64_t
cutover_msec_parse(const char *s, size_t len)
{
    return cutover_duration_ms(s, len, 1, 1);
}


int
cutover_guard_param(cutover_guard_conf_t *conf, const char *s, size_t len,
    cutover_error_t *err)
{
    size_t       n;
    int64_t      v;
    const char  *eq, *val;

    eq = memchr(s, '=', len);
    if (eq == NULL) {
        cutover_error_set(err, "invalid_guard", "\"%.*s\": want name=value",
                          (int) (len > 60 ? 60 : len), s);
        return -1;
    }

    n = (size_t) (eq - s);
    val = eq + 1;
    len -= n + 1;

#define CUTOVER_NAME_IS(lit) \
    (n == sizeof(lit) - 1 && memcmp(s, lit, n) == 0)

    if (CUTOVER_NAME_IS("error_rate") || CUTOVER_NAME_IS("mismatch")) {
        v = cutover_guard_bp_parse(val, len);
        if (v <= 0 || v > 10000) {
            cutover_error_set(err, "invalid_guard", "%.*s: want a percent "
                              "above 0 and at most 100 (2%%, 0.5%%), not "
                              "\"%.*s\"", (int) n, s,
                              (int) (len > 40 ? 40 : len), val);
            return -1;
        }

        if (s[0] == 'e') {
            conf->error_rate_bp = (uint32_t) v;

        } else {
            conf->mismatch_bp = (uint32_t) v;
        }

    } else if (CUTOVER_NAME_IS("latency_p99")) {
        v = cutover_msec_parse(val, len);
        if (v <= 0 || v > 3600000) {
            cutover_error_set(err, "invalid_guard", "latency_p99: want a "
                              "time from 1ms to 1h (800ms, 1.5s), not "
                              "\"%.*s\"", (int) (len > 40 ? 40 : len), val);
            return -1;
        }

        conf->latency_ms = (uint32_t) v;

    } else if (CUTOVER_NAME_IS("window")) {
        v = cutover_duration_parse(val, len);
        if (v <= 0 || v > CUTOVER_GUARD_WINDOW_MAX) {
            cutover_error_set(err, "invalid_guard", "window: want a "
                              "duration from 1s to %ds (30s, 2m), not "
                              "\"%.*s\"", CUTOVER_GUARD_WINDOW_MAX,
                              (int) (len > 40 ? 40 : len), val);
            return -1;
        }

        conf->window = (uint32_t) v;

    } else if (CUTOVER_NAME_IS("min_requests")
               || CUTOVER_NAME_IS("min_pairs"))
    {
        v = cutover_duration_parse(val, len);
        if (v < 0 || (len && (val[len - 1] < '0' || val[len - 1] > '9'))
            || v > 1000000000)
        {
            cutover_error_set(err, "invalid_guard", "%.*s: want a whole "
                              "number, not \"%.*s\"", (int) n, s,
                              (int) (len > 40 ? 40 : len), val);
            return -1;
        }

        conf->min_requests = (uint32_t) v;

    } else if (CUTOVER_NAME_IS("action")) {
        if (len == 8 && memcmp(val, "rollback", 8) == 0) {
            conf->action = CUTOVER_GUARD_ROLLBACK;

        } else if (len == 5 && memcmp(val, "alert", 5) == 0) {
            conf->action = CUTOVER_GUARD_ALERT;

        } else {
            cutover_error_set(err, "invalid_guard", "action: want rollback "
                              "or alert, not \"%.*s\"",
                              (int) (len > 40 ? 40 : len), val);
            return -1;
        }

    } else {
        cutover_error_set(err, "invalid_guard", "unknown parameter \"%.*s\" "
                          "(error_rate, latency_p99, mismatch, window, "
                          "min_requests, action)", (int) (n > 40 ? 40 : n),
                          s);
        return -1;
    }

#undef CUTOVER_NAME_IS

    return 0;
}


int
cutover_guard_conf_check(const cutover_guard_conf_t *conf,
    cutover_error_t *err)
{
    if (conf->window == 0) {
        cutover_error_set(err, "invalid_guard", "window= is required "
                          "(1s to %ds)", CUTOVER_GUARD_WINDOW_MAX);
        return -1;
    }

    if (conf->error_rate_bp == 0 && conf->latency_ms == 0
        && conf->mismatch_bp == 0)
    {
        cutover_error_set(err, "invalid_guard", "no threshold: give "
                          "error_rate=, latency_p99= or both");
        return -1;
    }

    return 0;
}
