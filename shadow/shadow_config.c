/*
 * shadow_config: cutover-shadowd's JSON configuration file.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bson/bson.h>

#include "shadow/shadow_daemon.h"
#include "shadow/shadow_guard.h"
#include "shadow/shadow_json.h"


#define SHADOW_CONFIG_MAX  (1024 * 1024)


static int shadow_config_key(bson_iter_t *it, shadow_config_t *cfg,
    shadow_error_t *err);
static int shadow_config_string(bson_iter_t *it, char **out,
    shadow_error_t *err);
static int shadow_config_int(bson_iter_t *it, int *out, int min, int max,
    shadow_error_t *err);
static int shadow_config_order(bson_iter_t *it, shadow_config_t *cfg,
    shadow_error_t *err);
static int shadow_config_check(shadow_config_t *cfg, shadow_error_t *err);
static void shadow_config_replay_free(shadow_config_t *cfg);
static int shadow_config_replay(bson_iter_t *it, shadow_config_t *cfg,
    shadow_error_t *err);
static int shadow_config_replay_mode(bson_iter_t *it, shadow_replay_t *mode,
    shadow_error_t *err);
static int shadow_replay_path_match(const char *pat, const char *path,
    size_t len);


static int
shadow_config_string(bson_iter_t *it, char **out, shadow_error_t *err)
{
    uint32_t  len;

    if (BSON_ITER_HOLDS_NULL(it)) {
        free(*out);
        *out = NULL;
        return SHADOW_OK;
    }

    if (!BSON_ITER_HOLDS_UTF8(it)) {
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\" must be a string",
                                bson_iter_key(it));
    }

    free(*out);
    *out = strdup(bson_iter_utf8(it, &len));
    if (*out == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    return SHADOW_OK;
}


static int
shadow_config_int(bson_iter_t *it, int *out, int min, int max,
    shadow_error_t *err)
{
    double  v;

    if (!shadow_json_number(it, &v)) {
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\" must be a number",
                                bson_iter_key(it));
    }
    if (v < min || v > max || v != (int) v) {
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\" must be an "
                                "integer from %d to %d", bson_iter_key(it),
                                min, max);
    }

    *out = (int) v;
    return SHADOW_OK;
}


static int
shadow_config_order(bson_iter_t *it, shadow_config_t *cfg,
    shadow_error_t *err)
{
    uint32_t     len;
    const char  *s;

    s = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : "";

    if (strcmp(s, "store") == 0) {
        cfg->order_key = SHADOW_ORDER_STORE;

    } else if (strcmp(s, "store_channel") == 0) {
        cfg->order_key = SHADOW_ORDER_STORE_CHANNEL;

    } else if (strcmp(s, "key") == 0) {
        cfg->order_key = SHADOW_ORDER_KEY;

    } else {
        return shadow_error_set(err, SHADOW_ERROR, "\"order_key\" must be "
                                "\"store\", \"store_channel\" or \"key\"");
    }

    return SHADOW_OK;
}


/*
 * One key of the configuration file.  Kept whole (past 80 lines): it is the
 * table of keys, one line each.
 */
