/*
 * compare_html: cutover-report --format html, one self-contained page.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "compare/compare_html.h"
#include "compare/compare_json.h"
#include "compare/compare_report.h"
#include "compare/reconcile_report.h"

/* compare/report.css and compare/report.js, linked in as text */
extern const char compare_html_css[];
extern const char compare_html_js[];

#define HTML_CHART_W  720
#define HTML_CHART_H  260
#define HTML_SPARK_W  96
#define HTML_SPARK_H  20
#define HTML_RULES_MAX  (1024 * 1024)

typedef enum {
    HTML_SUMMARY = 0,
    HTML_ROUTES,
    HTML_STORES,
    HTML_CHANNELS,
    HTML_FIELDS,
    HTML_ROUTE_TREND,
    HTML_STORE_CHANNELS,
    HTML_FIELD_TREND,
    HTML_FIELD_SAMPLES,
    HTML_LEDGERS,
    HTML_NRESULTS
} html_result_t;

typedef struct {
    FILE                       *out;
    const compare_html_opts_t  *opts;
    PGresult                   *res[HTML_NRESULTS];
    int64_t                     first;     /* the first step, Unix s */
    int64_t                     step;      /* seconds */
    int                         nbins;
    long long                   mismatches;
    bson_t                      rules;       /* {"$": the rules file} */
    int                         has_rules;
} html_page_t;

typedef struct {
    html_result_t  which;
    int            kind;      /* compare_report_kind_t, or -1 */
    long           limit;
} html_query_t;


static int html_utf8_len(const unsigned char *p, size_t left);
static void html_puts(html_page_t *pg, const char *s);
static void html_value(html_page_t *pg, PGresult *res, int row,
    const char *col);
static const char *html_get(PGresult *res, int row, const char *col);
static long long html_num(PGresult *res, int row, const char *col);
static int64_t html_time(const char *text);
static void html_time_text(int64_t t, char *buf, size_t size);
static int html_query_all(html_page_t *pg, PGconn *conn,
    compare_error_t *err);
static void html_bins(html_page_t *pg);
static int html_bin(html_page_t *pg, const char *at);
static void html_step_text(html_page_t *pg, char *buf, size_t size);
static void html_bin_text(html_page_t *pg, int b, int brief, char *buf,
    size_t size);
static void html_head(html_page_t *pg);
static void html_header(html_page_t *pg);
static void html_totals(html_page_t *pg);
static void html_total_row(html_page_t *pg, const char *name,
    const char *value, const char *note);
static void html_chart(html_page_t *pg);
static void html_chart_axes(html_page_t *pg, double ymax);
static void html_chart_route(html_page_t *pg, int r, const long long *cmp,
    const long long *mis, double ymax);
static void html_marker(html_page_t *pg, int r, double x, double y);
static void html_chart_legend(html_page_t *pg, int nroutes);
static void html_chart_data(html_page_t *pg, int nroutes,
    const long long *cmp, const long long *mis);
static void html_routes(html_page_t *pg);
static void html_fields(html_page_t *pg);
static void html_sparkline(html_page_t *pg, int *cursor, int field);
static int html_same_field(PGresult *a, int i, PGresult *b, int j);
static void html_heat(html_page_t *pg);
static void html_heat_cell(html_page_t *pg, const char *store,
    const char *channel, long long max);
static void html_samples(html_page_t *pg);
static int html_sample_pair(html_page_t *pg, int row);
static void html_diff_value(html_page_t *pg, PGresult *res, int row,
    const char *col);
static int html_rules_load(html_page_t *pg, compare_error_t *err);
static void html_rule_row(html_page_t *pg, const bson_iter_t *route,
    const bson_iter_t *rule);
static void html_rules(html_page_t *pg);
static int html_count_ignores(html_page_t *pg);
static void html_bson_value(html_page_t *pg, const bson_iter_t *it);
static void html_ledgers(html_page_t *pg);
static int html_script_hash(char *buf, size_t size);
static void html_fail(compare_error_t *err, const char *what,
    const char *name, int errnum);
static int html_write_all(int fd, const char *buf, size_t len);


static const char *html_palette[] = {
    "#0b3d91", "#c0392b", "#1e8449", "#7d3c98", "#b9770e", "#117a8b",
    "#444444", "#a04000"
};

static const char *html_dashes[] = {
    "", "6 3", "2 3", "8 3 2 3", "12 4", "4 2 1 2", "1 2", "10 2 2 2 2 2"
};


/* Length of the valid UTF-8 sequence at p, or 0 when it is not one. */
static int
html_utf8_len(const unsigned char *p, size_t left)
{
    int       n, i;
    uint32_t  cp;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if ((size_t) n > left) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
        || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    {
        return 0;
    }
    return n;
}


void
compare_html_text(FILE *out, const char *s, size_t len)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i = 0;
    int                   n;

    while (i < len) {
        switch (p[i]) {
        case '&': fputs("&amp;", out); i++; continue;
        case '<': fputs("&lt;", out); i++; continue;
        case '>': fputs("&gt;", out); i++; continue;
        case '"': fputs("&quot;", out); i++; continue;
        case '\'': fputs("&#39;", out); i++; continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7f) {
            /* the control picture of the character: U+2400 + c, U+2421 */
            fprintf(out, "&#x%X;", p[i] == 0x7f ? 0x2421 : 0x2400 + p[i]);
            i++;
            continue;
        }
        n = html_utf8_len(p + i, len - i);
        if (n == 0) {
            fputs("&#xFFFD;", out);
            i++;
            continue;
        }
        if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            /* C1 controls */
            fputs("&#xFFFD;", out);
            i += 2;
            continue;
        }
        fwrite(p + i, 1, (size_t) n, out);
        i += (size_t) n;
    }
}


void
compare_html_database(PGconn *conn, char *buf, size_t size)
{
    static const char  *keys[] = { "host", "port", "dbname", "user" };
    PQconninfoOption   *opts, *o;
    size_t              k, used = 0;
    int                 n;

    buf[0] = '\0';
    opts = PQconninfo(conn);
    if (opts == NULL) {
        return;
    }
    for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        for (o = opts; o->keyword != NULL; o++) {
            if (strcmp(o->keyword, keys[k]) != 0 || o->val == NULL
                || o->val[0] == '\0')
            {
                continue;
            }
            n = snprintf(buf + used, size - used, "%s%s=%s",
                         used ? " " : "", keys[k], o->val);
            if (n < 0 || (size_t) n >= size - used) {
                PQconninfoFree(opts);
                return;
            }
            used += (size_t) n;
        }
    }
    PQconninfoFree(opts);
}


static void
html_puts(html_page_t *pg, const char *s)
{
    compare_html_text(pg->out, s, strlen(s));
}


static const char *
html_get(PGresult *res, int row, const char *col)
{
    int  c = PQfnumber(res, col);

    if (c < 0 || row >= PQntuples(res) || PQgetisnull(res, row, c)) {
        return "";
    }
    return PQgetvalue(res, row, c);
}


