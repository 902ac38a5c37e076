/*
 * cutover-newcore: the new ERP core service (orders, omnichannel stock,
 * payments, member points) on PostgreSQL, answering the canonical API.
 *
 * Writes without an Idempotency-Key header are accepted and applied each
 * time they arrive (a till that does not retry needs no key); writes with
 * one are applied once: the same key and body get the stored answer, another
 * body 422, a concurrent duplicate 409 idempotency_in_progress.  The gateway
 * always sends $cutover_request_id as the key.  Stored answers are kept for
 * --idempotency-ttl (default 7 days) and purged in the background; a key
 * replayed after that is a new request.
 */

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cutover_httpd.h"
#include "common/cutover_log.h"
#include "common/cutover_purge.h"
#include "new_core/newcore_db.h"
#include "new_core/newcore_http.h"
#include "new_core/newcore_seed_bulk.h"

#define NEWCORE_THREADS_DEFAULT  8
#define NEWCORE_THREADS_MAX      256
#define NEWCORE_IDEM_TTL         (7 * 86400)

/* One batch of stored answers older than $1 seconds. */
#define NEWCORE_PURGE_SQL                                                    \
    "DELETE FROM newcore.idempotency WHERE ctid IN (SELECT ctid FROM "       \
    "newcore.idempotency WHERE created_at < now() - make_interval(secs => "  \
    "$1::double precision) LIMIT $2::int)"

typedef struct {
    const char  *listen;
    const char  *db;
    int          threads;
    int          init_schema;
    int          seed;
    int          seed_stores;   /* 0: the default data set */
    int          seed_skus;
    int          check;
    uint64_t     idem_ttl;
    cutover_httpd_limits_t  limits;
} newcore_args_t;


