/*
 * ngx_http_cutover_admin_dial: POST dial, rollback and accept: the
 * request parsed, the new state, and its write (state file, audit entry,
 * fsyncs) by a thread-pool thread before the answer goes out.
 */

#include "ngx_http_cutover_admin.h"


/* Decodes an array of id strings into pool memory. */
static ngx_int_t
ngx_http_cutover_ids(ngx_http_request_t *r, const char *json,
    cutover_json_tok_t *toks, int arr, const char **out, size_t *n,
    const char **what)
{
    int       i;
    char     *s;
    uint32_t  k;

    if (toks[arr].type != CUTOVER_JSON_ARRAY) {
        *what = "must be an array of strings";
        return NGX_ERROR;
    }

    if (toks[arr].size > CUTOVER_MAX_IDS) {
        *what = "has too many entries";
        return NGX_ERROR;
    }

    i = arr + 1;

    for (k = 0; k < toks[arr].size; k++) {
        s = ngx_pnalloc(r->pool, CUTOVER_ID_MAX + 1);
        if (s == NULL) {
            *what = "could not be stored (out of memory)";
            return NGX_ERROR;
        }

        if (toks[i].type != CUTOVER_JSON_STRING
            || cutover_json_string(json, &toks[i], s, CUTOVER_ID_MAX + 1) < 1
            || !cutover_id_valid(s, ngx_strlen(s)))
        {
            *what = "must hold ids of 1 to 32 of A-Z a-z 0-9 _ . -";
            return NGX_ERROR;
        }

        out[k] = s;
        i = cutover_json_next(toks, i);
    }

    *n = toks[arr].size;
    return NGX_OK;
}


/* A rule as the audit trail shows it: whole, or counted when its lists
 * would not fit in an entry (the state file keeps them). */
void
ngx_http_cutover_audit_rule(cutover_state_t *st, int n, char *buf)
{
    char                   pct[16];
    const cutover_rule_t  *rule = &st->rules[n];

    if (cutover_state_rule_json(st, n, buf, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX)
        >= 0)
    {
        return;
    }

    cutover_percent_format(rule->bp, pct);
    ngx_sprintf((u_char *) buf, "{\"id\":\"%s\",\"stores\":%uD,"
                "\"channels\":%uD,\"percent\":%s}%Z", rule->id,
                (uint32_t) rule->nstores, (uint32_t) rule->nchannels, pct);
}


/*
 * The start of a change body (dial, rollback, accept, ramp): parsed into at
 * most max tokens, an object, and its reason taken first, so that even a
 * refusal is audited with it.  NULL with the tokens in *toks and a message
 * buffer in *msg, or the message of the refusal.
 */
const char *
ngx_http_cutover_change_open(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_change_t *c,
    ngx_uint_t max, cutover_json_tok_t **toks, char **msg,
    const char **code)
{
    int                  v;
    char                *json = (char *) a->body;
    cutover_json_tok_t  *t;

    *msg = ngx_pnalloc(r->pool, 256);
    *toks = ngx_palloc(r->pool, max * sizeof(cutover_json_tok_t));
    if (*msg == NULL || *toks == NULL) {
        return "out of memory";
    }

    t = *toks;

    if (cutover_json_parse(json, a->body_len, t, max, *msg, 200) < 0) {
        *code = "malformed_json";
        return *msg;
    }

    if (t[0].type != CUTOVER_JSON_OBJECT) {
        return "the body must be a JSON object";
    }

    v = cutover_json_get(json, t, 0, "reason");
    if (v > 0 && t[v].type == CUTOVER_JSON_STRING
        && cutover_json_string(json, &t[v], c->reason, sizeof(c->reason))
           >= 0)
    {
        a->reason = c->reason;
    }

    return NULL;
}


/* The name of the member at token i, into name (size bytes), not repeated
 * in the object: NULL, or the message of the refusal (in msg). */
const char *
ngx_http_cutover_change_field(ngx_http_cutover_admin_t *a,
    cutover_json_tok_t *toks, int i, char *name, size_t size, char *msg)
{
    char  *json = (char *) a->body;

    if (cutover_json_string(json, &toks[i], name, size) < 0) {
        return "unknown field";
    }

    /* duplicates would make the meaning depend on the parser */
    if (cutover_json_get(json, toks, 0, name) != i + 1) {
        ngx_sprintf((u_char *) msg, "duplicate field \"%s\"%Z", name);
        return msg;
    }

    return NULL;
}


