/*
 * shadow_reader: tails the dual-run log's segments in order, verifies
 * frames, skips and reports corrupt regions, resyncs on the magic.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shadow/shadow_reader.h"


#define SHADOW_READ_CHUNK  (1024 * 1024)


struct shadow_reader_s {
    char       *base;
    char       *path;          /* current segment path */
    size_t      path_cap;
    int         fd;
    uint64_t    seq;
    uint64_t    off;           /* next frame starts here */
    uint8_t    *buf;           /* bytes of the segment from buf_off */
    size_t      buf_len;
    size_t      buf_cap;
    uint64_t    buf_off;
    unsigned    grace_ms;
    int64_t     next_seen_ms;  /* when the successor was first seen */
    uint64_t    bad_start;     /* corrupt run being skipped, if bad_len */
    uint64_t    bad_len;
};


static int64_t shadow_now_ms(void);
static int shadow_reader_open(shadow_reader_t *r, shadow_error_t *err);
static int shadow_reader_fill(shadow_reader_t *r, size_t need,
    shadow_error_t *err);
static int shadow_reader_exists(shadow_reader_t *r, uint64_t seq);
static int shadow_reader_resync(shadow_reader_t *r, shadow_error_t *err,
    const char *why);
static int shadow_reader_eof(shadow_reader_t *r, shadow_error_t *err);
static int shadow_reader_sealed(shadow_reader_t *r);
static int shadow_reader_report(shadow_reader_t *r, shadow_error_t *err,
    const char *why);


int
shadow_error_set(shadow_error_t *err, int code, const char *fmt, ...)
{
    va_list  ap;

    if (err != NULL) {
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }

    return code;
}


static int64_t
shadow_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


shadow_reader_t *
shadow_reader_new(const char *base, shadow_pos_t pos, unsigned grace_ms,
    shadow_error_t *err)
{
    uint8_t           scratch[4096] __attribute__((aligned(8)));
    uint64_t          first, last;
    shadow_reader_t  *r;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "out of memory");
        return NULL;
    }

    r->fd = -1;
    r->grace_ms = grace_ms;
    r->base = strdup(base);
    r->path_cap = strlen(base) + CUTOVER_SEQ_DIGITS + 2;
    r->path = malloc(r->path_cap);
    r->buf_cap = SHADOW_READ_CHUNK;
    r->buf = malloc(r->buf_cap);

    if (r->base == NULL || r->path == NULL || r->buf == NULL) {
        shadow_error_set(err, SHADOW_ERROR, "out of memory");
        shadow_reader_free(r);
        return NULL;
    }

    if (pos.seq == 0) {
        if (cutover_segment_range(base, scratch, sizeof(scratch), &first,
                                 &last)
            != SHADOW_OK)
        {
            shadow_error_set(err, SHADOW_ERROR, "cannot list the folder of "
                             "\"%s\": %s", base, strerror(errno));
            shadow_reader_free(r);
            return NULL;
        }

        pos.seq = first ? first : 1;
        pos.off = 0;
    }

    r->seq = pos.seq;
    r->off = pos.off;
    r->buf_off = pos.off;
    return r;
}


void
shadow_reader_free(shadow_reader_t *r)
{
    if (r == NULL) {
        return;
    }

    if (r->fd != -1) {
        close(r->fd);
    }

    free(r->base);
    free(r->path);
    free(r->buf);
    free(r);
}


shadow_pos_t
shadow_reader_pos(const shadow_reader_t *r)
{
    shadow_pos_t  pos;

    pos.seq = r->seq;
    pos.off = r->off;
    return pos;
}


uint64_t
shadow_reader_unread(const shadow_reader_t *r)
{
    char         path[4096];
    uint64_t     s, n = 0;
    struct stat  st;

    for (s = r->seq; s < r->seq + 100000; s++) {
        if (cutover_segment_path(path, sizeof(path), r->base, s) != SHADOW_OK
            || stat(path, &st) != 0)
        {
            break;
        }

        if (s == r->seq) {
            n += (uint64_t) st.st_size > r->off ? st.st_size - r->off : 0;

        } else {
            n += (uint64_t) st.st_size;
        }
    }

    return n;
}


static int
shadow_reader_exists(shadow_reader_t *r, uint64_t seq)
{
    char         path[4096];
    struct stat  st;

    if (cutover_segment_path(path, sizeof(path), r->base, seq) != SHADOW_OK) {
        return 0;
    }

    return stat(path, &st) == 0;
}


