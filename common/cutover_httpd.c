/*
 * cutover_httpd: the daemons' HTTP listener (see cutover_httpd.h).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/cutover_duration.h"
#include "common/cutover_json.h"
#include "common/cutover_httpd.h"
#include "common/cutover_log.h"

#define CUTOVER_HTTPD_SWEEP_MS  250

/* One libmicrohttpd option into ops[n++] (see MHD_OPTION_ARRAY). */
#define CUTOVER_HTTPD_OPT(o, v, p)                                           \
    do {                                                                     \
        ops[n].option = (o);                                                 \
        ops[n].value = (intptr_t) (v);                                       \
        ops[n].ptr_value = (p);                                              \
        n++;                                                                 \
    } while (0)

/* One client connection, known from its opening to its closing. */
typedef struct cutover_httpd_conn_s  cutover_httpd_conn_t;

struct cutover_httpd_conn_s {
    cutover_httpd_conn_t  *prev;
    cutover_httpd_conn_t  *next;
    int                    fd;
    int                    busy;       /* in the handler: not timed */
    int                    shut;
    struct timespec        since;      /* the current request's window */
};

/* A request's body while it arrives. */
typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      too_big;
    void    *mhd_state;
} cutover_httpd_upload_t;

struct cutover_httpd_s {
    struct MHD_Daemon     *mhd;
    cutover_httpd_conf_t   conf;
    pthread_mutex_t        lock;
    pthread_cond_t         wake;
    cutover_httpd_conn_t   conns;      /* ring head */
    pthread_t              reaper;
    int                    reaper_on;
    int                    stopping;
    uint64_t               closed_late;
    char                   last_log[256];
    time_t                 last_log_at;
    unsigned               last_log_more;
};


static void cutover_httpd_mhd_log(void *cls, const char *fmt, va_list ap);
static void cutover_httpd_notify(void *cls, struct MHD_Connection *c,
    void **socket_context, enum MHD_ConnectionNotificationCode toe);
static enum MHD_Result cutover_httpd_access(void *cls,
    struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size,
    void **con_cls);
static void cutover_httpd_completed(void *cls, struct MHD_Connection *c,
    void **con_cls, enum MHD_RequestTerminationCode toe);
static enum MHD_Result cutover_httpd_reply(struct MHD_Connection *c,
    cutover_httpd_response_t *resp);
static int cutover_httpd_append(cutover_httpd_upload_t *up, const char *p,
    size_t n, size_t max);
static void *cutover_httpd_reap(void *arg);
static void cutover_httpd_set_since(cutover_httpd_t *h,
    struct MHD_Connection *c, int busy);
static void cutover_httpd_nofile(const cutover_httpd_conf_t *conf);
static double cutover_httpd_elapsed(const struct timespec *since);
static int cutover_httpd_out(void *data, const char *p, size_t n);
static int cutover_httpd_parse_uint(const char *s, unsigned long max,
    unsigned long *out);


static int
cutover_httpd_parse_uint(const char *s, unsigned long max,
    unsigned long *out)
{
    char           *end;
    unsigned long   v;

    if (s == NULL || *s < '0' || *s > '9') {
        return CUTOVER_HTTPD_ERROR;
    }

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) {
        return CUTOVER_HTTPD_ERROR;
    }

    *out = v;
    return CUTOVER_HTTPD_OK;
}


/*
 * Kept whole (past 80 lines): the forms of an address ([v6]:port,
 * host:port, a port alone) are told apart in one pass with one error path.
 */
