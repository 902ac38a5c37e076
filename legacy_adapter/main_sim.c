/* legacy-store-sim: the stand-in legacy store system (thin main). */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cutover_httpd.h"
#include "common/cutover_log.h"
#include "common/cutover_purge.h"
#include "legacy_adapter/legacy_server.h"
#include "legacy_adapter/legacy_seed.h"
#include "legacy_adapter/legacy_sim.h"


/* One batch of answered serial numbers older than $1 seconds. */
#define SIM_PURGE_SQL                                                        \
    "DELETE FROM legacy.qqlsh WHERE ctid IN (SELECT ctid FROM legacy.qqlsh " \
    "WHERE xy IS NOT NULL AND cjsj < now() - make_interval(secs => "         \
    "$1::double precision) LIMIT $2::int)"

typedef struct {
    const char              *listen;
    int                      init;
    int                      seed;
    int                      seed_stores;   /* 0: the default ledger */
    int                      seed_skus;
    uint64_t                 idem_ttl;
    cutover_httpd_limits_t   limits;
} sim_main_opts_t;


static void sim_main_log(void *data, int level, const char *message);
static int sim_main_options(int argc, char **argv, legacy_sim_config_t *cfg,
    sim_main_opts_t *o);
static int sim_main_serve(const sim_main_opts_t *o,
    legacy_sim_config_t *cfg);
static void sim_main_usage(FILE *out);
static int sim_main_seed_arg(int opt, const char *arg, sim_main_opts_t *o);


static void
sim_main_log(void *data, int level, const char *message)
{
    static const char  *levels[] = { "error", "warn", "info" };

    (void) data;
    cutover_log_line("legacy-store-sim", levels[level], "%s", message);
}


static void
sim_main_usage(FILE *out)
{
    fprintf(out,
        "usage: legacy-store-sim --db CONNINFO [--listen ADDR:PORT]\n"
        "           [--init-schema] [--seed] [--seed-stores N]"
        " [--seed-skus M]\n"
        "           [--quirks LIST | --no-quirks] [--threads N]"
        " [--delay-ms N]\n"
        "           [--idempotency-ttl T] [--max-connections N]\n"
        "           [--per-ip-connections N] [--request-timeout T]\n"
        "\n"
        "The stand-in legacy store system: its own ledger in schema\n"
        "\"legacy\", pinyin fields, fen, numeric channel codes, China time,\n"
        "an always-200 {code,msg,data} envelope, BSON or JSON bodies.\n"
        "\n"
        "  --listen ADDR:PORT  serve the legacy API (POST /lsapi/...);\n"
        "                      127.0.0.1:8090, [::1]:8090, localhost:8090\n"
        "  --db CONNINFO       libpq connection string\n"
        "  --init-schema       create the legacy schema if missing\n"
        "  --seed              load the demo ledger (clean re-seed)\n"
        "  --seed-stores N     with --seed: N stores (default 200, 1-999)\n"
        "  --seed-skus M       with --seed: M SKUs (default 2000, 1-99999)\n"
        "  --quirks LIST       comma list of points_floor, oversell,\n"
        "                      cancel_keeps_points (default: all on)\n"
        "  --no-quirks         behave like the new core\n"
        "  --threads N         requests served at once, each on one of N\n"
        "                      pooled database connections (default 8)\n"
        "  --delay-ms N        answer every request N ms late (tests)\n"
        "  --idempotency-ttl T keep answered serial numbers (qqlsh) for T\n"
        "                      (7d, 12h, 30m, 45s; default 7d); older ones\n"
        "                      are purged and a replay is a new request\n"
        CUTOVER_HTTPD_USAGE
        "Without --listen it does --init-schema/--seed and exits.\n");
}


/* --seed-stores (1-999) and --seed-skus (1-99999): the ids' widths. */
static int
sim_main_seed_arg(int opt, const char *arg, sim_main_opts_t *o)
{
    long   v;
    char  *end;

    v = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < 1
        || v > (opt == 'S' ? 999 : 99999))
    {
        fprintf(stderr, "legacy-store-sim: --seed-%s must be 1-%d\n",
                opt == 'S' ? "stores" : "skus", opt == 'S' ? 999 : 99999);
        return 2;
    }
    if (opt == 'S') {
        o->seed_stores = (int) v;
    } else {
        o->seed_skus = (int) v;
    }
    return 0;
}


