/*
 * cutoverctl: status, dial, ramp, rollback, guard and history of a cutover
 * zone through the signed admin API, and an offline check of the audit
 * trail.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bson/bson.h>
#include <curl/curl.h>

#include "common/cutover_admin_call.h"
#include "common/cutover_guard.h"
#include "common/cutover_hash.h"
#include "ngx_module/cutover_auth.h"
#include "ngx_module/cutover_dial.h"


#define EXIT_OK          0
#define EXIT_FAIL        1
#define EXIT_USAGE       2
#define EXIT_ROLLED_BACK 3
#define EXIT_BREAKS      4      /* audit verify: breaks, all accepted */
#define EXIT_UNACCEPTED  5      /* audit verify: a break not accepted */
#define EXIT_DISAGREE    4      /* status of a fleet: gateways disagree */


typedef struct {
    const char     *url;
    const char     *key_id;
    const char     *key_file;
    int             json;
    cutover_key_t   key;
} ctl_t;

typedef struct {
    char    *data;
    size_t   len;
} ctl_buf_t;


static void ctl_print_guard(const bson_t *doc, int always);


static const char  *usage_text =
    "usage: cutoverctl [--url URL] [--key-id ID] [--key-file FILE]"
    " [-o text|json] COMMAND\n"
    "\n"
    "commands:\n"
    "  status                      exit 0 active, 3 rolled back, 1 error\n"
    "                              (several URLs: 0 all active on one\n"
    "                              version, 3 all rolled back, 4 they\n"
    "                              disagree, 1 any unreachable)\n"
    "  dial PERCENT [--rule ID] [--store S1,S2] [--channel C1,C2]\n"
    "       [--expect-version N] --reason TEXT\n"
    "  ramp TO --step S --every DURATION [--rule ID] --reason TEXT\n"
    "                              raise the dial by S every DURATION (10m,\n"
    "                              30s) up to TO percent\n"
    "  rollback --reason TEXT\n"
    "  guard                       the guard's window figures, the ramps and\n"
    "                              the last trip\n"
    "  history [--limit N] [--all]  changes, newest first (--all: refusals"
    " too)\n"
    "  metrics\n"
    "  audit verify FILE           check the hash chain of an audit trail:\n"
    "                              exit 0 intact, 4 intact but for recorded\n"
    "                              breaks (all accepted), 5 a recorded break\n"
    "                              not accepted yet, 1 broken\n"
    "  audit accept --reason TEXT  accept the trail's recorded break (admin\n"
    "                              key): dial is allowed again\n"
    "\n"
    "URL is the admin location, e.g. http://127.0.0.1:8080/cutover/ or\n"
    "http://[::1]:8080/cutover/.  For a fleet, --url takes several,\n"
    "comma separated: status and rollback go to each gateway and report\n"
    "each (rollback exits 1 unless every one confirmed it).\n"
    "The key file holds the operator's line of the gateway's keys file\n"
    "(\"<key-id> <role> <hex secret>\") or just the hex secret.\n"
    "CUTOVER_URL, CUTOVER_KEY_ID and CUTOVER_KEY_FILE stand in for the\n"
    "flags.\n";


static int
usage(const char *msg)
{
    if (msg) {
        fprintf(stderr, "cutoverctl: %s\n", msg);
    }

    fputs(usage_text, stderr);
    return EXIT_USAGE;
}


