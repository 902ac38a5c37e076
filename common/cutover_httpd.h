/*
 * cutover_httpd: the HTTP listener of every daemon (cutover-newcore,
 * legacy-store-sim, cutover-legacy-adapter, shadowd's metrics): listen
 * addresses (IPv4, IPv6, host names) and libmicrohttpd started in its epoll
 * mode with a thread pool, connection limits and a request deadline.
 *
 * What bounds a slow client (libmicrohttpd 0.9.75 has no request deadline
 * of its own, its timeout restarts with every byte):
 *
 *   - each connection must deliver a whole request (line, headers, body)
 *     within request_timeout of its opening or of the end of its previous
 *     answer; a reaper thread shuts the socket down when it does not, however
 *     often bytes trickle in.  Idle keep-alive connections end the same way.
 *   - the request line and headers must fit in header_memory bytes (MHD
 *     answers 431 or 414 itself, in its own plain body).
 *   - a body beyond body_max is read and dropped and answered 413.
 *   - at most max_connections at once, at most per_ip from one address
 *     (more are closed on accept).
 *
 * Not bounded: the time the handler itself takes (its database or back
 * end), which the program bounds with its own timeouts.
 */

#ifndef CUTOVER_HTTPD_H
#define CUTOVER_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "common/cutover_error.h"

#define CUTOVER_HTTPD_OK     0
#define CUTOVER_HTTPD_ERROR  (-1)

typedef cutover_error_t  cutover_httpd_error_t;

/* A parsed listen address. */
typedef struct {
    struct sockaddr_storage  sa;
    socklen_t                len;
} cutover_httpd_addr_t;

typedef struct {
    unsigned  threads;            /* the thread pool (1-256) */
    unsigned  max_connections;    /* all addresses together */
    unsigned  per_ip;             /* from one client address */
    unsigned  request_timeout;    /* seconds for a whole request */
    size_t    header_memory;      /* request line + headers, bytes */
    size_t    body_max;           /* larger bodies get 413 */
} cutover_httpd_limits_t;

#define CUTOVER_HTTPD_THREADS          8
#define CUTOVER_HTTPD_MAX_CONNECTIONS  4096
#define CUTOVER_HTTPD_PER_IP           1024
#define CUTOVER_HTTPD_REQUEST_TIMEOUT  30
#define CUTOVER_HTTPD_HEADER_MEMORY    (32 * 1024)

/*
 * The command-line flags of the limits every server takes (getopt_long
 * entries, their codes, the usage lines).  threads stays each program's
 * own flag.
 */
#define CUTOVER_HTTPD_OPT_MAX_CONNECTIONS  0x4801
#define CUTOVER_HTTPD_OPT_PER_IP           0x4802
#define CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT  0x4803

#define CUTOVER_HTTPD_LONG_OPTIONS                                           \
    { "max-connections", required_argument, NULL,                            \
      CUTOVER_HTTPD_OPT_MAX_CONNECTIONS },                                   \
    { "per-ip-connections", required_argument, NULL,                         \
      CUTOVER_HTTPD_OPT_PER_IP },                                            \
    { "request-timeout", required_argument, NULL,                            \
      CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT }

#define CUTOVER_HTTPD_USAGE                                                  \
    "  --max-connections N      client connections at once (default 4096)\n" \
    "  --per-ip-connections N   from one client address (default 1024)\n"    \
    "  --request-timeout T      a whole request must arrive within T of\n"   \
    "                           the connection's opening or its previous\n"  \
    "                           answer, else it is closed (default 30s)\n"

/* The answer a handler fills; body is malloc'ed and freed by the server. */
typedef struct {
    int          status;
    const char  *content_type;         /* static string */
    char        *body;
    size_t       body_len;
    char         extra_name[64];       /* one optional extra header */
    char         extra_value[128];
} cutover_httpd_response_t;

typedef struct {
    const char  *method;
    const char  *path;                 /* without the query */
    const char  *body;                 /* NUL-terminated copy, may be "" */
    size_t       body_len;
    void        *connection;           /* for cutover_httpd_header() */
} cutover_httpd_request_t;

/* Called once per request with its whole body, in a pool thread. */
typedef void (*cutover_httpd_handler_pt)(void *data,
    const cutover_httpd_request_t *req, cutover_httpd_response_t *resp);

typedef struct {
    const char                *program;      /* for log lines */
    const char                *listen;       /* "ADDR:PORT" */
    cutover_httpd_limits_t     limits;
    cutover_httpd_handler_pt   handler;      /* whole-body requests, or */
    MHD_AccessHandlerCallback  mhd_handler;  /* called once, body dropped */
    void                      *data;
    int                        per_connection;   /* see below */
} cutover_httpd_conf_t;

/*
 * per_connection: a thread for each connection (limits.threads unused)
 * instead of a pool whose threads each serve the connections they
 * accepted.  For handlers that wait on a back end: in the pool a
 * connection waits behind its neighbours' back-end calls (one pool thread
 * accepts a burst of connections alone), here it waits for nobody.  The
 * program bounds its back-end calls itself.
 */

typedef struct cutover_httpd_s  cutover_httpd_t;

/*
 * "127.0.0.1:8081", "[::1]:8081", "localhost:8081" (resolved now, the first
 * address), "*:8081" or "0.0.0.0:8081" (every IPv4 address), "[::]:8081".
 */
int cutover_httpd_parse_listen(const char *text, cutover_httpd_addr_t *addr,
    cutover_httpd_error_t *err);

/* "127.0.0.1:8081" or "[::1]:8081" into buf. */
void cutover_httpd_addr_text(const cutover_httpd_addr_t *addr, char *buf,
    size_t size);

/* Durations: "45s", "30m", "12h", "7d", plain seconds "90". */
int cutover_httpd_parse_duration(const char *text, uint64_t *seconds);

void cutover_httpd_limits_default(cutover_httpd_limits_t *limits);

/* Applies one CUTOVER_HTTPD_OPT_* flag; CUTOVER_HTTPD_ERROR with err set. */
int cutover_httpd_option(cutover_httpd_limits_t *limits, int opt,
    const char *value, cutover_httpd_error_t *err);

/*
 * Starts serving (raising RLIMIT_NOFILE to what max_connections needs when
 * the hard limit allows).  NULL with err set.  Stop and free with
 * cutover_httpd_stop().
 */
cutover_httpd_t *cutover_httpd_start(const cutover_httpd_conf_t *conf,
    cutover_httpd_error_t *err);
void cutover_httpd_stop(cutover_httpd_t *httpd);

/* Connections closed at the request deadline so far. */
uint64_t cutover_httpd_closed_late(cutover_httpd_t *httpd);

/* A request header, or NULL. */
const char *cutover_httpd_header(const cutover_httpd_request_t *req,
    const char *name);

/* {"error":{"code":...,"message":...}} malloc'ed (NULL when out of memory). */
char *cutover_httpd_error_body(const char *code, const char *message,
    size_t *len);

#endif /* CUTOVER_HTTPD_H */
