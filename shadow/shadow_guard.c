/*
 * shadow_guard: the mismatch guard of cutover-shadowd (see the header).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "common/cutover_admin_call.h"
#include "common/cutover_json.h"
#include "common/cutover_sign.h"
#include "shadow/shadow_guard.h"
#include "shadow/shadow_json.h"


/* a zone holds at most 64 rules (CUTOVER_MAX_RULES of the dial state) */
#define SHADOW_GUARD_RULES    64
#define SHADOW_GUARD_REASON   320


typedef struct {
    char                     id[CUTOVER_ID_MAX + 1];
    cutover_guard_window_t  *w;
} shadow_guard_rule_t;

struct shadow_guard_s {
    const shadow_guard_conf_t  *conf;
    shadow_guard_log_pt         log;
    shadow_guard_rule_t         rules[SHADOW_GUARD_RULES];
    unsigned                    nrules;
    uint32_t                    last;           /* last second polled */
    int                         pending;        /* a rollback to make */
    char                        reason[SHADOW_GUARD_REASON];
    time_t                      next_try;
    unsigned                    failures;       /* in a row */
};


static void shadow_guard_log(shadow_guard_t *g, int level, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
static long shadow_guard_rollback(shadow_guard_t *g, char *answer,
    size_t cap);
static size_t shadow_guard_body(char *p, size_t size, size_t n, void *ctx);
static int shadow_guard_key_file(const char *path, shadow_guard_conf_t *c,
    shadow_error_t *err);


static void
shadow_guard_log(shadow_guard_t *g, int level, const char *fmt, ...)
{
    char     msg[512];
    va_list  ap;

    if (g->log == NULL) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    g->log(level, msg);
}


int
shadow_guard_config(bson_iter_t *it, shadow_guard_conf_t **out,
    shadow_error_t *err)
{
    double                v;
    char                  param[96];
    uint32_t              len;
    const char           *k, *s;
    bson_iter_t           sub;
    cutover_error_t       cerr;
    shadow_guard_conf_t  *c;
    const char           *key_file = NULL;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &sub)) {
        return shadow_error_set(err, SHADOW_ERROR, "\"guard\" must be an "
                                "object");
    }

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    c->limits.min_requests = 100;
    c->limits.window = 60;

    while (bson_iter_next(&sub)) {
        k = bson_iter_key(&sub);

        if (strcmp(k, "min_pairs") == 0) {
            if (!shadow_json_number(&sub, &v) || v < 0 || v > 1e9
                || v != (double) (uint32_t) v)
            {
                shadow_error_set(err, SHADOW_ERROR, "\"guard\": \"min_pairs\""
                                 " must be a whole number");
                goto bad;
            }

            c->limits.min_requests = (uint32_t) v;
            continue;
        }

        if (!BSON_ITER_HOLDS_UTF8(&sub)) {
            shadow_error_set(err, SHADOW_ERROR, "\"guard\": \"%s\" must be a "
                             "string", k);
            goto bad;
        }

        s = bson_iter_utf8(&sub, &len);

        if (strcmp(k, "mismatch") == 0 || strcmp(k, "window") == 0) {
            snprintf(param, sizeof(param), "%s=%.80s", k, s);

            if (cutover_guard_param(&c->limits, param, strlen(param), &cerr)
                != 0)
            {
                shadow_error_set(err, SHADOW_ERROR, "\"guard\": %s",
                                 cerr.message);
                goto bad;
            }

        } else if (strcmp(k, "admin_url") == 0) {
            free(c->admin_url);
            c->admin_url = strdup(s);

        } else if (strcmp(k, "key_id") == 0) {
            if (!cutover_id_valid(s, len)) {
                shadow_error_set(err, SHADOW_ERROR, "\"guard\": bad "
                                 "\"key_id\"");
                goto bad;
            }

            free(c->key_id);
            c->key_id = strdup(s);

        } else if (strcmp(k, "key_file") == 0) {
            key_file = s;

        } else {
            shadow_error_set(err, SHADOW_ERROR, "\"guard\": unknown key "
                             "\"%s\" (mismatch, window, min_pairs, "
                             "admin_url, key_id, key_file)", k);
            goto bad;
        }
    }

    if (c->limits.mismatch_bp == 0 || c->admin_url == NULL
        || c->key_id == NULL || key_file == NULL)
    {
        shadow_error_set(err, SHADOW_ERROR, "\"guard\" needs \"mismatch\", "
                         "\"admin_url\", \"key_id\" and \"key_file\"");
        goto bad;
    }

    if (strncmp(c->admin_url, "http://", 7) != 0
        && strncmp(c->admin_url, "https://", 8) != 0)
    {
        shadow_error_set(err, SHADOW_ERROR, "\"guard\": \"admin_url\" must "
                         "be an http:// or https:// URL");
        goto bad;
    }

    if (shadow_guard_key_file(key_file, c, err) != SHADOW_OK) {
        goto bad;
    }

    shadow_guard_config_free(*out);
    *out = c;
    return SHADOW_OK;

