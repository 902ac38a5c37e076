/*
 * ngx_http_cutover_fleet: fleet mode.  The dial state and the audit trail
 * of a zone live in PostgreSQL (schema "cutover"); every gateway follows.
 *
 * Every libpq call runs in a thread of nginx's thread pool, never in the
 * event loop:
 *
 *   - a change (ngx_http_cutover_fleet_write) is one transaction made by
 *     the thread that writes the change: the zone's row locked, the change
 *     computed from the fleet's state, the version compare-and-set, the
 *     audit entry chained on the fleet's last one, NOTIFY, commit;
 *
 *   - one worker, elected through the zone (sh->fleet.owner, taken over
 *     when that process is gone), keeps a LISTEN connection: its listener
 *     task applies the fleet's state when it moved, writes back a rollback
 *     made while PostgreSQL was out of reach, then waits at most
 *     NGX_HTTP_CUTOVER_FLEET_WAIT ms for a notification and returns; the
 *     event loop posts it again at once (or after a backoff when the
 *     database cannot be reached).
 */

#include "ngx_http_cutover.h"

#include <libpq-fe.h>
#include <poll.h>


#define NGX_HTTP_CUTOVER_FLEET_WAIT         300     /* ms a listen lasts */
#define NGX_HTTP_CUTOVER_FLEET_ELECT        500     /* ms between tries */
#define NGX_HTTP_CUTOVER_FLEET_BACKOFF_MIN  100
#define NGX_HTTP_CUTOVER_FLEET_BACKOFF_MAX  2000
#define NGX_HTTP_CUTOVER_FLEET_REPORT       5       /* s, gateways row */


/* The schema, version 1; created under an advisory lock so that gateways
 * starting together do not race on it. */
static const char  ngx_http_cutover_fleet_schema[] =
    "SELECT pg_advisory_xact_lock(7402119);"
    "CREATE SCHEMA IF NOT EXISTS cutover;"
    "CREATE TABLE IF NOT EXISTS cutover.schema_version ("
    "  version integer NOT NULL);"
    "INSERT INTO cutover.schema_version SELECT 1"
    "  WHERE NOT EXISTS (SELECT 1 FROM cutover.schema_version);"
    "CREATE TABLE IF NOT EXISTS cutover.zones ("
    "  zone text PRIMARY KEY,"
    "  version bigint NOT NULL,"
    "  state text NOT NULL,"
    "  changed_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS cutover.audit ("
    "  zone text NOT NULL,"
    "  seq bigint NOT NULL,"
    "  version bigint NOT NULL,"
    "  gateway text NOT NULL,"
    "  time bigint NOT NULL,"
    "  key_id text NOT NULL,"
    "  action text NOT NULL,"
    "  result text NOT NULL,"
    "  from_json text,"
    "  to_json text,"
    "  reason text NOT NULL,"
    "  hash text NOT NULL,"
    "  line text NOT NULL,"
    "  PRIMARY KEY (zone, seq));"
    "CREATE TABLE IF NOT EXISTS cutover.gateways ("
    "  zone text NOT NULL,"
    "  gateway text NOT NULL,"
    "  version_applied bigint NOT NULL,"
    "  last_contact timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (zone, gateway));";


/* Per worker: the listener's connection and its task. */
typedef struct {
    ngx_http_cutover_zone_t  *zone;
    PGconn                   *conn;
    ngx_thread_task_t        *task;
    ngx_event_t               elect;
    ngx_msec_t                backoff;
    ngx_uint_t                busy;
    ngx_uint_t                ok;           /* the last run reached it */
    ngx_uint_t                loaded;       /* the pending file was read */
    ngx_atomic_uint_t         reported;     /* version in cutover.gateways */
    time_t                    reported_at;
    ngx_log_t                *log;
    cutover_state_t          *cur;
    cutover_state_t          *next;
    char                     *text;
} ngx_http_cutover_fleet_t;


