/*
 * cutover-compare: compare two bodies (JSON or BSON) by hand or from
 * scripts, with the same rules as the shadow daemon; or learn noisy paths
 * from several answers of one system.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare/compare.h"
#include "common/cutover_json.h"
#include "compare/compare_json.h"
#include "compare/compare_store.h"

/* One line of a "store" input: a pair and the strings it borrows. */
typedef struct {
    compare_pair_t   pair;
    char            *strs[10];
    char            *a;
    char            *b;
    size_t           la;
    size_t           lb;
} compare_line_t;

typedef struct {
    const char  *rules;
    const char  *route;
    const char  *db;
    const char  *outbox;
    const char  *write_rules;
    int          batch;
    int          min_count;
    int          learn;
    int          store;
} compare_args_t;

static const char *usage =
    "usage: cutover-compare [--rules FILE] [--route 'METHOD /path'] A B\n"
    "       cutover-compare learn [--rules FILE] [--route 'METHOD /path']\n"
    "                             [--min-count N] [--write-rules OUT]\n"
    "                             FILE1 FILE2 [FILE...]\n"
    "       cutover-compare store --db CONNINFO [--outbox DIR] [--rules FILE]\n"
    "                             [--batch N] PAIRS.jsonl\n"
    "\n"
    "Compares the bodies in files A and B (JSON or BSON, detected) under the\n"
    "rules of the route and prints one JSON line per difference:\n"
    "  {\"path\": \"$.lines[2].qty\", \"kind\": \"value\", \"a\": 1,"
    " \"b\": 2}\n"
    "Exit 0 equal, 1 different, 2 error (unparseable names the side).\n"
    "\n"
    "learn: FILE1.. are answers of ONE system to the same request; paths\n"
    "that differ between them are noise.  Prints {\"pairs\",\n"
    "\"noisy\": [...], "
    "\"rules\": {...}} where \"rules\" is a rules file of ignore rules;\n"
    "--write-rules OUT writes that rules file to OUT, ready for --rules.\n"
    "\n"
    "store: compares each pair of PAIRS.jsonl (one object a line: record_id,\n"
    "time_us, zone, method, uri, store, channel, side, status_a, status_b,\n"
    "a, b; bodies as JSON strings) and writes the results to the result\n"
    "store, through the outbox while PostgreSQL is away.  Prints\n"
    "{\"stored\", \"pending\", \"written\", \"rejected\"}.\n";


static int compare_read_file(const char *path, uint8_t **data, size_t *len);
static void compare_fill(compare_response_t *r, const uint8_t *body,
    size_t len);
static compare_result_t *compare_files(const compare_rules_t *rules,
    const char *route, const char *fa, const char *fb, int *rc);
static int compare_learn(const compare_rules_t *rules,
    const compare_args_t *args, int argc, char **argv);
static void compare_line_free(compare_line_t *l);
static int compare_line_parse(const char *text, size_t len, compare_line_t *l);
static int compare_args(int argc, char **argv, compare_args_t *args);
static int compare_print(const compare_rules_t *rules, const char *route,
    const char *fa, const char *fb);
static int compare_store_file(const compare_rules_t *rules, const char *db,
    const char *outbox, long batch, const char *path);


