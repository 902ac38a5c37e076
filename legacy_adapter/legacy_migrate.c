/* legacy: migration of the store-system master data into the new core. */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legacy_adapter/legacy_db.h"
#include "legacy_adapter/legacy_migrate.h"

#define MIG_ID_MAX  32

enum { MIG_STORES = 0, MIG_CHANNELS, MIG_SKUS, MIG_STOCK, MIG_MEMBERS };

/* One legacy row with its cleaned key(s). */
typedef struct {
    char      id[MIG_ID_MAX + 1];
    char      id2[MIG_ID_MAX + 1];
    int64_t   a;                  /* price, on hand, points */
    int64_t   b;                  /* reserved, tier code */
    int       row;
    int       cleaned;            /* the id needed trimming or upper case */
    int       rejected;
    unsigned  channels;           /* stores: bit per code table entry */
} mig_row_t;

typedef struct {
    const legacy_map_t       *map;
    PGconn                   *old_db;
    PGconn                   *new_db;
    legacy_migrate_report_t  *rep;
    legacy_error_t           *err;
    legacy_buf_t              copy;
} mig_t;


static int mig_clean(mig_t *m, const char *table, const char *raw,
    char *out);
static void mig_issue(mig_t *m, const char *kind, const char *table,
    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int mig_row_cmp(const void *a, const void *b);
static void mig_dedup(mig_t *m, const char *table, mig_row_t *rows,
    size_t n, legacy_migrate_table_t *t);
static int mig_copy(mig_t *m, const char *sql);
static int mig_store_channels(mig_t *m, const legacy_codes_t *codes,
    mig_row_t *stores, size_t nstores);
static void mig_field(legacy_buf_t *b, const char *s, int last);


static void
mig_issue(mig_t *m, const char *kind, const char *table, const char *key,
    const char *fmt, ...)
{
    legacy_migrate_issue_t  *is;
    va_list                  ap;

    m->rep->issue_count++;
    if (m->rep->nissues == LEGACY_MIGRATE_ISSUES_MAX) {
        return;
    }
    is = &m->rep->issues[m->rep->nissues++];
    snprintf(is->kind, sizeof(is->kind), "%s", kind);
    snprintf(is->table, sizeof(is->table), "%s", table);
    snprintf(is->key, sizeof(is->key), "%s", key);
    va_start(ap, fmt);
    vsnprintf(is->detail, sizeof(is->detail), fmt, ap);
    va_end(ap);
}


/* Trims and upper-cases an id; LEGACY_ERROR (reported) when unusable. */
static int
mig_clean(mig_t *m, const char *table, const char *raw, char *out)
{
    const char  *s = raw, *e;
    size_t       n, i;

    while (*s == ' ' || *s == '\t') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    n = (size_t) (e - s);
    if (n == 0 || n > MIG_ID_MAX) {
        goto bad;
    }
    for (i = 0; i < n; i++) {
        out[i] = (char) toupper((unsigned char) s[i]);
        if (!isalnum((unsigned char) out[i]) && out[i] != '-'
            && out[i] != '_')
        {
            goto bad;
        }
    }
    out[n] = '\0';
    if (strcmp(out, raw) != 0) {
        m->rep->cleaned_ids++;
    }
    return LEGACY_OK;

bad:
    mig_issue(m, "bad_code", table, raw, "id is empty, too long or has"
              " characters other than A-Z 0-9 - _");
    return LEGACY_ERROR;
}


static int
mig_row_cmp(const void *a, const void *b)
{
    const mig_row_t  *x = a, *y = b;
    int               c;

    c = strcmp(x->id, y->id);
    if (c == 0) {
        c = strcmp(x->id2, y->id2);
    }
    if (c == 0) {
        c = x->cleaned - y->cleaned;   /* a clean id wins over a cleaned one */
    }
    if (c == 0) {
        c = x->row - y->row;
    }
    return c;
}


static int
mig_key_cmp(const void *key, const void *row)
{
    return strcmp(key, ((const mig_row_t *) row)->id);
}


/* The kept (not rejected) row with this cleaned id, or NULL. */
static mig_row_t *
mig_find(mig_row_t *rows, size_t n, const char *id)
{
    mig_row_t  *r, *end = rows + n;

    r = bsearch(id, rows, n, sizeof(mig_row_t), mig_key_cmp);
    if (r == NULL) {
        return NULL;
    }
    while (r > rows && strcmp(r[-1].id, id) == 0) {
        r--;
    }
    for ( /* void */ ; r < end && strcmp(r->id, id) == 0; r++) {
        if (!r->rejected) {
            return r;
        }
    }
    return NULL;
}


/* Sorts by cleaned key; later rows of a key are reported duplicates. */
static void
mig_dedup(mig_t *m, const char *table, mig_row_t *rows, size_t n,
    legacy_migrate_table_t *t)
{
    size_t  i;
    char    key[2 * MIG_ID_MAX + 2];

    qsort(rows, n, sizeof(mig_row_t), mig_row_cmp);
    for (i = 1; i < n; i++) {
        if (rows[i].rejected || strcmp(rows[i].id, rows[i - 1].id) != 0
            || strcmp(rows[i].id2, rows[i - 1].id2) != 0)
        {
            continue;
        }
        rows[i].rejected = 1;
        t->rejected_rows++;
        t->rejected_total += rows[i].a;
        snprintf(key, sizeof(key), "%s%s%s", rows[i].id,
                 rows[i].id2[0] ? "/" : "", rows[i].id2);
        mig_issue(m, "duplicate", table, key, "legacy row %d cleans to the"
                  " same id as an earlier row; not copied", rows[i].row + 1);
    }
}


static void
mig_field(legacy_buf_t *b, const char *s, int last)
{
    for ( /* void */ ; *s; s++) {
        switch (*s) {
        case '\\': legacy_buf_append(b, "\\\\", 2); break;
        case '\t': legacy_buf_append(b, "\\t", 2); break;
        case '\n': legacy_buf_append(b, "\\n", 2); break;
        case '\r': legacy_buf_append(b, "\\r", 2); break;
        default: legacy_buf_append(b, s, 1);
        }
    }
    legacy_buf_append(b, last ? "\n" : "\t", 1);
}


/* Sends m->copy through COPY ... FROM STDIN and empties it. */
static int
mig_copy(mig_t *m, const char *sql)
{
    PGresult  *res;
    int        rc = LEGACY_OK;

    res = legacy_db_exec(m->new_db, sql, 0, NULL, PGRES_COPY_IN, m->err);
    if (res == NULL) {
        return LEGACY_ERROR;
    }
    PQclear(res);
    if ((m->copy.len > 0
         && PQputCopyData(m->new_db, m->copy.data, (int) m->copy.len) != 1)
        || PQputCopyEnd(m->new_db, NULL) != 1)
    {
        rc = legacy_error_set(m->err, LEGACY_E_DB, "copy: %s",
                              PQerrorMessage(m->new_db));
    }
    while ((res = PQgetResult(m->new_db)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == LEGACY_OK) {
            rc = legacy_error_set(m->err, LEGACY_E_DB, "copy: %s",
                                  PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    m->copy.len = 0;
    return rc;
}


/* Reads one legacy table into cleaned rows (caller frees *rows). */
static int
mig_read(mig_t *m, const char *sql, const char *table, int two_ids,
    mig_row_t **rows, size_t *n, legacy_migrate_table_t *t)
{
    PGresult  *res;
    size_t     i;
    mig_row_t *r;
    char       key[160];

    res = legacy_db_exec(m->old_db, sql, 0, NULL, PGRES_TUPLES_OK, m->err);
    if (res == NULL) {
        return LEGACY_ERROR;
    }
    *n = (size_t) PQntuples(res);
    *rows = calloc(*n ? *n : 1, sizeof(mig_row_t));
    if (*rows == NULL) {
        PQclear(res);
        return legacy_error_set(m->err, LEGACY_E_INTERNAL, "out of memory");
    }
    t->legacy_rows = (int64_t) *n;

    for (i = 0; i < *n; i++) {
        r = &(*rows)[i];
        r->row = (int) i;
        r->a = atoll(PQgetvalue(res, (int) i, two_ids ? 2 : 1));
        r->b = atoll(PQgetvalue(res, (int) i, two_ids ? 3 : 2));
        t->legacy_total += r->a;
        if (mig_clean(m, table, PQgetvalue(res, (int) i, 0), r->id)
            != LEGACY_OK
            || (two_ids && mig_clean(m, table, PQgetvalue(res, (int) i, 1),
                                     r->id2) != LEGACY_OK))
        {
            r->rejected = 1;
        }
        r->cleaned = strcmp(r->id, PQgetvalue(res, (int) i, 0)) != 0
                     || (two_ids
                         && strcmp(r->id2, PQgetvalue(res, (int) i, 1)) != 0);
        if (!r->rejected && r->a < 0) {
            r->rejected = 1;
            snprintf(key, sizeof(key), "%s%s%s", r->id, two_ids ? "/" : "",
                     r->id2);
            mig_issue(m, strcmp(table, "stock") == 0 ? "negative_stock"
                      : strcmp(table, "members") == 0 ? "negative_points"
                      : "negative_price", table, key, "value %lld; not"
                      " copied", (long long) r->a);
        }
        if (r->rejected) {
            t->rejected_rows++;
            t->rejected_total += r->a;
        }
    }
    PQclear(res);
    mig_dedup(m, table, *rows, *n, t);
    return LEGACY_OK;
}


/* Each store's channels (md_qd) as bits over the map's channel codes. */
static int
mig_store_channels(mig_t *m, const legacy_codes_t *codes, mig_row_t *stores,
    size_t nstores)
{
    legacy_migrate_table_t  *tc = &m->rep->tables[MIG_CHANNELS];
    PGresult                *res;
    mig_row_t               *s;
    char                     id[MIG_ID_MAX + 1];
    size_t                   i, k;
    int64_t                  code;

    res = legacy_db_exec(m->old_db, "SELECT mdbh, qd FROM legacy.md_qd"
                         " ORDER BY mdbh, qd", 0, NULL, PGRES_TUPLES_OK,
                         m->err);
    if (res == NULL) {
        return LEGACY_ERROR;
    }
    tc->legacy_rows = PQntuples(res);
    for (i = 0; i < (size_t) PQntuples(res); i++) {
        code = atoll(PQgetvalue(res, (int) i, 1));
        s = NULL;
        if (mig_clean(m, "channels", PQgetvalue(res, (int) i, 0), id)
            == LEGACY_OK)
        {
            s = mig_find(stores, nstores, id);
            if (s == NULL) {
                mig_issue(m, "bad_code", "channels", id, "channel %lld of"
                          " a store that is not migrated", (long long) code);
            }
        }
        for (k = 0; s != NULL && k < codes->n; k++) {
            if (codes->values[k] == code) {
                break;
            }
        }
        if (s != NULL && k == codes->n) {
            mig_issue(m, "bad_code", "channels", id, "channel code %lld is"
                      " not in the map", (long long) code);
            s = NULL;
        }
        if (s != NULL && (s->channels & (1u << k))) {
            mig_issue(m, "duplicate", "channels", id, "channel %lld listed"
                      " twice; not copied", (long long) code);
            s = NULL;
        }
        if (s == NULL) {
            tc->rejected_rows++;
            continue;
        }
        s->channels |= 1u << k;
        tc->migrated_rows++;
    }
    PQclear(res);
    return LEGACY_OK;
}


static int
mig_stores(mig_t *m, mig_row_t **stores, size_t *nstores)
{
    legacy_migrate_table_t  *t = &m->rep->tables[MIG_STORES];
    const legacy_codes_t    *codes;
    PGresult                *names;
    mig_row_t               *s;
    size_t                   i, j, k, x, order[32];

    codes = legacy_map_codes(m->map, "channel");
    if (codes == NULL || codes->n > 32) {
        return legacy_error_set(m->err, LEGACY_E_CONFIG,
                                "map: no \"channel\" code table");
    }
    if (mig_read(m, "SELECT mdbh, 0, 0 FROM legacy.md ORDER BY mdbh",
                 "stores", 0, stores, nstores, t) != LEGACY_OK)
    {
        return LEGACY_ERROR;
    }

    if (mig_store_channels(m, codes, *stores, *nstores) != LEGACY_OK) {
        return LEGACY_ERROR;
    }

    /* Names come with the copy, one query per migration, not per row. */
    names = legacy_db_exec(m->old_db, "SELECT mdbh, mdmc FROM legacy.md"
                           " ORDER BY mdbh", 0, NULL, PGRES_TUPLES_OK,
                           m->err);
    if (names == NULL) {
        return LEGACY_ERROR;
    }
    /* Channels are listed in code order, as the legacy system does. */
    for (j = 0; j < codes->n; j++) {
        order[j] = j;
        for (k = j; k > 0 && codes->values[order[k]]
                              < codes->values[order[k - 1]]; k--)
        {
            x = order[k];
            order[k] = order[k - 1];
            order[k - 1] = x;
        }
    }
    for (i = 0; i < *nstores; i++) {
        s = &(*stores)[i];
        if (s->rejected) {
            continue;
        }
        t->migrated_rows++;
        mig_field(&m->copy, s->id, 0);
        mig_field(&m->copy, PQgetvalue(names, s->row, 1), 0);
        legacy_buf_append(&m->copy, "{", 1);
        for (j = 0, k = 0; j < codes->n; j++) {
            if (s->channels & (1u << order[j])) {
                legacy_buf_printf(&m->copy, "%s%s", k++ ? "," : "",
                                  codes->names[order[j]]);
            }
        }
        legacy_buf_append(&m->copy, "}\n", 2);
    }
    PQclear(names);
    return mig_copy(m, "COPY newcore.stores (store_id, name, channels)"
                    " FROM STDIN");
}


static int
mig_skus(mig_t *m, mig_row_t **skus, size_t *nskus)
{
    legacy_migrate_table_t  *t = &m->rep->tables[MIG_SKUS];
    PGresult                *names;
    mig_row_t               *r;
    size_t                   i;

    if (mig_read(m, "SELECT spbm, lsj_fen, 0 FROM legacy.sp ORDER BY spbm",
                 "skus", 0, skus, nskus, t) != LEGACY_OK)
    {
        return LEGACY_ERROR;
    }
    names = legacy_db_exec(m->old_db, "SELECT spbm, spmc FROM legacy.sp"
                           " ORDER BY spbm", 0, NULL, PGRES_TUPLES_OK,
                           m->err);
    if (names == NULL) {
        return LEGACY_ERROR;
    }
    for (i = 0; i < *nskus; i++) {
        r = &(*skus)[i];
        if (r->rejected) {
            continue;
        }
        t->migrated_rows++;
        t->migrated_total += r->a;
        mig_field(&m->copy, r->id, 0);
        mig_field(&m->copy, PQgetvalue(names, r->row, 1), 0);
        legacy_buf_printf(&m->copy, "%lld\n", (long long) r->a);
    }
    PQclear(names);
    return mig_copy(m, "COPY newcore.skus (sku, name, price_fen)"
                    " FROM STDIN");
}


static int
mig_stock(mig_t *m, mig_row_t *stores, size_t nstores, mig_row_t *skus,
    size_t nskus)
{
    legacy_migrate_table_t  *t = &m->rep->tables[MIG_STOCK];
    mig_row_t               *rows = NULL, *r, *s, *k;
    size_t                   n = 0, i;
    char                     key[2 * MIG_ID_MAX + 2];
    int                      rc;

    if (mig_read(m, "SELECT mdbh, spbm, kcsl, ydsl FROM legacy.kc",
                 "stock", 1, &rows, &n, t) != LEGACY_OK)
    {
        free(rows);
        return LEGACY_ERROR;
    }
    for (i = 0; i < n; i++) {
        r = &rows[i];
        if (r->rejected) {
            continue;
        }
        s = mig_find(stores, nstores, r->id);
        k = mig_find(skus, nskus, r->id2);
        if (s == NULL || k == NULL || r->b < 0)
        {
            snprintf(key, sizeof(key), "%s/%s", r->id, r->id2);
            mig_issue(m, "bad_code", "stock", key, r->b < 0
                      ? "negative reserved quantity; not copied"
                      : "store or SKU not migrated; not copied");
            r->rejected = 1;
            t->rejected_rows++;
            t->rejected_total += r->a;
            continue;
        }
        t->migrated_rows++;
        t->migrated_total += r->a;
        legacy_buf_printf(&m->copy, "%s\t%s\t%lld\t%lld\n", r->id, r->id2,
                          (long long) r->a, (long long) r->b);
    }
    free(rows);
    rc = mig_copy(m, "COPY newcore.stock (store_id, sku, on_hand, reserved)"
                  " FROM STDIN");
    if (rc != LEGACY_OK) {
        return rc;
    }
    return legacy_db_command(m->new_db, "INSERT INTO newcore.ledger (kind,"
                             " store_id, sku, delta, reason) SELECT 'stock',"
                             " store_id, sku, on_hand, 'opening'"
                             " FROM newcore.stock", 0, NULL, m->err);
}


static int
mig_members(mig_t *m)
{
    legacy_migrate_table_t  *t = &m->rep->tables[MIG_MEMBERS];
    const legacy_codes_t    *tiers;
    mig_row_t               *rows = NULL, *r;
    const char              *tier, *want;
    size_t                   n = 0, i;
    int                      rc;

    tiers = legacy_map_codes(m->map, "tier");
    if (tiers == NULL) {
        return legacy_error_set(m->err, LEGACY_E_CONFIG,
                                "map: no \"tier\" code table");
    }
    if (mig_read(m, "SELECT hyh, jf, hydj FROM legacy.hy", "members", 0,
                 &rows, &n, t) != LEGACY_OK)
    {
        free(rows);
        return LEGACY_ERROR;
    }
    for (i = 0; i < n; i++) {
        r = &rows[i];
        if (r->rejected) {
            continue;
        }
        tier = legacy_codes_to_name(tiers, r->b);
        if (tier == NULL) {
            mig_issue(m, "bad_code", "members", r->id, "tier code %lld is"
                      " not in the map; not copied", (long long) r->b);
            r->rejected = 1;
            t->rejected_rows++;
            t->rejected_total += r->a;
            continue;
        }
        /* The new core derives the tier; a disagreement is worth a line. */
        want = r->a >= 3000 ? "gold" : r->a >= 1000 ? "silver" : "standard";
        if (strcmp(tier, want) != 0) {
            mig_issue(m, "tier_mismatch", "members", r->id, "legacy tier %s,"
                      " %lld points make it %s; copied", tier,
                      (long long) r->a, want);
        }
        t->migrated_rows++;
        t->migrated_total += r->a;
        legacy_buf_printf(&m->copy, "%s\t%lld\n", r->id, (long long) r->a);
    }
    free(rows);
    rc = mig_copy(m, "COPY newcore.members (member_id, points) FROM STDIN");
    if (rc != LEGACY_OK) {
        return rc;
    }
    return legacy_db_command(m->new_db, "INSERT INTO newcore.ledger (kind,"
                             " member_id, delta, reason) SELECT 'points',"
                             " member_id, points, 'opening'"
                             " FROM newcore.members", 0, NULL, m->err);
}


/* Two numbers from a one-row query. */
static int
mig_pair(PGconn *db, const char *sql, int64_t *a, int64_t *b,
    legacy_error_t *err)
{
    PGresult  *res;

    res = legacy_db_exec(db, sql, 0, NULL, PGRES_TUPLES_OK, err);
    if (res == NULL) {
        return LEGACY_ERROR;
    }
    *a = atoll(PQgetvalue(res, 0, 0));
    *b = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
    return LEGACY_OK;
}


static int
mig_prepare_target(mig_t *m, int replace)
{
    int64_t  rows, orders;

    if (mig_pair(m->new_db, "SELECT (SELECT count(*) FROM newcore.stores)"
                 " + (SELECT count(*) FROM newcore.skus) + (SELECT count(*)"
                 " FROM newcore.members), (SELECT count(*) FROM"
                 " newcore.orders)", &rows, &orders, m->err) != LEGACY_OK)
    {
        return LEGACY_ERROR;
    }
    if (rows == 0 && orders == 0) {
        return LEGACY_OK;
    }
    if (!replace || orders > 0) {
        return legacy_error_set(m->err, LEGACY_E_CONFIG,
                                "the new core already holds %lld master rows"
                                " and %lld orders; migrate into an empty"
                                " core (or --replace when it has no orders)",
                                (long long) rows, (long long) orders);
    }
    return legacy_db_command(m->new_db, "TRUNCATE newcore.stores,"
                             " newcore.skus, newcore.stock, newcore.members,"
                             " newcore.ledger, newcore.adjustments", 0, NULL,
                             m->err);
}


static int
mig_totals(mig_t *m)
{
    legacy_migrate_report_t  *rep = m->rep;
    legacy_migrate_table_t   *t;
    int64_t                   x;
    size_t                    i;

    if (mig_pair(m->new_db, "SELECT count(*), 0 FROM newcore.stores",
                 &rep->tables[MIG_STORES].new_rows, &x, m->err) != LEGACY_OK
        || mig_pair(m->new_db, "SELECT coalesce(sum(cardinality(channels)),"
                    " 0), 0 FROM newcore.stores",
                    &rep->tables[MIG_CHANNELS].new_rows, &x, m->err)
           != LEGACY_OK
        || mig_pair(m->new_db, "SELECT count(*), coalesce(sum(price_fen), 0)"
                    " FROM newcore.skus", &rep->tables[MIG_SKUS].new_rows,
                    &rep->tables[MIG_SKUS].new_total, m->err) != LEGACY_OK
        || mig_pair(m->new_db, "SELECT count(*), coalesce(sum(on_hand), 0)"
                    " FROM newcore.stock", &rep->tables[MIG_STOCK].new_rows,
                    &rep->tables[MIG_STOCK].new_total, m->err) != LEGACY_OK
        || mig_pair(m->new_db, "SELECT count(*), coalesce(sum(points), 0)"
                    " FROM newcore.members",
                    &rep->tables[MIG_MEMBERS].new_rows,
                    &rep->tables[MIG_MEMBERS].new_total, m->err)
           != LEGACY_OK
        || mig_pair(m->old_db, "SELECT count(*), coalesce(sum(zje_fen), 0)"
                    " FROM legacy.xsd WHERE zt = 1", &rep->legacy_open_orders,
                    &rep->legacy_open_fen, m->err) != LEGACY_OK
        || mig_pair(m->new_db, "SELECT count(*), coalesce(sum(total_fen), 0)"
                    " FROM newcore.orders WHERE status = 'paid'",
                    &rep->new_open_orders, &rep->new_open_fen, m->err)
           != LEGACY_OK)
    {
        return LEGACY_ERROR;
    }

    rep->balanced = 1;
    for (i = 0; i < LEGACY_MIGRATE_TABLES; i++) {
        t = &rep->tables[i];
        t->balanced = t->legacy_rows == t->migrated_rows + t->rejected_rows
                      && t->new_rows == t->migrated_rows
                      && t->legacy_total == t->migrated_total
                                            + t->rejected_total
                      && (t->unit == NULL || t->new_total
                                             == t->migrated_total);
        rep->balanced &= t->balanced;
    }
    return LEGACY_OK;
}


int
legacy_migrate_run(const legacy_map_t *map, const char *legacy_db,
    const char *new_db, int replace, legacy_migrate_report_t *report,
    legacy_error_t *err)
{
    static const char  *names[] = { "stores", "channels", "skus", "stock",
                                    "members" };
    static const char  *units[] = { NULL, NULL, "price_fen", "units",
                                    "points" };
    mig_t               m;
    mig_row_t          *stores = NULL, *skus = NULL;
    size_t              nstores = 0, nskus = 0, i;
    int                 rc = LEGACY_ERROR;

    memset(report, 0, sizeof(*report));
    for (i = 0; i < LEGACY_MIGRATE_TABLES; i++) {
        report->tables[i].table = names[i];
        report->tables[i].unit = units[i];
    }
    memset(&m, 0, sizeof(m));
    m.map = map;
    m.rep = report;
    m.err = err;

    m.old_db = legacy_db_connect(legacy_db, err);
    if (m.old_db == NULL) {
        goto cleanup;
    }
    m.new_db = legacy_db_connect(new_db, err);
    if (m.new_db == NULL) {
        goto cleanup;
    }

    /* One snapshot of the legacy side, one transaction on the new side. */
    if (legacy_db_command(m.old_db, "BEGIN ISOLATION LEVEL REPEATABLE READ"
                          " READ ONLY", 0, NULL, err) != LEGACY_OK
        || legacy_db_command(m.new_db, "BEGIN", 0, NULL, err) != LEGACY_OK
        || mig_prepare_target(&m, replace) != LEGACY_OK
        || mig_stores(&m, &stores, &nstores) != LEGACY_OK
        || mig_skus(&m, &skus, &nskus) != LEGACY_OK
        || mig_stock(&m, stores, nstores, skus, nskus) != LEGACY_OK
        || mig_members(&m) != LEGACY_OK
        || mig_totals(&m) != LEGACY_OK)
    {
        goto cleanup;
    }
    if (!report->balanced) {
        legacy_error_set(err, LEGACY_E_INTERNAL, "the migration does not"
                         " balance; nothing was committed");
        goto cleanup;
    }
    if (legacy_db_command(m.new_db, "COMMIT", 0, NULL, err) != LEGACY_OK) {
        goto cleanup;
    }
    rc = LEGACY_OK;

cleanup:
    if (rc != LEGACY_OK && m.new_db != NULL) {
        legacy_error_t  ignored;

        legacy_db_command(m.new_db, "ROLLBACK", 0, NULL, &ignored);
    }
    free(stores);
    free(skus);
    legacy_buf_free(&m.copy);
    PQfinish(m.old_db);
    PQfinish(m.new_db);
    return rc;
}
