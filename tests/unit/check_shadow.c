/*
 * check_shadow: CRC-32C, frames, record encode/decode, segment naming and
 * rotation, the reader's resync on corrupt and torn frames, checkpoints.
 */

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include <bson/bson.h>

#include "tests/unit/corpus.h"
#include "compare/compare.h"
#include "common/cutover_record.h"
#include "shadow/shadow_daemon.h"
#include "shadow/shadow_deadletter.h"
#include "shadow/shadow_engine.h"
#include "shadow/shadow_json.h"
#include "shadow/shadow_metrics.h"
#include "shadow/shadow_reader.h"


#define S(lit)  { lit, sizeof(lit) - 1 }

static char  tmpdir[256];


static void
setup_dir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_shadow.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}


static void
teardown_dir(void)
{
    char  cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}


static const cutover_header_t  req_h[] = {
    { S("Content-Type"), S("application/json") },
    { S("X-Store-Id"), S("S001") },
};

static const cutover_header_t  resp_h[] = {
    { S("Content-Type"), S("application/json") },
};


static void
sample_record(cutover_record_t *r, const char *id, const char *body)
{
    memset(r, 0, sizeof(*r));
    r->id.data = id;
    r->id.len = strlen(id);
    r->time_us = 1700000000123456LL;
    r->zone = (cutover_str_t) S("erp");
    r->rule = (cutover_str_t) S("default");
    r->side = (cutover_str_t) S("legacy");
    r->bucket = 4242;
    r->key = (cutover_str_t) S("S001:pos");
    r->store = (cutover_str_t) S("S001");
    r->channel = (cutover_str_t) S("pos");
    r->version = 7;
    r->method = (cutover_str_t) S("POST");
    r->uri = (cutover_str_t) S("/api/v1/orders?x=1");
    r->req_headers = req_h;
    r->n_req_headers = 2;
    r->req_body = (const uint8_t *) body;
    r->req_body_len = strlen(body);
    r->status = 201;
    r->resp_headers = resp_h;
    r->n_resp_headers = 1;
    r->resp_body = (const uint8_t *) "{\"ok\":true}\0bin";
    r->resp_body_len = 15;
    r->resp_body_total = 15;
    r->resp_truncated = 0;
    r->resp_sha256 = (cutover_str_t) S("ab");
    r->upstream_ms = 1.25;
    r->content_type = (cutover_str_t) S("application/json");
}


static int
str_is(cutover_str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.data, lit, s.len) == 0;
}


/* ---- CRC-32C ------------------------------------------------------- */

static const struct {
    const char  *data;
    size_t       len;
    uint32_t     crc;
} crc_vectors[] = {
    { "123456789", 9, 0xE3069283u },
    { "", 0, 0x00000000u },
    { "a", 1, 0xC1D04330u },
    { "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
      32, 0x8A9136AAu },
    { "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
      "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
      32, 0x62A8AB43u },
};


START_TEST(test_crc_vectors)
{
    ck_assert_uint_eq(cutover_crc32c(0, crc_vectors[_i].data,
                                    crc_vectors[_i].len),
                      crc_vectors[_i].crc);
}
END_TEST


/* bit at a time, straight from the polynomial */
static uint32_t
crc32c_reference(const uint8_t *p, size_t n)
{
    int       k;
    uint32_t  crc = 0xffffffffu;

    while (n--) {
        crc ^= *p++;
        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
        }
    }

    return ~crc;
}


/* every length and alignment around the three-lane blocks */
START_TEST(test_crc_lengths)
{
    uint8_t   buf[1300];
    size_t    n, off;
    uint32_t  seed = 12345;

    for (n = 0; n < sizeof(buf); n++) {
        seed = seed * 1103515245u + 12345u;
        buf[n] = (uint8_t) (seed >> 16);
    }

    for (off = 0; off < 8; off += 3) {
        for (n = 0; n + off <= sizeof(buf); n++) {
            ck_assert_uint_eq(cutover_crc32c(0, buf + off, n),
                              crc32c_reference(buf + off, n));
        }
    }
}
END_TEST


START_TEST(test_crc_incremental)
{
    uint8_t   buf[1000];
    uint32_t  whole, part;
    size_t    i;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t) (i * 7 + 3);
    }

    whole = cutover_crc32c(0, buf, sizeof(buf));
    for (i = 0; i < sizeof(buf); i += 97) {
        part = cutover_crc32c(0, buf, i);
        part = cutover_crc32c(part, buf + i, sizeof(buf) - i);
        ck_assert_uint_eq(part, whole);
    }
}
END_TEST


/* ---- frames and records --------------------------------------------- */

START_TEST(test_record_round_trip)
{
    uint8_t           buf[4096];
    size_t            len;
    bson_t            b;
    cutover_record_t  in, out;
    shadow_error_t    err;

    sample_record(&in, "0123456789abcdef0123456789abcdef", "{\"a\":1}");
    ck_assert_int_eq(cutover_record_encode(&in, buf, sizeof(buf), &len),
                     SHADOW_OK);
    ck_assert_uint_le(len, cutover_record_size(&in));

    /* it is a BSON document libbson accepts */
    ck_assert(bson_init_static(&b, buf, len));
    ck_assert(bson_validate(&b, BSON_VALIDATE_NONE, NULL));
    ck_assert(bson_has_field(&b, "resp_sha256"));

    ck_assert_int_eq(shadow_record_decode(buf, len, &out, &err), SHADOW_OK);
    ck_assert(str_is(out.id, "0123456789abcdef0123456789abcdef"));
    ck_assert_int_eq(out.time_us, in.time_us);
    ck_assert(str_is(out.zone, "erp"));
    ck_assert(str_is(out.rule, "default"));
    ck_assert(str_is(out.side, "legacy"));
    ck_assert_int_eq(out.bucket, 4242);
    ck_assert(str_is(out.key, "S001:pos"));
    ck_assert(str_is(out.store, "S001"));
    ck_assert(str_is(out.channel, "pos"));
    ck_assert_int_eq(out.version, 7);
    ck_assert(str_is(out.method, "POST"));
    ck_assert(str_is(out.uri, "/api/v1/orders?x=1"));
    ck_assert_uint_eq(out.n_req_headers, 2);
    ck_assert(str_is(out.req_headers[1].name, "X-Store-Id"));
    ck_assert(str_is(out.req_headers[1].value, "S001"));
    ck_assert_uint_eq(out.req_body_len, 7);
    ck_assert_mem_eq(out.req_body, "{\"a\":1}", 7);
    ck_assert_int_eq(out.status, 201);
    ck_assert_uint_eq(out.n_resp_headers, 1);
    ck_assert_uint_eq(out.resp_body_len, 15);
    ck_assert_mem_eq(out.resp_body, "{\"ok\":true}\0bin", 15);
    ck_assert_int_eq(out.resp_body_total, 15);
    ck_assert_int_eq(out.resp_truncated, 0);
    ck_assert(str_is(out.resp_sha256, "ab"));
    ck_assert(out.upstream_ms == 1.25);
    ck_assert(str_is(out.content_type, "application/json"));
    shadow_record_clear(&out);
}
END_TEST