static void
html_value(html_page_t *pg, PGresult *res, int row, const char *col)
{
    html_puts(pg, html_get(res, row, col));
}


static long long
html_num(PGresult *res, int row, const char *col)
{
    return strtoll(html_get(res, row, col), NULL, 10);
}


/* "2026-12-06 21:00:00+00", "...:00.123+05:30", "2026-12-06T21:00:00Z"
 * into Unix seconds. */
static int64_t
html_time(const char *text)
{
    struct tm    tm;
    const char  *p;
    int          oh = 0, om = 0, sign = 1;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(text, "%4d-%2d-%2d%*1[ T]%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    p = strlen(text) > 19 ? strpbrk(text + 19, "+-") : NULL;
    if (p != NULL) {
        sign = *p == '-' ? -1 : 1;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1) {
            oh = om = 0;
        }
    }
    return (int64_t) timegm(&tm) - sign * (oh * 3600 + om * 60);
}


static void
html_time_text(int64_t t, char *buf, size_t size)
{
    time_t     tt = (time_t) t;
    struct tm  tm;

    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm);
}


static int
html_query_all(html_page_t *pg, PGconn *conn, compare_error_t *err)
{
    static const html_query_t  q[] = {
        { HTML_SUMMARY, COMPARE_REPORT_SUMMARY, 0 },
        { HTML_ROUTES, COMPARE_REPORT_ROUTES, 1000 },
        { HTML_STORES, COMPARE_REPORT_STORES, COMPARE_HTML_HEAT_STORES },
        { HTML_CHANNELS, COMPARE_REPORT_CHANNELS, 100 },
        { HTML_FIELDS, COMPARE_REPORT_FIELDS, COMPARE_HTML_FIELDS },
        { HTML_ROUTE_TREND, COMPARE_REPORT_ROUTE_TREND, 0 },
        { HTML_STORE_CHANNELS, COMPARE_REPORT_STORE_CHANNELS, 0 },
        { HTML_FIELD_TREND, COMPARE_REPORT_FIELD_TREND, COMPARE_HTML_FIELDS },
        { HTML_FIELD_SAMPLES, COMPARE_REPORT_FIELD_SAMPLES,
          COMPARE_HTML_SAMPLE_FIELDS },
        { HTML_LEDGERS, -1, 0 }
    };
    size_t  i;
    int     kind;

    for (i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        kind = q[i].kind;
        if (q[i].which == HTML_LEDGERS) {
            /* the latest reconciliation per ledger: cutover-report's
             * "ledgers" report */
            pg->res[HTML_LEDGERS] = reconcile_report_query(conn,
                pg->opts->since, pg->opts->until, err);
            if (pg->res[HTML_LEDGERS] == NULL) {
                return COMPARE_ERROR;
            }
            continue;
        }
        pg->res[q[i].which] = compare_report_query(conn,
            (compare_report_kind_t) kind, pg->opts->since, pg->opts->until,
            q[i].limit, err);
        if (pg->res[q[i].which] == NULL) {
            return COMPARE_ERROR;
        }
    }
    return COMPARE_OK;
}


/* The time axis: the steps of route_trend, from the first that holds
 * results to the last (at most COMPARE_HTML_BINS). */
static void
html_bins(html_page_t *pg)
{
    PGresult  *rt = pg->res[HTML_ROUTE_TREND];
    int64_t    t, last = 0;
    int        i;

    pg->nbins = 0;
    pg->step = 3600;
    for (i = 0; i < PQntuples(rt); i++) {
        t = html_time(html_get(rt, i, "at"));
        if (i == 0 || t < pg->first) {
            pg->first = t;
        }
        last = t > last ? t : last;
        pg->step = html_num(rt, i, "step_s");
    }
    if (PQntuples(rt) == 0 || pg->step <= 0) {
        return;
    }
    pg->nbins = (int) ((last - pg->first) / pg->step) + 1;
    if (pg->nbins > COMPARE_HTML_BINS) {
        pg->nbins = COMPARE_HTML_BINS;
    }
}


static int
html_bin(html_page_t *pg, const char *at)
{
    int64_t  b = (html_time(at) - pg->first) / pg->step;

    return b < 0 ? 0 : (b >= pg->nbins ? pg->nbins - 1 : (int) b);
}


/* "5 s", "10 min", "2 h", "7 days" */
static void
html_step_text(html_page_t *pg, char *buf, size_t size)
{
    if (pg->step < 60) {
        snprintf(buf, size, "%lld s", (long long) pg->step);
    } else if (pg->step < 3600) {
        snprintf(buf, size, "%lld min", (long long) pg->step / 60);
    } else if (pg->step < 86400) {
        snprintf(buf, size, "%lld h", (long long) pg->step / 3600);
    } else {
        snprintf(buf, size, "%lld days", (long long) pg->step / 86400);
    }
}


/* When step b starts: with seconds when the step is shorter than a
 * minute; without the date when it is the first step's (a tick label). */
static void
html_bin_text(html_page_t *pg, int b, int brief, char *buf, size_t size)
{
    time_t      tt = (time_t) (pg->first + (int64_t) b * pg->step);
    time_t      t0 = (time_t) pg->first;
    struct tm   tm, tm0;
    const char  *fmt;

    gmtime_r(&tt, &tm);
    gmtime_r(&t0, &tm0);
    brief = brief && tm.tm_yday == tm0.tm_yday && tm.tm_year == tm0.tm_year;
    if (pg->step < 60) {
        fmt = brief ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S UTC";
    } else {
        fmt = brief ? "%H:%M" : "%Y-%m-%d %H:%M UTC";
    }
    strftime(buf, size, fmt, &tm);
}


static int
html_script_hash(char *buf, size_t size)
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen = 0;

    if (size < 48
        || EVP_Digest(compare_html_js, strlen(compare_html_js), md, &mdlen,
                      EVP_sha256(), NULL) != 1)
    {
        return -1;
    }
    EVP_EncodeBlock((unsigned char *) buf, md, (int) mdlen);
    return 0;
}


static void
html_head(html_page_t *pg)
{
    char  hash[64];
    char  from[32] = "", to[32] = "";

    if (html_script_hash(hash, sizeof(hash)) != 0) {
        hash[0] = '\0';
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
          "<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, "
          "initial-scale=1\">\n", pg->out);
    /* nothing may be fetched, and only our own script runs */
    fprintf(pg->out, "<meta http-equiv=\"Content-Security-Policy\" "
            "content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'sha256-%s'; img-src data:; form-action 'none'\">\n",
            hash);
    fputs("<meta name=\"generator\" content=\"cutover-report\">\n"
          "<title>cutover comparison report", pg->out);
    if (pg->opts->since || pg->opts->until) {
        fputs(" \xe2\x80\x94 ", pg->out);
        html_time_text(pg->opts->since ? html_time(pg->opts->since) : 0,
                       from, sizeof(from));
        html_time_text(pg->opts->until ? html_time(pg->opts->until) : 0,
                       to, sizeof(to));
        fprintf(pg->out, "%s to %s", pg->opts->since ? from : "start",
                pg->opts->until ? to : "now");
    }
    fprintf(pg->out, "</title>\n<style>\n%s</style>\n</head>\n",
            compare_html_css);
}


