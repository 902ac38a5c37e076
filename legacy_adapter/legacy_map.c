/*
 * legacy: loading and validating the canonical <-> legacy map; applying
 * it is in legacy_map_convert.c.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legacy_adapter/legacy_convert.h"
#include "legacy_adapter/legacy_json.h"
#include "legacy_adapter/legacy_map.h"


const char *legacy_route_names[LEGACY_ROUTE_COUNT] = {
    "create_order", "get_order", "cancel_order", "get_inventory",
    "adjust_inventory", "get_member"
};

static const char *legacy_field_types[] = {
    "string", "int", "fen", "code", "time", "object", "array", NULL
};

/* Where we are in the map text, to name the line of a bad entry. */
typedef struct {
    const char      *text;
    size_t           len;
    legacy_error_t  *err;
} legacy_map_ctx_t;


static int legacy_map_fail(legacy_map_ctx_t *ctx, const char *anchor,
    const char *near, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int legacy_map_load_codes(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it);
static int legacy_map_load_field(legacy_map_t *map, legacy_map_ctx_t *ctx,
    legacy_object_t *obj, size_t idx, bson_iter_t *it);
static int legacy_map_load_objects(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it);
static int legacy_map_load_routes(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it);
static int legacy_map_load_errors(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it);
static int legacy_map_load_envelope(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it);
static int legacy_map_parse(const char *text, size_t len, bson_t *doc,
    legacy_error_t *err);
static int legacy_map_load_sections(legacy_map_t *map, legacy_map_ctx_t *ctx,
    const bson_t *doc);


/* Line of `near` after the first `anchor` (both quoted) in the map text. */
static int
legacy_map_line(legacy_map_ctx_t *ctx, const char *anchor, const char *near)
{
    char         quoted[300];
    const char  *p = ctx->text, *hit, *q;
    int          line = 1;

    if (anchor != NULL) {
        snprintf(quoted, sizeof(quoted), "\"%s\"", anchor);
        hit = memmem(p, ctx->len, quoted, strlen(quoted));
        if (hit != NULL) {
            p = hit;
        }
    }
    if (near != NULL) {
        snprintf(quoted, sizeof(quoted), "\"%s\"", near);
        hit = memmem(p, ctx->len - (p - ctx->text), quoted, strlen(quoted));
        if (hit != NULL) {
            p = hit;
        }
    }
    if (p == ctx->text) {
        return 0;
    }
    for (q = ctx->text; q < p; q++) {
        line += *q == '\n';
    }
    return line;
}


static int
legacy_map_fail(legacy_map_ctx_t *ctx, const char *anchor, const char *near,
    const char *fmt, ...)
{
    char     msg[200];
    va_list  ap;
    int      line;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    line = legacy_map_line(ctx, anchor, near);
    if (line > 0) {
        return legacy_error_set(ctx->err, LEGACY_E_CONFIG, "map line %d: %s",
                                line, msg);
    }
    return legacy_error_set(ctx->err, LEGACY_E_CONFIG, "map: %s", msg);
}


int
legacy_iter_int64(const bson_iter_t *it, int64_t *v)
{
    if (BSON_ITER_HOLDS_INT32(it)) {
        *v = bson_iter_int32(it);
        return LEGACY_OK;
    }
    if (BSON_ITER_HOLDS_INT64(it)) {
        *v = bson_iter_int64(it);
        return LEGACY_OK;
    }
    return LEGACY_ERROR;
}


static char *
legacy_iter_strdup(const bson_iter_t *it)
{
    const char  *s;
    uint32_t     len;

    if (!BSON_ITER_HOLDS_UTF8(it)) {
        return NULL;
    }
    s = bson_iter_utf8(it, &len);
    if (len == 0 || strlen(s) != len) {
        return NULL;
    }
    return strdup(s);
}


static int
legacy_map_load_codes(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it)
{
    bson_iter_t      tables, entries;
    legacy_codes_t  *c;
    size_t           i, j;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &tables)) {
        return legacy_map_fail(ctx, "codes", NULL, "codes: not an object");
    }
    while (bson_iter_next(&tables)) {
        c = realloc(map->codes, (map->ncodes + 1) * sizeof(*c));
        if (c == NULL) {
            return legacy_map_fail(ctx, NULL, NULL, "out of memory");
        }
        map->codes = c;
        c = &map->codes[map->ncodes++];
        memset(c, 0, sizeof(*c));
        c->name = strdup(bson_iter_key(&tables));

        if (!BSON_ITER_HOLDS_DOCUMENT(&tables)
            || !bson_iter_recurse(&tables, &entries))
        {
            return legacy_map_fail(ctx, "codes", c->name,
                                   "codes.%s: not an object", c->name);
        }
        while (bson_iter_next(&entries)) {
            c->names = realloc(c->names, (c->n + 1) * sizeof(char *));
            c->values = realloc(c->values, (c->n + 1) * sizeof(int64_t));
            if (c->names == NULL || c->values == NULL) {
                return legacy_map_fail(ctx, NULL, NULL, "out of memory");
            }
            c->names[c->n] = strdup(bson_iter_key(&entries));
            if (legacy_iter_int64(&entries, &c->values[c->n]) != LEGACY_OK) {
                c->n++;
                return legacy_map_fail(ctx, c->name, bson_iter_key(&entries),
                                       "codes.%s.%s: code must be an"
                                       " integer", c->name,
                                       bson_iter_key(&entries));
            }
            c->n++;
        }
        if (c->n == 0) {
            return legacy_map_fail(ctx, "codes", c->name,
                                   "codes.%s: empty table", c->name);
        }
        for (i = 0; i < c->n; i++) {
            for (j = i + 1; j < c->n; j++) {
                if (c->values[i] == c->values[j]) {
                    return legacy_map_fail(ctx, c->name, c->names[j],
                                           "codes.%s.%s: code %lld used"
                                           " twice", c->name, c->names[j],
                                           (long long) c->values[j]);
                }
            }
        }
    }
    return LEGACY_OK;
}


