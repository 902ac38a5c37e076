/* The HTTP/1.1 face of the core: libmicrohttpd, a thread per connection. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "new_core/newcore_api.h"
#include "new_core/newcore_http.h"
#include "new_core/newcore_order.h"

struct newcore_server_s {
    struct MHD_Daemon  *daemon;
    newcore_pool_t     *pool;
    newcore_log_pt      log;
    void               *log_ctx;
};

typedef struct {
    newcore_buf_t  body;
    int            too_large;
} newcore_http_req_t;


static enum MHD_Result newcore_http_access(void *cls,
    struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size,
    void **con_cls);
static void newcore_http_completed(void *cls, struct MHD_Connection *c,
    void **con_cls, enum MHD_RequestTerminationCode toe);
static void newcore_http_mhd_log(void *cls, const char *fmt, va_list ap);


int
newcore_parse_listen(const char *addr, char *host, size_t size,
    unsigned short *port)
{
    const char     *colon;
    char           *end;
    unsigned long   p;
    struct in_addr  in;

    colon = strrchr(addr, ':');
    if (colon == NULL || (size_t) (colon - addr) >= size || colon == addr) {
        return NEWCORE_ERROR;
    }

    memcpy(host, addr, (size_t) (colon - addr));
    host[colon - addr] = '\0';

    p = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p == 0 || p > 65535
        || inet_pton(AF_INET, host, &in) != 1)
    {
        return NEWCORE_ERROR;
    }

    *port = (unsigned short) p;
    return NEWCORE_OK;
}


static void
newcore_http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    newcore_server_t  *server = cls;
    char               line[512];
    size_t             len;

    vsnprintf(line, sizeof(line), fmt, ap);
    len = strlen(line);
    while (len > 0 && line[len - 1] == '\n') {
        line[--len] = '\0';
    }

    server->log(server->log_ctx, "WARN", "http: %s", line);
}


newcore_server_t *
newcore_server_new(const char *addr, newcore_pool_t *pool,
    newcore_log_pt log, void *log_ctx, newcore_error_t *err)
{
    char                 host[64];
    unsigned short       port;
    struct sockaddr_in   sin;
    newcore_server_t    *server;

    if (newcore_parse_listen(addr, host, sizeof(host), &port) != NEWCORE_OK)
    {
        newcore_error_set(err, 400, "invalid_request",
                          "bad listen address \"%s\" (want ADDR:PORT)", addr);
        return NULL;
    }

    server = calloc(1, sizeof(newcore_server_t));
    if (server == NULL) {
        newcore_error_set(err, 500, "internal", "out of memory");
        return NULL;
    }

    server->pool = pool;
    server->log = log;
    server->log_ctx = log_ctx;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, host, &sin.sin_addr);

    /*
     * A thread per connection, all sharing the pool's database
     * connections: requests queue for the database in one line.  With a
     * polling thread pool a connection is tied to one thread and waits
     * behind that thread's other connections: the same throughput here,
     * but a p99 two to four times longer on a busy 2-core machine.  poll(),
     * not select(): descriptors past FD_SETSIZE work.
     */
    server->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD
        | MHD_USE_ERROR_LOG, port, NULL, NULL,
        newcore_http_access, server,
        MHD_OPTION_EXTERNAL_LOGGER, newcore_http_mhd_log, server,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sin,
        MHD_OPTION_NOTIFY_COMPLETED, newcore_http_completed, server,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 60,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 1024,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 1024,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int) 1,
        MHD_OPTION_END);

    if (server->daemon == NULL) {
        newcore_error_set(err, 500, "internal",
                          "cannot listen on %s (address in use?)", addr);
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

    if (server->daemon != NULL) {
        MHD_stop_daemon(server->daemon);
    }

    free(server);
}


static enum MHD_Result
newcore_http_access(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
    newcore_server_t     *server = cls;
    newcore_http_req_t   *hr = *con_cls;
    newcore_request_t     req;
    newcore_reply_t       reply;
    struct MHD_Response  *resp;
    enum MHD_Result       ret;

    (void) version;

    if (hr == NULL) {
        hr = calloc(1, sizeof(newcore_http_req_t));
        if (hr == NULL) {
            return MHD_NO;
        }
        newcore_buf_init(&hr->body);
        *con_cls = hr;
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        if (hr->too_large
            || hr->body.len + *upload_data_size > NEWCORE_BODY_MAX)
        {
            hr->too_large = 1;
        } else if (newcore_buf_append(&hr->body, upload_data,
                                      *upload_data_size) != NEWCORE_OK)
        {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = url;
    req.idem_key = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                               "Idempotency-Key");
    req.body = hr->body.data ? hr->body.data : "";
    req.body_len = hr->body.len;
    req.body_too_large = hr->too_large;

    newcore_reply_init(&reply);
    newcore_api_handle(server->pool, &req, &reply);

    if (reply.status >= 500) {
        server->log(server->log_ctx, "ERROR", "%s %s -> %d %s: %s", method,
                    url, reply.status, reply.err.code, reply.err.message);
    }

    resp = MHD_create_response_from_buffer(reply.body.len,
                                           reply.body.data ? reply.body.data
                                                           : (char *) "",
                                           MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        newcore_reply_free(&reply);
        return MHD_NO;
    }

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    if (reply.allow != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply.allow);
    }

    ret = MHD_queue_response(c, (unsigned int) reply.status, resp);
    MHD_destroy_response(resp);
    newcore_reply_free(&reply);
    return ret;
}


static void
newcore_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
    newcore_http_req_t  *hr = *con_cls;

    (void) cls;
    (void) c;
    (void) toe;

    if (hr != NULL) {
        newcore_buf_free(&hr->body);
        free(hr);
        *con_cls = NULL;
    }
}
