/* Unit tests of common/: the HTTP listener and the canonical API's rules. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "common/cutover_api.h"
#include "common/cutover_duration.h"
#include "common/cutover_guard.h"
#include "common/cutover_hash.h"
#include "common/cutover_json.h"
#include "common/cutover_httpd.h"


static const struct {
    const char  *in;
    const char  *out;
} good_listen[] = {
    { "127.0.0.1:8081", "127.0.0.1:8081" },
    { "0.0.0.0:65535", "0.0.0.0:65535" },
    { "*:8081", "0.0.0.0:8081" },
    { "[::1]:8081", "[::1]:8081" },
    { "[::]:1", "[::]:1" },
    { "localhost:8081", NULL },      /* 127.0.0.1 or ::1 */
};

static const char  *bad_listen[] = {
    "", "8081", ":8081", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
    "127.0.0.1:80x", "127.0.0.1:-1", "1.2.3:8081x", "::1:8081", "[::1]8081",
    "[::1:8081", "[localhost]:8081", "[1.2.3.4]:80",
    "no-such-host.invalid:8081",
};


START_TEST(test_listen_good)
{
    char                   text[64];
    cutover_httpd_addr_t   addr;
    cutover_httpd_error_t  err;

    ck_assert_int_eq(cutover_httpd_parse_listen(good_listen[_i].in, &addr,
                                                &err), CUTOVER_HTTPD_OK);
    cutover_httpd_addr_text(&addr, text, sizeof(text));

    if (good_listen[_i].out != NULL) {
        ck_assert_str_eq(text, good_listen[_i].out);
    } else {
        ck_assert_msg(strcmp(text, "127.0.0.1:8081") == 0
                      || strcmp(text, "[::1]:8081") == 0, "%s", text);
    }
}
END_TEST


START_TEST(test_listen_bad)
{
    cutover_httpd_addr_t   addr;
    cutover_httpd_error_t  err;

    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(cutover_httpd_parse_listen(bad_listen[_i], &addr, &err),
                     CUTOVER_HTTPD_ERROR);
    ck_assert_msg(err.message[0] != '\0', "no message for \"%s\"",
                  bad_listen[_i]);
}
END_TEST


START_TEST(test_durations)
{
    uint64_t  s;

    ck_assert_int_eq(cutover_httpd_parse_duration("45s", &s), 0);
    ck_assert_uint_eq(s, 45);
    ck_assert_int_eq(cutover_httpd_parse_duration("30m", &s), 0);
    ck_assert_uint_eq(s, 1800);
    ck_assert_int_eq(cutover_httpd_parse_duration("12h", &s), 0);
    ck_assert_uint_eq(s, 43200);
    ck_assert_int_eq(cutover_httpd_parse_duration("7d", &s), 0);
    ck_assert_uint_eq(s, 604800);
    ck_assert_int_eq(cutover_httpd_parse_duration("90", &s), 0);
    ck_assert_uint_eq(s, 90);

    ck_assert_int_eq(cutover_httpd_parse_duration("", &s), -1);
    ck_assert_int_eq(cutover_httpd_parse_duration("0s", &s), -1);
    ck_assert_int_eq(cutover_httpd_parse_duration("-1s", &s), -1);
    ck_assert_int_eq(cutover_httpd_parse_duration("7w", &s), -1);
    ck_assert_int_eq(cutover_httpd_parse_duration("7dd", &s), -1);
    ck_assert_int_eq(cutover_httpd_parse_duration("d", &s), -1);
    ck_assert_int_eq(cutover_httpd_parse_duration("99999999999d", &s), -1);
}
END_TEST


START_TEST(test_options)
{
    cutover_httpd_limits_t  l;
    cutover_httpd_error_t   err;

    cutover_httpd_limits_default(&l);
    ck_assert_uint_eq(l.request_timeout, 30);
    ck_assert_int_eq(cutover_httpd_option(&l,
                     CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT, "2m", &err), 0);
    ck_assert_uint_eq(l.request_timeout, 120);
    ck_assert_int_eq(cutover_httpd_option(&l,
                     CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT, "2d", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "--request-timeout"));
    ck_assert_int_eq(cutover_httpd_option(&l,
                     CUTOVER_HTTPD_OPT_PER_IP, "7", &err), 0);
    ck_assert_uint_eq(l.per_ip, 7);
    ck_assert_int_eq(cutover_httpd_option(&l,
                     CUTOVER_HTTPD_OPT_PER_IP, "0", &err), -1);
    ck_assert_int_eq(cutover_httpd_option(&l,
                     CUTOVER_HTTPD_OPT_MAX_CONNECTIONS, "x", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "--max-connections"));
}
END_TEST


