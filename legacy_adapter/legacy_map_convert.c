/*
 * legacy: applying the map: a body converted field by field between the
 * canonical API and the legacy dialect, codes translated both ways.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legacy_adapter/legacy_convert.h"
#include "legacy_adapter/legacy_json.h"
#include "legacy_adapter/legacy_map.h"


static int legacy_append_int(bson_t *out, const char *key, int64_t v);
static int legacy_convert_mapped(const legacy_field_t *f, int to_legacy,
    bson_iter_t *it, bson_t *out, const char *key, const char *path,
    legacy_error_t *err);
static int legacy_convert_nested_error(legacy_error_t *err, const char *path);
static int legacy_convert_nested(const legacy_map_t *map,
    const legacy_field_t *f, int to_legacy, bson_iter_t *it, bson_t *out,
    const char *key, const char *path, legacy_error_t *err);
static int legacy_convert_value(const legacy_map_t *map,
    const legacy_field_t *f, int to_legacy, bson_iter_t *it, bson_t *out,
    const char *key, const char *path, legacy_error_t *err);


const legacy_codes_t *
legacy_map_codes(const legacy_map_t *map, const char *name)
{
    size_t  i;

    for (i = 0; i < map->ncodes; i++) {
        if (strcmp(map->codes[i].name, name) == 0) {
            return &map->codes[i];
        }
    }
    return NULL;
}


const legacy_object_t *
legacy_map_object(const legacy_map_t *map, const char *name)
{
    size_t  i;

    for (i = 0; i < map->nobjects; i++) {
        if (strcmp(map->objects[i].name, name) == 0) {
            return &map->objects[i];
        }
    }
    return NULL;
}


int
legacy_codes_to_code(const legacy_codes_t *codes, const char *name,
    int64_t *code)
{
    size_t  i;

    for (i = 0; i < codes->n; i++) {
        if (strcmp(codes->names[i], name) == 0) {
            *code = codes->values[i];
            return LEGACY_OK;
        }
    }
    return LEGACY_ERROR;
}


const char *
legacy_codes_to_name(const legacy_codes_t *codes, int64_t code)
{
    size_t  i;

    for (i = 0; i < codes->n; i++) {
        if (codes->values[i] == code) {
            return codes->names[i];
        }
    }
    return NULL;
}


const legacy_errmap_t *
legacy_map_error(const legacy_map_t *map, int64_t legacy_code)
{
    size_t  i;

    for (i = 0; i < map->nerrors; i++) {
        if (map->errors[i].legacy == legacy_code) {
            return &map->errors[i];
        }
    }
    return NULL;
}


static int
legacy_append_int(bson_t *out, const char *key, int64_t v)
{
    if (v >= INT32_MIN && v <= INT32_MAX) {
        return bson_append_int32(out, key, -1, (int32_t) v);
    }
    return bson_append_int64(out, key, -1, v);
}


/* fen and code fields, either way. */
static int
legacy_convert_mapped(const legacy_field_t *f, int to_legacy,
    bson_iter_t *it, bson_t *out, const char *key, const char *path,
    legacy_error_t *err)
{
    int             ecode = to_legacy ? LEGACY_E_INVALID : LEGACY_E_UPSTREAM;
    int64_t         v;
    const char     *name;
    char            buf[LEGACY_YUAN_LEN];
    legacy_error_t  e2;
    int             ok;

    if (f->type == LEGACY_FIELD_FEN && to_legacy) {
        if (!BSON_ITER_HOLDS_UTF8(it)
            || legacy_yuan_to_fen(bson_iter_utf8(it, NULL),
                                  !(f->has_min && f->min >= 0), &v, &e2)
               != LEGACY_OK)
        {
            return legacy_error_set(err, ecode, "%s: must be a decimal"
                                    " string in yuan with up to two places",
                                    path);
        }
        ok = bson_append_int64(out, key, -1, v);

    } else if (f->type == LEGACY_FIELD_FEN) {
        if (legacy_iter_int64(it, &v) != LEGACY_OK || v > LEGACY_FEN_MAX
            || v < -LEGACY_FEN_MAX)
        {
            return legacy_error_set(err, ecode, "%s: must be an integer"
                                    " amount in fen", path);
        }
        legacy_fen_to_yuan(v, buf);
        ok = bson_append_utf8(out, key, -1, buf, -1);

    } else if (to_legacy) {
        if (!BSON_ITER_HOLDS_UTF8(it)
            || legacy_codes_to_code(f->codes, bson_iter_utf8(it, NULL), &v)
               != LEGACY_OK)
        {
            return legacy_error_set(err, ecode, "%s: not a known %s", path,
                                    f->codes->name);
        }
        ok = legacy_append_int(out, key, v);

    } else {
        if (legacy_iter_int64(it, &v) != LEGACY_OK
            || (name = legacy_codes_to_name(f->codes, v)) == NULL)
        {
            return legacy_error_set(err, ecode, "%s: unknown %s code", path,
                                    f->codes->name);
        }
        ok = bson_append_utf8(out, key, -1, name, -1);
    }

    return ok ? LEGACY_OK : legacy_error_set(err, LEGACY_E_INTERNAL,
                                             "%s: cannot append", path);
}