/*
 * Reads the flags; -1 to go on, else the exit code. Kept whole: one getopt
 * loop.
 */
static int
sim_main_options(int argc, char **argv, legacy_sim_config_t *cfg,
    sim_main_opts_t *o)
{
    static const struct option  opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "db", required_argument, NULL, 'd' },
        { "init-schema", no_argument, NULL, 'i' },
        { "seed", no_argument, NULL, 's' },
        { "seed-stores", required_argument, NULL, 'S' },
        { "seed-skus", required_argument, NULL, 'K' },
        { "quirks", required_argument, NULL, 'q' },
        { "no-quirks", no_argument, NULL, 'n' },
        { "threads", required_argument, NULL, 't' },
        { "delay-ms", required_argument, NULL, 'w' },
        { "idempotency-ttl", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        CUTOVER_HTTPD_LONG_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    legacy_error_t         err;
    cutover_httpd_error_t  herr;
    cutover_httpd_addr_t   addr;
    int                    c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': o->listen = optarg; break;
        case 'd': cfg->conninfo = optarg; break;
        case 'i': o->init = 1; break;
        case 's': o->seed = 1; break;
        case 'S':
        case 'K':
            if (sim_main_seed_arg(c, optarg, o) != 0) {
                return 2;
            }
            break;
        case 'n':
            cfg->points_floor = cfg->oversell = cfg->cancel_keeps_points = 0;
            break;
        case 'q':
            if (legacy_sim_parse_quirks(optarg, cfg, &err) != LEGACY_OK) {
                fprintf(stderr, "legacy-store-sim: %s\n", err.message);
                return 2;
            }
            break;
        case 't':
            c = atoi(optarg);
            if (c < 1 || c > 256) {
                fprintf(stderr, "legacy-store-sim: bad --threads\n");
                return 2;
            }
            o->limits.threads = (unsigned) c;
            break;
        case 'w':
            cfg->delay_ms = atoi(optarg);
            break;
        case 'T':
            if (cutover_httpd_parse_duration(optarg, &o->idem_ttl)
                != CUTOVER_HTTPD_OK)
            {
                fprintf(stderr, "legacy-store-sim: bad --idempotency-ttl "
                        "\"%s\" (want a duration: 7d, 12h, 30m, 45s)\n",
                        optarg);
                return 2;
            }
            break;
        case CUTOVER_HTTPD_OPT_MAX_CONNECTIONS:
        case CUTOVER_HTTPD_OPT_PER_IP:
        case CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT:
            if (cutover_httpd_option(&o->limits, c, optarg, &herr)
                != CUTOVER_HTTPD_OK)
            {
                fprintf(stderr, "legacy-store-sim: %s\n", herr.message);
                return 2;
            }
            break;
        case 'h':
            sim_main_usage(stdout);
            return 0;
        default:
            sim_main_usage(stderr);
            return 2;
        }
    }
    if ((o->seed_stores || o->seed_skus) && !o->seed) {
        fprintf(stderr, "legacy-store-sim: --seed-stores and --seed-skus go"
                " with --seed\n");
        return 2;
    }
    if (optind != argc || cfg->conninfo == NULL
        || (o->listen == NULL && !o->init && !o->seed))
    {
        sim_main_usage(stderr);
        return 2;
    }
    if (o->listen != NULL
        && cutover_httpd_parse_listen(o->listen, &addr, &herr)
           != CUTOVER_HTTPD_OK)
    {
        fprintf(stderr, "legacy-store-sim: bad --listen: %s\n",
                herr.message);
        return 2;
    }
    return -1;
}