START_TEST(test_error_body)
{
    char    *b;
    size_t   len;

    b = cutover_httpd_error_body("invalid_request", "a \"q\" \\ \n", &len);
    ck_assert_str_eq(b, "{\"error\":{\"code\":\"invalid_request\","
                     "\"message\":\"a \\\"q\\\" \\\\ \\u000a\"}}");
    ck_assert_uint_eq(len, strlen(b));
    free(b);
}
END_TEST


START_TEST(test_api_ids)
{
    char  id[80];

    ck_assert_int_eq(cutover_api_id_valid("S001", 4), 1);
    ck_assert_int_eq(cutover_api_id_valid("po.2024-01_a", 12), 1);
    ck_assert_int_eq(cutover_api_id_valid("", 0), 0);
    ck_assert_int_eq(cutover_api_id_valid("a/b", 3), 0);
    ck_assert_int_eq(cutover_api_id_valid("a\"b", 3), 0);
    ck_assert_int_eq(cutover_api_id_valid("a b", 3), 0);
    ck_assert_int_eq(cutover_api_id_valid("\xe5\x8d\x95", 3), 0);

    memset(id, 'x', sizeof(id));
    ck_assert_int_eq(cutover_api_id_valid(id, CUTOVER_API_ID_MAX), 1);
    ck_assert_int_eq(cutover_api_id_valid(id, CUTOVER_API_ID_MAX + 1), 0);
}
END_TEST


START_TEST(test_api_idempotency_keys)
{
    char  key[CUTOVER_API_IDEM_KEY_MAX + 2];

    ck_assert_int_eq(cutover_api_idem_key_valid("a"), 1);
    ck_assert_int_eq(cutover_api_idem_key_valid("~!#$%&'*+-.^_`|{}"), 1);
    ck_assert_int_eq(cutover_api_idem_key_valid(""), 0);
    ck_assert_int_eq(cutover_api_idem_key_valid(NULL), 0);
    ck_assert_int_eq(cutover_api_idem_key_valid("a b"), 0);
    ck_assert_int_eq(cutover_api_idem_key_valid("a\tb"), 0);
    ck_assert_int_eq(cutover_api_idem_key_valid("caf\xc3\xa9"), 0);
    ck_assert_int_eq(cutover_api_idem_key_valid("\x7f"), 0);

    memset(key, 'k', sizeof(key));
    key[CUTOVER_API_IDEM_KEY_MAX] = '\0';
    ck_assert_int_eq(cutover_api_idem_key_valid(key), 1);
    key[CUTOVER_API_IDEM_KEY_MAX] = 'k';
    key[CUTOVER_API_IDEM_KEY_MAX + 1] = '\0';
    ck_assert_int_eq(cutover_api_idem_key_valid(key), 0);
}
END_TEST


/* --- a live server ------------------------------------------------------ */

static void
echo_handler(void *data, const cutover_httpd_request_t *req,
    cutover_httpd_response_t *resp)
{
    (void) data;

    /* a handler waiting on its back end */
    if (strcmp(req->path, "/slow") == 0) {
        usleep(1000 * 1000);
    }

    resp->status = 200;
    resp->content_type = "text/plain";
    resp->body = strdup(req->path);
    resp->body_len = strlen(req->path);
}


static int
connect_to(int port)
{
    int                 fd;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    return fd;
}


/* Reads what comes within ms milliseconds; -1 when the peer closed. */
static ssize_t
read_for(int fd, char *buf, size_t size, int ms)
{
    ssize_t        n, got;
    struct pollfd  p;

    got = 0;
    p.fd = fd;
    p.events = POLLIN;

    while ((size_t) got < size - 1 && poll(&p, 1, ms) == 1) {
        n = read(fd, buf + got, size - 1 - (size_t) got);
        if (n <= 0) {
            buf[got] = '\0';
            return got > 0 ? got : -1;
        }
        got += n;
    }

    buf[got] = '\0';
    return got;
}


