/*
 * cutover-report: what analysts read from the result store: mismatch rate
 * by route, store, channel and field, with counts and sample record ids.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "compare/compare.h"
#include "compare/compare_report.h"
#include "compare/compare_store.h"

static const char *usage =
    "usage: cutover-report --db CONNINFO [--since TIME] [--until TIME]\n"
    "                      [--format text|csv|json] [--limit N]\n"
    "                      [--init-schema] REPORT\n"
    "\n"
    "REPORT: summary | routes | stores | channels | fields | hours | samples\n"
    "        | export\n"
    "TIME: RFC 3339 (2026-11-21T10:00:00Z) or an age: 90s, 15m, 2h, 7d.\n"
    "Exit 0 no differences in the window, 1 differences found, 2 error.\n";

typedef enum { REPORT_TEXT, REPORT_CSV, REPORT_JSON } report_format_t;


static int report_numeric(Oid type);
static void report_json_string(const char *s);
static void report_csv_field(const char *s);
static void report_print(PGresult *res, report_format_t fmt);


static int
report_numeric(Oid type)
{
    /* int8, int2, int4, float4, float8, numeric */
    return type == 20 || type == 21 || type == 23 || type == 700
           || type == 701 || type == 1700;
}


static void
report_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
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
report_print(PGresult *res, report_format_t fmt)
{
    int     r, c, nr = PQntuples(res), nc = PQnfields(res);
    int    *w;

    if (fmt == REPORT_JSON) {
        printf("[");
        for (r = 0; r < nr; r++) {
            printf("%s\n {", r ? "," : "");
            for (c = 0; c < nc; c++) {
                printf("%s", c ? ", " : "");
                report_json_string(PQfname(res, c));
                printf(": ");
                if (PQgetisnull(res, r, c)) {
                    printf("null");
                } else if (report_numeric(PQftype(res, c))) {
                    printf("%s", PQgetvalue(res, r, c));
                } else {
                    report_json_string(PQgetvalue(res, r, c));
                }
            }
            printf("}");
        }
        printf("%s]\n", nr ? "\n" : "");
        return;
    }
    if (fmt == REPORT_CSV) {
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
        return;
    }
    w = calloc((size_t) nc + 1, sizeof(int));
    if (w == NULL) {
        return;
    }
    for (c = 0; c < nc; c++) {
        w[c] = (int) strlen(PQfname(res, c));
        for (r = 0; r < nr; r++) {
            int l = PQgetlength(res, r, c);

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


int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "db", required_argument, NULL, 'd' },
        { "since", required_argument, NULL, 's' },
        { "until", required_argument, NULL, 'u' },
        { "format", required_argument, NULL, 'f' },
        { "limit", required_argument, NULL, 'l' },
        { "init-schema", no_argument, NULL, 'i' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char       *db = NULL, *since = NULL, *until = NULL;
    char              since_buf[64], until_buf[64], *end;
    report_format_t   fmt = REPORT_TEXT;
    long              limit = 20;
    int               c, kind, init = 0, rc = 2;
    PGconn           *conn = NULL;
    PGresult         *res = NULL;
    compare_error_t   err;
    long long         mism;

    while ((c = getopt_long(argc, argv, "d:s:u:f:l:ih", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db = optarg;
            break;
        case 's':
            if (compare_report_time(optarg, since_buf, sizeof(since_buf))
                != 0)
            {
                fprintf(stderr, "cutover-report: bad --since \"%s\"\n",
                        optarg);
                return 2;
            }
            since = since_buf;
            break;
        case 'u':
            if (compare_report_time(optarg, until_buf, sizeof(until_buf))
                != 0)
            {
                fprintf(stderr, "cutover-report: bad --until \"%s\"\n",
                        optarg);
                return 2;
            }
            until = until_buf;
            break;
        case 'f':
            if (strcmp(optarg, "text") == 0) {
                fmt = REPORT_TEXT;
            } else if (strcmp(optarg, "csv") == 0) {
                fmt = REPORT_CSV;
            } else if (strcmp(optarg, "json") == 0) {
                fmt = REPORT_JSON;
            } else {
                fprintf(stderr, "cutover-report: --format text|csv|json\n");
                return 2;
            }
            break;
        case 'l':
            errno = 0;
            limit = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || limit <= 0) {
                fprintf(stderr, "cutover-report: bad --limit\n");
                return 2;
            }
            break;
        case 'i':
            init = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (db == NULL || optind != argc - 1
        || (kind = compare_report_kind(argv[optind])) < 0)
    {
        fputs(usage, stderr);
        return 2;
    }
    conn = PQconnectdb(db);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "cutover-report: database: %s",
                conn ? PQerrorMessage(conn) : "out of memory\n");
        goto cleanup;
    }
    PQsetNoticeProcessor(conn, compare_quiet, NULL);
    if (init && compare_schema_apply(conn, &err) != COMPARE_OK) {
        fprintf(stderr, "cutover-report: %s\n", err.message);
        goto cleanup;
    }
    if (kind == COMPARE_REPORT_EXPORT) {
        limit = 0;
    }
    res = compare_report_query(conn, (compare_report_kind_t) kind, since,
                               until, limit, &err);
    if (res == NULL) {
        fprintf(stderr, "cutover-report: %s\n", err.message);
        goto cleanup;
    }
    mism = compare_report_mismatches(conn, since, until, &err);
    if (mism < 0) {
        fprintf(stderr, "cutover-report: %s\n", err.message);
        goto cleanup;
    }
    report_print(res, fmt);
    if (fflush(stdout) != 0) {
        goto cleanup;
    }
    rc = mism > 0 ? 1 : 0;
cleanup:
    PQclear(res);
    PQfinish(conn);
    return rc;
}