static void
html_header(html_page_t *pg)
{
    char  buf[64];

    fputs("<body>\n<header>\n<h1>cutover comparison report</h1>\n"
          "<dl class=\"meta\">\n<dt>Window</dt><dd id=\"window\">", pg->out);
    if (pg->opts->since) {
        html_time_text(html_time(pg->opts->since), buf, sizeof(buf));
        fprintf(pg->out, "from <time>%s</time>", buf);
    } else {
        fputs("from the first result", pg->out);
    }
    if (pg->opts->until) {
        html_time_text(html_time(pg->opts->until), buf, sizeof(buf));
        fprintf(pg->out, " to <time>%s</time>", buf);
    } else {
        fputs(" to the time the page was made", pg->out);
    }
    html_time_text((int64_t) pg->opts->made_at, buf, sizeof(buf));
    fprintf(pg->out, "</dd>\n<dt>Made</dt><dd id=\"made\"><time>%s</time> by "
            "cutover-report</dd>\n<dt>Database</dt><dd id=\"database\">",
            buf);
    html_puts(pg, pg->opts->database ? pg->opts->database : "");
    fputs("</dd>\n</dl>\n"
          "<form id=\"filters\" class=\"filters\" hidden>\n"
          "<label>Route <select data-filter=\"route\">"
          "<option value=\"\">all</option></select></label>\n"
          "<label>Store <select data-filter=\"store\">"
          "<option value=\"\">all</option></select></label>\n"
          "<label>Channel <select data-filter=\"channel\">"
          "<option value=\"\">all</option></select></label>\n"
          "<output id=\"filter-note\"></output>\n"
          "</form>\n</header>\n<main>\n", pg->out);
}


static void
html_total_row(html_page_t *pg, const char *name, const char *value,
    const char *note)
{
    fputs("<tr><th scope=\"row\">", pg->out);
    html_puts(pg, name);
    fprintf(pg->out, "</th><td class=\"num\" data-total=\"%s\">", name);
    html_puts(pg, value);
    fputs("</td><td>", pg->out);
    html_puts(pg, note);
    fputs("</td></tr>\n", pg->out);
}


static void
html_totals(html_page_t *pg)
{
    PGresult   *s = pg->res[HTML_SUMMARY];
    char        buf[64];
    long long   compared;

    compared = html_num(s, 0, "pairs") - html_num(s, 0, "shadow_failed")
               - html_num(s, 0, "primary_refused")
               - html_num(s, 0, "indeterminate");
    fputs("<section id=\"totals\" aria-labelledby=\"totals-h\">\n"
          "<h2 id=\"totals-h\">Totals</h2>\n<div class=\"scroll\">"
          "<table class=\"totals\">\n"
          "<caption>Every result in the window (the filters do not change "
          "these)</caption>\n<thead><tr><th scope=\"col\">Figure</th>"
          "<th scope=\"col\">Value</th><th scope=\"col\">What it counts"
          "</th></tr></thead>\n<tbody>\n", pg->out);
    html_total_row(pg, "pairs", html_get(s, 0, "pairs"),
                   "results stored in the window");
    snprintf(buf, sizeof(buf), "%lld", compared);
    html_total_row(pg, "compared", buf,
                   "pairs whose two answers were compared");
    snprintf(buf, sizeof(buf), "%lld", html_num(s, 0, "different")
             + html_num(s, 0, "unparseable"));
    html_total_row(pg, "with differences", buf,
                   "different or unparseable");
    snprintf(buf, sizeof(buf), "%s %%", html_get(s, 0, "mismatch_pct"));
    html_total_row(pg, "mismatch share", buf,
                   "with differences / compared");
    html_total_row(pg, "differences", html_get(s, 0, "differences"),
                   "field-level differences of those pairs");
    html_total_row(pg, "equal", html_get(s, 0, "equal"), "");
    html_total_row(pg, "unparseable", html_get(s, 0, "unparseable"),
                   "a body could not be parsed");
    html_total_row(pg, "shadow_failed", html_get(s, 0, "shadow_failed"),
                   "records whose replay got no answer");
    html_total_row(pg, "primary_refused", html_get(s, 0, "primary_refused"),
                   "writes the primary refused (4xx), not replayed");
    html_total_row(pg, "indeterminate", html_get(s, 0, "indeterminate"),
                   "writes of unknown outcome on the primary, left to "
                   "reconciliation (cutover-report indeterminate)");
    if (pg->has_rules) {
        snprintf(buf, sizeof(buf), "%d", html_count_ignores(pg));
        html_total_row(pg, "learned noise", buf,
                       "paths ignored as noise by the rules in force "
                       "(below)");
    } else {
        html_total_row(pg, "learned noise", "\xe2\x80\x94",
                       "give --rules to show the rules in force");
    }
    html_total_row(pg, "dropped", "\xe2\x80\x94",
                   "not in the result store: records the gateway could not "
                   "log are cutover_records_dropped_total on its /metrics");
    fputs("</tbody>\n</table></div>\n", pg->out);
    if (PQntuples(s) == 1 && html_num(s, 0, "pairs") > 0) {
        fputs("<p>Results from <time>", pg->out);
        html_value(pg, s, 0, "first_at");
        fputs("</time> to <time>", pg->out);
        html_value(pg, s, 0, "last_at");
        fputs("</time>.</p>\n", pg->out);
    }
    fputs("</section>\n", pg->out);
}


static void
html_chart_axes(html_page_t *pg, double ymax)
{
    char    buf[32];
    double  y;
    int     i, b;

    for (i = 0; i <= 4; i++) {
        y = 12 + 212 - 212.0 * i / 4;
        fprintf(pg->out, "<line class=\"grid\" x1=\"48\" x2=\"708\" "
                "y1=\"%.1f\" y2=\"%.1f\"/><text class=\"tick\" x=\"44\" "
                "y=\"%.1f\" text-anchor=\"end\">%g %%</text>\n", y, y, y + 4,
                ymax * i / 4);
    }
    for (i = 0; i < 3; i++) {
        b = i == 0 ? 0 : (i == 1 ? (pg->nbins - 1) / 2 : pg->nbins - 1);
        if (i > 0 && (b == 0 || (i == 1 && b == pg->nbins - 1))) {
            continue;
        }
        html_bin_text(pg, b, i > 0, buf, sizeof(buf));
        fprintf(pg->out, "<text class=\"tick\" x=\"%.1f\" y=\"248\" "
                "text-anchor=\"%s\">%s</text>\n",
                pg->nbins > 1 ? 48 + 660.0 * b / (pg->nbins - 1) : 378.0,
                pg->nbins == 1 ? "middle"
                : (i == 0 ? "start" : (i == 2 ? "end" : "middle")),
                buf);
    }
}


