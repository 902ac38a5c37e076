/*
 * legacy_seed: the stand-in's demo ledger in any size (--seed-stores,
 * --seed-skus): the same rows, for the same sizes, as cutover-newcore
 * seeds, so both ledgers start equal.
 */

#ifndef LEGACY_SEED_H
#define LEGACY_SEED_H

#include "legacy_adapter/legacy_common.h"

#define LEGACY_SEED_STORES  200
#define LEGACY_SEED_SKUS    2000

/* A clean re-seed: stores x skus stock rows and 10000 members. */
int legacy_sim_seed_sized(const char *conninfo, int stores, int skus,
    legacy_error_t *err);

#endif /* LEGACY_SEED_H */