/*
 * One field of a map object.  Kept whole (past 80 lines): a field's members
 * are checked in one place, each error naming the field.
 */
static int
legacy_map_load_field(legacy_map_t *map, legacy_map_ctx_t *ctx,
    legacy_object_t *obj, size_t idx, bson_iter_t *it)
{
    bson_iter_t      f;
    legacy_field_t  *field = &obj->fields[idx];
    const char      *key, *type = NULL, *codes = NULL, *object = NULL;
    int              i;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &f)) {
        return legacy_map_fail(ctx, obj->name, NULL,
                               "objects.%s[%zu]: not an object", obj->name,
                               idx);
    }
    while (bson_iter_next(&f)) {
        key = bson_iter_key(&f);
        if (strcmp(key, "canonical") == 0) {
            field->canonical = legacy_iter_strdup(&f);
        } else if (strcmp(key, "legacy") == 0) {
            field->legacy = legacy_iter_strdup(&f);
        } else if (strcmp(key, "type") == 0 && BSON_ITER_HOLDS_UTF8(&f)) {
            type = bson_iter_utf8(&f, NULL);
        } else if (strcmp(key, "codes") == 0 && BSON_ITER_HOLDS_UTF8(&f)) {
            codes = bson_iter_utf8(&f, NULL);
        } else if (strcmp(key, "object") == 0 && BSON_ITER_HOLDS_UTF8(&f)) {
            object = bson_iter_utf8(&f, NULL);
        } else if (strcmp(key, "required") == 0 && BSON_ITER_HOLDS_BOOL(&f)) {
            field->required = bson_iter_bool(&f);
        } else if (strcmp(key, "nullable") == 0 && BSON_ITER_HOLDS_BOOL(&f)) {
            field->nullable = bson_iter_bool(&f);
        } else if (strcmp(key, "min") == 0
                   && legacy_iter_int64(&f, &field->min) == LEGACY_OK)
        {
            field->has_min = 1;
        } else if (strcmp(key, "max") == 0
                   && legacy_iter_int64(&f, &field->max) == LEGACY_OK)
        {
            field->has_max = 1;
        } else {
            return legacy_map_fail(ctx, obj->name, key,
                                   "objects.%s[%zu].%s: unknown or"
                                   " mistyped attribute", obj->name, idx,
                                   key);
        }
    }

    if (field->canonical == NULL) {
        return legacy_map_fail(ctx, obj->name, NULL,
                               "objects.%s[%zu].canonical: missing or not a"
                               " string", obj->name, idx);
    }
    if (field->legacy == NULL) {
        return legacy_map_fail(ctx, obj->name, field->canonical,
                               "objects.%s[%zu].legacy: missing or not a"
                               " string", obj->name, idx);
    }

    field->type = -1;
    for (i = 0; type != NULL && legacy_field_types[i] != NULL; i++) {
        if (strcmp(type, legacy_field_types[i]) == 0) {
            field->type = i;
        }
    }
    if (field->type < 0) {
        return legacy_map_fail(ctx, obj->name, field->canonical,
                               "objects.%s[%zu].type: \"%s\" is not one of"
                               " string, int, fen, code, time, object,"
                               " array", obj->name, idx,
                               type ? type : "(missing)");
    }

    if (field->type == LEGACY_FIELD_CODE) {
        field->codes = (legacy_codes_t *) legacy_map_codes(map,
                                                           codes ? codes : "");
        if (field->codes == NULL) {
            return legacy_map_fail(ctx, obj->name, field->canonical,
                                   "objects.%s[%zu].codes: no code table"
                                   " \"%s\"", obj->name, idx,
                                   codes ? codes : "(missing)");
        }
    }
    if (field->type == LEGACY_FIELD_OBJECT
        || field->type == LEGACY_FIELD_ARRAY)
    {
        field->object = (legacy_object_t *)
                        legacy_map_object(map, object ? object : "");
        if (field->object == NULL) {
            return legacy_map_fail(ctx, obj->name, field->canonical,
                                   "objects.%s[%zu].object: no object"
                                   " \"%s\"", obj->name, idx,
                                   object ? object : "(missing)");
        }
    }
    return LEGACY_OK;
}


