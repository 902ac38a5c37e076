/*
 * legacy: the mapping between the canonical API and the legacy dialect,
 * loaded from a JSON data file (map.json) and applied to documents.
 */

#ifndef LEGACY_MAP_H
#define LEGACY_MAP_H

#include <bson/bson.h>

#include "legacy_adapter/legacy_common.h"

typedef enum {
    LEGACY_FIELD_STRING = 0,
    LEGACY_FIELD_INT,
    LEGACY_FIELD_FEN,       /* yuan decimal string <-> integer fen */
    LEGACY_FIELD_CODE,      /* name <-> numeric code through a code table */
    LEGACY_FIELD_TIME,      /* RFC 3339 UTC <-> YYYYMMDDHHMMSS local */
    LEGACY_FIELD_OBJECT,
    LEGACY_FIELD_ARRAY      /* array of objects */
} legacy_field_type_t;

typedef enum {
    LEGACY_ROUTE_CREATE_ORDER = 0,
    LEGACY_ROUTE_GET_ORDER,
    LEGACY_ROUTE_CANCEL_ORDER,
    LEGACY_ROUTE_GET_INVENTORY,
    LEGACY_ROUTE_ADJUST_INVENTORY,
    LEGACY_ROUTE_GET_MEMBER,
    LEGACY_ROUTE_COUNT
} legacy_route_id_t;

typedef struct {
    char      *name;
    char     **names;
    int64_t   *values;
    size_t     n;
} legacy_codes_t;

typedef struct legacy_object_s legacy_object_t;

typedef struct {
    char              *canonical;
    char              *legacy;
    int                type;        /* legacy_field_type_t */
    int                required;
    int                nullable;
    int                has_min;
    int64_t            min;
    int                has_max;
    int64_t            max;
    legacy_codes_t    *codes;       /* LEGACY_FIELD_CODE */
    legacy_object_t   *object;      /* LEGACY_FIELD_OBJECT / _ARRAY */
} legacy_field_t;

struct legacy_object_s {
    char            *name;
    legacy_field_t  *fields;
    size_t           nfields;
};

typedef struct {
    char             *legacy_path;
    legacy_object_t  *request;
    legacy_object_t  *response;
} legacy_route_t;

typedef struct {
    int64_t   legacy;
    int       status;
    char     *code;
} legacy_errmap_t;

typedef struct {
    int               time_offset_min;
    char             *idempotency_field;    /* body field, e.g. "qqlsh" */
    char             *env_code;             /* envelope field names */
    char             *env_message;
    char             *env_data;
    legacy_codes_t   *codes;
    size_t            ncodes;
    legacy_object_t  *objects;
    size_t            nobjects;
    legacy_route_t    routes[LEGACY_ROUTE_COUNT];
    legacy_errmap_t  *errors;
    size_t            nerrors;
} legacy_map_t;

extern const char *legacy_route_names[LEGACY_ROUTE_COUNT];

/*
 * Loads and validates a map.  On error returns NULL with err naming the
 * line (where it can be found) and the field.  Free with legacy_map_free().
 */
legacy_map_t *legacy_map_new_from_file(const char *path, legacy_error_t *err);
legacy_map_t *legacy_map_new_from_json(const char *text, size_t len,
    legacy_error_t *err);
void legacy_map_free(legacy_map_t *map);

const legacy_codes_t *legacy_map_codes(const legacy_map_t *map,
    const char *name);
const legacy_object_t *legacy_map_object(const legacy_map_t *map,
    const char *name);
int legacy_codes_to_code(const legacy_codes_t *codes, const char *name,
    int64_t *code);
const char *legacy_codes_to_name(const legacy_codes_t *codes, int64_t code);
const legacy_errmap_t *legacy_map_error(const legacy_map_t *map,
    int64_t legacy_code);

/*
 * Converts a document through an object of the map, canonical -> legacy
 * (to_legacy = 1) or back.  out must be initialised by the caller.  Errors
 * name the field path; they are LEGACY_E_INVALID towards legacy and
 * LEGACY_E_UPSTREAM towards canonical.
 */
int legacy_map_convert(const legacy_map_t *map, const legacy_object_t *obj,
    int to_legacy, const bson_t *in, bson_t *out, legacy_error_t *err);

/* The value of an int32 or int64 element; LEGACY_ERROR for other types. */
int legacy_iter_int64(const bson_iter_t *it, int64_t *v);

#endif