START_TEST(test_record_empty_fields)
{
    uint8_t           buf[1024];
    size_t            len;
    bson_t            b;
    cutover_record_t  in, out;
    shadow_error_t    err;

    memset(&in, 0, sizeof(in));
    in.id = (cutover_str_t) S("00000000000000000000000000000001");
    in.side = (cutover_str_t) S("new");
    in.method = (cutover_str_t) S("GET");
    in.uri = (cutover_str_t) S("/");
    in.resp_truncated = 1;
    ck_assert_int_eq(cutover_record_encode(&in, buf, sizeof(buf), &len),
                     SHADOW_OK);
    ck_assert_int_eq(shadow_record_decode(buf, len, &out, &err), SHADOW_OK);
    ck_assert_uint_eq(out.req_body_len, 0);
    ck_assert_uint_eq(out.n_req_headers, 0);
    ck_assert_int_eq(out.resp_truncated, 1);
    shadow_record_clear(&out);

    /* no digest given (a whole body): the field is left out, not "" */
    in.resp_truncated = 0;
    ck_assert_int_eq(cutover_record_encode(&in, buf, sizeof(buf), &len),
                     SHADOW_OK);
    ck_assert(bson_init_static(&b, buf, len));
    ck_assert(!bson_has_field(&b, "resp_sha256"));
    ck_assert_int_eq(shadow_record_decode(buf, len, &out, &err), SHADOW_OK);
    ck_assert_uint_eq(out.resp_sha256.len, 0);
    shadow_record_clear(&out);
}
END_TEST


START_TEST(test_record_frame)
{
    uint8_t           buf[4096];
    size_t            len;
    uint32_t          plen, crc;
    cutover_record_t  in;

    sample_record(&in, "0123456789abcdef0123456789abcdef", "body");
    ck_assert_int_eq(cutover_record_frame(&in, buf, sizeof(buf), &len),
                     SHADOW_OK);
    ck_assert_int_eq(cutover_frame_header(buf, &plen, &crc), SHADOW_OK);
    ck_assert_uint_eq(plen + CUTOVER_FRAME_HEADER, len);
    ck_assert_uint_eq(crc, cutover_crc32c(0, buf + 12, plen));
    ck_assert_mem_eq(buf, "SDV1", 4);
}
END_TEST


/* Every buffer size short of the record must fail without overrunning. */
START_TEST(test_record_nospace)
{
    uint8_t           buf[1024], *guarded;
    size_t            len, full, cap;
    cutover_record_t  in;

    sample_record(&in, "0123456789abcdef0123456789abcdef", "body");
    ck_assert_int_eq(cutover_record_frame(&in, buf, sizeof(buf), &full),
                     SHADOW_OK);

    guarded = malloc(full + 16);
    for (cap = 0; cap < full; cap++) {
        memset(guarded, 0xa5, full + 16);
        ck_assert_int_eq(cutover_record_frame(&in, guarded, cap, &len),
                         SHADOW_NOSPACE);
        ck_assert_uint_eq(guarded[cap], 0xa5);
    }

    free(guarded);
}
END_TEST


static const char  *bad_payloads[] = {
    "",
    "\x05\x00\x00\x00",
    "\xff\xff\xff\x7f\x00",
    "\x05\x00\x00\x00\x00",     /* empty document: no id */
};


START_TEST(test_decode_errors)
{
    cutover_record_t  out;
    shadow_error_t    err;
    size_t            len = strlen(bad_payloads[_i]);

    if (_i >= 2) {
        len = 5;
    }

    ck_assert_int_eq(shadow_record_decode((const uint8_t *) bad_payloads[_i],
                                          len, &out, &err), SHADOW_ERROR);
    ck_assert_uint_gt(strlen(err.message), 0);
}
END_TEST


/*
 * A damaged record (any byte changed) is decoded or refused, never read
 * past its end (valgrind); one cut short (its length field kept
 * consistent) is refused unless the cut falls between elements and leaves
 * what a record needs; an element of an unknown type is refused.
 */
START_TEST(test_decode_damaged)
{
    int               rc;
    uint8_t           buf[1024], *copy;
    size_t            len, off, v, cut;
    uint32_t          l32;
    bson_t            b;
    cutover_record_t  in, out;
    shadow_error_t    err;
    static const uint8_t  vals[] = { 0x00, 0x01, 0x02, 0x04, 0x7f, 0x80,
                                     0xff };

    sample_record(&in, "0123456789abcdef0123456789abcdef", "{\"a\":1}");
    ck_assert_int_eq(cutover_record_encode(&in, buf, sizeof(buf), &len),
                     SHADOW_OK);

    for (off = 0; off < len; off++) {
        for (v = 0; v < sizeof(vals); v++) {
            copy = malloc(len);
            memcpy(copy, buf, len);
            copy[off] = vals[v];
            rc = shadow_record_decode(copy, len, &out, &err);
            ck_assert(rc == SHADOW_OK || rc == SHADOW_ERROR);
            if (rc == SHADOW_OK) {
                shadow_record_clear(&out);
            }

            free(copy);
        }
    }

    for (cut = 5; cut < len; cut++) {
        copy = malloc(cut);
        memcpy(copy, buf, cut);
        l32 = (uint32_t) cut;
        memcpy(copy, &l32, 4);
        copy[cut - 1] = 0;
        /* a cut at an element's end is a shorter record, else damaged */
        rc = shadow_record_decode(copy, cut, &out, &err);
        ck_assert(bson_init_static(&b, copy, cut));
        ck_assert_msg(rc == (bson_validate(&b, BSON_VALIDATE_NONE, NULL)
                             && bson_has_field(&b, "id")
                             && bson_has_field(&b, "method")
                             && bson_has_field(&b, "uri")
                             && bson_has_field(&b, "side")
                             ? SHADOW_OK : SHADOW_ERROR), "cut at %zu", cut);
        if (rc == SHADOW_OK) {
            shadow_record_clear(&out);
        }

        free(copy);
    }

    /* an element of type 0x42 (none) after the last good one */
    copy = malloc(len + 4);
    memcpy(copy, buf, len - 1);
    memcpy(copy + len - 1, "\x42x\x00\x00", 4);
    copy[len + 3] = 0;
    l32 = (uint32_t) len + 4;
    memcpy(copy, &l32, 4);
    ck_assert_int_eq(shadow_record_decode(copy, len + 4, &out, &err),
                     SHADOW_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, "not a valid BSON"));
    free(copy);
}
END_TEST


START_TEST(test_frame_header_errors)
{
    uint8_t   h[12];
    uint32_t  len, crc;

    memset(h, 0, sizeof(h));
    ck_assert_int_eq(cutover_frame_header(h, &len, &crc), SHADOW_CORRUPT);
    cutover_frame_seal(h, (const uint8_t *) "x", 0);
    ck_assert_int_eq(cutover_frame_header(h, &len, &crc), SHADOW_CORRUPT);
    h[4] = 0xff; h[5] = 0xff; h[6] = 0xff; h[7] = 0xff;
    ck_assert_int_eq(cutover_frame_header(h, &len, &crc), SHADOW_CORRUPT);
}
END_TEST


/* ---- segments -------------------------------------------------------- */

static const struct {
    const char  *name;
    uint64_t     seq;
} seg_names[] = {
    { "erp.log.00000000000000000001", 1 },
    { "erp.log.00000000000000004242", 4242 },
    { "erp.log.18446744073709551615", UINT64_MAX },
    { "erp.log.18446744073709551616", 0 },
    { "erp.log.0000000000000000001", 0 },
    { "erp.log.0000000000000000000x", 0 },
    { "erp.lo.00000000000000000001", 0 },
    { "erp.log", 0 },
    { "erp.log.00000000000000000001.tmp", 0 },
};


START_TEST(test_segment_seq)
{
    ck_assert_uint_eq(cutover_segment_seq(seg_names[_i].name, "erp.log"),
                      seg_names[_i].seq);
}
END_TEST