static int
legacy_map_load_objects(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it)
{
    bson_iter_t       objs, fields;
    legacy_object_t  *obj;
    size_t            n, i, j, k;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &objs)) {
        return legacy_map_fail(ctx, "objects", NULL, "objects: not an object");
    }

    /* First pass: names, so fields may refer to objects defined later. */
    for (n = 0; bson_iter_next(&objs); n++) { /* void */ }
    map->objects = calloc(n ? n : 1, sizeof(legacy_object_t));
    if (map->objects == NULL) {
        return legacy_map_fail(ctx, NULL, NULL, "out of memory");
    }
    bson_iter_recurse(it, &objs);
    for (i = 0; bson_iter_next(&objs); i++) {
        map->objects[i].name = strdup(bson_iter_key(&objs));
        map->nobjects++;
    }

    bson_iter_recurse(it, &objs);
    for (i = 0; bson_iter_next(&objs); i++) {
        obj = &map->objects[i];
        if (!BSON_ITER_HOLDS_ARRAY(&objs)
            || !bson_iter_recurse(&objs, &fields))
        {
            return legacy_map_fail(ctx, "objects", obj->name,
                                   "objects.%s: not an array", obj->name);
        }
        for (n = 0; bson_iter_next(&fields); n++) { /* void */ }
        obj->fields = calloc(n ? n : 1, sizeof(legacy_field_t));
        if (obj->fields == NULL) {
            return legacy_map_fail(ctx, NULL, NULL, "out of memory");
        }
        bson_iter_recurse(&objs, &fields);
        for (j = 0; bson_iter_next(&fields); j++) {
            obj->nfields++;
            if (legacy_map_load_field(map, ctx, obj, j, &fields)
                != LEGACY_OK)
            {
                return LEGACY_ERROR;
            }
            for (k = 0; k < j; k++) {
                if (strcmp(obj->fields[k].canonical,
                           obj->fields[j].canonical) == 0
                    || strcmp(obj->fields[k].legacy,
                              obj->fields[j].legacy) == 0)
                {
                    return legacy_map_fail(ctx, obj->name,
                                           obj->fields[j].canonical,
                                           "objects.%s[%zu]: field mapped"
                                           " twice", obj->name, j);
                }
            }
        }
    }
    return LEGACY_OK;
}