static cutover_httpd_t *
start_server(int *port, int per_connection)
{
    char                   listen[32];
    cutover_httpd_t       *h;
    cutover_httpd_conf_t   conf;
    cutover_httpd_error_t  err;
    int                    fd;
    struct sockaddr_in     sin;
    socklen_t              len;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *) &sin, sizeof(sin));
    len = sizeof(sin);
    getsockname(fd, (struct sockaddr *) &sin, &len);
    *port = ntohs(sin.sin_port);
    close(fd);

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", *port);
    memset(&conf, 0, sizeof(conf));
    conf.program = "check_common";
    conf.listen = listen;
    cutover_httpd_limits_default(&conf.limits);
    conf.limits.threads = 2;
    conf.limits.request_timeout = 1;
    conf.limits.body_max = 16;
    conf.handler = echo_handler;
    conf.per_connection = per_connection;

    h = cutover_httpd_start(&conf, &err);
    ck_assert_msg(h != NULL, "%s", err.message);
    return h;
}


/* A client trickling its headers is closed at the deadline; others go on. */
START_TEST(test_request_deadline)
{
    int               port, slow, fast, i;
    char              buf[1024];
    ssize_t           n;
    cutover_httpd_t  *h;
    struct timespec   t0, t1;
    static const char  head[] = "GET /slow HTTP/1.1\r\nHost: x\r\n";
    static const char  req[] = "GET /fast HTTP/1.1\r\nHost: x\r\n"
                               "Connection: close\r\n\r\n";

    h = start_server(&port, _i);
    slow = connect_to(port);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(write(slow, head, sizeof(head) - 1),
                     (ssize_t) sizeof(head) - 1);

    /* a byte every 200 ms: an idle timeout would never fire */
    for (i = 0; i < 20; i++) {
        n = read_for(slow, buf, sizeof(buf), 200);
        if (n < 0) {
            break;
        }
        if (write(slow, "X", 1) != 1) {
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(slow);

    ck_assert_msg(i < 20, "the slow client was never closed");
    ck_assert_int_ge(t1.tv_sec - t0.tv_sec, 1);
    ck_assert_int_le(t1.tv_sec - t0.tv_sec, 3);
    ck_assert_uint_ge(cutover_httpd_closed_late(h), 1);

    fast = connect_to(port);
    ck_assert_int_eq(write(fast, req, sizeof(req) - 1),
                     (ssize_t) sizeof(req) - 1);
    read_for(fast, buf, sizeof(buf), 2000);
    close(fast);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\n/fast"));

    cutover_httpd_stop(h);
}
END_TEST


/*
 * per_connection: a request waits for no other's handler, though two
 * connections opened at once would share one thread of the pool.
 */
START_TEST(test_per_connection)
{
    int               port, slow, fast;
    char              buf[1024];
    cutover_httpd_t  *h;
    static const char  slow_req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n"
                                    "Connection: close\r\n\r\n";
    static const char  fast_req[] = "GET /fast HTTP/1.1\r\nHost: x\r\n"
                                    "Connection: close\r\n\r\n";

    h = start_server(&port, 1);
    slow = connect_to(port);
    fast = connect_to(port);
    ck_assert_int_eq(write(slow, slow_req, sizeof(slow_req) - 1),
                     (ssize_t) sizeof(slow_req) - 1);
    usleep(100 * 1000);
    ck_assert_int_eq(write(fast, fast_req, sizeof(fast_req) - 1),
                     (ssize_t) sizeof(fast_req) - 1);

    /* answered while /slow is still in its handler */
    read_for(fast, buf, sizeof(buf), 500);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\n/fast"));

    read_for(slow, buf, sizeof(buf), 3000);
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\n/slow"));
    close(fast);
    close(slow);
    cutover_httpd_stop(h);
}
END_TEST


/* A body over the limit is 413 in the JSON error shape. */
START_TEST(test_body_limit)
{
    int               port, fd;
    char              buf[1024];
    cutover_httpd_t  *h;
    static const char  req[] = "POST /x HTTP/1.1\r\nHost: x\r\n"
                               "Connection: close\r\n"
                               "Content-Length: 20\r\n\r\n"
                               "01234567890123456789";

    h = start_server(&port, 0);
    fd = connect_to(port);
    ck_assert_int_eq(write(fd, req, sizeof(req) - 1),
                     (ssize_t) sizeof(req) - 1);
    read_for(fd, buf, sizeof(buf), 2000);
    close(fd);
    cutover_httpd_stop(h);

    ck_assert_msg(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "application/json"));
    ck_assert_ptr_nonnull(strstr(buf, "{\"error\":{\"code\":"
                                      "\"invalid_request\",\"message\":"
                                      "\"body larger than 16 bytes\"}}"));
}
END_TEST


/* The same listener on the IPv6 loopback (shadowd's metrics_listen too). */
START_TEST(test_ipv6_listen)
{
    int                    fd, port;
    char                   listen[48], buf[1024];
    socklen_t              len;
    cutover_httpd_t       *h;
    cutover_httpd_conf_t   conf;
    cutover_httpd_error_t  err;
    struct sockaddr_in6    sin6;
    static const char      req[] = "GET /v6 HTTP/1.1\r\nHost: x\r\n"
                                   "Connection: close\r\n\r\n";

    fd = socket(AF_INET6, SOCK_STREAM, 0);
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    if (fd < 0 || bind(fd, (struct sockaddr *) &sin6, sizeof(sin6)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return;         /* no ::1 here: nothing to test */
    }
    len = sizeof(sin6);
    getsockname(fd, (struct sockaddr *) &sin6, &len);
    port = ntohs(sin6.sin6_port);
    close(fd);

    snprintf(listen, sizeof(listen), "[::1]:%d", port);
    memset(&conf, 0, sizeof(conf));
    conf.program = "check_common";
    conf.listen = listen;
    cutover_httpd_limits_default(&conf.limits);
    conf.limits.threads = 1;
    conf.handler = echo_handler;
    h = cutover_httpd_start(&conf, &err);
    ck_assert_msg(h != NULL, "%s", err.message);

    fd = socket(AF_INET6, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *) &sin6, sizeof(sin6)),
                     0);
    ck_assert_int_eq(write(fd, req, sizeof(req) - 1),
                     (ssize_t) sizeof(req) - 1);
    read_for(fd, buf, sizeof(buf), 2000);
    close(fd);
    cutover_httpd_stop(h);

    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\n/v6"));
}
END_TEST


