/*
 * shadow_config: cutover-shadowd's JSON configuration file.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "shadow/shadow_daemon.h"
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

    if (strcmp(k, "delete_consumed") == 0) {
        if (!BSON_ITER_HOLDS_BOOL(it)) {
            return shadow_error_set(err, SHADOW_ERROR, "\"delete_consumed\" "
                                    "must be true or false");
        }

        cfg->delete_consumed = bson_iter_bool(it);
        return SHADOW_OK;
    }

    if (strcmp(k, "order_key") == 0) {
        return shadow_config_order(it, cfg, err);
    }

    return shadow_error_set(err, SHADOW_ERROR, "unknown key \"%s\"", k);
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
    memset(cfg, 0, sizeof(*cfg));
}
