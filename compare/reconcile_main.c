/*
 * cutover-reconcile: whether the two systems' ledgers (stock, points,
 * orders) agree, and where not.  Exit 0 agree, 1 differences, 2 error.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cutover_embed.h"
#include "compare/reconcile.h"

#define RECONCILE_BUILTIN_MAP  "compare/reconcile_map.json"

CUTOVER_EMBED_FILE(reconcile_map_json, "compare/reconcile_map.json");
extern const char reconcile_map_json[];

static const char *usage =
    "usage: cutover-reconcile --new CONNINFO --legacy CONNINFO\n"
    "           [--ledger stock,points,orders] [--store S1,S2]\n"
    "           [--settle DURATION] [--results CONNINFO] [--map FILE]\n"
    "           [-o text|json] [--stats]\n"
    "\n"
    "Compares the ledgers of the new core (--new) and the legacy system\n"
    "(--legacy), each turned into canonical rows by the map file's SQL\n"
    "(built in: " RECONCILE_BUILTIN_MAP " for cutover-newcore and\n"
    "legacy-store-sim).  Key ranges are counted and hashed inside each\n"
    "database and split where they differ; only small differing ranges\n"
    "are fetched.\n"
    "  --ledger L,..      the ledgers to compare (default: all in the map)\n"
    "  --store S,..       only these stores (ledgers with a store_id)\n"
    "  --settle D         check each difference again after D (10s, 500ms)\n"
    "                     and report only those still there\n"
    "  --results C        store the run in the comparison result store\n"
    "  --map FILE         another map file (see README, Reconciling)\n"
    "  -o text|json       output (default text)\n"
    "  --stats            queries, rows hashed and fetched, bytes, time\n"
    "  --fetch-rows N     fetch a differing range at most this large (64)\n"
    "  --fanout N         the most sub-ranges a range splits into (16384)\n"
    "  --list N           differences listed per ledger (1000)\n"
    "Exit 0 the ledgers agree, 1 differences, 2 error.\n";


static int reconcile_args(int argc, char **argv, reconcile_run_t *run,
    const char **map_path, const char **results);
static int reconcile_select(reconcile_run_t *run, cutover_error_t *err);
static long reconcile_num(const char *s, long lo, long hi);


static long
reconcile_num(const char *s, long lo, long hi)
{
    char  *end;
    long   v;

    v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    return v;
}


/* Options into run; -1 to go on, else the exit code. */
static int
reconcile_args(int argc, char **argv, reconcile_run_t *run,
    const char **map_path, const char **results)
{
    int                       c;
    long                      v;
    reconcile_config_t       *cfg;
    static const struct option opts[] = {
        { "new", required_argument, NULL, 'n' },
        { "legacy", required_argument, NULL, 'l' },
        { "ledger", required_argument, NULL, 'L' },
        { "store", required_argument, NULL, 's' },
        { "settle", required_argument, NULL, 'S' },
        { "results", required_argument, NULL, 'r' },
        { "map", required_argument, NULL, 'm' },
        { "stats", no_argument, NULL, 't' },
        { "fetch-rows", required_argument, NULL, 'F' },
        { "fanout", required_argument, NULL, 'f' },
        { "list", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    cfg = &run->cfg;
    cfg->fetch_rows = 64;
    cfg->fanout = 16384;
    cfg->list_cap = 1000;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            cfg->conninfo[RECONCILE_NEW] = optarg;
            break;
        case 'l':
            cfg->conninfo[RECONCILE_LEGACY] = optarg;
            break;
        case 'L':
            cfg->ledgers = optarg;
            break;
        case 's':
            cfg->stores = optarg;
            break;
        case 'S':
            if (reconcile_parse_duration(optarg, &cfg->settle_ms)
                != RECONCILE_OK)
            {
                fprintf(stderr, "cutover-reconcile: bad --settle \"%s\""
                        " (want 10s, 500ms, 2m)\n", optarg);
                return 2;
            }
            break;
        case 'r':
            *results = optarg;
            break;
        case 'm':
            *map_path = optarg;
            break;
        case 't':
            cfg->stats = 1;
            break;
        case 'F':
        case 'f':
        case 'c':
            v = reconcile_num(optarg, c == 'f' ? 2 : 1,
                              c == 'f' ? 65536 : 10000000);
            if (v < 0) {
                fprintf(stderr, "cutover-reconcile: bad --%s \"%s\"\n",
                        c == 'F' ? "fetch-rows" : c == 'f' ? "fanout"
                                                           : "list", optarg);
                return 2;
            }
            if (c == 'F') {
                cfg->fetch_rows = v;
            } else if (c == 'f') {
                cfg->fanout = (int) v;
            } else {
                cfg->list_cap = v;
            }
            break;
        case 'o':
            if (strcmp(optarg, "json") == 0) {
                cfg->json = 1;
            } else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "cutover-reconcile: -o text|json\n");
                return 2;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc || cfg->conninfo[0] == NULL
        || cfg->conninfo[1] == NULL)
    {
        fputs(usage, stderr);
        return 2;
    }
    cfg->progress = isatty(STDERR_FILENO);
    return -1;
}