/* Prefixes a nested conversion's error with the path it happened under. */
static int
legacy_convert_nested_error(legacy_error_t *err, const char *path)
{
    char  msg[sizeof(err->message)];

    snprintf(msg, sizeof(msg), "%s", err->message);
    return legacy_error_set(err, err->code, "%.160s.%s", path,
                            msg[0] == '$' ? msg + 2 : msg);
}


/* An object field, or an array of objects, either way. */
static int
legacy_convert_nested(const legacy_map_t *map, const legacy_field_t *f,
    int to_legacy, bson_iter_t *it, bson_t *out, const char *key,
    const char *path, legacy_error_t *err)
{
    int             ecode = to_legacy ? LEGACY_E_INVALID : LEGACY_E_UPSTREAM;
    bson_t          child, grand, in;
    bson_iter_t     ci;
    const uint8_t  *data;
    uint32_t        len;
    char            sub[200], idx[16];
    const char     *key_i;
    int             i, rc;

    if (f->type == LEGACY_FIELD_OBJECT) {
        if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
            return legacy_error_set(err, ecode, "%s: must be an object",
                                    path);
        }
        bson_iter_document(it, &len, &data);
        bson_init_static(&in, data, len);
        bson_append_document_begin(out, key, -1, &child);
        rc = legacy_map_convert(map, f->object, to_legacy, &in, &child, err);
        bson_append_document_end(out, &child);
        return rc == LEGACY_OK ? LEGACY_OK
                               : legacy_convert_nested_error(err, path);
    }

    if (!BSON_ITER_HOLDS_ARRAY(it)) {
        return legacy_error_set(err, ecode, "%s: must be an array", path);
    }
    bson_append_array_begin(out, key, -1, &child);
    bson_iter_recurse(it, &ci);
    for (i = 0, rc = LEGACY_OK; rc == LEGACY_OK && bson_iter_next(&ci); i++)
    {
        if (!BSON_ITER_HOLDS_DOCUMENT(&ci)) {
            rc = legacy_error_set(err, ecode, "%.160s[%d]: must be an "
                                  "object", path, i);
            break;
        }
        bson_uint32_to_string((uint32_t) i, &key_i, idx, sizeof(idx));
        bson_iter_document(&ci, &len, &data);
        bson_init_static(&in, data, len);
        bson_append_document_begin(&child, key_i, -1, &grand);
        rc = legacy_map_convert(map, f->object, to_legacy, &in, &grand, err);
        bson_append_document_end(&child, &grand);
        if (rc != LEGACY_OK) {
            /* the element's path only when there is an error to name */
            snprintf(sub, sizeof(sub), "%.160s[%d]", path, i);
            legacy_convert_nested_error(err, sub);
        }
    }
    bson_append_array_end(out, &child);
    return rc;
}


