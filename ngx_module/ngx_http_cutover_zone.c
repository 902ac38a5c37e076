/*
 * ngx_http_cutover_zone: the shared zone: dial state slots read lock-free,
 * counters, nonces, the writer lock and the state file.  The audit
 * trail is in ngx_http_cutover_audit.c.
 */

#include "ngx_http_cutover.h"


static void ngx_http_cutover_zone_load(ngx_http_cutover_zone_t *zone,
    ngx_log_t *log);


ngx_int_t
ngx_http_cutover_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_cutover_zone_t  *ozone = data;

    size_t                     len;
    ngx_http_cutover_zone_t   *zone;
    ngx_http_cutover_shctx_t  *sh;

    zone = shm_zone->data;

    if (ozone) {
        /* reload with the zone kept: the live state and counters go on */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return ngx_http_cutover_guard_init_zone(zone, shm_zone->shm.log);
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return ngx_http_cutover_guard_init_zone(zone, shm_zone->shm.log);
    }

    sh = ngx_slab_alloc(zone->shpool, sizeof(ngx_http_cutover_shctx_t));
    if (sh == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "cutover zone \"%V\" is too small", &zone->name);
        return NGX_ERROR;
    }

    ngx_memzero(sh, sizeof(ngx_http_cutover_shctx_t));
    zone->sh = sh;
    zone->shpool->data = sh;

    len = sizeof(" in cutover zone \"\"") + zone->name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in cutover zone \"%V\"%Z",
                &zone->name);

    ngx_http_cutover_zone_load(zone, shm_zone->shm.log);
    ngx_http_cutover_audit_load(zone, shm_zone->shm.log);

    return ngx_http_cutover_guard_init_zone(zone, shm_zone->shm.log);
}


/* Reads a whole small file, or its last `from_end` bytes. */
ssize_t
ngx_http_cutover_read_file(const char *path, u_char *buf, size_t cap,
    off_t from_end, ngx_log_t *log, ngx_err_t *err)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;
    off_t            off = 0;

    *err = 0;

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        *err = ngx_errno;
        return -1;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        *err = ngx_errno;
        ngx_close_file(fd);
        return -1;
    }

    if (from_end && ngx_file_size(&fi) > from_end) {
        off = ngx_file_size(&fi) - from_end;
    }

    if (!from_end && (size_t) ngx_file_size(&fi) > cap) {
        ngx_close_file(fd);
        *err = EFBIG;
        return -1;
    }

    n = pread(fd, buf, cap, off);
    if (n == -1) {
        *err = ngx_errno;
    }

    ngx_close_file(fd);
    return n;
}


static void
ngx_http_cutover_zone_load(ngx_http_cutover_zone_t *zone, ngx_log_t *log)
{
    u_char                    *buf, *moved;
    ssize_t                    n;
    ngx_err_t                  err;
    cutover_error_t            cerr;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    cutover_state_init(&sh->slot[0]);
    sh->active = 0;

    buf = ngx_alloc(CUTOVER_STATE_TEXT_MAX, log);
    if (buf == NULL) {
        return;
    }

    n = ngx_http_cutover_read_file((char *) zone->state_path.data, buf,
                                   CUTOVER_STATE_TEXT_MAX, 0, log, &err);

    if (n < 0 && err == NGX_ENOENT) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "cutover zone \"%V\": no state file \"%V\" yet, "
                      "every rule starts at 0%% new", &zone->name,
                      &zone->state_path);
        goto done;
    }

    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, log, err,
                      "cutover zone \"%V\": cannot read state file \"%V\", "
                      "every rule starts at 0%% new", &zone->name,
                      &zone->state_path);
        goto done;
    }

    if (cutover_state_decode(&sh->slot[0], (char *) buf, (size_t) n, &cerr)
        == CUTOVER_OK)
    {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "cutover zone \"%V\": state version %uL loaded from "
                      "\"%V\"", &zone->name, sh->slot[0].version,
                      &zone->state_path);

        /* a ramp's steps missed while down are not taken in a burst */
        if (cutover_state_ramp_resume(&sh->slot[0], ngx_time())) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "cutover zone \"%V\": a ramp resumes, its next "
                          "step in its interval from now", &zone->name);
        }

        goto done;
    }

    /* keep the bad file for a post-mortem, start safe */
    cutover_state_init(&sh->slot[0]);

    moved = ngx_alloc(zone->state_path.len + sizeof(".corrupt"), log);
    if (moved) {
        ngx_sprintf(moved, "%V.corrupt%Z", &zone->state_path);
        (void) ngx_rename_file(zone->state_path.data, moved);
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "cutover zone \"%V\": state file \"%V\" is corrupt (%s), "
                  "moved to \"%s\"; every rule starts at 0%% new",
                  &zone->name, &zone->state_path, cerr.message,
                  moved ? (char *) moved : "-");
    if (moved) {
        ngx_free(moved);
    }