int
cutover_httpd_parse_listen(const char *text, cutover_httpd_addr_t *addr,
    cutover_httpd_error_t *err)
{
    int                   rc;
    char                  host[256];
    const char           *colon, *h;
    unsigned long         port;
    size_t                n;
    struct addrinfo       hints, *res;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    memset(addr, 0, sizeof(*addr));

    if (text == NULL || text[0] == '\0') {
        snprintf(err->message, sizeof(err->message),
                 "listen address is empty (want ADDR:PORT)");
        return CUTOVER_HTTPD_ERROR;
    }

    if (text[0] == '[') {
        colon = strstr(text, "]:");
        h = text + 1;
        n = colon ? (size_t) (colon - h) : 0;
        colon = colon ? colon + 1 : NULL;
    } else {
        colon = strrchr(text, ':');
        h = text;
        n = colon ? (size_t) (colon - text) : 0;
        if (colon != NULL && memchr(text, ':', n) != NULL) {
            colon = NULL;       /* a bare IPv6 address needs brackets */
        }
    }

    if (colon == NULL || n == 0 || n >= sizeof(host)) {
        snprintf(err->message, sizeof(err->message),
                 "listen \"%.120s\": want ADDR:PORT, [IPv6]:PORT or "
                 "HOST:PORT", text);
        return CUTOVER_HTTPD_ERROR;
    }

    if (cutover_httpd_parse_uint(colon + 1, 65535, &port)
        != CUTOVER_HTTPD_OK || port == 0)
    {
        snprintf(err->message, sizeof(err->message),
                 "listen \"%.120s\": port must be 1-65535", text);
        return CUTOVER_HTTPD_ERROR;
    }

    memcpy(host, h, n);
    host[n] = '\0';

    if (strcmp(host, "*") == 0) {
        strcpy(host, "0.0.0.0");
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = text[0] == '[' ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = text[0] == '[' ? AI_NUMERICHOST : 0;

    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err->message, sizeof(err->message),
                 "listen \"%.120s\": %s", text, gai_strerror(rc));
        return CUTOVER_HTTPD_ERROR;
    }

    memcpy(&addr->sa, res->ai_addr, res->ai_addrlen);
    addr->len = res->ai_addrlen;
    freeaddrinfo(res);

    if (addr->sa.ss_family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) &addr->sa;
        sin6->sin6_port = htons((uint16_t) port);
    } else {
        sin = (struct sockaddr_in *) &addr->sa;
        sin->sin_port = htons((uint16_t) port);
    }

    return CUTOVER_HTTPD_OK;
}


void
cutover_httpd_addr_text(const cutover_httpd_addr_t *addr, char *buf,
    size_t size)
{
    char                        ip[INET6_ADDRSTRLEN];
    const struct sockaddr_in   *sin;
    const struct sockaddr_in6  *sin6;

    if (addr->sa.ss_family == AF_INET6) {
        sin6 = (const struct sockaddr_in6 *) &addr->sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        sin = (const struct sockaddr_in *) &addr->sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(sin->sin_port));
    }
}


int
cutover_httpd_parse_duration(const char *text, uint64_t *seconds)
{
    int64_t  ms;

    ms = text ? cutover_duration_ms(text, strlen(text), 1000, 0) : -1;
    if (ms <= 0 || ms % 1000) {
        return CUTOVER_HTTPD_ERROR;
    }

    *seconds = (uint64_t) ms / 1000;
    return CUTOVER_HTTPD_OK;
}


void
cutover_httpd_limits_default(cutover_httpd_limits_t *limits)
{
    limits->threads = CUTOVER_HTTPD_THREADS;
    limits->max_connections = CUTOVER_HTTPD_MAX_CONNECTIONS;
    limits->per_ip = CUTOVER_HTTPD_PER_IP;
    limits->request_timeout = CUTOVER_HTTPD_REQUEST_TIMEOUT;
    limits->header_memory = CUTOVER_HTTPD_HEADER_MEMORY;
    limits->body_max = 64 * 1024;
}


int
cutover_httpd_option(cutover_httpd_limits_t *limits, int opt,
    const char *value, cutover_httpd_error_t *err)
{
    uint64_t       secs;
    unsigned long  v;

    switch (opt) {
    case CUTOVER_HTTPD_OPT_MAX_CONNECTIONS:
        if (cutover_httpd_parse_uint(value, 1000000, &v) != CUTOVER_HTTPD_OK
            || v == 0)
        {
            snprintf(err->message, sizeof(err->message),
                     "--max-connections \"%.60s\": want 1-1000000", value);
            return CUTOVER_HTTPD_ERROR;
        }
        limits->max_connections = (unsigned) v;
        return CUTOVER_HTTPD_OK;

    case CUTOVER_HTTPD_OPT_PER_IP:
        if (cutover_httpd_parse_uint(value, 1000000, &v) != CUTOVER_HTTPD_OK
            || v == 0)
        {
            snprintf(err->message, sizeof(err->message),
                     "--per-ip-connections \"%.60s\": want 1-1000000",
                     value);
            return CUTOVER_HTTPD_ERROR;
        }
        limits->per_ip = (unsigned) v;
        return CUTOVER_HTTPD_OK;

    case CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT:
        if (cutover_httpd_parse_duration(value, &secs) != CUTOVER_HTTPD_OK
            || secs > 3600)
        {
            snprintf(err->message, sizeof(err->message),
                     "--request-timeout \"%.60s\": want a duration of 1s "
                     "to 1h (30s, 2m)", value);
            return CUTOVER_HTTPD_ERROR;
        }
        limits->request_timeout = (unsigned) secs;
        return CUTOVER_HTTPD_OK;
    }

    snprintf(err->message, sizeof(err->message), "unknown option");
    return CUTOVER_HTTPD_ERROR;
}