/* One value of field f, read at it, appended as key. */
static int
legacy_convert_value(const legacy_map_t *map, const legacy_field_t *f,
    int to_legacy, bson_iter_t *it, bson_t *out, const char *key,
    const char *path, legacy_error_t *err)
{
    int             ecode = to_legacy ? LEGACY_E_INVALID : LEGACY_E_UPSTREAM;
    int64_t         v;
    const char     *s;
    uint32_t        len;
    char            buf[LEGACY_RFC3339_LEN];
    legacy_error_t  e2;
    int             ok, rc;

    if (BSON_ITER_HOLDS_NULL(it)) {
        if (!f->nullable) {
            return legacy_error_set(err, ecode, "%s: must not be null", path);
        }
        ok = bson_append_null(out, key, -1);

    } else if (f->type == LEGACY_FIELD_STRING) {
        if (!BSON_ITER_HOLDS_UTF8(it)) {
            return legacy_error_set(err, ecode, "%s: must be a string", path);
        }
        s = bson_iter_utf8(it, &len);
        ok = bson_append_utf8(out, key, -1, s, len);

    } else if (f->type == LEGACY_FIELD_INT) {
        if (legacy_iter_int64(it, &v) != LEGACY_OK) {
            return legacy_error_set(err, ecode, "%s: must be an integer",
                                    path);
        }
        if (f->has_min && v < f->min) {
            return legacy_error_set(err, ecode, "%s: must be at least %lld",
                                    path, (long long) f->min);
        }
        if (f->has_max && v > f->max) {
            return legacy_error_set(err, ecode, "%s: must be at most %lld",
                                    path, (long long) f->max);
        }
        ok = legacy_append_int(out, key, v);

    } else if (f->type == LEGACY_FIELD_TIME) {
        if (!BSON_ITER_HOLDS_UTF8(it)) {
            return legacy_error_set(err, ecode, "%s: must be a time string",
                                    path);
        }
        s = bson_iter_utf8(it, NULL);
        rc = to_legacy
             ? legacy_time_from_rfc3339(s, map->time_offset_min, buf, &e2)
             : legacy_time_to_rfc3339(s, map->time_offset_min, buf, &e2);
        if (rc != LEGACY_OK) {
            return legacy_error_set(err, ecode, "%s: %s", path, e2.message);
        }
        ok = bson_append_utf8(out, key, -1, buf, -1);

    } else if (f->type == LEGACY_FIELD_FEN || f->type == LEGACY_FIELD_CODE) {
        return legacy_convert_mapped(f, to_legacy, it, out, key, path, err);

    } else {
        return legacy_convert_nested(map, f, to_legacy, it, out, key, path,
                                     err);
    }

    return ok ? LEGACY_OK : legacy_error_set(err, LEGACY_E_INTERNAL,
                                             "%s: cannot append", path);
}


int
legacy_map_convert(const legacy_map_t *map, const legacy_object_t *obj,
    int to_legacy, const bson_t *in, bson_t *out, legacy_error_t *err)
{
    bson_iter_t            it;
    const legacy_field_t  *f;
    const char            *from, *to;
    char                   path[160];
    size_t                 i, n;

    /* Towards legacy every input key must be known: nothing is dropped. */
    if (to_legacy) {
        if (!bson_iter_init(&it, in)) {
            return legacy_error_set(err, LEGACY_E_INVALID, "bad document");
        }
        while (bson_iter_next(&it)) {
            for (i = 0; i < obj->nfields; i++) {
                if (strcmp(obj->fields[i].canonical, bson_iter_key(&it)) == 0)
                {
                    break;
                }
            }
            if (i == obj->nfields) {
                return legacy_error_set(err, LEGACY_E_INVALID,
                                        "$.%.100s: unknown field",
                                        bson_iter_key(&it));
            }
        }
    }

    /* Output follows the map's order, whatever the input's order. */
    for (i = 0; i < obj->nfields; i++) {
        f = &obj->fields[i];
        from = to_legacy ? f->canonical : f->legacy;
        to = to_legacy ? f->legacy : f->canonical;
        n = strnlen(from, sizeof(path) - 3);
        path[0] = '$';
        path[1] = '.';
        memcpy(path + 2, from, n);
        path[n + 2] = '\0';

        if (!bson_iter_init_find(&it, in, from)) {
            if (f->required) {
                return legacy_error_set(err, to_legacy ? LEGACY_E_INVALID
                                        : LEGACY_E_UPSTREAM,
                                        "%s: missing", path);
            }
            continue;
        }
        if (legacy_convert_value(map, f, to_legacy, &it, out, to, path, err)
            != LEGACY_OK)
        {
            return LEGACY_ERROR;
        }
    }
    return LEGACY_OK;
}