bad:

    shadow_guard_config_free(c);
    return SHADOW_ERROR;
}


/* The key file: the key's line of the gateway's keys file, or the bare
 * hex secret (as cutoverctl takes it). */
static int
shadow_guard_key_file(const char *path, shadow_guard_conf_t *c,
    shadow_error_t *err)
{
    FILE             *f;
    char              line[512], bare[256], *p;
    size_t            n;
    cutover_key_t     key;
    cutover_error_t   cerr;
    int               rc;

    f = fopen(path, "r");
    if (f == NULL) {
        return shadow_error_set(err, SHADOW_ERROR, "\"guard\": key_file "
                                "\"%s\": %s", path, strerror(errno));
    }

    rc = SHADOW_ERROR;

    while (fgets(line, sizeof(line), f) != NULL) {
        for (p = line; *p == ' ' || *p == '\t'; p++) { /* void */ }

        n = strcspn(p, "\r\n");
        p[n] = '\0';

        if (n == 0 || p[0] == '#') {
            continue;
        }

        if (strchr(p, ' ') == NULL) {
            /* a bare secret: as a keys-file line of this key id */
            snprintf(bare, sizeof(bare), "%s guard %.200s", c->key_id, p);
            p = bare;
        }

        if (cutover_key_parse_line(p, strlen(p), &key, &cerr) != 1) {
            shadow_error_set(err, SHADOW_ERROR, "\"guard\": key_file \"%s\": "
                             "%s", path, cerr.message);
            break;
        }

        if (strcmp(key.id, c->key_id) != 0) {
            shadow_error_set(err, SHADOW_ERROR, "\"guard\": key_file \"%s\" "
                             "holds key \"%s\", not \"%s\"", path, key.id,
                             c->key_id);
            break;
        }

        memcpy(c->secret, key.secret, key.secret_len);
        c->secret_len = key.secret_len;
        rc = SHADOW_OK;
        break;
    }

    if (rc != SHADOW_OK && err->message[0] == '\0') {
        shadow_error_set(err, SHADOW_ERROR, "\"guard\": key_file \"%s\" "
                         "holds no key", path);
    }

    fclose(f);
    memset(&key, 0, sizeof(key));
    memset(line, 0, sizeof(line));
    memset(bare, 0, sizeof(bare));
    return rc;
}


void
shadow_guard_config_free(shadow_guard_conf_t *conf)
{
    if (conf == NULL) {
        return;
    }

    free(conf->admin_url);
    free(conf->key_id);
    memset(conf, 0, sizeof(*conf));
    free(conf);
}


shadow_guard_t *
shadow_guard_new(const shadow_guard_conf_t *conf, shadow_guard_log_pt log,
    shadow_error_t *err)
{
    shadow_guard_t  *g;

    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "out of memory");
        return NULL;
    }

    g->conf = conf;
    g->log = log;

    return g;
}


void
shadow_guard_free(shadow_guard_t *g)
{
    unsigned  i;

    if (g == NULL) {
        return;
    }

    for (i = 0; i < g->nrules; i++) {
        free(g->rules[i].w);
    }

    free(g);
}


void
shadow_guard_pair(shadow_guard_t *g, const cutover_str_t *rule,
    int differing)
{
    unsigned              i;
    uint32_t              now;
    shadow_guard_rule_t  *r = NULL;

    if (g == NULL || rule->len == 0 || rule->len > CUTOVER_ID_MAX) {
        return;
    }

    for (i = 0; i < g->nrules; i++) {
        if (strlen(g->rules[i].id) == rule->len
            && memcmp(g->rules[i].id, rule->data, rule->len) == 0)
        {
            r = &g->rules[i];
            break;
        }
    }

    if (r == NULL) {
        if (g->nrules == SHADOW_GUARD_RULES) {
            return;
        }

        r = &g->rules[g->nrules];
        r->w = malloc(cutover_guard_window_size(g->conf->limits.window));
        if (r->w == NULL) {
            return;
        }

        cutover_guard_window_init(r->w, g->conf->limits.window);
        memcpy(r->id, rule->data, rule->len);
        r->id[rule->len] = '\0';
        g->nrules++;
    }

    now = (uint32_t) time(NULL);

    /* one thread: this second's bucket is made ready here as well */
    cutover_guard_rotate(r->w, now - 1, now);
    (void) cutover_guard_add(r->w, now, differing, 0);
}