START_TEST(test_segment_path)
{
    char  buf[64];

    ck_assert_int_eq(cutover_segment_path(buf, sizeof(buf), "/x/erp.log", 42),
                     SHADOW_OK);
    ck_assert_str_eq(buf, "/x/erp.log.00000000000000000042");
    ck_assert_int_eq(cutover_segment_path(buf, 31, "/x/erp.log", 42),
                     SHADOW_NOSPACE);
    ck_assert_int_eq(cutover_segment_path(buf, 32, "/x/erp.log", 42),
                     SHADOW_OK);
}
END_TEST


static void
log_base(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/erp.log", tmpdir);
}


static void
write_records(cutover_writer_t *w, int from, int to, size_t body)
{
    int               i;
    char              id[40], *b;
    uint8_t           frame[8192];
    size_t            len;
    cutover_record_t  r;

    b = malloc(body + 1);
    memset(b, 'x', body);
    b[body] = '\0';

    for (i = from; i < to; i++) {
        snprintf(id, sizeof(id), "%032d", i);
        sample_record(&r, id, b);
        ck_assert_int_eq(cutover_record_frame(&r, frame, sizeof(frame), &len),
                         SHADOW_OK);
        ck_assert_int_eq(cutover_writer_append(w, frame, len), SHADOW_OK);
    }

    free(b);
}


/* Reads until AGAIN; returns records read, checks ids are in sequence. */
static int
read_all(shadow_reader_t *r, int expect_from, int *corrupt)
{
    int               n = 0, rc, tries = 0;
    char              id[40];
    shadow_frame_t    f;
    shadow_error_t    err;
    cutover_record_t  rec;

    for ( ;; ) {
        rc = shadow_reader_next(r, &f, &err);
        if (rc == SHADOW_AGAIN) {
            if (++tries > 3) {
                return n;
            }
            continue;
        }

        if (rc == SHADOW_CORRUPT) {
            ck_assert_ptr_nonnull(strstr(err.message, "segment"));
            (*corrupt)++;
            continue;
        }

        ck_assert_int_eq(rc, SHADOW_OK);
        ck_assert_int_eq(shadow_record_decode(f.payload, f.len, &rec, &err),
                         SHADOW_OK);
        snprintf(id, sizeof(id), "%032d", expect_from + n);
        if (corrupt == NULL || *corrupt == 0) {
            ck_assert(str_is(rec.id, id));
        }
        shadow_record_clear(&rec);
        n++;
    }
}


START_TEST(test_writer_rotation)
{
    char              base[300], path[400];
    int               corrupt = 0;
    uint8_t           scratch[4096] __attribute__((aligned(8)));
    uint64_t          first, last;
    shadow_pos_t      pos = { 0, 0 };
    cutover_writer_t  w1, w2;
    shadow_reader_t  *r;
    struct stat       st;

    log_base(base, sizeof(base));
    cutover_writer_init(&w1, base, 2000);
    cutover_writer_init(&w2, base, 2000);
    write_records(&w1, 0, 5, 300);
    write_records(&w2, 5, 10, 300);
    write_records(&w1, 10, 20, 300);

    ck_assert_int_eq(cutover_segment_range(base, scratch, sizeof(scratch),
                                          &first, &last), SHADOW_OK);
    ck_assert_uint_eq(first, 1);
    ck_assert_uint_ge(last, 4);
    ck_assert_uint_eq(w1.seq, last);

    cutover_segment_path(path, sizeof(path), base, 1);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_ge(st.st_size, 2000);

    r = shadow_reader_new(base, pos, 0, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(read_all(r, 0, &corrupt), 20);
    ck_assert_int_eq(corrupt, 0);
    ck_assert_uint_eq(shadow_reader_pos(r).seq, last);
    shadow_reader_free(r);

    /* a writer never recreates a segment the daemon deleted */
    unlink(path);
    cutover_writer_close(&w2);
    write_records(&w2, 20, 21, 10);
    ck_assert_int_eq(stat(path, &st), -1);
    cutover_writer_close(&w1);
    cutover_writer_close(&w2);
}
END_TEST


/* Worker processes share the log: O_APPEND frames never interleave and
 * rotation races lose nothing. */
START_TEST(test_writers_in_processes)
{
    int               p, status, corrupt = 0, n = 0, rc, seen[600];
    char              base[300];
    pid_t             pid[3];
    shadow_pos_t      pos = { 0, 0 };
    shadow_frame_t    f;
    shadow_error_t    err;
    cutover_writer_t  w;
    shadow_reader_t  *r;
    cutover_record_t  rec;

    log_base(base, sizeof(base));

    for (p = 0; p < 3; p++) {
        pid[p] = fork();
        ck_assert_int_ne(pid[p], -1);
        if (pid[p] == 0) {
            cutover_writer_init(&w, base, 8192);
            write_records(&w, p * 200, p * 200 + 200, 100 + p * 50);
            cutover_writer_close(&w);
            _exit(0);
        }
    }

    for (p = 0; p < 3; p++) {
        ck_assert_int_eq(waitpid(pid[p], &status, 0), pid[p]);
        ck_assert_int_eq(status, 0);
    }

    memset(seen, 0, sizeof(seen));
    r = shadow_reader_new(base, pos, 0, &err);
    ck_assert_ptr_nonnull(r);

    for ( ;; ) {
        rc = shadow_reader_next(r, &f, &err);
        if (rc == SHADOW_CORRUPT) {
            corrupt++;
            continue;
        }

        if (rc != SHADOW_OK) {
            break;
        }

        ck_assert_int_eq(shadow_record_decode(f.payload, f.len, &rec, &err),
                         SHADOW_OK);
        seen[atoi(rec.id.data)]++;
        shadow_record_clear(&rec);
        n++;
    }

    ck_assert_int_eq(rc, SHADOW_AGAIN);
    ck_assert_int_eq(corrupt, 0);
    ck_assert_int_eq(n, 600);
    for (p = 0; p < 600; p++) {
        ck_assert_int_eq(seen[p], 1);
    }

    shadow_reader_free(r);
}
END_TEST


START_TEST(test_writer_full_log)
{
    int               i, rc, dropped = 0;
    char              base[300], path[400], id[40];
    uint8_t           frame[2048];
    size_t            len;
    cutover_record_t  r;
    cutover_writer_t  w;

    log_base(base, sizeof(base));
    cutover_writer_init(&w, base, 2000);
    w.max_bytes = 6000;             /* three segments */

    for (i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "%032d", i);
        sample_record(&r, id, "body");
        ck_assert_int_eq(cutover_record_frame(&r, frame, sizeof(frame), &len),
                         SHADOW_OK);
        rc = cutover_writer_append(&w, frame, len);
        if (rc == SHADOW_NOSPACE) {
            dropped++;
            continue;
        }

        ck_assert_int_eq(rc, SHADOW_OK);
    }

    ck_assert_int_gt(dropped, 0);
    ck_assert_uint_eq(w.seq, 3);

    /* shadowd deleted the oldest: there is room again */
    cutover_segment_path(path, sizeof(path), base, 1);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(cutover_writer_append(&w, frame, len), SHADOW_OK);
    ck_assert_uint_eq(w.seq, 4);
    cutover_writer_close(&w);
}
END_TEST


/* Appends with the file size limit set to limit (a disk that fills up
 * mid-write: the write comes back short). */
static int
append_capped(cutover_writer_t *w, const void *frame, size_t len,
    const struct iovec *iov, int n, off_t limit)
{
    int            rc;
    sighandler_t   old;
    struct rlimit  rl, saved;

    old = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    rl = saved;
    rl.rlim_cur = (rlim_t) limit;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);

    rc = iov ? cutover_writer_appendv(w, iov, n)
             : cutover_writer_append(w, frame, len);

    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old);

    return rc;
}