/* The one JSON string writer, with each caller's flags: the bytes each
 * program has always written. */
static const struct {
    const char  *in;
    unsigned     flags;
    const char  *out;
} json_write_cases[] = {
    /* plain (store system, listener errors): controls as \u00XX only */
    { "a\"b\\c\n\x01\x7f\xc3\xa9\xff", 0,
      "a\\\"b\\\\c\\u000a\\u0001\x7f\xc3\xa9\xff" },
    /* the comparator's text: short escapes */
    { "x\ty\r\n\x1f", CUTOVER_JSON_ESC_SHORT, "x\\ty\\r\\n\\u001f" },
    /* the new core: short escapes, bad UTF-8 as U+FFFD */
    { "\xc3\xa9\xc3(\xe2\x82\xac\n", CUTOVER_JSON_ESC_SHORT
      | CUTOVER_JSON_ESC_FFFD, "\xc3\xa9\\ufffd(\xe2\x82\xac\\n" },
    /* logtool: bad UTF-8 as Latin-1 */
    { "\xe9t\xc3\xa9\t", CUTOVER_JSON_ESC_SHORT | CUTOVER_JSON_ESC_LATIN1,
      "\\u00e9t\xc3\xa9\\t" },
    /* the module: DEL escaped, surrogates and overlongs are not UTF-8 */
    { "\x7f\xed\xa0\x80\xc0\xaf", CUTOVER_JSON_ESC_DEL
      | CUTOVER_JSON_ESC_FFFD, "\\u007f\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd" },
};


static int
json_sink(void *data, const char *p, size_t n)
{
    char  *buf = data;

    ck_assert_uint_lt(strlen(buf) + n, 256);
    strncat(buf, p, n);
    return 0;
}


START_TEST(test_json_write)
{
    char  buf[256];

    buf[0] = '\0';
    ck_assert_int_eq(cutover_json_write(json_write_cases[_i].in,
                                        strlen(json_write_cases[_i].in),
                                        json_write_cases[_i].flags,
                                        json_sink, buf), 0);
    ck_assert_str_eq(buf, json_write_cases[_i].out);
}
END_TEST


