/*
 * legacy: the anti-corruption adapter.  Canonical API (SPEC.md) outward,
 * the legacy dialect inward, through a legacy_map_t; a pool of libcurl
 * handles, each kept alive to the legacy system, bounds the calls at once.
 */

#ifndef LEGACY_ADAPTER_H
#define LEGACY_ADAPTER_H

#include "legacy_adapter/legacy_map.h"
#include "legacy_adapter/legacy_server.h"

typedef struct {
    const char        *legacy_url;     /* "http://host:port", no path */
    const legacy_map_t *map;           /* borrowed, outlives the adapter */
    long               timeout_ms;
    unsigned           calls;          /* legacy calls at once, 0: 32 */
    legacy_log_fn      log;
    void              *log_data;
} legacy_adapter_config_t;

typedef struct legacy_adapter_s legacy_adapter_t;

/* cfg is copied (the URL too).  Free with legacy_adapter_free(). */
legacy_adapter_t *legacy_adapter_new(const legacy_adapter_config_t *cfg,
    legacy_error_t *err);
void legacy_adapter_free(legacy_adapter_t *ad);

/* The legacy_handler_fn of the adapter's server. */
void legacy_adapter_handle(void *data, const legacy_request_t *req,
    legacy_response_t *resp);

/*
 * Turns one legacy answer (HTTP status, content type, body) into the
 * canonical status and JSON body, for route `route`.  Exposed for tests.
 * *json is malloc'ed (caller frees); legacy_code gets the envelope code
 * (-1 when there was none).
 */
int legacy_adapter_translate(const legacy_map_t *map, int route,
    int http_status, const char *content_type, const uint8_t *body,
    size_t len, int *status, char **json, size_t *json_len,
    int64_t *legacy_code, legacy_error_t *err);

/* A canonical error body {"error": {"code", "message"}} (malloc'ed). */
char *legacy_adapter_error_body(const char *code, const char *message,
    size_t *len);

#endif
