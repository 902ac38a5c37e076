/*
 * ngx_http_cutover_admin.h: what the admin API's files share (not for
 * the rest of the module, which sees ngx_http_cutover.h).
 */

#ifndef NGX_HTTP_CUTOVER_ADMIN_H
#define NGX_HTTP_CUTOVER_ADMIN_H

#include "ngx_http_cutover.h"


#define NGX_HTTP_CUTOVER_MAX_TOKENS   (2 * CUTOVER_MAX_IDS + 64)
#define NGX_HTTP_CUTOVER_REASON_MAX   1024
#define NGX_HTTP_CUTOVER_HISTORY_MAX  1000
#define NGX_HTTP_CUTOVER_HISTORY_WINDOW  (256 * 1024)  /* > 2 lines */
#define NGX_HTTP_CUTOVER_HISTORY_OUT     (1024 * 1024)
#define NGX_HTTP_CUTOVER_HISTORY_SCAN    (64 * 1024 * 1024)
#define NGX_HTTP_CUTOVER_AUDIT_RULE_MAX  12288


typedef enum {
    NGX_HTTP_CUTOVER_EP_STATUS = 0,
    NGX_HTTP_CUTOVER_EP_METRICS,
    NGX_HTTP_CUTOVER_EP_HISTORY,
    NGX_HTTP_CUTOVER_EP_DIAL,
    NGX_HTTP_CUTOVER_EP_ROLLBACK,
    NGX_HTTP_CUTOVER_EP_ACCEPT,
    NGX_HTTP_CUTOVER_EP_RAMP,
    NGX_HTTP_CUTOVER_EP_UNKNOWN
} ngx_http_cutover_endpoint_e;


typedef struct {
    ngx_http_cutover_zone_t      *zone;
    ngx_http_cutover_endpoint_e   ep;
    const char                   *key_id;     /* once known */
    const char                   *reason;     /* once known */
    u_char                       *body;
    size_t                        body_len;
} ngx_http_cutover_admin_t;


/* The answer to a change attempt that a thread-pool thread writes: status
 * and, when not 200, the error (copied: the caller's may be on its stack).
 * A refusal is only this; a change (ngx_http_cutover_write_t) starts with
 * it. */
typedef struct {
    ngx_http_request_t        *r;
    ngx_http_cutover_admin_t  *a;
    ngx_uint_t                 status;
    ngx_uint_t                 aggregated;   /* unauthenticated refusal */
    cutover_error_t            err;
} ngx_http_cutover_answer_t;


typedef struct {
    cutover_dial_t   dial;
    int64_t          expect_version;      /* -1: not given */
    char             reason[NGX_HTTP_CUTOVER_REASON_MAX + 1];

    /* POST ramp */
    int32_t          ramp_to;
    int32_t          ramp_step;
    int64_t          ramp_every;
} ngx_http_cutover_change_t;


/* A dial or rollback (or a ramp), written by a thread-pool thread: the
 * state file, the audit entry and the directory are fsynced there, never
 * in the event loop; the answer goes out when the thread is done.  The
 * guard's rollback goes the same way without a request (answer.r NULL). */
typedef struct {
    ngx_http_cutover_answer_t   answer;       /* first: see the answer */
    ngx_http_cutover_change_t  *c;
    cutover_state_t            *cur;
    cutover_state_t            *next;
    char                       *from;
    char                       *to;
    ngx_uint_t                  persisted;    /* a rollback's state file */
    u_char                      tmpname[NGX_MAX_PATH];
} ngx_http_cutover_write_t;


/* the auth reasons, then the other unauthenticated refusals */
extern const char  *ngx_http_cutover_auth_reasons[];

ngx_int_t ngx_http_cutover_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len, const char *type);
ngx_int_t ngx_http_cutover_error(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_uint_t status, const char *code,
    const char *message);
ngx_uint_t ngx_http_cutover_authenticate(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_int_t *out);
ngx_int_t ngx_http_cutover_state_reply(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, cutover_state_t *st, ngx_uint_t counters);
ngx_int_t ngx_http_cutover_metrics(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
ngx_int_t ngx_http_cutover_history(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
const char *ngx_http_cutover_action(ngx_http_cutover_admin_t *a);
void ngx_http_cutover_refused(ngx_http_cutover_answer_t *ans,
    ngx_uint_t status, const char *code, const char *message);
void ngx_http_cutover_refusal_audit(ngx_http_cutover_answer_t *ans,
    ngx_log_t *log);
void ngx_http_cutover_discard(ngx_http_request_t *r);
ngx_int_t ngx_http_cutover_refuse(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_int_t reason, ngx_uint_t status,
    const char *code, const char *message);
void ngx_http_cutover_refusals_flush(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log);
ngx_int_t ngx_http_cutover_change(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);
void ngx_http_cutover_written(ngx_event_t *ev);
void ngx_http_cutover_change_write(void *data, ngx_log_t *log);
void ngx_http_cutover_audit_rule(cutover_state_t *st, int n, char *buf);

/* ngx_http_cutover_admin_ramp.c */
ngx_int_t ngx_http_cutover_ramp(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a);

/* parses a change call's body: NULL, or the refusal with its code (and
 * *status when it is not 400) */
typedef const char *(*ngx_http_cutover_parse_pt)(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_change_t *c,
    const char **code, ngx_uint_t *status);

ngx_int_t ngx_http_cutover_change_post(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_parse_pt parse,
    void (*handler)(void *data, ngx_log_t *log));
ngx_int_t ngx_http_cutover_change_commit(ngx_http_cutover_write_t *w,
    ngx_log_t *log);
void ngx_http_cutover_change_begin(ngx_http_cutover_write_t *w,
    ngx_log_t *log);
ngx_int_t ngx_http_cutover_trail_allows(ngx_http_cutover_write_t *w,
    ngx_uint_t accept, const char *what);
void ngx_http_cutover_change_end(ngx_http_cutover_write_t *w, ngx_int_t rc,
    ngx_log_t *log);
const char *ngx_http_cutover_change_rule(const char *json,
    cutover_json_tok_t *t, ngx_http_cutover_change_t *c);
int32_t ngx_http_cutover_change_percent(const char *json,
    cutover_json_tok_t *t, const char *name, char *msg);

/* the start of a change body and its members' names (admin_dial.c) */
const char *ngx_http_cutover_change_open(ngx_http_request_t *r,
    ngx_http_cutover_admin_t *a, ngx_http_cutover_change_t *c,
    ngx_uint_t max, cutover_json_tok_t **toks, char **msg,
    const char **code);
const char *ngx_http_cutover_change_field(ngx_http_cutover_admin_t *a,
    cutover_json_tok_t *toks, int i, char *name, size_t size, char *msg);

#endif /* NGX_HTTP_CUTOVER_ADMIN_H */