static void newcore_log(void *ctx, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void newcore_usage(FILE *out);
static int newcore_args(int argc, char **argv, newcore_args_t *args);
static int newcore_seed_arg(int opt, const char *arg, newcore_args_t *args);
static int newcore_setup_db(const newcore_args_t *args);
static int newcore_check_ledger(const char *db);
static int newcore_serve(const newcore_args_t *args);




static void
newcore_log(void *ctx, const char *level, const char *fmt, ...)
{
    va_list  ap;

    (void) ctx;

    va_start(ap, fmt);
    cutover_log_vline("cutover-newcore", level, fmt, ap);
    va_end(ap);
}


static void
newcore_usage(FILE *out)
{
    fprintf(out,
        "usage: cutover-newcore --listen ADDR:PORT --db CONNINFO\n"
        "                       [--threads N] [--init-schema] [--seed]\n"
        "                       [--seed-stores N] [--seed-skus M]\n"
        "                       [--idempotency-ttl T] [--max-connections N]\n"
        "                       [--per-ip-connections N]"
        " [--request-timeout T]\n"
        "       cutover-newcore --db CONNINFO --check-ledger\n"
        "\n"
        "The new ERP core: the canonical API (orders, inventory, members)\n"
        "on PostgreSQL, plus GET /health.\n"
        "\n"
        "  --listen ADDR:PORT  where to serve: 127.0.0.1:8081, [::1]:8081,\n"
        "                      localhost:8081, *:8081\n"
        "  --db CONNINFO       libpq connection string\n"
        "  --threads N         database connections, i.e. requests served\n"
        "                      at once (default %d); the server runs 4N\n"
        "                      threads (at most 256) that take turns on\n"
        "                      them; client connections wait in epoll\n"
        "  --idempotency-ttl T keep stored answers of Idempotency-Keys for\n"
        "                      T (7d, 12h, 30m, 45s; default 7d); older ones\n"
        "                      are purged and a replay is a new request\n"
        CUTOVER_HTTPD_USAGE
        "  --init-schema       create or migrate the schema, then serve\n"
        "  --seed              load the demo data set (no-op when loaded)\n"
        "  --seed-stores N     with --seed: N stores (default 200)\n"
        "  --seed-skus M       with --seed: M SKUs, N x M stock rows (2000)\n"
        "  --check-ledger      check the ledger invariant (stock, points,\n"
        "                      money), print the totals, exit 0 when it\n"
        "                      balances, 1 when not\n"
        "  --help              this text\n"
        "\n"
        "Without --listen, --init-schema, --seed and --check-ledger run\n"
        "and the program exits.  SIGTERM or SIGINT stop the service.\n",
        NEWCORE_THREADS_DEFAULT);
}


static int
newcore_check_ledger(const char *db)
{
    int                     ok;
    newcore_error_t         err;
    newcore_ledger_check_t  c;

    if (newcore_db_check_ledger(db, &c, &err) != NEWCORE_OK) {
        newcore_log(NULL, "ERROR", "check-ledger: %s", err.message);
        return 1;
    }

    ok = c.stock_off == 0 && c.points_off == 0 && c.money_off == 0;

    printf("stock: %lld rows, %lld units, %lld off\n"
           "points: %lld members, %lld points, %lld off\n"
           "money: %lld orders, %lld.%02lld paid, %lld off\n"
           "ledger: %s\n",
           c.stock_rows, c.stock_units, c.stock_off, c.members, c.points,
           c.points_off, c.orders, c.paid_fen / 100, c.paid_fen % 100,
           c.money_off, ok ? "balanced" : "NOT balanced");

    return ok ? 0 : 1;
}


/*
 * Parses the command line; returns -1 to go on, else the exit code. Kept
 * whole: one getopt loop.
 */
static int
newcore_args(int argc, char **argv, newcore_args_t *args)
{
    int                    opt;
    char                  *end;
    cutover_httpd_addr_t   addr;
    cutover_httpd_error_t  herr;

    static const struct option  options[] = {
        { "listen", required_argument, NULL, 'l' },
        { "db", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 't' },
        { "init-schema", no_argument, NULL, 'i' },
        { "seed", no_argument, NULL, 's' },
        { "seed-stores", required_argument, NULL, 'S' },
        { "seed-skus", required_argument, NULL, 'K' },
        { "check-ledger", no_argument, NULL, 'c' },
        { "idempotency-ttl", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        CUTOVER_HTTPD_LONG_OPTIONS,
        { NULL, 0, NULL, 0 }
    };

    memset(args, 0, sizeof(*args));
    args->threads = NEWCORE_THREADS_DEFAULT;
    args->idem_ttl = NEWCORE_IDEM_TTL;
    cutover_httpd_limits_default(&args->limits);

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            args->listen = optarg;
            break;
        case 'd':
            args->db = optarg;
            break;
        case 't':
            args->threads = (int) strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || args->threads < 1
                || args->threads > NEWCORE_THREADS_MAX)
            {
                fprintf(stderr, "cutover-newcore: --threads must be 1-%d\n",
                        NEWCORE_THREADS_MAX);
                return 2;
            }
            break;
        case 'i':
            args->init_schema = 1;
            break;
        case 's':
            args->seed = 1;
            break;
        case 'S':
        case 'K':
            if (newcore_seed_arg(opt, optarg, args) != 0) {
                return 2;
            }
            break;
        case 'c':
            args->check = 1;
            break;
        case 'T':
            if (cutover_httpd_parse_duration(optarg, &args->idem_ttl)
                != CUTOVER_HTTPD_OK)
            {
                fprintf(stderr, "cutover-newcore: bad --idempotency-ttl "
                        "\"%s\" (want a duration: 7d, 12h, 30m, 45s)\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            newcore_usage(stdout);
            return 0;
        case CUTOVER_HTTPD_OPT_MAX_CONNECTIONS:
        case CUTOVER_HTTPD_OPT_PER_IP:
        case CUTOVER_HTTPD_OPT_REQUEST_TIMEOUT:
            if (cutover_httpd_option(&args->limits, opt, optarg, &herr)
                != CUTOVER_HTTPD_OK)
            {
                fprintf(stderr, "cutover-newcore: %s\n", herr.message);
                return 2;
            }
            break;
        default:
            newcore_usage(stderr);
            return 2;
        }
    }

    if ((args->seed_stores || args->seed_skus) && !args->seed) {
        fprintf(stderr, "cutover-newcore: --seed-stores and --seed-skus"
                " go with --seed\n");
        return 2;
    }

    if (optind != argc || args->db == NULL
        || (args->listen == NULL && !args->init_schema && !args->seed
            && !args->check))
    {
        newcore_usage(stderr);
        return 2;
    }

    if (args->listen != NULL
        && cutover_httpd_parse_listen(args->listen, &addr, &herr)
           != CUTOVER_HTTPD_OK)
    {
        fprintf(stderr, "cutover-newcore: bad --listen: %s\n", herr.message);
        return 2;
    }

    /*
     * libmicrohttpd ties a connection to one pool thread: with a thread
     * per database connection a request would wait behind another
     * connection's on its thread while other connections sit idle.  Four
     * threads per database connection queue requests in the pool's fair
     * line instead, as a thread per client connection did.
     */
    args->limits.threads = (unsigned) (4 * args->threads > 256 ? 256
                                       : 4 * args->threads);

    return -1;
}


/* --seed-stores (1-999) and --seed-skus (1-99999): the ids' widths. */
static int
newcore_seed_arg(int opt, const char *arg, newcore_args_t *args)
{
    long   v;
    char  *end;

    v = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < 1
        || v > (opt == 'S' ? 999 : 99999))
    {
        fprintf(stderr, "cutover-newcore: --seed-%s must be 1-%d\n",
                opt == 'S' ? "stores" : "skus", opt == 'S' ? 999 : 99999);
        return 2;
    }
    if (opt == 'S') {
        args->seed_stores = (int) v;
    } else {
        args->seed_skus = (int) v;
    }
    return 0;
}


