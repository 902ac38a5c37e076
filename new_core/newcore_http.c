/* The HTTP/1.1 face of the core: the daemons' listener (common/). */

#include <stdlib.h>
#include <string.h>

#include "new_core/newcore_api.h"
#include "new_core/newcore_http.h"

struct newcore_server_s {
    cutover_httpd_t  *httpd;
    newcore_pool_t   *pool;
    newcore_log_pt    log;
    void             *log_ctx;
};


static void newcore_http_handle(void *data,
    const cutover_httpd_request_t *hr, cutover_httpd_response_t *resp);


newcore_server_t *
newcore_server_new(const char *addr, const cutover_httpd_limits_t *limits,
    newcore_pool_t *pool, newcore_log_pt log, void *log_ctx,
    newcore_error_t *err)
{
    newcore_server_t       *server;
    cutover_httpd_conf_t    conf;
    cutover_httpd_error_t   herr;

    server = calloc(1, sizeof(newcore_server_t));
    if (server == NULL) {
        newcore_error_set(err, 500, "internal", "out of memory");
        return NULL;
    }

    server->pool = pool;
    server->log = log;
    server->log_ctx = log_ctx;

    memset(&conf, 0, sizeof(conf));
    conf.program = "cutover-newcore";
    conf.listen = addr;
    conf.limits = *limits;
    conf.handler = newcore_http_handle;
    conf.data = server;

    server->httpd = cutover_httpd_start(&conf, &herr);
    if (server->httpd == NULL) {
        newcore_error_set(err, 500, "internal", "%s", herr.message);
        free(server);
        return NULL;
    }

    return server;
}


void
newcore_server_free(newcore_server_t *server)
{
    if (server == NULL) {
        return;
    }

    cutover_httpd_stop(server->httpd);
    free(server);
}


static void
newcore_http_handle(void *data, const cutover_httpd_request_t *hr,
    cutover_httpd_response_t *resp)
{
    newcore_server_t   *server = data;
    newcore_request_t   req;
    newcore_reply_t     reply;

    memset(&req, 0, sizeof(req));
    req.method = hr->method;
    req.path = hr->path;
    req.idem_key = cutover_httpd_header(hr, "Idempotency-Key");
    req.body = hr->body;
    req.body_len = hr->body_len;

    newcore_reply_init(&reply);
    newcore_api_handle(server->pool, &req, &reply);

    if (reply.status >= 500) {
        server->log(server->log_ctx, "ERROR", "%s %s -> %d %s: %s",
                    hr->method, hr->path, reply.status, reply.err.name,
                    reply.err.message);
    }

    resp->status = reply.status;
    resp->content_type = "application/json";
    resp->body = malloc(reply.body.len + 1);
    if (resp->body != NULL) {
        memcpy(resp->body, reply.body.data ? reply.body.data : "",
               reply.body.len);
        resp->body_len = reply.body.len;
    } else {
        resp->status = 500;
    }

    if (reply.allow != NULL) {
        strcpy(resp->extra_name, "Allow");
        snprintf(resp->extra_value, sizeof(resp->extra_value), "%s",
                 reply.allow);
    }

    newcore_reply_free(&reply);
}
