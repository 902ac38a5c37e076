/* Order and stock-adjustment requests: parse, validate, price, answer. */

#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "new_core/newcore_money.h"
#include "new_core/newcore_order.h"


static bson_t *newcore_json_doc(const char *body, size_t len,
    newcore_error_t *err);
static int newcore_get_id(const bson_t *doc, const char *field, char *out,
    int optional, newcore_error_t *err);
static int newcore_get_int(bson_iter_t *it, const char *field, int64_t *out,
    newcore_error_t *err);
static int newcore_get_money(bson_iter_t *it, const char *field,
    int64_t *fen, newcore_error_t *err);
static int newcore_parse_lines(newcore_order_t *order, const bson_t *doc,
    newcore_error_t *err);
static int newcore_parse_line(newcore_line_t *line, size_t n,
    bson_iter_t *it, newcore_error_t *err);
static int newcore_parse_payment(newcore_order_t *order, const bson_t *doc,
    newcore_error_t *err);
static int newcore_known_fields(const bson_t *doc, const char *where,
    const char *const *known, newcore_error_t *err);

static const char *const  newcore_order_fields[] = {
    "order_id", "store_id", "channel", "member_id", "lines", "payment", NULL
};
static const char *const  newcore_line_fields[] = {
    "sku", "qty", "unit_price", NULL
};
static const char *const  newcore_payment_fields[] = {
    "method", "amount", NULL
};
static const char *const  newcore_adjust_fields[] = {
    "store_id", "sku", "delta", "reason", NULL
};


newcore_order_t *
newcore_order_new(void)
{
    return calloc(1, sizeof(newcore_order_t));
}


void
newcore_order_free(newcore_order_t *order)
{
    free(order);
}


int
newcore_id_valid(const char *s, size_t len)
{
    return cutover_api_id_valid(s, len);
}


int
newcore_channel_valid(const char *s)
{
    return strcmp(s, "pos") == 0 || strcmp(s, "eshop") == 0
           || strcmp(s, "miniapp") == 0 || strcmp(s, "marketplace") == 0;
}


static bson_t *
newcore_json_doc(const char *body, size_t len, newcore_error_t *err)
{
    size_t         i;
    bson_t        *doc;
    bson_error_t   error;

    for (i = 0; i < len && body[i] != '\0'
                && strchr(" \t\r\n", body[i]) != NULL; i++)
    {
        /* skip the whitespace JSON allows before the object */
    }

    if (i == len) {
        newcore_error_set(err, 400, "invalid_request", "empty body");
        return NULL;
    }

    if (len > NEWCORE_BODY_MAX) {
        newcore_error_set(err, 413, "invalid_request",
                          "body larger than %d bytes", NEWCORE_BODY_MAX);
        return NULL;
    }

    if (memchr(body, '\0', len) != NULL || body[i] != '{') {
        newcore_error_set(err, 400, "invalid_request",
                          "body is not a JSON object");
        return NULL;
    }

    doc = bson_new_from_json((const uint8_t *) body, (ssize_t) len, &error);
    if (doc == NULL) {
        newcore_error_set(err, 400, "invalid_request", "malformed JSON: %s",
                          error.message);
        return NULL;
    }

    return doc;
}


/*
 * Every key of doc must be one of known: a field the core does not know is
 * refused (400, named as $.where.field), never silently dropped.
 */
static int
newcore_known_fields(const bson_t *doc, const char *where,
    const char *const *known, newcore_error_t *err)
{
    size_t        i;
    bson_iter_t   it;
    const char   *key;

    if (!bson_iter_init(&it, doc)) {
        newcore_error_set(err, 400, "invalid_request", "bad object");
        return NEWCORE_ERROR;
    }

    while (bson_iter_next(&it)) {
        key = bson_iter_key(&it);
        for (i = 0; known[i] != NULL; i++) {
            if (strcmp(known[i], key) == 0) {
                break;
            }
        }

        if (known[i] == NULL) {
            newcore_error_set(err, 400, "invalid_request",
                              "$%s.%.100s: unknown field", where, key);
            return NEWCORE_ERROR;
        }
    }

    return NEWCORE_OK;
}


/* A string field holding an id; absent or null is fine when optional. */
static int
newcore_get_id(const bson_t *doc, const char *field, char *out, int optional,
    newcore_error_t *err)
{
    bson_iter_t   it;
    const char   *s;
    uint32_t      len;

    out[0] = '\0';

    if (!bson_iter_init_find(&it, doc, field)
        || BSON_ITER_HOLDS_NULL(&it))
    {
        if (optional) {
            return NEWCORE_OK;
        }
        newcore_error_set(err, 400, "invalid_request", "missing field %s",
                          field);
        return NEWCORE_ERROR;
    }

    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        newcore_error_set(err, 400, "invalid_request",
                          "field %s must be a string", field);
        return NEWCORE_ERROR;
    }

    s = bson_iter_utf8(&it, &len);
    if (!newcore_id_valid(s, len)) {
        newcore_error_set(err, 400, "invalid_request",
                          "field %s must be 1-%d characters of "
                          "A-Z a-z 0-9 . _ -", field, NEWCORE_ID_MAX);
        return NEWCORE_ERROR;
    }

    memcpy(out, s, len);
    out[len] = '\0';
    return NEWCORE_OK;
}


