/*
 * legacy_seed: legacy_sim_seed() with the numbers of stores and SKUs as
 * parameters, set-based in one transaction.  Stock kcsl is 20 + (s*31 +
 * n*17) % 181 for store s and SKU n, exactly as the new core's seed.
 */

#include <stdio.h>
#include <string.h>

#include "legacy_adapter/legacy_db.h"
#include "legacy_adapter/legacy_seed.h"

/* each step names $1 and $2 (store and SKU counts) or none */
static const char *legacy_seed_steps[] = {
    "BEGIN",
    "TRUNCATE legacy.xsd_mx, legacy.xsd, legacy.qqlsh, legacy.kc,"
    " legacy.md_qd, legacy.md, legacy.sp, legacy.hy",
    "ALTER SEQUENCE legacy.djh_seq RESTART",
    "INSERT INTO legacy.md (mdbh, mdmc)"
    " SELECT 'S' || lpad(s::text, 3, '0'), 'Store ' || lpad(s::text, 3, '0')"
    " FROM generate_series(1, $1::int) s WHERE $2::int > 0",
    "INSERT INTO legacy.md_qd (mdbh, qd) SELECT mdbh, q"
    " FROM legacy.md, generate_series(1, 4) q",
    "INSERT INTO legacy.sp (spbm, spmc, lsj_fen)"
    " SELECT 'SKU' || lpad(n::text, 5, '0'), 'Item ' || lpad(n::text, 5,"
    " '0'), 100 + (n * 7919) % 49900 FROM generate_series(1, $2::int) n"
    " WHERE $1::int > 0",
    "INSERT INTO legacy.kc (mdbh, spbm, kcsl, ydsl)"
    " SELECT 'S' || lpad(s::text, 3, '0'), 'SKU' || lpad(n::text, 5, '0'),"
    " 20 + (s * 31 + n * 17) % 181, 0"
    " FROM generate_series(1, $1::int) s, generate_series(1, $2::int) n",
    "INSERT INTO legacy.hy (hyh, jf, hydj)"
    " SELECT 'M' || lpad(m::text, 6, '0'), (m * 97) % 5000,"
    " CASE WHEN (m * 97) % 5000 >= 3000 THEN 3"
    " WHEN (m * 97) % 5000 >= 1000 THEN 2 ELSE 1 END"
    " FROM generate_series(1, 10000) m",
    "COMMIT",
    NULL
};


int
legacy_sim_seed_sized(const char *conninfo, int stores, int skus,
    legacy_error_t *err)
{
    int          i;
    char         s1[16], s2[16];
    const char  *p[2];
    PGconn      *db;

    db = legacy_db_connect(conninfo, err);
    if (db == NULL) {
        return LEGACY_ERROR;
    }
    snprintf(s1, sizeof(s1), "%d", stores);
    snprintf(s2, sizeof(s2), "%d", skus);
    p[0] = s1;
    p[1] = s2;
    for (i = 0; legacy_seed_steps[i] != NULL; i++) {
        if (legacy_db_command(db, legacy_seed_steps[i],
                              strstr(legacy_seed_steps[i], "$1") ? 2 : 0,
                              p, err) != LEGACY_OK)
        {
            PQfinish(db);
            return LEGACY_ERROR;
        }
    }
    PQfinish(db);
    return LEGACY_OK;
}
