/*
 * compare_html: the analyst's report as one self-contained HTML page
 * (styles, script and SVG charts inline; it fetches nothing), built from
 * the same queries as the other formats of cutover-report.
 */

#ifndef COMPARE_HTML_H
#define COMPARE_HTML_H

#include <stdio.h>
#include <time.h>

#include <libpq-fe.h>

#include "compare/compare.h"

/* Rows of the fields table (each with a sparkline) and fields with sample
 * pairs; the page says when a list is cut. */
#define COMPARE_HTML_FIELDS        100
#define COMPARE_HTML_SAMPLE_FIELDS 30
#define COMPARE_HTML_ROUTES_DRAWN  8
#define COMPARE_HTML_HEAT_STORES   15
#define COMPARE_HTML_BINS          64

typedef struct {
    const char  *since;       /* timestamptz text or NULL */
    const char  *until;       /* timestamptz text or NULL */
    const char  *database;    /* what to call the database (no password) */
    const char  *rules_path;  /* the rules in force, NULL when not given */
    time_t       made_at;
} compare_html_opts_t;

/* Query everything, then write the page to out.  *mismatches gets the
 * pairs that differ in the window.  COMPARE_ERROR with err filled when
 * a query fails or the rules file is bad; out may then hold a part of a
 * page (compare_html_save() discards it). */
int compare_html_report(FILE *out, PGconn *conn,
    const compare_html_opts_t *opts, long long *mismatches,
    compare_error_t *err);

/* The page into the file at path (NULL: standard output), whole or not
 * at all: written under a temporary name beside it, fsynced, renamed. */
int compare_html_save(PGconn *conn, const compare_html_opts_t *opts,
    const char *path, long long *mismatches, compare_error_t *err);

/* Text for HTML content or a quoted attribute: & < > " ' as references,
 * control characters as their visible pictures (U+2400...), invalid
 * UTF-8 as U+FFFD.  Safe anywhere outside <script> and <style>. */
void compare_html_text(FILE *out, const char *s, size_t len);

/* "host=h port=p dbname=d user=u" of an open connection, without the
 * password, into buf (always NUL-terminated). */
void compare_html_database(PGconn *conn, char *buf, size_t size);

#endif /* COMPARE_HTML_H */