static int
legacy_map_load_routes(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it)
{
    bson_iter_t      routes, r;
    legacy_route_t  *route;
    const char      *key, *name;
    int              i;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &routes)) {
        return legacy_map_fail(ctx, "routes", NULL, "routes: not an object");
    }
    while (bson_iter_next(&routes)) {
        name = bson_iter_key(&routes);
        route = NULL;
        for (i = 0; i < LEGACY_ROUTE_COUNT; i++) {
            if (strcmp(name, legacy_route_names[i]) == 0) {
                route = &map->routes[i];
            }
        }
        if (route == NULL) {
            return legacy_map_fail(ctx, "routes", name,
                                   "routes.%s: unknown route", name);
        }
        if (!BSON_ITER_HOLDS_DOCUMENT(&routes)
            || !bson_iter_recurse(&routes, &r))
        {
            return legacy_map_fail(ctx, "routes", name,
                                   "routes.%s: not an object", name);
        }
        while (bson_iter_next(&r)) {
            key = bson_iter_key(&r);
            if (!BSON_ITER_HOLDS_UTF8(&r)) {
                return legacy_map_fail(ctx, name, key,
                                       "routes.%s.%s: not a string", name,
                                       key);
            }
            if (strcmp(key, "legacy") == 0) {
                route->legacy_path = legacy_iter_strdup(&r);
            } else if (strcmp(key, "request") == 0) {
                route->request = (legacy_object_t *)
                    legacy_map_object(map, bson_iter_utf8(&r, NULL));
                if (route->request == NULL) {
                    goto no_object;
                }
            } else if (strcmp(key, "response") == 0) {
                route->response = (legacy_object_t *)
                    legacy_map_object(map, bson_iter_utf8(&r, NULL));
                if (route->response == NULL) {
                    goto no_object;
                }
            } else {
                return legacy_map_fail(ctx, name, key,
                                       "routes.%s.%s: unknown attribute",
                                       name, key);
            }
            continue;
        no_object:
            return legacy_map_fail(ctx, name, key,
                                   "routes.%s.%s: no object \"%s\"", name,
                                   key, bson_iter_utf8(&r, NULL));
        }
    }

    for (i = 0; i < LEGACY_ROUTE_COUNT; i++) {
        route = &map->routes[i];
        if (route->legacy_path == NULL || route->legacy_path[0] != '/'
            || route->request == NULL || route->response == NULL)
        {
            return legacy_map_fail(ctx, "routes", legacy_route_names[i],
                                   "routes.%s: needs \"legacy\" (a path),"
                                   " \"request\" and \"response\"",
                                   legacy_route_names[i]);
        }
    }
    return LEGACY_OK;
}


static int
legacy_map_load_errors(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it)
{
    bson_iter_t       list, e;
    legacy_errmap_t  *em;
    const char       *key;
    int64_t           v;
    size_t            n;

    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &list)) {
        return legacy_map_fail(ctx, "errors", NULL, "errors: not an array");
    }
    for (n = 0; bson_iter_next(&list); n++) { /* void */ }
    map->errors = calloc(n ? n : 1, sizeof(legacy_errmap_t));
    if (map->errors == NULL) {
        return legacy_map_fail(ctx, NULL, NULL, "out of memory");
    }

    bson_iter_recurse(it, &list);
    while (bson_iter_next(&list)) {
        em = &map->errors[map->nerrors++];
        em->legacy = -1;
        if (!BSON_ITER_HOLDS_DOCUMENT(&list)
            || !bson_iter_recurse(&list, &e))
        {
            return legacy_map_fail(ctx, "errors", NULL,
                                   "errors[%zu]: not an object",
                                   map->nerrors - 1);
        }
        while (bson_iter_next(&e)) {
            key = bson_iter_key(&e);
            if (strcmp(key, "legacy") == 0
                && legacy_iter_int64(&e, &v) == LEGACY_OK && v > 0)
            {
                em->legacy = v;
            } else if (strcmp(key, "status") == 0
                       && legacy_iter_int64(&e, &v) == LEGACY_OK
                       && v >= 400 && v <= 599)
            {
                em->status = (int) v;
            } else if (strcmp(key, "code") == 0) {
                em->code = legacy_iter_strdup(&e);
            } else {
                return legacy_map_fail(ctx, "errors", key,
                                       "errors[%zu].%s: unknown attribute or"
                                       " bad value", map->nerrors - 1, key);
            }
        }
        if (em->legacy < 0 || em->status == 0 || em->code == NULL) {
            return legacy_map_fail(ctx, "errors", NULL,
                                   "errors[%zu]: needs \"legacy\" (> 0),"
                                   " \"status\" (4xx/5xx) and \"code\"",
                                   map->nerrors - 1);
        }
    }
    return LEGACY_OK;
}


