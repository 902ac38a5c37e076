/* The HTTP/1.1 face of the core: libmicrohttpd, a thread per connection. */

#ifndef NEWCORE_HTTP_H
#define NEWCORE_HTTP_H

#include "new_core/newcore_db.h"

typedef struct newcore_server_s  newcore_server_t;

/*
 * Listens on addr ("127.0.0.1:8081"), a thread per client connection; the
 * requests take turns on the pool's database connections.
 * Requests answered 5xx are reported through log.  Free (and stop) with
 * newcore_server_free().
 */
newcore_server_t *newcore_server_new(const char *addr, newcore_pool_t *pool,
    newcore_log_pt log, void *log_ctx, newcore_error_t *err);
void newcore_server_free(newcore_server_t *server);

/* Splits "ADDR:PORT" (IPv4); NEWCORE_ERROR when malformed. */
int newcore_parse_listen(const char *addr, char *host, size_t size,
    unsigned short *port);

#endif /* NEWCORE_HTTP_H */