/* Serves until SIGTERM or SIGINT. */
static int
sim_main_serve(const sim_main_opts_t *o, legacy_sim_config_t *cfg)
{
    legacy_sim_t     *sim = NULL;
    legacy_server_t  *srv = NULL;
    cutover_purge_t  *purge = NULL;
    legacy_error_t    err;
    int               rc = 1, sig;
    sigset_t          set;
    char              msg[512];

    /* Signals are taken by sigwait() below, never by the server threads. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    sim = legacy_sim_new(cfg, &err);
    if (sim == NULL) {
        goto failed;
    }
    srv = legacy_server_new("legacy-store-sim", o->listen, &o->limits,
                            legacy_sim_handle, sim, &err);
    if (srv == NULL) {
        goto failed;
    }
    purge = cutover_purge_start("legacy-store-sim", cfg->conninfo,
                                "answered serial numbers", SIM_PURGE_SQL,
                                o->idem_ttl);
    if (purge == NULL) {
        legacy_error_set(&err, LEGACY_E_INTERNAL,
                         "cannot start the serial number purge");
        goto failed;
    }
    snprintf(msg, sizeof(msg), "listening on %s, idempotency ttl %llus,"
             " quirks:%s%s%s%s", o->listen,
             (unsigned long long) o->idem_ttl,
             cfg->points_floor ? " points_floor" : "",
             cfg->oversell ? " oversell" : "",
             cfg->cancel_keeps_points ? " cancel_keeps_points" : "",
             cfg->points_floor || cfg->oversell || cfg->cancel_keeps_points
             ? "" : " none");
    sim_main_log(NULL, LEGACY_LOG_INFO, msg);

    sigwait(&set, &sig);
    snprintf(msg, sizeof(msg), "signal %d, stopping", sig);
    sim_main_log(NULL, LEGACY_LOG_INFO, msg);
    rc = 0;
    goto cleanup;

failed:
    sim_main_log(NULL, LEGACY_LOG_ERR, err.message);

cleanup:
    cutover_purge_stop(purge);
    legacy_server_free(srv);
    legacy_sim_free(sim);
    return rc;
}


int
main(int argc, char **argv)
{
    legacy_sim_config_t  cfg;
    sim_main_opts_t      o;
    legacy_error_t       err;
    char                 msg[512];
    int                  rc;

    memset(&o, 0, sizeof(o));
    o.idem_ttl = 7 * 86400;
    cutover_httpd_limits_default(&o.limits);
    o.limits.body_max = LEGACY_BODY_MAX;
    memset(&cfg, 0, sizeof(cfg));
    cfg.points_floor = 1;
    cfg.oversell = 1;
    cfg.cancel_keeps_points = 1;
    cfg.time_offset_min = 480;
    cfg.log = sim_main_log;

    rc = sim_main_options(argc, argv, &cfg, &o);
    if (rc >= 0) {
        return rc;
    }
    cfg.connections = o.limits.threads;

    if (o.init && legacy_sim_init_schema(cfg.conninfo, &err) != LEGACY_OK) {
        snprintf(msg, sizeof(msg), "init schema: %s", err.message);
        sim_main_log(NULL, LEGACY_LOG_ERR, msg);
        return 1;
    }
    if (o.seed && (o.seed_stores || o.seed_skus)) {
        if (o.seed_stores == 0) {
            o.seed_stores = LEGACY_SEED_STORES;
        }
        if (o.seed_skus == 0) {
            o.seed_skus = LEGACY_SEED_SKUS;
        }
        if (legacy_sim_seed_sized(cfg.conninfo, o.seed_stores, o.seed_skus,
                                  &err) != LEGACY_OK)
        {
            snprintf(msg, sizeof(msg), "seed: %s", err.message);
            sim_main_log(NULL, LEGACY_LOG_ERR, msg);
            return 1;
        }
        snprintf(msg, sizeof(msg), "seeded %d stores, %d SKUs, %lld stock"
                 " rows, 10000 members", o.seed_stores, o.seed_skus,
                 (long long) o.seed_stores * o.seed_skus);
        sim_main_log(NULL, LEGACY_LOG_INFO, msg);

    } else if (o.seed) {
        if (legacy_sim_seed(cfg.conninfo, &err) != LEGACY_OK) {
            snprintf(msg, sizeof(msg), "seed: %s", err.message);
            sim_main_log(NULL, LEGACY_LOG_ERR, msg);
            return 1;
        }
        sim_main_log(NULL, LEGACY_LOG_INFO, "seeded 200 stores, 2000 SKUs,"
                     " 400000 stock rows, 10000 members");
    }
    if (o.listen == NULL) {
        return 0;
    }
    return sim_main_serve(&o, &cfg);
}
