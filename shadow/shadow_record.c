/*
 * shadow_record: a dual-run record encoded as one BSON document into the
 * caller's buffer (no allocation, no libbson: nginx workers compile this).
 */

#include <stdint.h>
#include <string.h>

#include "shadow/shadow_log.h"


typedef struct {
    uint8_t  *buf;
    size_t    cap;
    size_t    pos;
    int       full;
} shadow_bson_out_t;


/*
 * Element names are literals: SHADOW_NAME("x") passes the name with its
 * size (NUL included), so no strlen(3) runs per field.
 */
#define SHADOW_NAME(lit)  lit, sizeof(lit)


static void shadow_out_bytes(shadow_bson_out_t *o, const void *p, size_t n);
static void shadow_out_u32(shadow_bson_out_t *o, uint32_t v);
static void shadow_out_u64(shadow_bson_out_t *o, uint64_t v);
static void shadow_out_name(shadow_bson_out_t *o, uint8_t type,
    const char *name, size_t size);
static void shadow_out_string(shadow_bson_out_t *o, const char *name,
    size_t size, shadow_str_t s);
static void shadow_out_binary(shadow_bson_out_t *o, const char *name,
    size_t size, const uint8_t *p, size_t n);
static void shadow_out_int32(shadow_bson_out_t *o, const char *name,
    size_t size, int32_t v);
static void shadow_out_int64(shadow_bson_out_t *o, const char *name,
    size_t size, int64_t v);
static void shadow_out_double(shadow_bson_out_t *o, const char *name,
    size_t size, double v);
static void shadow_out_bool(shadow_bson_out_t *o, const char *name,
    size_t size, int v);
static size_t shadow_out_doc_begin(shadow_bson_out_t *o);
static void shadow_out_doc_end(shadow_bson_out_t *o, size_t start);
static void shadow_out_headers(shadow_bson_out_t *o, const char *name,
    size_t size, const shadow_header_t *h, size_t n);
static size_t shadow_index_name(char *buf, size_t i);


static void
shadow_out_bytes(shadow_bson_out_t *o, const void *p, size_t n)
{
    if (o->full || n > o->cap - o->pos) {
        o->full = 1;
        return;
    }

    if (n) {
        memcpy(o->buf + o->pos, p, n);
    }

    o->pos += n;
}


static void
shadow_out_u32(shadow_bson_out_t *o, uint32_t v)
{
    uint8_t  b[4];

    b[0] = (uint8_t) v;
    b[1] = (uint8_t) (v >> 8);
    b[2] = (uint8_t) (v >> 16);
    b[3] = (uint8_t) (v >> 24);
    shadow_out_bytes(o, b, 4);
}


static void
shadow_out_u64(shadow_bson_out_t *o, uint64_t v)
{
    shadow_out_u32(o, (uint32_t) v);
    shadow_out_u32(o, (uint32_t) (v >> 32));
}


/* the type byte and the name; size counts the name's NUL */
static void
shadow_out_name(shadow_bson_out_t *o, uint8_t type, const char *name,
    size_t size)
{
    if (o->full || size + 1 > o->cap - o->pos) {
        o->full = 1;
        return;
    }

    o->buf[o->pos] = type;
    memcpy(o->buf + o->pos + 1, name, size);
    o->pos += size + 1;
}


static void
shadow_out_string(shadow_bson_out_t *o, const char *name, size_t size,
    shadow_str_t s)
{
    uint8_t  nul = 0;

    if (s.len > SHADOW_FRAME_MAX) {
        o->full = 1;
        return;
    }

    shadow_out_name(o, 0x02, name, size);
    shadow_out_u32(o, (uint32_t) s.len + 1);
    shadow_out_bytes(o, s.data, s.len);
    shadow_out_bytes(o, &nul, 1);
}


static void
shadow_out_binary(shadow_bson_out_t *o, const char *name, size_t size,
    const uint8_t *p, size_t n)
{
    uint8_t  subtype = 0;

    if (n > SHADOW_FRAME_MAX) {
        o->full = 1;
        return;
    }

    shadow_out_name(o, 0x05, name, size);
    shadow_out_u32(o, (uint32_t) n);
    shadow_out_bytes(o, &subtype, 1);
    shadow_out_bytes(o, p, n);
}


static void
shadow_out_int32(shadow_bson_out_t *o, const char *name, size_t size,
    int32_t v)
{
    shadow_out_name(o, 0x10, name, size);
    shadow_out_u32(o, (uint32_t) v);
}


static void
shadow_out_int64(shadow_bson_out_t *o, const char *name, size_t size,
    int64_t v)
{
    shadow_out_name(o, 0x12, name, size);
    shadow_out_u64(o, (uint64_t) v);
}


static void
shadow_out_double(shadow_bson_out_t *o, const char *name, size_t size,
    double v)
{
    uint64_t  bits;

    memcpy(&bits, &v, 8);
    shadow_out_name(o, 0x01, name, size);
    shadow_out_u64(o, bits);
}


static void
shadow_out_bool(shadow_bson_out_t *o, const char *name, size_t size, int v)
{
    uint8_t  b = v ? 1 : 0;

    shadow_out_name(o, 0x08, name, size);
    shadow_out_bytes(o, &b, 1);
}


static size_t
shadow_out_doc_begin(shadow_bson_out_t *o)
{
    size_t  start = o->pos;

    shadow_out_u32(o, 0);
    return start;
}


