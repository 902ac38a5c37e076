/*
 * legacy: the store-system migration.  Copies stores (with their channels),
 * SKUs, stock and members from the legacy ledger into the new core's schema
 * (new_core/schema.sql) through the map's code tables, cleaning ids (trim,
 * upper case) and reporting, not copying, duplicates, bad codes, negative
 * stock and negative points.  The report holds both sides' counts and
 * totals so the migration can be seen to balance.
 */

#ifndef LEGACY_MIGRATE_H
#define LEGACY_MIGRATE_H

#include <stdint.h>

#include "legacy_adapter/legacy_map.h"

#define LEGACY_MIGRATE_TABLES      5
#define LEGACY_MIGRATE_ISSUES_MAX  200   /* kept as samples; all counted */

typedef struct {
    const char  *table;           /* stores, channels, skus, stock, members */
    const char  *unit;            /* what the total sums, or NULL */
    int64_t      legacy_rows;     /* read from the legacy ledger */
    int64_t      migrated_rows;   /* written */
    int64_t      rejected_rows;   /* reported, not copied */
    int64_t      legacy_total;
    int64_t      migrated_total;
    int64_t      rejected_total;
    int64_t      new_rows;        /* counted on the new side afterwards */
    int64_t      new_total;
    int          balanced;
} legacy_migrate_table_t;

typedef struct {
    char  kind[24];               /* duplicate, bad_code, negative_stock... */
    char  table[16];
    char  key[80];
    char  detail[120];
} legacy_migrate_issue_t;

typedef struct {
    legacy_migrate_table_t   tables[LEGACY_MIGRATE_TABLES];
    legacy_migrate_issue_t   issues[LEGACY_MIGRATE_ISSUES_MAX];
    size_t                   nissues;         /* samples kept */
    int64_t                  issue_count;     /* all of them */
    int64_t                  cleaned_ids;     /* trimmed or upper-cased */
    int64_t                  legacy_open_orders;
    int64_t                  legacy_open_fen;
    int64_t                  new_open_orders;
    int64_t                  new_open_fen;
    int                      balanced;        /* every table balances */
} legacy_migrate_report_t;

/*
 * Runs the migration in one transaction on the new side.  The new core's
 * tables must be empty, or `replace` set and no orders there (then stores,
 * SKUs, stock, members and their opening ledger entries are replaced).
 */
int legacy_migrate_run(const legacy_map_t *map, const char *legacy_db,
    const char *new_db, int replace, legacy_migrate_report_t *report,
    legacy_error_t *err);

#endif
