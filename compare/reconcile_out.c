/*
 * reconcile_out: what cutover-reconcile prints: one JSON object (-o json)
 * or lines for people.
 */

#include <stdio.h>

#include "common/cutover_json.h"
#include "compare/reconcile.h"


int64_t
reconcile_total_differences(const reconcile_run_t *run)
{
    int      i;
    int64_t  n;

    for (i = 0, n = 0; i < run->nsel; i++) {
        n += run->res[i].differences;
    }
    return n;
}


void
reconcile_print_json(const reconcile_run_t *run, FILE *out)
{
    int                               i, truncated;
    size_t                            k;
    const reconcile_diff_t           *d;
    const reconcile_ledger_result_t  *r;

    truncated = 0;
    fprintf(out, "{\"ledgers\": [");
    for (i = 0; i < run->nsel; i++) {
        r = &run->res[i];
        truncated |= r->listed < r->differences;
        fprintf(out, "%s\n  {\"ledger\": ", i ? "," : "");
        cutover_json_fprint(out, run->map->ledgers[run->sel[i]].name);
        fprintf(out, ", \"rows_new\": %lld, \"rows_legacy\": %lld,"
                " \"differences\": %lld, \"listed\": %lld,"
                " \"rows_fetched\": %lld, \"seconds\": %.3f",
                (long long) r->rows[0], (long long) r->rows[1],
                (long long) r->differences, (long long) r->listed,
                (long long) r->rows_fetched, r->seconds);
        if (r->nearly_all) {
            fprintf(out, ", \"nearly_all_differ\": true");
        }
        if (run->cfg.stats) {
            fprintf(out, ", \"stats\": {\"queries\": %lld, \"rows_hashed\":"
                    " %lld, \"rows_fetched\": %lld, \"bytes\": %lld,"
                    " \"levels\": %d, \"seconds\": %.3f}",
                    (long long) r->queries, (long long) r->rows_hashed,
                    (long long) r->rows_fetched, (long long) r->bytes,
                    r->levels, r->seconds);
        }
        fprintf(out, "}");
    }
    fprintf(out, "%s],\n \"differences\": [", run->nsel ? "\n " : "");
    for (k = 0; k < run->ndiffs; k++) {
        d = &run->diffs[k];
        fprintf(out, "%s\n  {\"ledger\": ", k ? "," : "");
        cutover_json_fprint(out, run->map->ledgers[d->ledger].name);
        fprintf(out, ", \"key\": %s, \"kind\": \"%s\", \"new\": %s,"
                " \"legacy\": %s}", d->key, reconcile_kind_name[d->kind],
                d->val[0] ? d->val[0] : "null",
                d->val[1] ? d->val[1] : "null");
    }
    fprintf(out, "%s],\n \"truncated\": %s, \"seconds\": %.3f}\n",
            run->ndiffs ? "\n " : "", truncated ? "true" : "false",
            run->seconds);
}


void
reconcile_print_text(const reconcile_run_t *run, FILE *out)
{
    int                               i;
    size_t                            k;
    int64_t                           total;
    const reconcile_diff_t           *d;
    const reconcile_ledger_result_t  *r;

    for (i = 0; i < run->nsel; i++) {
        r = &run->res[i];
        fprintf(out, "%-8s %s  rows new %lld, legacy %lld; %lld"
                " difference%s; %lld rows fetched; %.2f s\n",
                run->map->ledgers[run->sel[i]].name,
                r->differences ? "DIFFER" : "agree ",
                (long long) r->rows[0], (long long) r->rows[1],
                (long long) r->differences, r->differences == 1 ? "" : "s",
                (long long) r->rows_fetched, r->seconds);
        if (run->cfg.stats) {
            fprintf(out, "         %lld queries, %lld rows hashed, %lld rows"
                    " fetched, %lld bytes, %d levels, %.3f s\n",
                    (long long) r->queries, (long long) r->rows_hashed,
                    (long long) r->rows_fetched, (long long) r->bytes,
                    r->levels, r->seconds);
        }
    }
    for (k = 0; k < run->ndiffs; k++) {
        d = &run->diffs[k];
        fprintf(out, "%s %s %s: new %s, legacy %s\n",
                run->map->ledgers[d->ledger].name, d->key,
                reconcile_kind_name[d->kind],
                d->val[0] ? d->val[0] : "(none)",
                d->val[1] ? d->val[1] : "(none)");
    }
    total = reconcile_total_differences(run);
    if ((int64_t) run->ndiffs < total) {
        fprintf(out, "(%zu of %lld differences listed)\n", run->ndiffs,
                (long long) total);
    }
    fprintf(out, "%s\n", total ? "the ledgers DIFFER" : "the ledgers agree");
}
