/*
 * cutover-legacy-adapter: the canonical API in front of the legacy store
 * system, and (`export`) the store-system migration into the new core.
 */

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/cutover_api.h"
#include "common/cutover_json.h"
#include "common/cutover_httpd.h"
#include "common/cutover_log.h"
#include "legacy_adapter/legacy_adapter.h"
#include "legacy_adapter/legacy_convert.h"
#include "legacy_adapter/legacy_migrate.h"


typedef struct {
    const char              *listen;
    const char              *map_path;
    cutover_httpd_limits_t   limits;
} adapter_main_opts_t;


static void adapter_main_log(void *data, int level, const char *message);
static int adapter_main_options(int argc, char **argv,
    legacy_adapter_config_t *cfg, adapter_main_opts_t *o);
static void adapter_main_print_json(const legacy_migrate_report_t *rep);
static int adapter_main_stdout(void *data, const char *p, size_t n);
static void adapter_main_usage(FILE *out);
static const char *adapter_main_default_map(char *buf, size_t len);
static int adapter_main_export(int argc, char **argv);
static void adapter_main_print(const legacy_migrate_report_t *rep,
    int json);


static void
adapter_main_log(void *data, int level, const char *message)
{
    static const char  *levels[] = { "error", "warn", "info" };

    (void) data;
    cutover_log_line("cutover-legacy-adapter", levels[level], "%s",
                     message);
}


static void
adapter_main_usage(FILE *out)
{
    fprintf(out,
        "usage: cutover-legacy-adapter --listen ADDR:PORT --legacy URL\n"
        "           [--map FILE] [--timeout-ms N] [--threads N]\n"
        "           [--max-connections N] [--per-ip-connections N]\n"
        "           [--request-timeout T]\n"
        "       cutover-legacy-adapter export --legacy-db CONNINFO\n"
        "           --new-db CONNINFO [--map FILE] [--replace] [--json]\n"
        "\n"
        "Serves the canonical API (POST /api/v1/orders,\n"
        "GET /api/v1/orders/ID, POST /api/v1/orders/ID/cancel,\n"
        "GET /api/v1/inventory/STORE/SKU,\n"
        "POST /api/v1/inventory/adjust, GET /api/v1/members/ID, GET /health)\n"
        "and speaks the legacy dialect to URL, as the map says.\n"
        "\n"
        "  --listen ADDR:PORT  where to serve: 127.0.0.1:8080, [::1]:8080,\n"
        "                      localhost:8080, *:8080\n"
        "  --legacy URL        the legacy system, e.g. http://127.0.0.1:8090,\n"
        "                      http://[::1]:8090, http://legacy.example:8090\n"
        "  --map FILE          mapping (default: legacy_adapter/map.json)\n"
        "  --timeout-ms N      legacy answer deadline, then 504\n"
        "                      (default 2000)\n"
        "  --threads N         requests forwarded at once (default 32), on\n"
        "                      a pool of keep-alive connections to the\n"
        "                      legacy side; more wait up to --timeout-ms\n"
        CUTOVER_HTTPD_USAGE
        "\n"
        "export copies stores, channels, SKUs, stock and members from the\n"
        "legacy database into the new core's (empty) schema, reports\n"
        "duplicates, bad codes and negative stock instead of copying them,\n"
        "and prints both sides' counts and totals.  Exit 0 when balanced.\n");
}


static const char *
adapter_main_default_map(char *buf, size_t len)
{
    char     exe[PATH_MAX];
    ssize_t  n;
    char    *slash;

    if (access("legacy_adapter/map.json", R_OK) == 0) {
        return "legacy_adapter/map.json";
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(buf, len, "%s/../../legacy_adapter/map.json", exe);
            if (access(buf, R_OK) == 0) {
                return buf;
            }
        }
    }
    return "legacy_adapter/map.json";
}


static int
adapter_main_stdout(void *data, const char *p, size_t n)
{
    (void) data;
    return fwrite(p, 1, n, stdout) == n ? 0 : -1;
}


