/*
 * ngx_http_cutover_audit: the audit trail: its head read at start and
 * after any change behind our back, a damaged end found and recorded,
 * entries appended and fsynced (by thread-pool threads, under the
 * writer lock).
 */

#include "ngx_http_cutover.h"


/* What the end of the trail says, read before it is published in the
 * zone (readers of the zone never see a half-read head). */
typedef struct {
    uint64_t                   seq;
    char                       hash[65];
    uint64_t                   pending_break;
    uint64_t                   damaged;
    ngx_uint_t                 torn;
    char                       damage[128];
} ngx_http_cutover_audit_end_t;


static ngx_int_t ngx_http_cutover_audit_head(ngx_http_cutover_zone_t *zone,
    ngx_fd_t fd, off_t size, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_audit_scan(ngx_http_cutover_zone_t *zone,
    ngx_fd_t fd, off_t size, u_char *buf, size_t cap,
    ngx_http_cutover_audit_end_t *end, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_audit_write(ngx_http_cutover_zone_t *zone,
    ngx_fd_t fd, u_char *data, size_t len, ngx_log_t *log);


/*
 * The audit trail's head.  The last line alone gives it: seq, hash, and
 * whether an unaccepted break is pending ("pending_break").  A damaged end
 * (a line torn by a crash mid-write, or edited) is found here and named by
 * its line number; the entries up to the last good one stay the chain.
 * The next entry written (whatever it is: a rollback is never refused for
 * it) is preceded by an "audit_break" entry that chains onto the last good
 * entry and names the damaged lines, and starts the pending break: from
 * then on every entry carries "pending_break" and dial is refused until an
 * admin accepts the break (POST accept, itself an entry without it).
 */
void
ngx_http_cutover_audit_load(ngx_http_cutover_zone_t *zone, ngx_log_t *log)
{
    ngx_fd_t                   fd;
    ngx_file_info_t            fi;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    sh->audit_seq = 0;
    ngx_memcpy(sh->audit_hash, CUTOVER_AUDIT_GENESIS, 65);
    sh->audit_ok = 1;

    fd = ngx_open_file(zone->audit_path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN,
                       0);
    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno != NGX_ENOENT) {
            sh->audit_ok = 0;
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "cutover zone \"%V\": cannot read audit trail "
                          "\"%V\"; dial is refused until it is readable",
                          &zone->name, &zone->audit_path);
        }

        return;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        sh->audit_ok = 0;

    } else {
        (void) ngx_http_cutover_audit_head(zone, fd, ngx_file_size(&fi),
                                           log);
    }

    ngx_close_file(fd);
}


/*
 * Reads the head from the last line of the open trail (size bytes) and
 * publishes it in the zone; on a read error, only audit_ok drops. Kept
 * whole: one read of the last line and its checks.
 */
static ngx_int_t
ngx_http_cutover_audit_head(ngx_http_cutover_zone_t *zone, ngx_fd_t fd,
    off_t size, ngx_log_t *log)
{
    u_char                        *buf, *end, *line;
    size_t                         cap;
    ssize_t                        n;
    ngx_int_t                      rc;
    cutover_error_t                err;
    cutover_audit_head_t           head;
    ngx_http_cutover_shctx_t      *sh = zone->sh;
    ngx_http_cutover_audit_end_t   e;

    ngx_memzero(&e, sizeof(e));
    ngx_memcpy(e.hash, CUTOVER_AUDIT_GENESIS, 65);
    rc = NGX_OK;
    buf = NULL;

    if (size == 0) {
        goto publish;
    }

    cap = 2 * CUTOVER_AUDIT_LINE_MAX + 2;

    buf = ngx_alloc(cap, log);
    if (buf == NULL) {
        rc = NGX_ERROR;
        goto failed;
    }

    n = pread(fd, buf, ngx_min((off_t) cap, size),
              size > (off_t) cap ? size - (off_t) cap : 0);

    if (n != ngx_min((off_t) cap, size)) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "cutover zone \"%V\": cannot read audit trail \"%V\"; "
                      "dial is refused until it is readable",
                      &zone->name, &zone->audit_path);
        rc = NGX_ERROR;
        goto failed;
    }

    end = buf + n;
    e.torn = end[-1] != '\n';

    if (!e.torn) {
        end--;
    }

    line = end;
    while (line > buf && line[-1] != '\n') {
        line--;
    }

    if ((line > buf || n == size)
        && cutover_audit_parse_head((char *) line, end - line, &head, &err)
           == 0)
    {
        e.seq = head.seq;
        ngx_memcpy(e.hash, head.hash, 65);
        e.pending_break = head.pending_break;
        goto publish;
    }

    if (ngx_http_cutover_audit_scan(zone, fd, size, buf, cap, &e, log)
        != NGX_OK)
    {
        rc = NGX_ERROR;
        goto failed;
    }

