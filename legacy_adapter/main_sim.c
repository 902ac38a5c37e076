/* legacy-store-sim: the stand-in legacy store system (thin main). */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cutover_log.h"
#include "legacy_adapter/legacy_server.h"
#include "legacy_adapter/legacy_sim.h"


typedef struct {
    const char  *listen;
    int          init;
    int          seed;
    int          threads;
} sim_main_opts_t;


static void sim_main_log(void *data, int level, const char *message);
static int sim_main_options(int argc, char **argv, legacy_sim_config_t *cfg,
    sim_main_opts_t *o);
static int sim_main_serve(const char *listen, int threads,
    legacy_sim_config_t *cfg);
static void sim_main_usage(FILE *out);


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
        "           [--init-schema] [--seed]\n"
        "           [--quirks LIST | --no-quirks] [--threads N]"
        " [--delay-ms N]\n"
        "\n"
        "The stand-in legacy store system: its own ledger in schema\n"
        "\"legacy\", pinyin fields, fen, numeric channel codes, China time,\n"
        "an always-200 {code,msg,data} envelope, BSON or JSON bodies.\n"
        "\n"
        "  --listen ADDR:PORT  serve the legacy API (POST /lsapi/...)\n"
        "  --db CONNINFO       libpq connection string\n"
        "  --init-schema       create the legacy schema if missing\n"
        "  --seed              load the demo ledger (clean re-seed)\n"
        "  --quirks LIST       comma list of points_floor, oversell,\n"
        "                      cancel_keeps_points (default: all on)\n"
        "  --no-quirks         behave like the new core\n"
        "  --threads N         server threads (default 8)\n"
        "  --delay-ms N        answer every request N ms late (tests)\n"
        "Without --listen it does --init-schema/--seed and exits.\n");
}


/* Reads the flags; -1 to go on, else the exit code. */
static int
sim_main_options(int argc, char **argv, legacy_sim_config_t *cfg,
    sim_main_opts_t *o)
{
    static const struct option  opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "db", required_argument, NULL, 'd' },
        { "init-schema", no_argument, NULL, 'i' },
        { "seed", no_argument, NULL, 's' },
        { "quirks", required_argument, NULL, 'q' },
        { "no-quirks", no_argument, NULL, 'n' },
        { "threads", required_argument, NULL, 't' },
        { "delay-ms", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    legacy_error_t  err;
    int             c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': o->listen = optarg; break;
        case 'd': cfg->conninfo = optarg; break;
        case 'i': o->init = 1; break;
        case 's': o->seed = 1; break;
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
            o->threads = atoi(optarg);
            if (o->threads < 1 || o->threads > 256) {
                fprintf(stderr, "legacy-store-sim: bad --threads\n");
                return 2;
            }
            break;
        case 'w':
            cfg->delay_ms = atoi(optarg);
            break;
        case 'h':
            sim_main_usage(stdout);
            return 0;
        default:
            sim_main_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || cfg->conninfo == NULL
        || (o->listen == NULL && !o->init && !o->seed))
    {
        sim_main_usage(stderr);
        return 2;
    }
    return -1;
}


/* Serves until SIGTERM or SIGINT. */
static int
sim_main_serve(const char *listen, int threads, legacy_sim_config_t *cfg)
{
    legacy_sim_t     *sim = NULL;
    legacy_server_t  *srv = NULL;
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
    srv = legacy_server_new(listen, (unsigned) threads, legacy_sim_handle,
                            sim, &err);
    if (srv == NULL) {
        goto failed;
    }
    snprintf(msg, sizeof(msg), "listening on %s, quirks:%s%s%s%s", listen,
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
    legacy_server_free(srv);
    legacy_sim_free(sim);
    return rc;
}


int
main(int argc, char **argv)
{
    legacy_sim_config_t  cfg;
    sim_main_opts_t      o = { NULL, 0, 0, 8 };
    legacy_error_t       err;
    char                 msg[512];
    int                  rc;

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

    if (o.init && legacy_sim_init_schema(cfg.conninfo, &err) != LEGACY_OK) {
        snprintf(msg, sizeof(msg), "init schema: %s", err.message);
        sim_main_log(NULL, LEGACY_LOG_ERR, msg);
        return 1;
    }
    if (o.seed) {
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
    return sim_main_serve(o.listen, o.threads, &cfg);
}
