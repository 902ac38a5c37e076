/*
 * legacy: a small HTTP server on libmicrohttpd shared by the stand-in
 * legacy system and the adapter: whole bodies in, whole bodies out, one
 * handler call per request on a fixed pool of threads.
 */

#ifndef LEGACY_SERVER_H
#define LEGACY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "legacy_adapter/legacy_common.h"

#define LEGACY_BODY_MAX  (1024 * 1024)

typedef struct legacy_server_s legacy_server_t;

typedef struct {
    const char      *method;
    const char      *path;         /* without the query */
    const uint8_t   *body;         /* NUL-terminated copy, may be empty */
    size_t           body_len;
    void            *connection;   /* for legacy_request_header() */
} legacy_request_t;

/* The handler fills this; body is malloc'ed and freed by the server. */
typedef struct {
    int              status;
    const char      *content_type;  /* static string */
    char            *body;
    size_t           body_len;
    char             extra_name[64];     /* one optional extra header */
    char             extra_value[128];
} legacy_response_t;

typedef void (*legacy_handler_fn)(void *data, const legacy_request_t *req,
    legacy_response_t *resp);

/* A request header, or NULL. */
const char *legacy_request_header(const legacy_request_t *req,
    const char *name);

/*
 * Parses "ADDR:PORT" and starts serving with a pool of `threads` threads,
 * or a thread per connection when `threads` is 0.  Returns
 * NULL with err set on failure.  legacy_server_free() stops and frees.
 */
legacy_server_t *legacy_server_new(const char *listen, unsigned threads,
    legacy_handler_fn handler, void *data, legacy_error_t *err);
void legacy_server_free(legacy_server_t *srv);

/* Splits "ADDR:PORT"; addr receives at most addr_len bytes. */
int legacy_parse_listen(const char *listen, char *addr, size_t addr_len,
    uint16_t *port, legacy_error_t *err);

#endif
