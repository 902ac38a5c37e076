/*
 * legacy_sim_internal.h: what the stand-in legacy store system's files
 * share (not a public interface: see legacy_sim.h).
 */

#ifndef LEGACY_SIM_INTERNAL_H
#define LEGACY_SIM_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bson/bson.h>

#include "legacy_adapter/legacy_convert.h"
#include "legacy_adapter/legacy_db.h"
#include "legacy_adapter/legacy_json.h"
#include "legacy_adapter/legacy_sim.h"


#define SIM_LINES_MAX    100
#define SIM_QTY_MAX      100000
#define SIM_CONNECTIONS  8

/* The database pool: idle connections are taken last in, first out. */
struct legacy_sim_s {
    legacy_sim_config_t  cfg;
    char                *conninfo;
    pthread_mutex_t      lock;
    pthread_cond_t       returned;
    PGconn             **idle;
    unsigned             nidle;
    unsigned             made;
};

/* One request in flight. */
typedef struct {
    legacy_sim_t    *sim;
    PGconn          *db;
    int              code;
    char             msg[200];
    bson_t           data;
    int              has_data;
} sim_req_t;

typedef struct {
    const char  *spbm;
    int64_t      sl;
    int64_t      dj;
    int          has_dj;
    int64_t      je;
} sim_line_t;

typedef int (*sim_op_fn)(sim_req_t *r, const bson_t *body);

/* A sales order being created. */
typedef struct {
    const char   *mdbh;
    const char   *hyh;
    const char   *djh;
    int64_t       qd;
    int64_t       zffs;
    int64_t       zf_je;
    int64_t       total;
    int64_t       points;
    sim_line_t    lines[SIM_LINES_MAX];
    size_t        n;
    char          djh_buf[64];
} sim_order_t;


int sim_fail(sim_req_t *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sim_db_fail(sim_req_t *r, legacy_error_t *err);
int sim_doc_str(const bson_t *d, const char *key, const char **out);
int sim_doc_int(const bson_t *d, const char *key, int64_t *out);
int sim_create_order(sim_req_t *r, const bson_t *body);
int sim_query_order(sim_req_t *r, const bson_t *body);
int sim_cancel_order(sim_req_t *r, const bson_t *body);
int sim_query_stock(sim_req_t *r, const bson_t *body);
int sim_adjust_stock(sim_req_t *r, const bson_t *body);
int sim_query_member(sim_req_t *r, const bson_t *body);

#endif /* LEGACY_SIM_INTERNAL_H */