/*
 * A frame is written whole or not at all: the writer reserves the space
 * ahead (allocated beyond the end of the file), and a write that still
 * comes back short (here: RLIMIT_FSIZE cuts it) leaves no partial frame
 * that a later frame would follow.
 */
START_TEST(test_writer_whole_frames)
{
    int               i, rc, corrupt = 0;
    char              base[300], path[400], id[40], *body;
    uint8_t           frame[8192];
    size_t            len;
    off_t             before;
    struct stat       st;
    shadow_pos_t      pos = { 0, 0 };
    cutover_record_t  r;
    cutover_writer_t  w;
    shadow_reader_t  *rd;

    log_base(base, sizeof(base));
    cutover_writer_init(&w, base, 1024 * 1024);
    write_records(&w, 0, 3, 100);

    /* reserved ahead: blocks allocated past the end of the file */
    cutover_segment_path(path, sizeof(path), base, 1);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(w.reserved, CUTOVER_RESERVE < 1024 * 1024
                                  ? CUTOVER_RESERVE : 1024 * 1024);
    ck_assert_int_ge((off_t) st.st_blocks * 512, (off_t) w.reserved);
    before = st.st_size;

    /* a write cut short after 100 bytes: no partial frame stays */
    body = malloc(4000);
    memset(body, 'y', 3999);
    body[3999] = '\0';
    snprintf(id, sizeof(id), "%032d", 3);
    sample_record(&r, id, body);
    ck_assert_int_eq(cutover_record_frame(&r, frame, sizeof(frame), &len),
                     SHADOW_OK);

    rc = append_capped(&w, frame, len, NULL, 0, before + 100);

    ck_assert_int_eq(rc, SHADOW_ERROR);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, before);

    /* room again: recording goes on by itself, and the log reads clean */
    ck_assert_int_eq(cutover_writer_append(&w, frame, len), SHADOW_OK);
    write_records(&w, 4, 6, 100);
    free(body);

    rd = shadow_reader_new(base, pos, 0, NULL);
    ck_assert_ptr_nonnull(rd);
    i = read_all(rd, 0, &corrupt);
    ck_assert_int_eq(corrupt, 0);
    ck_assert_int_eq(i, 6);
    shadow_reader_free(rd);
    cutover_writer_close(&w);
}
END_TEST


/*
 * A batch (the nginx workers' log buffer written out with one writev(2))
 * is written whole or not at all: cut short in its second frame, the
 * segment ends where it ended before; written again, all of its frames
 * follow in order.
 */
START_TEST(test_writer_batch_whole_or_none)
{
    int               i, rc, corrupt = 0;
    char              base[300], path[400], id[40];
    uint8_t           frames[3][2048];
    size_t            len[3];
    off_t             before;
    struct iovec      iov[3];
    struct stat       st;
    shadow_pos_t      pos = { 0, 0 };
    cutover_record_t  r;
    cutover_writer_t  w;
    shadow_reader_t  *rd;

    log_base(base, sizeof(base));
    cutover_writer_init(&w, base, 1024 * 1024);
    write_records(&w, 0, 2, 100);

    for (i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "%032d", 2 + i);
        sample_record(&r, id, "batched");
        ck_assert_int_eq(cutover_record_frame(&r, frames[i], sizeof(frames[i]),
                                              &len[i]), SHADOW_OK);
        iov[i].iov_base = frames[i];
        iov[i].iov_len = len[i];
    }

    cutover_segment_path(path, sizeof(path), base, 1);
    ck_assert_int_eq(stat(path, &st), 0);
    before = st.st_size;

    rc = append_capped(&w, NULL, 0, iov, 3, before + len[0] + len[1] / 2);

    ck_assert_int_eq(rc, SHADOW_ERROR);
    ck_assert_int_eq(w.err, ENOSPC);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, before);

    ck_assert_int_eq(cutover_writer_appendv(&w, iov, 3), SHADOW_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, before + len[0] + len[1] + len[2]);

    rd = shadow_reader_new(base, pos, 0, NULL);
    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(read_all(rd, 0, &corrupt), 5);
    ck_assert_int_eq(corrupt, 0);
    shadow_reader_free(rd);
    cutover_writer_close(&w);
}
END_TEST


static void
append_raw(const char *base, uint64_t seq, const void *p, size_t n)
{
    int   fd;
    char  path[400];

    cutover_segment_path(path, sizeof(path), base, seq);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    ck_assert_int_ne(fd, -1);
    ck_assert_int_eq(write(fd, p, n), (ssize_t) n);
    close(fd);
}


static size_t
one_frame(uint8_t *buf, size_t cap, int i)
{
    char              id[40];
    size_t            len;
    cutover_record_t  r;

    snprintf(id, sizeof(id), "%032d", i);
    sample_record(&r, id, "payload");
    ck_assert_int_eq(cutover_record_frame(&r, buf, cap, &len), SHADOW_OK);
    return len;
}


/* A reader that met a frame still being written, which the writer then
 * cut off again (a full disk) and wrote another frame in its place, reads
 * the new frame, not the old bytes joined to the new. */
START_TEST(test_reader_cut_off_tail)
{
    int               corrupt = 0;
    char              base[300], path[400];
    uint8_t           partial[8192], whole[8192];
    size_t            plen, wlen;
    struct stat       st;
    shadow_pos_t      pos = { 0, 0 };
    shadow_reader_t  *rd;
    cutover_writer_t  w;

    log_base(base, sizeof(base));
    cutover_writer_init(&w, base, 1024 * 1024);
    write_records(&w, 0, 2, 100);
    cutover_writer_close(&w);

    cutover_segment_path(path, sizeof(path), base, 1);
    ck_assert_int_eq(stat(path, &st), 0);

    plen = one_frame(partial, sizeof(partial), 7);
    append_raw(base, 1, partial, plen / 2);

    rd = shadow_reader_new(base, pos, 0, NULL);
    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(read_all(rd, 0, &corrupt), 2);

    ck_assert_int_eq(truncate(path, st.st_size), 0);
    wlen = one_frame(whole, sizeof(whole), 2);
    append_raw(base, 1, whole, wlen);

    ck_assert_int_eq(read_all(rd, 2, &corrupt), 1);
    ck_assert_int_eq(corrupt, 0);
    shadow_reader_free(rd);
}
END_TEST


START_TEST(test_reader_corrupt_resync)
{
    char              base[300];
    int               rc, ids[8], n = 0, corrupt = 0, i;
    uint8_t           f[2048];
    size_t            len;
    shadow_pos_t      pos = { 1, 0 };
    shadow_frame_t    fr;
    shadow_error_t    err;
    shadow_reader_t  *r;
    cutover_record_t  rec;

    log_base(base, sizeof(base));

    len = one_frame(f, sizeof(f), 0);
    append_raw(base, 1, f, len);
    len = one_frame(f, sizeof(f), 1);
    f[len - 5] ^= 0x40;                         /* bad CRC */
    append_raw(base, 1, f, len);
    append_raw(base, 1, "garbage!", 8);         /* bad magic */
    len = one_frame(f, sizeof(f), 2);
    append_raw(base, 1, f, len);
    len = one_frame(f, sizeof(f), 3);
    f[4] = 0xff; f[5] = 0xff; f[6] = 0xff; f[7] = 0x7f; /* bad length */
    append_raw(base, 1, f, len);
    len = one_frame(f, sizeof(f), 4);
    append_raw(base, 1, f, len);

    r = shadow_reader_new(base, pos, 0, &err);
    ck_assert_ptr_nonnull(r);

    for (i = 0; i < 20; i++) {
        rc = shadow_reader_next(r, &fr, &err);
        if (rc == SHADOW_AGAIN) {
            break;
        }

        if (rc == SHADOW_CORRUPT) {
            ck_assert_ptr_nonnull(strstr(err.message, "offset"));
            corrupt++;
            continue;
        }

        ck_assert_int_eq(rc, SHADOW_OK);
        shadow_record_decode(fr.payload, fr.len, &rec, &err);
        ids[n++] = atoi(rec.id.data);
        shadow_record_clear(&rec);
    }

    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[0], 0);
    ck_assert_int_eq(ids[1], 2);
    ck_assert_int_eq(ids[2], 4);
    ck_assert_int_ge(corrupt, 2);
    shadow_reader_free(r);
}
END_TEST