/* the error body is written into a buffer sized for the worst case */
typedef struct {
    char  *p;
} cutover_httpd_out_t;


static int
cutover_httpd_out(void *data, const char *p, size_t n)
{
    cutover_httpd_out_t  *o = data;

    memcpy(o->p, p, n);
    o->p += n;
    return 0;
}


char *
cutover_httpd_error_body(const char *code, const char *message, size_t *len)
{
    char                *out;
    size_t               cap;
    cutover_httpd_out_t  o;

    cap = strlen(code) + 6 * strlen(message) + 64;
    out = malloc(cap);
    if (out == NULL) {
        *len = 0;
        return NULL;
    }

    o.p = out + sprintf(out, "{\"error\":{\"code\":\"%s\",\"message\":\"",
                        code);
    (void) cutover_json_write(message, strlen(message), 0,
                              cutover_httpd_out, &o);
    strcpy(o.p, "\"}}");
    *len = (size_t) (o.p - out) + 3;
    return out;
}


const char *
cutover_httpd_header(const cutover_httpd_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                       name);
}


/*
 * libmicrohttpd's own messages, one line per kind a second at most: a flood
 * of clients (refused at the limit, hanging up) must not flood the log.
 */
static void
cutover_httpd_mhd_log(void *cls, const char *fmt, va_list ap)
{
    cutover_httpd_t  *h = cls;
    char              line[256];
    size_t            len;
    unsigned          more;
    time_t            now;

    vsnprintf(line, sizeof(line), fmt, ap);
    len = strlen(line);
    while (len > 0 && line[len - 1] == '\n') {
        line[--len] = '\0';
    }

    /* a client that hung up, or one the deadline closed: not news */
    if (strstr(line, "socket is closed") != NULL
        || strstr(line, "connection closure") != NULL
        || strstr(line, "closed by remote side") != NULL)
    {
        return;
    }

    now = time(NULL);

    pthread_mutex_lock(&h->lock);
    if (strcmp(line, h->last_log) == 0 && now == h->last_log_at) {
        h->last_log_more++;
        pthread_mutex_unlock(&h->lock);
        return;
    }
    more = h->last_log_more;
    h->last_log_more = 0;
    h->last_log_at = now;
    strcpy(h->last_log, line);
    pthread_mutex_unlock(&h->lock);

    if (more > 0) {
        cutover_log_line(h->conf.program, "WARN", "http: %s (and %u more "
                         "times in the second before)", line, more);
    } else {
        cutover_log_line(h->conf.program, "WARN", "http: %s", line);
    }
}


static double
cutover_httpd_elapsed(const struct timespec *since)
{
    struct timespec  now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double) (now.tv_sec - since->tv_sec)
           + (double) (now.tv_nsec - since->tv_nsec) / 1e9;
}


static void
cutover_httpd_notify(void *cls, struct MHD_Connection *c,
    void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
    cutover_httpd_t                  *h = cls;
    cutover_httpd_conn_t             *conn;
    const union MHD_ConnectionInfo   *info;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn = calloc(1, sizeof(cutover_httpd_conn_t));
        if (conn == NULL) {
            return;     /* not timed: the idle timeout still applies */
        }
        info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn->fd = info ? info->connect_fd : -1;
        clock_gettime(CLOCK_MONOTONIC, &conn->since);

        pthread_mutex_lock(&h->lock);
        conn->next = h->conns.next;
        conn->prev = &h->conns;
        h->conns.next->prev = conn;
        h->conns.next = conn;
        pthread_mutex_unlock(&h->lock);

        *socket_context = conn;
        return;
    }

    conn = *socket_context;
    if (conn == NULL) {
        return;
    }

    /* MHD closes the socket only after this: shut under the lock is safe */
    pthread_mutex_lock(&h->lock);
    conn->prev->next = conn->next;
    conn->next->prev = conn->prev;
    pthread_mutex_unlock(&h->lock);

    free(conn);
    *socket_context = NULL;
}


/* Marks the connection in or out of the handler; out restarts its window. */
static void
cutover_httpd_set_since(cutover_httpd_t *h, struct MHD_Connection *c,
    int busy)
{
    cutover_httpd_conn_t            *conn;
    const union MHD_ConnectionInfo  *info;

    info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn = info ? info->socket_context : NULL;
    if (conn == NULL) {
        return;
    }

    pthread_mutex_lock(&h->lock);
    conn->busy = busy;
    clock_gettime(CLOCK_MONOTONIC, &conn->since);
    pthread_mutex_unlock(&h->lock);
}


