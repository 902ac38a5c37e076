/*
 * ngx_http_cutover_logbuf: the dual-run log's shared buffer.
 *
 * A record used to cost one write(2) to the log in the log phase (with an
 * lseek(2) to notice a full segment): on ext4 that was half of what
 * recording costs a worker.  Now the workers of one nginx copy their frames
 * into one buffer in shared memory (cutover_log ... buffer=, 1m by
 * default), in the order their requests end, and a worker writes
 * everything buffered with one writev(2) at the end of its event loop
 * iteration, before it waits for events again.  So:
 *
 *   - the log keeps the order in which requests ended across all workers
 *     (the buffer is one queue, written out in order by one worker at a
 *     time), as with one write(2) per record;
 *   - a worker that dies holds nothing back: what it buffered is in shared
 *     memory, and the next flush of any worker (the worker that replaces it
 *     flushes when it starts) writes it;
 *   - a frame larger than a quarter of the buffer, or any frame with
 *     buffer=off, is written directly (after what is buffered before it);
 *   - a record is counted as written, or as dropped with its reason, when
 *     it reaches the file, by the worker that wrote it out.
 *
 * Two locks guard the buffer: "lock" while a frame is copied in or the
 * written part released (a memcpy), and "flush_lock" while a worker writes
 * the buffered frames out (so batches reach the file in order).  Both hold
 * the pid of their holder; a waiter that finds the holder gone (killed
 * while holding it) takes the lock over.  The bytes a dead holder was
 * copying were never published (head moves after the copy).
 */

#include "ngx_http_cutover.h"

#include <sys/uio.h>


/* One frame in the buffer: this header, the frame, padding to 8 bytes. */
typedef struct {
    uint32_t                      len;        /* the frame's bytes */
    uint32_t                      zone;       /* the zone's name_hash */
    uint32_t                      truncated;
    uint32_t                      reserved;
    u_char                        id[32];     /* the request id */
} ngx_http_cutover_entry_t;

/* len of an entry that says "the rest of the buffer is unused: go on at
 * its start"; a rest too short for a header says so by itself */
#define NGX_HTTP_CUTOVER_ENTRY_WRAP  0xffffffffu

#define ngx_http_cutover_entry_size(len)                                     \
    ngx_align(sizeof(ngx_http_cutover_entry_t) + (len), 8)


struct ngx_http_cutover_ring_s {
    ngx_atomic_t                  lock;       /* pid copying in, or 0 */
    ngx_atomic_t                  flush_lock; /* pid writing out, or 0 */
    uint64_t                      head;       /* bytes ever copied in */
    uint64_t                      tail;       /* bytes ever written out */
    uint64_t                      size;       /* of data */
    ngx_atomic_t                  writes;     /* writev(2) calls */
    ngx_atomic_t                  full;       /* appends that found it full */
    uint64_t                      data[1];
};


/* the pieces of one writev(2), and the entries they came from */
#define NGX_HTTP_CUTOVER_BATCH  1024

static struct iovec                ngx_http_cutover_iov[
                                       NGX_HTTP_CUTOVER_BATCH];
static ngx_http_cutover_entry_t   *ngx_http_cutover_batch[
                                       NGX_HTTP_CUTOVER_BATCH];


static ngx_int_t ngx_http_cutover_ring_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_cutover_spin_lock(ngx_atomic_t *lock);
static void ngx_http_cutover_spin_unlock(ngx_atomic_t *lock);
static ngx_int_t ngx_http_cutover_ring_put(ngx_http_cutover_ring_t *ring,
    ngx_http_cutover_entry_t *e, u_char *frame);
static void ngx_http_cutover_flush_locked(ngx_http_cutover_log_t *log,
    ngx_log_t *errlog);
static void ngx_http_cutover_flush_batch(ngx_http_cutover_log_t *log,
    ngx_uint_t n, ngx_log_t *errlog);
static ngx_http_cutover_shctx_t *ngx_http_cutover_entry_zone(
    ngx_http_cutover_log_t *log, uint32_t hash);
static void ngx_http_cutover_flush_handler(ngx_event_t *ev);


