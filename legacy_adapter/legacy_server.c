/* legacy: the libmicrohttpd glue shared by the sim and the adapter. */

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "legacy_adapter/legacy_server.h"


struct legacy_server_s {
    struct MHD_Daemon  *daemon;
    legacy_handler_fn   handler;
    void               *data;
};

/* Per-request state kept between the access handler's calls. */
typedef struct {
    legacy_buf_t  body;
    int           too_big;
} legacy_upload_t;


static enum MHD_Result legacy_server_access(void *cls,
    struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size,
    void **con_cls);
static void legacy_server_completed(void *cls, struct MHD_Connection *conn,
    void **con_cls, enum MHD_RequestTerminationCode toe);
static enum MHD_Result legacy_server_reply(struct MHD_Connection *conn,
    legacy_response_t *resp);


int
legacy_parse_listen(const char *listen, char *addr, size_t addr_len,
    uint16_t *port, legacy_error_t *err)
{
    const char  *colon;
    char        *end;
    long         p;

    colon = listen ? strrchr(listen, ':') : NULL;
    if (colon == NULL || (size_t) (colon - listen) >= addr_len) {
        return legacy_error_set(err, LEGACY_E_CONFIG,
                                "listen \"%s\": expected ADDR:PORT",
                                listen ? listen : "");
    }
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || p < 1 || p > 65535) {
        return legacy_error_set(err, LEGACY_E_CONFIG,
                                "listen \"%s\": bad port", listen);
    }
    memcpy(addr, listen, colon - listen);
    addr[colon - listen] = '\0';
    if (addr[0] == '\0' || strcmp(addr, "*") == 0) {
        strcpy(addr, "0.0.0.0");
    }
    *port = (uint16_t) p;
    return LEGACY_OK;
}


const char *
legacy_request_header(const legacy_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                       name);
}


static enum MHD_Result
legacy_server_reply(struct MHD_Connection *conn, legacy_response_t *resp)
{
    struct MHD_Response  *r;
    enum MHD_Result       rc;

    r = MHD_create_response_from_buffer(resp->body_len,
                                        resp->body ? resp->body : "",
                                        resp->body ? MHD_RESPMEM_MUST_FREE
                                        : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        free(resp->body);
        return MHD_NO;
    }
    if (resp->content_type != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type);
    }
    if (resp->extra_name[0] != '\0') {
        MHD_add_response_header(r, resp->extra_name, resp->extra_value);
    }
    rc = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    return rc;
}


static enum MHD_Result
legacy_server_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
    legacy_server_t    *srv = cls;
    legacy_upload_t    *up = *con_cls;
    legacy_request_t    req;
    legacy_response_t   resp;
    static const char   too_big[] =
        "{\"error\":{\"code\":\"invalid_request\","
        "\"message\":\"body too large\"}}";

    (void) version;

    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        if (up == NULL) {
            return MHD_NO;
        }
        *con_cls = up;
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        if (up->body.len + *upload_data_size > LEGACY_BODY_MAX) {
            up->too_big = 1;
        } else if (legacy_buf_append(&up->body, upload_data,
                                     *upload_data_size) != LEGACY_OK)
        {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    memset(&resp, 0, sizeof(resp));
    if (up->too_big) {
        resp.status = 413;
        resp.content_type = "application/json";
        resp.body = strdup(too_big);
        resp.body_len = resp.body ? strlen(too_big) : 0;
        return legacy_server_reply(conn, &resp);
    }

    if (legacy_buf_append(&up->body, "", 0) != LEGACY_OK) {
        return MHD_NO;
    }
    req.method = method;
    req.path = url;
    req.body = (const uint8_t *) up->body.data;
    req.body_len = up->body.len;
    req.connection = conn;

    resp.status = 500;
    srv->handler(srv->data, &req, &resp);
    return legacy_server_reply(conn, &resp);
}


static void
legacy_server_completed(void *cls, struct MHD_Connection *conn,
    void **con_cls, enum MHD_RequestTerminationCode toe)
{
    legacy_upload_t  *up = *con_cls;

    (void) cls;
    (void) conn;
    (void) toe;

    if (up != NULL) {
        legacy_buf_free(&up->body);
        free(up);
        *con_cls = NULL;
    }
}


legacy_server_t *
legacy_server_new(const char *listen, unsigned threads,
    legacy_handler_fn handler, void *data, legacy_error_t *err)
{
    legacy_server_t     *srv;
    struct sockaddr_in   sin;
    char                 addr[64];
    uint16_t             port;

    if (legacy_parse_listen(listen, addr, sizeof(addr), &port, err)
        != LEGACY_OK)
    {
        return NULL;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        legacy_error_set(err, LEGACY_E_CONFIG,
                         "listen \"%s\": not an IPv4 address", listen);
        return NULL;
    }

    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
        return NULL;
    }
    srv->handler = handler;
    srv->data = data;

    /*
     * threads == 0: a thread per connection, so a handler that blocks on
     * its back end never holds up another client's connection.
     */
    if (threads == 0) {
        srv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD
                                       | MHD_USE_THREAD_PER_CONNECTION
                                       | MHD_USE_POLL | MHD_USE_ERROR_LOG,
                                       port, NULL, NULL,
                                       legacy_server_access, srv,
                                       MHD_OPTION_SOCK_ADDR, &sin,
                                       MHD_OPTION_NOTIFY_COMPLETED,
                                       legacy_server_completed, srv,
                                       MHD_OPTION_CONNECTION_TIMEOUT,
                                       (unsigned int) 60,
                                       MHD_OPTION_CONNECTION_LIMIT,
                                       (unsigned int) 1024,
                                       MHD_OPTION_LISTENING_ADDRESS_REUSE,
                                       (unsigned int) 1,
                                       MHD_OPTION_END);
    } else {
        srv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD
                                       | MHD_USE_POLL | MHD_USE_ERROR_LOG,
                                       port, NULL, NULL,
                                       legacy_server_access, srv,
                                       MHD_OPTION_SOCK_ADDR, &sin,
                                       MHD_OPTION_THREAD_POOL_SIZE,
                                       (unsigned int) threads,
                                       MHD_OPTION_NOTIFY_COMPLETED,
                                       legacy_server_completed, srv,
                                       MHD_OPTION_CONNECTION_TIMEOUT,
                                       (unsigned int) 60,
                                       MHD_OPTION_LISTENING_ADDRESS_REUSE,
                                       (unsigned int) 1,
                                       MHD_OPTION_END);
    }
    if (srv->daemon == NULL) {
        legacy_error_set(err, LEGACY_E_CONFIG,
                         "cannot listen on %s (in use or not permitted)",
                         listen);
        free(srv);
        return NULL;
    }
    return srv;
}


void
legacy_server_free(legacy_server_t *srv)
{
    if (srv == NULL) {
        return;
    }
    if (srv->daemon != NULL) {
        MHD_stop_daemon(srv->daemon);
    }
    free(srv);
}
