/* legacy: libpq helpers shared by the sim and the migration. */

#include <stdlib.h>
#include <string.h>

#include "legacy_adapter/legacy_db.h"


PGresult *
legacy_db_exec(PGconn *db, const char *sql, int nparams,
    const char *const *params, ExecStatusType expect, legacy_error_t *err)
{
    PGresult  *res;
    char      *nl;

    res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
    if (res != NULL && PQresultStatus(res) == expect) {
        return res;
    }

    legacy_error_set(err, LEGACY_E_DB, "%s",
                     res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    nl = strchr(err->message, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    PQclear(res);
    return NULL;
}


int
legacy_db_command(PGconn *db, const char *sql, int nparams,
    const char *const *params, legacy_error_t *err)
{
    PGresult        *res;
    ExecStatusType   st;
    char            *nl;

    res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(res);
        return LEGACY_OK;
    }

    legacy_error_set(err, LEGACY_E_DB, "%s",
                     res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    nl = strchr(err->message, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    PQclear(res);
    return LEGACY_ERROR;
}


int
legacy_db_script(PGconn *db, const char *script, legacy_error_t *err)
{
    char  *copy, *stmt, *end;
    int    rc = LEGACY_OK;

    copy = strdup(script);
    if (copy == NULL) {
        return legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
    }
    for (stmt = copy; rc == LEGACY_OK && *stmt != '\0'; stmt = end) {
        end = strstr(stmt, ";\n");
        if (end == NULL) {
            end = stmt + strlen(stmt);
        } else {
            *end = '\0';
            end += 2;
        }
        if (strspn(stmt, " \t\r\n") == strlen(stmt)) {
            continue;
        }
        rc = legacy_db_command(db, stmt, 0, NULL, err);
    }
    free(copy);
    return rc;
}


PGconn *
legacy_db_connect(const char *conninfo, legacy_error_t *err)
{
    PGconn  *db;
    char    *nl;

    db = PQconnectdb(conninfo);
    if (db == NULL || PQstatus(db) != CONNECTION_OK) {
        legacy_error_set(err, LEGACY_E_DB, "database: %s",
                         db ? PQerrorMessage(db) : "out of memory");
        nl = strchr(err->message, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        PQfinish(db);
        return NULL;
    }
    return db;
}
