/*
 * shadow_decode: a record payload (BSON) back into a cutover_record_t, and
 * the durable checkpoint file.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bson/bson.h>

#include "shadow/shadow_reader.h"


/* A record has about twenty fields, each compared with the names until
 * one matches: the first byte turns most strcmp(3) calls away. */
#define SHADOW_KEY_IS(k, name)  ((k)[0] == (name)[0] && strcmp(k, name) == 0)


static int shadow_decode_headers(bson_iter_t *it, cutover_header_t **out,
    size_t *n, shadow_error_t *err);
static int shadow_decode_field(bson_iter_t *it, cutover_record_t *rec,
    shadow_error_t *err);
static void shadow_decode_str(bson_iter_t *it, cutover_str_t *s);


static void
shadow_decode_str(bson_iter_t *it, cutover_str_t *s)
{
    uint32_t  len;

    if (BSON_ITER_HOLDS_UTF8(it)) {
        s->data = bson_iter_utf8(it, &len);
        s->len = len;
    }
}


static int
shadow_decode_headers(bson_iter_t *it, cutover_header_t **out, size_t *n,
    shadow_error_t *err)
{
    size_t            cap = 0;
    uint32_t          len, end, alen, plen;
    bson_iter_t       arr, pair;
    cutover_header_t *h = NULL, *p;

    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &arr)) {
        return shadow_error_set(err, SHADOW_ERROR, "headers: not an array");
    }

    *n = 0;
    end = arr.next_off;
    alen = arr.len;

    while (bson_iter_next(&arr)) {
        end = arr.next_off;
        if (!BSON_ITER_HOLDS_ARRAY(&arr) || !bson_iter_recurse(&arr, &pair)) {
            goto not_a_pair;
        }

        plen = pair.len;
        if (!bson_iter_next(&pair) || !BSON_ITER_HOLDS_UTF8(&pair)) {
            goto not_a_pair;
        }

        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            p = realloc(h, cap * sizeof(*h));
            if (p == NULL) {
                free(h);
                return shadow_error_set(err, SHADOW_ERROR, "out of memory");
            }

            h = p;
        }

        h[*n].name.data = bson_iter_utf8(&pair, &len);
        h[*n].name.len = len;

        /* the value, and nothing after it up to the pair's closing NUL */
        if (!bson_iter_next(&pair) || !BSON_ITER_HOLDS_UTF8(&pair)
            || pair.next_off + 1 != plen)
        {
            goto not_a_pair;
        }

        h[*n].value.data = bson_iter_utf8(&pair, &len);
        h[*n].value.len = len;
        (*n)++;
    }

    /* as for the record: whole only up to the array's closing NUL */
    if (end + 1 != alen) {
        free(h);
        return shadow_error_set(err, SHADOW_ERROR, "headers: damaged");
    }

    *out = h;
    return SHADOW_OK;

not_a_pair:

    free(h);
    return shadow_error_set(err, SHADOW_ERROR,
                            "headers: not a [name, value] pair");
}