static void
adapter_main_print_json(const legacy_migrate_report_t *rep)
{
    const legacy_migrate_table_t  *t;
    const legacy_migrate_issue_t  *is;
    size_t                         i;

    printf("{\"balanced\": %s, \"tables\": [", rep->balanced ? "true"
           : "false");
    for (i = 0; i < LEGACY_MIGRATE_TABLES; i++) {
        t = &rep->tables[i];
        printf("%s{\"table\": \"%s\", \"unit\": \"%s\","
               " \"legacy_rows\": %lld, \"migrated_rows\": %lld,"
               " \"rejected_rows\": %lld, \"new_rows\": %lld,"
               " \"legacy_total\": %lld, \"migrated_total\": %lld,"
               " \"rejected_total\": %lld, \"new_total\": %lld,"
               " \"balanced\": %s}", i ? ", " : "", t->table,
               t->unit ? t->unit : "",
               (long long) t->legacy_rows, (long long) t->migrated_rows,
               (long long) t->rejected_rows, (long long) t->new_rows,
               (long long) t->legacy_total, (long long) t->migrated_total,
               (long long) t->rejected_total, (long long) t->new_total,
               t->balanced ? "true" : "false");
    }
    printf("], \"open_orders\": {\"legacy_count\": %lld,"
           " \"legacy_fen\": %lld, \"new_count\": %lld,"
           " \"new_fen\": %lld}, \"cleaned_ids\": %lld,"
           " \"issue_count\": %lld, \"issues\": [",
           (long long) rep->legacy_open_orders,
           (long long) rep->legacy_open_fen,
           (long long) rep->new_open_orders, (long long) rep->new_open_fen,
           (long long) rep->cleaned_ids, (long long) rep->issue_count);
    for (i = 0; i < rep->nissues; i++) {
        is = &rep->issues[i];
        printf("%s{\"kind\": \"%s\", \"table\": \"%s\", \"key\": \"",
               i ? ", " : "", is->kind, is->table);
        /* a raw legacy id may hold anything: escape what JSON needs */
        (void) cutover_json_write(is->key, strlen(is->key), 0,
                                  adapter_main_stdout, NULL);
        printf("\", \"detail\": \"%s\"}", is->detail);
    }
    printf("]}\n");
}


static void
adapter_main_print(const legacy_migrate_report_t *rep, int json)
{
    const legacy_migrate_table_t  *t;
    const legacy_migrate_issue_t  *is;
    char                           a[LEGACY_YUAN_LEN], b[LEGACY_YUAN_LEN];
    size_t                         i;

    if (json) {
        adapter_main_print_json(rep);
        return;
    }

    printf("%-9s %12s %12s %9s %12s | %-9s %14s %14s %14s %14s  %s\n",
           "table", "legacy rows", "migrated", "rejected", "new rows",
           "total of", "legacy", "migrated", "rejected", "new", "balance");
    for (i = 0; i < LEGACY_MIGRATE_TABLES; i++) {
        t = &rep->tables[i];
        printf("%-9s %12lld %12lld %9lld %12lld | %-9s %14lld %14lld %14lld"
               " %14lld  %s\n", t->table, (long long) t->legacy_rows,
               (long long) t->migrated_rows, (long long) t->rejected_rows,
               (long long) t->new_rows, t->unit ? t->unit : "-",
               (long long) t->legacy_total, (long long) t->migrated_total,
               (long long) t->rejected_total, (long long) t->new_total,
               t->balanced ? "ok" : "MISMATCH");
    }
    legacy_fen_to_yuan(rep->legacy_open_fen, a);
    legacy_fen_to_yuan(rep->new_open_fen, b);
    printf("open (paid) orders, not migrated: legacy %lld orders %s yuan;"
           " new core %lld orders %s yuan\n",
           (long long) rep->legacy_open_orders, a,
           (long long) rep->new_open_orders, b);
    printf("ids cleaned (trimmed/upper-cased): %lld\n",
           (long long) rep->cleaned_ids);
    printf("issues: %lld%s\n", (long long) rep->issue_count,
           rep->issue_count > 20 ? " (the first 20 below; --json for more)"
           : "");
    for (i = 0; i < rep->nissues && i < 20; i++) {
        is = &rep->issues[i];
        printf("  %-15s %-9s %-24s %s\n", is->kind, is->table, is->key,
               is->detail);
    }
    printf("%s\n", rep->balanced ? "BALANCED" : "NOT BALANCED");
}


static int
adapter_main_export(int argc, char **argv)
{
    static const struct option  opts[] = {
        { "legacy-db", required_argument, NULL, 'l' },
        { "new-db", required_argument, NULL, 'n' },
        { "map", required_argument, NULL, 'm' },
        { "replace", no_argument, NULL, 'r' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char               *old_db = NULL, *new_db = NULL, *map_path;
    char                      buf[PATH_MAX + 64];
    int                       c, replace = 0, json = 0, rc;
    legacy_map_t             *map;
    legacy_migrate_report_t  *rep;
    legacy_error_t            err;

    map_path = adapter_main_default_map(buf, sizeof(buf));
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': old_db = optarg; break;
        case 'n': new_db = optarg; break;
        case 'm': map_path = optarg; break;
        case 'r': replace = 1; break;
        case 'j': json = 1; break;
        case 'h': adapter_main_usage(stdout); return 0;
        default: adapter_main_usage(stderr); return 2;
        }
    }
    if (optind != argc || old_db == NULL || new_db == NULL) {
        adapter_main_usage(stderr);
        return 2;
    }

    map = legacy_map_new_from_file(map_path, &err);
    if (map == NULL) {
        adapter_main_log(NULL, LEGACY_LOG_ERR, err.message);
        return 1;
    }
    rep = calloc(1, sizeof(*rep));
    if (rep == NULL) {
        legacy_map_free(map);
        return 1;
    }
    rc = legacy_migrate_run(map, old_db, new_db, replace, rep, &err);
    if (rc == LEGACY_OK || rep->tables[0].legacy_rows > 0) {
        adapter_main_print(rep, json);
    }
    if (rc != LEGACY_OK) {
        adapter_main_log(NULL, LEGACY_LOG_ERR, err.message);
    }
    free(rep);
    legacy_map_free(map);
    return rc == LEGACY_OK ? 0 : 1;
}