/* A marker shape per route, so the lines stay apart in greyscale. */
static void
html_marker(html_page_t *pg, int r, double x, double y)
{
    switch (r % 4) {
    case 0:
        fprintf(pg->out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"", x, y);
        break;
    case 1:
        fprintf(pg->out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" "
                "height=\"7\"", x - 3.5, y - 3.5);
        break;
    case 2:
        fprintf(pg->out, "<path d=\"M%.1f %.1fl4 7h-8z\"", x, y - 4.5);
        break;
    default:
        fprintf(pg->out, "<path d=\"M%.1f %.1fl4 4.5-4 4.5-4-4.5z\"", x,
                y - 4.5);
    }
}


static void
html_chart_route(html_page_t *pg, int r, const long long *cmp,
    const long long *mis, double ymax)
{
    PGresult  *routes = pg->res[HTML_ROUTES];
    double     x, y, pct;
    int        b;

    fprintf(pg->out, "<g class=\"route\" data-route=\"");
    html_value(pg, routes, r, "route");
    fprintf(pg->out, "\" stroke=\"%s\" fill=\"%s\">\n<polyline "
            "fill=\"none\" stroke-width=\"2\" stroke-dasharray=\"%s\" "
            "points=\"", html_palette[r % 8], html_palette[r % 8],
            html_dashes[r % 8]);
    for (b = 0; b < pg->nbins; b++) {
        if (cmp[b] == 0) {
            continue;
        }
        pct = 100.0 * mis[b] / cmp[b];
        x = pg->nbins > 1 ? 48 + 660.0 * b / (pg->nbins - 1) : 378.0;
        y = 224 - 212.0 * pct / ymax;
        fprintf(pg->out, "%.1f,%.1f ", x, y);
    }
    fputs("\"/>\n", pg->out);
    for (b = 0; b < pg->nbins; b++) {
        if (cmp[b] == 0) {
            continue;
        }
        pct = 100.0 * mis[b] / cmp[b];
        x = pg->nbins > 1 ? 48 + 660.0 * b / (pg->nbins - 1) : 378.0;
        html_marker(pg, r, x, 224 - 212.0 * pct / ymax);
        fputs("><title>", pg->out);
        html_value(pg, routes, r, "route");
        fprintf(pg->out, ": %.2f %% (%lld of %lld)</title></%s>\n", pct,
                mis[b], cmp[b],
                r % 4 == 0 ? "circle" : (r % 4 == 1 ? "rect" : "path"));
    }
    fputs("</g>\n", pg->out);
}


static void
html_chart_legend(html_page_t *pg, int nroutes)
{
    int  r;

    fputs("<ul class=\"legend\">\n", pg->out);
    for (r = 0; r < nroutes; r++) {
        fputs("<li data-route=\"", pg->out);
        html_value(pg, pg->res[HTML_ROUTES], r, "route");
        fprintf(pg->out, "\"><svg width=\"36\" height=\"12\" "
                "aria-hidden=\"true\"><g stroke=\"%s\" fill=\"%s\">"
                "<line x1=\"0\" x2=\"36\" y1=\"6\" y2=\"6\" "
                "stroke-width=\"2\" stroke-dasharray=\"%s\"/>",
                html_palette[r % 8], html_palette[r % 8], html_dashes[r % 8]);
        html_marker(pg, r, 18, 6);
        fputs("/></g></svg> <code>", pg->out);
        html_value(pg, pg->res[HTML_ROUTES], r, "route");
        fputs("</code></li>\n", pg->out);
    }
    fputs("</ul>\n", pg->out);
}


static void
html_chart_data(html_page_t *pg, int nroutes, const long long *cmp,
    const long long *mis)
{
    char  buf[32];
    int   r, b;

    fputs("<details class=\"chart-data\"><summary>The chart's figures"
          "</summary>\n<div class=\"scroll\"><table>\n<thead><tr>"
          "<th scope=\"col\">Route</th><th scope=\"col\">From</th>"
          "<th scope=\"col\">Compared</th><th scope=\"col\">With "
          "differences</th><th scope=\"col\">Share</th></tr></thead>\n"
          "<tbody>\n", pg->out);
    for (r = 0; r < nroutes; r++) {
        for (b = 0; b < pg->nbins; b++) {
            if (cmp[r * pg->nbins + b] == 0) {
                continue;
            }
            fputs("<tr data-route=\"", pg->out);
            html_value(pg, pg->res[HTML_ROUTES], r, "route");
            fputs("\"><th scope=\"row\"><code>", pg->out);
            html_value(pg, pg->res[HTML_ROUTES], r, "route");
            html_bin_text(pg, b, 0, buf, sizeof(buf));
            fprintf(pg->out, "</code></th><td>%s</td><td class=\"num\">%lld"
                    "</td><td class=\"num\">%lld</td><td class=\"num\">"
                    "%.2f %%</td></tr>\n", buf, cmp[r * pg->nbins + b],
                    mis[r * pg->nbins + b],
                    100.0 * mis[r * pg->nbins + b] / cmp[r * pg->nbins + b]);
        }
    }
    fputs("</tbody>\n</table></div></details>\n", pg->out);
}


static void
html_chart(html_page_t *pg)
{
    PGresult   *rh = pg->res[HTML_ROUTE_TREND];
    char        step[32];
    PGresult   *routes = pg->res[HTML_ROUTES];
    long long  *cmp, *mis;
    double      ymax = 0, pct;
    int         nroutes, r, i, b;
    static const double  nice[] = { 1, 2, 4, 8, 10, 20, 40, 60, 80, 100 };

    nroutes = PQntuples(routes);
    nroutes = nroutes > COMPARE_HTML_ROUTES_DRAWN ? COMPARE_HTML_ROUTES_DRAWN
                                                  : nroutes;
    cmp = calloc((size_t) (nroutes * pg->nbins) + 1, sizeof(long long));
    mis = calloc((size_t) (nroutes * pg->nbins) + 1, sizeof(long long));
    if (cmp == NULL || mis == NULL) {
        free(cmp);
        free(mis);
        return;
    }
    for (i = 0; i < PQntuples(rh); i++) {
        for (r = 0; r < nroutes; r++) {
            if (strcmp(html_get(rh, i, "route"),
                       html_get(routes, r, "route")) == 0)
            {
                b = r * pg->nbins + html_bin(pg, html_get(rh, i, "at"));
                cmp[b] += html_num(rh, i, "compared");
                mis[b] += html_num(rh, i, "mismatches");
                break;
            }
        }
    }
    for (b = 0; b < nroutes * pg->nbins; b++) {
        pct = cmp[b] ? 100.0 * mis[b] / cmp[b] : 0;
        ymax = pct > ymax ? pct : ymax;
    }
    for (i = 0; i < 9 && nice[i] < ymax; i++) { /* void */ }
    ymax = nice[i];

    html_step_text(pg, step, sizeof(step));
    fprintf(pg->out, "<section id=\"trend\" aria-labelledby=\"trend-h\">\n"
            "<h2 id=\"trend-h\">Mismatch share over time, per route</h2>\n"
            "<p>Pairs with differences among the pairs compared, per %s; "
            "the %d routes with most differences.</p>\n"
            "<figure>\n<svg class=\"chart\" viewBox=\"0 0 %d %d\" "
            "role=\"img\" aria-labelledby=\"trend-t\">\n<title "
            "id=\"trend-t\">Mismatch share per route over time</title>\n",
            step, nroutes, HTML_CHART_W, HTML_CHART_H);
    html_chart_axes(pg, ymax);
    for (r = 0; r < nroutes; r++) {
        html_chart_route(pg, r, cmp + r * pg->nbins, mis + r * pg->nbins,
                         ymax);
    }
    fputs("</svg>\n<figcaption>", pg->out);
    html_chart_legend(pg, nroutes);
    fputs("</figcaption>\n</figure>\n", pg->out);
    html_chart_data(pg, nroutes, cmp, mis);
    fputs("</section>\n", pg->out);
    free(cmp);
    free(mis);
}


