/*
 * shadow_deadletter: the durable dead-letter store (format in
 * shadow_deadletter.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bson/bson.h>

#include "common/cutover_hash.h"
#include "common/cutover_json.h"
#include "shadow/shadow_deadletter.h"


struct shadow_dl_s {
    char  *dir;
    int    lock_fd;
    int    locked;
};


static int shadow_dl_fsync_dir(const char *dir);
static off_t shadow_dl_scan(int fd, shadow_dl_entry_pt cb, void *ctx,
    long *n, off_t *bad);
static int shadow_dl_decode(const uint8_t *p, uint32_t len,
    shadow_dl_entry_t *e, bson_t *doc);


shadow_dl_t *
shadow_dl_open(const char *dir, shadow_error_t *err)
{
    char          path[4096];
    shadow_dl_t  *dl;

    if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
        shadow_error_set(err, SHADOW_ERROR, "dead-letter store \"%s\": %s",
                         dir, strerror(errno));
        return NULL;
    }

    dl = calloc(1, sizeof(*dl));
    if (dl == NULL || (dl->dir = strdup(dir)) == NULL) {
        free(dl);
        shadow_error_set(err, SHADOW_ERROR, "out of memory");
        return NULL;
    }

    snprintf(path, sizeof(path), "%s/lock", dir);
    dl->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (dl->lock_fd == -1) {
        shadow_error_set(err, SHADOW_ERROR, "dead-letter store \"%s\": %s",
                         path, strerror(errno));
        shadow_dl_free(dl);
        return NULL;
    }

    return dl;
}


void
shadow_dl_free(shadow_dl_t *dl)
{
    if (dl == NULL) {
        return;
    }

    if (dl->lock_fd > 0) {
        close(dl->lock_fd);
    }

    free(dl->dir);
    free(dl);
}


const char *
shadow_dl_dir(const shadow_dl_t *dl)
{
    return dl->dir;
}


int
shadow_dl_lock(shadow_dl_t *dl, int wait, shadow_error_t *err)
{
    while (flock(dl->lock_fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == -1) {
        if (errno == EINTR) {
            continue;
        }

        if (errno == EWOULDBLOCK) {
            return SHADOW_AGAIN;
        }

        return shadow_error_set(err, SHADOW_ERROR, "locking the dead-letter "
                                "store \"%s\": %s", dl->dir, strerror(errno));
    }

    dl->locked = 1;
    return SHADOW_OK;
}


void
shadow_dl_unlock(shadow_dl_t *dl)
{
    if (dl->locked) {
        flock(dl->lock_fd, LOCK_UN);
        dl->locked = 0;
    }
}


void
shadow_dl_stem(const char *key, size_t len, char *buf)
{
    if (len * 2 <= SHADOW_DL_STEM_MAX - 2) {
        cutover_hex((const unsigned char *) key, len, buf);
        buf[len * 2] = '\0';
        return;
    }

    buf[0] = 'h';
    cutover_sha256_hex(key, len, buf + 1);
}


int
shadow_dl_path(const shadow_dl_t *dl, const char *key, size_t len,
    const char *suffix, char *buf, size_t cap)
{
    int   n;
    char  stem[SHADOW_DL_STEM_MAX + 1];

    shadow_dl_stem(key, len, stem);
    n = snprintf(buf, cap, "%s/%s%s", dl->dir, stem, suffix);
    return n < 0 || (size_t) n >= cap ? SHADOW_ERROR : SHADOW_OK;
}


int
shadow_dl_exists(const char *path)
{
    struct stat  st;

    return stat(path, &st) == 0;
}


static int
shadow_dl_fsync_dir(const char *dir)
{
    int  fd, rc;

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    rc = fsync(fd);
    close(fd);
    return rc;
}


static int
shadow_dl_decode(const uint8_t *p, uint32_t len, shadow_dl_entry_t *e,
    bson_t *doc)
{
    uint32_t         n;
    bson_iter_t      it;
    bson_subtype_t   sub;

    memset(e, 0, sizeof(*e));
    if (!bson_init_static(doc, p, len) || !bson_iter_init(&it, doc)) {
        return SHADOW_ERROR;
    }

    while (bson_iter_next(&it)) {
        const char  *k = bson_iter_key(&it);

        if (strcmp(k, "key") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
            e->key = bson_iter_utf8(&it, &n);
            e->key_len = n;

        } else if (strcmp(k, "reason") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
            e->reason = bson_iter_utf8(&it, &n);

        } else if (strcmp(k, "parked_us") == 0) {
            e->parked_us = bson_iter_as_int64(&it);

        } else if (strcmp(k, "attempts") == 0) {
            e->attempts = (int) bson_iter_as_int64(&it);

        } else if (strcmp(k, "record") == 0 && BSON_ITER_HOLDS_BINARY(&it)) {
            bson_iter_binary(&it, &sub, &e->len, &e->payload);
        }
    }

    return e->key != NULL && e->payload != NULL ? SHADOW_OK : SHADOW_ERROR;
}


/* Walks the frames of fd from its start; returns where the last whole
 * frame ends. */
