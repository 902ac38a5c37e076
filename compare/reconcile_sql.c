/*
 * reconcile_sql: the queries cutover-reconcile sends, built around a map
 * file's SQL.  The base relation gives per canonical row its sort key (sk),
 * its row text (rt: the columns joined by \x02) and the columns as text
 * (k0.., v0..).  $1 is always the --store filter (a text[] or NULL).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare/reconcile.h"

/* a row's hash: the first 8 bytes of the MD5 of its text, signed */
#define RECONCILE_HASH  "('x' || substr(md5(rt), 1, 16))::bit(64)::bigint"


static char *reconcile_sql_cols(const reconcile_ledger_map_t *lm,
    const char *fmt_key, const char *fmt_val, const char *sep);


/* Each column through a format taking (name, index); NULL on no memory. */
static char *
reconcile_sql_cols(const reconcile_ledger_map_t *lm, const char *fmt_key,
    const char *fmt_val, const char *sep)
{
    int      i;
    char    *out, *part, *next;

    out = strdup("");
    for (i = 0; out != NULL && i < lm->nkeys + lm->nvals; i++) {
        if (i >= lm->nkeys && fmt_val == NULL) {
            break;
        }
        if (i < lm->nkeys) {
            if (asprintf(&part, fmt_key, lm->keys[i], i) < 0) {
                part = NULL;
            }
        } else if (asprintf(&part, fmt_val, lm->vals[i - lm->nkeys],
                            i - lm->nkeys) < 0)
        {
            part = NULL;
        }
        if (part == NULL
            || asprintf(&next, "%s%s%s", out, i ? sep : "", part) < 0)
        {
            next = NULL;
        }
        free(part);
        free(out);
        out = next;
    }
    return out;
}


char *
reconcile_sql_base(const reconcile_ledger_map_t *lm, int side)
{
    char  *sk, *rt, *cols, *out;

    sk = reconcile_sql_cols(lm, "m.\"%s\"::text", NULL, " || E'\\001' || ");
    rt = reconcile_sql_cols(lm, "m.\"%s\"::text", "m.\"%s\"::text", ", ");
    cols = reconcile_sql_cols(lm, "m.\"%s\"::text AS k%d",
                              "m.\"%s\"::text AS v%d", ", ");
    out = NULL;
    if (sk != NULL && rt != NULL && cols != NULL
        && asprintf(&out,
                    "SELECT (%s) COLLATE \"C\" AS sk,"
                    " concat_ws(E'\\002', %s) AS rt, %s\n"
                    "FROM (\n%s\n) m\n"
                    "WHERE %s",
                    sk, rt, cols, lm->sql[side],
                    lm->has_store
                    ? "($1::text[] IS NULL"
                      " OR m.\"store_id\"::text = ANY ($1::text[]))"
                    : "cardinality($1::text[]) IS NULL OR true") < 0)
    {
        out = NULL;
    }
    free(sk);
    free(rt);
    free(cols);
    return out;
}


/*
 * what: "top" (count, hash, rows with a NULL, rows with a key that is not
 * printable ASCII, an example of each), "split" ($2 thresholds, $3 wanted
 * buckets, $4 tiles: per bucket and tile the smallest key, count, hash),
 * "hash" ($2, $3: count and hash per bucket), "fetch" ($2, $3: the rows,
 * in key order), "keys" ($2 sort keys: those rows).
 */
char *
reconcile_sql(const reconcile_ledger_map_t *lm, int side, const char *what)
{
    char  *base, *nulls, *bad, *cols, *out;
    int    rc;

    base = reconcile_sql_base(lm, side);
    nulls = reconcile_sql_cols(lm, "%1$.0sk%2$d IS NULL", "%1$.0sv%2$d IS NULL", " OR ");
    bad = reconcile_sql_cols(lm, "%1$.0sk%2$d !~ '^[ -~]*$'", NULL, " OR ");
    cols = reconcile_sql_cols(lm, "%1$.0sk%2$d", "%1$.0sv%2$d", ", ");
    out = NULL;
    rc = -1;
    if (base == NULL || nulls == NULL || bad == NULL || cols == NULL) {
        goto done;
    }

    if (strcmp(what, "top") == 0) {
        rc = asprintf(&out,
            "SELECT count(*), coalesce(sum(" RECONCILE_HASH "), 0),"
            " count(*) FILTER (WHERE %s),"
            " count(*) FILTER (WHERE %s),"
            " min(concat_ws(' ', %s)) FILTER (WHERE %s),"
            " min(concat_ws(' ', %s)) FILTER (WHERE %s)\n"
            "FROM (%s) c", nulls, bad, cols, nulls, cols, bad, base);

    } else if (strcmp(what, "split") == 0) {
        rc = asprintf(&out,
            "SELECT b, t, min(sk), count(*),"
            " coalesce(sum(" RECONCILE_HASH "), 0)\n"
            "FROM (SELECT b, sk, rt, (row_number() OVER w - 1) * $4::int"
            " / count(*) OVER (PARTITION BY b) AS t\n"
            "      FROM (SELECT width_bucket(sk, $2::text[]) AS b, sk, rt"
            " FROM (%s) c OFFSET 0) x\n"
            "      WHERE b = ANY ($3::int[])\n"
            "      WINDOW w AS (PARTITION BY b ORDER BY sk)) y\n"
            "GROUP BY b, t ORDER BY b, t", base);

    } else if (strcmp(what, "hash") == 0) {
        rc = asprintf(&out,
            "SELECT b, count(*), coalesce(sum(" RECONCILE_HASH "), 0)\n"
            "FROM (SELECT width_bucket(sk, $2::text[]) AS b, rt"
            " FROM (%s) c OFFSET 0) x\n"
            "WHERE b = ANY ($3::int[]) GROUP BY b", base);

    } else if (strcmp(what, "fetch") == 0) {
        rc = asprintf(&out,
            "SELECT sk, %s\n"
            "FROM (SELECT width_bucket(sk, $2::text[]) AS b, *"
            " FROM (%s) c OFFSET 0) x\n"
            "WHERE b = ANY ($3::int[]) ORDER BY sk", cols, base);

    } else if (strcmp(what, "keys") == 0) {
        rc = asprintf(&out,
            "SELECT sk, %s FROM (%s) c WHERE sk = ANY ($2::text[])"
            " ORDER BY sk", cols, base);
    }

done:
    if (rc < 0) {
        out = NULL;
    }
    free(base);
    free(nulls);
    free(bad);
    free(cols);
    return out;
}