/* The rule member: an id, into c->dial.rule; NULL or the refusal. */
const char *
ngx_http_cutover_change_rule(const char *json, cutover_json_tok_t *t,
    ngx_http_cutover_change_t *c)
{
    if (t->type != CUTOVER_JSON_STRING
        || cutover_json_string(json, t, c->dial.rule, sizeof(c->dial.rule))
           < 1
        || !cutover_id_valid(c->dial.rule, ngx_strlen(c->dial.rule)))
    {
        return "rule must be an id of 1 to 32 of A-Z a-z 0-9 _ . -";
    }

    return NULL;
}


/* A percent member (dial's percent, ramp's to and step) in basis points,
 * or -1 with the message, naming the member, in msg. */
int32_t
ngx_http_cutover_change_percent(const char *json, cutover_json_tok_t *t,
    const char *name, char *msg)
{
    int32_t          bp;
    u_char          *p;
    cutover_error_t  err;

    if (t->type != CUTOVER_JSON_NUMBER) {
        ngx_sprintf((u_char *) msg, "%s must be a number from 0 to 100%Z",
                    name);
        return -1;
    }

    bp = cutover_percent_parse(json + t->start, t->end - t->start, &err);
    if (bp < 0) {
        p = ngx_strncmp(err.message, name, ngx_strlen(name)) == 0
            ? ngx_snprintf((u_char *) msg, 200, "%s", err.message)
            : ngx_snprintf((u_char *) msg, 200, "%s: %s", name, err.message);
        *p = '\0';
    }

    return bp;
}


/*
 * Parses a dial or rollback body; on error returns the message. Kept whole:
 * the members of the body are checked in one place, in the order of the
 * errors a client sees.
 */
static const char *
ngx_http_cutover_parse_change(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_change_t *c,
    const char **code, ngx_uint_t *status)
{
    int                  i, v;
    char                *json = (char *) a->body;
    char                *msg, name[32];
    uint32_t             k;
    const char          *what;
    cutover_json_tok_t  *toks;

    *code = "invalid_request";
    c->expect_version = -1;
    ngx_cpystrn((u_char *) c->dial.rule, (u_char *) "default",
                sizeof(c->dial.rule));
    c->dial.bp = -1;

    what = ngx_http_cutover_change_open(r, a, c, NGX_HTTP_CUTOVER_MAX_TOKENS,
                                        &toks, &msg, code);
    if (what != NULL) {
        return what;
    }

    i = 1;

    for (k = 0; k < toks[0].size; k++, i = cutover_json_next(toks, i + 1)) {
        what = ngx_http_cutover_change_field(a, toks, i, name, sizeof(name),
                                             msg);
        if (what != NULL) {
            return what;
        }

        v = i + 1;

        if (ngx_strcmp(name, "reason") == 0) {
            if (a->reason != c->reason) {
                return "reason must be a string of at most 1024 bytes";
            }

            continue;
        }

        if (a->ep != NGX_HTTP_CUTOVER_EP_DIAL) {
            ngx_sprintf((u_char *) msg, "unknown field \"%s\" (%s takes "
                        "reason)%Z", name,
                        a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK ? "rollback"
                                                              : "accept");
            return msg;
        }

        if (ngx_strcmp(name, "rule") == 0) {
            what = ngx_http_cutover_change_rule(json, &toks[v], c);
            if (what != NULL) {
                return what;
            }

        } else if (ngx_strcmp(name, "percent") == 0) {
            c->dial.bp = ngx_http_cutover_change_percent(json, &toks[v],
                                                         "percent", msg);
            if (c->dial.bp < 0) {
                *code = "invalid_percent";
                return msg;
            }

        } else if (ngx_strcmp(name, "stores") == 0
                   || ngx_strcmp(name, "channels") == 0)
        {
            int stores = name[0] == 's';

            if (ngx_http_cutover_ids(r, json, toks, v,
                                     stores ? c->dial.stores
                                            : c->dial.channels,
                                     stores ? &c->dial.nstores
                                            : &c->dial.nchannels,
                                     &what) != NGX_OK)
            {
                ngx_sprintf((u_char *) msg, "%s %s%Z", name, what);
                return msg;
            }

            if (stores) {
                c->dial.has_stores = 1;
            } else {
                c->dial.has_channels = 1;
            }

        } else if (ngx_strcmp(name, "expect_version") == 0) {
            c->expect_version = toks[v].type == CUTOVER_JSON_NUMBER
                                ? ngx_atoof((u_char *) json + toks[v].start,
                                            toks[v].end - toks[v].start)
                                : NGX_ERROR;
            if (c->expect_version < 0) {
                return "expect_version must be a non-negative integer";
            }

        } else {
            ngx_sprintf((u_char *) msg, "unknown field \"%s\"%Z", name);
            return msg;
        }
    }

    if (a->ep == NGX_HTTP_CUTOVER_EP_DIAL && c->dial.bp < 0) {
        *code = "invalid_percent";
        return "percent is required";
    }

    for (what = c->reason; *what == ' '; what++) { /* void */ }

    if (*what == '\0') {
        return "reason is required: say why, for the audit trail";
    }

    return NULL;
}