START_TEST(test_reader_torn_and_incomplete)
{
    char              base[300];
    int               rc;
    uint8_t           f[2048];
    size_t            len;
    shadow_pos_t      pos = { 1, 0 }, p;
    shadow_frame_t    fr;
    shadow_error_t    err;
    shadow_reader_t  *r;

    log_base(base, sizeof(base));
    len = one_frame(f, sizeof(f), 0);
    append_raw(base, 1, f, len);
    len = one_frame(f, sizeof(f), 1);
    append_raw(base, 1, f, 20);                 /* half a frame */

    r = shadow_reader_new(base, pos, 0, &err);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    /* current segment: an incomplete tail is a write in progress */
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_AGAIN);
    append_raw(base, 1, f + 20, len - 20);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    ck_assert_uint_eq(fr.next.off, shadow_reader_pos(r).off);

    /* now a torn frame, then the next segment: the tail is skipped */
    append_raw(base, 1, f, 30);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_AGAIN);
    len = one_frame(f, sizeof(f), 2);
    append_raw(base, 2, f, len);
    rc = shadow_reader_next(r, &fr, &err);
    ck_assert_int_eq(rc, SHADOW_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.message, "torn"));
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    ck_assert_uint_eq(fr.at.seq, 2);
    ck_assert_uint_eq(fr.at.off, 0);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_AGAIN);
    p = shadow_reader_pos(r);
    ck_assert_uint_eq(p.seq, 2);
    ck_assert_uint_eq(p.off, len);
    shadow_reader_free(r);
}
END_TEST


START_TEST(test_reader_grace)
{
    char              base[300];
    uint8_t           f[2048];
    size_t            len;
    shadow_pos_t      pos = { 1, 0 };
    shadow_frame_t    fr;
    shadow_error_t    err;
    shadow_reader_t  *r;

    log_base(base, sizeof(base));
    len = one_frame(f, sizeof(f), 0);
    append_raw(base, 1, f, len);
    append_raw(base, 2, f, len);

    r = shadow_reader_new(base, pos, 200, &err);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    /* segment 2 exists, but a straggler may still write to segment 1 */
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_AGAIN);
    len = one_frame(f, sizeof(f), 1);
    append_raw(base, 1, f, len);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    ck_assert_uint_eq(fr.at.seq, 1);
    usleep(250 * 1000);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    ck_assert_uint_eq(fr.at.seq, 2);
    shadow_reader_free(r);
}
END_TEST


START_TEST(test_reader_missing_segment)
{
    char              base[300];
    uint8_t           f[2048];
    size_t            len;
    shadow_pos_t      pos = { 1, 0 };
    shadow_frame_t    fr;
    shadow_error_t    err;
    shadow_reader_t  *r;

    log_base(base, sizeof(base));
    len = one_frame(f, sizeof(f), 0);

    r = shadow_reader_new(base, pos, 0, &err);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_AGAIN);
    append_raw(base, 3, f, len);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.message, "missing"));
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    ck_assert_uint_eq(fr.at.seq, 3);
    shadow_reader_free(r);

    /* pos.seq 0: the oldest segment present */
    pos.seq = 0;
    r = shadow_reader_new(base, pos, 0, &err);
    ck_assert_int_eq(shadow_reader_next(r, &fr, &err), SHADOW_OK);
    ck_assert_uint_eq(fr.at.seq, 3);
    shadow_reader_free(r);
}
END_TEST


/* ---- checkpoint -------------------------------------------------------- */

START_TEST(test_checkpoint)
{
    char            path[300], tmp[320];
    FILE           *f;
    shadow_pos_t    pos = { 12, 345678 }, got;
    shadow_error_t  err;
    struct stat     st;

    snprintf(path, sizeof(path), "%s/erp.ckpt", tmpdir);
    ck_assert_int_eq(shadow_checkpoint_read(path, &got, &err),
                     SHADOW_NOTFOUND);
    ck_assert_int_eq(shadow_checkpoint_write(path, pos, &err), SHADOW_OK);
    ck_assert_int_eq(shadow_checkpoint_read(path, &got, &err), SHADOW_OK);
    ck_assert_uint_eq(got.seq, 12);
    ck_assert_uint_eq(got.off, 345678);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    ck_assert_int_eq(stat(tmp, &st), -1);

    pos.seq = 13;
    pos.off = 0;
    ck_assert_int_eq(shadow_checkpoint_write(path, pos, &err), SHADOW_OK);
    ck_assert_int_eq(shadow_checkpoint_read(path, &got, &err), SHADOW_OK);
    ck_assert_uint_eq(got.seq, 13);
    ck_assert_uint_eq(got.off, 0);

    f = fopen(path, "w");
    fputs("nonsense\n", f);
    fclose(f);
    ck_assert_int_eq(shadow_checkpoint_read(path, &got, &err), SHADOW_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, path));

    snprintf(path, sizeof(path), "%s/no/such/dir/ckpt", tmpdir);
    ck_assert_int_eq(shadow_checkpoint_write(path, pos, &err), SHADOW_ERROR);
}
END_TEST


/* ---- JSON front ends ---------------------------------------------------- */

START_TEST(test_json_round_trip)
{
    char                  *line;
    uint8_t                buf[4096];
    size_t                 len;
    shadow_pos_t           pos = { 3, 99 };
    cutover_record_t       in, out;
    shadow_error_t         err;
    shadow_json_record_t   jr;

    sample_record(&in, "0123456789abcdef0123456789abcdef", "{\"a\":\"\xff\"}");
    line = shadow_json_record_dump(&in, pos);
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "\"segment\":3,\"offset\":99"));
    ck_assert_ptr_nonnull(strstr(line, "\"resp_body_b64\""));
    ck_assert_ptr_nonnull(strstr(line, "\"req_body_b64\""));

    ck_assert_int_eq(shadow_json_record_parse(line, strlen(line), &jr, &err),
                     SHADOW_OK);
    ck_assert_int_eq(cutover_record_encode(&jr.rec, buf, sizeof(buf), &len),
                     SHADOW_OK);
    ck_assert_int_eq(shadow_record_decode(buf, len, &out, &err), SHADOW_OK);
    ck_assert_uint_eq(out.req_body_len, in.req_body_len);
    ck_assert_mem_eq(out.req_body, in.req_body, in.req_body_len);
    ck_assert_uint_eq(out.resp_body_len, 15);
    ck_assert_mem_eq(out.resp_body, in.resp_body, 15);
    ck_assert(str_is(out.resp_sha256, "ab"));
    ck_assert_uint_eq(out.n_req_headers, 2);
    ck_assert_int_eq(out.time_us, in.time_us);
    shadow_record_clear(&out);
    shadow_json_record_clear(&jr);
    free(line);
}
END_TEST