static int
shadow_config_key(bson_iter_t *it, shadow_config_t *cfg, shadow_error_t *err)
{
    int          v;
    double       d;
    const char  *k = bson_iter_key(it);

#define SHADOW_CFG_STR(name, field)                                         \
    if (strcmp(k, name) == 0) {                                             \
        return shadow_config_string(it, &cfg->field, err);                  \
    }
#define SHADOW_CFG_INT(name, field, lo, hi)                                 \
    if (strcmp(k, name) == 0) {                                             \
        return shadow_config_int(it, &cfg->field, lo, hi, err);             \
    }

    SHADOW_CFG_STR("log", log)
    SHADOW_CFG_STR("checkpoint", checkpoint)
    SHADOW_CFG_STR("new", new_url)
    SHADOW_CFG_STR("legacy", legacy_url)
    SHADOW_CFG_STR("rules", rules)
    SHADOW_CFG_STR("results_db", results_db)
    SHADOW_CFG_STR("outbox", outbox)
    SHADOW_CFG_STR("metrics_listen", metrics_listen)
    SHADOW_CFG_INT("concurrency", concurrency, 1, 4096)
    SHADOW_CFG_INT("timeout_ms", timeout_ms, 1, 3600000)
    SHADOW_CFG_INT("retries", retries, 0, 100)
    SHADOW_CFG_INT("retry_backoff_ms", backoff_ms, 0, 600000)
    SHADOW_CFG_INT("poll_ms", poll_ms, 1, 60000)
    SHADOW_CFG_INT("grace_ms", grace_ms, 0, 600000)
    SHADOW_CFG_INT("flush_ms", flush_ms, 1, 600000)
    SHADOW_CFG_INT("window", window, 1, 10000000)
    SHADOW_CFG_INT("window_mb", window_mb, 1, 1 << 20)
    SHADOW_CFG_INT("retry_backoff_max_ms", backoff_max_ms, 1, 3600000)
    SHADOW_CFG_INT("max_wait_ms", max_wait_ms, 0, 2000000000)
    SHADOW_CFG_INT("nice", nice, 0, 19)
    SHADOW_CFG_STR("dead_letter", dead_letter)

    if (strcmp(k, "replay") == 0) {
        return shadow_config_replay(it, cfg, err);
    }

    if (strcmp(k, "guard") == 0) {
        return shadow_guard_config(it, &cfg->guard, err);
    }

    if (strcmp(k, "max_inflight_per_key") == 0) {
        if (shadow_config_int(it, &v, 1, 1, err) != SHADOW_OK) {
            return shadow_error_set(err, SHADOW_ERROR, "\"max_inflight_per_"
                                    "key\" is fixed at 1");
        }

        return SHADOW_OK;
    }

    if (strcmp(k, "body_limit") == 0) {
        if (shadow_config_int(it, &v, 0, 1 << 30, err) != SHADOW_OK) {
            return SHADOW_ERROR;
        }

        cfg->body_limit = (size_t) v;
        return SHADOW_OK;
    }

    if (strcmp(k, "rate_limit") == 0) {
        if (!shadow_json_number(it, &d) || d < 0) {
            return shadow_error_set(err, SHADOW_ERROR, "\"rate_limit\" must "
                                    "be a number >= 0 (records/s, 0 = no "
                                    "limit)");
        }

        cfg->rate_limit = d;
        return SHADOW_OK;
    }

    if (strcmp(k, "delete_consumed") == 0 || strcmp(k, "sched_idle") == 0) {
        if (!BSON_ITER_HOLDS_BOOL(it)) {
            return shadow_error_set(err, SHADOW_ERROR, "\"%s\" must be true "
                                    "or false", k);
        }

        *(k[0] == 'd' ? &cfg->delete_consumed : &cfg->sched_idle) =
            bson_iter_bool(it);
        return SHADOW_OK;
    }

    if (strcmp(k, "order_key") == 0) {
        return shadow_config_order(it, cfg, err);
    }

    return shadow_error_set(err, SHADOW_ERROR, "unknown key \"%s\"", k);
}


static int
shadow_config_replay_mode(bson_iter_t *it, shadow_replay_t *mode,
    shadow_error_t *err)
{
    uint32_t     len;
    const char  *s;

    s = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : "";

    if (strcmp(s, "applied") == 0) {
        *mode = SHADOW_REPLAY_APPLIED;

    } else if (strcmp(s, "always") == 0) {
        *mode = SHADOW_REPLAY_ALWAYS;

    } else {
        return shadow_error_set(err, SHADOW_ERROR, "\"replay\": \"%s\" must "
                                "be \"applied\" or \"always\"",
                                bson_iter_key(it));
    }

    return SHADOW_OK;
}


/*
 * "replay": {"POST /api/v1/orders": "always", "*": "applied"}: a write
 * is replayed when the primary applied it (2xx) unless its route says
 * "always"; "*" sets the mode of writes no other entry names.
 */
