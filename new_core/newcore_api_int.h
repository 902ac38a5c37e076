/*
 * newcore_api_int.h: what the API's files share (not a public
 * interface: see newcore_api.h).
 */

#ifndef NEWCORE_API_INT_H
#define NEWCORE_API_INT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/cutover_hash.h"
#include "new_core/newcore_api.h"
#include "new_core/newcore_money.h"
#include "new_core/newcore_order.h"


void newcore_reply_error(newcore_reply_t *reply, int status, const char *code,
    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void newcore_reply_err(newcore_reply_t *reply, const newcore_error_t *err);
void newcore_api_outcome(PGresult *res, newcore_reply_t *reply);
void newcore_api_order_create(newcore_pool_t *pool,
    const newcore_request_t *req, newcore_reply_t *reply);
void newcore_api_order_get(newcore_pool_t *pool, const char *id,
    newcore_reply_t *reply);
void newcore_api_order_cancel(newcore_pool_t *pool,
    const newcore_request_t *req, const char *id, newcore_reply_t *reply);
void newcore_api_inventory_get(newcore_pool_t *pool, const char *store_id,
    const char *sku, newcore_reply_t *reply);
void newcore_api_inventory_adjust(newcore_pool_t *pool,
    const newcore_request_t *req, newcore_reply_t *reply);
void newcore_api_member_get(newcore_pool_t *pool, const char *id,
    newcore_reply_t *reply);

#endif /* NEWCORE_API_INT_H */
