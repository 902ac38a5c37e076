/*
 * newcore_seed_bulk: the demo data set in any size (--seed-stores,
 * --seed-skus), set-based SQL in one transaction: the same rows, for the
 * same sizes, as legacy-store-sim seeds, so both ledgers start equal.
 */

#ifndef NEWCORE_SEED_BULK_H
#define NEWCORE_SEED_BULK_H

#include "new_core/newcore_buf.h"

#define NEWCORE_SEED_STORES  200
#define NEWCORE_SEED_SKUS    2000

/* Loads stores x skus stock rows (with their opening ledger entries) and
 * the 10000 members; a no-op (*loaded 0) when stores exist. */
int newcore_seed_sized(const char *conninfo, int stores, int skus,
    int *loaded, newcore_error_t *err);

#endif /* NEWCORE_SEED_BULK_H */