START_TEST(test_json_escape_fits)
{
    char  buf[8];

    ck_assert_int_eq(cutover_json_escape("ab\"", 3, buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "ab\\\"");
    ck_assert_int_eq(cutover_json_escape("\x01\x02", 2, buf, sizeof(buf)),
                     -1);
}
END_TEST


/* The reader's options: the comparator's depth and strict surrogates, and
 * strings decoded with their NUL characters. */
START_TEST(test_json_reader_opts)
{
    int                  n;
    char                 doc[600], buf[32];
    cutover_json_tok_t   toks[8];
    cutover_json_opts_t  opts;
    const char          *lone = "[\"\\ud800x\"]";
    const char          *nul = "[\"a\\u0000b\"]";

    memset(doc, '[', 300);
    memset(doc + 300, ']', 300);
    ck_assert_int_lt(cutover_json_parse(doc, 600, NULL, 0, NULL, 0), 0);
    memset(&opts, 0, sizeof(opts));
    opts.max_depth = 256;
    ck_assert_int_lt(cutover_json_parse_opts(doc, 600, NULL, 0, &opts,
                                             NULL, 0), 0);
    ck_assert_uint_eq(opts.too_deep, 1);
    ck_assert_int_eq(cutover_json_parse_opts(doc + 50, 500, NULL, 0, &opts,
                                             NULL, 0), 250);
    ck_assert_uint_eq(opts.too_deep, 0);

    ck_assert_int_eq(cutover_json_parse(lone, strlen(lone), toks, 8,
                                        NULL, 0), 2);
    opts.strict_surrogates = 1;
    ck_assert_int_lt(cutover_json_parse_opts(lone, strlen(lone), toks, 8,
                                             &opts, buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(strstr(buf, "lone high surrogate"));

    ck_assert_int_eq(cutover_json_parse(nul, strlen(nul), toks, 8, NULL, 0),
                     2);
    ck_assert_int_eq(cutover_json_string(nul, &toks[1], buf, sizeof(buf)),
                     -1);
    n = cutover_json_decode(nul, &toks[1], buf, toks[1].end - toks[1].start
                            + 1);
    ck_assert_int_eq(n, 3);
    ck_assert_mem_eq(buf, "a\0b", 3);
}
END_TEST


START_TEST(test_hashes)
{
    char  hex[65];

    cutover_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
                          "b00361a396177a9cb410ff61f20015ad");
    /* RFC 4231 test case 2 */
    cutover_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28,
                            hex);
    ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c7"
                          "5a003f089d2739839dec58b964ec3843");
}
END_TEST


/* ---- the guard's window, histogram and thresholds --------------------- */

static cutover_guard_window_t *
guard_window(uint32_t seconds)
{
    cutover_guard_window_t  *w;

    w = malloc(cutover_guard_window_size(seconds));
    ck_assert_ptr_nonnull(w);
    cutover_guard_window_init(w, seconds);
    return w;
}


START_TEST(test_guard_window_sums)
{
    int                      i;
    uint32_t                 t = 1000000;
    cutover_guard_sum_t      sum;
    cutover_guard_window_t  *w = guard_window(3);

    /* not ready: nothing counts */
    ck_assert_int_eq(cutover_guard_add(w, t, 0, 5), 0);

    cutover_guard_rotate(w, 0, t);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(cutover_guard_add(w, t, i < 2, 5), 1);
    }

    /* the next second was made ready ahead */
    ck_assert_int_eq(cutover_guard_add(w, t + 1, 1, 5), 1);

    /* and is kept, counts and all, when its turn comes */
    cutover_guard_rotate(w, t, t + 1);
    ck_assert_int_eq(cutover_guard_add(w, t + 1, 0, 5), 1);

    cutover_guard_sum(w, t + 1, 3, &sum);
    ck_assert_uint_eq(sum.requests, 12);
    ck_assert_uint_eq(sum.errors, 3);
    ck_assert_double_eq_tol(cutover_guard_error_rate(&sum), 25.0, 1e-9);

    /* a 1 s window leaves second t out */
    cutover_guard_sum(w, t + 1, 1, &sum);
    ck_assert_uint_eq(sum.requests, 2);

    /* the 3 s window slides */
    cutover_guard_rotate(w, t + 1, t + 3);
    cutover_guard_sum(w, t + 3, 3, &sum);
    ck_assert_uint_eq(sum.requests, 2);
    cutover_guard_rotate(w, t + 3, t + 4);
    cutover_guard_sum(w, t + 4, 3, &sum);
    ck_assert_uint_eq(sum.requests, 0);

    free(w);
}
END_TEST


