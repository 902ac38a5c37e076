/*
 * ngx_http_cutover_init: postconfiguration, and the directories the
 * workers write in (state=, audit=, cutover_log), made and checked when
 * a configuration is applied.
 */

#include "ngx_http_cutover.h"

#include <grp.h>
#include <pwd.h>


static ngx_int_t ngx_http_cutover_check_dirs(ngx_cycle_t *cycle,
    ngx_http_cutover_main_conf_t *cmcf, ngx_log_t *log);
static ngx_int_t ngx_http_cutover_make_dir(ngx_http_cutover_dir_t *d,
    ngx_core_conf_t *ccf, const char *user, ngx_log_t *log);
static ngx_err_t ngx_http_cutover_probe_dir(ngx_http_cutover_dir_t *d,
    ngx_uint_t *file);


/* the configuration being applied, whose directories the first cutover
 * zone's init makes and checks (it runs after the "user" directive is
 * known and before the new configuration replaces the old one) */
static ngx_http_cutover_main_conf_t  *ngx_http_cutover_dirs_pending;
static ngx_cycle_t                   *ngx_http_cutover_dirs_cycle;


ngx_int_t
ngx_http_cutover_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_cutover_dirs_pending = ngx_http_conf_get_module_main_conf(cf,
                                                    ngx_http_cutover_module);
    ngx_http_cutover_dirs_cycle = cf->cycle;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cutover_route_handler;

    if (ngx_http_cutover_guard_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_cutover_record_init(cf);
}


/*
 * The directory of `file` (state=, audit=, cutover_log), made and checked
 * when the configuration is applied.  Remembers the directive's place in
 * the configuration for the error message.
 */
ngx_int_t
ngx_http_cutover_add_dir(ngx_conf_t *cf, ngx_str_t *file, const char *what)
{
    u_char                        *slash;
    ngx_http_cutover_dir_t        *d;
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cutover_module);

    d = ngx_array_push(&cmcf->dirs);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->file = *file;
    d->what = what;
    d->conf_file = cf->conf_file->file.name;
    d->line = cf->conf_file->line;

    /* a full name (ngx_conf_full_name()): there is a slash */
    slash = file->data + file->len;
    while (slash > file->data && slash[-1] != '/') {
        slash--;
    }

    d->dir.len = (slash - 1 > file->data) ? (size_t) (slash - 1 - file->data)
                                          : 1;
    d->dir.data = ngx_pnalloc(cf->pool, d->dir.len + 1);
    if (d->dir.data == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(d->dir.data, file->data, d->dir.len + 1);

    return NGX_OK;
}


/* The first cutover zone's init: the directories of the configuration
 * being applied come first. */
ngx_int_t
ngx_http_cutover_init_zone_dirs(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_cutover_main_conf_t  *cmcf;

    cmcf = ngx_http_cutover_dirs_pending;

    if (cmcf != NULL) {
        ngx_http_cutover_dirs_pending = NULL;

        if (ngx_http_cutover_check_dirs(ngx_http_cutover_dirs_cycle, cmcf,
                                        shm_zone->shm.log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_cutover_init_zone(shm_zone, data);
}


/*
 * As nginx does for its temp paths: the master makes the directories the
 * workers write in (with their missing parents) and, running as root, gives
 * the ones it made to the worker user.  Then it checks, as the worker user
 * (a child process that takes the workers' identity), that the workers can
 * create files there and write the files already there. Anything wrong
 * fails the configuration (nginx -t, start or reload) naming the path, the
 * user and the directive's place. Kept whole: the child process's steps
 * (identity, then each directory) share one pipe and one exit path.
 */
static ngx_int_t
ngx_http_cutover_check_dirs(ngx_cycle_t *cycle,
    ngx_http_cutover_main_conf_t *cmcf, ngx_log_t *log)
{
    int                      fds[2], status, rep[3];
    u_char                  *p, errstr[NGX_MAX_ERROR_STR];
    pid_t                    pid;
    ssize_t                  n;
    ngx_err_t                err;
    ngx_uint_t               i, file, root;
    const char              *user;
    struct passwd           *pw;
    ngx_core_conf_t         *ccf;
    ngx_http_cutover_dir_t  *d;
    u_char                   name[32];

    if (cmcf->dirs.nelts == 0) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    root = (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT);

    if (root) {
        user = ccf->username;

    } else {
        pw = getpwuid(geteuid());
        if (pw) {
            user = pw->pw_name;

        } else {
            ngx_sprintf(name, "uid %d%Z", (int) geteuid());
            user = (char *) name;
        }
    }

    d = cmcf->dirs.elts;

    for (i = 0; i < cmcf->dirs.nelts; i++) {
        if (ngx_http_cutover_make_dir(&d[i], ccf, user, log) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    rep[0] = -1;
    rep[1] = 0;
    rep[2] = 0;

    if (!root) {
        /* the workers are this user */
        for (i = 0; i < cmcf->dirs.nelts; i++) {
            err = ngx_http_cutover_probe_dir(&d[i], &file);
            if (err) {
                rep[0] = (int) i;
                rep[1] = (int) file;
                rep[2] = (int) err;
                break;
            }
        }

        goto report;
    }

    if (pipe(fds) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "pipe() failed");
        return NGX_ERROR;
    }

    pid = fork();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "fork() failed");
        close(fds[0]);
        close(fds[1]);
        return NGX_ERROR;
    }

    if (pid == 0) {
        /* the worker's identity, as ngx_worker_process_init() takes it */
        close(fds[0]);

        if (setgid(ccf->group) == -1
            || initgroups(ccf->username, ccf->group) == -1
            || setuid(ccf->user) == -1)
        {
            rep[0] = -2;
            rep[2] = errno;

        } else {
            for (i = 0; i < cmcf->dirs.nelts; i++) {
                err = ngx_http_cutover_probe_dir(&d[i], &file);
                if (err) {
                    rep[0] = (int) i;
                    rep[1] = (int) file;
                    rep[2] = (int) err;
                    break;
                }
            }
        }

        n = write(fds[1], rep, sizeof(rep));
        _exit(n == (ssize_t) sizeof(rep) ? 0 : 1);
    }

    close(fds[1]);

    do {
        n = read(fds[0], rep, sizeof(rep));
    } while (n == -1 && ngx_errno == NGX_EINTR);

    close(fds[0]);

    while (waitpid(pid, &status, 0) == -1 && ngx_errno == NGX_EINTR) {
        /* void */
    }

    if (n != (ssize_t) sizeof(rep)) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "cannot check the directories "
                      "of cutover_zone and cutover_log as the worker user "
                      "\"%s\"", user);
        return NGX_ERROR;
    }

report:

    if (rep[0] == -1) {
        return NGX_OK;
    }

    p = ngx_strerror(rep[2], errstr, sizeof(errstr));

    if (rep[0] == -2) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "cannot take the identity of "
                      "the worker user \"%s\" to check the directories of "
                      "cutover_zone and cutover_log (%d: %*s)", user, rep[2],
                      p - errstr, errstr);
        return NGX_ERROR;
    }

    i = (ngx_uint_t) rep[0];

    if (rep[1]) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "the worker user \"%s\" cannot "
                      "write %s\"%s\" of %s (%d: %*s) in %V:%ui", user,
                      rep[1] == 2 ? "the current segment of " : "the file ",
                      d[i].file.data, d[i].what, rep[2], p - errstr, errstr,
                      &d[i].conf_file, d[i].line);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_EMERG, log, 0, "the worker user \"%s\" cannot "
                  "create files in the directory \"%s\" of %s (%d: %*s) "
                  "in %V:%ui", user, d[i].dir.data, d[i].what, rep[2],
                  p - errstr, errstr, &d[i].conf_file, d[i].line);

    return NGX_ERROR;
}