static int
ctl_load_key(ctl_t *c)
{
    FILE             *f;
    char              line[512], hexline[600];
    int               rc;
    cutover_error_t   err;

    f = fopen(c->key_file, "r");
    if (f == NULL) {
        fprintf(stderr, "cutoverctl: cannot open key file %s: %s\n",
                c->key_file, strerror(errno));
        return -1;
    }

    rc = 0;

    while (fgets(line, sizeof(line), f)) {
        rc = cutover_key_parse_line(line, strlen(line), &c->key, &err);

        if (rc == -1 && c->key_id
            && strspn(line, "0123456789abcdefABCDEF") >= 32)
        {
            /* a bare secret: give it the id from --key-id */
            line[strspn(line, "0123456789abcdefABCDEF")] = '\0';
            snprintf(hexline, sizeof(hexline), "%s admin %s", c->key_id,
                     line);
            rc = cutover_key_parse_line(hexline, strlen(hexline), &c->key,
                                        &err);
        }

        if (rc != 0) {
            break;
        }
    }

    fclose(f);

    if (rc != 1) {
        fprintf(stderr, "cutoverctl: key file %s: %s\n", c->key_file,
                rc == 0 ? "no key in it" : err.message);
        return -1;
    }

    if (c->key_id && strcmp(c->key_id, c->key.id) != 0) {
        fprintf(stderr, "cutoverctl: key file %s holds key \"%s\", not "
                "\"%s\"\n", c->key_file, c->key.id, c->key_id);
        return -1;
    }

    return 0;
}


static size_t
ctl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    char       *p;
    ctl_buf_t  *b = userdata;
    size_t      n = size * nmemb;

    p = realloc(b->data, b->len + n + 1);
    if (p == NULL) {
        return 0;
    }

    memcpy(p + b->len, ptr, n);
    b->data = p;
    b->len += n;
    b->data[b->len] = '\0';

    return n;
}


/* One signed call; returns the HTTP status, or -1 when unreachable. */
static long
ctl_call(ctl_t *c, const char *method, const char *call, const char *body,
    ctl_buf_t *out)
{
    long                    status;
    char                    url[2048];
    cutover_error_t         err;
    cutover_admin_client_t  cl = { c->key.id, c->key.secret,
                                   c->key.secret_len, 10000 };

    snprintf(url, sizeof(url), "%s%s%s", c->url,
             c->url[strlen(c->url) - 1] == '/' ? "" : "/", call);

    status = cutover_admin_call(&cl, method, url, body, ctl_write, out,
                                &err);
    if (status < 0) {
        fprintf(stderr, "cutoverctl: %s: %s\n", url, err.message);
    }

    return status;
}


static const char *
ctl_str(const bson_t *doc, const char *path)
{
    bson_iter_t  it;

    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it)
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        return bson_iter_utf8(&it, NULL);
    }

    return "";
}


static int64_t
ctl_int(const bson_t *doc, const char *path)
{
    bson_iter_t  it;

    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it)
        && BSON_ITER_HOLDS_NUMBER(&it))
    {
        return bson_iter_as_int64(&it);
    }

    return 0;
}


/* "S001,S002" of an array, or "-" */
static void
ctl_list(bson_iter_t *rule, const char *key, char *buf, size_t cap)
{
    size_t       n = 0;
    bson_iter_t  it, arr;

    buf[0] = '\0';

    if (bson_iter_find_descendant(rule, key, &it)
        && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr))
    {
        while (bson_iter_next(&arr) && n + 40 < cap) {
            n += (size_t) snprintf(buf + n, cap - n, "%s%s", n ? "," : "",
                                   bson_iter_utf8(&arr, NULL));
        }
    }

    if (n == 0) {
        snprintf(buf, cap, "-");
    }
}


