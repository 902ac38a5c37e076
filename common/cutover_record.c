/*
 * cutover_record: a dual-run record encoded as one BSON document into the
 * caller's buffer (no allocation, no libbson: nginx workers compile this).
 */

#include <stdint.h>
#include <string.h>

#include "common/cutover_record.h"


typedef struct {
    uint8_t  *buf;
    size_t    cap;
    size_t    pos;
    int       full;
} cutover_bson_out_t;


/*
 * Element names are literals: CUTOVER_NAME("x") passes the name with its
 * size (NUL included), so no strlen(3) runs per field.
 */
#define CUTOVER_NAME(lit)  lit, sizeof(lit)


static void cutover_out_bytes(cutover_bson_out_t *o, const void *p, size_t n);
static void cutover_out_u32(cutover_bson_out_t *o, uint32_t v);
static void cutover_out_u64(cutover_bson_out_t *o, uint64_t v);
static void cutover_out_name(cutover_bson_out_t *o, uint8_t type,
    const char *name, size_t size);
static void cutover_out_string(cutover_bson_out_t *o, const char *name,
    size_t size, cutover_str_t s);
static void cutover_out_binary(cutover_bson_out_t *o, const char *name,
    size_t size, const uint8_t *p, size_t n);
static void cutover_out_int32(cutover_bson_out_t *o, const char *name,
    size_t size, int32_t v);
static void cutover_out_int64(cutover_bson_out_t *o, const char *name,
    size_t size, int64_t v);
static void cutover_out_double(cutover_bson_out_t *o, const char *name,
    size_t size, double v);
static void cutover_out_bool(cutover_bson_out_t *o, const char *name,
    size_t size, int v);
static size_t cutover_out_doc_begin(cutover_bson_out_t *o);
static void cutover_out_doc_end(cutover_bson_out_t *o, size_t start);
static void cutover_out_headers(cutover_bson_out_t *o, const char *name,
    size_t size, const cutover_header_t *h, size_t n);
static size_t cutover_index_name(char *buf, size_t i);


static void
cutover_out_bytes(cutover_bson_out_t *o, const void *p, size_t n)
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
cutover_out_u32(cutover_bson_out_t *o, uint32_t v)
{
    uint8_t  b[4];

    b[0] = (uint8_t) v;
    b[1] = (uint8_t) (v >> 8);
    b[2] = (uint8_t) (v >> 16);
    b[3] = (uint8_t) (v >> 24);
    cutover_out_bytes(o, b, 4);
}


static void
cutover_out_u64(cutover_bson_out_t *o, uint64_t v)
{
    cutover_out_u32(o, (uint32_t) v);
    cutover_out_u32(o, (uint32_t) (v >> 32));
}