static int
compare_read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE    *f = fopen(path, "rb");
    size_t   cap = 65536, n;
    uint8_t *buf, *nb;

    *data = NULL;
    *len = 0;
    if (f == NULL) {
        fprintf(stderr, "cutover-compare: %s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(cap);
    while (buf != NULL) {
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0 || *len > COMPARE_MAX_BODY) {
            break;
        }
        if (*len == cap) {
            nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (buf == NULL) {
        fprintf(stderr, "cutover-compare: %s: out of memory\n", path);
        return -1;
    }
    *data = buf;
    return 0;
}


static void
compare_fill(compare_response_t *r, const uint8_t *body, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->status = 200;
    r->body = body;
    r->body_len = len;
    r->latency_ms = -1;
    r->content_type = compare_bson_detect(body, len) ? "application/bson"
                                                     : "application/json";
}


static compare_result_t *
compare_files(const compare_rules_t *rules, const char *route, const char *fa,
    const char *fb, int *rc)
{
    uint8_t           *a = NULL, *b = NULL;
    size_t             la, lb;
    compare_pair_t     pair;
    compare_result_t  *res = NULL;
    compare_error_t    err;
    char               method[32] = "GET";
    const char        *uri = "/";
    const char        *sp;

    *rc = 2;
    if (route != NULL) {
        sp = strchr(route, ' ');
        if (sp == NULL || (size_t) (sp - route) >= sizeof(method)) {
            fprintf(stderr, "cutover-compare: --route must be "
                            "'METHOD /path'\n");
            return NULL;
        }
        memcpy(method, route, (size_t) (sp - route));
        method[sp - route] = '\0';
        uri = sp + 1;
    }
    if (compare_read_file(fa, &a, &la) != 0
        || compare_read_file(fb, &b, &lb) != 0)
    {
        goto done;
    }
    if (la == 0 || lb == 0) {
        /* a file holds a body: an empty one is not JSON */
        fprintf(stderr, "cutover-compare: unparseable/empty body on the %s "
                "side\n", la == 0 ? "A" : "B");
        goto done;
    }
    memset(&pair, 0, sizeof(pair));
    pair.record_id = "00000000000000000000000000000000";
    pair.method = method;
    pair.uri = uri;
    compare_fill(&pair.primary, a, la);
    compare_fill(&pair.shadow, b, lb);
    res = compare_pair_run(rules, &pair, &err);
    if (res == NULL) {
        fprintf(stderr, "cutover-compare: %s\n", err.message);
        goto done;
    }
    switch (compare_result_verdict(res)) {
    case COMPARE_VERDICT_EQUAL:
        *rc = 0;
        break;
    case COMPARE_VERDICT_DIFFERENT:
        *rc = 1;
        break;
    default:
        fprintf(stderr, "cutover-compare: %s\n", compare_result_detail(res));
        *rc = 2;
    }
done:
    free(a);
    free(b);
    return res;
}


static int
compare_learn(const compare_rules_t *rules, const compare_args_t *args,
    int argc, char **argv)
{
    compare_noise_t   *noise;
    compare_result_t  *res;
    char              *report, *learned = NULL;
    int                i, rc = 2;
    FILE              *f;

    noise = compare_noise_new();
    if (noise == NULL) {
        return 2;
    }
    /* every answer against the first: what differs is noise */
    for (i = 1; i < argc; i++) {
        res = compare_files(rules, args->route, argv[0], argv[i], &rc);
        if (res == NULL || rc == 2) {
            compare_result_free(res);
            compare_noise_free(noise);
            return 2;
        }
        compare_noise_add(noise, NULL, res);
        compare_result_free(res);
    }
    rc = 2;
    report = compare_noise_report(noise, (uint64_t) args->min_count);
    if (args->write_rules != NULL) {
        learned = compare_noise_rules(noise, (uint64_t) args->min_count);
        f = learned ? fopen(args->write_rules, "w") : NULL;
        if (f == NULL || fprintf(f, "%s\n", learned) < 0 || fclose(f) != 0) {
            fprintf(stderr, "cutover-compare: %s: %s\n", args->write_rules,
                    strerror(errno));
            goto done;
        }
    }
    if (report != NULL) {
        printf("%s\n", report);
        rc = 0;
    }
done:
    free(report);
    free(learned);
    compare_noise_free(noise);
    return rc;
}


static void
compare_line_free(compare_line_t *l)
{
    int  i;

    for (i = 0; i < 10; i++) {
        free(l->strs[i]);
    }
    free(l->a);
    free(l->b);
}


static int
compare_line_parse(const char *text, size_t len, compare_line_t *l)
{
    static const char *keys[] = { "record_id", "zone", "method", "uri",
        "store", "channel", "side", NULL };
    bson_t            doc;
    bson_iter_t       it, f;
    compare_error_t   err;
    int               i;
    uint32_t          n;
    const char       *s;

    memset(l, 0, sizeof(*l));
    if (compare_json_parse((const uint8_t *) text, len, &doc, &err)
        != COMPARE_PARSE_OK)
    {
        fprintf(stderr, "cutover-compare: bad line: %s\n", err.message);
        return -1;
    }
    if (!bson_iter_init_find(&it, &doc, "$") || !bson_iter_recurse(&it, &f)) {
        bson_destroy(&doc);
        return -1;
    }
    l->pair.primary.status = 200;
    l->pair.shadow.status = 200;
    l->pair.primary.latency_ms = -1;
    l->pair.shadow.latency_ms = -1;
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);

        if (BSON_ITER_HOLDS_UTF8(&f)) {
            s = bson_iter_utf8(&f, &n);
            for (i = 0; keys[i] != NULL && strcmp(keys[i], k) != 0; i++) {
                /* find */
            }
            if (keys[i] != NULL) {
                free(l->strs[i]);
                l->strs[i] = bson_strndup(s, n);
            } else if (strcmp(k, "a") == 0) {
                l->a = bson_strndup(s, n);
                l->la = n;
            } else if (strcmp(k, "b") == 0) {
                l->b = bson_strndup(s, n);
                l->lb = n;
            }
        } else if (strcmp(k, "status_a") == 0) {
            l->pair.primary.status = (int) bson_iter_as_int64(&f);
        } else if (strcmp(k, "status_b") == 0) {
            l->pair.shadow.status = (int) bson_iter_as_int64(&f);
        } else if (strcmp(k, "time_us") == 0) {
            l->pair.time_us = bson_iter_as_int64(&f);
        }
    }
    bson_destroy(&doc);
    l->pair.record_id = l->strs[0];
    l->pair.zone = l->strs[1] ? l->strs[1] : "";
    l->pair.method = l->strs[2] ? l->strs[2] : "GET";
    l->pair.uri = l->strs[3] ? l->strs[3] : "/";
    l->pair.store = l->strs[4] ? l->strs[4] : "";
    l->pair.channel = l->strs[5] ? l->strs[5] : "";
    l->pair.side_served = l->strs[6] ? l->strs[6] : "legacy";
    l->pair.primary.content_type = "application/json";
    l->pair.shadow.content_type = "application/json";
    l->pair.primary.body = (const uint8_t *) l->a;
    l->pair.primary.body_len = l->la;
    l->pair.shadow.body = (const uint8_t *) l->b;
    l->pair.shadow.body_len = l->lb;
    if (l->pair.record_id == NULL) {
        fprintf(stderr, "cutover-compare: a line has no record_id\n");
        return -1;
    }
    return 0;
}


