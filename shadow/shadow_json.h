/*
 * shadow_json: records as JSON lines, for cutover-logtool (operators read
 * them with "dump"; tests and hand-made scenarios write them with "write").
 */

#ifndef SHADOW_JSON_H
#define SHADOW_JSON_H

#include <stddef.h>

#include <bson/bson.h>

#include "shadow/shadow_reader.h"

/*
 * A record parsed from one JSON object.  Keys are the record's field names
 * (common/cutover_record.h); bodies are "req_body"/"resp_body" as text or
 * "req_body_b64"/"resp_body_b64" as base64.  Defaults: id random,
 * time_us now, method GET, side "legacy", status 200, resp_body_len the
 * body's length, resp_sha256 computed.
 */
typedef struct {
    cutover_record_t  rec;
    void             *doc;          /* the parsed bson_t, owns the strings */
    cutover_header_t *headers[2];
    uint8_t          *bodies[2];
    char              id[33];
    char              sha256[65];
} shadow_json_record_t;

int shadow_json_record_parse(const char *json, size_t len,
    shadow_json_record_t *out, shadow_error_t *err);
void shadow_json_record_clear(shadow_json_record_t *jr);

/* Parse strict JSON text (compare/'s RFC 8259 parser) whose root must be
 * an object into doc (a bson_t the caller provides and bson_destroy()s on
 * SHADOW_OK); *obj iterates the object's members. */
int shadow_json_object(const char *text, size_t len, void *doc,
    bson_iter_t *obj, shadow_error_t *err);

/* A JSON number (int, double or the parser's exact decimal) as a double;
 * 0 when it is not a number. */
int shadow_json_number(const bson_iter_t *it, double *v);

/* One JSON line (no newline) for rec read at pos; caller frees. */
char *shadow_json_record_dump(const cutover_record_t *rec, shadow_pos_t pos);

#endif /* SHADOW_JSON_H */