static int
shadow_config_replay(bson_iter_t *it, shadow_config_t *cfg,
    shadow_error_t *err)
{
    size_t                 n = 0;
    const char            *k, *sp;
    bson_iter_t            sub;
    shadow_replay_t        mode = SHADOW_REPLAY_APPLIED;
    shadow_replay_rule_t  *rules, *r;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &sub)) {
        return shadow_error_set(err, SHADOW_ERROR, "\"replay\" must be an "
                                "object of \"METHOD /path\": \"applied\" or "
                                "\"always\"");
    }

    while (bson_iter_next(&sub)) {
        n++;
    }

    rules = calloc(n ? n : 1, sizeof(*rules));
    if (rules == NULL || !bson_iter_recurse(it, &sub)) {
        free(rules);
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    n = 0;
    while (bson_iter_next(&sub)) {
        k = bson_iter_key(&sub);
        if (shadow_config_replay_mode(&sub, &mode, err) != SHADOW_OK) {
            goto failed;
        }

        if (strcmp(k, "*") == 0) {
            cfg->replay_default = mode;
            continue;
        }

        sp = strchr(k, ' ');
        if (sp == NULL || sp == k || sp[1] != '/' || strchr(sp + 1, ' ')) {
            shadow_error_set(err, SHADOW_ERROR, "\"replay\": \"%s\" is not "
                             "\"METHOD /path\" or \"*\"", k);
            goto failed;
        }

        r = &rules[n++];
        r->mode = mode;
        r->method = strndup(k, sp - k);
        r->path = strdup(sp + 1);
        if (r->method == NULL || r->path == NULL) {
            shadow_error_set(err, SHADOW_ERROR, "out of memory");
            goto failed;
        }
    }

    shadow_config_replay_free(cfg);
    cfg->replay = rules;
    cfg->nreplay = n;
    return SHADOW_OK;

failed:

    while (n > 0) {
        n--;
        free(rules[n].method);
        free(rules[n].path);
    }

    free(rules);
    return SHADOW_ERROR;
}


static int
shadow_replay_path_match(const char *pat, const char *path, size_t len)
{
    size_t       pl, sl;
    const char  *pe, *se, *end = path + len;

    for ( ;; ) {
        if (*pat == '\0' || path == end) {
            return *pat == '\0' && path == end;
        }

        if (*pat != '/' || *path != '/') {
            return 0;
        }

        pat++;
        path++;
        pe = strchr(pat, '/');
        pl = pe ? (size_t) (pe - pat) : strlen(pat);
        se = memchr(path, '/', end - path);
        sl = se ? (size_t) (se - path) : (size_t) (end - path);

        if (pl == 1 && pat[0] == '*' && pat[1] == '\0') {
            return 1;
        }

        if (pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}') {
            if (sl == 0) {
                return 0;
            }

        } else if (pl != sl || memcmp(pat, path, sl) != 0) {
            return 0;
        }

        pat += pl;
        path += sl;
    }
}


shadow_replay_t
shadow_replay_mode(const shadow_config_t *cfg, const char *method,
    size_t mlen, const char *uri, size_t ulen)
{
    size_t                       i, plen;
    const char                  *q;
    const shadow_replay_rule_t  *r;

    q = memchr(uri, '?', ulen);
    plen = q ? (size_t) (q - uri) : ulen;

    for (i = 0; i < cfg->nreplay; i++) {
        r = &cfg->replay[i];
        if (!(strcmp(r->method, "*") == 0
              || (strlen(r->method) == mlen
                  && strncasecmp(r->method, method, mlen) == 0)))
        {
            continue;
        }

        if (shadow_replay_path_match(r->path, uri, plen)) {
            return r->mode;
        }
    }

    return cfg->replay_default;
}


int
shadow_method_is_read(const char *method, size_t len)
{
    return (len == 3 && strncasecmp(method, "GET", 3) == 0)
           || (len == 4 && strncasecmp(method, "HEAD", 4) == 0)
           || (len == 7 && strncasecmp(method, "OPTIONS", 7) == 0);
}