/* mkdir -p, giving what it makes to the worker user when run as root. */
static ngx_int_t
ngx_http_cutover_make_dir(ngx_http_cutover_dir_t *d, ngx_core_conf_t *ccf,
    const char *user, ngx_log_t *log)
{
    u_char           *p, *path, errstr[NGX_MAX_ERROR_STR];
    ngx_err_t         err;
    ngx_file_info_t   fi;

    path = d->dir.data;

    if (ngx_file_info(path, &fi) == 0 && ngx_is_dir(&fi)) {
        return NGX_OK;
    }

    for (p = path + 1; /* void */; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }

        *p = '\0';

        if (mkdir((char *) path, 0755) == 0) {
            if (geteuid() == 0
                && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
                && chown((char *) path, ccf->user, ccf->group) == -1)
            {
                err = ngx_errno;
                goto failed;
            }

            ngx_log_error(NGX_LOG_NOTICE, log, 0, "created directory \"%s\" "
                          "for %s, owned by the worker user \"%s\"", path,
                          d->what, user);

        } else if (ngx_errno != NGX_EEXIST) {
            err = ngx_errno;
            goto failed;
        }

        if (p == path + d->dir.len) {
            break;
        }

        *p = '/';
    }

    if (ngx_file_info(path, &fi) == -1) {
        err = ngx_errno;
        goto failed;
    }

    if (!ngx_is_dir(&fi)) {
        err = NGX_ENOTDIR;
        goto failed;
    }

    return NGX_OK;

failed:

    /* path ends at the component that failed */
    p = ngx_strerror(err, errstr, sizeof(errstr));

    ngx_log_error(NGX_LOG_EMERG, log, 0, "cannot create the directory \"%s\" "
                  "of %s for the worker user \"%s\" (%d: %*s) in %V:%ui",
                  path, d->what, user, err, p - errstr, errstr,
                  &d->conf_file, d->line);

    return NGX_ERROR;
}


/*
 * Whether this process can create files in the directory and write the
 * file already there (for cutover_log, its current segment): 0 or the
 * errno, with *file 0 for the directory, 1 for the file, 2 for the
 * segment.
 */
static ngx_err_t
ngx_http_cutover_probe_dir(ngx_http_cutover_dir_t *d, ngx_uint_t *file)
{
    u_char    scratch[2048] __attribute__((aligned(8)));
    char      path[4096];
    uint64_t  first, last;

    *file = 0;

    if (access((char *) d->dir.data, W_OK|X_OK) == -1) {
        return ngx_errno;
    }

    if (d->what[0] != 'c') {
        *file = 1;

        if (access((char *) d->file.data, W_OK) == -1
            && ngx_errno != NGX_ENOENT)
        {
            return ngx_errno;
        }

        return 0;
    }

    *file = 2;

    if (cutover_segment_range((char *) d->file.data, scratch, sizeof(scratch),
                             &first, &last)
        != CUTOVER_OK)
    {
        return ngx_errno ? ngx_errno : NGX_EINVAL;
    }

    if (last
        && cutover_segment_path(path, sizeof(path), (char *) d->file.data,
                               last) == CUTOVER_OK
        && access(path, W_OK) == -1)
    {
        return ngx_errno;
    }

    return 0;
}
