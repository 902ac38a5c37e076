/*
 * legacy: bodies in and out.  The project's strict RFC 8259 validator
 * (ngx_module/cutover_json) in front of libbson's JSON reader, BSON
 * checking, and a compact JSON writer.
 */

#ifndef LEGACY_JSON_H
#define LEGACY_JSON_H

#include <bson/bson.h>

#include "legacy_adapter/legacy_common.h"

/* LEGACY_OK when text[0..len) is one valid JSON text (any top-level value). */
int legacy_json_validate(const char *text, size_t len, legacy_error_t *err);

/*
 * Parses a JSON object into out (initialised here in every case; the caller
 * calls bson_destroy(out)).  Anything but a valid object is LEGACY_E_INVALID.
 */
int legacy_json_parse_object(const char *text, size_t len, bson_t *out,
    legacy_error_t *err);

/* Checks and copies a BSON document into out (same ownership as above). */
int legacy_bson_parse(const uint8_t *data, size_t len, bson_t *out,
    legacy_error_t *err);

/* Picks BSON or JSON by content type ("application/bson" or else JSON). */
int legacy_body_parse(const char *content_type, const uint8_t *data,
    size_t len, bson_t *out, legacy_error_t *err);

/* Appends compact JSON for a document; LEGACY_ERROR on a type JSON lacks. */
int legacy_json_write(const bson_t *doc, legacy_buf_t *out,
    legacy_error_t *err);

#endif