static void
ctl_print_state(const bson_t *doc)
{
    char         stores[256], channels[256], pct[32];
    bson_iter_t  it, rules, rule, f;

    printf("zone %s  version %lld  state %s\n", ctl_str(doc, "zone"),
           (long long) ctl_int(doc, "version"), ctl_str(doc, "state"));
    printf("%-20s %8s %12s %12s  %-24s %s\n", "RULE", "NEW %", "REQ NEW",
           "REQ LEGACY", "STORES", "CHANNELS");

    if (!bson_iter_init_find(&it, doc, "rules") || !bson_iter_recurse(&it,
                                                                     &rules))
    {
        return;
    }

    while (bson_iter_next(&rules)) {
        bson_t  r;
        const uint8_t *data;
        uint32_t len;

        bson_iter_document(&rules, &len, &data);
        if (!bson_init_static(&r, data, len)) {
            continue;
        }

        bson_iter_init(&rule, &r);
        ctl_list(&rule, "stores", stores, sizeof(stores));
        bson_iter_init(&rule, &r);
        ctl_list(&rule, "channels", channels, sizeof(channels));

        pct[0] = '\0';
        if (bson_iter_init_find(&f, &r, "percent")) {
            snprintf(pct, sizeof(pct), "%g", bson_iter_as_double(&f));
        }

        printf("%-20s %8s %12lld %12lld  %-24.24s %s\n", ctl_str(&r, "id"),
               pct, (long long) ctl_int(&r, "requests.new"),
               (long long) ctl_int(&r, "requests.legacy"), stores, channels);
    }

    if (ctl_str(doc, "fleet.gateway")[0]) {
        bson_iter_t  c;

        printf("fleet: gateway %s, %s, version seen %lld%s\n",
               ctl_str(doc, "fleet.gateway"),
               bson_iter_init(&c, doc)
               && bson_iter_find_descendant(&c, "fleet.connected", &c)
               && bson_iter_as_bool(&c) ? "connected" : "NOT connected",
               (long long) ctl_int(doc, "fleet.version_seen"),
               bson_iter_init(&c, doc)
               && bson_iter_find_descendant(&c, "fleet.rollback_pending", &c)
               && bson_iter_as_bool(&c)
               ? ", a rollback waits to be written to it" : "");
    }

    if (bson_iter_init_find(&it, doc, "counters")) {
        printf("requests: new %lld, legacy %lld; empty key %lld; "
               "auth failures %lld; changes accepted %lld, refused %lld\n",
               (long long) ctl_int(doc, "counters.requests_new"),
               (long long) ctl_int(doc, "counters.requests_legacy"),
               (long long) ctl_int(doc, "counters.empty_key"),
               (long long) ctl_int(doc, "counters.auth_failures"),
               (long long) ctl_int(doc, "counters.changes_accepted"),
               (long long) ctl_int(doc, "counters.changes_refused"));
    }

    ctl_print_guard(doc, 0);
}


/* The ramps of the rules and the guard's view of a status answer. */
static void
ctl_print_guard(const bson_t *doc, int always)
{
    char          pct[2][32];
    time_t        t;
    bson_iter_t   it, arr, f;
    struct tm     tm;
    char          when[32];

    if (bson_iter_init_find(&it, doc, "rules")
        && bson_iter_recurse(&it, &arr))
    {
        while (bson_iter_next(&arr)) {
            bson_t          r;
            uint32_t        len;
            const uint8_t  *data;

            bson_iter_document(&arr, &len, &data);
            if (!bson_init_static(&r, data, len)
                || !bson_iter_init_find(&f, &r, "ramp")
                || !BSON_ITER_HOLDS_DOCUMENT(&f))
            {
                continue;
            }

            pct[0][0] = pct[1][0] = '\0';
            if (bson_iter_init(&f, &r)
                && bson_iter_find_descendant(&f, "ramp.to", &f))
            {
                snprintf(pct[0], sizeof(pct[0]), "%g",
                         bson_iter_as_double(&f));
            }

            if (bson_iter_init(&f, &r)
                && bson_iter_find_descendant(&f, "ramp.step", &f))
            {
                snprintf(pct[1], sizeof(pct[1]), "%g",
                         bson_iter_as_double(&f));
            }

            t = (time_t) ctl_int(&r, "ramp.next_at");
            gmtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

            printf("ramp: rule %s to %s%% by %s%% every %llds, next step "
                   "at %s\n", ctl_str(&r, "id"), pct[0], pct[1],
                   (long long) ctl_int(&r, "ramp.every"), when);
        }
    }

    if (!bson_iter_init_find(&it, doc, "guard")
        || !BSON_ITER_HOLDS_DOCUMENT(&it))
    {
        if (always) {
            printf("no cutover_guard on this zone\n");
        }

        return;
    }

    printf("guard: window %llds, action %s\n",
           (long long) ctl_int(doc, "guard.window"),
           ctl_str(doc, "guard.action"));
    printf("%-20s %12s %10s %12s\n", "RULE", "REQ NEW", "ERRORS %",
           "P99 MS");

    if (bson_iter_init(&it, doc)
        && bson_iter_find_descendant(&it, "guard.rules", &it)
        && bson_iter_recurse(&it, &arr))
    {
        while (bson_iter_next(&arr)) {
            bson_t          r;
            uint32_t        len;
            const uint8_t  *data;
            double          rate = 0, p99 = 0;

            bson_iter_document(&arr, &len, &data);
            if (!bson_init_static(&r, data, len)) {
                continue;
            }

            if (bson_iter_init_find(&f, &r, "error_rate")) {
                rate = bson_iter_as_double(&f);
            }

            if (bson_iter_init_find(&f, &r, "latency_p99_ms")) {
                p99 = bson_iter_as_double(&f);
            }

            printf("%-20s %12lld %10.2f %12.1f\n", ctl_str(&r, "id"),
                   (long long) ctl_int(&r, "requests"), rate, p99);
        }
    }

    if (ctl_str(doc, "guard.last_trip.rule")[0] == '\0') {
        printf("last trip: none\n");
        return;
    }

    t = (time_t) ctl_int(doc, "guard.last_trip.time");
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

    printf("last trip: %s (%s) %s\n", when,
           ctl_str(doc, "guard.last_trip.action"),
           ctl_str(doc, "guard.last_trip.reason"));

    if (bson_iter_init(&it, doc)
        && bson_iter_find_descendant(&it, "guard.last_trip.persisted", &it)
        && BSON_ITER_HOLDS_BOOL(&it) && !bson_iter_bool(&it))
    {
        printf("           rolled back in memory only: the state file could "
               "not be written\n");
    }
}


