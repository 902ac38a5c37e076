/*
 * ngx_http_cutover_admin_metrics: the Prometheus text, signed (GET
 * metrics) or for scrapers (cutover_metrics).
 */

#include "ngx_http_cutover_admin.h"


/* cutover_metrics: the Prometheus text without a signature, for scrapers
 * (the location is protected with allow/deny instead). */
ngx_int_t
ngx_http_cutover_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_cutover_admin_t     *a;
    ngx_http_cutover_loc_conf_t  *lcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cutover_module);

    a = ngx_pcalloc(r->pool, sizeof(ngx_http_cutover_admin_t));
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a->zone = lcf->metrics_zone->data;
    a->ep = NGX_HTTP_CUTOVER_EP_METRICS;

    return ngx_http_cutover_metrics(r, a);
}


/*
 * GET metrics: the Prometheus text.  Kept whole (past 80 lines): it is one
 * buffer written metric after metric, in the order scrapers see them.
 */
ngx_int_t
ngx_http_cutover_metrics(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    char                           pct[16];
    u_char                        *buf, *p;
    size_t                         size;
    ngx_str_t                     *zn = &a->zone->name;
    ngx_uint_t                     i, c;
    cutover_rule_t                *rule;
    cutover_state_t               *st;
    ngx_http_cutover_shctx_t      *sh = a->zone->sh;
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cutover_module);
    st = ngx_http_cutover_zone_snapshot(a->zone, r->pool);

    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 12288 + st->nrules * 600
           + ngx_http_cutover_guard_metrics_size(st)
           + NGX_HTTP_CUTOVER_FLEET_METRICS_MAX
           + ngx_http_cutover_logbuf_metrics_size(cmcf);
    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf,
            "# HELP cutover_requests_total Requests routed, by side and rule.\n"
            "# TYPE cutover_requests_total counter\n");

    for (i = 0; i < st->nrules; i++) {
        rule = &st->rules[i];
        c = rule->counter % CUTOVER_MAX_RULES;
        p = ngx_sprintf(p,
                "cutover_requests_total{zone=\"%V\",side=\"new\","
                "rule=\"%s\"} %uA\n"
                "cutover_requests_total{zone=\"%V\",side=\"legacy\","
                "rule=\"%s\"} %uA\n",
                zn, rule->id, sh->requests[c][1],
                zn, rule->id, sh->requests[c][0]);
    }

    p = ngx_sprintf(p,
            "# HELP cutover_dial_percent Share of a rule's buckets on the "
            "new core.\n# TYPE cutover_dial_percent gauge\n");

    for (i = 0; i < st->nrules; i++) {
        cutover_percent_format(st->rules[i].bp, pct);
        p = ngx_sprintf(p, "cutover_dial_percent{zone=\"%V\",rule=\"%s\"} "
                        "%s\n", zn, st->rules[i].id, pct);
    }

    p = ngx_sprintf(p,
            "# HELP cutover_state_version Version of the dial state.\n"
            "# TYPE cutover_state_version gauge\n"
            "cutover_state_version{zone=\"%V\"} %uL\n"
            "# HELP cutover_rolled_back 1 while the zone is rolled back.\n"
            "# TYPE cutover_rolled_back gauge\n"
            "cutover_rolled_back{zone=\"%V\"} %uD\n"
            "# HELP cutover_empty_key_total Requests without a key, sent to "
            "legacy.\n# TYPE cutover_empty_key_total counter\n"
            "cutover_empty_key_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_auth_failures_total Admin requests refused "
            "before their signature was accepted.\n"
            "# TYPE cutover_auth_failures_total counter\n",
            zn, st->version, zn, st->rolled_back, zn, sh->empty_key);

    for (i = 0; i < NGX_HTTP_CUTOVER_AUTH_NREASONS; i++) {
        p = ngx_sprintf(p, "cutover_auth_failures_total{zone=\"%V\","
                        "reason=\"%s\"} %uA\n", zn,
                        ngx_http_cutover_auth_reasons[i],
                        sh->auth_failures[i]);
    }

    p = ngx_sprintf(p,
            "# HELP cutover_admin_forbidden_total Signed admin requests "
            "refused for their role.\n"
            "# TYPE cutover_admin_forbidden_total counter\n"
            "cutover_admin_forbidden_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_admin_changes_total Dial and rollback requests.\n"
            "# TYPE cutover_admin_changes_total counter\n"
            "cutover_admin_changes_total{zone=\"%V\",result=\"accepted\"} "
            "%uA\n"
            "cutover_admin_changes_total{zone=\"%V\",result=\"refused\"} "
            "%uA\n"
            "# HELP cutover_state_persist_failures_total Changes refused "
            "because the state or audit file could not be written.\n"
            "# TYPE cutover_state_persist_failures_total counter\n"
            "cutover_state_persist_failures_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_nonce_table_full_total Signed requests refused "
            "because the replay table was full.\n"
            "# TYPE cutover_nonce_table_full_total counter\n"
            "cutover_nonce_table_full_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_routing_torn_reads_total Requests sent to legacy "
            "because the dial state was being rewritten.\n"
            "# TYPE cutover_routing_torn_reads_total counter\n"
            "cutover_routing_torn_reads_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_audit_ok 0 when the audit trail cannot be "
            "written (changes are refused).\n"
            "# TYPE cutover_audit_ok gauge\n"
            "cutover_audit_ok{zone=\"%V\"} %ui\n"
            "# HELP cutover_audit_break_pending 1 while the audit trail "
            "holds a break no admin accepted (dial is refused).\n"
            "# TYPE cutover_audit_break_pending gauge\n"
            "cutover_audit_break_pending{zone=\"%V\"} %ui\n"
            "# HELP cutover_audit_refusals_pending Unauthenticated change "
            "attempts refused and counted, not yet in a \"refusals\" "
            "entry.\n"
            "# TYPE cutover_audit_refusals_pending gauge\n"
            "cutover_audit_refusals_pending{zone=\"%V\"} %ui\n"
            "# HELP cutover_records_total Exchanges written to the dual-run "
            "log.\n# TYPE cutover_records_total counter\n"
            "cutover_records_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_records_truncated_total Records whose response "
            "body was cut at cutover_body_limit (hash kept).\n"
            "# TYPE cutover_records_truncated_total counter\n"
            "cutover_records_truncated_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_records_dropped_total Exchanges that should have "
            "been recorded and were not.\n"
            "# TYPE cutover_records_dropped_total counter\n",
            zn, sh->forbidden, zn, sh->changes_accepted, zn,
            sh->changes_refused, zn, sh->persist_failures, zn,
            sh->nonce_full, zn, sh->torn_reads, zn, sh->audit_ok,
            zn, (ngx_uint_t) (sh->audit_pending_break || sh->audit_damaged),
            zn, sh->refusals_pending_total, zn, sh->records, zn,
            sh->records_truncated);

    p = ngx_sprintf(p,
            "# HELP cutover_admin_refusals_total Unauthenticated change "
            "attempts refused, by reason (aggregated in the audit trail).\n"
            "# TYPE cutover_admin_refusals_total counter\n");

    for (i = 0; i < NGX_HTTP_CUTOVER_REFUSE_NREASONS; i++) {
        p = ngx_sprintf(p, "cutover_admin_refusals_total{zone=\"%V\","
                        "reason=\"%s\"} %uA\n", zn,
                        ngx_http_cutover_auth_reasons[i], sh->refusals[i]);
    }

    for (i = 0; i < NGX_HTTP_CUTOVER_DROP_NREASONS; i++) {
        p = ngx_sprintf(p, "cutover_records_dropped_total{zone=\"%V\","
                        "reason=\"%s\"} %uA\n", zn,
                        ngx_http_cutover_drop_names[i],
                        sh->records_dropped[i]);
    }

    p = ngx_http_cutover_guard_metrics(a->zone, st, p);
    p = ngx_http_cutover_fleet_metrics(a->zone, p);
    p = ngx_http_cutover_logbuf_metrics(cmcf, p);

    return ngx_http_cutover_send(r, NGX_HTTP_OK, buf, p - buf,
                                 "text/plain; version=0.0.4");
}