/* Open segment r->seq; when it is gone, jump to the next one present. */
static int
shadow_reader_open(shadow_reader_t *r, shadow_error_t *err)
{
    uint8_t   scratch[4096] __attribute__((aligned(8)));
    uint64_t  first, last, s;

    cutover_segment_path(r->path, r->path_cap, r->base, r->seq);

    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd != -1) {
        r->buf_off = r->off;
        r->buf_len = 0;
        return SHADOW_OK;
    }

    if (errno != ENOENT) {
        return shadow_error_set(err, SHADOW_ERROR, "cannot open \"%s\": %s",
                                r->path, strerror(errno));
    }

    if (cutover_segment_range(r->base, scratch, sizeof(scratch), &first,
                             &last)
        != SHADOW_OK)
    {
        return shadow_error_set(err, SHADOW_ERROR, "cannot list segments "
                                "of \"%s\": %s", r->base, strerror(errno));
    }

    if (last <= r->seq) {
        return SHADOW_AGAIN;
    }

    for (s = r->seq + 1; s <= last && !shadow_reader_exists(r, s); s++) {
        /* the first present segment after the missing one */
    }

    shadow_error_set(err, SHADOW_CORRUPT, "segment \"%s\" is missing, "
                     "continuing at segment %llu", r->path,
                     (unsigned long long) s);
    r->seq = s;
    r->off = 0;
    r->buf_off = 0;
    r->buf_len = 0;
    return SHADOW_CORRUPT;
}


/* Make buf hold at least need bytes from r->off if the file has them;
 * returns SHADOW_OK and leaves what is available otherwise. */
static int
shadow_reader_fill(shadow_reader_t *r, size_t need, shadow_error_t *err)
{
    size_t    keep, want;
    ssize_t   n;
    uint8_t  *p;

    if (r->buf_off + r->buf_len >= r->off + need) {
        return SHADOW_OK;
    }

    /* drop consumed bytes */
    keep = (size_t) (r->buf_off + r->buf_len - r->off);
    memmove(r->buf, r->buf + (r->off - r->buf_off), keep);
    r->buf_off = r->off;
    r->buf_len = keep;

    want = need > SHADOW_READ_CHUNK ? need : SHADOW_READ_CHUNK;
    if (want > r->buf_cap) {
        p = realloc(r->buf, want);
        if (p == NULL) {
            return shadow_error_set(err, SHADOW_ERROR, "out of memory");
        }

        r->buf = p;
        r->buf_cap = want;
    }

    while (r->buf_len < r->buf_cap) {
        n = pread(r->fd, r->buf + r->buf_len, r->buf_cap - r->buf_len,
                  (off_t) (r->buf_off + r->buf_len));
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return shadow_error_set(err, SHADOW_ERROR, "cannot read \"%s\": "
                                    "%s", r->path, strerror(errno));
        }

        if (n == 0) {
            break;
        }

        r->buf_len += (size_t) n;
    }

    return SHADOW_OK;
}


static int
shadow_reader_report(shadow_reader_t *r, shadow_error_t *err,
    const char *why)
{
    return shadow_error_set(err, SHADOW_CORRUPT, "corrupt frame in segment "
                            "\"%s\" at offset %llu (%s), skipping to the "
                            "next frame", r->path,
                            (unsigned long long) r->bad_start, why);
}


/*
 * The frame at r->off is bad: skip to the next magic in the buffered bytes,
 * or to near their end when there is none yet.  A corrupt run is reported
 * once, when it starts.
 */
static int
shadow_reader_resync(shadow_reader_t *r, shadow_error_t *err,
    const char *why)
{
    int             new_run = (r->bad_len == 0);
    size_t          i, avail;
    const uint8_t  *p = r->buf + (r->off - r->buf_off);
    static const uint8_t  magic[4] = { 0x53, 0x44, 0x56, 0x31 };

    avail = (size_t) (r->buf_off + r->buf_len - r->off);

    if (new_run) {
        r->bad_start = r->off;
    }

    for (i = 1; i + 4 <= avail; i++) {
        if (memcmp(p + i, magic, 4) == 0) {
            r->off += i;
            r->bad_len = 0;
            return new_run ? shadow_reader_report(r, err, why) : SHADOW_OK;
        }
    }

    /* keep the last 3 bytes: they may begin a magic still being written */
    i = avail > 3 ? avail - 3 : 1;
    r->off += i;
    r->bad_len += i;
    return new_run ? shadow_reader_report(r, err, why)
                   : shadow_reader_eof(r, err);
}


/* The segment has a successor, seen at least grace_ms ago: no writer
 * will add to it any more. */
static int
shadow_reader_sealed(shadow_reader_t *r)
{
    char             path[4096];
    int64_t          now, age_ms;
    struct timespec  ts;
    struct statx     stx;

    if (cutover_segment_path(path, sizeof(path), r->base, r->seq + 1)
        != SHADOW_OK
        || statx(AT_FDCWD, path, 0, STATX_BTIME, &stx) != 0)
    {
        r->next_seen_ms = 0;
        return 0;
    }

    /* a successor born long ago (a backlog): no straggler is pending */
    if (stx.stx_mask & STATX_BTIME) {
        clock_gettime(CLOCK_REALTIME, &ts);
        age_ms = ((int64_t) ts.tv_sec - stx.stx_btime.tv_sec) * 1000
                 + ((int64_t) ts.tv_nsec - stx.stx_btime.tv_nsec) / 1000000;
        if (age_ms >= (int64_t) r->grace_ms) {
            return 1;
        }
    }

    now = shadow_now_ms();
    if (r->next_seen_ms == 0) {
        r->next_seen_ms = now;
    }

    return now - r->next_seen_ms >= (int64_t) r->grace_ms;
}


