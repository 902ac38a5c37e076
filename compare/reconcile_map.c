/*
 * reconcile_map: the map file, a JSON object of ledgers, each with its key
 * columns, its value columns and their types, and per side the SQL that
 * yields the canonical rows (a string, or an array of lines):
 *
 *   {"stock": {"key": ["store_id", "sku"], "values": {"on_hand": "integer"},
 *              "new": "SELECT ...", "legacy": ["SELECT ...", "FROM ..."]}}
 *
 * Every error names the file and the line.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_json.h"
#include "compare/reconcile.h"

#define RECONCILE_MAP_MAX    (1024 * 1024)
#define RECONCILE_MAP_TOKENS 4096


static int reconcile_map_line(const char *text, size_t off);
static char *reconcile_map_str(const char *text,
    const cutover_json_tok_t *tok);
static int reconcile_map_ident(const char *s);
static int reconcile_map_ledger(reconcile_map_t *map,
    const cutover_json_tok_t *toks, int name, int obj, cutover_error_t *err);
static int reconcile_map_sql(reconcile_map_t *map,
    const cutover_json_tok_t *toks, int at, char **sql, cutover_error_t *err);


static int
reconcile_map_line(const char *text, size_t off)
{
    size_t  i;
    int     line = 1;

    for (i = 0; i < off && text[i] != '\0'; i++) {
        if (text[i] == '\n') {
            line++;
        }
    }
    return line;
}


static char *
reconcile_map_str(const char *text, const cutover_json_tok_t *tok)
{
    char    *s;
    size_t   cap;

    if (tok->type != CUTOVER_JSON_STRING) {
        return NULL;
    }
    cap = tok->end - tok->start + 1;
    s = malloc(cap);
    if (s == NULL) {
        return NULL;
    }
    if (cutover_json_string(text, tok, s, cap) < 0) {
        free(s);
        return NULL;
    }
    return s;
}


/* A column name: letters, digits and underscores, not starting with a
 * digit (it goes into SQL as a quoted identifier). */
static int
reconcile_map_ident(const char *s)
{
    const char  *p;

    if (s == NULL || *s == '\0' || strlen(s) > 63
        || (*s >= '0' && *s <= '9'))
    {
        return 0;
    }
    for (p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_'))
        {
            return 0;
        }
    }
    return 1;
}


static int
reconcile_map_sql(reconcile_map_t *map, const cutover_json_tok_t *toks,
    int at, char **sql, cutover_error_t *err)
{
    int      i, k;
    size_t   len, l;
    char    *s, *part;

    if (toks[at].type == CUTOVER_JSON_STRING) {
        *sql = reconcile_map_str(map->text, &toks[at]);
    } else if (toks[at].type == CUTOVER_JSON_ARRAY) {
        len = 0;
        s = NULL;
        for (i = at + 1, k = 0; k < (int) toks[at].size;
             k++, i = cutover_json_next(toks, i))
        {
            part = reconcile_map_str(map->text, &toks[i]);
            if (part == NULL) {
                free(s);
                s = NULL;
                break;
            }
            l = strlen(part);
            s = realloc(s, len + l + 2);
            if (s == NULL) {
                free(part);
                break;
            }
            memcpy(s + len, part, l);
            len += l;
            s[len++] = '\n';
            s[len] = '\0';
            free(part);
        }
        *sql = s;
    } else {
        *sql = NULL;
    }
    /* a trailing semicolon would end the subquery it goes into */
    len = *sql ? strlen(*sql) : 0;
    while (len > 0 && strchr(" \t\r\n;", (*sql)[len - 1]) != NULL) {
        (*sql)[--len] = '\0';
    }
    if (*sql == NULL || strspn(*sql, " \t\r\n") == len) {
        free(*sql);
        *sql = NULL;
        cutover_error_set(err, "bad_map", "%s:%d: the SQL must be a"
                          " non-empty string or an array of strings",
                          map->path,
                          reconcile_map_line(map->text, toks[at].start));
        return RECONCILE_ERROR;
    }
    return RECONCILE_OK;
}