static PGconn *ngx_http_cutover_fleet_connect(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_exec(PGconn *conn, const char *sql,
    ngx_log_t *log);
static PGresult *ngx_http_cutover_fleet_query(PGconn *conn, const char *sql,
    int n, const char *const *params, ExecStatusType expect, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_txn(PGconn *conn,
    ngx_http_cutover_zone_t *zone, ngx_http_cutover_fleet_change_pt change,
    void *data, cutover_state_t *cur, cutover_state_t *next,
    cutover_audit_entry_t *e, char *text, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_entry(PGconn *conn,
    ngx_http_cutover_zone_t *zone, const char *version,
    cutover_audit_entry_t *e, char *text, ngx_log_t *log);
static void ngx_http_cutover_fleet_pending_path(
    ngx_http_cutover_zone_t *zone, u_char *buf);
static void ngx_http_cutover_fleet_pending_load(ngx_http_cutover_fleet_t *f,
    ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_sync(ngx_http_cutover_fleet_t *f,
    ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_first(ngx_http_cutover_fleet_t *f,
    const char **p, ngx_log_t *log);
static void ngx_http_cutover_fleet_apply(ngx_http_cutover_fleet_t *f,
    PGresult *entries, uint64_t local, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_attach(ngx_http_cutover_fleet_t *f,
    ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_report(ngx_http_cutover_fleet_t *f,
    ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_writeback(
    ngx_http_cutover_fleet_t *f, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_fleet_rollback_cb(void *data,
    cutover_state_t *cur, cutover_state_t *next, cutover_audit_entry_t *e);
static void ngx_http_cutover_fleet_listen(void *data, ngx_log_t *log);
static void ngx_http_cutover_fleet_listened(ngx_event_t *ev);
static void ngx_http_cutover_fleet_elect(ngx_event_t *ev);


static PGconn *
ngx_http_cutover_fleet_connect(ngx_http_cutover_zone_t *zone, ngx_log_t *log)
{
    PGconn       *conn;
    const char   *vals[9];

    /* bounds on every wait, so that no thread (nor the writer lock it may
     * hold) waits on a database that stopped answering; the conninfo
     * given in fleet= overrides any of them */
    static const char *const  keys[] = {
        "connect_timeout", "tcp_user_timeout", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "options",
        "application_name", "dbname", NULL
    };

    vals[0] = "2";
    vals[1] = "5000";
    vals[2] = "5";
    vals[3] = "2";
    vals[4] = "2";
    vals[5] = "-c statement_timeout=5000 -c lock_timeout=3000";
    vals[6] = "cutover-gateway";
    vals[7] = (char *) zone->fleet.data;
    vals[8] = NULL;

    conn = PQconnectdbParams(keys, vals, 1);

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cutover zone \"%V\": fleet database unreachable: %s",
                      &zone->name,
                      conn ? PQerrorMessage(conn) : "out of memory");
        if (conn) {
            PQfinish(conn);
        }

        (void) ngx_atomic_fetch_add(&zone->sh->fleet.errors, 1);
        return NULL;
    }

    if (ngx_http_cutover_fleet_exec(conn, "BEGIN", log) != NGX_OK
        || ngx_http_cutover_fleet_exec(conn, ngx_http_cutover_fleet_schema,
                                       log) != NGX_OK
        || ngx_http_cutover_fleet_exec(conn, "COMMIT", log) != NGX_OK)
    {
        PQfinish(conn);
        (void) ngx_atomic_fetch_add(&zone->sh->fleet.errors, 1);
        return NULL;
    }

    return conn;
}


static ngx_int_t
ngx_http_cutover_fleet_exec(PGconn *conn, const char *sql, ngx_log_t *log)
{
    PGresult  *res;

    /* commands only (a script's status is its last statement's) */
    res = PQexec(conn, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover fleet: %s",
                      PQerrorMessage(conn));
        PQclear(res);
        return NGX_ERROR;
    }

    PQclear(res);
    return NGX_OK;
}


static PGresult *
ngx_http_cutover_fleet_query(PGconn *conn, const char *sql, int n,
    const char *const *params, ExecStatusType expect, ngx_log_t *log)
{
    PGresult  *res;

    res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != expect) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover fleet: %s",
                      PQerrorMessage(conn));
        PQclear(res);
        return NULL;
    }

    return res;
}


/*
 * A change through the fleet, in a thread-pool thread, the caller holding
 * the writer lock.  change() is given the fleet's current state in cur and
 * fills next and the entry's from/to (e's time, key_id, action, result and
 * reason are the caller's).  NGX_OK: committed and notified, next is the
 * fleet's new state; NGX_DECLINED: change() refused it, nothing written;
 * NGX_BUSY: the fleet cannot be reached or the transaction failed.
 *
 * Every change of a fleet zone goes through here: the admin API's dial and
 * rollback today, and any other writer of the dial (a ramp step, a guard
 * trip) calls it the same way.
 */
ngx_int_t
ngx_http_cutover_fleet_write(ngx_http_cutover_zone_t *zone,
    ngx_http_cutover_fleet_change_pt change, void *data,
    cutover_state_t *cur, cutover_state_t *next, cutover_audit_entry_t *e,
    ngx_log_t *log)
{
    char       *text;
    PGconn     *conn;
    ngx_int_t   rc;

    text = ngx_alloc(CUTOVER_AUDIT_LINE_MAX > CUTOVER_STATE_TEXT_MAX
                     ? CUTOVER_AUDIT_LINE_MAX + 1 : CUTOVER_STATE_TEXT_MAX + 1,
                     log);
    if (text == NULL) {
        return NGX_BUSY;
    }

    conn = ngx_http_cutover_fleet_connect(zone, log);
    if (conn == NULL) {
        ngx_free(text);
        return NGX_BUSY;
    }

    rc = ngx_http_cutover_fleet_txn(conn, zone, change, data, cur, next, e,
                                    text, log);

    if (rc == NGX_ERROR) {
        (void) ngx_http_cutover_fleet_exec(conn, "ROLLBACK", log);
        (void) ngx_atomic_fetch_add(&zone->sh->fleet.errors, 1);
        rc = NGX_BUSY;
    }

    PQfinish(conn);
    ngx_free(text);

    return rc;
}


/* One change in one transaction: the zone's row locked, the change made
 * from the fleet's state, the version compare-and-set, the entry, NOTIFY.
 * Kept whole (past 80 lines): its steps in the order that makes the
 * compare-and-set and the chain hold. */
static ngx_int_t
ngx_http_cutover_fleet_txn(PGconn *conn, ngx_http_cutover_zone_t *zone,
    ngx_http_cutover_fleet_change_pt change, void *data,
    cutover_state_t *cur, cutover_state_t *next, cutover_audit_entry_t *e,
    char *text, ngx_log_t *log)
{
    int               n;
    char              ver[32], oldver[32];
    ngx_int_t         rc;
    PGresult         *res;
    const char       *p[4];
    cutover_error_t   err;

    if (ngx_http_cutover_fleet_exec(conn, "BEGIN", log) != NGX_OK) {
        return NGX_ERROR;
    }

    p[0] = (char *) zone->name.data;

    res = ngx_http_cutover_fleet_query(conn,
              "SELECT version, state FROM cutover.zones WHERE zone = $1 "
              "FOR UPDATE", 1, p, PGRES_TUPLES_OK, log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    if (PQntuples(res) == 1) {
        if (cutover_state_decode(cur, PQgetvalue(res, 0, 1),
                                 PQgetlength(res, 0, 1), &err) != 0)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": the "
                          "fleet's state is not valid: %s", &zone->name,
                          err.message);
            PQclear(res);
            return NGX_ERROR;
        }

    } else {
        /* the first change of this zone in the fleet: from our state */
        ngx_http_cutover_zone_copy(zone, cur);
    }

    PQclear(res);

    rc = change(data, cur, next, e);
    if (rc != NGX_OK) {
        (void) ngx_http_cutover_fleet_exec(conn, "ROLLBACK", log);
        return NGX_DECLINED;
    }

    n = cutover_state_encode(next, (char *) zone->name.data, text,
                             CUTOVER_STATE_TEXT_MAX);
    if (n < 0) {
        return NGX_ERROR;
    }

    text[n] = '\0';
    ngx_sprintf((u_char *) ver, "%uL%Z", next->version);
    ngx_sprintf((u_char *) oldver, "%uL%Z", cur->version);
    p[1] = ver;
    p[2] = text;
    p[3] = oldver;

    /* the compare-and-set: the row is locked, the version must not move */
    res = ngx_http_cutover_fleet_query(conn,
              "INSERT INTO cutover.zones (zone, version, state) "
              "VALUES ($1, $2, $3) ON CONFLICT (zone) DO UPDATE "
              "SET version = $2, state = $3, changed_at = now() "
              "WHERE cutover.zones.version = $4", 4, p,
              PGRES_COMMAND_OK, log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    n = ngx_atoi((u_char *) PQcmdTuples(res),
                 ngx_strlen(PQcmdTuples(res)));
    PQclear(res);

    if (n != 1) {
        ngx_log_error(NGX_LOG_WARN, log, 0, "cutover zone \"%V\": the "
                      "fleet's version moved under the change", &zone->name);
        return NGX_ERROR;
    }

    if (ngx_http_cutover_fleet_entry(conn, zone, ver, e, text, log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_cutover_fleet_exec(conn, "NOTIFY cutover_fleet", log)
        != NGX_OK
        || ngx_http_cutover_fleet_exec(conn, "COMMIT", log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    zone->sh->fleet.version_seen = next->version;

    return NGX_OK;
}


/* The change's entry in the fleet's trail, chained on its last one, in
 * the change's transaction.  text is the caller's buffer. */
static ngx_int_t
ngx_http_cutover_fleet_entry(PGconn *conn, ngx_http_cutover_zone_t *zone,
    const char *version, cutover_audit_entry_t *e, char *text,
    ngx_log_t *log)
{
    int                     n;
    char                    seq[32], tm[32], prev[65], hash[65];
    PGresult               *res;
    const char             *p[13];
    cutover_audit_entry_t   fe;

    p[0] = (char *) zone->name.data;
    p[1] = version;

    res = ngx_http_cutover_fleet_query(conn,
              "SELECT seq, hash FROM cutover.audit WHERE zone = $1 "
              "ORDER BY seq DESC LIMIT 1", 1, p, PGRES_TUPLES_OK, log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    fe = *e;
    fe.pending_break = 0;

    if (PQntuples(res) == 1) {
        fe.seq = (uint64_t) ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                                      PQgetlength(res, 0, 0)) + 1;
        ngx_cpystrn((u_char *) prev, (u_char *) PQgetvalue(res, 0, 1), 65);

    } else {
        fe.seq = 1;
        ngx_cpystrn((u_char *) prev, (u_char *) CUTOVER_AUDIT_GENESIS, 65);
    }

    PQclear(res);
    fe.prev = prev;

    n = cutover_audit_format(&fe, text, CUTOVER_AUDIT_LINE_MAX, hash);
    if (n < 0) {
        return NGX_ERROR;
    }

    text[n > 0 && text[n - 1] == '\n' ? n - 1 : n] = '\0';

    ngx_sprintf((u_char *) seq, "%uL%Z", fe.seq);
    ngx_sprintf((u_char *) tm, "%L%Z", fe.time);
    p[2] = seq;
    p[3] = (char *) zone->gateway.data;
    p[4] = tm;
    p[5] = fe.key_id;
    p[6] = fe.action;
    p[7] = fe.result;
    p[8] = fe.from;
    p[9] = fe.to;
    p[10] = fe.reason;
    p[11] = hash;
    p[12] = text;

    res = ngx_http_cutover_fleet_query(conn,
              "INSERT INTO cutover.audit (zone, version, seq, gateway, time, "
              "key_id, action, result, from_json, to_json, reason, hash, "
              "line) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
              "$12, $13)", 13, p, PGRES_COMMAND_OK, log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    PQclear(res);

    return NGX_OK;
}


/*
 * The fleet's state made local: the state file and the entry in the local
 * trail.  The caller holds the writer lock and publishes next after; a
 * failure here is logged and counted, the fleet's state still routes.
 */
ngx_int_t
ngx_http_cutover_fleet_local(ngx_http_cutover_zone_t *zone,
    cutover_state_t *next, cutover_audit_entry_t *e, ngx_log_t *log)
{
    u_char      name[NGX_MAX_PATH];
    ngx_str_t   tmp;
    ngx_int_t   rc;

    rc = NGX_OK;
    tmp.data = name;

    if (e && ngx_http_cutover_audit_append(zone, e, log) != NGX_OK) {
        rc = NGX_ERROR;
    }

    if (next
        && (ngx_http_cutover_zone_persist(zone, next, log, &tmp) != NGX_OK
            || ngx_http_cutover_zone_commit(zone, next, &tmp, log) != NGX_OK))
    {
        rc = NGX_ERROR;
    }

    if (rc != NGX_OK) {
        (void) ngx_atomic_fetch_add(&zone->sh->persist_failures, 1);
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": the fleet's "
                      "state routes but its local copy could not be written",
                      &zone->name);
    }

    return rc;
}


/* "<state>.fleet-pending": a rollback not yet written to the fleet, kept
 * across restarts ("<time>\n<key id>\n<reason>"). */
static void
ngx_http_cutover_fleet_pending_path(ngx_http_cutover_zone_t *zone,
    u_char *buf)
{
    ngx_snprintf(buf, NGX_MAX_PATH - 1, "%V.fleet-pending%Z",
                 &zone->state_path);
    buf[NGX_MAX_PATH - 1] = '\0';
}


/* A rollback applied locally while the fleet cannot be reached: written
 * back by the listener when it is.  The caller (a thread) holds the writer
 * lock. */
void
ngx_http_cutover_fleet_pend(ngx_http_cutover_zone_t *zone,
    cutover_audit_entry_t *e)
{
    u_char                        path[NGX_MAX_PATH], *buf, *p;
    ngx_fd_t                      fd;
    ngx_http_cutover_fleet_sh_t  *fl = &zone->sh->fleet;

    if (fl->pending) {
        /* the first one is written back: one rollback in the history */
        return;
    }

    fl->pending = 1;
    fl->pending_time = e->time;
    ngx_cpystrn((u_char *) fl->pending_key, (u_char *) e->key_id,
                sizeof(fl->pending_key));
    ngx_cpystrn((u_char *) fl->pending_reason, (u_char *) e->reason,
                sizeof(fl->pending_reason));

    /* kept on disk too, so that a restart does not lose it */
    buf = ngx_alloc(sizeof(fl->pending_key) + sizeof(fl->pending_reason)
                    + 32, ngx_cycle->log);
    if (buf == NULL) {
        return;
    }

    p = ngx_sprintf(buf, "%L\n%s\n%s", fl->pending_time, fl->pending_key,
                    fl->pending_reason);

    ngx_http_cutover_fleet_pending_path(zone, path);
    fd = ngx_open_file(path, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE
        || ngx_write_fd(fd, buf, p - buf) != p - buf
        || fsync(fd) == -1)
    {
        (void) ngx_atomic_fetch_add(&zone->sh->persist_failures, 1);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      "cutover zone \"%V\": \"%s\" cannot be written: a "
                      "restart before the fleet is back would forget the "
                      "rollback", &zone->name, path);
    }

    if (fd != NGX_INVALID_FILE) {
        ngx_close_file(fd);
    }

    ngx_free(buf);
}


/* The pending rollback of an earlier run, if any; writer lock held. */
static void
ngx_http_cutover_fleet_pending_load(ngx_http_cutover_fleet_t *f,
    ngx_log_t *log)
{
    u_char                       *key, *reason, *nl;
    u_char                        path[NGX_MAX_PATH];
    ssize_t                       n;
    ngx_err_t                     err;
    ngx_http_cutover_fleet_sh_t  *fl = &f->zone->sh->fleet;

    ngx_http_cutover_fleet_pending_path(f->zone, path);

    n = ngx_http_cutover_read_file((char *) path, (u_char *) f->text,
                                   CUTOVER_STATE_TEXT_MAX, 0, log, &err);
    if (n <= 0 || fl->pending) {
        return;
    }

    f->text[n] = '\0';
    key = (u_char *) ngx_strchr(f->text, '\n');
    nl = key ? (u_char *) ngx_strchr(key + 1, '\n') : NULL;
    if (nl == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": \"%s\" is "
                      "not valid, ignored", &f->zone->name, path);
        return;
    }

    *key++ = '\0';
    *nl = '\0';
    reason = nl + 1;

    fl->pending = 1;
    fl->pending_time = ngx_atoof((u_char *) f->text,
                                 ngx_strlen(f->text));
    ngx_cpystrn((u_char *) fl->pending_key, key, sizeof(fl->pending_key));
    ngx_cpystrn((u_char *) fl->pending_reason, reason,
                sizeof(fl->pending_reason));

    ngx_log_error(NGX_LOG_NOTICE, log, 0, "cutover zone \"%V\": a rollback "
                  "not yet written to the fleet is pending", &f->zone->name);
}


typedef struct {
    char  from[128];
    char  to[128];
} ngx_http_cutover_fleet_rb_t;


static ngx_int_t
ngx_http_cutover_fleet_rollback_cb(void *data, cutover_state_t *cur,
    cutover_state_t *next, cutover_audit_entry_t *e)
{
    ngx_http_cutover_fleet_rb_t  *rb = data;

    ngx_memcpy(next, cur, sizeof(cutover_state_t));
    cutover_state_rollback(next, e->time);

    ngx_sprintf((u_char *) rb->from, "{\"version\":%uL,\"state\":\"%s\"}%Z",
                cur->version, cur->rolled_back ? "rolled_back" : "active");
    ngx_sprintf((u_char *) rb->to, "{\"version\":%uL,\"state\":"
                "\"rolled_back\"}%Z", next->version);
    e->from = rb->from;
    e->to = rb->to;

    return NGX_OK;
}


/* The pending rollback written to the fleet.  The writer lock is taken
 * only to read it and to apply the result, never across the database. */
static ngx_int_t
ngx_http_cutover_fleet_writeback(ngx_http_cutover_fleet_t *f, ngx_log_t *log)
{
    u_char                        path[NGX_MAX_PATH];
    char                          key[CUTOVER_ID_MAX + 1], reason[1025];
    ngx_int_t                     rc;
    cutover_audit_entry_t         e;
    ngx_http_cutover_fleet_rb_t   rb;
    ngx_http_cutover_zone_t      *zone = f->zone;
    ngx_http_cutover_fleet_sh_t  *fl = &zone->sh->fleet;

    ngx_memzero(&e, sizeof(e));

    ngx_http_cutover_writer_lock(zone->sh);

    rc = fl->pending;
    e.time = fl->pending_time;
    ngx_cpystrn((u_char *) key, (u_char *) fl->pending_key, sizeof(key));
    ngx_cpystrn((u_char *) reason, (u_char *) fl->pending_reason,
                sizeof(reason));

    ngx_http_cutover_writer_unlock(zone->sh);

    if (!rc) {
        return NGX_OK;
    }

    e.key_id = key;
    e.action = "rollback";
    e.result = "accepted";
    e.reason = reason;

    rc = ngx_http_cutover_fleet_txn(f->conn, zone,
                                    ngx_http_cutover_fleet_rollback_cb, &rb,
                                    f->cur, f->next, &e, f->text, log);
    if (rc != NGX_OK) {
        (void) ngx_http_cutover_fleet_exec(f->conn, "ROLLBACK", log);
        return NGX_ERROR;
    }

    (void) ngx_atomic_fetch_add(&fl->writebacks, 1);

    ngx_log_error(NGX_LOG_NOTICE, log, 0, "cutover zone \"%V\": the rollback "
                  "made while the fleet was unreachable is written to it, "
                  "version %uL", &zone->name, f->next->version);

    ngx_http_cutover_writer_lock(zone->sh);

    fl->pending = 0;
    ngx_http_cutover_fleet_pending_path(zone, path);
    if (ngx_delete_file(path) == NGX_FILE_ERROR && ngx_errno != NGX_ENOENT) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "cutover zone \"%V\": "
                      ngx_delete_file_n " \"%s\" failed", &zone->name, path);
    }

    /* the local trail has its entry since the rollback: only the state */
    (void) ngx_http_cutover_fleet_local(zone, f->next, NULL, log);
    ngx_http_cutover_zone_publish(zone, f->next);

    ngx_http_cutover_writer_unlock(zone->sh);

    return NGX_OK;
}


/*
 * The fleet's state applied when its version differs from ours (only the
 * fleet's version moves the dial), with the entries other gateways made
 * since ours.  The database is read without the writer lock.
 */
static ngx_int_t
ngx_http_cutover_fleet_sync(ngx_http_cutover_fleet_t *f, ngx_log_t *log)
{
    char                      ver[32];
    uint64_t                  local;
    PGresult                 *res;
    const char               *p[3];
    cutover_error_t           err;
    ngx_http_cutover_zone_t  *zone = f->zone;

    ngx_http_cutover_zone_copy(zone, f->cur);
    local = f->cur->version;

    ngx_sprintf((u_char *) ver, "%uL%Z", local);
    p[0] = (char *) zone->name.data;
    p[1] = ver;

    res = ngx_http_cutover_fleet_query(f->conn,
              "SELECT version, CASE WHEN version <> $2 THEN state END "
              "FROM cutover.zones WHERE zone = $1", 2, p, PGRES_TUPLES_OK,
              log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return ngx_http_cutover_fleet_first(f, p, log);
    }

    zone->sh->fleet.version_seen = ngx_atoof(
        (u_char *) PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));

    if (PQgetisnull(res, 0, 1)) {
        PQclear(res);
        return NGX_OK;
    }

    if (cutover_state_decode(f->next, PQgetvalue(res, 0, 1),
                             PQgetlength(res, 0, 1), &err) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": the fleet's "
                      "state is not valid: %s", &zone->name, err.message);
        PQclear(res);
        return NGX_ERROR;
    }

    PQclear(res);

    p[1] = (char *) zone->gateway.data;
    p[2] = ver;

    res = ngx_http_cutover_fleet_query(f->conn,
              "SELECT time, key_id, action, result, from_json, to_json, "
              "reason FROM cutover.audit WHERE zone = $1 AND gateway <> $2 "
              "AND version > $3 ORDER BY seq", 3, p, PGRES_TUPLES_OK, log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    ngx_http_cutover_fleet_apply(f, res, local, log);
    PQclear(res);

    return NGX_OK;
}


/* The first gateway of the fleet: its state is the fleet's.  p holds the
 * zone's name and our version. */
static ngx_int_t
ngx_http_cutover_fleet_first(ngx_http_cutover_fleet_t *f, const char **p,
    ngx_log_t *log)
{
    int        n;
    PGresult  *res;

    n = cutover_state_encode(f->cur, (char *) f->zone->name.data, f->text,
                             CUTOVER_STATE_TEXT_MAX);
    if (n < 0) {
        return NGX_ERROR;
    }

    f->text[n] = '\0';
    p[2] = f->text;

    res = ngx_http_cutover_fleet_query(f->conn,
              "INSERT INTO cutover.zones (zone, version, state) "
              "VALUES ($1, $2, $3) ON CONFLICT (zone) DO NOTHING",
              3, p, PGRES_COMMAND_OK, log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    PQclear(res);
    return NGX_OK;
}


/* f->next and its entries made ours, under the writer lock; nothing is
 * applied if our state moved since it was read (the next round sees it)
 * or a rollback waits to be written back. */
static void
ngx_http_cutover_fleet_apply(ngx_http_cutover_fleet_t *f, PGresult *entries,
    uint64_t local, ngx_log_t *log)
{
    int                       i, n;
    cutover_audit_entry_t     e;
    ngx_http_cutover_zone_t  *zone = f->zone;

    ngx_http_cutover_writer_lock(zone->sh);

    ngx_http_cutover_zone_copy(zone, f->cur);

    if (f->cur->version != local || zone->sh->fleet.pending) {
        ngx_http_cutover_writer_unlock(zone->sh);
        return;
    }

    n = PQntuples(entries);

    for (i = 0; i < n; i++) {
        ngx_memzero(&e, sizeof(e));
        e.time = ngx_atoof((u_char *) PQgetvalue(entries, i, 0),
                           PQgetlength(entries, i, 0));
        e.key_id = PQgetvalue(entries, i, 1);
        e.action = PQgetvalue(entries, i, 2);
        e.result = PQgetvalue(entries, i, 3);
        e.from = PQgetisnull(entries, i, 4) ? NULL
                                            : PQgetvalue(entries, i, 4);
        e.to = PQgetisnull(entries, i, 5) ? NULL : PQgetvalue(entries, i, 5);
        e.reason = PQgetvalue(entries, i, 6);

        (void) ngx_http_cutover_fleet_local(zone, NULL, &e, log);
    }

    (void) ngx_http_cutover_fleet_local(zone, f->next, NULL, log);
    ngx_http_cutover_zone_publish(zone, f->next);
    (void) ngx_atomic_fetch_add(&zone->sh->fleet.applies, 1);

    ngx_http_cutover_writer_unlock(zone->sh);

    ngx_log_error(NGX_LOG_NOTICE, log, 0, "cutover zone \"%V\": fleet state "
                  "applied, version %uL (%s)", &zone->name, f->next->version,
                  f->next->rolled_back ? "rolled back" : "active");
}


/* The listener's task, in a thread-pool thread: connect if need be, write
 * back a pending rollback, follow the fleet, then wait for a change. */
static void
ngx_http_cutover_fleet_listen(void *data, ngx_log_t *log)
{
    ngx_http_cutover_fleet_t  *f = data;

    PGnotify                  *nt;
    struct pollfd              pfd;
    ngx_http_cutover_shctx_t  *sh = f->zone->sh;

    f->ok = 0;

    if (!f->loaded) {
        f->loaded = 1;
        ngx_http_cutover_writer_lock(sh);
        ngx_http_cutover_fleet_pending_load(f, log);
        ngx_http_cutover_writer_unlock(sh);
    }

    if (f->conn == NULL && ngx_http_cutover_fleet_attach(f, log) != NGX_OK) {
        sh->fleet.connected = 0;
        return;
    }

    if (ngx_http_cutover_fleet_writeback(f, log) != NGX_OK
        || ngx_http_cutover_fleet_sync(f, log) != NGX_OK)
    {
        goto lost;
    }

    sh->fleet.connected = 1;

    if (ngx_http_cutover_fleet_report(f, log) != NGX_OK) {
        goto lost;
    }

    /* wait for a change, a while at most */
    pfd.fd = PQsocket(f->conn);
    pfd.events = POLLIN;
    pfd.revents = 0;

    if (poll(&pfd, 1, NGX_HTTP_CUTOVER_FLEET_WAIT) < 0 && errno != EINTR) {
        goto lost;
    }

    if (PQconsumeInput(f->conn) == 0) {
        goto lost;
    }

    while ((nt = PQnotifies(f->conn)) != NULL) {
        PQfreemem(nt);
    }

    f->ok = 1;
    return;

lost:

    ngx_log_error(NGX_LOG_ERR, log, 0, "cutover zone \"%V\": fleet "
                  "connection lost: %s", &f->zone->name,
                  PQerrorMessage(f->conn));
    (void) ngx_atomic_fetch_add(&sh->fleet.errors, 1);
    sh->fleet.connected = 0;
    PQfinish(f->conn);
    f->conn = NULL;
}


/* The listener's connection: made, and listening. */
static ngx_int_t
ngx_http_cutover_fleet_attach(ngx_http_cutover_fleet_t *f, ngx_log_t *log)
{
    f->conn = ngx_http_cutover_fleet_connect(f->zone, log);
    if (f->conn == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_cutover_fleet_exec(f->conn, "LISTEN cutover_fleet", log)
        != NGX_OK)
    {
        PQfinish(f->conn);
        f->conn = NULL;
        (void) ngx_atomic_fetch_add(&f->zone->sh->fleet.errors, 1);
        return NGX_ERROR;
    }

    f->reported_at = 0;
    (void) ngx_atomic_fetch_add(&f->zone->sh->fleet.connects, 1);
    ngx_log_error(NGX_LOG_NOTICE, log, 0, "cutover zone \"%V\": connected to "
                  "the fleet as \"%V\"", &f->zone->name, &f->zone->gateway);

    return NGX_OK;
}


/* This gateway's row in cutover.gateways: when its version moved, else
 * every few seconds. */
static ngx_int_t
ngx_http_cutover_fleet_report(ngx_http_cutover_fleet_t *f, ngx_log_t *log)
{
    char                      ver[32];
    PGresult                 *res;
    const char               *p[3];
    ngx_http_cutover_zone_t  *zone = f->zone;

    if (f->reported == zone->sh->fleet.version_seen
        && ngx_time() - f->reported_at < NGX_HTTP_CUTOVER_FLEET_REPORT)
    {
        return NGX_OK;
    }

    f->reported = zone->sh->fleet.version_seen;
    f->reported_at = ngx_time();

    ngx_sprintf((u_char *) ver, "%uA%Z", f->reported);
    p[0] = (char *) zone->name.data;
    p[1] = (char *) zone->gateway.data;
    p[2] = ver;

    res = ngx_http_cutover_fleet_query(f->conn,
              "INSERT INTO cutover.gateways (zone, gateway, version_applied) "
              "VALUES ($1, $2, $3) ON CONFLICT (zone, gateway) DO UPDATE "
              "SET version_applied = $3, last_contact = now()", 3, p,
              PGRES_COMMAND_OK, log);
    if (res == NULL) {
        return NGX_ERROR;
    }

    PQclear(res);
    return NGX_OK;
}


/* Back in the event loop: listen again, at once or after a backoff. */
static void
ngx_http_cutover_fleet_listened(ngx_event_t *ev)
{
    ngx_http_cutover_fleet_t  *f = ev->data;

    f->busy = 0;

    if (f->ok) {
        f->backoff = 0;

    } else {
        f->backoff = f->backoff ? ngx_min(f->backoff * 2,
                                          NGX_HTTP_CUTOVER_FLEET_BACKOFF_MAX)
                                : NGX_HTTP_CUTOVER_FLEET_BACKOFF_MIN;
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        /* a worker of the next configuration takes over at once */
        (void) ngx_atomic_cmp_set(&f->zone->sh->fleet.owner,
                                  (ngx_atomic_uint_t) ngx_pid, 0);
        return;
    }

    if (f->backoff == 0) {
        ngx_http_cutover_fleet_elect(&f->elect);
        return;
    }

    ngx_add_timer(&f->elect, f->backoff);
}


/* Timer: take the listener's role if nobody holds it, then listen. */
static void
ngx_http_cutover_fleet_elect(ngx_event_t *ev)
{
    ngx_http_cutover_fleet_t  *f = ev->data;

    ngx_pid_t                  owner;
    ngx_http_cutover_shctx_t  *sh = f->zone->sh;

    if (ngx_exiting || ngx_terminate || ngx_quit || f->busy) {
        return;
    }

    owner = (ngx_pid_t) sh->fleet.owner;

    if (owner != ngx_pid) {
        if (owner != 0 && (kill(owner, 0) == 0 || ngx_errno != NGX_ESRCH)) {
            ngx_add_timer(ev, NGX_HTTP_CUTOVER_FLEET_ELECT);
            return;
        }

        if (!ngx_atomic_cmp_set(&sh->fleet.owner, (ngx_atomic_uint_t) owner,
                                (ngx_atomic_uint_t) ngx_pid))
        {
            ngx_add_timer(ev, NGX_HTTP_CUTOVER_FLEET_ELECT);
            return;
        }

        ngx_log_error(NGX_LOG_NOTICE, f->log, 0, "cutover zone \"%V\": this "
                      "worker listens to the fleet", &f->zone->name);
    }

    if (ngx_thread_task_post(f->zone->thread_pool, f->task) != NGX_OK) {
        ngx_add_timer(ev, NGX_HTTP_CUTOVER_FLEET_ELECT);
        return;
    }

    f->busy = 1;
}


ngx_int_t
ngx_http_cutover_fleet_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_shm_zone_t               **zones;
    ngx_http_cutover_zone_t       *zone;
    ngx_http_cutover_fleet_t      *f;
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_cutover_module);
    if (cmcf == NULL) {
        return NGX_OK;
    }

    zones = cmcf->zones.elts;

    for (i = 0; i < cmcf->zones.nelts; i++) {
        zone = zones[i]->data;

        if (zone->fleet.len == 0) {
            continue;
        }

        f = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cutover_fleet_t));
        if (f == NULL) {
            return NGX_ERROR;
        }

        f->task = ngx_thread_task_alloc(cycle->pool, 0);
        f->cur = ngx_palloc(cycle->pool, sizeof(cutover_state_t));
        f->next = ngx_palloc(cycle->pool, sizeof(cutover_state_t));
        f->text = ngx_palloc(cycle->pool, CUTOVER_STATE_TEXT_MAX + 1);
        if (f->task == NULL || f->cur == NULL || f->next == NULL
            || f->text == NULL)
        {
            return NGX_ERROR;
        }

        f->zone = zone;
        f->log = cycle->log;
        f->task->ctx = f;
        f->task->handler = ngx_http_cutover_fleet_listen;
        f->task->event.handler = ngx_http_cutover_fleet_listened;
        f->task->event.data = f;

        f->elect.handler = ngx_http_cutover_fleet_elect;
        f->elect.data = f;
        f->elect.log = cycle->log;
        f->elect.cancelable = 1;

        zone->fleet_ctx = f;

        ngx_add_timer(&f->elect, 1);
    }

    return NGX_OK;
}