static const char  *bad_lines[] = {
    "[1,2]",
    "{\"uri\": \"no-slash\"}",
    "{\"uri\": \"/\", \"side\": \"both\"}",
    "{\"uri\": \"/\", \"colour\": 1}",
    "{\"uri\": \"/\", \"req_body_b64\": \"!!!\"}",
    "{\"uri\": \"/\", \"req_headers\": [[\"a\"]]}",
    "{\"uri\": \"/\",}",
};


START_TEST(test_json_bad_lines)
{
    shadow_error_t         err;
    shadow_json_record_t   jr;

    ck_assert_int_eq(shadow_json_record_parse(bad_lines[_i],
                                              strlen(bad_lines[_i]), &jr,
                                              &err), SHADOW_ERROR);
    ck_assert_uint_gt(strlen(err.message), 0);
}
END_TEST


/* The JSON test suite over the logtool's front end: n_ rejected, y_ never
 * rejected as bad JSON, nothing crashes. */
START_TEST(test_json_corpus)
{
    int                    rc;
    corpus_t               c;
    shadow_error_t         err;
    shadow_json_record_t   jr;

    corpus_open(&c);

    while (corpus_next(&c)) {
        rc = shadow_json_record_parse(c.doc, c.len, &jr, &err);
        if (rc == SHADOW_OK) {
            shadow_json_record_clear(&jr);
        }

        if (c.name[0] == 'n') {
            ck_assert_msg(rc == SHADOW_ERROR, "%s accepted", c.name);

        } else if (c.name[0] == 'y') {
            ck_assert_msg(rc == SHADOW_OK
                          || strncmp(err.message, "not JSON", 8) != 0,
                          "%s: %s", c.name, err.message);
        }

    }

    corpus_check_count(&c);
}
END_TEST


static void
write_file(const char *path, const char *text)
{
    FILE  *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}


START_TEST(test_config)
{
    char             path[300];
    shadow_config_t  cfg;
    shadow_error_t   err;

    snprintf(path, sizeof(path), "%s/shadowd.json", tmpdir);
    write_file(path, "{\"log\": \"/x/erp.log\", \"checkpoint\": \"/x/c\","
               " \"new\": \"http://127.0.0.1:1/\", \"legacy\": "
               "\"http://127.0.0.1:2\", \"outbox\": \"/x/o\", "
               "\"concurrency\": 8, \"order_key\": \"store_channel\", "
               "\"rate_limit\": 100.5, \"max_inflight_per_key\": 1, "
               "\"delete_consumed\": false, \"results_db\": null, "
               "\"nice\": 19, \"sched_idle\": false}");
    ck_assert_int_eq(shadow_config_load(path, &cfg, &err), SHADOW_OK);
    ck_assert_str_eq(cfg.log, "/x/erp.log");
    ck_assert_str_eq(cfg.new_url, "http://127.0.0.1:1");
    ck_assert_int_eq(cfg.concurrency, 8);
    ck_assert_int_eq(cfg.timeout_ms, 2000);
    ck_assert_int_eq(cfg.retries, 3);
    ck_assert_int_eq(cfg.order_key, SHADOW_ORDER_STORE_CHANNEL);
    ck_assert(cfg.rate_limit == 100.5);
    ck_assert_int_eq(cfg.delete_consumed, 0);
    ck_assert_ptr_null(cfg.results_db);
    ck_assert_int_eq(cfg.nice, 19);
    ck_assert_int_eq(cfg.sched_idle, 0);
    shadow_config_clear(&cfg);
}
END_TEST


static const struct {
    const char  *text;
    const char  *says;
} bad_configs[] = {
    { "{\"log\": 1}", "\"log\" must be a string" },
    { "{\"colour\": 1}", "unknown key \"colour\"" },
    { "{\"concurrency\": 0}", "\"concurrency\"" },
    { "{\"max_inflight_per_key\": 2}", "fixed at 1" },
    { "{\"order_key\": \"sku\"}", "order_key" },
    { "{\"replay\": []}", "\"replay\" must be an object" },
    { "{\"replay\": {\"/api/v1/orders\": \"always\"}}",
      "is not \"METHOD /path\"" },
    { "{\"replay\": {\"POST api\": \"always\"}}", "is not \"METHOD" },
    { "{\"replay\": {\"POST /api\": \"sometimes\"}}",
      "must be \"applied\" or \"always\"" },
    { "{\"replay\": {\"POST /api\": 1}}", "must be \"applied\"" },
    { "{\"max_wait_ms\": -1}", "\"max_wait_ms\"" },
    { "{\"nice\": -1}", "\"nice\"" },
    { "{\"nice\": 20}", "\"nice\"" },
    { "{\"nice\": \"low\"}", "\"nice\"" },
    { "{\"sched_idle\": 1}", "\"sched_idle\" must be true or false" },
    { "{\"retry_backoff_max_ms\": 0}", "\"retry_backoff_max_ms\"" },
    { "{\"log\": \"l\", \"checkpoint\": \"c\"}", "required" },
    { "[]", "not a JSON object" },
    { "{", "not JSON" },
};


START_TEST(test_config_errors)
{
    char             path[300];
    shadow_config_t  cfg;
    shadow_error_t   err;

    snprintf(path, sizeof(path), "%s/shadowd.json", tmpdir);
    write_file(path, bad_configs[_i].text);
    ck_assert_int_eq(shadow_config_load(path, &cfg, &err), SHADOW_ERROR);
    ck_assert_msg(strstr(err.message, bad_configs[_i].says) != NULL,
                  "%s: %s", bad_configs[_i].text, err.message);

    snprintf(path, sizeof(path), "%s/none.json", tmpdir);
    ck_assert_int_eq(shadow_config_load(path, &cfg, &err), SHADOW_ERROR);
}
END_TEST


/* Which writes are replayed whatever the primary answered. */
static const struct {
    const char       *method;
    const char       *uri;
    shadow_replay_t   mode;
} replay_cases[] = {
    { "POST", "/api/v1/orders", SHADOW_REPLAY_APPLIED },
    { "POST", "/api/v1/orders?dry=1", SHADOW_REPLAY_APPLIED },
    { "POST", "/api/v1/orders/", SHADOW_REPLAY_ALWAYS },
    { "POST", "/api/v1/orders/A-1/cancel", SHADOW_REPLAY_APPLIED },
    { "post", "/api/v1/orders/A-1/cancel", SHADOW_REPLAY_APPLIED },
    { "POST", "/api/v1/orders//cancel", SHADOW_REPLAY_ALWAYS },
    { "POST", "/api/v1/inventory/adjust", SHADOW_REPLAY_ALWAYS },
    { "PUT", "/api/v1/inventory/adjust", SHADOW_REPLAY_ALWAYS },
    { "DELETE", "/api/v1/members/M1/tags/x", SHADOW_REPLAY_APPLIED },
    { "DELETE", "/api/v1/members", SHADOW_REPLAY_ALWAYS },
    { "PUT", "/api/v1/orders", SHADOW_REPLAY_ALWAYS },
};


START_TEST(test_replay_mode)
{
    char             path[300];
    shadow_config_t  cfg;
    shadow_error_t   err;
    const char      *m = replay_cases[_i].method, *u = replay_cases[_i].uri;

    snprintf(path, sizeof(path), "%s/shadowd.json", tmpdir);
    write_file(path, "{\"log\": \"l\", \"checkpoint\": \"/x/c\", \"new\": "
               "\"http://a\", \"legacy\": \"http://b\", \"outbox\": \"o\", "
               "\"replay\": {\"POST /api/v1/orders\": \"applied\", "
               "\"POST /api/v1/orders/{id}/cancel\": \"applied\", "
               "\"* /api/v1/members/*\": \"applied\", "
               "\"*\": \"always\"}}");
    ck_assert_msg(shadow_config_load(path, &cfg, &err) == SHADOW_OK, "%s",
                  err.message);
    ck_assert_msg(shadow_replay_mode(&cfg, m, strlen(m), u, strlen(u))
                  == replay_cases[_i].mode, "%s %s", m, u);
    ck_assert_str_eq(cfg.dead_letter, "/x/c.dead-letter");
    shadow_config_clear(&cfg);
}
END_TEST


