/*
 * cutover-report: what analysts read from the result store: mismatch rate
 * by route, store, channel and field, with counts and sample record ids.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/cutover_json.h"
#include "compare/compare.h"
#include "compare/compare_html.h"
#include "compare/compare_report.h"
#include "compare/compare_store.h"
#include "compare/reconcile_report.h"

#define REPORT_LEDGERS  1000    /* cutover-reconcile's runs */

static const char *usage =
    "usage: cutover-report --db CONNINFO [--since TIME] [--until TIME]\n"
    "                      [--format text|csv|json] [--limit N]\n"
    "                      [--init-schema] REPORT\n"
    "       cutover-report --db CONNINFO --format html [--out FILE]\n"
    "                      [--rules FILE] [--since TIME] [--until TIME]\n"
    "\n"
    "REPORT: summary | routes | stores | channels | fields | hours | samples\n"
    "        | export | indeterminate (writes of unknown outcome on the\n"
    "        primary, not replayed: for reconciliation) | route_trend\n"
    "        | store_channels | field_trend | field_samples (the figures of\n"
    "        the HTML page) | ledgers (the latest cutover-reconcile run of\n"
    "        each ledger and its differences)\n"
    "html: one self-contained page with every report, to FILE (written\n"
    "      whole or not at all) or standard output; --rules shows the rules\n"
    "      in force.\n"
    "TIME: RFC 3339 (2026-11-21T10:00:00Z) or an age: 90s, 15m, 2h, 7d.\n"
    "Exit 0 no differences in the window, 1 differences found, 2 error.\n";

typedef enum {
    REPORT_TEXT, REPORT_CSV, REPORT_JSON, REPORT_HTML
} report_format_t;

typedef struct {
    const char       *db;
    const char       *since;
    const char       *until;
    char              since_buf[64];
    char              until_buf[64];
    report_format_t   fmt;
    long              limit;
    int               init;
    int               kind;
    const char       *out;
    const char       *rules;
} report_args_t;


static int report_numeric(Oid type);
static void report_csv_field(const char *s);
static void report_print_json(PGresult *res);
static void report_print_csv(PGresult *res);
static void report_print_text(PGresult *res);
static void report_print(PGresult *res, report_format_t fmt);
static int report_args(int argc, char **argv, report_args_t *args);
static int report_html(PGconn *conn, report_args_t *args);


static int
report_numeric(Oid type)
{
    /* int8, int2, int4, float4, float8, numeric */
    return type == 20 || type == 21 || type == 23 || type == 700
           || type == 701 || type == 1700;
}


static void
report_csv_field(const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') {
            putchar('"');
        }
        putchar(*s);
    }
    putchar('"');
}


static void
report_print_json(PGresult *res)
{
    int  r, c, nr = PQntuples(res), nc = PQnfields(res);

    printf("[");
    for (r = 0; r < nr; r++) {
        printf("%s\n {", r ? "," : "");
        for (c = 0; c < nc; c++) {
            printf("%s", c ? ", " : "");
            cutover_json_fprint(stdout, PQfname(res, c));
            printf(": ");
            if (PQgetisnull(res, r, c)) {
                printf("null");
            } else if (report_numeric(PQftype(res, c))
                       || PQftype(res, c) == 3802)    /* jsonb */
            {
                printf("%s", PQgetvalue(res, r, c));
            } else if (PQftype(res, c) == 16) {
                /* bool */
                printf("%s", PQgetvalue(res, r, c)[0] == 't' ? "true"
                                                             : "false");
            } else {
                cutover_json_fprint(stdout, PQgetvalue(res, r, c));
            }
        }
        printf("}");
    }
    printf("%s]\n", nr ? "\n" : "");
}


static void
report_print_csv(PGresult *res)
{
    int  r, c, nr = PQntuples(res), nc = PQnfields(res);

    for (c = 0; c < nc; c++) {
        printf("%s", c ? "," : "");
        report_csv_field(PQfname(res, c));
    }
    printf("\n");
    for (r = 0; r < nr; r++) {
        for (c = 0; c < nc; c++) {
            printf("%s", c ? "," : "");
            report_csv_field(PQgetvalue(res, r, c));
        }
        printf("\n");
    }
}


/* Aligned columns, long values cut at 60 characters. */
static void
report_print_text(PGresult *res)
{
    int   r, c, nr = PQntuples(res), nc = PQnfields(res), l;
    int  *w;

    w = calloc((size_t) nc + 1, sizeof(int));
    if (w == NULL) {
        return;
    }
    for (c = 0; c < nc; c++) {
        w[c] = (int) strlen(PQfname(res, c));
        for (r = 0; r < nr; r++) {
            l = PQgetlength(res, r, c);
            w[c] = l > w[c] ? (l > 60 ? 60 : l) : w[c];
        }
    }
    for (c = 0; c < nc; c++) {
        printf("%s%-*s", c ? "  " : "", w[c], PQfname(res, c));
    }
    printf("\n");
    for (r = 0; r < nr; r++) {
        for (c = 0; c < nc; c++) {
            printf(report_numeric(PQftype(res, c)) ? "%s%*.*s" : "%s%-*.*s",
                   c ? "  " : "", w[c], w[c], PQgetvalue(res, r, c));
        }
        printf("\n");
    }
    free(w);
}


static void
report_print(PGresult *res, report_format_t fmt)
{
    switch (fmt) {
    case REPORT_JSON:
        report_print_json(res);
        break;
    case REPORT_CSV:
        report_print_csv(res);
        break;
    default:
        report_print_text(res);
    }
}