static void
html_routes(html_page_t *pg)
{
    PGresult  *res = pg->res[HTML_ROUTES];
    int        r;

    fputs("<section id=\"routes\" aria-labelledby=\"routes-h\">\n"
          "<h2 id=\"routes-h\">Routes</h2>\n<div class=\"scroll\">"
          "<table>\n<thead><tr><th scope=\"col\">Route</th>"
          "<th scope=\"col\">Pairs</th><th scope=\"col\">With differences"
          "</th><th scope=\"col\">Share</th><th scope=\"col\">Shadow failed"
          "</th></tr></thead>\n<tbody>\n", pg->out);
    for (r = 0; r < PQntuples(res); r++) {
        fputs("<tr data-route=\"", pg->out);
        html_value(pg, res, r, "route");
        fputs("\"><th scope=\"row\"><a class=\"pick\" href=\"#fields\" "
              "title=\"this route's fields\"><code>", pg->out);
        html_value(pg, res, r, "route");
        fputs("</code></a></th><td class=\"num\">", pg->out);
        html_value(pg, res, r, "pairs");
        fputs("</td><td class=\"num\">", pg->out);
        html_value(pg, res, r, "mismatches");
        fputs("</td><td class=\"num\">", pg->out);
        html_value(pg, res, r, "mismatch_pct");
        fputs(" %</td><td class=\"num\">", pg->out);
        html_value(pg, res, r, "shadow_failed");
        fputs("</td></tr>\n", pg->out);
    }
    fputs("</tbody>\n</table></div>\n</section>\n", pg->out);
}


static int
html_same_field(PGresult *a, int i, PGresult *b, int j)
{
    return strcmp(html_get(a, i, "route"), html_get(b, j, "route")) == 0
           && strcmp(html_get(a, i, "path"), html_get(b, j, "path")) == 0
           && strcmp(html_get(a, i, "kind"), html_get(b, j, "kind")) == 0;
}


/* Differences per bin of one field, as bars; cursor walks field_trend,
 * which lists the fields in the order of the fields report. */
static void
html_sparkline(html_page_t *pg, int *cursor, int field)
{
    PGresult   *fh = pg->res[HTML_FIELD_TREND];
    long long   bins[COMPARE_HTML_BINS], max = 0;
    char        step[32];
    double      w, h;
    int         b;

    memset(bins, 0, sizeof(bins));
    while (*cursor < PQntuples(fh)
           && html_same_field(fh, *cursor, pg->res[HTML_FIELDS], field))
    {
        bins[html_bin(pg, html_get(fh, *cursor, "at"))]
            += html_num(fh, *cursor, "differences");
        (*cursor)++;
    }
    for (b = 0; b < pg->nbins; b++) {
        max = bins[b] > max ? bins[b] : max;
    }
    html_step_text(pg, step, sizeof(step));
    fprintf(pg->out, "<svg class=\"spark\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"differences "
            "per %s:", HTML_SPARK_W, HTML_SPARK_H, HTML_SPARK_W,
            HTML_SPARK_H, step);
    for (b = 0; b < pg->nbins; b++) {
        fprintf(pg->out, " %lld", bins[b]);
    }
    fputs("\">", pg->out);
    w = (double) HTML_SPARK_W / (pg->nbins ? pg->nbins : 1);
    for (b = 0; b < pg->nbins && max > 0; b++) {
        h = bins[b] ? 1 + (HTML_SPARK_H - 2.0) * bins[b] / max : 0;
        if (h > 0) {
            fprintf(pg->out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\"/>", b * w, HTML_SPARK_H - h,
                    w > 2 ? w - 1 : w, h);
        }
    }
    fputs("</svg>", pg->out);
}


static void
html_fields(html_page_t *pg)
{
    PGresult  *res = pg->res[HTML_FIELDS];
    int        r, cursor = 0;

    fputs("<section id=\"fields\" aria-labelledby=\"fields-h\">\n"
          "<h2 id=\"fields-h\">Routes \xc3\x97 fields</h2>\n", pg->out);
    fprintf(pg->out, "<p>The %d field%s with most differences%s; "
            "the first %d have sample pairs.</p>\n", PQntuples(res),
            PQntuples(res) == 1 ? "" : "s",
            PQntuples(res) == COMPARE_HTML_FIELDS
            ? " (the list stops there)" : "", COMPARE_HTML_SAMPLE_FIELDS);
    fputs("<div class=\"scroll\"><table>\n<thead><tr>"
          "<th scope=\"col\">Route</th><th scope=\"col\">Field</th>"
          "<th scope=\"col\">Kind</th><th scope=\"col\">Differences</th>"
          "<th scope=\"col\">Pairs</th><th scope=\"col\">Over time</th>"
          "<th scope=\"col\">Samples</th></tr></thead>\n<tbody>\n", pg->out);
    for (r = 0; r < PQntuples(res); r++) {
        fprintf(pg->out, "<tr id=\"field-%d\" data-route=\"", r);
        html_value(pg, res, r, "route");
        fputs("\"><td><code>", pg->out);
        html_value(pg, res, r, "route");
        fputs("</code></td><th scope=\"row\"><code>", pg->out);
        html_value(pg, res, r, "path");
        fputs("</code></th><td>", pg->out);
        html_value(pg, res, r, "kind");
        fputs("</td><td class=\"num\">", pg->out);
        html_value(pg, res, r, "differences");
        fputs("</td><td class=\"num\">", pg->out);
        html_value(pg, res, r, "pairs");
        fputs("</td><td>", pg->out);
        html_sparkline(pg, &cursor, r);
        if (r < COMPARE_HTML_SAMPLE_FIELDS) {
            fprintf(pg->out, "</td><td><a class=\"drill\" href=\"#f-%d\">"
                    "samples</a></td></tr>\n", r);
        } else {
            fputs("</td><td></td></tr>\n", pg->out);
        }
    }
    fputs("</tbody>\n</table></div>\n</section>\n", pg->out);
}