static int
shadow_config_check(shadow_config_t *cfg, shadow_error_t *err)
{
    size_t  n;

    if (cfg->log == NULL || cfg->checkpoint == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "\"log\" and "
                                "\"checkpoint\" are required");
    }

    if (cfg->new_url == NULL || cfg->legacy_url == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "\"new\" and \"legacy\" "
                                "base URLs are required");
    }

    if (strncmp(cfg->new_url, "http://", 7) != 0
        || strncmp(cfg->legacy_url, "http://", 7) != 0)
    {
        return shadow_error_set(err, SHADOW_ERROR, "\"new\" and \"legacy\" "
                                "must be http:// URLs");
    }

    /* the record's URI starts with "/" */
    for (n = strlen(cfg->new_url); n > 7 && cfg->new_url[n - 1] == '/'; n--) {
        cfg->new_url[n - 1] = '\0';
    }

    for (n = strlen(cfg->legacy_url);
         n > 7 && cfg->legacy_url[n - 1] == '/';
         n--)
    {
        cfg->legacy_url[n - 1] = '\0';
    }

    if (cfg->outbox == NULL && cfg->results_db == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "\"outbox\" or "
                                "\"results_db\" is required");
    }

    if (cfg->backoff_max_ms < cfg->backoff_ms) {
        cfg->backoff_max_ms = cfg->backoff_ms > 0 ? cfg->backoff_ms : 1;
    }

    /* beside the checkpoint: the same disk, the same operator */
    if (cfg->dead_letter == NULL
        && asprintf(&cfg->dead_letter, "%s.dead-letter", cfg->checkpoint)
           == -1)
    {
        cfg->dead_letter = NULL;
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    return SHADOW_OK;
}


int
shadow_config_load(const char *path, shadow_config_t *cfg,
    shadow_error_t *err)
{
    FILE          *f;
    char          *text;
    int            rc;
    size_t         n;
    bson_t         doc;
    bson_iter_t    it;

    memset(cfg, 0, sizeof(*cfg));
    cfg->concurrency = 64;
    cfg->timeout_ms = 2000;
    cfg->retries = 3;
    cfg->backoff_ms = 100;
    cfg->poll_ms = 50;
    cfg->grace_ms = 1000;
    cfg->flush_ms = 100;
    cfg->window = 65536;
    cfg->window_mb = 256;
    cfg->delete_consumed = 1;
    cfg->order_key = SHADOW_ORDER_STORE;
    cfg->body_limit = 1024 * 1024;
    cfg->backoff_max_ms = 5000;
    cfg->max_wait_ms = 0;
    cfg->nice = 10;
    cfg->sched_idle = 1;
    cfg->replay_default = SHADOW_REPLAY_APPLIED;

    f = fopen(path, "re");
    if (f == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "cannot open \"%s\": %s",
                                path, strerror(errno));
    }

    text = malloc(SHADOW_CONFIG_MAX + 1);
    if (text == NULL) {
        fclose(f);
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    n = fread(text, 1, SHADOW_CONFIG_MAX + 1, f);
    fclose(f);

    if (n > SHADOW_CONFIG_MAX) {
        free(text);
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\" is too large",
                                path);
    }

    rc = shadow_json_object(text, n, &doc, &it, err);
    free(text);

    if (rc != SHADOW_OK) {
        return SHADOW_ERROR;
    }

    while (bson_iter_next(&it)) {
        if (shadow_config_key(&it, cfg, err) != SHADOW_OK) {
            bson_destroy(&doc);
            shadow_config_clear(cfg);
            return SHADOW_ERROR;
        }
    }

    bson_destroy(&doc);

    if (shadow_config_check(cfg, err) != SHADOW_OK) {
        shadow_config_clear(cfg);
        return SHADOW_ERROR;
    }

    return SHADOW_OK;
}


void
shadow_config_clear(shadow_config_t *cfg)
{
    free(cfg->log);
    free(cfg->checkpoint);
    free(cfg->new_url);
    free(cfg->legacy_url);
    free(cfg->rules);
    free(cfg->results_db);
    free(cfg->outbox);
    free(cfg->metrics_listen);
    free(cfg->dead_letter);
    shadow_config_replay_free(cfg);
    shadow_guard_config_free(cfg->guard);
    memset(cfg, 0, sizeof(*cfg));
}


static void
shadow_config_replay_free(shadow_config_t *cfg)
{
    size_t  i;

    for (i = 0; i < cfg->nreplay; i++) {
        free(cfg->replay[i].method);
        free(cfg->replay[i].path);
    }

    free(cfg->replay);
    cfg->replay = NULL;
    cfg->nreplay = 0;
}
