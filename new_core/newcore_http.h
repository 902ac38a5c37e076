/* The HTTP/1.1 face of the core: the daemons' listener (common/). */

#ifndef NEWCORE_HTTP_H
#define NEWCORE_HTTP_H

#include "common/cutover_httpd.h"
#include "new_core/newcore_db.h"

typedef struct newcore_server_s  newcore_server_t;

/*
 * Listens on addr ("127.0.0.1:8081", "[::1]:8081", "localhost:8081") with
 * the given limits: a pool of limits->threads threads, each request holding
 * one of the pool's database connections while it runs.  Requests answered
 * 5xx are reported through log.  Free (and stop) with newcore_server_free().
 */
newcore_server_t *newcore_server_new(const char *addr,
    const cutover_httpd_limits_t *limits, newcore_pool_t *pool,
    newcore_log_pt log, void *log_ctx, newcore_error_t *err);
void newcore_server_free(newcore_server_t *server);

#endif /* NEWCORE_HTTP_H */