/* Options into args; -1 to go on, else the exit code. */
static int
report_args(int argc, char **argv, report_args_t *args)
{
    static const struct option opts[] = {
        { "db", required_argument, NULL, 'd' },
        { "since", required_argument, NULL, 's' },
        { "until", required_argument, NULL, 'u' },
        { "format", required_argument, NULL, 'f' },
        { "limit", required_argument, NULL, 'l' },
        { "init-schema", no_argument, NULL, 'i' },
        { "out", required_argument, NULL, 'o' },
        { "rules", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    char  *end;
    int    c;

    memset(args, 0, sizeof(*args));
    args->limit = 20;
    while ((c = getopt_long(argc, argv, "d:s:u:f:l:iho:r:", opts, NULL))
           != -1)
    {
        switch (c) {
        case 'd':
            args->db = optarg;
            break;
        case 's':
        case 'u':
            if (compare_report_time(optarg, c == 's' ? args->since_buf
                                                     : args->until_buf,
                                    sizeof(args->since_buf)) != 0)
            {
                fprintf(stderr, "cutover-report: bad --%s \"%s\"\n",
                        c == 's' ? "since" : "until", optarg);
                return 2;
            }
            if (c == 's') {
                args->since = args->since_buf;
            } else {
                args->until = args->until_buf;
            }
            break;
        case 'f':
            if (strcmp(optarg, "text") == 0) {
                args->fmt = REPORT_TEXT;
            } else if (strcmp(optarg, "csv") == 0) {
                args->fmt = REPORT_CSV;
            } else if (strcmp(optarg, "json") == 0) {
                args->fmt = REPORT_JSON;
            } else if (strcmp(optarg, "html") == 0) {
                args->fmt = REPORT_HTML;
            } else {
                fprintf(stderr,
                        "cutover-report: --format text|csv|json|html\n");
                return 2;
            }
            break;
        case 'l':
            errno = 0;
            args->limit = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || args->limit <= 0) {
                fprintf(stderr, "cutover-report: bad --limit\n");
                return 2;
            }
            break;
        case 'i':
            args->init = 1;
            break;
        case 'o':
            args->out = optarg;
            break;
        case 'r':
            args->rules = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (args->fmt == REPORT_HTML) {
        /* the page holds every report */
        if (args->db == NULL || optind != argc) {
            fputs(usage, stderr);
            return 2;
        }
        return -1;
    }
    if (args->db == NULL || optind != argc - 1 || args->out || args->rules
        || (args->kind = strcmp(argv[optind], "ledgers") == 0
                         ? REPORT_LEDGERS
                         : compare_report_kind(argv[optind])) < 0)
    {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}


/* The page to --out or standard output; the exit code. */
static int
report_html(PGconn *conn, report_args_t *args)
{
    compare_html_opts_t  opts;
    compare_error_t      err;
    char                 database[512];
    long long            mism;

    compare_html_database(conn, database, sizeof(database));
    memset(&opts, 0, sizeof(opts));
    opts.since = args->since;
    opts.until = args->until;
    opts.database = database;
    opts.rules_path = args->rules;
    opts.made_at = time(NULL);
    if (compare_html_save(conn, &opts, args->out, &mism, &err) != COMPARE_OK)
    {
        fprintf(stderr, "cutover-report: %s\n", err.message);
        return 2;
    }
    return mism > 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
    report_args_t     args;
    int               rc;
    PGconn           *conn = NULL;
    PGresult         *res = NULL;
    compare_error_t   err;
    long long         mism;

    rc = report_args(argc, argv, &args);
    if (rc >= 0) {
        return rc;
    }
    rc = 2;
    conn = PQconnectdb(args.db);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "cutover-report: database: %s",
                conn ? PQerrorMessage(conn) : "out of memory\n");
        goto cleanup;
    }
    PQsetNoticeProcessor(conn, compare_quiet, NULL);
    if (args.init && compare_schema_apply(conn, &err) != COMPARE_OK) {
        fprintf(stderr, "cutover-report: %s\n", err.message);
        goto cleanup;
    }
    if (args.fmt == REPORT_HTML) {
        rc = report_html(conn, &args);
        goto cleanup;
    }
    if (args.kind == REPORT_LEDGERS) {
        cutover_error_t  rerr;

        res = reconcile_report_query(conn, args.since, args.until, &rerr);
        mism = res ? reconcile_report_differences(conn, args.since,
                                                  args.until, &rerr)
                   : -1;
        if (mism < 0) {
            fprintf(stderr, "cutover-report: %s\n", rerr.message);
            goto cleanup;
        }
        report_print(res, args.fmt);
        if (fflush(stdout) == 0) {
            rc = mism > 0 ? 1 : 0;
        }
        goto cleanup;
    }
    res = compare_report_query(conn, (compare_report_kind_t) args.kind,
                               args.since, args.until,
                               args.kind == COMPARE_REPORT_EXPORT
                               ? 0 : args.limit, &err);
    mism = res ? compare_report_mismatches(conn, args.since, args.until, &err)
               : -1;
    if (mism < 0) {
        fprintf(stderr, "cutover-report: %s\n", err.message);
        goto cleanup;
    }
    report_print(res, args.fmt);
    if (fflush(stdout) == 0) {
        rc = mism > 0 ? 1 : 0;
    }
cleanup:
    PQclear(res);
    PQfinish(conn);
    return rc;
}