static int
compare_store_file(const compare_rules_t *rules, const char *db,
    const char *outbox, long batch, const char *path)
{
    FILE              *f;
    char              *line = NULL;
    size_t             cap = 0, stored = 0, queued = 0;
    ssize_t            n;
    compare_store_t   *st;
    compare_error_t    err;
    compare_line_t     l;
    compare_result_t  *res;
    int                rc = 2;

    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cutover-compare: %s: %s\n", path, strerror(errno));
        return 2;
    }
    st = compare_store_open(db, outbox, &err);
    if (st == NULL) {
        fprintf(stderr, "cutover-compare: %s\n", err.message);
        goto done;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        if (n <= 1) {
            continue;
        }
        if (compare_line_parse(line, (size_t) n, &l) != 0) {
            compare_line_free(&l);
            goto done;
        }
        res = compare_pair_run(rules, &l.pair, &err);
        if (res == NULL
            || compare_store_put(st, &l.pair, res, &err) != COMPARE_OK)
        {
            fprintf(stderr, "cutover-compare: %s\n", err.message);
            compare_result_free(res);
            compare_line_free(&l);
            goto done;
        }
        compare_result_free(res);
        compare_line_free(&l);
        if (++queued == (size_t) batch) {
            if (compare_store_flush(st, &err) != COMPARE_OK) {
                fprintf(stderr, "cutover-compare: %s\n", err.message);
                goto done;
            }
            stored += queued;
            queued = 0;
        }
    }
    if (compare_store_flush(st, &err) != COMPARE_OK) {
        fprintf(stderr, "cutover-compare: %s\n", err.message);
        goto done;
    }
    stored += queued;
    printf("{\"stored\": %zu, \"pending\": %llu, \"written\": %llu, "
           "\"rejected\": %llu}\n", stored,
           (unsigned long long) compare_store_pending(st),
           (unsigned long long) compare_store_written(st),
           (unsigned long long) compare_store_rejected(st));
    rc = 0;