static void
html_heat_cell(html_page_t *pg, const char *store, const char *channel,
    long long max)
{
    PGresult   *sc = pg->res[HTML_STORE_CHANNELS];
    long long   n = 0;
    int         i, level;

    for (i = 0; i < PQntuples(sc); i++) {
        if (strcmp(html_get(sc, i, "store"), store) == 0
            && strcmp(html_get(sc, i, "channel"), channel) == 0)
        {
            n = html_num(sc, i, "mismatches");
            break;
        }
    }
    /* none, then four steps of lightness up to the largest count; the
     * number is printed in every cell */
    level = n <= 0 ? 0 : (max <= 1 ? 4
                          : (int) (1 + 3 * (n - 1) / (max - 1)));
    fprintf(pg->out, "<td class=\"num heat%d\" data-channel=\"", level);
    html_puts(pg, channel);
    fprintf(pg->out, "\">%lld</td>", n);
}


static void
html_heat(html_page_t *pg)
{
    PGresult   *st = pg->res[HTML_STORES], *ch = pg->res[HTML_CHANNELS];
    PGresult   *sc = pg->res[HTML_STORE_CHANNELS];
    long long   max = 0;
    int         s, c;

    for (s = 0; s < PQntuples(sc); s++) {
        max = html_num(sc, s, "mismatches") > max
              ? html_num(sc, s, "mismatches") : max;
    }
    fprintf(pg->out, "<section id=\"stores\" aria-labelledby=\"stores-h\">\n"
            "<h2 id=\"stores-h\">Stores and channels with most differences"
            "</h2>\n<p>Pairs with differences per store and channel: the %d "
            "stores with most; darker cells hold more.</p>\n"
            "<div class=\"scroll\"><table class=\"heat\">\n<thead><tr>"
            "<th scope=\"col\">Store</th>", PQntuples(st));
    for (c = 0; c < PQntuples(ch); c++) {
        fputs("<th scope=\"col\" data-channel=\"", pg->out);
        html_value(pg, ch, c, "channel");
        fputs("\">", pg->out);
        html_value(pg, ch, c, "channel");
        fputs("</th>", pg->out);
    }
    fputs("<th scope=\"col\">All channels</th><th scope=\"col\">Share</th>"
          "</tr></thead>\n<tbody>\n", pg->out);
    for (s = 0; s < PQntuples(st); s++) {
        fputs("<tr data-store=\"", pg->out);
        html_value(pg, st, s, "store");
        fputs("\"><th scope=\"row\">", pg->out);
        html_value(pg, st, s, "store");
        fputs("</th>", pg->out);
        for (c = 0; c < PQntuples(ch); c++) {
            html_heat_cell(pg, html_get(st, s, "store"),
                           html_get(ch, c, "channel"), max);
        }
        fputs("<td class=\"num\">", pg->out);
        html_value(pg, st, s, "mismatches");
        fputs("</td><td class=\"num\">", pg->out);
        html_value(pg, st, s, "mismatch_pct");
        fputs(" %</td></tr>\n", pg->out);
    }
    fputs("</tbody>\n<tfoot><tr><th scope=\"row\">All stores</th>", pg->out);
    for (c = 0; c < PQntuples(ch); c++) {
        fputs("<td class=\"num\" data-channel=\"", pg->out);
        html_value(pg, ch, c, "channel");
        fputs("\">", pg->out);
        html_value(pg, ch, c, "mismatches");
        fputs("</td>", pg->out);
    }
    fprintf(pg->out, "<td class=\"num\">%lld</td><td></td></tr></tfoot>\n"
            "</table></div>\n</section>\n", pg->mismatches);
}


static void
html_diff_value(html_page_t *pg, PGresult *res, int row, const char *col)
{
    int          c = PQfnumber(res, col);
    const char  *v;

    if (c < 0 || PQgetisnull(res, row, c)) {
        fputs("<td class=\"absent\">(absent)</td>", pg->out);
        return;
    }
    v = PQgetvalue(res, row, c);
    if (strncmp(v, "\"hmac:", 6) == 0 || strncmp(v, "hmac:", 5) == 0) {
        fputs("<td class=\"masked\">masked <code>", pg->out);
        html_puts(pg, v);
        fputs("</code></td>", pg->out);
        return;
    }
    fputs("<td><code>", pg->out);
    html_puts(pg, v);
    fputs("</code></td>", pg->out);
}


/* One sample pair from its first row in field_samples; returns the row
 * after it. */
static int
html_sample_pair(html_page_t *pg, int row)
{
    PGresult    *res = pg->res[HTML_FIELD_SAMPLES];
    const char  *id = html_get(res, row, "record_id");
    const char  *served = html_get(res, row, "side_served");
    int          shown = 0;

    fputs("<div class=\"pair\" data-route=\"", pg->out);
    html_value(pg, res, row, "route");
    fputs("\" data-store=\"", pg->out);
    html_value(pg, res, row, "store");
    fputs("\" data-channel=\"", pg->out);
    html_value(pg, res, row, "channel");
    fputs("\">\n<table class=\"sides\">\n<caption>Record <code>", pg->out);
    html_puts(pg, id);
    fputs("</code> at <time>", pg->out);
    html_value(pg, res, row, "at");
    fputs("</time>, store ", pg->out);
    html_value(pg, res, row, "store");
    fputs(", channel ", pg->out);
    html_value(pg, res, row, "channel");
    fputs(": ", pg->out);
    html_value(pg, res, row, "verdict");
    fputs("</caption>\n<thead><tr><th scope=\"col\">Path</th>"
          "<th scope=\"col\">Kind</th><th scope=\"col\">Primary: ", pg->out);
    html_puts(pg, served);
    fputs(" (", pg->out);
    html_value(pg, res, row, "primary_status");
    fprintf(pg->out, ")</th><th scope=\"col\">Shadow: %s (",
            strcmp(served, "new") == 0 ? "legacy" : "new");
    html_value(pg, res, row, "shadow_status");
    fputs(")</th></tr></thead>\n<tbody>\n", pg->out);
    for (; row < PQntuples(res)
           && strcmp(html_get(res, row, "record_id"), id) == 0; row++)
    {
        fprintf(pg->out, "<tr%s><th scope=\"row\"><code>",
                html_get(res, row, "hit")[0] == 't' ? " class=\"hit\"" : "");
        if (html_get(res, row, "hit")[0] == 't') {
            fputs("<mark>", pg->out);
            html_value(pg, res, row, "diff_path");
            fputs("</mark>", pg->out);
        } else {
            html_value(pg, res, row, "diff_path");
        }
        fputs("</code></th><td>", pg->out);
        html_value(pg, res, row, "diff_kind");
        fputs("</td>", pg->out);
        html_diff_value(pg, res, row, "a");
        html_diff_value(pg, res, row, "b");
        fputs("</tr>\n", pg->out);
        if (html_get(res, row, "cut")[0] == 't') {
            fputs("<tr><td colspan=\"4\" class=\"note\">values cut at "
                  COMPARE_SAMPLE_VALUE " characters</td></tr>\n", pg->out);
        }
        shown++;
    }
    if (html_num(res, row - 1, "ndiffs") > shown) {
        fprintf(pg->out, "<tr><td colspan=\"4\" class=\"note\">%lld more "
                "differences in this pair (cutover-report export)</td>"
                "</tr>\n", html_num(res, row - 1, "ndiffs") - shown);
    }
    fputs("</tbody>\n</table>\n</div>\n", pg->out);
    return row;
}