/* the type byte and the name; size counts the name's NUL */
static void
cutover_out_name(cutover_bson_out_t *o, uint8_t type, const char *name,
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
cutover_out_string(cutover_bson_out_t *o, const char *name, size_t size,
    cutover_str_t s)
{
    uint8_t  nul = 0;

    if (s.len > CUTOVER_FRAME_MAX) {
        o->full = 1;
        return;
    }

    cutover_out_name(o, 0x02, name, size);
    cutover_out_u32(o, (uint32_t) s.len + 1);
    cutover_out_bytes(o, s.data, s.len);
    cutover_out_bytes(o, &nul, 1);
}


static void
cutover_out_binary(cutover_bson_out_t *o, const char *name, size_t size,
    const uint8_t *p, size_t n)
{
    uint8_t  subtype = 0;

    if (n > CUTOVER_FRAME_MAX) {
        o->full = 1;
        return;
    }

    cutover_out_name(o, 0x05, name, size);
    cutover_out_u32(o, (uint32_t) n);
    cutover_out_bytes(o, &subtype, 1);
    cutover_out_bytes(o, p, n);
}


static void
cutover_out_int32(cutover_bson_out_t *o, const char *name, size_t size,
    int32_t v)
{
    cutover_out_name(o, 0x10, name, size);
    cutover_out_u32(o, (uint32_t) v);
}


static void
cutover_out_int64(cutover_bson_out_t *o, const char *name, size_t size,
    int64_t v)
{
    cutover_out_name(o, 0x12, name, size);
    cutover_out_u64(o, (uint64_t) v);
}


static void
cutover_out_double(cutover_bson_out_t *o, const char *name, size_t size,
    double v)
{
    uint64_t  bits;

    memcpy(&bits, &v, 8);
    cutover_out_name(o, 0x01, name, size);
    cutover_out_u64(o, bits);
}


static void
cutover_out_bool(cutover_bson_out_t *o, const char *name, size_t size, int v)
{
    uint8_t  b = v ? 1 : 0;

    cutover_out_name(o, 0x08, name, size);
    cutover_out_bytes(o, &b, 1);
}


static size_t
cutover_out_doc_begin(cutover_bson_out_t *o)
{
    size_t  start = o->pos;

    cutover_out_u32(o, 0);
    return start;
}


static void
cutover_out_doc_end(cutover_bson_out_t *o, size_t start)
{
    uint8_t   nul = 0;
    uint32_t  n;

    cutover_out_bytes(o, &nul, 1);

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
cutover_index_name(char *buf, size_t i)
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
cutover_out_headers(cutover_bson_out_t *o, const char *name, size_t size,
    const cutover_header_t *h, size_t n)
{
    char    idx[24];
    size_t  i, outer, inner, len;

    cutover_out_name(o, 0x04, name, size);
    outer = cutover_out_doc_begin(o);

    for (i = 0; i < n; i++) {
        len = cutover_index_name(idx, i);
        cutover_out_name(o, 0x04, idx, len + 1);
        inner = cutover_out_doc_begin(o);
        cutover_out_string(o, CUTOVER_NAME("0"), h[i].name);
        cutover_out_string(o, CUTOVER_NAME("1"), h[i].value);
        cutover_out_doc_end(o, inner);
    }

    cutover_out_doc_end(o, outer);
}


int
cutover_record_encode(const cutover_record_t *rec, uint8_t *buf, size_t cap,
    size_t *len)
{
    size_t             doc;
    cutover_bson_out_t  o = { buf, cap, 0, 0 };

    doc = cutover_out_doc_begin(&o);
    cutover_out_string(&o, CUTOVER_NAME("id"), rec->id);
    cutover_out_int64(&o, CUTOVER_NAME("time_us"), rec->time_us);
    cutover_out_string(&o, CUTOVER_NAME("zone"), rec->zone);
    cutover_out_string(&o, CUTOVER_NAME("rule"), rec->rule);
    cutover_out_string(&o, CUTOVER_NAME("side"), rec->side);
    cutover_out_int32(&o, CUTOVER_NAME("bucket"), rec->bucket);
    cutover_out_string(&o, CUTOVER_NAME("key"), rec->key);
    cutover_out_string(&o, CUTOVER_NAME("store"), rec->store);
    cutover_out_string(&o, CUTOVER_NAME("channel"), rec->channel);
    cutover_out_int64(&o, CUTOVER_NAME("version"), rec->version);
    cutover_out_string(&o, CUTOVER_NAME("method"), rec->method);
    cutover_out_string(&o, CUTOVER_NAME("uri"), rec->uri);
    cutover_out_headers(&o, CUTOVER_NAME("req_headers"), rec->req_headers,
                       rec->n_req_headers);
    cutover_out_binary(&o, CUTOVER_NAME("req_body"), rec->req_body,
                      rec->req_body_len);
    cutover_out_int32(&o, CUTOVER_NAME("status"), rec->status);
    cutover_out_headers(&o, CUTOVER_NAME("resp_headers"), rec->resp_headers,
                       rec->n_resp_headers);
    cutover_out_binary(&o, CUTOVER_NAME("resp_body"), rec->resp_body,
                      rec->resp_body_len);
    cutover_out_int64(&o, CUTOVER_NAME("resp_body_len"), rec->resp_body_total);
    cutover_out_bool(&o, CUTOVER_NAME("resp_truncated"), rec->resp_truncated);

    if (rec->resp_sha256.len) {
        cutover_out_string(&o, CUTOVER_NAME("resp_sha256"), rec->resp_sha256);
    }

    cutover_out_double(&o, CUTOVER_NAME("upstream_ms"), rec->upstream_ms);
    cutover_out_string(&o, CUTOVER_NAME("content_type"), rec->content_type);
    cutover_out_doc_end(&o, doc);

    if (o.full || o.pos > CUTOVER_FRAME_MAX) {
        return CUTOVER_NOSPACE;
    }

    *len = o.pos;
    return CUTOVER_OK;
}


int
cutover_record_frame(const cutover_record_t *rec, uint8_t *buf, size_t cap,
    size_t *len)
{
    int     rc;
    size_t  n;

    if (cap < CUTOVER_FRAME_HEADER) {
        return CUTOVER_NOSPACE;
    }

    rc = cutover_record_encode(rec, buf + CUTOVER_FRAME_HEADER,
                              cap - CUTOVER_FRAME_HEADER, &n);
    if (rc != CUTOVER_OK) {
        return rc;
    }

    cutover_frame_seal(buf, buf + CUTOVER_FRAME_HEADER, (uint32_t) n);
    *len = n + CUTOVER_FRAME_HEADER;
    return CUTOVER_OK;
}


size_t
cutover_record_size(const cutover_record_t *rec)
{
    size_t  n, i;

    /* names and fixed parts: generous constant, then variable parts */
    n = CUTOVER_FRAME_HEADER + 512;
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