done:

    ngx_free(buf);
}


void
ngx_http_cutover_zone_route(ngx_http_cutover_zone_t *zone, ngx_str_t *store,
    ngx_str_t *channel, uint32_t bucket, cutover_route_t *route)
{
    ngx_uint_t                 i, tries;
    ngx_atomic_uint_t          seq;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    for (tries = 0; tries < 16; tries++) {
        i = sh->active & 1;
        seq = sh->seq[i];
        ngx_memory_barrier();

        if (seq & 1) {
            continue;
        }

        cutover_state_route(&sh->slot[i], (char *) store->data, store->len,
                            (char *) channel->data, channel->len, bucket,
                            route);
        ngx_memory_barrier();

        if (sh->seq[i] == seq) {
            return;
        }
    }

    /* never seen in practice: a writer kept the slot busy; stay on legacy */
    (void) ngx_atomic_fetch_add(&sh->torn_reads, 1);
    ngx_memzero(route, sizeof(cutover_route_t));
    ngx_cpystrn((u_char *) route->rule_id, (u_char *) "default",
                sizeof(route->rule_id));
}


/* A consistent copy of the live state, read as the router reads it. */
cutover_state_t *
ngx_http_cutover_zone_snapshot(ngx_http_cutover_zone_t *zone,
    ngx_pool_t *pool)
{
    cutover_state_t  *st;

    st = ngx_palloc(pool, sizeof(cutover_state_t));
    if (st == NULL) {
        return NULL;
    }

    ngx_http_cutover_zone_copy(zone, st);
    return st;
}


void
ngx_http_cutover_zone_copy(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st)
{
    ngx_uint_t                 i;
    ngx_atomic_uint_t          seq;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    /* a writer publishes once per change: a retry is rare and short */
    for ( ;; ) {
        i = sh->active & 1;
        seq = sh->seq[i];
        ngx_memory_barrier();

        if (seq & 1) {
            continue;
        }

        ngx_memcpy(st, &sh->slot[i], sizeof(cutover_state_t));
        ngx_memory_barrier();

        if (sh->seq[i] == seq) {
            return;
        }
    }
}


/*
 * The writer lock serializes whatever writes the state file or the audit
 * trail, across worker processes.  Only thread-pool threads take it (they
 * may wait; event loops never do).  A holder whose process died is
 * replaced (nginx's master frees shpool->mutex after a crash, not this),
 * and so is one that carries our own pid while none of our threads holds
 * it: a dead worker's pid, reused.
 */
static pthread_mutex_t  ngx_http_cutover_writer_local =
    PTHREAD_MUTEX_INITIALIZER;


void
ngx_http_cutover_writer_lock(ngx_http_cutover_shctx_t *sh)
{
    ngx_pid_t  pid;

    /* one thread of this process at a time */
    (void) pthread_mutex_lock(&ngx_http_cutover_writer_local);

    for ( ;; ) {
        pid = (ngx_pid_t) sh->writer;

        if (pid == ngx_pid) {
            return;
        }

        if (pid == 0) {
            if (ngx_atomic_cmp_set(&sh->writer, 0, ngx_pid)) {
                return;
            }

            continue;
        }

        if (kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
            (void) ngx_atomic_cmp_set(&sh->writer, pid, 0);
            continue;
        }

        ngx_msleep(1);
    }
}


void
ngx_http_cutover_writer_unlock(ngx_http_cutover_shctx_t *sh)
{
    (void) ngx_atomic_cmp_set(&sh->writer, ngx_pid, 0);
    (void) pthread_mutex_unlock(&ngx_http_cutover_writer_local);
}


/* Makes st the live state; the caller holds the writer lock. */
void
ngx_http_cutover_zone_publish(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st)
{
    ngx_uint_t                 w;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    w = (sh->active & 1) ^ 1;

    sh->seq[w]++;
    ngx_memory_barrier();
    ngx_memcpy(&sh->slot[w], st, sizeof(cutover_state_t));
    ngx_memory_barrier();
    sh->seq[w]++;
    ngx_memory_barrier();
    sh->active = w;
}


