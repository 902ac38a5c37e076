/* Order and stock-adjustment requests: parse, validate, price, answer. */

#ifndef NEWCORE_ORDER_H
#define NEWCORE_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_api.h"
#include "new_core/newcore_buf.h"

#define NEWCORE_ID_MAX           CUTOVER_API_ID_MAX
#define NEWCORE_ORDER_MAX_LINES  CUTOVER_API_LINES_MAX
#define NEWCORE_QTY_MAX          10000
#define NEWCORE_DELTA_MAX        1000000
#define NEWCORE_BODY_MAX         CUTOVER_API_BODY_MAX

typedef struct {
    char     sku[NEWCORE_ID_MAX + 1];
    int64_t  qty;
    int64_t  unit_price_fen;        /* -1: not given, the list price applies */
    int64_t  amount_fen;
} newcore_line_t;

typedef struct {
    char            order_id[NEWCORE_ID_MAX + 1];   /* "" until assigned */
    char            store_id[NEWCORE_ID_MAX + 1];
    char            channel[16];
    char            member_id[NEWCORE_ID_MAX + 1];  /* "" for no member */
    char            status[16];                     /* "paid", "cancelled" */
    char            payment_method[16];
    int64_t         payment_fen;                    /* -1: not given */
    int64_t         total_fen;
    int64_t         points_earned;
    char            created_at[40];                 /* RFC 3339 UTC */
    size_t          nlines;
    newcore_line_t  lines[NEWCORE_ORDER_MAX_LINES];
} newcore_order_t;

typedef struct {
    char     store_id[NEWCORE_ID_MAX + 1];
    char     sku[NEWCORE_ID_MAX + 1];
    int64_t  delta;
    char     reason[16];
} newcore_adjust_t;

/* Zeroed order; the caller frees it with newcore_order_free(). */
newcore_order_t *newcore_order_new(void);
void newcore_order_free(newcore_order_t *order);

/* 1..64 characters of [A-Za-z0-9._-] (cutover_api_id_valid). */
int newcore_id_valid(const char *s, size_t len);

/* One of pos, eshop, miniapp, marketplace. */
int newcore_channel_valid(const char *s);

/*
 * Parses and validates a POST /api/v1/orders body (JSON).  Fills order with
 * what the client sent; prices not given are left at -1.  On a bad body
 * (an unknown field too, named in the message) returns NEWCORE_ERROR with
 * err set (400 invalid_request).
 */
int newcore_order_parse(newcore_order_t *order, const char *body, size_t len,
    newcore_error_t *err);

/*
 * Once every line has its unit price: line amounts, the total, the payment
 * check (given amount must equal the total) and the points earned (none
 * without a member).  NEWCORE_ERROR with err set on overflow or mismatch.
 */
int newcore_order_price(newcore_order_t *order, newcore_error_t *err);

/* Appends the canonical order JSON. */
int newcore_order_json(const newcore_order_t *order, newcore_buf_t *b);

/* Parses a POST /api/v1/inventory/adjust body. */
int newcore_adjust_parse(newcore_adjust_t *adj, const char *body, size_t len,
    newcore_error_t *err);

/* Appends {"store_id","sku","on_hand","reserved","available"}. */
int newcore_inventory_json(newcore_buf_t *b, const char *store_id,
    const char *sku, int64_t on_hand, int64_t reserved);

#endif /* NEWCORE_ORDER_H */