/* "cutover_log ... buffer=<size>": the buffer's shared memory zone. */
ngx_int_t
ngx_http_cutover_logbuf_add(ngx_conf_t *cf, ngx_http_cutover_log_t *log,
    size_t size)
{
    ngx_str_t        name;
    ngx_shm_zone_t  *shm_zone;

    name.len = sizeof("cutover_log ") - 1 + log->path.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(name.data, "cutover_log %V", &log->path);

    /* the slab pool's own pages and page table come on top */
    shm_zone = ngx_shared_memory_add(cf, &name, size + size / 32 + 64 * 1024,
                                     &ngx_http_cutover_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_cutover_ring_init;
    shm_zone->data = log;

    return NGX_OK;
}


/* A reload that keeps the size keeps the buffer and what is in it. */
static ngx_int_t
ngx_http_cutover_ring_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_cutover_log_t   *log = shm_zone->data;
    ngx_http_cutover_log_t   *old = data;
    ngx_slab_pool_t          *shpool;
    ngx_http_cutover_ring_t  *ring;

    if (old != NULL && old->ring != NULL) {
        log->ring = old->ring;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ring = ngx_slab_alloc(shpool, offsetof(ngx_http_cutover_ring_t, data)
                                  + log->buffer);
    if (ring == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(ring, offsetof(ngx_http_cutover_ring_t, data));
    ring->size = log->buffer & ~(size_t) 7;

    log->ring = ring;

    return NGX_OK;
}


/* A worker's flush event for the log, and a first flush of what a worker
 * that died before it left in the buffer. */
void
ngx_http_cutover_logbuf_start(ngx_http_cutover_log_t *log, ngx_log_t *errlog)
{
    log->flush_ev.handler = ngx_http_cutover_flush_handler;
    log->flush_ev.data = log;
    log->flush_ev.log = errlog;

    if (log->ring != NULL) {
        ngx_post_event(&log->flush_ev, &ngx_posted_events);
    }
}


/*
 * The record of a request that ended: copied into the buffer (written out
 * at the end of this event loop iteration), or written at once.  Either
 * way it is counted when it reaches the file.
 */
void
ngx_http_cutover_log_write(ngx_http_cutover_log_t *log,
    ngx_http_cutover_zone_t *zone, u_char *id, ngx_uint_t truncated,
    u_char *frame, size_t len, ngx_log_t *errlog)
{
    int                        rc;
    ngx_uint_t                 tries;
    ngx_http_cutover_ring_t   *ring;
    ngx_http_cutover_entry_t   e;

    ring = log->ring;

    if (ring != NULL && ngx_http_cutover_entry_size(len) <= ring->size / 4) {
        e.len = (uint32_t) len;
        e.zone = zone->name_hash;
        e.truncated = (uint32_t) truncated;
        e.reserved = 0;
        ngx_memcpy(e.id, id, 32);

        for (tries = 0; tries < 3; tries++) {
            if (ngx_http_cutover_ring_put(ring, &e, frame) == NGX_OK) {
                if (!log->flush_ev.posted) {
                    ngx_post_event(&log->flush_ev, &ngx_posted_events);
                }

                return;
            }

            /* full: write it out now (other workers' flushes may be
             * filling it as fast; after a few tries write directly) */
            (void) ngx_atomic_fetch_add(&ring->full, 1);
            ngx_http_cutover_logbuf_flush(log, errlog);
        }
    }

    if (ring != NULL) {
        ngx_http_cutover_spin_lock(&ring->flush_lock);
        ngx_http_cutover_flush_locked(log, errlog);
    }

    rc = cutover_writer_append(&log->writer, frame, len);

    ngx_http_cutover_log_result(log, zone->sh, id, truncated, rc, errlog);

    if (ring != NULL) {
        ngx_http_cutover_spin_unlock(&ring->flush_lock);
    }
}


/* Copies an entry in, or NGX_AGAIN when there is no room. */
static ngx_int_t
ngx_http_cutover_ring_put(ngx_http_cutover_ring_t *ring,
    ngx_http_cutover_entry_t *e, u_char *frame)
{
    u_char                    *data;
    uint64_t                   off, skip, need;
    ngx_http_cutover_entry_t  *wrap;

    data = (u_char *) ring->data;
    need = ngx_http_cutover_entry_size(e->len);

    ngx_http_cutover_spin_lock(&ring->lock);

    off = ring->head % ring->size;
    skip = ring->size - off < need ? ring->size - off : 0;

    if (ring->size - (ring->head - ring->tail) < skip + need) {
        ngx_http_cutover_spin_unlock(&ring->lock);
        return NGX_AGAIN;
    }

    if (skip >= sizeof(ngx_http_cutover_entry_t)) {
        wrap = (ngx_http_cutover_entry_t *) (data + off);
        wrap->len = NGX_HTTP_CUTOVER_ENTRY_WRAP;
    }

    off = (ring->head + skip) % ring->size;

    ngx_memcpy(data + off, e, sizeof(ngx_http_cutover_entry_t));
    ngx_memcpy(data + off + sizeof(ngx_http_cutover_entry_t), frame, e->len);

    /* published only now: a holder killed during the copies leaves head
     * where it was */
    ngx_memory_barrier();
    ring->head += skip + need;

    ngx_http_cutover_spin_unlock(&ring->lock);

    return NGX_OK;
}


void
ngx_http_cutover_logbuf_flush(ngx_http_cutover_log_t *log, ngx_log_t *errlog)
{
    if (log->ring == NULL) {
        return;
    }

    ngx_http_cutover_spin_lock(&log->ring->flush_lock);
    ngx_http_cutover_flush_locked(log, errlog);
    ngx_http_cutover_spin_unlock(&log->ring->flush_lock);
}


static void
ngx_http_cutover_flush_handler(ngx_event_t *ev)
{
    ngx_http_cutover_logbuf_flush(ev->data, ev->log);
}


/* Writes out everything buffered, NGX_HTTP_CUTOVER_BATCH frames per
 * writev(2).  Holds flush_lock; takes "lock" only to read and move the
 * ends: appends go on meanwhile, behind what is being written. */
static void
ngx_http_cutover_flush_locked(ngx_http_cutover_log_t *log, ngx_log_t *errlog)
{
    u_char                    *data;
    uint64_t                   pos, head, off, rest;
    ngx_uint_t                 n;
    ngx_http_cutover_ring_t   *ring;
    ngx_http_cutover_entry_t  *e;

    ring = log->ring;
    data = (u_char *) ring->data;

    ngx_http_cutover_spin_lock(&ring->lock);
    pos = ring->tail;
    head = ring->head;
    ngx_http_cutover_spin_unlock(&ring->lock);

    n = 0;

    while (pos < head) {
        off = pos % ring->size;
        rest = ring->size - off;
        e = (ngx_http_cutover_entry_t *) (data + off);

        if (rest < sizeof(ngx_http_cutover_entry_t)
            || e->len == NGX_HTTP_CUTOVER_ENTRY_WRAP)
        {
            pos += rest;
            continue;
        }

        ngx_http_cutover_iov[n].iov_base = data + off
                                           + sizeof(ngx_http_cutover_entry_t);
        ngx_http_cutover_iov[n].iov_len = e->len;
        ngx_http_cutover_batch[n++] = e;
        pos += ngx_http_cutover_entry_size(e->len);

        if (n == NGX_HTTP_CUTOVER_BATCH) {
            ngx_http_cutover_flush_batch(log, n, errlog);
            n = 0;

            /* (only the holder of flush_lock moves the tail) */
            ngx_http_cutover_spin_lock(&ring->lock);
            ring->tail = pos;
            ngx_http_cutover_spin_unlock(&ring->lock);
        }
    }

    if (n) {
        ngx_http_cutover_flush_batch(log, n, errlog);
    }

    ngx_http_cutover_spin_lock(&ring->lock);

    ring->tail = pos;

    if (ring->head == pos) {
        /* empty: the next frame goes to the start again, so the buffer's
         * memory in use stays that of one batch, warm in the cache (a
         * buffer gone round and round costs a cache miss a line) */
        ring->head = (pos + ring->size - 1) / ring->size * ring->size;
        ring->tail = ring->head;
    }

    ngx_http_cutover_spin_unlock(&ring->lock);
}


/* One writev(2) of n frames, and each frame's outcome counted.  A batch
 * that fails for any reason but a full log is retried frame by frame: on a
 * nearly full disk the frames that still fit are kept. */
static void
ngx_http_cutover_flush_batch(ngx_http_cutover_log_t *log, ngx_uint_t n,
    ngx_log_t *errlog)
{
    int                        rc, one;
    ngx_uint_t                 i;
    ngx_http_cutover_entry_t  *e;

    rc = cutover_writer_appendv(&log->writer, ngx_http_cutover_iov, (int) n);

    (void) ngx_atomic_fetch_add(&log->ring->writes, 1);

    for (i = 0; i < n; i++) {
        e = ngx_http_cutover_batch[i];
        one = rc;

        if (rc == CUTOVER_ERROR) {
            one = cutover_writer_append(&log->writer,
                                        ngx_http_cutover_iov[i].iov_base,
                                        ngx_http_cutover_iov[i].iov_len);
        }

        ngx_http_cutover_log_result(log,
                                    ngx_http_cutover_entry_zone(log, e->zone),
                                    e->id, e->truncated, one, errlog);
    }
}


/* The zone a buffered record was routed in, by its name's hash.  A zone
 * that a reload removed while its record waited in the buffer is no
 * longer there: such a record is counted in the first zone recording to
 * this log. */
static ngx_http_cutover_shctx_t *
ngx_http_cutover_entry_zone(ngx_http_cutover_log_t *log, uint32_t hash)
{
    ngx_uint_t                     i;
    ngx_shm_zone_t               **zp;
    ngx_http_cutover_zone_t       *zone;
    ngx_http_cutover_main_conf_t  *cmcf;

    if (log->zone_hash == hash && log->zone_sh != NULL) {
        return log->zone_sh;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_cutover_module);
    zp = cmcf->zones.elts;

    for (i = 0; i < cmcf->zones.nelts; i++) {
        zone = zp[i]->data;

        if (zone->name_hash == hash) {
            log->zone_hash = hash;
            log->zone_sh = zone->sh;
            return zone->sh;
        }
    }

    return log->first_zone ? log->first_zone->sh : NULL;
}


/* A lock word holding its holder's pid.  Held for a memcpy or one
 * writev(2): spin a little, then yield; every 64 rounds, check that the
 * holder still lives, and take the lock over from a dead one. */
static void
ngx_http_cutover_spin_lock(ngx_atomic_t *lock)
{
    ngx_uint_t         i, round;
    ngx_atomic_uint_t  holder;

    for (round = 1; /* void */; round++) {
        holder = *lock;

        if (holder == 0 && ngx_atomic_cmp_set(lock, 0, ngx_pid)) {
            return;
        }

        if (ngx_ncpu > 1) {
            for (i = 0; i < 64 && *lock != 0; i++) {
                ngx_cpu_pause();
            }
        }

        holder = *lock;

        if (holder == 0) {
            continue;
        }

        if (round % 64 == 0
            && kill((ngx_pid_t) holder, 0) == -1 && ngx_errno == NGX_ESRCH)
        {
            (void) ngx_atomic_cmp_set(lock, holder, 0);
            continue;
        }

        ngx_sched_yield();
    }
}


static void
ngx_http_cutover_spin_unlock(ngx_atomic_t *lock)
{
    ngx_memory_barrier();
    *lock = 0;
}


/* The logs' buffers in the metrics text (a path's " and \\ escaped). */
size_t
ngx_http_cutover_logbuf_metrics_size(ngx_http_cutover_main_conf_t *cmcf)
{
    size_t                    size;
    ngx_uint_t                i;
    ngx_http_cutover_log_t  **lp;

    size = 512;
    lp = cmcf->logs.elts;

    for (i = 0; i < cmcf->logs.nelts; i++) {
        size += 3 * (2 * lp[i]->path.len + 80);
    }

    return size;
}


u_char *
ngx_http_cutover_logbuf_metrics(ngx_http_cutover_main_conf_t *cmcf, u_char *p)
{
    u_char                    path[2 * NGX_MAX_PATH], *q;
    ngx_uint_t                i, k, m;
    ngx_http_cutover_log_t  **lp;
    ngx_http_cutover_ring_t  *ring;

    static const char  *names[] = {
        "# HELP cutover_log_writes_total Writes to the dual-run log (each a "
        "batch of records).\n# TYPE cutover_log_writes_total counter\n",
        "# HELP cutover_log_buffer_full_total Records that found the log's "
        "buffer full and had it written out first.\n"
        "# TYPE cutover_log_buffer_full_total counter\n",
        "# HELP cutover_log_buffer_bytes Bytes in the log's buffer not yet "
        "written.\n# TYPE cutover_log_buffer_bytes gauge\n"
    };

    lp = cmcf->logs.elts;

    for (m = 0; m < 3; m++) {
        p = ngx_cpymem(p, names[m], ngx_strlen(names[m]));

        for (i = 0; i < cmcf->logs.nelts; i++) {
            ring = lp[i]->ring;
            if (ring == NULL) {
                continue;
            }

            q = path;
            for (k = 0; k < lp[i]->path.len && k < NGX_MAX_PATH; k++) {
                if (lp[i]->path.data[k] == '"' || lp[i]->path.data[k] == '\\')
                {
                    *q++ = '\\';
                }

                *q++ = lp[i]->path.data[k];
            }

            p = ngx_sprintf(p, "%s{log=\"%*s\"} %uL\n",
                            m == 0 ? "cutover_log_writes_total"
                            : m == 1 ? "cutover_log_buffer_full_total"
                                     : "cutover_log_buffer_bytes",
                            (size_t) (q - path), path,
                            m == 0 ? (uint64_t) ring->writes
                            : m == 1 ? (uint64_t) ring->full
                                     : ring->head - ring->tail);
        }
    }

    return p;
}