static void
html_samples(html_page_t *pg)
{
    PGresult  *res = pg->res[HTML_FIELD_SAMPLES];
    PGresult  *fields = pg->res[HTML_FIELDS];
    int        row = 0, f = 0, start, npairs;

    fputs("<section id=\"samples\" aria-labelledby=\"samples-h\">\n"
          "<h2 id=\"samples-h\">Sample pairs by field</h2>\n<p>For each of "
          "the first fields, its latest pairs (at most "
          COMPARE_SAMPLES_PER_FIELD " per field, each with at most "
          COMPARE_SAMPLE_DIFFS " differences): what each side answered at "
          "the paths that differ, the field itself marked. Masked values "
          "appear only as their HMAC.</p>\n", pg->out);
    while (row < PQntuples(res)) {
        while (f < PQntuples(fields) && !html_same_field(fields, f, res, row))
        {
            f++;
        }
        fprintf(pg->out, "<details class=\"field\" id=\"f-%d\" "
                "data-route=\"", f);
        html_value(pg, res, row, "route");
        fputs("\">\n<summary><h3><code>", pg->out);
        html_value(pg, res, row, "route");
        fputs("</code> <code>", pg->out);
        html_value(pg, res, row, "path");
        fputs("</code> (", pg->out);
        html_value(pg, res, row, "kind");
        fputs(")</h3> ", pg->out);
        for (start = row, npairs = 0; start < PQntuples(res)
             && html_same_field(res, start, res, row); start++)
        {
            if (start == row
                || strcmp(html_get(res, start, "record_id"),
                          html_get(res, start - 1, "record_id")) != 0)
            {
                npairs++;
            }
        }
        fprintf(pg->out, "<span class=\"note\">%d of %s pairs shown"
                "</span></summary>\n", npairs, html_get(fields, f, "pairs"));
        while (row < start) {
            row = html_sample_pair(pg, row);
        }
        fputs("</details>\n", pg->out);
        f++;
    }
    fputs("</section>\n", pg->out);
}


static void
html_bson_value(html_page_t *pg, const bson_iter_t *it)
{
    bson_iter_t         child;
    bson_decimal128_t   dec;
    char                buf[BSON_DECIMAL128_STRING];
    uint32_t            len;
    const char         *s;
    int                 first = 1, arr;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &len);
        fputs("\"", pg->out);
        compare_html_text(pg->out, s, len);
        fputs("\"", pg->out);
        break;
    case BSON_TYPE_INT32:
        fprintf(pg->out, "%d", bson_iter_int32(it));
        break;
    case BSON_TYPE_INT64:
        fprintf(pg->out, "%lld", (long long) bson_iter_int64(it));
        break;
    case BSON_TYPE_DOUBLE:
        fprintf(pg->out, "%g", bson_iter_double(it));
        break;
    case BSON_TYPE_DECIMAL128:
        bson_iter_decimal128(it, &dec);
        bson_decimal128_to_string(&dec, buf);
        fputs(buf, pg->out);
        break;
    case BSON_TYPE_BOOL:
        fputs(bson_iter_bool(it) ? "true" : "false", pg->out);
        break;
    case BSON_TYPE_ARRAY:
    case BSON_TYPE_DOCUMENT:
        arr = bson_iter_type(it) == BSON_TYPE_ARRAY;
        fputs(arr ? "[" : "{", pg->out);
        if (bson_iter_recurse(it, &child)) {
            while (bson_iter_next(&child)) {
                fputs(first ? "" : ", ", pg->out);
                first = 0;
                if (!arr) {
                    fputs("\"", pg->out);
                    html_puts(pg, bson_iter_key(&child));
                    fputs("\": ", pg->out);
                }
                html_bson_value(pg, &child);
            }
        }
        fputs(arr ? "]" : "}", pg->out);
        break;
    default:
        fputs("null", pg->out);
    }
}


/* The rules file cutover-shadowd was given, checked as it would load it. */
static int
html_rules_load(html_page_t *pg, compare_error_t *err)
{
    compare_rules_t  *rules;
    FILE             *f;
    char             *text;
    size_t            n;

    if (pg->opts->rules_path == NULL) {
        return COMPARE_OK;
    }
    rules = compare_rules_load(pg->opts->rules_path, err);
    if (rules == NULL) {
        return COMPARE_ERROR;
    }
    compare_rules_free(rules);
    text = malloc(HTML_RULES_MAX);
    f = fopen(pg->opts->rules_path, "rb");
    n = f && text ? fread(text, 1, HTML_RULES_MAX, f) : 0;
    if (f) {
        fclose(f);
    }
    if (text == NULL || n == 0 || n == HTML_RULES_MAX
        || compare_json_parse((uint8_t *) text, n, &pg->rules, err)
           != COMPARE_PARSE_OK)
    {
        free(text);
        err->code = COMPARE_ERROR;
        snprintf(err->message, sizeof(err->message), "rules: cannot read "
                 "%.200s", pg->opts->rules_path);
        return COMPARE_ERROR;
    }
    free(text);
    pg->has_rules = 1;
    return COMPARE_OK;
}


static void
html_rule_row(html_page_t *pg, const bson_iter_t *route,
    const bson_iter_t *rule)
{
    bson_iter_t  m;

    fputs("<tr><td><code>", pg->out);
    if (bson_iter_recurse(route, &m) && bson_iter_find(&m, "match")
        && BSON_ITER_HOLDS_UTF8(&m))
    {
        html_puts(pg, bson_iter_utf8(&m, NULL));
    }
    fputs("</code></td><th scope=\"row\">", pg->out);
    html_puts(pg, bson_iter_key(rule));
    fputs("</th><td><code>", pg->out);
    html_bson_value(pg, rule);
    fputs("</code></td></tr>\n", pg->out);
}


/* The paths the rules file ignores, over all its routes. */
static int
html_count_ignores(html_page_t *pg)
{
    bson_iter_t  it, routes, route, r, m;
    int          n = 0;

    if (bson_iter_init_find(&it, &pg->rules, "$")
        && bson_iter_recurse(&it, &routes)
        && bson_iter_find(&routes, "routes")
        && bson_iter_recurse(&routes, &route))
    {
        while (bson_iter_next(&route)) {
            if (bson_iter_recurse(&route, &r) && bson_iter_find(&r, "ignore")
                && bson_iter_recurse(&r, &m))
            {
                while (bson_iter_next(&m)) {
                    n++;
                }
            }
        }
    }
    return n;
}


/* The rules in force and the paths ignored as noise; the mask key is
 * never shown. */