static int
newcore_get_int(bson_iter_t *it, const char *field, int64_t *out,
    newcore_error_t *err)
{
    if (BSON_ITER_HOLDS_INT32(it)) {
        *out = bson_iter_int32(it);
        return NEWCORE_OK;
    }

    if (BSON_ITER_HOLDS_INT64(it)) {
        *out = bson_iter_int64(it);
        return NEWCORE_OK;
    }

    newcore_error_set(err, 400, "invalid_request",
                      "field %s must be an integer", field);
    return NEWCORE_ERROR;
}


static int
newcore_get_money(bson_iter_t *it, const char *field, int64_t *fen,
    newcore_error_t *err)
{
    const char  *s;
    uint32_t     len;

    if (!BSON_ITER_HOLDS_UTF8(it)) {
        newcore_error_set(err, 400, "invalid_request",
                          "field %s must be a decimal string like \"12.50\"",
                          field);
        return NEWCORE_ERROR;
    }

    s = bson_iter_utf8(it, &len);
    if (newcore_money_parse(s, len, fen) != NEWCORE_OK) {
        newcore_error_set(err, 400, "invalid_request",
                          "field %s must be a non-negative decimal with at "
                          "most two places", field);
        return NEWCORE_ERROR;
    }

    return NEWCORE_OK;
}


int
newcore_order_parse(newcore_order_t *order, const char *body, size_t len,
    newcore_error_t *err)
{
    bson_t  *doc;
    int      rc;

    memset(order, 0, sizeof(*order));
    order->payment_fen = -1;
    strcpy(order->status, "paid");

    doc = newcore_json_doc(body, len, err);
    if (doc == NULL) {
        return NEWCORE_ERROR;
    }

    rc = NEWCORE_ERROR;

    if (newcore_known_fields(doc, "", newcore_order_fields, err)
        != NEWCORE_OK)
    {
        goto cleanup;
    }

    if (newcore_get_id(doc, "order_id", order->order_id, 1, err)
        || newcore_get_id(doc, "store_id", order->store_id, 0, err)
        || newcore_get_id(doc, "member_id", order->member_id, 1, err))
    {
        goto cleanup;
    }

    if (newcore_get_id(doc, "channel", order->channel, 0, err) == NEWCORE_OK
        && !newcore_channel_valid(order->channel))
    {
        newcore_error_set(err, 400, "invalid_request",
                          "channel must be pos, eshop, miniapp or "
                          "marketplace");
        goto cleanup;
    }

    if (order->channel[0] == '\0'
        || newcore_parse_lines(order, doc, err) != NEWCORE_OK
        || newcore_parse_payment(order, doc, err) != NEWCORE_OK)
    {
        goto cleanup;
    }

    rc = NEWCORE_OK;

cleanup:

    bson_destroy(doc);
    return rc;
}


static int
newcore_parse_lines(newcore_order_t *order, const bson_t *doc,
    newcore_error_t *err)
{
    bson_iter_t  it, child;

    if (!bson_iter_init_find(&it, doc, "lines")) {
        newcore_error_set(err, 400, "invalid_request", "missing field lines");
        return NEWCORE_ERROR;
    }

    if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &child)) {
        newcore_error_set(err, 400, "invalid_request",
                          "field lines must be an array");
        return NEWCORE_ERROR;
    }

    while (bson_iter_next(&child)) {
        if (order->nlines == NEWCORE_ORDER_MAX_LINES) {
            newcore_error_set(err, 400, "invalid_request",
                              "more than %d lines", NEWCORE_ORDER_MAX_LINES);
            return NEWCORE_ERROR;
        }

        if (newcore_parse_line(&order->lines[order->nlines], order->nlines,
                               &child, err)
            != NEWCORE_OK)
        {
            return NEWCORE_ERROR;
        }

        order->nlines++;
    }

    if (order->nlines == 0) {
        newcore_error_set(err, 400, "invalid_request",
                          "an order needs at least one line");
        return NEWCORE_ERROR;
    }

    return NEWCORE_OK;
}


