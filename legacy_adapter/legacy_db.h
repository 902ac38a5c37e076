/* legacy: thin libpq helpers (parameters only, exact result checks). */

#ifndef LEGACY_DB_H
#define LEGACY_DB_H

#include <libpq-fe.h>

#include "legacy_adapter/legacy_common.h"

/*
 * Runs one statement with text parameters.  Returns the result when its
 * status is `expect` (the caller PQclear()s it), else NULL with err set
 * (the result already cleared).
 */
PGresult *legacy_db_exec(PGconn *db, const char *sql, int nparams,
    const char *const *params, ExecStatusType expect, legacy_error_t *err);

/* A statement whose result is not needed (PGRES_COMMAND_OK or TUPLES_OK). */
int legacy_db_command(PGconn *db, const char *sql, int nparams,
    const char *const *params, legacy_error_t *err);

/* Runs a script of ";\n"-separated statements (no parameters). */
int legacy_db_script(PGconn *db, const char *script, legacy_error_t *err);

/* Connects; NULL with err set on failure. */
PGconn *legacy_db_connect(const char *conninfo, legacy_error_t *err);

#endif
