/*
 * compare_json: strict RFC 8259 JSON (and BSON) bodies into one document
 * model, a BSON document {"$": <root value>}, with depth and size limits.
 */

#ifndef COMPARE_JSON_H
#define COMPARE_JSON_H

#include <bson/bson.h>

#include "compare/compare.h"

#define COMPARE_MAX_DEPTH      256
#define COMPARE_MAX_BODY       (16 * 1024 * 1024)

/* Why a body is not a document. */
typedef enum {
    COMPARE_PARSE_OK = 0,
    COMPARE_PARSE_INVALID,        /* not JSON / not BSON */
    COMPARE_PARSE_TOO_DEEP,
    COMPARE_PARSE_TOO_LARGE,
    COMPARE_PARSE_EMPTY
} compare_parse_status_t;

/* Parse JSON text into doc (initialised here; caller bson_destroy()s it on
 * COMPARE_PARSE_OK only).  err->message says where and why on failure. */
compare_parse_status_t compare_json_parse(const uint8_t *text, size_t len,
    bson_t *doc, compare_error_t *err);

/* Wrap a BSON body (validated, depth limited) as {"$": body}. */
compare_parse_status_t compare_bson_parse(const uint8_t *data, size_t len,
    bson_t *doc, compare_error_t *err);

/* Does data look like a BSON document (length prefix and trailing NUL)? */
int compare_bson_detect(const uint8_t *data, size_t len);

/* Parse a body, choosing JSON or BSON by content type, then by content. */
compare_parse_status_t compare_body_parse(const char *content_type,
    const uint8_t *data, size_t len, bson_t *doc, compare_error_t *err);

const char *compare_parse_status_name(compare_parse_status_t st);

#endif /* COMPARE_JSON_H */