/* Without a "replay" key every write is replayed only when applied. */
START_TEST(test_replay_default)
{
    char             path[300];
    shadow_config_t  cfg;
    shadow_error_t   err;

    snprintf(path, sizeof(path), "%s/shadowd.json", tmpdir);
    write_file(path, "{\"log\": \"l\", \"checkpoint\": \"c\", \"new\": "
               "\"http://a\", \"legacy\": \"http://b\", \"outbox\": \"o\"}");
    ck_assert_int_eq(shadow_config_load(path, &cfg, &err), SHADOW_OK);
    ck_assert_int_eq(shadow_replay_mode(&cfg, "POST", 4, "/x", 2),
                     SHADOW_REPLAY_APPLIED);
    ck_assert_int_eq(cfg.max_wait_ms, 0);
    ck_assert_int_eq(cfg.backoff_max_ms, 5000);
    ck_assert_int_eq(cfg.nice, 10);
    ck_assert_int_eq(cfg.sched_idle, 1);
    ck_assert(shadow_method_is_read("GET", 3));
    ck_assert(shadow_method_is_read("head", 4));
    ck_assert(!shadow_method_is_read("POST", 4));
    ck_assert(!shadow_method_is_read("GETX", 4));
    shadow_config_clear(&cfg);
}
END_TEST


typedef struct {
    int   n;
    char  keys[8][16];
    char  payloads[8][16];
} dl_seen_t;


static int
dl_collect(void *ctx, const shadow_dl_entry_t *e)
{
    dl_seen_t  *seen = ctx;

    ck_assert_int_lt(seen->n, 8);
    snprintf(seen->keys[seen->n], 16, "%.*s", (int) e->key_len, e->key);
    snprintf(seen->payloads[seen->n], 16, "%.*s", (int) e->len,
             (const char *) e->payload);
    ck_assert_str_eq(e->reason, "max_wait");
    ck_assert_int_eq(e->attempts, 7);
    seen->n++;
    return 0;
}


/* Parked records come back whole and in order; a torn tail (a crash in
 * the middle of an append) is cut off by the next append. */
START_TEST(test_dead_letter_store)
{
    int                 fd;
    char                dir[300], path[400], text[1024];
    off_t               verified = 0, bad;
    FILE               *f;
    dl_seen_t           seen;
    shadow_dl_t        *dl;
    shadow_error_t      err;
    shadow_dl_entry_t   e = { "S001", 4, 1, "max_wait", 7,
                              (const uint8_t *) "first", 5 };

    snprintf(dir, sizeof(dir), "%s/dead", tmpdir);
    dl = shadow_dl_open(dir, &err);
    ck_assert_msg(dl != NULL, "%s", err.message);
    ck_assert_int_eq(shadow_dl_lock(dl, 0, &err), SHADOW_OK);

    ck_assert_int_eq(shadow_dl_append(dl, &e, &verified, &err), SHADOW_OK);
    e.payload = (const uint8_t *) "second";
    e.len = 6;
    ck_assert_int_eq(shadow_dl_append(dl, &e, &verified, &err), SHADOW_OK);

    ck_assert_int_eq(shadow_dl_path(dl, "S001", 4, ".dl", path,
                                    sizeof(path)), SHADOW_OK);
    ck_assert_ptr_nonnull(strstr(path, "/dead/53303031.dl"));
    fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "SDV1torn", 8), 8);
    close(fd);

    memset(&seen, 0, sizeof(seen));
    ck_assert_int_eq(shadow_dl_read(path, dl_collect, &seen, &bad, &err), 2);
    ck_assert_int_gt(bad, 0);

    /* another run: it does not know the size, checks and cuts */
    verified = 0;
    e.payload = (const uint8_t *) "third";
    e.len = 5;
    ck_assert_int_eq(shadow_dl_append(dl, &e, &verified, &err), SHADOW_OK);

    memset(&seen, 0, sizeof(seen));
    ck_assert_int_eq(shadow_dl_read(path, dl_collect, &seen, &bad, &err), 3);
    ck_assert_int_eq(bad, -1);
    ck_assert_str_eq(seen.payloads[0], "first");
    ck_assert_str_eq(seen.payloads[1], "second");
    ck_assert_str_eq(seen.payloads[2], "third");
    ck_assert_str_eq(seen.keys[2], "S001");

    ck_assert_int_eq(shadow_dl_audit(dl, "replay", "S\"001", 3, "a", "b",
                                     "shadow back", &err), SHADOW_OK);
    snprintf(path, sizeof(path), "%s/actions.log", dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "\"action\": \"replay\", \"key\": "
                                 "\"S\\\"001\", \"records\": 3"));
    ck_assert_ptr_nonnull(strstr(text, "\"reason\": \"shadow back\""));

    shadow_dl_unlock(dl);
    shadow_dl_free(dl);
    shadow_dl_free(NULL);
}
END_TEST


/* A write cutover-shadowd did not replay is stored with its route and
 * why, under its own verdict, without differences. */
START_TEST(test_unreplayed_pair)
{
    compare_pair_t     pair;
    compare_error_t    err;
    compare_result_t  *res;

    memset(&pair, 0, sizeof(pair));
    pair.record_id = "0123456789abcdef0123456789abcdef";
    pair.method = "POST";
    pair.uri = "/api/v1/orders/A-17/cancel?x=1";
    pair.primary.status = 502;

    res = compare_pair_unreplayed(NULL, &pair, COMPARE_VERDICT_INDETERMINATE,
                                  "outcome unknown", &err);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(compare_result_verdict(res),
                     COMPARE_VERDICT_INDETERMINATE);
    ck_assert_str_eq(compare_verdict_name(compare_result_verdict(res)),
                     "indeterminate");
    ck_assert_str_eq(compare_result_detail(res), "outcome unknown");
    ck_assert_int_eq(compare_result_ndiffs(res), 0);
    ck_assert_ptr_nonnull(strstr(compare_result_route(res), "POST "));
    compare_result_free(res);

    ck_assert_str_eq(compare_verdict_name(COMPARE_VERDICT_PRIMARY_REFUSED),
                     "primary_refused");
}
END_TEST


/* A key too long for a file name gets a digest. */
START_TEST(test_dead_letter_stem)
{
    char  key[200], stem[SHADOW_DL_STEM_MAX + 1];

    memset(key, 'k', sizeof(key));
    shadow_dl_stem(key, sizeof(key), stem);
    ck_assert_int_eq(strlen(stem), 65);
    ck_assert_int_eq(stem[0], 'h');
    shadow_dl_stem("ab", 2, stem);
    ck_assert_str_eq(stem, "6162");
}
END_TEST


