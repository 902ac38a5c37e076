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
#include "compare/compare_json.h"

static const char *usage =
    "usage: cutover-compare [--rules FILE] [--route 'METHOD /path'] A B\n"
    "       cutover-compare learn [--rules FILE] [--route 'METHOD /path']\n"
    "                             [--min-count N] FILE1 FILE2 [FILE...]\n"
    "\n"
    "Compares the bodies in files A and B (JSON or BSON, detected) under the\n"
    "rules of the route and prints one JSON line per difference:\n"
    "  {\"path\": \"$.lines[2].qty\", \"kind\": \"value\", \"a\": 1, \"b\": 2}\n"
    "Exit 0 equal, 1 different, 2 error (unparseable names the side).\n"
    "\n"
    "learn: FILE1.. are answers of ONE system to the same request; paths\n"
    "that differ between them are noise.  Prints {\"pairs\", \"noisy\": [...],\n"
    "\"rules\": {...}} where \"rules\" is a rules file of ignore rules.\n";


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


static void
compare_print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}


static int
compare_learn(const compare_rules_t *rules, const char *route, int argc,
    char **argv, unsigned long min_count)
{
    compare_noise_t   *noise;
    compare_result_t  *res;
    char              *report;
    int                i, rc;

    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    noise = compare_noise_new();
    if (noise == NULL) {
        return 2;
    }
    for (i = 1; i < argc; i++) {
        res = compare_files(rules, route, argv[0], argv[i], &rc);
        if (res == NULL || rc == 2) {
            compare_result_free(res);
            compare_noise_free(noise);
            return 2;
        }
        compare_noise_add(noise, NULL, res);
        compare_result_free(res);
    }
    report = compare_noise_report(noise, min_count);
    compare_noise_free(noise);
    if (report == NULL) {
        return 2;
    }
    printf("%s\n", report);
    free(report);
    return 0;
}


int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rules", required_argument, NULL, 'r' },
        { "route", required_argument, NULL, 'R' },
        { "min-count", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char            *rules_path = NULL, *route = NULL;
    compare_rules_t       *rules = NULL;
    compare_result_t      *res = NULL;
    const compare_diff_t  *d;
    compare_error_t        err;
    unsigned long          min_count = 1;
    int                    c, rc = 2, learn = 0;
    size_t                 i;
    char                  *end;

    if (argc > 1 && strcmp(argv[1], "learn") == 0) {
        learn = 1;
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    while ((c = getopt_long(argc, argv, "r:R:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            rules_path = optarg;
            break;
        case 'R':
            route = optarg;
            break;
        case 'm':
            errno = 0;
            min_count = strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || min_count == 0) {
                fprintf(stderr, "cutover-compare: bad --min-count\n");
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
    if ((!learn && argc - optind != 2) || (learn && argc - optind < 2)) {
        fputs(usage, stderr);
        return 2;
    }
    rules = compare_rules_load(rules_path, &err);
    if (rules == NULL) {
        fprintf(stderr, "cutover-compare: %s\n", err.message);
        return 2;
    }
    if (learn) {
        rc = compare_learn(rules, route, argc - optind, argv + optind,
                           min_count);
        compare_rules_free(rules);
        return rc;
    }
    res = compare_files(rules, route, argv[optind], argv[optind + 1], &rc);
    for (i = 0; res != NULL && (d = compare_result_diff(res, i)) != NULL; i++)
    {
        printf("{\"path\": ");
        compare_print_json_string(d->path);
        printf(", \"kind\": \"%s\", \"a\": %s, \"b\": %s}\n",
               compare_diff_kind_name(d->kind), d->a ? d->a : "null",
               d->b ? d->b : "null");
    }
    if (res != NULL && compare_result_ndiffs(res) > i) {
        fprintf(stderr, "cutover-compare: %zu more differences not shown\n",
                compare_result_ndiffs(res) - i);
    }
    compare_result_free(res);
    compare_rules_free(rules);
    return rc;
}