static int
reconcile_map_ledger(reconcile_map_t *map, const cutover_json_tok_t *toks,
    int name, int obj, cutover_error_t *err)
{
    int                      i, k, at, side, line;
    char                    *type;
    reconcile_ledger_map_t  *lm;
    static const char       *sides[2] = { "new", "legacy" };

    line = reconcile_map_line(map->text, toks[name].start);
    if (map->n == RECONCILE_MAX_LEDGERS) {
        cutover_error_set(err, "bad_map", "%s:%d: more than %d ledgers",
                          map->path, line, RECONCILE_MAX_LEDGERS);
        return RECONCILE_ERROR;
    }
    lm = &map->ledgers[map->n++];
    lm->name = reconcile_map_str(map->text, &toks[name]);
    if (lm->name == NULL || !reconcile_map_ident(lm->name)) {
        cutover_error_set(err, "bad_map", "%s:%d: a ledger name is letters,"
                          " digits and _", map->path, line);
        return RECONCILE_ERROR;
    }
    if (toks[obj].type != CUTOVER_JSON_OBJECT) {
        cutover_error_set(err, "bad_map", "%s:%d: ledger \"%s\" must be an"
                          " object", map->path, line, lm->name);
        return RECONCILE_ERROR;
    }

    at = cutover_json_get(map->text, toks, obj, "key");
    if (at < 0 || toks[at].type != CUTOVER_JSON_ARRAY || toks[at].size == 0
        || toks[at].size > RECONCILE_MAX_COLS)
    {
        cutover_error_set(err, "bad_map", "%s:%d: ledger \"%s\": \"key\""
                          " must be an array of 1-%d column names",
                          map->path, at < 0 ? line
                          : reconcile_map_line(map->text, toks[at].start),
                          lm->name, RECONCILE_MAX_COLS);
        return RECONCILE_ERROR;
    }
    for (i = at + 1, k = 0; k < (int) toks[at].size;
         k++, i = cutover_json_next(toks, i))
    {
        lm->keys[lm->nkeys++] = reconcile_map_str(map->text, &toks[i]);
        if (!reconcile_map_ident(lm->keys[k])) {
            cutover_error_set(err, "bad_map", "%s:%d: ledger \"%s\": a key"
                              " column name is letters, digits and _",
                              map->path,
                              reconcile_map_line(map->text, toks[i].start),
                              lm->name);
            return RECONCILE_ERROR;
        }
        if (strcmp(lm->keys[k], "store_id") == 0) {
            lm->has_store = 1;
        }
    }

    at = cutover_json_get(map->text, toks, obj, "values");
    if (at < 0 || toks[at].type != CUTOVER_JSON_OBJECT || toks[at].size == 0
        || toks[at].size > RECONCILE_MAX_COLS)
    {
        cutover_error_set(err, "bad_map", "%s:%d: ledger \"%s\": \"values\""
                          " must be an object of 1-%d columns and their"
                          " types", map->path, at < 0 ? line
                          : reconcile_map_line(map->text, toks[at].start),
                          lm->name, RECONCILE_MAX_COLS);
        return RECONCILE_ERROR;
    }
    for (i = at + 1, k = 0; k < (int) toks[at].size;
         k++, i = cutover_json_next(toks, i + 1))
    {
        lm->vals[lm->nvals++] = reconcile_map_str(map->text, &toks[i]);
        type = reconcile_map_str(map->text, &toks[i + 1]);
        if (!reconcile_map_ident(lm->vals[k]) || type == NULL
            || (strcmp(type, "text") != 0 && strcmp(type, "integer") != 0
                && strcmp(type, "decimal") != 0))
        {
            free(type);
            cutover_error_set(err, "bad_map", "%s:%d: ledger \"%s\": a value"
                              " column is \"name\": \"text\" | \"integer\""
                              " | \"decimal\"", map->path,
                              reconcile_map_line(map->text, toks[i].start),
                              lm->name);
            return RECONCILE_ERROR;
        }
        lm->types[k] = strcmp(type, "text") == 0 ? RECONCILE_TEXT
                       : strcmp(type, "integer") == 0 ? RECONCILE_INTEGER
                       : RECONCILE_DECIMAL;
        free(type);
        if (strcmp(lm->vals[k], "store_id") == 0) {
            lm->has_store = 1;
        }
    }

    for (side = 0; side < 2; side++) {
        at = cutover_json_get(map->text, toks, obj, sides[side]);
        if (at < 0) {
            cutover_error_set(err, "bad_map", "%s:%d: ledger \"%s\" has no"
                              " \"%s\" SQL", map->path, line, lm->name,
                              sides[side]);
            return RECONCILE_ERROR;
        }
        lm->line[side] = reconcile_map_line(map->text, toks[at].start);
        if (reconcile_map_sql(map, toks, at, &lm->sql[side], err)
            != RECONCILE_OK)
        {
            return RECONCILE_ERROR;
        }
    }
    return RECONCILE_OK;
}


