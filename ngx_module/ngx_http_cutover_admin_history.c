/*
 * ngx_http_cutover_admin_history: GET history, the audit trail's tail
 * read by a thread-pool thread, newest first.
 */

#include "ngx_http_cutover_admin.h"


static void ngx_http_cutover_history_read(void *data, ngx_log_t *log);
static void ngx_http_cutover_history_done(ngx_event_t *ev);


/* GET history: the trail's tail is read by a thread-pool thread (the
 * event loop never waits for the disk), newest entry first; changes only
 * unless ?all=1 (then refusals too). */
typedef struct {
    ngx_http_request_t         *r;
    ngx_http_cutover_admin_t   *a;
    u_char                     *buf;            /* the read window */
    u_char                     *out;
    size_t                      out_cap;
    size_t                      out_len;
    ngx_int_t                   limit;
    ngx_uint_t                  all;
    ngx_err_t                   err;
} ngx_http_cutover_history_t;


ngx_int_t
ngx_http_cutover_history(ngx_http_request_t *r, ngx_http_cutover_admin_t *a)
{
    ngx_str_t                    arg;
    ngx_thread_task_t           *task;
    ngx_http_cutover_history_t  *h;

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_cutover_history_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = task->ctx;
    h->r = r;
    h->a = a;
    h->limit = 20;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        h->limit = ngx_atoi(arg.data, arg.len);

        if (h->limit < 1 || h->limit > NGX_HTTP_CUTOVER_HISTORY_MAX) {
            return ngx_http_cutover_error(r, a, NGX_HTTP_BAD_REQUEST,
                                          "invalid_request",
                                          "limit must be 1..1000");
        }
    }

    if (ngx_http_arg(r, (u_char *) "all", 3, &arg) == NGX_OK) {
        if (arg.len != 1 || (arg.data[0] != '0' && arg.data[0] != '1')) {
            return ngx_http_cutover_error(r, a, NGX_HTTP_BAD_REQUEST,
                                          "invalid_request",
                                          "all must be 0 or 1");
        }

        h->all = arg.data[0] == '1';
    }

    h->out_cap = ngx_min((size_t) h->limit * CUTOVER_AUDIT_LINE_MAX,
                         NGX_HTTP_CUTOVER_HISTORY_OUT);
    h->buf = ngx_pnalloc(r->pool, NGX_HTTP_CUTOVER_HISTORY_WINDOW);
    h->out = ngx_pnalloc(r->pool, h->out_cap + 8);
    if (h->buf == NULL || h->out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->handler = ngx_http_cutover_history_read;
    task->event.handler = ngx_http_cutover_history_done;
    task->event.data = h;

    if (ngx_thread_task_post(a->zone->thread_pool, task) != NGX_OK) {
        return ngx_http_cutover_error(r, a, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "busy", "the gateway's thread pool is "
                                      "full; retry");
    }

    r->main->count++;
    return NGX_DONE;
}


/* Whether history shows a line: whole entries only; refusals with all. */
static ngx_uint_t
ngx_http_cutover_history_shows(ngx_http_cutover_history_t *h, u_char *line,
    size_t len)
{
    cutover_error_t       err;
    cutover_audit_head_t  head;

    static const char  refused[] = "\",\"result\":\"refused:";

    if (cutover_audit_parse_head((char *) line, len, &head, &err) != 0) {
        return 0;
    }

    if (h->all) {
        return 1;
    }

    return ngx_strcmp(head.action, "refusals") != 0
           && ngx_strlcasestrn(line, line + len, (u_char *) refused,
                               sizeof(refused) - 2) == NULL;
}


/*
 * In a thread-pool thread: reads windows of the trail from its end. Kept
 * whole: the window's position and the output are one loop's state.
 */
static void
ngx_http_cutover_history_read(void *data, ngx_log_t *log)
{
    ngx_http_cutover_history_t  *h = data;

    u_char           *p, *e, *start, *line;
    off_t             end, off, scanned;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_int_t         count;
    ngx_file_info_t   fi;

    p = h->out;
    *p++ = '[';
    count = 0;

    fd = ngx_open_file(h->a->zone->audit_path.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        h->err = ngx_errno == NGX_ENOENT ? 0 : ngx_errno;
        goto done;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        h->err = ngx_errno;
        goto close;
    }

    end = ngx_file_size(&fi);
    scanned = 0;

    while (end > 0 && count < h->limit
           && scanned < NGX_HTTP_CUTOVER_HISTORY_SCAN)
    {
        off = ngx_max(end - NGX_HTTP_CUTOVER_HISTORY_WINDOW, 0);

        n = pread(fd, h->buf, end - off, off);
        if (n != end - off) {
            h->err = n == -1 ? ngx_errno : EIO;
            goto close;
        }

        scanned += n;
        e = h->buf + n;

        /* a line not finished (being written, or torn) is not shown */
        while (e > h->buf && e[-1] != '\n') {
            e--;
        }

        /* a window that starts mid-file starts mid-line: that line is read
         * with the next window */
        start = h->buf;
        if (off > 0) {
            start = ngx_strlchr(h->buf, e, '\n');
            if (start == NULL) {
                break;
            }

            start++;
        }

        while (e > start && count < h->limit) {
            e--;                                    /* its newline */

            line = e;
            while (line > start && line[-1] != '\n') {
                line--;
            }

            if (ngx_http_cutover_history_shows(h, line, e - line)) {
                if ((size_t) (p - h->out) + (e - line) + 4 > h->out_cap)
                {
                    goto close;
                }

                if (count++) {
                    *p++ = ',';
                }

                p = ngx_cpymem(p, line, e - line);
            }

            e = line;
        }

        end = off + (start - h->buf);
    }

close:

    ngx_close_file(fd);

done:

    p = ngx_cpymem(p, "]\n", 2);
    h->out_len = p - h->out;
}


static void
ngx_http_cutover_history_done(ngx_event_t *ev)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_cutover_history_t  *h = ev->data;

    r = h->r;
    c = r->connection;

    if (h->err) {
        ngx_log_error(NGX_LOG_ERR, c->log, h->err,
                      "cutover zone \"%V\": cannot read audit trail \"%V\"",
                      &h->a->zone->name, &h->a->zone->audit_path);
        rc = ngx_http_cutover_error(r, h->a, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    "audit_unreadable",
                                    "the audit trail cannot be read");

    } else {
        rc = ngx_http_cutover_send(r, NGX_HTTP_OK, h->out, h->out_len,
                                   "application/json");
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