static void
ctl_print_history(const bson_t *doc)
{
    bson_iter_t  it;

    printf("%-6s %-20s %-12s %-9s %-28s %s\n", "SEQ", "TIME", "KEY",
           "ACTION", "RESULT", "REASON");

    bson_iter_init(&it, doc);

    while (bson_iter_next(&it)) {
        bson_t          e;
        uint32_t        len;
        const uint8_t  *data;

        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
            continue;
        }

        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&e, data, len)) {
            continue;
        }

        printf("%-6lld %-20s %-12s %-9s %-28s %s\n",
               (long long) ctl_int(&e, "seq"), ctl_str(&e, "time"),
               ctl_str(&e, "key_id"), ctl_str(&e, "action"),
               ctl_str(&e, "result"), ctl_str(&e, "reason"));

        if (strcmp(ctl_str(&e, "action"), "refusals") == 0) {
            printf("       (%lld unsigned change attempts refused)\n",
                   (long long) ctl_int(&e, "to.count"));
        }

        if (strcmp(ctl_str(&e, "action"), "audit_break") == 0) {
            printf("       (the trail is damaged from line %lld)\n",
                   (long long) ctl_int(&e, "from.line"));
        }
    }
}


/* Prints an answer; returns the exit code. */
static int
ctl_report(ctl_t *c, long status, ctl_buf_t *out, int history)
{
    bson_t        *doc;
    bson_error_t   err;
    int            rc;

    if (status < 0) {
        return EXIT_FAIL;
    }

    doc = out->len ? bson_new_from_json((uint8_t *) out->data,
                                        (ssize_t) out->len, &err)
                   : NULL;

    if (status != 200) {
        if (c->json && out->len) {
            fputs(out->data, stdout);

        } else {
            fprintf(stderr, "cutoverctl: HTTP %ld %s: %s\n", status,
                    doc ? ctl_str(doc, "error.code") : "",
                    doc ? ctl_str(doc, "error.message") : "");
        }

        bson_destroy(doc);
        return EXIT_FAIL;
    }

    if (c->json) {
        fputs(out->data, stdout);

    } else if (doc == NULL) {
        fprintf(stderr, "cutoverctl: unreadable answer: %s\n", err.message);
        return EXIT_FAIL;

    } else if (history == 2) {
        ctl_print_guard(doc, 1);

    } else if (history) {
        ctl_print_history(doc);

    } else {
        ctl_print_state(doc);
    }

    rc = (doc && strcmp(ctl_str(doc, "state"), "rolled_back") == 0)
         ? EXIT_ROLLED_BACK : EXIT_OK;

    bson_destroy(doc);
    return rc;
}