START_TEST(test_guard_window_idle_gap)
{
    uint32_t                 t = 2000000, s;
    cutover_guard_sum_t      sum;
    cutover_guard_window_t  *w = guard_window(5);

    cutover_guard_rotate(w, 0, t);
    for (s = t; s < t + 5; s++) {
        cutover_guard_rotate(w, s - 1, s);
        ck_assert_int_eq(cutover_guard_add(w, s, 1, 10), 1);
    }

    cutover_guard_sum(w, t + 4, 5, &sum);
    ck_assert_uint_eq(sum.requests, 5);

    /* idle for longer than the ring (7 buckets): the buckets of old
     * seconds count nothing for the new ones */
    s = t + 4 + 11;
    cutover_guard_sum(w, s, 5, &sum);
    ck_assert_uint_eq(sum.requests, 0);

    cutover_guard_rotate(w, t + 4, s);
    ck_assert_int_eq(cutover_guard_add(w, s, 0, 10), 1);
    cutover_guard_sum(w, s, 5, &sum);
    ck_assert_uint_eq(sum.requests, 1);
    ck_assert_uint_eq(sum.errors, 0);

    /* idle for less than the ring: the seconds in between are cleared,
     * the seconds still in the window are kept */
    cutover_guard_rotate(w, s, s + 3);
    ck_assert_int_eq(cutover_guard_add(w, s + 3, 1, 10), 1);
    cutover_guard_sum(w, s + 3, 5, &sum);
    ck_assert_uint_eq(sum.requests, 2);
    ck_assert_uint_eq(sum.errors, 1);

    /* a restart: only seconds after it count */
    cutover_guard_restart(w, s + 3);
    cutover_guard_sum(w, s + 3, 5, &sum);
    ck_assert_uint_eq(sum.requests, 0);
    cutover_guard_rotate(w, s + 3, s + 4);
    ck_assert_int_eq(cutover_guard_add(w, s + 4, 0, 10), 1);
    cutover_guard_sum(w, s + 4, 5, &sum);
    ck_assert_uint_eq(sum.requests, 1);

    free(w);
}
END_TEST


START_TEST(test_guard_percentile)
{
    unsigned  v;
    uint64_t  hist[CUTOVER_GUARD_HIST];
    double    p;

    memset(hist, 0, sizeof(hist));
    ck_assert(cutover_guard_percentile(hist, 99) == 0);

    ck_assert_uint_eq(cutover_guard_hist_index(0), 0);
    ck_assert_uint_eq(cutover_guard_hist_index(1), 1);
    ck_assert_uint_eq(cutover_guard_hist_index(100000000),
                      CUTOVER_GUARD_HIST - 1);

    /* every value from 1 ms to 60 s reads back within 5 % */
    for (v = 1; v <= 60000; v += (v < 100 ? 1 : v / 50)) {
        p = cutover_guard_hist_value(cutover_guard_hist_index(v));
        ck_assert_msg(p >= v * 0.95 && p <= v * 1.05, "%u ms read as %g",
                      v, p);
    }

    /* 990 fast requests, 10 slow ones: p99 is fast, p99.5 slow */
    hist[cutover_guard_hist_index(20)] = 990;
    hist[cutover_guard_hist_index(800)] = 10;
    p = cutover_guard_percentile(hist, 99);
    ck_assert_msg(p >= 19 && p <= 21, "%g", p);
    p = cutover_guard_percentile(hist, 99.5);
    ck_assert_msg(p >= 760 && p <= 840, "%g", p);

    /* one more slow one and p99 is slow */
    hist[cutover_guard_hist_index(800)] = 11;
    p = cutover_guard_percentile(hist, 99);
    ck_assert_msg(p >= 760 && p <= 840, "%g", p);

    memset(hist, 0, sizeof(hist));
    hist[cutover_guard_hist_index(450)] = 1;
    p = cutover_guard_percentile(hist, 99);
    ck_assert(p >= 450 * 0.95 && p <= 450 * 1.05);
}
END_TEST