static int
newcore_parse_line(newcore_line_t *line, size_t n, bson_iter_t *it,
    newcore_error_t *err)
{
    bson_t         sub;
    bson_iter_t    f;
    const uint8_t *data;
    uint32_t       len;
    int            rc;
    char           where[32];

    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        newcore_error_set(err, 400, "invalid_request",
                          "lines[%zu] must be an object", n);
        return NEWCORE_ERROR;
    }

    bson_iter_document(it, &len, &data);
    if (!bson_init_static(&sub, data, len)) {
        newcore_error_set(err, 400, "invalid_request",
                          "lines[%zu] is not a valid object", n);
        return NEWCORE_ERROR;
    }

    snprintf(where, sizeof(where), ".lines[%zu]", n);
    if (newcore_known_fields(&sub, where, newcore_line_fields, err)
        != NEWCORE_OK)
    {
        return NEWCORE_ERROR;
    }

    if (newcore_get_id(&sub, "sku", line->sku, 0, err) != NEWCORE_OK) {
        snprintf(err->message, sizeof(err->message),
                 "lines[%zu].sku must be a SKU id", n);
        return NEWCORE_ERROR;
    }

    if (!bson_iter_init_find(&f, &sub, "qty")) {
        newcore_error_set(err, 400, "invalid_request",
                          "missing field lines[%zu].qty", n);
        return NEWCORE_ERROR;
    }

    if (newcore_get_int(&f, "qty", &line->qty, err) != NEWCORE_OK) {
        return NEWCORE_ERROR;
    }

    if (line->qty <= 0 || line->qty > NEWCORE_QTY_MAX) {
        newcore_error_set(err, 400, "invalid_request",
                          "lines[%zu].qty must be 1 to %d", n,
                          NEWCORE_QTY_MAX);
        return NEWCORE_ERROR;
    }

    line->unit_price_fen = -1;
    rc = NEWCORE_OK;

    if (bson_iter_init_find(&f, &sub, "unit_price")
        && !BSON_ITER_HOLDS_NULL(&f))
    {
        rc = newcore_get_money(&f, "unit_price", &line->unit_price_fen, err);
    }

    return rc;
}


static int
newcore_parse_payment(newcore_order_t *order, const bson_t *doc,
    newcore_error_t *err)
{
    bson_t         sub;
    bson_iter_t    it, f;
    const uint8_t *data;
    const char    *s;
    uint32_t       len;

    if (!bson_iter_init_find(&it, doc, "payment")) {
        newcore_error_set(err, 400, "invalid_request",
                          "missing field payment");
        return NEWCORE_ERROR;
    }

    if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
        newcore_error_set(err, 400, "invalid_request",
                          "field payment must be an object");
        return NEWCORE_ERROR;
    }

    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&sub, data, len)) {
        newcore_error_set(err, 400, "invalid_request", "bad payment");
        return NEWCORE_ERROR;
    }

    if (newcore_known_fields(&sub, ".payment", newcore_payment_fields, err)
        != NEWCORE_OK)
    {
        return NEWCORE_ERROR;
    }

    if (!bson_iter_init_find(&f, &sub, "method") || !BSON_ITER_HOLDS_UTF8(&f))
    {
        newcore_error_set(err, 400, "invalid_request",
                          "missing field payment.method");
        return NEWCORE_ERROR;
    }

    s = bson_iter_utf8(&f, &len);
    if (!((len == 4 && memcmp(s, "cash", 4) == 0)
          || (len == 4 && memcmp(s, "card", 4) == 0)
          || (len == 6 && memcmp(s, "wallet", 6) == 0)))
    {
        newcore_error_set(err, 400, "invalid_request",
                          "payment.method must be cash, card or wallet");
        return NEWCORE_ERROR;
    }

    memcpy(order->payment_method, s, len);
    order->payment_method[len] = '\0';

    if (bson_iter_init_find(&f, &sub, "amount") && !BSON_ITER_HOLDS_NULL(&f))
    {
        return newcore_get_money(&f, "payment.amount", &order->payment_fen,
                                 err);
    }

    return NEWCORE_OK;
}


int
newcore_order_price(newcore_order_t *order, newcore_error_t *err)
{
    size_t           i;
    int64_t          total;
    newcore_line_t  *line;
    char             a[NEWCORE_MONEY_STRLEN], b[NEWCORE_MONEY_STRLEN];

    total = 0;

    for (i = 0; i < order->nlines; i++) {
        line = &order->lines[i];

        if (line->unit_price_fen < 0
            || newcore_money_mul(line->unit_price_fen, line->qty,
                                 &line->amount_fen) != NEWCORE_OK
            || newcore_money_add(total, line->amount_fen, &total)
               != NEWCORE_OK)
        {
            newcore_error_set(err, 400, "invalid_request",
                              "lines[%zu]: amount out of range", i);
            return NEWCORE_ERROR;
        }
    }

    if (order->payment_fen >= 0 && order->payment_fen != total) {
        newcore_error_set(err, 400, "invalid_request",
                          "payment.amount %s does not equal the total %s",
                          newcore_money_format(order->payment_fen, a,
                                               sizeof(a)),
                          newcore_money_format(total, b, sizeof(b)));
        return NEWCORE_ERROR;
    }

    order->total_fen = total;
    order->payment_fen = total;
    order->points_earned = order->member_id[0]
                           ? newcore_points_earned(total) : 0;
    return NEWCORE_OK;
}