/* --init-schema and --seed; returns NEWCORE_OK or NEWCORE_ERROR. */
static int
newcore_setup_db(const newcore_args_t *args)
{
    int              loaded;
    newcore_error_t  err;

    memset(&err, 0, sizeof(err));

    if (args->init_schema) {
        if (newcore_db_init_schema(args->db, &err) != NEWCORE_OK) {
            newcore_log(NULL, "ERROR", "init-schema: %s", err.message);
            return NEWCORE_ERROR;
        }
        newcore_log(NULL, "INFO", "schema is at version 1");
    }

    if (args->seed && (args->seed_stores || args->seed_skus)) {
        if (newcore_seed_sized(args->db, args->seed_stores
                               ? args->seed_stores : NEWCORE_SEED_STORES,
                               args->seed_skus
                               ? args->seed_skus : NEWCORE_SEED_SKUS,
                               &loaded, &err) != NEWCORE_OK)
        {
            newcore_log(NULL, "ERROR", "seed: %s", err.message);
            return NEWCORE_ERROR;
        }
        newcore_log(NULL, "INFO", loaded ? "seeded the data set"
                                         : "a data set is already loaded");

    } else if (args->seed) {
        if (newcore_db_seed(args->db, &loaded, &err) != NEWCORE_OK) {
            newcore_log(NULL, "ERROR", "seed: %s", err.message);
            return NEWCORE_ERROR;
        }
        newcore_log(NULL, "INFO", loaded ? "seeded the demo data set"
                                         : "demo data set already loaded");
    }

    return NEWCORE_OK;
}


/* Serves until SIGTERM or SIGINT; returns the exit code. */
static int
newcore_serve(const newcore_args_t *args)
{
    int                sig, rc;
    sigset_t           set;
    newcore_error_t    err;
    newcore_pool_t    *pool;
    newcore_server_t  *server;
    cutover_purge_t   *purge;

    server = NULL;
    purge = NULL;
    rc = 1;

    /* worker threads inherit this mask; only sigwait() sees the signals */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pool = newcore_pool_new(args->db, args->threads, newcore_log, NULL,
                            &err);
    if (pool == NULL) {
        newcore_log(NULL, "ERROR", "%s", err.message);
        goto cleanup;
    }

    server = newcore_server_new(args->listen, &args->limits, pool,
                                newcore_log, NULL, &err);
    if (server == NULL) {
        newcore_log(NULL, "ERROR", "%s", err.message);
        goto cleanup;
    }

    purge = cutover_purge_start("cutover-newcore", args->db,
                                "stored idempotent answers",
                                NEWCORE_PURGE_SQL, args->idem_ttl);
    if (purge == NULL) {
        newcore_log(NULL, "ERROR", "cannot start the idempotency purge");
        goto cleanup;
    }

    newcore_log(NULL, "INFO", "listening on %s with %d database connections "
                "and %u threads, at most %u connections (%u per address), "
                "request timeout %us, idempotency ttl %llus", args->listen,
                args->threads, args->limits.threads,
                args->limits.max_connections,
                args->limits.per_ip, args->limits.request_timeout,
                (unsigned long long) args->idem_ttl);

    if (sigwait(&set, &sig) != 0) {
        sig = SIGTERM;
    }

    newcore_log(NULL, "INFO", "%s received, stopping",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;

cleanup:

    cutover_purge_stop(purge);
    newcore_server_free(server);
    newcore_pool_free(pool);
    if (rc == 0) {
        newcore_log(NULL, "INFO", "stopped");
    }
    return rc;
}


int
main(int argc, char **argv)
{
    int             rc;
    newcore_args_t  args;

    rc = newcore_args(argc, argv, &args);
    if (rc >= 0) {
        return rc;
    }

    if (newcore_setup_db(&args) != NEWCORE_OK) {
        return 1;
    }

    if (args.check) {
        return newcore_check_ledger(args.db);
    }

    if (args.listen == NULL) {
        return 0;
    }

    return newcore_serve(&args);
}