static off_t
shadow_dl_scan(int fd, shadow_dl_entry_pt cb, void *ctx, long *n,
    off_t *bad)
{
    off_t              off = 0;
    uint8_t            hdr[CUTOVER_FRAME_HEADER], *p = NULL, *np;
    uint32_t           len, crc, cap = 0;
    bson_t             doc;
    shadow_dl_entry_t  e;

    *n = 0;
    *bad = -1;

    for ( ;; ) {
        ssize_t  r = pread(fd, hdr, sizeof(hdr), off);

        if (r == 0) {
            break;
        }

        if (r != (ssize_t) sizeof(hdr)
            || cutover_frame_header(hdr, &len, &crc) != SHADOW_OK)
        {
            *bad = off;
            break;
        }

        if (len > cap) {
            np = realloc(p, len);
            if (np == NULL) {
                *bad = off;
                break;
            }

            p = np;
            cap = len;
        }

        if (pread(fd, p, len, off + CUTOVER_FRAME_HEADER) != (ssize_t) len
            || cutover_crc32c(0, p, len) != crc)
        {
            *bad = off;
            break;
        }

        if (cb != NULL) {
            if (shadow_dl_decode(p, len, &e, &doc) != SHADOW_OK) {
                *bad = off;
                break;
            }

            if (cb(ctx, &e) != 0) {
                off += CUTOVER_FRAME_HEADER + len;
                (*n)++;
                break;
            }
        }

        off += CUTOVER_FRAME_HEADER + len;
        (*n)++;
    }

    free(p);
    return off;
}


long
shadow_dl_read(const char *path, shadow_dl_entry_pt cb, void *ctx,
    off_t *bad, shadow_error_t *err)
{
    int   fd;
    long  n;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        shadow_error_set(err, SHADOW_ERROR, "cannot open \"%s\": %s", path,
                         strerror(errno));
        return -1;
    }

    shadow_dl_scan(fd, cb, ctx, &n, bad);
    close(fd);
    return n;
}


/*
 * Kept whole (past 80 lines): open, check the tail, write and fsync are one
 * sequence on one descriptor.
 */