publish:

    sh->audit_seq = e.seq;
    ngx_memcpy(sh->audit_hash, e.hash, 65);
    sh->audit_pending_break = e.pending_break;
    sh->audit_damaged = e.damaged;
    sh->audit_torn = e.torn;
    ngx_memcpy(sh->audit_damage, e.damage, sizeof(e.damage));
    sh->audit_ok = 1;

failed:

    if (rc != NGX_OK) {
        sh->audit_ok = 0;
    }

    if (buf) {
        ngx_free(buf);
    }

    return rc;
}


/*
 * A damaged end: finds, from the start, the last line that reads as an
 * entry (the head) and so the first damaged line after it. Kept whole: the
 * scan's position and the last good line are one loop's state.
 */
static ngx_int_t
ngx_http_cutover_audit_scan(ngx_http_cutover_zone_t *zone, ngx_fd_t fd,
    off_t size, u_char *buf, size_t cap, ngx_http_cutover_audit_end_t *e,
    ngx_log_t *log)
{
    u_char                    *p, *nl, *last;
    off_t                      off;
    ssize_t                    n;
    uint64_t                   lineno, good_line;
    ngx_uint_t                 skipping;
    cutover_error_t            err, last_err;
    cutover_audit_head_t       head, good;

    lineno = 0;
    good_line = 0;
    skipping = 0;
    ngx_memzero(&good, sizeof(good));
    ngx_memcpy(good.hash, CUTOVER_AUDIT_GENESIS, 65);
    cutover_error_set(&last_err, "broken", "torn last line");

    off = 0;
    last = buf;                     /* the end of the data read */

    for ( ;; ) {
        if (off < size) {
            n = pread(fd, last, ngx_min((off_t) (buf + cap - last),
                                        size - off), off);
            if (n <= 0) {
                ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                              "cutover zone \"%V\": cannot read audit trail "
                              "\"%V\"", &zone->name, &zone->audit_path);
                return NGX_ERROR;
            }

            off += n;
            last += n;
        }

        p = buf;

        while ((nl = ngx_strlchr(p, last, '\n')) != NULL) {
            if (skipping) {
                skipping = 0;

            } else if (cutover_audit_parse_head((char *) p, nl - p, &head,
                                                &err)
                       == 0)
            {
                good = head;
                good_line = ++lineno;

            } else {
                lineno++;
                last_err = err;
            }

            p = nl + 1;
        }

        if (off >= size) {
            if (p < last && !skipping) {
                /* the torn last line */
                lineno++;
                if (cutover_audit_parse_head((char *) p, last - p, &head,
                                             &err)
                    == 0)
                {
                    good = head;
                    good_line = lineno;
                }
            }

            break;
        }

        if (p == buf && last == buf + cap) {
            /* longer than any entry: damaged, skipped to its end */
            if (!skipping) {
                lineno++;
                skipping = 1;
                cutover_error_set(&last_err, "broken", "line too long");
            }

            last = buf;
            continue;
        }

        ngx_memmove(buf, p, last - p);
        last = buf + (last - p);
    }

    if (good_line) {
        e->seq = good.seq;
        ngx_memcpy(e->hash, good.hash, 65);
        e->pending_break = good.pending_break;
    }

    if (good_line && good_line == lineno) {
        /* only the final newline was missing */
        return NGX_OK;
    }

    e->damaged = good_line + 1;
    ngx_cpystrn((u_char *) e->damage, (u_char *) last_err.message,
                sizeof(e->damage));

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "cutover zone \"%V\": audit trail \"%V\" is damaged from "
                  "line %uL (%s); the last good entry is seq %uL; rollback "
                  "stays possible and records the break, dial is refused "
                  "until an admin accepts it (cutoverctl audit accept)",
                  &zone->name, &zone->audit_path, e->damaged, e->damage,
                  e->seq);

    return NGX_OK;
}


/*
 * Opens the trail for appending and reads its head again from the last
 * line, so that whatever happened to the file since this zone last wrote it
 * (a write that failed, another writer such as the old binary during an
 * upgrade, an edit) is seen; records a damaged end with an "audit_break"
 * entry.  The caller holds the writer lock. Kept whole: it is one sequence
 * under the writer lock.
 */