/* Shuts down connections past the request deadline, a sweep at a time. */
static void *
cutover_httpd_reap(void *arg)
{
    cutover_httpd_t       *h = arg;
    cutover_httpd_conn_t  *conn;
    struct timespec        until;
    unsigned               n;
    double                 limit;

    limit = (double) h->conf.limits.request_timeout;

    pthread_mutex_lock(&h->lock);

    while (!h->stopping) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CUTOVER_HTTPD_SWEEP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->wake, &h->lock, &until);

        n = 0;
        for (conn = h->conns.next; conn != &h->conns; conn = conn->next) {
            if (!conn->busy && !conn->shut && conn->fd >= 0
                && cutover_httpd_elapsed(&conn->since) > limit)
            {
                shutdown(conn->fd, SHUT_RDWR);
                conn->shut = 1;
                n++;
            }
        }

        if (n > 0) {
            h->closed_late += n;
            cutover_log_line(h->conf.program, "INFO",
                             "closed %u connection(s) without a whole "
                             "request within %us (%llu in all)", n,
                             h->conf.limits.request_timeout,
                             (unsigned long long) h->closed_late);
        }
    }

    pthread_mutex_unlock(&h->lock);
    return NULL;
}


static void
cutover_httpd_nofile(const cutover_httpd_conf_t *conf)
{
    rlim_t         need;
    struct rlimit  rl;

    need = (rlim_t) conf->limits.max_connections + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need) {
        return;
    }

    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need
                  ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    if (rl.rlim_cur < need) {
        cutover_log_line(conf->program, "WARN", "open files are limited to "
                         "%llu (hard limit), fewer than the %u connections "
                         "allowed need", (unsigned long long) rl.rlim_cur,
                         conf->limits.max_connections);
    }
}


/*
 * Kept whole: libmicrohttpd's options are one list, and the start has one
 * cleanup path.
 */
cutover_httpd_t *
cutover_httpd_start(const cutover_httpd_conf_t *conf,
    cutover_httpd_error_t *err)
{
    unsigned               flags, n;
    cutover_httpd_t       *h;
    cutover_httpd_addr_t   addr;
    struct MHD_OptionItem  ops[16];

    if (cutover_httpd_parse_listen(conf->listen, &addr, err)
        != CUTOVER_HTTPD_OK)
    {
        return NULL;
    }

    h = calloc(1, sizeof(cutover_httpd_t));
    if (h == NULL) {
        snprintf(err->message, sizeof(err->message), "out of memory");
        return NULL;
    }

    h->conf = *conf;
    h->conns.next = h->conns.prev = &h->conns;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);

    cutover_httpd_nofile(conf);

    flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (conf->per_connection) {
        /* MHD serves a thread per connection with poll(), not epoll */
        flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD
                | MHD_USE_ERROR_LOG;
    }
    if (addr.sa.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }

    n = 0;
    CUTOVER_HTTPD_OPT(MHD_OPTION_EXTERNAL_LOGGER,
                      (intptr_t) cutover_httpd_mhd_log, h);
    CUTOVER_HTTPD_OPT(MHD_OPTION_SOCK_ADDR, 0, &addr.sa);
    if (conf->limits.threads > 1 && !conf->per_connection) {
        /* a pool of one is none: MHD says so in a warning */
        CUTOVER_HTTPD_OPT(MHD_OPTION_THREAD_POOL_SIZE,
                          conf->limits.threads, NULL);
    }
    CUTOVER_HTTPD_OPT(MHD_OPTION_CONNECTION_LIMIT,
                      conf->limits.max_connections, NULL);
    CUTOVER_HTTPD_OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                      conf->limits.per_ip, NULL);
    CUTOVER_HTTPD_OPT(MHD_OPTION_CONNECTION_TIMEOUT,
                      conf->limits.request_timeout, NULL);
    CUTOVER_HTTPD_OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                      conf->limits.header_memory, NULL);
    CUTOVER_HTTPD_OPT(MHD_OPTION_NOTIFY_CONNECTION,
                      (intptr_t) cutover_httpd_notify, h);
    CUTOVER_HTTPD_OPT(MHD_OPTION_NOTIFY_COMPLETED,
                      (intptr_t) cutover_httpd_completed, h);
    CUTOVER_HTTPD_OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL);
    CUTOVER_HTTPD_OPT(MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL);
    CUTOVER_HTTPD_OPT(MHD_OPTION_END, 0, NULL);

    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, cutover_httpd_access, h,
                              MHD_OPTION_ARRAY, ops, MHD_OPTION_END);

    if (h->mhd == NULL) {
        snprintf(err->message, sizeof(err->message),
                 "cannot listen on %.120s (in use or not permitted)",
                 conf->listen);
        goto failed;
    }

    if (pthread_create(&h->reaper, NULL, cutover_httpd_reap, h) != 0) {
        snprintf(err->message, sizeof(err->message),
                 "cannot start the deadline thread");
        goto failed;
    }
    h->reaper_on = 1;

    return h;