static int
legacy_map_load_envelope(legacy_map_t *map, legacy_map_ctx_t *ctx,
    bson_iter_t *it)
{
    bson_iter_t   e;
    const char   *key;
    char        **slot;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &e)) {
        return legacy_map_fail(ctx, "envelope", NULL,
                               "envelope: not an object");
    }
    while (bson_iter_next(&e)) {
        key = bson_iter_key(&e);
        slot = strcmp(key, "code") == 0 ? &map->env_code
               : strcmp(key, "message") == 0 ? &map->env_message
               : strcmp(key, "data") == 0 ? &map->env_data : NULL;
        if (slot == NULL || (*slot = legacy_iter_strdup(&e)) == NULL) {
            return legacy_map_fail(ctx, "envelope", key,
                                   "envelope.%s: unknown or not a string",
                                   key);
        }
    }
    if (!map->env_code || !map->env_message || !map->env_data) {
        return legacy_map_fail(ctx, "envelope", NULL,
                               "envelope: needs code, message and data");
    }
    return LEGACY_OK;
}


/* Parses the map text; a syntax error is named by its line. */
static int
legacy_map_parse(const char *text, size_t len, bson_t *doc,
    legacy_error_t *err)
{
    legacy_error_t   jerr;
    const char      *p;
    size_t           off;
    int              line = 1;

    if (legacy_json_parse_object(text, len, doc, &jerr) == LEGACY_OK) {
        return LEGACY_OK;
    }
    bson_destroy(doc);
    if (sscanf(jerr.message, "%*[^0-9]%zu", &off) == 1 && off <= len) {
        for (p = text; p < text + off; p++) {
            line += *p == '\n';
        }
        return legacy_error_set(err, LEGACY_E_CONFIG, "map line %d: %s",
                                line, jerr.message);
    }
    return legacy_error_set(err, LEGACY_E_CONFIG, "map: %s", jerr.message);
}


/* The sections after codes and objects, in any order. */
static int
legacy_map_load_sections(legacy_map_t *map, legacy_map_ctx_t *ctx,
    const bson_t *doc)
{
    bson_iter_t   it;
    const char   *key;
    int64_t       v = 0;
    int           rc = LEGACY_OK;

    bson_iter_init(&it, doc);
    while (rc == LEGACY_OK && bson_iter_next(&it)) {
        key = bson_iter_key(&it);
        if (strcmp(key, "codes") == 0 || strcmp(key, "objects") == 0
            || strcmp(key, "comment") == 0)
        {
            continue;
        } else if (strcmp(key, "routes") == 0) {
            rc = legacy_map_load_routes(map, ctx, &it);
        } else if (strcmp(key, "errors") == 0) {
            rc = legacy_map_load_errors(map, ctx, &it);
        } else if (strcmp(key, "envelope") == 0) {
            rc = legacy_map_load_envelope(map, ctx, &it);
        } else if (strcmp(key, "idempotency_field") == 0) {
            map->idempotency_field = legacy_iter_strdup(&it);
            if (map->idempotency_field == NULL) {
                rc = legacy_map_fail(ctx, key, NULL,
                                     "idempotency_field: not a string");
            }
        } else if (strcmp(key, "time_offset_minutes") == 0) {
            if (legacy_iter_int64(&it, &v) != LEGACY_OK || v < -14 * 60
                || v > 14 * 60)
            {
                rc = legacy_map_fail(ctx, key, NULL, "time_offset_minutes:"
                                     " an integer in -840..840");
            }
            map->time_offset_min = (int) v;
        } else {
            rc = legacy_map_fail(ctx, key, NULL, "%s: unknown section", key);
        }
    }
    return rc;
}