done:
    free(line);
    compare_store_free(st);
    if (f != stdin) {
        fclose(f);
    }
    return rc;
}


/* Options into args; -1 to go on, else the exit code. */
static int
compare_args(int argc, char **argv, compare_args_t *args)
{
    static const struct option opts[] = {
        { "rules", required_argument, NULL, 'r' },
        { "route", required_argument, NULL, 'R' },
        { "min-count", required_argument, NULL, 'm' },
        { "db", required_argument, NULL, 'd' },
        { "outbox", required_argument, NULL, 'o' },
        { "batch", required_argument, NULL, 'b' },
        { "write-rules", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    char  *end;
    int    c, n;

    while ((c = getopt_long(argc, argv, "r:R:m:d:o:b:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            args->rules = optarg;
            break;
        case 'R':
            args->route = optarg;
            break;
        case 'd':
            args->db = optarg;
            break;
        case 'o':
            args->outbox = optarg;
            break;
        case 'w':
            args->write_rules = optarg;
            break;
        case 'm':
        case 'b':
            errno = 0;
            n = (int) strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || n <= 0) {
                fprintf(stderr, "cutover-compare: bad --%s\n",
                        c == 'm' ? "min-count" : "batch");
                return 2;
            }
            *(c == 'm' ? &args->min_count : &args->batch) = n;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    n = argc - optind;
    if ((!args->learn && !args->store && n != 2) || (args->learn && n < 2)
        || (args->store && (n != 1 || args->db == NULL))
        || (!args->store && (args->db != NULL || args->outbox != NULL))
        || (!args->learn && args->write_rules != NULL))
    {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}


/* Compare A and B and print the differences as JSON lines. */
static int
compare_print(const compare_rules_t *rules, const char *route,
    const char *fa, const char *fb)
{
    compare_result_t      *res;
    const compare_diff_t  *d;
    size_t                 i;
    int                    rc;

    res = compare_files(rules, route, fa, fb, &rc);
    for (i = 0; res != NULL && (d = compare_result_diff(res, i)) != NULL; i++)
    {
        printf("{\"path\": ");
        cutover_json_fprint(stdout, d->path);
        printf(", \"kind\": \"%s\", \"a\": %s, \"b\": %s}\n",
               compare_diff_kind_name(d->kind), d->a ? d->a : "null",
               d->b ? d->b : "null");
    }
    if (res != NULL && compare_result_ndiffs(res) > i) {
        fprintf(stderr, "cutover-compare: %zu more differences not shown\n",
                compare_result_ndiffs(res) - i);
    }
    compare_result_free(res);
    return rc;
}


int
main(int argc, char **argv)
{
    compare_args_t    args;
    compare_rules_t  *rules;
    compare_error_t   err;
    int               rc;

    memset(&args, 0, sizeof(args));
    args.batch = 500;
    args.min_count = 1;
    if (argc > 1 && (strcmp(argv[1], "learn") == 0
                     || strcmp(argv[1], "store") == 0))
    {
        args.learn = argv[1][0] == 'l';
        args.store = argv[1][0] == 's';
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    rc = compare_args(argc, argv, &args);
    if (rc >= 0) {
        return rc;
    }
    rules = compare_rules_load(args.rules, &err);
    if (rules == NULL) {
        fprintf(stderr, "cutover-compare: %s\n", err.message);
        return 2;
    }
    if (args.store) {
        rc = compare_store_file(rules, args.db, args.outbox, args.batch,
                                argv[optind]);
    } else if (args.learn) {
        rc = compare_learn(rules, &args, argc - optind, argv + optind);
    } else {
        rc = compare_print(rules, args.route, argv[optind], argv[optind + 1]);
    }
    compare_rules_free(rules);
    return rc;
}