int
newcore_order_json(const newcore_order_t *order, newcore_buf_t *b)
{
    size_t                 i;
    const newcore_line_t  *line;
    char                   m1[NEWCORE_MONEY_STRLEN], m2[NEWCORE_MONEY_STRLEN];

    newcore_buf_printf(b, "{\"order_id\":\"%s\",\"store_id\":\"%s\","
                       "\"channel\":\"%s\",\"member_id\":",
                       order->order_id, order->store_id, order->channel);

    if (order->member_id[0]) {
        newcore_buf_printf(b, "\"%s\"", order->member_id);
    } else {
        newcore_buf_puts(b, "null");
    }

    newcore_buf_printf(b, ",\"status\":\"%s\",\"lines\":[", order->status);

    for (i = 0; i < order->nlines; i++) {
        line = &order->lines[i];
        newcore_buf_printf(b, "%s{\"sku\":\"%s\",\"qty\":%lld,"
                           "\"unit_price\":\"%s\",\"amount\":\"%s\"}",
                           i ? "," : "", line->sku, (long long) line->qty,
                           newcore_money_format(line->unit_price_fen, m1,
                                                sizeof(m1)),
                           newcore_money_format(line->amount_fen, m2,
                                                sizeof(m2)));
    }

    return newcore_buf_printf(b, "],\"total\":\"%s\",\"points_earned\":%lld,"
                              "\"created_at\":\"%s\"}",
                              newcore_money_format(order->total_fen, m1,
                                                   sizeof(m1)),
                              (long long) order->points_earned,
                              order->created_at);
}


int
newcore_adjust_parse(newcore_adjust_t *adj, const char *body, size_t len,
    newcore_error_t *err)
{
    bson_t       *doc;
    bson_iter_t   it;
    const char   *s;
    uint32_t      slen;
    int           rc;

    memset(adj, 0, sizeof(*adj));

    doc = newcore_json_doc(body, len, err);
    if (doc == NULL) {
        return NEWCORE_ERROR;
    }

    rc = NEWCORE_ERROR;

    if (newcore_known_fields(doc, "", newcore_adjust_fields, err)
        != NEWCORE_OK)
    {
        goto cleanup;
    }

    if (newcore_get_id(doc, "store_id", adj->store_id, 0, err)
        || newcore_get_id(doc, "sku", adj->sku, 0, err))
    {
        goto cleanup;
    }

    if (!bson_iter_init_find(&it, doc, "delta")) {
        newcore_error_set(err, 400, "invalid_request", "missing field delta");
        goto cleanup;
    }

    if (newcore_get_int(&it, "delta", &adj->delta, err) != NEWCORE_OK) {
        goto cleanup;
    }

    if (adj->delta == 0 || adj->delta > NEWCORE_DELTA_MAX
        || adj->delta < -NEWCORE_DELTA_MAX)
    {
        newcore_error_set(err, 400, "invalid_request",
                          "delta must be a non-zero integer within +-%d",
                          NEWCORE_DELTA_MAX);
        goto cleanup;
    }

    if (!bson_iter_init_find(&it, doc, "reason")
        || !BSON_ITER_HOLDS_UTF8(&it))
    {
        newcore_error_set(err, 400, "invalid_request",
                          "missing field reason");
        goto cleanup;
    }

    s = bson_iter_utf8(&it, &slen);
    if (!((slen == 7 && memcmp(s, "receipt", 7) == 0)
          || (slen == 9 && memcmp(s, "stocktake", 9) == 0)
          || (slen == 6 && memcmp(s, "damage", 6) == 0)))
    {
        newcore_error_set(err, 400, "invalid_request",
                          "reason must be receipt, stocktake or damage");
        goto cleanup;
    }

    memcpy(adj->reason, s, slen);
    adj->reason[slen] = '\0';
    rc = NEWCORE_OK;

cleanup:

    bson_destroy(doc);
    return rc;
}


int
newcore_inventory_json(newcore_buf_t *b, const char *store_id,
    const char *sku, int64_t on_hand, int64_t reserved)
{
    return newcore_buf_printf(b, "{\"store_id\":\"%s\",\"sku\":\"%s\","
                              "\"on_hand\":%lld,\"reserved\":%lld,"
                              "\"available\":%lld}",
                              store_id, sku, (long long) on_hand,
                              (long long) reserved,
                              (long long) (on_hand - reserved));
}