/* Reads the serving flags; -1 to go on, else the exit code. */
static int
adapter_main_options(int argc, char **argv, legacy_adapter_config_t *cfg,
    adapter_main_opts_t *o)
{
    static const struct option  opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "legacy", required_argument, NULL, 'u' },
        { "map", required_argument, NULL, 'm' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "threads", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        CUTOVER_HTTPD_LONG_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    int                    c, n;
    cutover_httpd_addr_t   addr;
    cutover_httpd_error_t  herr;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': o->listen = optarg; break;
        case 'u': cfg->legacy_url = optarg; break;
        case 'm': o->map_path = optarg; break;
        case 't':
            cfg->timeout_ms = atol(optarg);
            if (cfg->timeout_ms < 1 || cfg->timeout_ms > 600000) {
                fprintf(stderr, "cutover-legacy-adapter: bad --timeout-ms\n");
                return 2;
            }
            break;
        case 'n':
            n = atoi(optarg);
            if (n < 1 || n > 256) {
                fprintf(stderr, "cutover-legacy-adapter: bad --threads"
                        " (1-256)\n");
                return 2;
            }
            o->limits.threads = (unsigned) n;
            break;
        case CUTOVER_HTTPD_OPT_MAX_CONNECTIONS:
        case CUTOVER_HTTPD_OPT_PER_IP:
        case CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT:
            if (cutover_httpd_option(&o->limits, c, optarg, &herr)
                != CUTOVER_HTTPD_OK)
            {
                fprintf(stderr, "cutover-legacy-adapter: %s\n",
                        herr.message);
                return 2;
            }
            break;
        case 'h':
            adapter_main_usage(stdout);
            return 0;
        default:
            adapter_main_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || o->listen == NULL || cfg->legacy_url == NULL) {
        adapter_main_usage(stderr);
        return 2;
    }
    if (cutover_httpd_parse_listen(o->listen, &addr, &herr)
        != CUTOVER_HTTPD_OK)
    {
        fprintf(stderr, "cutover-legacy-adapter: bad --listen: %s\n",
                herr.message);
        return 2;
    }
    return -1;
}


/*
 * Kept whole (past 80 lines): start-up in order, then the signal wait, with
 * one cleanup path.
 */
int
main(int argc, char **argv)
{
    legacy_adapter_config_t  cfg;
    adapter_main_opts_t      o;
    legacy_adapter_t        *ad = NULL;
    legacy_server_t         *srv = NULL;
    legacy_map_t            *map = NULL;
    legacy_error_t           err;
    char                     buf[PATH_MAX + 64], msg[512];
    int                      rc, sig;
    sigset_t                 set;

    if (argc > 1 && strcmp(argv[1], "export") == 0) {
        return adapter_main_export(argc - 1, argv + 1);
    }

    memset(&o, 0, sizeof(o));
    cutover_httpd_limits_default(&o.limits);
    o.limits.body_max = CUTOVER_API_BODY_MAX;
    /* a legacy call waits on the sim: more of them than the sim's */
    o.limits.threads = 32;
    memset(&cfg, 0, sizeof(cfg));
    cfg.timeout_ms = 2000;
    cfg.log = adapter_main_log;
    o.map_path = adapter_main_default_map(buf, sizeof(buf));
    rc = adapter_main_options(argc, argv, &cfg, &o);
    if (rc >= 0) {
        return rc;
    }
    rc = 1;
    cfg.calls = o.limits.threads;

    map = legacy_map_new_from_file(o.map_path, &err);
    if (map == NULL) {
        adapter_main_log(NULL, LEGACY_LOG_ERR, err.message);
        return 1;
    }
    cfg.map = map;

    /* Signals are taken by sigwait() below, never by the server threads. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    ad = legacy_adapter_new(&cfg, &err);
    if (ad == NULL) {
        goto failed;
    }
    srv = legacy_server_new("cutover-legacy-adapter", o.listen, &o.limits,
                            legacy_adapter_handle, ad, &err);
    if (srv == NULL) {
        goto failed;
    }
    snprintf(msg, sizeof(msg), "listening on %s, legacy %s, map %s,"
             " timeout %ld ms, %u legacy calls at once, at most %u"
             " connections (%u per address), request timeout %us",
             o.listen, cfg.legacy_url,
             o.map_path, cfg.timeout_ms, o.limits.threads,
             o.limits.max_connections, o.limits.per_ip,
             o.limits.request_timeout);
    adapter_main_log(NULL, LEGACY_LOG_INFO, msg);

    sigwait(&set, &sig);
    snprintf(msg, sizeof(msg), "signal %d, stopping", sig);
    adapter_main_log(NULL, LEGACY_LOG_INFO, msg);
    rc = 0;
    goto cleanup;

failed:
    adapter_main_log(NULL, LEGACY_LOG_ERR, err.message);

cleanup:
    legacy_server_free(srv);
    legacy_adapter_free(ad);
    legacy_map_free(map);
    curl_global_cleanup();
    return rc;
}
