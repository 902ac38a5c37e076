/*
 * cutover-shadowd: replays the dual-run log on the side that did not serve
 * each request and hands the pairs to the comparator.
 */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <curl/curl.h>

#include "common/cutover_log.h"
#include "shadow/shadow_daemon.h"


static void shadowd_log(int level, const char *msg);
static void shadowd_on_signal(int sig);
static void shadowd_usage(FILE *out);

static volatile sig_atomic_t  shadowd_stop;


static void
shadowd_log(int level, const char *msg)
{
    static const char  *levels[] = { "error", "warn", "info" };

    cutover_log_line("cutover-shadowd", levels[level], "%s", msg);
}


static void
shadowd_on_signal(int sig)
{
    (void) sig;
    shadowd_stop = 1;
}


static void
shadowd_usage(FILE *out)
{
    fprintf(out,
        "usage: cutover-shadowd --config FILE\n"
        "       cutover-shadowd dead-letter list|replay|discard [--key K]\n"
        "                       [--reason TEXT] --config FILE\n"
        "\n"
        "Tails the dual-run log from its checkpoint, replays each record on\n"
        "the side that did not serve it (a write only when the primary\n"
        "applied it), in log order per ordering key, and stores the\n"
        "compared pairs.  A write waits for the other side as long as it\n"
        "is down, or until max_wait_ms parks its key in the dead-letter\n"
        "store, which \"dead-letter\" lists, replays or discards.\n"
        "SIGTERM/SIGINT stop cleanly.  Configuration keys: see SPEC.md.\n");
}


int
main(int argc, char **argv)
{
    int                    c, rc = 1;
    const char            *config = NULL;
    shadow_error_t         err;
    shadow_config_t        cfg;
    shadow_daemon_t       *d = NULL;
    struct sigaction       sa;
    static struct option   opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    if (argc > 1 && strcmp(argv[1], "dead-letter") == 0) {
        return shadow_dead_letter_main(argc - 1, argv + 1);
    }

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            shadowd_usage(stdout);
            return 0;
        default:
            shadowd_usage(stderr);
            return 2;
        }
    }

    if (config == NULL || optind != argc) {
        shadowd_usage(stderr);
        return 2;
    }

    if (shadow_config_load(config, &cfg, &err) != SHADOW_OK) {
        fprintf(stderr, "cutover-shadowd: %s: %s\n", config, err.message);
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = shadowd_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    curl_global_init(CURL_GLOBAL_DEFAULT);

    d = shadow_daemon_new(&cfg, shadowd_log, &err);
    if (d == NULL) {
        shadowd_log(SHADOW_LOG_ERR, err.message);
        goto cleanup;
    }

    rc = shadow_daemon_run(d, &shadowd_stop) == SHADOW_OK ? 0 : 1;

cleanup:

    shadow_daemon_free(d);
    shadow_config_clear(&cfg);
    curl_global_cleanup();
    return rc;
}