void
ngx_http_cutover_fleet_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_shm_zone_t               **zones;
    ngx_http_cutover_zone_t       *zone;
    ngx_http_cutover_fleet_t      *f;
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_cutover_module);
    if (cmcf == NULL) {
        return;
    }

    zones = cmcf->zones.elts;

    for (i = 0; i < cmcf->zones.nelts; i++) {
        zone = zones[i]->data;
        f = zone->fleet_ctx;

        if (f == NULL) {
            continue;
        }

        (void) ngx_atomic_cmp_set(&zone->sh->fleet.owner,
                                  (ngx_atomic_uint_t) ngx_pid, 0);

        if (f->conn && !f->busy) {
            PQfinish(f->conn);
            f->conn = NULL;
        }
    }
}


/* GET status: ,"fleet":{"gateway","connected","version_seen"} */
u_char *
ngx_http_cutover_fleet_status(ngx_http_cutover_zone_t *zone, u_char *p)
{
    ngx_http_cutover_fleet_sh_t  *fl = &zone->sh->fleet;

    if (zone->fleet.len == 0) {
        return p;
    }

    return ngx_sprintf(p, ",\"fleet\":{\"gateway\":\"%V\",\"connected\":%s,"
                       "\"version_seen\":%uA,\"rollback_pending\":%s}",
                       &zone->gateway, fl->connected ? "true" : "false",
                       fl->version_seen, fl->pending ? "true" : "false");
}