static ngx_int_t ngx_http_cutover_dial_prepare(ngx_http_cutover_write_t *w);
static ngx_int_t ngx_http_cutover_change_audit(ngx_http_cutover_write_t *w,
    ngx_log_t *log);
static ngx_int_t ngx_http_cutover_change_fleet(ngx_http_cutover_write_t *w,
    ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_dial(void *data,
    cutover_state_t *cur, cutover_state_t *next, cutover_audit_entry_t *e);
static ngx_int_t ngx_http_cutover_fleet_rollback(void *data,
    cutover_state_t *cur, cutover_state_t *next, cutover_audit_entry_t *e);


ngx_int_t
ngx_http_cutover_change(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    return ngx_http_cutover_change_post(r, a, ngx_http_cutover_parse_change,
                                        ngx_http_cutover_change_write);
}


/*
 * A change call (dial, rollback, accept, ramp): its body parsed by parse
 * (a refusal answered at once, audited), then written by handler in the
 * thread pool; the request lives on until the thread is done.
 */
ngx_int_t
ngx_http_cutover_change_post(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_parse_pt parse,
    void (*handler)(void *data, ngx_log_t *log))
{
    const char                 *msg, *code;
    ngx_uint_t                  status;
    ngx_thread_task_t          *task;
    ngx_http_cutover_zone_t    *z = a->zone;
    ngx_http_cutover_write_t   *w;
    ngx_http_cutover_change_t  *c;

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_cutover_write_t));
    c = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_change_t));
    if (task == NULL || c == NULL
        || z->state_path.len + 5 > NGX_MAX_PATH)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w = task->ctx;
    w->answer.r = r;
    w->answer.a = a;
    w->c = c;
    w->cur = ngx_palloc(r->pool, sizeof(cutover_state_t));
    w->next = ngx_palloc(r->pool, sizeof(cutover_state_t));
    w->from = ngx_pnalloc(r->pool, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX);
    w->to = ngx_pnalloc(r->pool, NGX_HTTP_CUTOVER_AUDIT_RULE_MAX);
    if (w->cur == NULL || w->next == NULL || w->from == NULL
        || w->to == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = NGX_HTTP_BAD_REQUEST;
    msg = parse(r, a, c, &code, &status);
    if (msg) {
        return ngx_http_cutover_refuse(r, a, -1, status, code, msg);
    }

    task->handler = handler;
    task->event.handler = ngx_http_cutover_written;
    task->event.data = w;

    if (ngx_thread_task_post(z->thread_pool, task) != NGX_OK) {
        return ngx_http_cutover_error(r, a, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "busy", "the gateway's thread pool is "
                                      "full; retry");
    }

    r->main->count++;
    return NGX_DONE;
}


/*
 * In a thread-pool thread: no request pool, no event loop.  A rollback
 * fails safe: neither the audit trail's state nor a failed write of the
 * state file or of its entry keeps it from taking effect (each failure is
 * logged and counted).  A dial needs a sound trail with no unaccepted
 * break. Kept whole: it is one sequence under the writer lock (state file,
 * audit entry, publish), and the order of its steps is what makes it safe.
 */
