/*
 * legacy: the HTTP server of the stand-in legacy system and of the adapter,
 * the daemons' listener (common/cutover_httpd): whole bodies in, whole
 * bodies out, one handler call per request on the connection's own
 * thread.
 */

#ifndef LEGACY_SERVER_H
#define LEGACY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_httpd.h"
#include "legacy_adapter/legacy_common.h"

/* The body limit of the legacy dialect (the adapter takes CUTOVER_API's). */
#define LEGACY_BODY_MAX  (1024 * 1024)

typedef struct legacy_server_s legacy_server_t;

typedef cutover_httpd_request_t   legacy_request_t;

/* The handler fills this; body is malloc'ed and freed by the server. */
typedef cutover_httpd_response_t  legacy_response_t;

typedef cutover_httpd_handler_pt  legacy_handler_fn;

/* A request header, or NULL. */
const char *legacy_request_header(const legacy_request_t *req,
    const char *name);

/*
 * Starts serving on listen ("ADDR:PORT", "[::1]:PORT", "HOST:PORT") with
 * the given limits.  Returns NULL with err set on failure.
 * legacy_server_free() stops and frees.
 */
legacy_server_t *legacy_server_new(const char *program, const char *listen,
    const cutover_httpd_limits_t *limits, legacy_handler_fn handler,
    void *data, legacy_error_t *err);
void legacy_server_free(legacy_server_t *srv);

#endif