reconcile_map_t *
reconcile_map_parse(const char *path, const char *text, size_t len,
    cutover_error_t *err)
{
    int                  n, i, k;
    char                 msg[200];
    const char          *at;
    reconcile_map_t     *map;
    cutover_json_tok_t  *toks;

    map = calloc(1, sizeof(*map));
    toks = calloc(RECONCILE_MAP_TOKENS, sizeof(*toks));
    if (map == NULL || toks == NULL) {
        free(map);
        free(toks);
        cutover_error_set(err, "no_memory", "out of memory");
        return NULL;
    }
    map->path = strdup(path);
    map->text = strndup(text, len);
    if (map->path == NULL || map->text == NULL) {
        cutover_error_set(err, "no_memory", "out of memory");
        goto failed;
    }

    n = cutover_json_parse(map->text, len, toks, RECONCILE_MAP_TOKENS, msg,
                           sizeof(msg));
    if (n < 0) {
        /* "... at byte N": name the line */
        at = strstr(msg, " at byte ");
        cutover_error_set(err, "bad_map", "%s:%d: %.*s", path,
                          at ? reconcile_map_line(map->text,
                                                  strtoul(at + 9, NULL, 10))
                             : 1,
                          at ? (int) (at - msg) : (int) strlen(msg), msg);
        goto failed;
    }
    if (toks[0].type != CUTOVER_JSON_OBJECT || toks[0].size == 0) {
        cutover_error_set(err, "bad_map", "%s:1: the map must be an object"
                          " of ledgers", path);
        goto failed;
    }
    for (i = 1, k = 0; k < (int) toks[0].size;
         k++, i = cutover_json_next(toks, i + 1))
    {
        if (reconcile_map_ledger(map, toks, i, i + 1, err) != RECONCILE_OK) {
            goto failed;
        }
    }
    free(toks);
    return map;

failed:
    free(toks);
    reconcile_map_free(map);
    return NULL;
}


reconcile_map_t *
reconcile_map_load(const char *path, cutover_error_t *err)
{
    FILE             *f;
    char             *buf;
    size_t            len;
    reconcile_map_t  *map;

    f = fopen(path, "r");
    if (f == NULL) {
        cutover_error_set(err, "bad_map", "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(RECONCILE_MAP_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        cutover_error_set(err, "no_memory", "out of memory");
        return NULL;
    }
    len = fread(buf, 1, RECONCILE_MAP_MAX + 1, f);
    if (ferror(f) || len > RECONCILE_MAP_MAX) {
        cutover_error_set(err, "bad_map", "%s: %s", path, ferror(f)
                          ? strerror(errno) : "larger than 1 MB");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    map = reconcile_map_parse(path, buf, len, err);
    free(buf);
    return map;
}


void
reconcile_map_free(reconcile_map_t *map)
{
    int  i, k;

    if (map == NULL) {
        return;
    }
    for (i = 0; i < map->n; i++) {
        free(map->ledgers[i].name);
        for (k = 0; k < map->ledgers[i].nkeys; k++) {
            free(map->ledgers[i].keys[k]);
        }
        for (k = 0; k < map->ledgers[i].nvals; k++) {
            free(map->ledgers[i].vals[k]);
        }
        free(map->ledgers[i].sql[0]);
        free(map->ledgers[i].sql[1]);
    }
    free(map->path);
    free(map->text);
    free(map);
}


int
reconcile_map_find(const reconcile_map_t *map, const char *name)
{
    int  i;

    for (i = 0; i < map->n; i++) {
        if (strcmp(map->ledgers[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}