START_TEST(test_guard_thresholds)
{
    char                  reason[256];
    cutover_error_t       err;
    cutover_guard_sum_t   sum;
    cutover_guard_conf_t  c;

    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(cutover_guard_param(&c, "error_rate=2%", 13, &err), 0);
    ck_assert_uint_eq(c.error_rate_bp, 200);
    ck_assert_int_eq(cutover_guard_param(&c, "latency_p99=800ms", 17, &err),
                     0);
    ck_assert_uint_eq(c.latency_ms, 800);
    ck_assert_int_eq(cutover_guard_param(&c, "window=30s", 10, &err), 0);
    ck_assert_int_eq(cutover_guard_param(&c, "min_requests=200", 16, &err),
                     0);
    ck_assert_int_eq(cutover_guard_param(&c, "action=alert", 12, &err), 0);
    ck_assert_int_eq(c.action, CUTOVER_GUARD_ALERT);
    ck_assert_int_eq(cutover_guard_conf_check(&c, &err), 0);

    memset(&sum, 0, sizeof(sum));
    sum.requests = 412;
    sum.errors = 31;                   /* 7.52 % */
    sum.hist[cutover_guard_hist_index(10)] = 412;

    ck_assert_int_eq(cutover_guard_check(&c, &sum, "default", reason,
                                         sizeof(reason)),
                     CUTOVER_GUARD_ERROR_RATE);
    ck_assert_str_eq(reason, "guard: error_rate 7.5% > 2% over 30s on rule "
                     "default (412 requests)");

    /* under min_requests: no verdict */
    sum.requests = 199;
    sum.errors = 199;
    ck_assert_int_eq(cutover_guard_check(&c, &sum, "default", reason,
                                         sizeof(reason)), CUTOVER_GUARD_OK);

    /* exactly at the threshold is not over it */
    sum.requests = 1000;
    sum.errors = 20;
    ck_assert_int_eq(cutover_guard_check(&c, &sum, "default", reason,
                                         sizeof(reason)), CUTOVER_GUARD_OK);
    sum.errors = 21;
    ck_assert_int_eq(cutover_guard_check(&c, &sum, "default", reason,
                                         sizeof(reason)),
                     CUTOVER_GUARD_ERROR_RATE);

    /* latency */
    sum.errors = 0;
    memset(sum.hist, 0, sizeof(sum.hist));
    sum.hist[cutover_guard_hist_index(100)] = 980;
    sum.hist[cutover_guard_hist_index(2000)] = 20;
    ck_assert_int_eq(cutover_guard_check(&c, &sum, "pilot", reason,
                                         sizeof(reason)),
                     CUTOVER_GUARD_LATENCY);
    ck_assert_msg(strncmp(reason, "guard: latency p99 ", 19) == 0
                  && strstr(reason, "ms > 800ms over 30s on rule pilot "
                            "(1000 requests)") != NULL, "%s", reason);

    /* no thresholds, no window */
    memset(&c, 0, sizeof(c));
    c.window = 30;
    ck_assert_int_eq(cutover_guard_conf_check(&c, &err), -1);

    /* mismatch */
    c.mismatch_bp = 100;
    c.window = 60;
    c.min_requests = 100;
    ck_assert_int_eq(cutover_guard_check_mismatch(&c, 340, 11, "default",
                                                  reason, sizeof(reason)),
                     CUTOVER_GUARD_MISMATCH);
    ck_assert_str_eq(reason, "guard: mismatch 3.2% > 1% over 60s on rule "
                     "default (340 pairs)");
    ck_assert_int_eq(cutover_guard_check_mismatch(&c, 340, 3, "default",
                                                  reason, sizeof(reason)),
                     CUTOVER_GUARD_OK);
    ck_assert_int_eq(cutover_guard_check_mismatch(&c, 99, 99, "default",
                                                  reason, sizeof(reason)),
                     CUTOVER_GUARD_OK);
}
END_TEST


static const char  *bad_guard_params[] = {
    "error_rate=150%", "error_rate=0%", "error_rate=-1%", "error_rate=2.%",
    "error_rate=0.001%", "error_rate=", "window=0s", "window=301s",
    "window=1h", "window=30x", "latency_p99=0ms", "latency_p99=fast",
    "latency_p99=2h", "min_requests=-1", "min_requests=10s", "action=panic",
    "colour=red", "error_rate",
};


START_TEST(test_guard_bad_params)
{
    cutover_error_t       err;
    cutover_guard_conf_t  c;
    const char           *p = bad_guard_params[_i];

    memset(&c, 0, sizeof(c));
    ck_assert_msg(cutover_guard_param(&c, p, strlen(p), &err) == -1,
                  "%s accepted", p);
    ck_assert_str_eq(err.name, "invalid_guard");
}
END_TEST


/* the one duration reader: text, what a bare number counts, fractions,
 * and the milliseconds (-1: refused) */