/* GET metrics: the fleet's connection and what it applied. */
u_char *
ngx_http_cutover_fleet_metrics(ngx_http_cutover_zone_t *zone, u_char *p)
{
    ngx_str_t                    *zn = &zone->name;
    ngx_http_cutover_fleet_sh_t  *fl = &zone->sh->fleet;

    if (zone->fleet.len == 0) {
        return p;
    }

    return ngx_sprintf(p,
            "# HELP cutover_fleet_connected 1 while the listener is connected "
            "to the fleet's database.\n"
            "# TYPE cutover_fleet_connected gauge\n"
            "cutover_fleet_connected{zone=\"%V\",gateway=\"%V\"} %uA\n"
            "# HELP cutover_fleet_version_seen The fleet's last version seen."
            "\n# TYPE cutover_fleet_version_seen gauge\n"
            "cutover_fleet_version_seen{zone=\"%V\"} %uA\n"
            "# HELP cutover_fleet_rollback_pending 1 while a rollback made "
            "without the fleet waits to be written to it.\n"
            "# TYPE cutover_fleet_rollback_pending gauge\n"
            "cutover_fleet_rollback_pending{zone=\"%V\"} %ui\n"
            "# HELP cutover_fleet_applies_total Fleet states applied here.\n"
            "# TYPE cutover_fleet_applies_total counter\n"
            "cutover_fleet_applies_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_fleet_connects_total Listener connections made.\n"
            "# TYPE cutover_fleet_connects_total counter\n"
            "cutover_fleet_connects_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_fleet_errors_total Failed connections and "
            "transactions.\n"
            "# TYPE cutover_fleet_errors_total counter\n"
            "cutover_fleet_errors_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_fleet_unavailable_total Dials refused because "
            "the fleet could not be reached.\n"
            "# TYPE cutover_fleet_unavailable_total counter\n"
            "cutover_fleet_unavailable_total{zone=\"%V\"} %uA\n"
            "# HELP cutover_fleet_writebacks_total Rollbacks made without "
            "the fleet, written to it later.\n"
            "# TYPE cutover_fleet_writebacks_total counter\n"
            "cutover_fleet_writebacks_total{zone=\"%V\"} %uA\n",
            zn, &zone->gateway, fl->connected, zn, fl->version_seen, zn,
            fl->pending, zn, fl->applies, zn, fl->connects, zn, fl->errors,
            zn, fl->unavailable, zn, fl->writebacks);
}
