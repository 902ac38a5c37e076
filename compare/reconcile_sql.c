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

/* a row's hash: PostgreSQL's 64-bit text hash (the one hash partitioning
 * relies on: the same on every platform and version since 11) */
#define RECONCILE_HASH  "hashtextextended(rt, 0)"

/* the rows between $4 (inclusive) and $5 (exclusive, NULL: the end) */
#define RECONCILE_SPAN  "sk >= $4::text AND ($5::text IS NULL OR sk < $5::text)"

/*
 * Rows of the span merged with the thresholds $2 as marker rows: g is the
 * number of the last threshold at or before the row's key (whatever the
 * number of thresholds: width_bucket() walks a text[] from its start).
 * Takes the columns a row carries through the sort (as few as may be),
 * the base relation and as many NULLs for the markers.
 */
#define RECONCILE_MARK                                                       \
    "SELECT *, max(bi) OVER (ORDER BY sk, bi NULLS LAST"                     \
    " ROWS UNBOUNDED PRECEDING) AS g"                                        \
    " FROM (SELECT c.sk, %s, NULL::int AS bi FROM (%s) c"                    \
    " WHERE " RECONCILE_SPAN                                                 \
    " UNION ALL SELECT u.t COLLATE \"C\", %s, u.o::int"                      \
    " FROM unnest($2::text[]) WITH ORDINALITY AS u(t, o)) z"


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
 * printable ASCII, an example of each); with $2 thresholds, $3 wanted
 * buckets, $4 and $5 the span: "split" (per bucket the first
 * key of each tile, $6 and $7 per bucket the rows before it and the tile
 * size), "hash" and "hashm" (count and hash per bucket),
 * "fetch" and "fetchm" (the rows, in key order); the "m" forms and
 * "split" merge the thresholds in as marker rows, the others call
 * width_bucket() (for a few thresholds); "keys" ($2 sort keys: those
 * rows).
 */
char *
reconcile_sql(const reconcile_ledger_map_t *lm, int side, const char *what)
{
    char  *base, *nulls, *bad, *cols, *ccols, *nullcols, *out;
    int    rc;

    base = reconcile_sql_base(lm, side);
    nulls = reconcile_sql_cols(lm, "%1$.0sk%2$d IS NULL",
                               "%1$.0sv%2$d IS NULL", " OR ");
    bad = reconcile_sql_cols(lm, "%1$.0sk%2$d", NULL, ", ");
    cols = reconcile_sql_cols(lm, "%1$.0sk%2$d", "%1$.0sv%2$d", ", ");
    ccols = reconcile_sql_cols(lm, "%1$.0sc.k%2$d", "%1$.0sc.v%2$d", ", ");
    nullcols = reconcile_sql_cols(lm, "%1$.0sNULL::text", "%1$.0sNULL::text",
                                  ", ");
    out = NULL;
    rc = -1;
    if (base == NULL || nulls == NULL || bad == NULL || cols == NULL
        || ccols == NULL || nullcols == NULL)
    {
        goto done;
    }

    if (strcmp(what, "top") == 0) {
        rc = asprintf(&out,
            "SELECT count(*), coalesce(sum(" RECONCILE_HASH "), 0),"
            " count(*) FILTER (WHERE %s),"
            " count(*) FILTER (WHERE concat(%s) ~ '[^ -~]'),"
            " min(concat_ws(' ', %s)) FILTER (WHERE %s),"
            " min(concat_ws(' ', %s)) FILTER (WHERE concat(%s) ~ '[^ -~]')\n"
            "FROM (%s) c", nulls, bad, cols, nulls, cols, bad, base);

    } else if (strcmp(what, "split") == 0) {
        /*
         * The first key of every tile: a row's rank in its bucket is the
         * running count of wanted rows less $6[g] (the rows of the wanted
         * buckets before it, known from the level before, in the same
         * snapshot); $7[g] is the tile size.  One sort, by key.
         */
        rc = asprintf(&out,
            "SELECT g, sk\n"
            "FROM (SELECT g, sk, count(*) OVER (ORDER BY sk, bi NULLS LAST"
            " ROWS UNBOUNDED PRECEDING) - ($6::bigint[])[g] AS rn\n"
            "      FROM (" RECONCILE_MARK ") x\n"
            "      WHERE bi IS NULL AND g = ANY ($3::int[])) y\n"
            "WHERE (rn - 1) %% ($7::bigint[])[g] = 0 ORDER BY g, sk",
            "0::bigint AS h", base, "NULL::bigint");

    } else if (strcmp(what, "hash") == 0) {
        rc = asprintf(&out,
            "SELECT b, count(*), coalesce(sum(" RECONCILE_HASH "), 0)\n"
            "FROM (SELECT width_bucket(sk, $2::text[]) AS b, rt"
            " FROM (%s) c WHERE " RECONCILE_SPAN " OFFSET 0) x\n"
            "WHERE b = ANY ($3::int[]) GROUP BY b", base);

    } else if (strcmp(what, "hashm") == 0) {
        rc = asprintf(&out,
            "SELECT g, count(*), coalesce(sum(h), 0)\n"
            "FROM (" RECONCILE_MARK ") x\n"
            "WHERE bi IS NULL AND g = ANY ($3::int[]) GROUP BY g",
            RECONCILE_HASH " AS h", base, "NULL::bigint");

    } else if (strcmp(what, "fetch") == 0) {
        rc = asprintf(&out,
            "SELECT sk, %s\n"
            "FROM (SELECT width_bucket(sk, $2::text[]) AS b, *"
            " FROM (%s) c WHERE " RECONCILE_SPAN " OFFSET 0) x\n"
            "WHERE b = ANY ($3::int[]) ORDER BY sk", cols, base);

    } else if (strcmp(what, "fetchm") == 0) {
        rc = asprintf(&out,
            "SELECT sk, %s\n"
            "FROM (" RECONCILE_MARK ") x\n"
            "WHERE bi IS NULL AND g = ANY ($3::int[]) ORDER BY sk",
            cols, ccols, base, nullcols);

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
    free(ccols);
    free(nullcols);
    return out;
}