static int
reconcile_select(reconcile_run_t *run, cutover_error_t *err)
{
    int    i, k;
    char  *copy, *tok, *save;

    if (run->cfg.ledgers == NULL) {
        for (i = 0; i < run->map->n; i++) {
            run->sel[run->nsel++] = i;
        }
        return RECONCILE_OK;
    }
    copy = strdup(run->cfg.ledgers);
    if (copy == NULL) {
        cutover_error_set(err, "no_memory", "out of memory");
        return RECONCILE_ERROR;
    }
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save))
    {
        i = reconcile_map_find(run->map, tok);
        if (i < 0) {
            cutover_error_set(err, "bad_ledger", "no ledger \"%.40s\" in the"
                              " map %.120s", tok, run->map->path);
            free(copy);
            return RECONCILE_ERROR;
        }
        for (k = 0; k < run->nsel && run->sel[k] != i; k++) {
            /* void */
        }
        if (k == run->nsel && run->nsel < RECONCILE_MAX_LEDGERS) {
            run->sel[run->nsel++] = i;
        }
    }
    free(copy);
    if (run->nsel == 0) {
        cutover_error_set(err, "bad_ledger", "--ledger names no ledger");
        return RECONCILE_ERROR;
    }
    return RECONCILE_OK;
}


int
main(int argc, char **argv)
{
    int               rc;
    int64_t           total;
    const char       *map_path, *results;
    time_t            now;
    struct tm         tm;
    reconcile_run_t   run;
    cutover_error_t   err, serr;

    memset(&run, 0, sizeof(run));
    memset(&err, 0, sizeof(err));
    map_path = NULL;
    results = NULL;
    rc = reconcile_args(argc, argv, &run, &map_path, &results);
    if (rc >= 0) {
        return rc;
    }
    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(run.started_at, sizeof(run.started_at), "%Y-%m-%dT%H:%M:%SZ",
             &tm);

    rc = 2;
    run.map = map_path
              ? reconcile_map_load(map_path, &err)
              : reconcile_map_parse(RECONCILE_BUILTIN_MAP " (built in)",
                                    reconcile_map_json,
                                    strlen(reconcile_map_json), &err);
    if (run.map == NULL || reconcile_select(&run, &err) != RECONCILE_OK) {
        goto failed;
    }
    if (run.cfg.stores != NULL) {
        run.stores_lit = reconcile_stores_literal(run.cfg.stores, &err);
        if (run.stores_lit == NULL) {
            goto failed;
        }
    }
    if (reconcile_run(&run, &err) != RECONCILE_OK) {
        goto failed;
    }

    if (results != NULL
        && reconcile_store_write(results, &run, NULL, &serr) != RECONCILE_OK)
    {
        err = serr;
        goto failed;
    }
    if (run.cfg.json) {
        reconcile_print_json(&run, stdout);
    } else {
        reconcile_print_text(&run, stdout);
    }
    total = reconcile_total_differences(&run);
    rc = fflush(stdout) == 0 ? (total > 0) : 2;
    reconcile_run_free(&run);
    return rc;

failed:
    fprintf(stderr, "cutover-reconcile: %s\n", err.message);
    if (run.detail[0] != '\0') {
        fprintf(stderr, "%s\n", run.detail);
    }
    if (results != NULL
        && strcmp(err.name, "results") != 0
        && reconcile_store_write(results, &run, err.message, &serr)
           != RECONCILE_OK)
    {
        fprintf(stderr, "cutover-reconcile: %s\n", serr.message);
    }
    reconcile_run_free(&run);
    return rc;
}
