/*
 * newcore_seed_bulk: newcore.seed() of schema.sql with the numbers of
 * stores and SKUs as parameters.  Stock on hand is 20 + (s*31 + n*17) %
 * 181 for store s and SKU n, exactly as legacy-store-sim's seed.
 */

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "new_core/newcore_seed_bulk.h"

static const char *newcore_seed_steps[] = {
    "SELECT pg_advisory_xact_lock(hashtextextended('newcore:seed', 0))",

    "INSERT INTO newcore.stores (store_id, name, channels)"
    " SELECT 'S' || lpad(s::text, 3, '0'), 'Store ' || lpad(s::text, 3, '0'),"
    " ARRAY['pos', 'eshop', 'miniapp', 'marketplace']"
    " FROM generate_series(1, $1::int) AS s"
    " WHERE NOT EXISTS (SELECT 1 FROM newcore.stores)",

    "INSERT INTO newcore.skus (sku, name, price_fen)"
    " SELECT 'SKU' || lpad(n::text, 5, '0'), 'Item ' || lpad(n::text, 5, '0'),"
    " 100 + (n * 7919) % 49900"
    " FROM generate_series(1, $2::int) AS n WHERE $1::int > 0",

    "INSERT INTO newcore.stock (store_id, sku, on_hand, reserved)"
    " SELECT 'S' || lpad(s::text, 3, '0'), 'SKU' || lpad(n::text, 5, '0'),"
    " 20 + (s * 31 + n * 17) % 181, 0"
    " FROM generate_series(1, $1::int) AS s, generate_series(1, $2::int) AS n",

    "INSERT INTO newcore.ledger (kind, store_id, sku, delta, reason)"
    " SELECT 'stock', store_id, sku, on_hand, 'opening' FROM newcore.stock",

    "INSERT INTO newcore.members (member_id, points)"
    " SELECT 'M' || lpad(m::text, 6, '0'), (m * 97) % 5000"
    " FROM generate_series(1, 10000) AS m",

    "INSERT INTO newcore.ledger (kind, member_id, delta, reason)"
    " SELECT 'points', member_id, points, 'opening' FROM newcore.members",

    NULL
};


int
newcore_seed_sized(const char *conninfo, int stores, int skus, int *loaded,
    newcore_error_t *err)
{
    int          i, n, ok;
    char         s1[16], s2[16];
    const char  *p[2], *keys[3], *vals[3], *msg;
    PGconn      *conn;
    PGresult    *res;

    keys[0] = "connect_timeout";
    vals[0] = "5";
    keys[1] = "dbname";
    vals[1] = conninfo;
    keys[2] = vals[2] = NULL;
    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        msg = conn ? PQerrorMessage(conn) : "out of memory";
        newcore_error_set(err, 503, "unavailable", "cannot connect to the"
                          " database: %.*s", (int) strcspn(msg, "\n"), msg);
        PQfinish(conn);
        return NEWCORE_ERROR;
    }

    snprintf(s1, sizeof(s1), "%d", stores);
    snprintf(s2, sizeof(s2), "%d", skus);
    p[0] = s1;
    p[1] = s2;
    *loaded = 0;
    res = PQexec(conn, "BEGIN");
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    for (i = 0; ok && newcore_seed_steps[i] != NULL; i++) {
        /* a step names $1 and $2, $1 alone or none */
        n = strstr(newcore_seed_steps[i], "$2") ? 2
            : strstr(newcore_seed_steps[i], "$1") ? 1 : 0;
        res = PQexecParams(conn, newcore_seed_steps[i], n, NULL, p, NULL,
                           NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK
             || PQresultStatus(res) == PGRES_TUPLES_OK;
        if (ok && i == 1 && strcmp(PQcmdTuples(res), "0") == 0) {
            /* stores were there: the data set is loaded */
            PQclear(res);
            break;
        }
        if (ok && i == 1) {
            *loaded = 1;
        }
        PQclear(res);
    }
    if (ok) {
        res = PQexec(conn, *loaded ? "COMMIT" : "ROLLBACK");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok) {
        msg = PQerrorMessage(conn);
        newcore_error_set(err, 500, "internal", "seed failed: %.*s",
                          (int) strcspn(msg, "\n"), msg);
        PQfinish(conn);
        return NEWCORE_ERROR;
    }
    PQfinish(conn);
    return NEWCORE_OK;
}