void
ngx_http_cutover_change_write(void *data, ngx_log_t *log)
{
    ngx_http_cutover_write_t  *w = data;

    ngx_str_t                   tmp;
    ngx_int_t                   rc;
    ngx_uint_t                  persisted;
    cutover_audit_entry_t       e;
    cutover_state_t            *cur = w->cur, *next = w->next;
    ngx_http_cutover_admin_t   *a = w->answer.a;
    ngx_http_cutover_zone_t    *z = a->zone;
    ngx_http_cutover_shctx_t   *sh = z->sh;

    tmp.data = w->tmpname;

    ngx_http_cutover_change_begin(w, log);

    if (a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK) {

        if (z->fleet.len) {
            /* without the fleet's listener connected, no wait for it */
            rc = sh->fleet.connected ? ngx_http_cutover_change_fleet(w, log)
                                     : NGX_BUSY;
            if (rc == NGX_OK) {
                goto publish;
            }

            /* the fleet cannot be reached: rolled back here at once, and
             * written to the fleet when it can be */
            ngx_http_cutover_zone_copy(z, cur);
            ngx_memzero(&e, sizeof(e));
            e.time = ngx_time();
            e.key_id = a->key_id;
            e.reason = a->reason;
            ngx_http_cutover_fleet_pend(z, &e);
        }

        ngx_memcpy(next, cur, sizeof(cutover_state_t));
        cutover_state_rollback(next, ngx_time());
        ngx_sprintf((u_char *) w->from, "{\"version\":%uL,\"state\":\"%s\"}%Z",
                    cur->version, cur->rolled_back ? "rolled_back"
                                                   : "active");
        ngx_sprintf((u_char *) w->to, "{\"version\":%uL,\"state\":"
                    "\"rolled_back\"}%Z", next->version);
        goto rollback;
    }

    rc = ngx_http_cutover_trail_allows(w,
                                       a->ep == NGX_HTTP_CUTOVER_EP_ACCEPT,
                                       "dial");
    if (rc == NGX_ERROR) {
        goto failed;
    }

    if (rc == NGX_DECLINED) {
        goto refused;
    }

    if (a->ep == NGX_HTTP_CUTOVER_EP_ACCEPT) {
        ngx_memcpy(next, cur, sizeof(cutover_state_t));

        if (sh->audit_pending_break == 0) {
            w->answer.status = NGX_HTTP_CONFLICT;
            cutover_error_set(&w->answer.err, "nothing_to_accept",
                              "the audit trail has no unaccepted break");
            goto refused;
        }

        ngx_sprintf((u_char *) w->from, "{\"break_seq\":%uL}%Z",
                    sh->audit_pending_break);
        w->to = NULL;
        goto audit;
    }

    if (z->fleet.len) {
        rc = sh->fleet.pending ? NGX_BUSY
                               : ngx_http_cutover_change_fleet(w, log);
        if (rc == NGX_OK) {
            goto publish;
        }

        if (rc == NGX_BUSY) {
            (void) ngx_atomic_fetch_add(&sh->fleet.unavailable, 1);
            ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "fleet_unavailable", "the fleet's "
                                     "database cannot be reached (or a "
                                     "rollback made without it is not yet "
                                     "written back); no change is made "
                                     "(rollback is still possible)");
        }

        goto refused;
    }

    if (ngx_http_cutover_dial_prepare(w) != NGX_OK) {
        goto refused;
    }

    if (ngx_http_cutover_change_commit(w, log) != NGX_OK) {
        goto failed;
    }

    goto publish;

audit:

    /* an accept changes no state: only its entry */
    if (ngx_http_cutover_change_audit(w, log) != NGX_OK) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "audit_unavailable", "the audit trail cannot "
                                 "be written; the break is not accepted");
        goto failed;
    }

    ngx_http_cutover_writer_unlock(sh);
    (void) ngx_atomic_fetch_add(&sh->changes_accepted, 1);
    return;

rollback:

    persisted = ngx_http_cutover_zone_persist(z, next, log, &tmp) == NGX_OK;
    w->persisted = 1;

    if (ngx_http_cutover_change_audit(w, log) != NGX_OK) {
        (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cutover zone \"%V\": rollback by \"%s\" applied "
                      "without its audit entry (the trail cannot be "
                      "written): %s", &z->name, a->key_id, a->reason);
    }

    if (!persisted || ngx_http_cutover_zone_commit(z, next, &tmp, log)
                      != NGX_OK)
    {
        w->persisted = 0;
        (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cutover zone \"%V\": rollback applied in memory only: "
                      "the state file cannot be written, a restart would "
                      "load the state before it", &z->name);
    }

publish:

    ngx_http_cutover_change_end(w, NGX_OK, log);
    return;

failed:

    ngx_http_cutover_change_end(w, NGX_ERROR, log);
    return;

refused:

    ngx_http_cutover_change_end(w, NGX_DECLINED, log);
}


/* A change's start under the writer lock: the refusals counted so far
 * written, the current state copied, the trail's end read again if it
 * moved (a damaged end recorded). */