static void
html_rules(html_page_t *pg)
{
    bson_iter_t  it, routes, route, r;
    int          nroutes = 0;

    fputs("<section id=\"rules\" aria-labelledby=\"rules-h\">\n"
          "<h2 id=\"rules-h\">Learned noise and the rules in force</h2>\n",
          pg->out);
    if (!pg->has_rules) {
        fputs("<p>No rules file was given (<code>--rules</code>): the "
              "page cannot say which rules were in force.</p>\n"
              "</section>\n", pg->out);
        return;
    }
    fputs("<div class=\"scroll\"><table>\n<thead><tr><th scope=\"col\">"
          "Route</th><th scope=\"col\">Rule</th><th scope=\"col\">Value"
          "</th></tr></thead>\n<tbody>\n", pg->out);
    if (bson_iter_init_find(&it, &pg->rules, "$")
        && bson_iter_recurse(&it, &routes)
        && bson_iter_find(&routes, "routes")
        && bson_iter_recurse(&routes, &route))
    {
        while (bson_iter_next(&route)) {
            if (!bson_iter_recurse(&route, &r)) {
                continue;
            }
            nroutes++;
            while (bson_iter_next(&r)) {
                if (strcmp(bson_iter_key(&r), "match") == 0) {
                    continue;
                }
                html_rule_row(pg, &route, &r);
            }
        }
    }
    fprintf(pg->out, "</tbody>\n</table></div>\n<p id=\"noise\">%d paths "
            "ignored as noise (learned with <code>cutover-compare learn"
            "</code> or written by hand) over %d routes, from <code>",
            html_count_ignores(pg), nroutes);
    html_puts(pg, pg->opts->rules_path);
    fputs("</code>.</p>\n</section>\n", pg->out);
}


static void
html_ledgers(html_page_t *pg)
{
    PGresult  *res = pg->res[HTML_LEDGERS];
    int        r, c;

    fputs("<section id=\"ledgers\" aria-labelledby=\"ledgers-h\">\n"
          "<h2 id=\"ledgers-h\">Ledger reconciliation</h2>\n", pg->out);
    if (res == NULL || PQntuples(res) == 0) {
        fputs("<p>No reconciliation yet: the result store holds no run of "
              "<code>cutover-reconcile --results</code>.</p>\n</section>\n",
              pg->out);
        return;
    }
    fputs("<div class=\"scroll\"><table>\n<thead><tr>", pg->out);
    for (c = 0; c < PQnfields(res); c++) {
        fputs("<th scope=\"col\">", pg->out);
        html_puts(pg, PQfname(res, c));
        fputs("</th>", pg->out);
    }
    fputs("</tr></thead>\n<tbody>\n", pg->out);
    for (r = 0; r < PQntuples(res); r++) {
        fputs("<tr>", pg->out);
        for (c = 0; c < PQnfields(res); c++) {
            fputs("<td>", pg->out);
            html_puts(pg, PQgetvalue(res, r, c));
            fputs("</td>", pg->out);
        }
        fputs("</tr>\n", pg->out);
    }
    fputs("</tbody>\n</table></div>\n</section>\n", pg->out);
}


int
compare_html_report(FILE *out, PGconn *conn,
    const compare_html_opts_t *opts, long long *mismatches,
    compare_error_t *err)
{
    html_page_t  pg;
    int          i, rc = COMPARE_ERROR;

    memset(&pg, 0, sizeof(pg));
    pg.out = out;
    pg.opts = opts;
    *mismatches = compare_report_mismatches(conn, opts->since, opts->until,
                                            err);
    if (*mismatches < 0 || html_rules_load(&pg, err) != COMPARE_OK
        || html_query_all(&pg, conn, err) != COMPARE_OK)
    {
        goto cleanup;
    }
    pg.mismatches = *mismatches;
    html_bins(&pg);
    html_head(&pg);
    html_header(&pg);
    if (PQntuples(pg.res[HTML_SUMMARY]) != 1
        || html_num(pg.res[HTML_SUMMARY], 0, "pairs") == 0)
    {
        fputs("<section id=\"empty\" aria-labelledby=\"empty-h\">\n"
              "<h2 id=\"empty-h\">Nothing to show</h2>\n<p>The result store "
              "holds no result in this window.</p>\n</section>\n", out);
    } else {
        html_totals(&pg);
        html_chart(&pg);
        html_routes(&pg);
        html_fields(&pg);
        html_heat(&pg);
        html_samples(&pg);
    }
    html_rules(&pg);
    html_ledgers(&pg);
    fprintf(out, "</main>\n<footer><p>Made by cutover-report from the "
            "comparison result store; the same figures as "
            "<code>cutover-report --format json</code> for this window."
            "</p></footer>\n<script>%s</script>\n</body>\n</html>\n",
            compare_html_js);
    rc = COMPARE_OK;
cleanup:
    for (i = 0; i < HTML_NRESULTS; i++) {
        PQclear(pg.res[i]);
    }
    if (pg.has_rules) {
        bson_destroy(&pg.rules);
    }
    return rc;
}


static void
html_fail(compare_error_t *err, const char *what, const char *name,
    int errnum)
{
    err->code = COMPARE_ERROR;
    snprintf(err->message, sizeof(err->message), "%s%s%.200s: %s", what,
             name[0] ? " " : "", name, strerror(errnum));
}


static int
html_write_all(int fd, const char *buf, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        buf += n;
        len -= (size_t) n;
    }
    return 0;
}

int
compare_html_save(PGconn *conn, const compare_html_opts_t *opts,
    const char *path, long long *mismatches, compare_error_t *err)
{
    FILE    *mem;
    char    *page = NULL, *tmp = NULL;
    size_t   len = 0;
    int      fd = -1, rc = COMPARE_ERROR;

    mem = open_memstream(&page, &len);
    if (mem == NULL) {
        html_fail(err, "out of memory", "", errno);
        return COMPARE_ERROR;
    }
    if (compare_html_report(mem, conn, opts, mismatches, err) != COMPARE_OK) {
        fclose(mem);
        goto cleanup;
    }
    if (fclose(mem) != 0) {
        html_fail(err, "out of memory", "", errno);
        goto cleanup;
    }
    if (path == NULL) {
        if (fwrite(page, 1, len, stdout) != len || fflush(stdout) != 0) {
            html_fail(err, "cannot write", "standard output", errno);
            goto cleanup;
        }
        rc = COMPARE_OK;
        goto cleanup;
    }
    /* a temporary name beside the file, renamed over it once whole */
    if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
        tmp = NULL;
        html_fail(err, "out of memory", "", errno);
        goto cleanup;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        html_fail(err, "cannot write", path, errno);
        free(tmp);
        tmp = NULL;
        goto cleanup;
    }
    if (html_write_all(fd, page, len) != 0 || fchmod(fd, 0644) != 0
        || fsync(fd) != 0)
    {
        html_fail(err, "cannot write", path, errno);
        goto cleanup;
    }
    if (close(fd) != 0) {
        fd = -1;
        html_fail(err, "cannot write", path, errno);
        goto cleanup;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        html_fail(err, "cannot write", path, errno);
        goto cleanup;
    }
    free(tmp);
    tmp = NULL;
    rc = COMPARE_OK;
cleanup:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    free(page);
    return rc;
}