static const struct {
    const char  *text;
    int64_t      bare_ms;
    int          fractions;
    int64_t      ms;
} durations[] = {
    { "800ms", 1, 1, 800 },
    { "1.5s", 1, 1, 1500 },
    { "1.25s", 1000, 1, 1250 },
    { "1.2345s", 1, 1, 1234 },
    { "2m", 0, 0, 120000 },
    { "3h", 0, 0, 10800000 },
    { "7d", 1000, 0, 604800000 },
    { "90", 1000, 0, 90000 },
    { "90", 1, 0, 90 },
    { "90", 0, 0, -1 },             /* a unit is required */
    { "1.5s", 1000, 0, -1 },        /* no fractions here */
    { "1.5ms", 1, 1, -1 },          /* never a fraction of a ms */
    { "2.s", 1, 1, -1 },
    { ".5s", 1, 1, -1 },
    { "", 1000, 0, -1 },
    { "s", 1000, 0, -1 },
    { "-1s", 1000, 0, -1 },
    { "7w", 1000, 0, -1 },
    { "7dd", 1000, 0, -1 },
    { "3651d", 1000, 0, -1 },       /* past ten years */
    { "3650d", 1000, 0, 315360000000LL },
    { "99999999999999999999s", 1000, 0, -1 },
};


START_TEST(test_duration_ms)
{
    const char  *t = durations[_i].text;

    ck_assert_msg(cutover_duration_ms(t, strlen(t), durations[_i].bare_ms,
                                      durations[_i].fractions)
                  == durations[_i].ms, "\"%s\"", t);
}
END_TEST


START_TEST(test_guard_parse_units)
{
    ck_assert_int_eq(cutover_duration_parse("30s", 3), 30);
    ck_assert_int_eq(cutover_duration_parse("10m", 3), 600);
    ck_assert_int_eq(cutover_duration_parse("2h", 2), 7200);
    ck_assert_int_eq(cutover_duration_parse("45", 2), 45);
    ck_assert_int_eq(cutover_duration_parse("", 0), -1);
    ck_assert_int_eq(cutover_duration_parse("s", 1), -1);
    ck_assert_int_eq(cutover_duration_parse("1.5m", 4), -1);
    ck_assert_int_eq(cutover_msec_parse("800ms", 5), 800);
    ck_assert_int_eq(cutover_msec_parse("1.5s", 4), 1500);
    ck_assert_int_eq(cutover_msec_parse("2s", 2), 2000);
    ck_assert_int_eq(cutover_msec_parse("250", 3), 250);
    ck_assert_int_eq(cutover_msec_parse("1.5ms", 5), -1);
    ck_assert_int_eq(cutover_msec_parse(".5s", 3), -1);
}
END_TEST


static Suite *
common_suite(void)
{
    Suite  *s;
    TCase  *parse, *live, *guard;

    s = suite_create("common");

    parse = tcase_create("parse");
    tcase_add_loop_test(parse, test_listen_good, 0,
                        sizeof(good_listen) / sizeof(good_listen[0]));
    tcase_add_loop_test(parse, test_listen_bad, 0,
                        sizeof(bad_listen) / sizeof(bad_listen[0]));
    tcase_add_test(parse, test_durations);
    tcase_add_loop_test(parse, test_duration_ms, 0,
                        sizeof(durations) / sizeof(durations[0]));
    tcase_add_test(parse, test_options);
    tcase_add_test(parse, test_error_body);
    tcase_add_test(parse, test_api_ids);
    tcase_add_test(parse, test_api_idempotency_keys);
    tcase_add_loop_test(parse, test_json_write, 0,
                        sizeof(json_write_cases) / sizeof(json_write_cases[0]));
    tcase_add_test(parse, test_json_escape_fits);
    tcase_add_test(parse, test_json_reader_opts);
    tcase_add_test(parse, test_hashes);
    suite_add_tcase(s, parse);

    guard = tcase_create("guard");
    tcase_add_test(guard, test_guard_window_sums);
    tcase_add_test(guard, test_guard_window_idle_gap);
    tcase_add_test(guard, test_guard_percentile);
    tcase_add_test(guard, test_guard_thresholds);
    tcase_add_loop_test(guard, test_guard_bad_params, 0,
                        sizeof(bad_guard_params)
                        / sizeof(bad_guard_params[0]));
    tcase_add_test(guard, test_guard_parse_units);
    suite_add_tcase(s, guard);

    live = tcase_create("live");
    tcase_set_timeout(live, 20);
    tcase_add_loop_test(live, test_request_deadline, 0, 2);
    tcase_add_test(live, test_per_connection);
    tcase_add_test(live, test_body_limit);
    tcase_add_test(live, test_ipv6_listen);
    suite_add_tcase(s, live);

    return s;
}


int
main(void)
{
    int       failed;
    SRunner  *sr;

    sr = srunner_create(common_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