static void
shadow_out_doc_end(shadow_bson_out_t *o, size_t start)
{
    uint8_t   nul = 0;
    uint32_t  n;

    shadow_out_bytes(o, &nul, 1);

    if (o->full) {
        return;
    }

    n = (uint32_t) (o->pos - start);
    o->buf[start] = (uint8_t) n;
    o->buf[start + 1] = (uint8_t) (n >> 8);
    o->buf[start + 2] = (uint8_t) (n >> 16);
    o->buf[start + 3] = (uint8_t) (n >> 24);
}


static size_t
shadow_index_name(char *buf, size_t i)
{
    char    tmp[24];
    size_t  n = 0, k = 0;

    do {
        tmp[n++] = (char) ('0' + i % 10);
        i /= 10;
    } while (i);

    while (n) {
        buf[k++] = tmp[--n];
    }

    buf[k] = '\0';
    return k;
}


static void
shadow_out_headers(shadow_bson_out_t *o, const char *name, size_t size,
    const shadow_header_t *h, size_t n)
{
    char    idx[24];
    size_t  i, outer, inner, len;

    shadow_out_name(o, 0x04, name, size);
    outer = shadow_out_doc_begin(o);

    for (i = 0; i < n; i++) {
        len = shadow_index_name(idx, i);
        shadow_out_name(o, 0x04, idx, len + 1);
        inner = shadow_out_doc_begin(o);
        shadow_out_string(o, SHADOW_NAME("0"), h[i].name);
        shadow_out_string(o, SHADOW_NAME("1"), h[i].value);
        shadow_out_doc_end(o, inner);
    }

    shadow_out_doc_end(o, outer);
}


int
shadow_record_encode(const shadow_record_t *rec, uint8_t *buf, size_t cap,
    size_t *len)
{
    size_t             doc;
    shadow_bson_out_t  o = { buf, cap, 0, 0 };

    doc = shadow_out_doc_begin(&o);
    shadow_out_string(&o, SHADOW_NAME("id"), rec->id);
    shadow_out_int64(&o, SHADOW_NAME("time_us"), rec->time_us);
    shadow_out_string(&o, SHADOW_NAME("zone"), rec->zone);
    shadow_out_string(&o, SHADOW_NAME("rule"), rec->rule);
    shadow_out_string(&o, SHADOW_NAME("side"), rec->side);
    shadow_out_int32(&o, SHADOW_NAME("bucket"), rec->bucket);
    shadow_out_string(&o, SHADOW_NAME("key"), rec->key);
    shadow_out_string(&o, SHADOW_NAME("store"), rec->store);
    shadow_out_string(&o, SHADOW_NAME("channel"), rec->channel);
    shadow_out_int64(&o, SHADOW_NAME("version"), rec->version);
    shadow_out_string(&o, SHADOW_NAME("method"), rec->method);
    shadow_out_string(&o, SHADOW_NAME("uri"), rec->uri);
    shadow_out_headers(&o, SHADOW_NAME("req_headers"), rec->req_headers,
                       rec->n_req_headers);
    shadow_out_binary(&o, SHADOW_NAME("req_body"), rec->req_body,
                      rec->req_body_len);
    shadow_out_int32(&o, SHADOW_NAME("status"), rec->status);
    shadow_out_headers(&o, SHADOW_NAME("resp_headers"), rec->resp_headers,
                       rec->n_resp_headers);
    shadow_out_binary(&o, SHADOW_NAME("resp_body"), rec->resp_body,
                      rec->resp_body_len);
    shadow_out_int64(&o, SHADOW_NAME("resp_body_len"), rec->resp_body_total);
    shadow_out_bool(&o, SHADOW_NAME("resp_truncated"), rec->resp_truncated);

    if (rec->resp_sha256.len) {
        shadow_out_string(&o, SHADOW_NAME("resp_sha256"), rec->resp_sha256);
    }

    shadow_out_double(&o, SHADOW_NAME("upstream_ms"), rec->upstream_ms);
    shadow_out_string(&o, SHADOW_NAME("content_type"), rec->content_type);
    shadow_out_doc_end(&o, doc);

    if (o.full || o.pos > SHADOW_FRAME_MAX) {
        return SHADOW_NOSPACE;
    }

    *len = o.pos;
    return SHADOW_OK;
}


int
shadow_record_frame(const shadow_record_t *rec, uint8_t *buf, size_t cap,
    size_t *len)
{
    int     rc;
    size_t  n;

    if (cap < SHADOW_FRAME_HEADER) {
        return SHADOW_NOSPACE;
    }

    rc = shadow_record_encode(rec, buf + SHADOW_FRAME_HEADER,
                              cap - SHADOW_FRAME_HEADER, &n);
    if (rc != SHADOW_OK) {
        return rc;
    }

    shadow_frame_seal(buf, buf + SHADOW_FRAME_HEADER, (uint32_t) n);
    *len = n + SHADOW_FRAME_HEADER;
    return SHADOW_OK;
}


size_t
shadow_record_size(const shadow_record_t *rec)
{
    size_t  n, i;

    /* names and fixed parts: generous constant, then variable parts */
    n = SHADOW_FRAME_HEADER + 512;
    n += rec->id.len + rec->zone.len + rec->rule.len + rec->side.len
         + rec->key.len + rec->store.len + rec->channel.len
         + rec->method.len + rec->uri.len + rec->resp_sha256.len
         + rec->content_type.len + rec->req_body_len + rec->resp_body_len;

    for (i = 0; i < rec->n_req_headers; i++) {
        n += 48 + rec->req_headers[i].name.len
             + rec->req_headers[i].value.len;
    }

    for (i = 0; i < rec->n_resp_headers; i++) {
        n += 48 + rec->resp_headers[i].name.len
             + rec->resp_headers[i].value.len;
    }

    return n;
}