/*
 * Bytes read past the last whole frame are forgotten while the reader
 * waits: a writer that cuts a short write off again (a full disk) puts the
 * next frame where they were, and the next fill must read it afresh.
 */
static void
shadow_reader_forget_tail(shadow_reader_t *r)
{
    if (r->off >= r->buf_off && r->off <= r->buf_off + r->buf_len) {
        r->buf_len = (size_t) (r->off - r->buf_off);
    }
}


/* Everything complete at r->off is consumed. */
static int
shadow_reader_eof(shadow_reader_t *r, shadow_error_t *err)
{
    int       rc;
    int64_t   now;
    uint64_t  end;

    if (!shadow_reader_sealed(r)) {
        return SHADOW_AGAIN;
    }

    now = shadow_now_ms();

    /* re-read once more after the grace period, for late stragglers */
    if (shadow_reader_fill(r, CUTOVER_FRAME_HEADER, err) != SHADOW_OK) {
        return SHADOW_ERROR;
    }

    end = r->buf_off + r->buf_len;
    if (end > r->off && end - r->off >= CUTOVER_FRAME_HEADER) {
        r->next_seen_ms = now - r->grace_ms;
        return SHADOW_OK;          /* more frames arrived: read them */
    }

    rc = SHADOW_OK;                /* go on in the next segment */

    if (end > r->off && r->bad_len == 0) {
        r->bad_start = r->off;
        rc = shadow_reader_report(r, err, "torn tail");
    }

    r->bad_len = 0;
    close(r->fd);
    r->fd = -1;
    r->seq++;
    r->off = 0;
    r->next_seen_ms = 0;
    return rc;
}


/*
 * Kept whole (past 80 lines): the reader's position, its buffer and the
 * segment being read are one loop's state.
 */
int
shadow_reader_next(shadow_reader_t *r, shadow_frame_t *frame,
    shadow_error_t *err)
{
    int             rc;
    size_t          avail;
    uint32_t        len, crc;
    const uint8_t  *p;

    for ( ;; ) {
        if (r->fd == -1) {
            rc = shadow_reader_open(r, err);
            if (rc != SHADOW_OK) {
                return rc;
            }
        }

        if (shadow_reader_fill(r, CUTOVER_FRAME_HEADER, err) != SHADOW_OK) {
            return SHADOW_ERROR;
        }

        avail = (size_t) (r->buf_off + r->buf_len - r->off);
        p = r->buf + (r->off - r->buf_off);

        if (avail < CUTOVER_FRAME_HEADER) {
            rc = shadow_reader_eof(r, err);
            if (rc != SHADOW_OK) {
                shadow_reader_forget_tail(r);
                return rc;
            }

            continue;
        }

        if (cutover_frame_header(p, &len, &crc) != SHADOW_OK) {
            rc = shadow_reader_resync(r, err, "bad magic or length");
            if (rc != SHADOW_OK) {
                return rc;
            }

            continue;
        }

        if (shadow_reader_fill(r, CUTOVER_FRAME_HEADER + len, err)
            != SHADOW_OK)
        {
            return SHADOW_ERROR;
        }

        avail = (size_t) (r->buf_off + r->buf_len - r->off);
        p = r->buf + (r->off - r->buf_off);

        if (avail < CUTOVER_FRAME_HEADER + len) {
            /* a frame cut short in a finished segment: a bad length or a
             * torn write; frames may follow inside the claimed length */
            rc = shadow_reader_sealed(r)
                 ? shadow_reader_resync(r, err, "torn or incomplete frame")
                 : SHADOW_AGAIN;
            if (rc != SHADOW_OK) {
                shadow_reader_forget_tail(r);
                return rc;
            }

            continue;
        }

        if (cutover_crc32c(0, p + CUTOVER_FRAME_HEADER, len) != crc) {
            rc = shadow_reader_resync(r, err, "bad crc");
            if (rc != SHADOW_OK) {
                return rc;
            }

            continue;
        }

        r->bad_len = 0;
        frame->at.seq = r->seq;
        frame->at.off = r->off;
        frame->payload = p + CUTOVER_FRAME_HEADER;
        frame->len = len;
        r->off += CUTOVER_FRAME_HEADER + len;
        frame->next.seq = r->seq;
        frame->next.off = r->off;
        return SHADOW_OK;
    }
}