/* Writes the state to "<state>.tmp" and fsyncs it; tmp gets its name. */
ngx_int_t
ngx_http_cutover_zone_persist(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, ngx_log_t *log, ngx_str_t *tmp)
{
    int        n;
    u_char    *text;
    ngx_fd_t   fd;

    text = ngx_alloc(CUTOVER_STATE_TEXT_MAX, log);
    if (text == NULL) {
        return NGX_ERROR;
    }

    n = cutover_state_encode(st, (char *) zone->name.data, (char *) text,
                             CUTOVER_STATE_TEXT_MAX);
    if (n < 0) {
        ngx_free(text);
        return NGX_ERROR;
    }

    ngx_sprintf(tmp->data, "%V.tmp%Z", &zone->state_path);
    tmp->len = zone->state_path.len + 4;

    fd = ngx_open_file(tmp->data, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0640);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "cutover zone \"%V\": cannot write \"%V\"",
                      &zone->name, tmp);
        ngx_free(text);
        return NGX_ERROR;
    }

    if (write(fd, text, n) != n || fsync(fd) != 0) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "cutover zone \"%V\": cannot write \"%V\"",
                      &zone->name, tmp);
        ngx_close_file(fd);
        (void) ngx_delete_file(tmp->data);
        ngx_free(text);
        return NGX_ERROR;
    }

    ngx_close_file(fd);
    ngx_free(text);

    return NGX_OK;
}


/* Renames the fsynced temp file over the state file, then syncs the
 * directory so the rename itself survives a crash. */
ngx_int_t
ngx_http_cutover_zone_commit(ngx_http_cutover_zone_t *zone,
    cutover_state_t *st, ngx_str_t *tmp, ngx_log_t *log)
{
    u_char    *slash, dir[NGX_MAX_PATH];
    ngx_fd_t   fd;

    if (ngx_rename_file(tmp->data, zone->state_path.data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "cutover zone \"%V\": cannot rename \"%V\" to \"%V\"",
                      &zone->name, tmp, &zone->state_path);
        (void) ngx_delete_file(tmp->data);
        return NGX_ERROR;
    }

    /* the state path is absolute (ngx_conf_full_name) */
    slash = zone->state_path.data + zone->state_path.len;
    while (slash > zone->state_path.data && *slash != '/') {
        slash--;
    }

    if (slash - zone->state_path.data + 2 < NGX_MAX_PATH) {
        ngx_cpystrn(dir, zone->state_path.data,
                    slash - zone->state_path.data + 2);
        fd = ngx_open_file(dir, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
        if (fd != NGX_INVALID_FILE) {
            (void) fsync(fd);
            ngx_close_file(fd);
        }
    }

    return NGX_OK;
}


/* NGX_OK: first use of this nonce; NGX_DECLINED: a replay; NGX_BUSY: the
 * table is full of live nonces. */
ngx_int_t
ngx_http_cutover_nonce_check(ngx_http_cutover_zone_t *zone,
    const cutover_auth_t *auth, int64_t now)
{
    char                       buf[CUTOVER_ID_MAX + CUTOVER_NONCE_MAX + 4];
    char                       hex[65];
    uint64_t                   h1, h2;
    ngx_int_t                  rc;
    ngx_uint_t                 i, k;
    ngx_http_cutover_nonce_t  *n, *free;
    ngx_http_cutover_shctx_t  *sh = zone->sh;

    k = ngx_sprintf((u_char *) buf, "%s\n%s", auth->key_id, auth->nonce)
        - (u_char *) buf;
    cutover_sha256_hex(buf, k, hex);

    h1 = cutover_hash(hex, 32);
    h2 = cutover_hash(hex + 32, 32);

    free = NULL;
    rc = NGX_BUSY;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < NGX_HTTP_CUTOVER_NONCE_PROBES; i++) {
        n = &sh->nonces[(h1 + i) % NGX_HTTP_CUTOVER_NONCES];

        if (n->time >= now - 2 * CUTOVER_AUTH_WINDOW) {
            if (n->h1 == h1 && n->h2 == h2) {
                rc = NGX_DECLINED;
                goto done;
            }

            continue;
        }

        if (free == NULL) {
            free = n;
        }
    }

    if (free) {
        free->h1 = h1;
        free->h2 = h2;
        free->time = now;
        rc = NGX_OK;
    }

done:

    ngx_shmtx_unlock(&zone->shpool->mutex);
    return rc;
}