/* Appends "key":[ "a","b" ] from "a,b". */
static int
ctl_json_list(bson_string_t *s, const char *key, const char *list)
{
    char  *copy, *tok, *save = NULL;
    int    first = 1;

    copy = strdup(list);
    if (copy == NULL) {
        return -1;
    }

    bson_string_append_printf(s, ",\"%s\":[", key);

    for (tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
    {
        if (!cutover_id_valid(tok, strlen(tok))) {
            fprintf(stderr, "cutoverctl: bad id \"%s\" in --%s\n", tok, key);
            free(copy);
            return -1;
        }

        bson_string_append_printf(s, "%s\"%s\"", first ? "" : ",", tok);
        first = 0;
    }

    bson_string_append(s, "]");
    free(copy);
    return 0;
}


static char *
ctl_json_reason(const char *reason)
{
    char    *buf;
    size_t   cap = strlen(reason) * 6 + 1;

    buf = malloc(cap);
    if (buf && cutover_json_escape(reason, strlen(reason), buf, cap) < 0) {
        free(buf);
        return NULL;
    }

    return buf;
}


/* The action and from.line of an audit_break line, read with libbson. */
static int
ctl_break_line(const char *line, size_t len, long long *damaged)
{
    int            ok;
    bson_t        *doc;
    bson_error_t   err;

    doc = bson_new_from_json((const uint8_t *) line, (ssize_t) len, &err);
    if (doc == NULL) {
        return 0;
    }

    ok = strcmp(ctl_str(doc, "action"), "audit_break") == 0;
    *damaged = ctl_int(doc, "from.line");
    bson_destroy(doc);

    return ok;
}


/*
 * Walks the chain.  A line that does not chain (torn, edited, removed,
 * reordered) opens a gap; the gap is a recorded break when an "audit_break"
 * entry later chains onto the last good entry and names the gap's first
 * line; otherwise the trail is broken there. Kept whole: the chain's state
 * (last good entry, open gap) is one loop's state.
 */
static int
ctl_audit_verify(const char *path)
{
    FILE                  *f;
    char                  *line = NULL, prev[65], hash[65], why[256];
    size_t                 cap = 0;
    ssize_t                n;
    uint64_t               seq = 0, lineno = 0, gap = 0, breaks = 0;
    uint64_t               pending = 0;
    long long              named;
    cutover_error_t        err;
    cutover_audit_head_t   head;

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cutoverctl: cannot open %s: %s\n", path,
                strerror(errno));
        return EXIT_FAIL;
    }

    memcpy(prev, CUTOVER_AUDIT_GENESIS, 65);

    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;

        if (line[n - 1] != '\n') {
            if (!gap) {
                gap = lineno;
                snprintf(why, sizeof(why), "torn last line");
            }

            break;
        }

        if (!gap) {
            if (cutover_audit_check_line(line, (size_t) n, seq + 1, prev,
                                         hash, &err) == 0
                && cutover_audit_parse_head(line, (size_t) n, &head, &err)
                   == 0)
            {
                seq++;
                memcpy(prev, hash, 65);
                pending = head.pending_break;
                continue;
            }

            gap = lineno;
            snprintf(why, sizeof(why), "%s", err.message);
            continue;
        }

        /* in a gap: does this line record it? */
        if (cutover_audit_parse_head(line, (size_t) n, &head, &err) == 0
            && strcmp(head.action, "audit_break") == 0
            && head.seq == seq + 1 && strcmp(head.prev, prev) == 0
            && ctl_break_line(line, (size_t) n - 1, &named)
            && named == (long long) gap)
        {
            printf("%s: break: line %llu damaged (%s)", path,
                   (unsigned long long) gap, why);
            if (lineno - 1 > gap) {
                printf(", through line %llu", (unsigned long long) lineno - 1);
            }
            printf("; recorded by audit_break seq %llu at line %llu\n",
                   (unsigned long long) head.seq,
                   (unsigned long long) lineno);
            seq = head.seq;
            memcpy(prev, head.hash, 65);
            pending = head.pending_break;
            breaks++;
            gap = 0;
        }
    }

    free(line);
    fclose(f);

    if (gap) {
        printf("%s: BROKEN at line %llu (expected seq %llu): %s\n", path,
               (unsigned long long) gap, (unsigned long long) seq + 1, why);
        return EXIT_FAIL;
    }

    if (breaks == 0) {
        printf("%s: intact, %llu entries, head %s\n", path,
               (unsigned long long) seq, prev);
        return EXIT_OK;
    }

    if (pending) {
        printf("%s: intact but for %llu recorded break(s); the break of seq "
               "%llu is NOT accepted (dial is refused until an admin runs "
               "cutoverctl audit accept); head seq %llu %s\n", path,
               (unsigned long long) breaks, (unsigned long long) pending,
               (unsigned long long) seq, prev);
        return EXIT_UNACCEPTED;
    }

    printf("%s: intact but for %llu recorded break(s), accepted; head seq "
           "%llu %s\n", path, (unsigned long long) breaks,
           (unsigned long long) seq, prev);
    return EXIT_BREAKS;
}