void
ngx_http_cutover_change_begin(ngx_http_cutover_write_t *w, ngx_log_t *log)
{
    ngx_http_cutover_zone_t  *z = w->answer.a->zone;

    w->answer.status = NGX_HTTP_OK;

    ngx_http_cutover_writer_lock(z->sh);

    ngx_http_cutover_refusals_flush(z, log);
    ngx_http_cutover_zone_copy(z, w->cur);
    (void) ngx_http_cutover_audit_sync(z, log);
}


/*
 * Whether the trail lets a dial or a ramp (`what`) through (a rollback
 * needs nothing): NGX_ERROR when it cannot be read or written, NGX_DECLINED
 * while a break waits to be accepted (unless this is the accept); the
 * answer says which.
 */
ngx_int_t
ngx_http_cutover_trail_allows(ngx_http_cutover_write_t *w, ngx_uint_t accept,
    const char *what)
{
    ngx_http_cutover_shctx_t  *sh = w->answer.a->zone->sh;

    if (!sh->audit_ok) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "audit_unavailable", "the audit trail cannot "
                                 "be read or written; no change is made "
                                 "(rollback is still possible)");
        return NGX_ERROR;
    }

    if (sh->audit_pending_break && !accept) {
        w->answer.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        cutover_error_set(&w->answer.err, "audit_break_unaccepted",
                          "the audit trail was damaged (break recorded as "
                          "seq %llu): an admin must accept it (cutoverctl "
                          "audit accept --reason ...) before a %s; "
                          "rollback is still possible",
                          (unsigned long long) sh->audit_pending_break, what);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* A change's end: published and counted (NGX_OK), or refused
 * (NGX_DECLINED; NGX_ERROR when writing failed, counted as such), the
 * refusal itself audited as every signed refused attempt is; the writer
 * lock released. */
void
ngx_http_cutover_change_end(ngx_http_cutover_write_t *w, ngx_int_t rc,
    ngx_log_t *log)
{
    ngx_http_cutover_zone_t   *z = w->answer.a->zone;
    ngx_http_cutover_shctx_t  *sh = z->sh;

    if (rc == NGX_OK) {
        ngx_http_cutover_zone_publish(z, w->next);
        ngx_http_cutover_writer_unlock(sh);
        (void) ngx_atomic_fetch_add(&sh->changes_accepted, 1);
        return;
    }

    if (rc == NGX_ERROR) {
        (void) ngx_atomic_fetch_add(&sh->persist_failures, 1);
    }

    ngx_http_cutover_refusal_audit(&w->answer, log);
    ngx_http_cutover_writer_unlock(sh);
}


/* The dial's next state and the rule before and after, for its entry. */
static ngx_int_t
ngx_http_cutover_dial_prepare(ngx_http_cutover_write_t *w)
{
    int                         n;
    cutover_state_t            *cur = w->cur, *next = w->next;
    ngx_http_cutover_change_t  *c = w->c;

    if (c->expect_version >= 0
        && (uint64_t) c->expect_version != cur->version)
    {
        w->answer.status = NGX_HTTP_CONFLICT;
        cutover_error_set(&w->answer.err, "version_conflict",
                          "expect_version %lld but the state is at version "
                          "%llu", (long long) c->expect_version,
                          (unsigned long long) cur->version);
        return NGX_ERROR;
    }

    if (cutover_state_dial(next, cur, &c->dial, ngx_time(), &w->answer.err)
        != 0)
    {
        w->answer.status = NGX_HTTP_BAD_REQUEST;
        return NGX_ERROR;
    }

    n = cutover_state_find(cur, c->dial.rule);
    if (n < 0) {
        w->from = NULL;

    } else {
        ngx_http_cutover_audit_rule(cur, n, w->from);
    }

    ngx_http_cutover_audit_rule(next, cutover_state_find(next, c->dial.rule),
                                w->to);

    return NGX_OK;
}


/*
 * A dial or rollback through the fleet (ngx_http_cutover_fleet.c): made in
 * PostgreSQL from the fleet's state, then written here.  NGX_OK: next is
 * the new state, to publish; NGX_DECLINED: refused (the answer says why);
 * NGX_BUSY: the fleet cannot be reached.
 */
static ngx_int_t
ngx_http_cutover_change_fleet(ngx_http_cutover_write_t *w, ngx_log_t *log)
{
    ngx_int_t                  rc;
    cutover_audit_entry_t      e;
    ngx_http_cutover_admin_t  *a = w->answer.a;

    ngx_memzero(&e, sizeof(e));
    e.time = ngx_time();
    e.key_id = a->key_id;
    e.action = ngx_http_cutover_action(a);
    e.result = "accepted";
    e.reason = a->reason;

    rc = ngx_http_cutover_fleet_write(a->zone,
                                      a->ep == NGX_HTTP_CUTOVER_EP_ROLLBACK
                                      ? ngx_http_cutover_fleet_rollback
                                      : ngx_http_cutover_fleet_dial,
                                      w, w->cur, w->next, &e, log);
    if (rc != NGX_OK) {
        return rc;
    }

    (void) ngx_http_cutover_fleet_local(a->zone, w->next, &e, log);

    return NGX_OK;
}


static ngx_int_t
ngx_http_cutover_fleet_dial(void *data, cutover_state_t *cur,
    cutover_state_t *next, cutover_audit_entry_t *e)
{
    ngx_http_cutover_write_t  *w = data;

    if (ngx_http_cutover_dial_prepare(w) != NGX_OK) {
        return NGX_DECLINED;
    }

    e->from = w->from;
    e->to = w->to;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cutover_fleet_rollback(void *data, cutover_state_t *cur,
    cutover_state_t *next, cutover_audit_entry_t *e)
{
    ngx_http_cutover_write_t  *w = data;

    ngx_memcpy(next, cur, sizeof(cutover_state_t));
    cutover_state_rollback(next, e->time);
    ngx_sprintf((u_char *) w->from, "{\"version\":%uL,\"state\":\"%s\"}%Z",
                cur->version, cur->rolled_back ? "rolled_back" : "active");
    ngx_sprintf((u_char *) w->to, "{\"version\":%uL,\"state\":"
                "\"rolled_back\"}%Z", next->version);
    e->from = w->from;
    e->to = w->to;

    return NGX_OK;
}


/* The accepted change's entry; the caller holds the writer lock. */
static ngx_int_t
ngx_http_cutover_change_audit(ngx_http_cutover_write_t *w, ngx_log_t *log)
{
    cutover_audit_entry_t      e;
    ngx_http_cutover_admin_t  *a = w->answer.a;

    ngx_memzero(&e, sizeof(e));
    e.time = ngx_time();
    e.key_id = a->key_id;
    e.action = ngx_http_cutover_action(a);
    e.result = "accepted";
    e.from = w->from;
    e.to = w->to;
    e.reason = a->reason;

    return ngx_http_cutover_audit_append(a->zone, &e, log);
}


/*
 * A dial's or a ramp's next state made durable, under the writer lock: the
 * state file written aside, the entry appended, the state file put in
 * place.  NGX_OK, or NGX_ERROR with the refusal in the answer and nothing
 * changed.
 */
ngx_int_t
ngx_http_cutover_change_commit(ngx_http_cutover_write_t *w, ngx_log_t *log)
{
    ngx_str_t                 tmp;
    ngx_http_cutover_zone_t  *z = w->answer.a->zone;

    tmp.data = w->tmpname;

    if (ngx_http_cutover_zone_persist(z, w->next, log, &tmp) != NGX_OK) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "persist_failed", "the state file cannot be "
                                 "written; no change is made");
        return NGX_ERROR;
    }

    if (ngx_http_cutover_change_audit(w, log) != NGX_OK) {
        (void) ngx_delete_file(tmp.data);
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "audit_unavailable", "the audit trail cannot "
                                 "be written; no change is made");
        return NGX_ERROR;
    }

    if (ngx_http_cutover_zone_commit(z, w->next, &tmp, log) != NGX_OK) {
        ngx_http_cutover_refused(&w->answer, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "persist_failed", "the state file cannot be "
                                 "written; no change is made");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Back in the event loop, for a change or a refusal: the answer. */
void
ngx_http_cutover_written(ngx_event_t *ev)
{
    ngx_int_t                   rc;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_cutover_write_t   *w;
    ngx_http_cutover_answer_t  *ans = ev->data;

    r = ans->r;
    c = r->connection;

    if (ans->status == NGX_HTTP_OK) {
        /* only a change is answered 200 */
        w = (ngx_http_cutover_write_t *) ans;

        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "cutover zone \"%V\": %s by \"%s\", version %uL: %s",
                      &ans->a->zone->name, ngx_http_cutover_action(ans->a),
                      ans->a->key_id, w->next->version, ans->a->reason);

        rc = ngx_http_cutover_state_reply(r, ans->a, w->next, 0);

    } else {
        rc = ngx_http_cutover_error(r, ans->a, ans->status, ans->err.name,
                                    ans->err.message);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