legacy_map_t *
legacy_map_new_from_json(const char *text, size_t len, legacy_error_t *err)
{
    legacy_map_t      *map;
    legacy_map_ctx_t   ctx = { text, len, err };
    bson_t             doc;
    bson_iter_t        it;
    int                rc = LEGACY_OK;

    if (legacy_map_parse(text, len, &doc, err) != LEGACY_OK) {
        return NULL;
    }
    map = calloc(1, sizeof(*map));
    if (map == NULL) {
        bson_destroy(&doc);
        legacy_error_set(err, LEGACY_E_CONFIG, "out of memory");
        return NULL;
    }
    map->time_offset_min = 480;

    /* Code tables and objects first: routes and fields refer to them. */
    if (bson_iter_init_find(&it, &doc, "codes")) {
        rc = legacy_map_load_codes(map, &ctx, &it);
    }
    if (rc == LEGACY_OK && bson_iter_init_find(&it, &doc, "objects")) {
        rc = legacy_map_load_objects(map, &ctx, &it);
    }
    if (rc == LEGACY_OK) {
        rc = legacy_map_load_sections(map, &ctx, &doc);
    }

    if (rc == LEGACY_OK && map->routes[0].legacy_path == NULL) {
        rc = legacy_map_fail(&ctx, NULL, NULL, "routes: missing");
    }
    if (rc == LEGACY_OK && map->env_code == NULL) {
        rc = legacy_map_fail(&ctx, NULL, NULL, "envelope: missing");
    }
    if (rc == LEGACY_OK && map->idempotency_field == NULL) {
        rc = legacy_map_fail(&ctx, NULL, NULL, "idempotency_field: missing");
    }

    bson_destroy(&doc);
    if (rc != LEGACY_OK) {
        legacy_map_free(map);
        return NULL;
    }
    return map;
}


legacy_map_t *
legacy_map_new_from_file(const char *path, legacy_error_t *err)
{
    FILE          *f;
    legacy_buf_t   b = { 0 };
    char           chunk[8192];
    size_t         n;
    legacy_map_t  *map;

    f = fopen(path, "rb");
    if (f == NULL) {
        legacy_error_set(err, LEGACY_E_CONFIG, "map %s: %s", path,
                         strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (legacy_buf_append(&b, chunk, n) != LEGACY_OK) {
            break;
        }
    }
    fclose(f);

    map = legacy_map_new_from_json(b.data ? b.data : "", b.len, err);
    if (map == NULL) {
        char  msg[sizeof(err->message)];

        snprintf(msg, sizeof(msg), "%s", err->message);
        legacy_error_set(err, LEGACY_E_CONFIG, "%s: %s", path, msg);
    }
    legacy_buf_free(&b);
    return map;
}


void
legacy_map_free(legacy_map_t *map)
{
    size_t  i, j;

    if (map == NULL) {
        return;
    }
    for (i = 0; i < map->ncodes; i++) {
        for (j = 0; j < map->codes[i].n; j++) {
            free(map->codes[i].names[j]);
        }
        free(map->codes[i].names);
        free(map->codes[i].values);
        free(map->codes[i].name);
    }
    free(map->codes);
    for (i = 0; i < map->nobjects; i++) {
        for (j = 0; j < map->objects[i].nfields; j++) {
            free(map->objects[i].fields[j].canonical);
            free(map->objects[i].fields[j].legacy);
        }
        free(map->objects[i].fields);
        free(map->objects[i].name);
    }
    free(map->objects);
    for (i = 0; i < LEGACY_ROUTE_COUNT; i++) {
        free(map->routes[i].legacy_path);
    }
    for (i = 0; i < map->nerrors; i++) {
        free(map->errors[i].code);
    }
    free(map->errors);
    free(map->idempotency_field);
    free(map->env_code);
    free(map->env_message);
    free(map->env_data);
    free(map);
}
