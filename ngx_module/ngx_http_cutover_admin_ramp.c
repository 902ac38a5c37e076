/*
 * ngx_http_cutover_admin_ramp: POST ramp {"rule","to","step","every",
 * "reason"}: the ramp is part of the dial state (state file, audit entry),
 * written by a thread-pool thread like a dial; its steps are taken by
 * ngx_http_cutover_guard.c.
 */

#include "ngx_http_cutover_admin.h"


static const char *ngx_http_cutover_ramp_parse(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_change_t *c,
    const char **code, ngx_uint_t *status);
static void ngx_http_cutover_ramp_write(void *data, ngx_log_t *log);


ngx_int_t
ngx_http_cutover_ramp(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    return ngx_http_cutover_change_post(r, a, ngx_http_cutover_ramp_parse,
                                        ngx_http_cutover_ramp_write);
}


static const char *
ngx_http_cutover_ramp_parse(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_change_t *c,
    const char **code, ngx_uint_t *status)
{
    int                  i, v;
    char                *json = (char *) a->body;
    char                *msg, name[32];
    uint32_t             k;
    const char          *p;
    cutover_json_tok_t  *toks;

    *code = "invalid_request";
    ngx_cpystrn((u_char *) c->dial.rule, (u_char *) "default",
                sizeof(c->dial.rule));
    c->ramp_to = -1;
    c->ramp_step = -1;
    c->ramp_every = -1;

    p = ngx_http_cutover_change_open(r, a, c, 64, &toks, &msg, code);
    if (p != NULL) {
        return p;
    }

    i = 1;

    for (k = 0; k < toks[0].size; k++, i = cutover_json_next(toks, i + 1)) {
        p = ngx_http_cutover_change_field(a, toks, i, name, sizeof(name), msg);
        if (p != NULL) {
            return p;
        }

        v = i + 1;

        if (ngx_strcmp(name, "reason") == 0) {
            if (a->reason != c->reason) {
                return "reason must be a string of at most 1024 bytes";
            }

        } else if (ngx_strcmp(name, "rule") == 0) {
            p = ngx_http_cutover_change_rule(json, &toks[v], c);
            if (p != NULL) {
                return p;
            }

        } else if (ngx_strcmp(name, "to") == 0) {
            c->ramp_to = ngx_http_cutover_change_percent(json, &toks[v], "to",
                                                       msg);
            if (c->ramp_to < 0) {
                *code = "invalid_percent";
                return msg;
            }

        } else if (ngx_strcmp(name, "step") == 0) {
            c->ramp_step = ngx_http_cutover_change_percent(json, &toks[v],
                                                         "step", msg);
            if (c->ramp_step < 0) {
                *code = "invalid_percent";
                return msg;
            }

            if (c->ramp_step == 0) {
                return "step must be above 0";
            }

        } else if (ngx_strcmp(name, "every") == 0) {
            if (toks[v].type == CUTOVER_JSON_STRING) {
                c->ramp_every = cutover_duration_parse(json + toks[v].start,
                                                       toks[v].end
                                                       - toks[v].start);
            }

            if (c->ramp_every <= 0 || c->ramp_every > 366 * 86400) {
                return "every must be a duration of 1s to 366d "
                       "(\"30s\", \"10m\", \"1h\")";
            }

        } else {
            ngx_sprintf((u_char *) msg, "unknown field \"%s\" (ramp takes "
                        "rule, to, step, every, reason)%Z", name);
            return msg;
        }
    }

    if (c->ramp_to < 0 || c->ramp_step < 0 || c->ramp_every < 0) {
        return "to, step and every are required";
    }

    for (p = c->reason; *p == ' '; p++) { /* void */ }

    if (*p == '\0') {
        return "reason is required: say why, for the audit trail";
    }

    /* a ramp is kept in this gateway's state, and a fleet zone follows the
     * fleet's: its steps would be undone by the next apply */
    if (a->zone->fleet.len) {
        *status = NGX_HTTP_CONFLICT;
        *code = "fleet_zone";
        return "ramps are not kept in the fleet yet: dial each step";
    }

    return NULL;
}


/* In a thread-pool thread, as a dial: a sound trail, the state file, the
 * entry, the commit. */
static void
ngx_http_cutover_ramp_write(void *data, ngx_log_t *log)
{
    ngx_http_cutover_write_t  *w = data;

    int                         n;
    char                        to[16], step[16];
    ngx_int_t                   rc;
    cutover_state_t            *cur = w->cur, *next = w->next;
    ngx_http_cutover_change_t  *c = w->c;

    ngx_http_cutover_change_begin(w, log);

    rc = ngx_http_cutover_trail_allows(w, 0, "ramp");
    if (rc == NGX_ERROR) {
        goto failed;
    }

    if (rc == NGX_DECLINED) {
        goto refused;
    }

    if (cutover_state_ramp_start(next, cur, c->dial.rule, c->ramp_to,
                                 c->ramp_step, c->ramp_every, ngx_time(),
                                 &w->answer.err)
        != CUTOVER_OK)
    {
        w->answer.status = ngx_strcmp(w->answer.err.name, "unknown_rule") == 0
                           ? NGX_HTTP_NOT_FOUND : NGX_HTTP_BAD_REQUEST;
        goto refused;
    }

    n = cutover_state_find(cur, c->dial.rule);
    ngx_http_cutover_audit_rule(cur, n, w->from);

    cutover_percent_format((uint32_t) c->ramp_to, to);
    cutover_percent_format((uint32_t) c->ramp_step, step);
    ngx_sprintf((u_char *) w->to, "{\"rule\":\"%s\",\"ramp\":{\"to\":%s,"
                "\"step\":%s,\"every\":%L,\"next_at\":%L}}%Z", c->dial.rule,
                to, step, c->ramp_every, next->rules[n].ramp_next);

    if (ngx_http_cutover_change_commit(w, log) != NGX_OK) {
        goto failed;
    }

    ngx_http_cutover_change_end(w, NGX_OK, log);
    return;

failed:

    ngx_http_cutover_change_end(w, NGX_ERROR, log);
    return;

refused:

    ngx_http_cutover_change_end(w, NGX_DECLINED, log);
}