failed:

    cutover_httpd_stop(h);
    return NULL;
}


void
cutover_httpd_stop(cutover_httpd_t *h)
{
    if (h == NULL) {
        return;
    }

    if (h->reaper_on) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->reaper, NULL);
    }

    if (h->mhd != NULL) {
        MHD_stop_daemon(h->mhd);
    }

    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}


uint64_t
cutover_httpd_closed_late(cutover_httpd_t *h)
{
    uint64_t  n;

    pthread_mutex_lock(&h->lock);
    n = h->closed_late;
    pthread_mutex_unlock(&h->lock);
    return n;
}


static int
cutover_httpd_append(cutover_httpd_upload_t *up, const char *p, size_t n,
    size_t max)
{
    char    *d;
    size_t   cap;

    if (up->too_big || up->len + n > max) {
        up->too_big = 1;
        return CUTOVER_HTTPD_OK;
    }

    if (up->len + n + 1 > up->cap) {
        cap = up->cap ? up->cap : 1024;
        while (cap < up->len + n + 1) {
            cap *= 2;
        }
        d = realloc(up->data, cap);
        if (d == NULL) {
            return CUTOVER_HTTPD_ERROR;
        }
        up->data = d;
        up->cap = cap;
    }

    memcpy(up->data + up->len, p, n);
    up->len += n;
    up->data[up->len] = '\0';
    return CUTOVER_HTTPD_OK;
}


static enum MHD_Result
cutover_httpd_reply(struct MHD_Connection *c, cutover_httpd_response_t *resp)
{
    enum MHD_Result       rc;
    struct MHD_Response  *r;

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

    rc = MHD_queue_response(c, (unsigned int) resp->status, r);
    MHD_destroy_response(r);
    return rc;
}


static enum MHD_Result
cutover_httpd_access(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
    char                      msg[96];
    size_t                    zero;
    enum MHD_Result           rc;
    cutover_httpd_t          *h = cls;
    cutover_httpd_upload_t   *up = *con_cls;
    cutover_httpd_request_t   req;
    cutover_httpd_response_t  resp;

    if (up == NULL) {
        up = calloc(1, sizeof(cutover_httpd_upload_t));
        if (up == NULL) {
            return MHD_NO;
        }
        *con_cls = up;
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        if (cutover_httpd_append(up, upload_data, *upload_data_size,
                                 h->conf.limits.body_max)
            != CUTOVER_HTTPD_OK)
        {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    memset(&resp, 0, sizeof(resp));

    if (up->too_big) {
        snprintf(msg, sizeof(msg), "body larger than %zu bytes",
                 h->conf.limits.body_max);
        resp.status = 413;
        resp.content_type = "application/json";
        resp.body = cutover_httpd_error_body("invalid_request", msg,
                                             &resp.body_len);
        return cutover_httpd_reply(c, &resp);
    }

    cutover_httpd_set_since(h, c, 1);

    if (h->conf.mhd_handler != NULL) {
        zero = 0;
        rc = h->conf.mhd_handler(h->conf.data, c, url, method, version,
                                 NULL, &zero, &up->mhd_state);
        cutover_httpd_set_since(h, c, 0);
        return rc;
    }

    req.method = method;
    req.path = url;
    req.body = up->data ? up->data : "";
    req.body_len = up->len;
    req.connection = c;

    resp.status = 500;
    h->conf.handler(h->conf.data, &req, &resp);
    cutover_httpd_set_since(h, c, 0);

    return cutover_httpd_reply(c, &resp);
}


static void
cutover_httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
    cutover_httpd_t         *h = cls;
    cutover_httpd_upload_t  *up = *con_cls;

    (void) toe;

    if (up != NULL) {
        free(up->data);
        free(up);
        *con_cls = NULL;
    }

    /* the next request's window opens when this answer is out */
    cutover_httpd_set_since(h, c, 0);
}
