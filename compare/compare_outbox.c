/*
 * compare_outbox: batches written to fsynced files while PostgreSQL is
 * away (bounded), drained in order when it returns.
 */

#include "compare/compare_store_int.h"


static int compare_outbox_name(const char *name, uint64_t *seq,
    uint64_t *count);
static int compare_fsync_dir(const char *path);
static int compare_name_cmp(const void *a, const void *b);
static int compare_outbox_reject(compare_store_t *st, const char *name,
    bson_t **recs, size_t n, compare_error_t *err);
static int compare_outbox_file(compare_store_t *st, const char *name,
    uint64_t count, compare_error_t *err);


/* --- outbox ------------------------------------------------------------ */

static int
compare_outbox_name(const char *name, uint64_t *seq, uint64_t *count)
{
    unsigned long long  s, c;
    int                 used = 0;

    if (sscanf(name, "%20llu-%llu.bson%n", &s, &c, &used) != 2
        || name[used] != '\0')
    {
        return -1;
    }
    *seq = s;
    *count = c;
    return 0;
}


void
compare_outbox_count(compare_store_t *st)
{
    DIR            *dir;
    struct dirent  *de;
    uint64_t        seq, count;

    st->pending = 0;
    dir = opendir(st->outbox);
    if (dir == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (compare_outbox_name(de->d_name, &seq, &count) == 0) {
            st->pending += count;
            if (seq >= st->seq) {
                st->seq = seq + 1;
            }
        }
    }
    closedir(dir);
}


static int
compare_fsync_dir(const char *path)
{
    int  fd = open(path, O_RDONLY | O_DIRECTORY);
    int  rc;

    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}


int
compare_outbox_write(compare_store_t *st, bson_t **recs, size_t n,
    compare_error_t *err)
{
    char     tmp[4096], final[4096];
    int      fd;
    size_t   i;
    ssize_t  w;

    if (st->pending + n > st->outbox_max) {
        return compare_store_fail(err, "outbox", "full; results kept queued");
    }
    snprintf(tmp, sizeof(tmp), "%s/.%020llu.tmp", st->outbox,
             (unsigned long long) st->seq);
    snprintf(final, sizeof(final), "%s/%020llu-%zu.bson", st->outbox,
             (unsigned long long) st->seq, n);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return compare_store_fail(err, tmp, strerror(errno));
    }
    for (i = 0; i < n; i++) {
        const uint8_t  *data = bson_get_data(recs[i]);
        size_t          len = recs[i]->len, off = 0;

        while (off < len) {
            w = write(fd, data + off, len - off);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                close(fd);
                unlink(tmp);
                return compare_store_fail(err, tmp, strerror(errno));
            }
            off += (size_t) w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, final) != 0
        || compare_fsync_dir(st->outbox) != 0)
    {
        compare_store_fail(err, final, strerror(errno));
        unlink(tmp);
        return COMPARE_ERROR;
    }
    st->seq++;
    st->pending += n;
    return COMPARE_OK;
}


static int
compare_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static int
compare_outbox_reject(compare_store_t *st, const char *name, bson_t **recs,
    size_t n, compare_error_t *err)
{
    char      path[4096];
    size_t    i;
    int       fd = -1, rc = COMPARE_OK;
    uint64_t  bad = 0;

    snprintf(path, sizeof(path), "%s/%s.rejected", st->outbox, name);
    for (i = 0; i < n && rc == COMPARE_OK; i++) {
        if (compare_store_insert(st, &recs[i], 1, err) == COMPARE_OK) {
            continue;
        }
        if (st->conn == NULL) {
            return COMPARE_ERROR;      /* the connection went: retry later */
        }
        if (fd < 0) {
            fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (fd < 0) {
                return compare_store_fail(err, path, strerror(errno));
            }
        }
        if (write(fd, bson_get_data(recs[i]), recs[i]->len)
            != (ssize_t) recs[i]->len)
        {
            rc = compare_store_fail(err, path, strerror(errno));
        }
        bad++;
    }
    if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0)) {
        rc = compare_store_fail(err, path, strerror(errno));
    }
    st->rejected += bad;
    return rc;
}


static int
compare_outbox_file(compare_store_t *st, const char *name, uint64_t count,
    compare_error_t *err)
{
    char             path[4096];
    bson_reader_t   *reader;
    const bson_t    *doc;
    bson_t         **recs;
    size_t           n = 0, i;
    bool             eof = false;
    int              rc;

    snprintf(path, sizeof(path), "%s/%s", st->outbox, name);
    recs = calloc(count + 1, sizeof(bson_t *));
    reader = bson_reader_new_from_file(path, NULL);
    if (recs == NULL || reader == NULL) {
        free(recs);
        bson_reader_destroy(reader);
        return compare_store_fail(err, path, "cannot read");
    }
    while (n < count && (doc = bson_reader_read(reader, &eof)) != NULL) {
        recs[n++] = bson_copy(doc);
    }
    bson_reader_destroy(reader);
    rc = compare_store_insert(st, recs, n, err);
    if (rc != COMPARE_OK && st->conn != NULL
        && PQstatus(st->conn) == CONNECTION_OK)
    {
        /* the database is up but refuses the batch: insert one by one and
         * set aside what it refuses, so one record cannot block the rest */
        rc = compare_outbox_reject(st, name, recs, n, err);
    }
    for (i = 0; i < n; i++) {
        bson_destroy(recs[i]);
    }
    free(recs);
    if (rc != COMPARE_OK) {
        return rc;
    }
    if (unlink(path) != 0 || compare_fsync_dir(st->outbox) != 0) {
        return compare_store_fail(err, path, strerror(errno));
    }
    st->pending -= count < st->pending ? count : st->pending;
    return COMPARE_OK;
}


int
compare_outbox_drain(compare_store_t *st, compare_error_t *err)
{
    DIR            *dir;
    struct dirent  *de;
    char          **names = NULL, **nn;
    size_t          n = 0, cap = 0, i;
    uint64_t        seq, count;
    int             rc = COMPARE_OK;

    dir = opendir(st->outbox);
    if (dir == NULL) {
        return compare_store_fail(err, st->outbox, strerror(errno));
    }
    while ((de = readdir(dir)) != NULL) {
        if (compare_outbox_name(de->d_name, &seq, &count) != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            nn = realloc(names, cap * sizeof(char *));
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (names[n] != NULL) {
            n++;
        }
    }
    closedir(dir);
    if (n > 1) {
        qsort(names, n, sizeof(char *), compare_name_cmp);
    }
    for (i = 0; i < n; i++) {
        if (rc == COMPARE_OK) {
            compare_outbox_name(names[i], &seq, &count);
            rc = compare_outbox_file(st, names[i], count, err);
        }
        free(names[i]);
    }
    free(names);
    if (rc == COMPARE_OK) {
        compare_outbox_count(st);
    }
    return rc;
}
