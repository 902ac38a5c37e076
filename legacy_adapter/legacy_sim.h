/*
 * legacy: the stand-in legacy store system.  Its own ledger in schema
 * "legacy", its own dialect (pinyin field names, fen, numeric channel codes,
 * YYYYMMDDHHMMSS China time, an always-200 {"code","msg","data"} envelope,
 * BSON or JSON bodies) and its own quirks, each switchable:
 *
 *   points_floor         points earned = floor(total in yuan); the new core
 *                        rounds half up.
 *   oversell             a sale may drive stock below zero instead of being
 *                        refused as out of stock.
 *   cancel_keeps_points  cancelling an order does not take back the points
 *                        it earned (stock is still restored).
 *
 * Endpoints (all POST, body in, envelope out; GET /lsapi/health too):
 *   /lsapi/xsd/create   sales order  {qqlsh, djh?, mdbh, qd, hyh?, mx, zf?}
 *   /lsapi/xsd/query    {djh}        /lsapi/xsd/cancel {qqlsh, djh}
 *   /lsapi/kc/query     {mdbh, spbm} /lsapi/kc/adjust {qqlsh, mdbh, spbm,
 *                                                      tzsl, tzyy}
 *   /lsapi/hy/query     {hyh}
 * A write carrying a qqlsh (request serial number) is applied once; a replay
 * gets the first answer, the same qqlsh with another body gets code 3003.
 */

#ifndef LEGACY_SIM_H
#define LEGACY_SIM_H

#include "legacy_adapter/legacy_common.h"
#include "legacy_adapter/legacy_server.h"

/* Legacy answer codes (the "code" of the envelope). */
#define LEGACY_SIM_OK              0
#define LEGACY_SIM_BAD_PARAM       1001
#define LEGACY_SIM_BAD_REFERENCE   1002   /* store does not sell there */
#define LEGACY_SIM_NO_RECORD       1004   /* unknown store/sku/member */
#define LEGACY_SIM_NO_STOCK        2001
#define LEGACY_SIM_DUP_ORDER       3001
#define LEGACY_SIM_SERIAL_BUSY     3002
#define LEGACY_SIM_SERIAL_CLASH    3003
#define LEGACY_SIM_CANCELLED       3004
#define LEGACY_SIM_BUSY            9001

extern const char legacy_sim_schema[];

typedef struct {
    const char      *conninfo;
    int              points_floor;
    int              oversell;
    int              cancel_keeps_points;
    int              delay_ms;          /* answer this much later (tests) */
    int              time_offset_min;   /* 480: China time */
    unsigned         connections;       /* database pool, 0: 8 */
    legacy_log_fn    log;
    void            *log_data;
} legacy_sim_config_t;

typedef struct legacy_sim_s legacy_sim_t;

/* "points_floor,oversell" switches those on and the others off. */
int legacy_sim_parse_quirks(const char *list, legacy_sim_config_t *cfg,
    legacy_error_t *err);

int legacy_sim_init_schema(const char *conninfo, legacy_error_t *err);

/* Loads the demo ledger; a clean re-seed on a seeded database. */
int legacy_sim_seed(const char *conninfo, legacy_error_t *err);

/* cfg is copied (conninfo too).  Free with legacy_sim_free(). */
legacy_sim_t *legacy_sim_new(const legacy_sim_config_t *cfg,
    legacy_error_t *err);
void legacy_sim_free(legacy_sim_t *sim);

/* The legacy_handler_fn of the sim's server; data is the legacy_sim_t. */
void legacy_sim_handle(void *data, const legacy_request_t *req,
    legacy_response_t *resp);

#endif