int
shadow_dl_append(shadow_dl_t *dl, const shadow_dl_entry_t *e,
    off_t *verified, shadow_error_t *err)
{
    int          fd, created = 0;
    long         n;
    char         path[4096];
    off_t        end, bad;
    bson_t       doc;
    uint8_t     *frame;
    uint32_t     len;
    struct stat  st;

    if (shadow_dl_path(dl, e->key, e->key_len, ".dl", path, sizeof(path))
        != SHADOW_OK)
    {
        return shadow_error_set(err, SHADOW_ERROR, "dead-letter path too "
                                "long");
    }

    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd == -1 && errno == ENOENT) {
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        created = 1;
        *verified = 0;
    }

    if (fd == -1) {
        return shadow_error_set(err, SHADOW_ERROR, "cannot open \"%s\": %s",
                                path, strerror(errno));
    }

    if (fstat(fd, &st) == -1) {
        close(fd);
        return shadow_error_set(err, SHADOW_ERROR, "\"%s\": %s", path,
                                strerror(errno));
    }

    end = st.st_size;
    if (end != *verified) {
        /* written by an earlier run, or torn by a crash: whole frames only */
        end = shadow_dl_scan(fd, NULL, NULL, &n, &bad);
        if (end != st.st_size && ftruncate(fd, end) == -1) {
            close(fd);
            return shadow_error_set(err, SHADOW_ERROR, "cannot cut the torn "
                                    "tail of \"%s\": %s", path,
                                    strerror(errno));
        }
    }

    bson_init(&doc);
    bson_append_utf8(&doc, "key", 3, e->key, (int) e->key_len);
    BSON_APPEND_INT64(&doc, "parked_us", e->parked_us);
    BSON_APPEND_UTF8(&doc, "reason", e->reason ? e->reason : "");
    BSON_APPEND_INT32(&doc, "attempts", e->attempts);
    BSON_APPEND_BINARY(&doc, "record", BSON_SUBTYPE_BINARY, e->payload,
                       e->len);

    len = doc.len;
    frame = malloc(CUTOVER_FRAME_HEADER + len);
    if (frame == NULL) {
        bson_destroy(&doc);
        close(fd);
        return shadow_error_set(err, SHADOW_ERROR, "out of memory");
    }

    memcpy(frame + CUTOVER_FRAME_HEADER, bson_get_data(&doc), len);
    bson_destroy(&doc);
    cutover_frame_seal(frame, frame + CUTOVER_FRAME_HEADER, len);

    if (pwrite(fd, frame, CUTOVER_FRAME_HEADER + len, end)
        != (ssize_t) (CUTOVER_FRAME_HEADER + len)
        || fsync(fd) == -1
        || (created && shadow_dl_fsync_dir(dl->dir) == -1))
    {
        shadow_error_set(err, SHADOW_ERROR, "cannot write \"%s\": %s", path,
                         strerror(errno));
        *verified = -1;
        free(frame);
        close(fd);
        return SHADOW_ERROR;
    }

    *verified = end + CUTOVER_FRAME_HEADER + len;
    free(frame);
    close(fd);
    return SHADOW_OK;
}


int
shadow_dl_audit(shadow_dl_t *dl, const char *action, const char *key,
    long records, const char *first_id, const char *last_id,
    const char *note, shadow_error_t *err)
{
    int             fd, n;
    char            path[4096], at[32], line[4096], ek[1024], en[1024];
    char            ew[256];
    const char     *who;
    time_t          now = time(NULL);
    struct tm       tm;
    struct passwd  *pw;

    who = getenv("SUDO_USER");
    if (who == NULL || who[0] == '\0') {
        pw = getpwuid(getuid());
        who = pw ? pw->pw_name : "?";
    }

    gmtime_r(&now, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);

    if (cutover_json_escape(key, strlen(key), ek, sizeof(ek)) < 0
        || cutover_json_escape(who, strlen(who), ew, sizeof(ew)) < 0
        || cutover_json_escape(note ? note : "", note ? strlen(note) : 0,
                               en, sizeof(en)) < 0)
    {
        return shadow_error_set(err, SHADOW_ERROR, "key or reason too long");
    }

    n = snprintf(line, sizeof(line), "{\"at\": \"%s\", \"user\": \"%s\", "
                 "\"uid\": %u, \"pid\": %d, \"action\": \"%s\", \"key\": "
                 "\"%s\", \"records\": %ld, \"first_id\": \"%s\", "
                 "\"last_id\": \"%s\", \"reason\": \"%s\"}\n", at, ew,
                 (unsigned) getuid(), (int) getpid(), action, ek, records,
                 first_id ? first_id : "", last_id ? last_id : "", en);
    if (n < 0 || (size_t) n >= sizeof(line)) {
        return shadow_error_set(err, SHADOW_ERROR, "audit line too long");
    }

    snprintf(path, sizeof(path), "%s/actions.log", dl->dir);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1 || write(fd, line, n) != n || fsync(fd) == -1) {
        shadow_error_set(err, SHADOW_ERROR, "cannot append to \"%s\": %s",
                         path, strerror(errno));
        if (fd != -1) {
            close(fd);
        }

        return SHADOW_ERROR;
    }

    close(fd);
    return SHADOW_OK;
}