static ngx_fd_t
ngx_http_cutover_audit_open(ngx_http_cutover_zone_t *zone, ngx_log_t *log)
{
    int                        n;
    char                       line[CUTOVER_AUDIT_LINE_MAX + 1], hash[65];
    char                       from[256], reason[512];
    ngx_fd_t                   fd;
    ngx_file_info_t            fi;
    cutover_audit_entry_t      e;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    fd = open((char *) zone->audit_path.data, O_RDWR|O_APPEND|O_CREAT,
              0640);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "cutover zone \"%V\": cannot open audit trail \"%V\"",
                      &zone->name, &zone->audit_path);
        return NGX_INVALID_FILE;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        goto failed;
    }

    if (ngx_http_cutover_audit_head(zone, fd, ngx_file_size(&fi), log)
        != NGX_OK)
    {
        goto failed;
    }

    if (!sh->audit_damaged) {
        return fd;
    }

    ngx_sprintf((u_char *) from, "{\"line\":%uL,\"seq\":%uL,\"hash\":\"%s\"}%Z",
                sh->audit_damaged, sh->audit_seq, sh->audit_hash);
    ngx_sprintf((u_char *) reason, "the trail is damaged from line %uL (%s); "
                "this entry chains onto the last good entry (seq %uL); dial "
                "is refused until an admin accepts the break%Z",
                sh->audit_damaged, sh->audit_damage, sh->audit_seq);

    ngx_memzero(&e, sizeof(e));
    e.seq = sh->audit_seq + 1;
    e.time = ngx_time();
    e.key_id = "-";
    e.action = "audit_break";
    e.result = "recorded";
    e.from = from;
    e.reason = reason;
    e.pending_break = e.seq;
    e.prev = sh->audit_hash;

    /* a torn line is ended first, so that the entry is a line of its own */
    line[0] = '\n';
    n = cutover_audit_format(&e, line + 1, sizeof(line) - 1, hash);

    if (n < 0
        || ngx_http_cutover_audit_write(zone, fd, (u_char *) line + 1
                                        - sh->audit_torn,
                                        n + sh->audit_torn, log)
           != NGX_OK)
    {
        goto failed;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "cutover zone \"%V\": audit_break recorded as seq %uL: %s",
                  &zone->name, e.seq, reason);

    sh->audit_seq = e.seq;
    ngx_memcpy(sh->audit_hash, hash, 65);
    sh->audit_pending_break = e.seq;
    sh->audit_damaged = 0;
    sh->audit_torn = 0;

    return fd;

failed:

    ngx_close_file(fd);
    return NGX_INVALID_FILE;
}


/* Writes and fsyncs whole lines; the caller holds the writer lock. */
static ngx_int_t
ngx_http_cutover_audit_write(ngx_http_cutover_zone_t *zone, ngx_fd_t fd,
    u_char *data, size_t len, ngx_log_t *log)
{
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    if (write(fd, data, len) != (ssize_t) len || fsync(fd) != 0) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "cutover zone \"%V\": cannot append to audit trail "
                      "\"%V\"", &zone->name, &zone->audit_path);
        /* a partial line may be there: read the end again next time */
        sh->audit_ok = 0;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Records a damaged end, if any, so that the head is known and the
 * pending break (sh->audit_pending_break) is current. */
ngx_int_t
ngx_http_cutover_audit_sync(ngx_http_cutover_zone_t *zone, ngx_log_t *log)
{
    ngx_fd_t  fd;

    fd = ngx_http_cutover_audit_open(zone, log);
    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    ngx_close_file(fd);
    return NGX_OK;
}


/* Appends one entry to the trail; the caller holds the writer lock.  The
 * entry carries the pending break, unless it is the accept that ends it. */
ngx_int_t
ngx_http_cutover_audit_append(ngx_http_cutover_zone_t *zone,
    cutover_audit_entry_t *e, ngx_log_t *log)
{
    int                        n;
    char                       line[CUTOVER_AUDIT_LINE_MAX + 1], hash[65];
    ngx_fd_t                   fd;
    ngx_int_t                  rc;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    fd = ngx_http_cutover_audit_open(zone, log);
    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    e->seq = sh->audit_seq + 1;
    e->prev = sh->audit_hash;

    /* only an accepted accept ends the pending break */
    if (ngx_strcmp(e->action, "audit_accept") != 0
        || ngx_strcmp(e->result, "accepted") != 0)
    {
        e->pending_break = sh->audit_pending_break;
    }

    line[0] = '\n';
    n = cutover_audit_format(e, line + 1, sizeof(line) - 1, hash);
    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cutover zone \"%V\": audit entry too long",
                      &zone->name);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    rc = ngx_http_cutover_audit_write(zone, fd,
                                      (u_char *) line + 1 - sh->audit_torn,
                                      n + sh->audit_torn, log);
    ngx_close_file(fd);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    sh->audit_seq = e->seq;
    ngx_memcpy(sh->audit_hash, hash, 65);
    sh->audit_pending_break = e->pending_break;
    sh->audit_torn = 0;

    return NGX_OK;
}