/*
 * status or rollback of a fleet: --url holds several URLs, comma
 * separated; each gateway is asked and reported (a line, or with -o json
 * an array of {url, gateway, state, version}).  status exits 0 when all
 * are active on one version, 3 when all are rolled back, 4 when they
 * disagree, 1 when any is unreachable; rollback 0 when every gateway
 * confirmed it, 1 otherwise.  Kept whole: one loop over the gateways.
 */
static int
ctl_fleet(ctl_t *c, const char *cmd, const char *body)
{
    int           n, unreachable = 0, active = 0, rolled = 0, failed = 0;
    int64_t       version, first = -1;
    long          status;
    char         *urls, *url, *save;
    bson_t       *doc;
    ctl_buf_t     out;
    const char   *state, *gw;
    bson_error_t  err;

    urls = strdup(c->url);
    if (urls == NULL) {
        return EXIT_FAIL;
    }

    if (c->json) {
        printf("[");
    }

    n = 0;

    for (url = strtok_r(urls, ",", &save); url;
         url = strtok_r(NULL, ",", &save))
    {
        out.data = NULL;
        out.len = 0;
        c->url = url;

        status = ctl_call(c, cmd[0] == 's' ? "GET" : "POST", cmd, body, &out);

        doc = status == 200 && out.len
              ? bson_new_from_json((uint8_t *) out.data, (ssize_t) out.len,
                                   &err)
              : NULL;

        state = doc ? ctl_str(doc, "state") : "";
        gw = doc ? ctl_str(doc, "fleet.gateway") : "";
        version = doc ? ctl_int(doc, "version") : 0;

        if (doc == NULL) {
            if (status < 0) {
                unreachable++;
            }

            failed++;
            state = status < 0 ? "unreachable" : "error";

        } else if (strcmp(state, "rolled_back") == 0) {
            rolled++;

        } else {
            active++;
        }

        if (doc && strcmp(state, "active") == 0) {
            if (first >= 0 && version != first) {
                first = -2;

            } else if (first == -1) {
                first = version;
            }
        }

        if (c->json) {
            printf("%s{\"url\":\"%s\",\"gateway\":\"%s\",\"state\":\"%s\","
                   "\"version\":", n ? "," : "", url, gw, state);
            printf(doc ? "%lld" : "null", (long long) version);
            if (doc == NULL) {
                printf(",\"http_status\":%ld", status);
            }
            printf("}");

        } else if (doc) {
            printf("%-40s %-16s %-12s version %lld\n", url, gw[0] ? gw : "-",
                   state, (long long) version);

        } else {
            printf("%-40s %-16s %-12s HTTP %ld\n", url, "-", state, status);
        }

        n++;

        if (doc) {
            bson_destroy(doc);
        }

        free(out.data);
    }

    if (c->json) {
        printf("]\n");
    }

    free(urls);

    if (cmd[0] == 'r') {
        return failed ? EXIT_FAIL : EXIT_OK;
    }

    if (unreachable || failed) {
        return EXIT_FAIL;
    }

    if (rolled == n) {
        return EXIT_ROLLED_BACK;
    }

    if (active == n && first >= 0) {
        return EXIT_OK;
    }

    if (!c->json) {
        printf("the gateways disagree\n");
    }

    return EXIT_DISAGREE;
}