static int
shadow_decode_field(bson_iter_t *it, cutover_record_t *rec,
    shadow_error_t *err)
{
    uint32_t        len;
    bson_subtype_t  sub;
    const char     *k = bson_iter_key(it);
    const uint8_t  *bin;

    if (SHADOW_KEY_IS(k, "req_headers")) {
        return shadow_decode_headers(it, (cutover_header_t **)
                                     &rec->req_headers, &rec->n_req_headers,
                                     err);
    }

    if (SHADOW_KEY_IS(k, "resp_headers")) {
        return shadow_decode_headers(it, (cutover_header_t **)
                                     &rec->resp_headers,
                                     &rec->n_resp_headers, err);
    }

    if (BSON_ITER_HOLDS_BINARY(it)) {
        bson_iter_binary(it, &sub, &len, &bin);
        if (SHADOW_KEY_IS(k, "req_body")) {
            rec->req_body = bin;
            rec->req_body_len = len;

        } else if (SHADOW_KEY_IS(k, "resp_body")) {
            rec->resp_body = bin;
            rec->resp_body_len = len;
        }

        return SHADOW_OK;
    }

#define SHADOW_STR_FIELD(f)                                                 \
    if (SHADOW_KEY_IS(k, #f)) {                                             \
        shadow_decode_str(it, &rec->f);                                     \
        return SHADOW_OK;                                                   \
    }

    SHADOW_STR_FIELD(id)
    SHADOW_STR_FIELD(zone)
    SHADOW_STR_FIELD(rule)
    SHADOW_STR_FIELD(side)
    SHADOW_STR_FIELD(key)
    SHADOW_STR_FIELD(store)
    SHADOW_STR_FIELD(channel)
    SHADOW_STR_FIELD(method)
    SHADOW_STR_FIELD(uri)
    SHADOW_STR_FIELD(resp_sha256)
    SHADOW_STR_FIELD(content_type)

    if (SHADOW_KEY_IS(k, "time_us")) {
        rec->time_us = bson_iter_as_int64(it);

    } else if (SHADOW_KEY_IS(k, "version")) {
        rec->version = bson_iter_as_int64(it);

    } else if (SHADOW_KEY_IS(k, "bucket")) {
        rec->bucket = (int32_t) bson_iter_as_int64(it);

    } else if (SHADOW_KEY_IS(k, "status")) {
        rec->status = (int32_t) bson_iter_as_int64(it);

    } else if (SHADOW_KEY_IS(k, "resp_body_len")) {
        rec->resp_body_total = bson_iter_as_int64(it);

    } else if (SHADOW_KEY_IS(k, "resp_truncated")) {
        rec->resp_truncated = bson_iter_as_bool(it);

    } else if (SHADOW_KEY_IS(k, "upstream_ms")) {
        rec->upstream_ms = bson_iter_as_double(it);
    }

    return SHADOW_OK;
}


int
shadow_record_decode(const uint8_t *payload, size_t len,
    cutover_record_t *rec, shadow_error_t *err)
{
    bson_t       b;
    uint32_t     end;
    bson_iter_t  it;

    memset(rec, 0, sizeof(*rec));

    /* no bson_validate(): it walks the record once more and checks every
     * key's UTF-8 (none is needed here); the iterator checks each
     * element's bounds, and the record is whole only when the last
     * element ends at the document's closing NUL */
    if (!bson_init_static(&b, payload, len) || !bson_iter_init(&it, &b)) {
        return shadow_error_set(err, SHADOW_ERROR, "record is not a valid "
                                "BSON document");
    }

    end = it.next_off;

    while (bson_iter_next(&it)) {
        end = it.next_off;
        if (shadow_decode_field(&it, rec, err) != SHADOW_OK) {
            shadow_record_clear(rec);
            return SHADOW_ERROR;
        }
    }

    if (end + 1 != len) {
        shadow_record_clear(rec);
        return shadow_error_set(err, SHADOW_ERROR, "record is not a valid "
                                "BSON document (damaged at offset %u)",
                                (unsigned) end);
    }

    if (rec->id.len == 0 || rec->method.len == 0 || rec->uri.len == 0) {
        shadow_record_clear(rec);
        return shadow_error_set(err, SHADOW_ERROR, "record lacks id, method "
                                "or uri");
    }

    if (!(rec->side.len == 3 && memcmp(rec->side.data, "new", 3) == 0)
        && !(rec->side.len == 6 && memcmp(rec->side.data, "legacy", 6) == 0))
    {
        shadow_record_clear(rec);
        return shadow_error_set(err, SHADOW_ERROR, "record side is neither "
                                "\"new\" nor \"legacy\"");
    }

    return SHADOW_OK;
}


void
shadow_record_clear(cutover_record_t *rec)
{
    free((void *) rec->req_headers);
    free((void *) rec->resp_headers);
    rec->req_headers = NULL;
    rec->resp_headers = NULL;
    rec->n_req_headers = 0;
    rec->n_resp_headers = 0;
}


int
shadow_checkpoint_write(const char *path, shadow_pos_t pos,
    shadow_error_t *err)
{
    int     fd, n;
    char    tmp[4096], line[96], dir[4096];
    char   *slash;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp)) {
        return shadow_error_set(err, SHADOW_ERROR, "checkpoint path too "
                                "long");
    }

    n = snprintf(line, sizeof(line), "seq %llu off %llu\n",
                 (unsigned long long) pos.seq, (unsigned long long) pos.off);

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        return shadow_error_set(err, SHADOW_ERROR, "cannot create \"%s\": %s",
                                tmp, strerror(errno));
    }

    if (write(fd, line, n) != n || fsync(fd) == -1) {
        shadow_error_set(err, SHADOW_ERROR, "cannot write \"%s\": %s", tmp,
                         strerror(errno));
        close(fd);
        return SHADOW_ERROR;
    }

    close(fd);

    if (rename(tmp, path) == -1) {
        return shadow_error_set(err, SHADOW_ERROR, "cannot rename \"%s\": %s",
                                tmp, strerror(errno));
    }

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL) {
        strcpy(dir, ".");

    } else {
        slash[slash == dir ? 1 : 0] = '\0';
    }

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd != -1) {
        fsync(fd);
        close(fd);
    }

    return SHADOW_OK;
}


int
shadow_checkpoint_read(const char *path, shadow_pos_t *pos,
    shadow_error_t *err)
{
    int                 n;
    FILE               *f;
    unsigned long long  seq, off;

    f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT) {
            return SHADOW_NOTFOUND;
        }

        return shadow_error_set(err, SHADOW_ERROR, "cannot open \"%s\": %s",
                                path, strerror(errno));
    }

    n = fscanf(f, "seq %llu off %llu", &seq, &off);
    fclose(f);

    if (n != 2 || seq == 0) {
        return shadow_error_set(err, SHADOW_ERROR, "checkpoint \"%s\" is not "
                                "\"seq N off N\"", path);
    }

    pos->seq = seq;
    pos->off = off;
    return SHADOW_OK;
}
