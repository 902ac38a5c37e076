/* legacy: the HTTP server shared by the sim and the adapter. */

#include <stdlib.h>
#include <string.h>

#include "legacy_adapter/legacy_server.h"


struct legacy_server_s {
    cutover_httpd_t  *httpd;
};


const char *
legacy_request_header(const legacy_request_t *req, const char *name)
{
    return cutover_httpd_header(req, name);
}


legacy_server_t *
legacy_server_new(const char *program, const char *listen,
    const cutover_httpd_limits_t *limits, legacy_handler_fn handler,
    void *data, legacy_error_t *err)
{
    legacy_server_t        *srv;
    cutover_httpd_conf_t    conf;
    cutover_httpd_error_t   herr;

    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        legacy_error_set(err, LEGACY_E_INTERNAL, "out of memory");
        return NULL;
    }

    memset(&conf, 0, sizeof(conf));
    conf.program = program;
    conf.listen = listen;
    conf.limits = *limits;
    conf.handler = handler;
    conf.data = data;
    /*
     * Both handlers wait (on PostgreSQL, on the legacy system): a thread
     * per connection, so that no connection waits behind another's call;
     * the sim's database pool and the adapter's client pool bound the
     * calls at once.
     */
    conf.per_connection = 1;

    srv->httpd = cutover_httpd_start(&conf, &herr);
    if (srv->httpd == NULL) {
        legacy_error_set(err, LEGACY_E_CONFIG, "%s", herr.message);
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

    cutover_httpd_stop(srv->httpd);
    free(srv);
}