START_TEST(test_metrics_render)
{
    char            buf[32768];
    shadow_stats_t  s;

    memset(&s, 0, sizeof(s));
    s.read = 10;
    s.failed = 2;
    s.lag_seconds = 1.5;
    s.different = 3;
    s.lost = 4;
    s.primary_refused = 5;
    s.indeterminate = 6;
    s.dead_lettered = 7;
    s.retrying = 2;
    s.retrying_by[SHADOW_RETRY_CONNECT] = 2;
    s.retries_by[SHADOW_RETRY_503] = 9;
    s.oldest_wait_seconds = 4.25;
    s.cpu_seconds = 12.5;
    s.nice = 10;
    s.sched_idle = 1;
    shadow_metrics_render(&s, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_process_cpu_seconds_"
                                 "total 12.500\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_nice 10\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_sched_idle 1\n"));
    ck_assert_ptr_nonnull(strstr(buf,
                                 "cutover_shadow_primary_refused_total 5\n"));
    ck_assert_ptr_nonnull(strstr(buf,
                                 "cutover_shadow_indeterminate_total 6\n"));
    ck_assert_ptr_nonnull(strstr(buf,
                                 "cutover_shadow_dead_lettered_total 7\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_retrying 2\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_retrying_by_reason"
                                 "{reason=\"connect\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_retries_total"
                                 "{reason=\"503\"} 9\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_oldest_wait_seconds "
                                 "4.250\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_lost_total 4\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_records_read_total 10\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_failed_total 2\n"));
    ck_assert_ptr_nonnull(strstr(buf, "cutover_shadow_lag_seconds 1.500\n"));
    ck_assert_ptr_nonnull(strstr(buf, "{verdict=\"different\"} 3\n"));
}
END_TEST


static size_t
collect(char *p, size_t size, size_t n, void *ctx)
{
    char    *buf = ctx;
    size_t   have = strlen(buf), len = size * n;

    if (have + len < 32768) {
        memcpy(buf + have, p, len);
        buf[have + len] = '\0';
    }

    return len;
}


/* A free loopback port: bind to 0, read it, let go. */
static int
free_port(void)
{
    int                 fd;
    socklen_t           len = sizeof(struct sockaddr_in);
    struct sockaddr_in  sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}


/* Before anything is published, /metrics serves the stats it started
 * with: a scrape right after start sees the backlog, not zeros. */
START_TEST(test_metrics_serve_initial)
{
    char               listen[64], url[96], body[32768] = "";
    CURL              *h;
    long               status = 0;
    shadow_stats_t     s;
    shadow_error_t     err;
    shadow_metrics_t  *m;
    int                port = free_port();

    memset(&s, 0, sizeof(s));
    s.lag_bytes = 123456;
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "http://%s/metrics", listen);
    m = shadow_metrics_start(listen, &s, &err);
    ck_assert_msg(m != NULL, "%s", err.message);

    h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    shadow_metrics_stop(m);

    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(strstr(body, "cutover_shadow_lag_bytes 123456\n"));
}
END_TEST


/*
 * The key table past its first size: every key found again after the
 * table doubled, each key's queue keeps its records in the order queued,
 * an idle key is forgotten and its node reused, a long key works.
 */
START_TEST(test_key_table)
{
    char              key[SHADOW_KEY_SMALL + 40];
    size_t            i, n = 3 * SHADOW_KEY_BUCKETS + 7;
    shadow_keyq_t   **kq, *again;
    shadow_item_t    *it, *x;
    shadow_daemon_t  *d;

    d = calloc(1, sizeof(*d));
    kq = calloc(n, sizeof(*kq));
    it = calloc(2 * n, sizeof(*it));

    for (i = 0; i < 2 * n; i++) {
        /* each key twice, the second time after the table grew */
        snprintf(key, sizeof(key), "S%06zu", i % n);
        again = shadow_keyq_get(d, key, strlen(key));
        ck_assert_ptr_nonnull(again);
        if (i < n) {
            kq[i] = again;

        } else {
            ck_assert_ptr_eq(again, kq[i % n]);
        }

        shadow_keyq_enqueue(d, again, &it[i]);
    }

    ck_assert_uint_eq(d->nkeys, n);
    ck_assert_uint_ge(d->nkeys_cap, n);

    for (i = 0; i < n; i++) {
        x = kq[i]->head;
        ck_assert_ptr_eq(x, &it[i]);
        ck_assert_ptr_eq(x->knext, &it[i + n]);
        ck_assert_ptr_eq(kq[i]->tail, &it[i + n]);
        snprintf(key, sizeof(key), "S%06zu", i);
        ck_assert_str_eq(kq[i]->key, key);

        /* emptied and idle: forgotten */
        kq[i]->head = kq[i]->tail = NULL;
        kq[i]->ready = 0;
        shadow_keyq_drop(d, kq[i]);
    }

    d->ready_head = d->ready_tail = NULL;
    ck_assert_uint_eq(d->nkeys, 0);
    ck_assert_int_gt(d->nfree_keys, 0);

    /* a key gone is a new queue (a reused node), empty */
    again = shadow_keyq_get(d, "S000001", 7);
    ck_assert_ptr_null(again->head);
    ck_assert_int_eq(again->busy, 0);
    ck_assert_str_eq(again->key, "S000001");

    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    again = shadow_keyq_get(d, key, strlen(key));
    ck_assert_str_eq(again->key, key);
    ck_assert_ptr_eq(shadow_keyq_get(d, key, strlen(key)), again);
    ck_assert_uint_eq(d->nkeys, 2);

    shadow_keys_free(d);
    free(it);
    free(kq);
    free(d);
}
END_TEST


Suite *
shadow_suite(void)
{
    Suite  *s = suite_create("shadow");
    TCase  *tc;

    tc = tcase_create("normal");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_loop_test(tc, test_crc_vectors, 0,
                        sizeof(crc_vectors) / sizeof(crc_vectors[0]));
    tcase_add_test(tc, test_crc_incremental);
    tcase_add_test(tc, test_crc_lengths);
    tcase_add_test(tc, test_record_round_trip);
    tcase_add_test(tc, test_record_empty_fields);
    tcase_add_test(tc, test_record_frame);
    tcase_add_test(tc, test_segment_path);
    tcase_add_loop_test(tc, test_segment_seq, 0,
                        sizeof(seg_names) / sizeof(seg_names[0]));
    tcase_add_test(tc, test_writer_rotation);
    tcase_add_test(tc, test_writers_in_processes);
    tcase_add_test(tc, test_checkpoint);
    tcase_add_test(tc, test_json_round_trip);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_decode_damaged);
    tcase_add_loop_test(tc, test_replay_mode, 0,
                        sizeof(replay_cases) / sizeof(replay_cases[0]));
    tcase_add_test(tc, test_replay_default);
    tcase_add_test(tc, test_dead_letter_store);
    tcase_add_test(tc, test_dead_letter_stem);
    tcase_add_test(tc, test_unreplayed_pair);
    tcase_add_test(tc, test_metrics_render);
    tcase_add_test(tc, test_metrics_serve_initial);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_loop_test(tc, test_decode_errors, 0,
                        sizeof(bad_payloads) / sizeof(bad_payloads[0]));
    tcase_add_test(tc, test_frame_header_errors);
    tcase_add_test(tc, test_reader_corrupt_resync);
    tcase_add_test(tc, test_reader_cut_off_tail);
    tcase_add_test(tc, test_reader_torn_and_incomplete);
    tcase_add_test(tc, test_reader_missing_segment);
    tcase_add_loop_test(tc, test_json_bad_lines, 0,
                        sizeof(bad_lines) / sizeof(bad_lines[0]));
    tcase_add_loop_test(tc, test_config_errors, 0,
                        sizeof(bad_configs) / sizeof(bad_configs[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, test_record_nospace);
    tcase_add_test(tc, test_key_table);
    tcase_add_test(tc, test_writer_full_log);
    tcase_add_test(tc, test_writer_whole_frames);
    tcase_add_test(tc, test_writer_batch_whole_or_none);
    tcase_add_test(tc, test_reader_grace);
    tcase_add_test(tc, test_json_corpus);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    return s;
}


int
main(void)
{
    int       failed;
    SRunner  *sr = srunner_create(shadow_suite());

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