void
shadow_guard_poll(shadow_guard_t *g, shadow_guard_stats_t *stats)
{
    long                  status;
    char                  answer[256], reason[SHADOW_GUARD_REASON];
    unsigned              i;
    uint32_t              now;
    cutover_guard_sum_t   sum;

    if (g == NULL) {
        return;
    }

    now = (uint32_t) time(NULL);

    if (now == g->last) {
        return;
    }

    for (i = 0; i < g->nrules; i++) {
        cutover_guard_rotate(g->rules[i].w, g->last, now);
        cutover_guard_sum(g->rules[i].w, now, g->conf->limits.window, &sum);

        if (cutover_guard_check_mismatch(&g->conf->limits, sum.requests,
                                         sum.errors, g->rules[i].id, reason,
                                         sizeof(reason))
            == CUTOVER_GUARD_OK)
        {
            continue;
        }

        /* once per crossing: the window starts afresh */
        cutover_guard_restart(g->rules[i].w, now);
        stats->trips++;

        shadow_guard_log(g, 1, "%s: asking %s for a rollback", reason,
                         g->conf->admin_url);

        if (!g->pending) {
            g->pending = 1;
            g->failures = 0;
            g->next_try = 0;
            snprintf(g->reason, sizeof(g->reason), "%s", reason);
        }
    }

    g->last = now;

    if (g->pending && (time_t) now >= g->next_try) {
        status = shadow_guard_rollback(g, answer, sizeof(answer));

        if (status == 200) {
            g->pending = 0;
            stats->rollbacks++;
            shadow_guard_log(g, 1, "the gateway rolled back: %s", g->reason);

        } else {
            /* unreachable or refused: tried again, 1 s, 2 s, ... 30 s */
            stats->rollback_failures++;
            g->failures++;
            g->next_try = (time_t) now
                          + (g->failures > 5 ? 30 : 1 << (g->failures - 1));
            shadow_guard_log(g, 0, "rollback asked of %s failed (%s%ld): "
                             "%.160s; trying again", g->conf->admin_url,
                             status < 0 ? "unreachable" : "HTTP ",
                             status < 0 ? 0L : status, answer);
        }
    }

    stats->pending = g->pending;
}


typedef struct {
    char    *buf;
    size_t   len;
    size_t   cap;
} shadow_guard_buf_t;


static size_t
shadow_guard_body(char *p, size_t size, size_t n, void *ctx)
{
    size_t               k;
    shadow_guard_buf_t  *b = ctx;

    k = size * n;
    if (b->len + 1 < b->cap) {
        size_t c = k < b->cap - 1 - b->len ? k : b->cap - 1 - b->len;

        memcpy(b->buf + b->len, p, c);
        b->len += c;
        b->buf[b->len] = '\0';
    }

    return k;
}


/* The signed POST rollback; the HTTP status or -1. */
static long
shadow_guard_rollback(shadow_guard_t *g, char *answer, size_t cap)
{
    int                     i, n;
    long                    status;
    char                    url[2048];
    char                    body[2 * SHADOW_GUARD_REASON + 32];
    cutover_error_t         err;
    shadow_guard_buf_t      b = { answer, 0, cap };
    cutover_admin_client_t  cl = { g->conf->key_id, g->conf->secret,
                                   g->conf->secret_len, 2000 };

    answer[0] = '\0';

    snprintf(url, sizeof(url), "%s%srollback", g->conf->admin_url,
             g->conf->admin_url[strlen(g->conf->admin_url) - 1] == '/'
             ? "" : "/");

    n = snprintf(body, sizeof(body), "{\"reason\":\"");
    i = cutover_json_escape(g->reason, strlen(g->reason), body + n,
                            sizeof(body) - (size_t) n - 4);
    n += i < 0 ? 0 : i;
    snprintf(body + n, sizeof(body) - (size_t) n, "\"}");

    status = cutover_admin_call(&cl, "POST", url, body, shadow_guard_body,
                                &b, &err);
    if (status < 0) {
        snprintf(answer, cap, "%s", err.message);
    }

    return status;
}