/*
 * Kept whole (past 80 lines): one getopt loop and one switch over the
 * commands.
 */
int
main(int argc, char **argv)
{
    int             opt, rc, history = 0, all = 0;
    long            status;
    char           *reason_json, path[64];
    const char     *cmd, *reason = NULL, *rule = NULL, *stores = NULL;
    const char     *channels = NULL, *limit = NULL, *expect = NULL;
    const char     *step = NULL, *every = NULL;
    ctl_t           c;
    ctl_buf_t       out = { NULL, 0 };
    bson_string_t  *body;
    cutover_error_t err;

    static const struct option  opts[] = {
        { "url", required_argument, NULL, 'u' },
        { "key-id", required_argument, NULL, 'k' },
        { "key-file", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, 'o' },
        { "reason", required_argument, NULL, 'r' },
        { "rule", required_argument, NULL, 'R' },
        { "store", required_argument, NULL, 's' },
        { "channel", required_argument, NULL, 'c' },
        { "limit", required_argument, NULL, 'l' },
        { "expect-version", required_argument, NULL, 'e' },
        { "all", no_argument, NULL, 'a' },
        { "step", required_argument, NULL, 'S' },
        { "every", required_argument, NULL, 'E' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(&c, 0, sizeof(c));
    c.url = getenv("CUTOVER_URL");
    c.key_id = getenv("CUTOVER_KEY_ID");
    c.key_file = getenv("CUTOVER_KEY_FILE");

    /* GNU getopt permutes: options may come before or after the command */
    while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'u': c.url = optarg; break;
        case 'k': c.key_id = optarg; break;
        case 'f': c.key_file = optarg; break;
        case 'r': reason = optarg; break;
        case 'R': rule = optarg; break;
        case 's': stores = optarg; break;
        case 'c': channels = optarg; break;
        case 'l': limit = optarg; break;
        case 'e': expect = optarg; break;
        case 'a': all = 1; break;
        case 'S': step = optarg; break;
        case 'E': every = optarg; break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                return usage("-o takes text or json");
            }
            c.json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        default:
            return usage(NULL);
        }
    }

    if (optind >= argc) {
        return usage("no command");
    }

    cmd = argv[optind++];

    if (strcmp(cmd, "audit") == 0) {
        if (argc - optind == 2 && strcmp(argv[optind], "verify") == 0) {
            return ctl_audit_verify(argv[optind + 1]);
        }

        if (argc - optind != 1 || strcmp(argv[optind], "accept") != 0) {
            return usage("audit verify FILE, or audit accept --reason TEXT");
        }

        cmd = "accept";
    }

    if (c.url == NULL || c.key_file == NULL) {
        return usage("--url and --key-file (or CUTOVER_URL and "
                     "CUTOVER_KEY_FILE) are required");
    }

    if (ctl_load_key(&c) != 0) {
        return EXIT_USAGE;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = EXIT_USAGE;

    if (strchr(c.url, ',') && strcmp(cmd, "status") == 0) {
        rc = ctl_fleet(&c, cmd, NULL);

    } else if (strcmp(cmd, "status") == 0 || strcmp(cmd, "metrics") == 0) {
        status = ctl_call(&c, "GET", cmd, NULL, &out);

        if (cmd[0] == 'm' && status == 200) {
            fputs(out.data, stdout);
            rc = EXIT_OK;

        } else {
            rc = ctl_report(&c, status, &out, 0);
        }

    } else if (strcmp(cmd, "guard") == 0) {
        status = ctl_call(&c, "GET", "status", NULL, &out);
        rc = ctl_report(&c, status, &out, 2);

    } else if (strcmp(cmd, "ramp") == 0) {
        if (reason == NULL || reason[0] == '\0') {
            rc = usage("--reason is required: say why, for the audit trail");
            goto done;
        }

        if (argc - optind != 1 || step == NULL || every == NULL) {
            rc = usage("ramp takes TO, --step S and --every DURATION");
            goto done;
        }

        if (cutover_percent_parse(argv[optind], strlen(argv[optind]), &err)
            < 0
            || cutover_percent_parse(step, strlen(step), &err) < 0)
        {
            rc = usage(err.message);
            goto done;
        }

        if (cutover_duration_parse(every, strlen(every)) <= 0) {
            rc = usage("--every takes a duration: 30s, 10m, 1h");
            goto done;
        }

        if (rule && !cutover_id_valid(rule, strlen(rule))) {
            rc = usage("bad --rule id");
            goto done;
        }

        reason_json = ctl_json_reason(reason);
        body = bson_string_new("{");
        bson_string_append_printf(body, "\"to\":%s,\"step\":%s,"
                                  "\"every\":\"%s\",", argv[optind], step,
                                  every);
        if (rule) {
            bson_string_append_printf(body, "\"rule\":\"%s\",", rule);
        }

        bson_string_append_printf(body, "\"reason\":\"%s\"}",
                                  reason_json ? reason_json : "");
        free(reason_json);

        status = ctl_call(&c, "POST", "ramp", body->str, &out);
        bson_string_free(body, true);
        rc = ctl_report(&c, status, &out, 0);

    } else if (strcmp(cmd, "history") == 0) {
        if (limit && (atoi(limit) < 1 || atoi(limit) > 1000)) {
            rc = usage("--limit takes 1..1000");
            goto done;
        }

        snprintf(path, sizeof(path), "history?limit=%d%s",
                 limit ? atoi(limit) : 20, all ? "&all=1" : "");
        status = ctl_call(&c, "GET", path, NULL, &out);
        history = 1;
        rc = ctl_report(&c, status, &out, history);

    } else if (strcmp(cmd, "dial") == 0 || strcmp(cmd, "rollback") == 0
               || strcmp(cmd, "accept") == 0)
    {
        int dial = cmd[0] == 'd';

        if (reason == NULL || reason[0] == '\0') {
            rc = usage("--reason is required: say why, for the audit trail");
            goto done;
        }

        if (dial && argc - optind != 1) {
            rc = usage("dial takes one PERCENT");
            goto done;
        }

        if (dial && cutover_percent_parse(argv[optind], strlen(argv[optind]),
                                          &err) < 0)
        {
            rc = usage(err.message);
            goto done;
        }

        reason_json = ctl_json_reason(reason);
        body = bson_string_new("{");

        if (dial) {
            bson_string_append_printf(body, "\"percent\":%s", argv[optind]);

            if (rule) {
                if (!cutover_id_valid(rule, strlen(rule))) {
                    rc = usage("bad --rule id");
                    free(reason_json);
                    bson_string_free(body, true);
                    goto done;
                }

                bson_string_append_printf(body, ",\"rule\":\"%s\"", rule);
            }

            if ((stores && ctl_json_list(body, "stores", stores) != 0)
                || (channels && ctl_json_list(body, "channels", channels)
                    != 0))
            {
                free(reason_json);
                bson_string_free(body, true);
                goto done;
            }

            if (expect) {
                bson_string_append_printf(body, ",\"expect_version\":%lld",
                                          atoll(expect));
            }

            bson_string_append(body, ",");
        }

        bson_string_append_printf(body, "\"reason\":\"%s\"}",
                                  reason_json ? reason_json : "");
        free(reason_json);

        if (strchr(c.url, ',') && cmd[0] == 'r') {
            rc = ctl_fleet(&c, cmd, body->str);
            bson_string_free(body, true);
            goto done;
        }

        status = ctl_call(&c, "POST", cmd, body->str, &out);
        bson_string_free(body, true);
        rc = ctl_report(&c, status, &out, 0);

        if (cmd[0] == 'a' && status == 200) {
            if (!c.json) {
                printf("the audit trail's break is accepted: dial is "
                       "allowed again\n");
            }

            rc = EXIT_OK;
        }

    } else {
        rc = usage("unknown command");
    }

done:

    free(out.data);
    curl_global_cleanup();
    return rc;
}
