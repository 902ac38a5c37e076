/*
 * cutover_record: the dual-run log, its record, frame and segment formats,
 * and the writer side that nginx workers compile.  The one contract between
 * the module (writer) and cutover-shadowd (reader, shadow/shadow_reader.h):
 * both read and write frames through the definitions here.
 *
 * Segments.  A log configured as PATH is a series of files
 * PATH.<20-digit zero-padded sequence>, the first being
 * PATH.00000000000000000001.  Writers append to the highest-numbered
 * segment (the current one) with O_APPEND, one write(2) per frame, so
 * several worker processes may share it.  A writer that finds the current
 * segment at or over the segment size creates the next one (O_CREAT, no
 * EXCL, so racing workers agree) and moves there; a segment may therefore
 * exceed the size by one frame per worker.  Writers never delete; the
 * shadow daemon deletes segments wholly before its checkpoint.
 *
 * Frame.  Little-endian:
 *
 *     magic u32 = 0x31564453 ("SDV1")  | length u32 | crc32c u32 | payload
 *
 * length is the payload size (1 .. CUTOVER_FRAME_MAX), crc32c is CRC-32C
 * (Castagnoli, reflected, init and xorout 0xffffffff) of the payload.  A
 * reader that meets a bad magic, a bad length or a bad CRC reports the
 * segment and offset and resyncs by scanning for the next magic.  An
 * incomplete frame at the end of the current segment is a write in
 * progress; at the end of a non-current segment it is a torn tail (a crash
 * during a write) and is skipped.
 *
 * Record.  The payload is one BSON document with these fields, in order:
 *
 *     id             string  32 lower-case hex: request id, Idempotency-Key
 *     time_us        int64   when the primary answered, Unix microseconds
 *     zone           string  cutover zone
 *     rule           string  id of the dial rule that matched
 *     side           string  "new" | "legacy": the side that served it
 *     bucket         int32   0 .. 9999
 *     key            string  the bucket key (e.g. "S001:pos")
 *     store          string  store id, may be ""
 *     channel        string  channel, may be ""
 *     version        int64   dial state version used for routing
 *     method         string  HTTP method
 *     uri            string  path and query as received
 *     req_headers    array   of [name, value] string pairs
 *     req_body       binary  (subtype 0) the request body
 *     status         int32   the primary's status
 *     resp_headers   array   of [name, value] string pairs
 *     resp_body      binary  the primary's body, at most the body limit
 *     resp_body_len  int64   the full length of the primary's body
 *     resp_truncated bool    resp_body is a prefix of the real body
 *     resp_sha256    string  64 hex digits, SHA-256 of the whole body;
 *                            present when resp_truncated (a whole body
 *                            needs no digest: readers hash resp_body)
 *     upstream_ms    double  primary response time, milliseconds
 *     content_type   string  the primary's Content-Type, may be ""
 *
 * Readers ignore fields they do not know, so fields may be added.
 *
 * Everything declared here is implemented by cutover_frame.c,
 * cutover_record.c and cutover_segment.c, which include no nginx header, never
 * allocate (they write into buffers the caller passes), never log, and make
 * no blocking call but the one write(2) of a frame (or writev(2) of a
 * batch), an lseek(2) per write (to notice a full segment), an
 * fallocate(2) per CUTOVER_RESERVE bytes written and open(2)/getdents64(2)
 * when rotating.
 *
 * A writer (an nginx worker) does, per record:
 *
 *     size_t  cap = cutover_record_size(&rec), len;
 *     u_char *buf = ngx_pnalloc(r->pool, cap);
 *     if (cutover_record_frame(&rec, buf, cap, &len) != CUTOVER_OK
 *         || cutover_writer_append(&writer, buf, len) != CUTOVER_OK)
 *     {
 *         count the record as dropped;
 *     }
 *
 * with one cutover_writer_t per worker process (cutover_writer_init() at
 * process start, max_bytes set for "cutover_log ... max=").
 */

#ifndef CUTOVER_RECORD_H
#define CUTOVER_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_error.h"   /* CUTOVER_OK, CUTOVER_ERROR */

#define CUTOVER_CORRUPT  -3      /* a corrupt region was skipped */
#define CUTOVER_NOSPACE  -4      /* the caller's buffer is too small */

#define CUTOVER_FRAME_MAGIC   0x31564453u
#define CUTOVER_FRAME_HEADER  12
#define CUTOVER_FRAME_MAX     (64u * 1024 * 1024)
#define CUTOVER_SEQ_DIGITS    20
#define CUTOVER_RESERVE       (2u * 1024 * 1024)

/* A byte string that need not be NUL-terminated (nginx's ngx_str_t). */
typedef struct {
    const char  *data;
    size_t       len;
} cutover_str_t;

typedef struct {
    cutover_str_t  name;
    cutover_str_t  value;
} cutover_header_t;

typedef struct {
    cutover_str_t           id;
    int64_t                 time_us;
    cutover_str_t           zone;
    cutover_str_t           rule;
    cutover_str_t           side;
    int32_t                 bucket;
    cutover_str_t           key;
    cutover_str_t           store;
    cutover_str_t           channel;
    int64_t                 version;
    cutover_str_t           method;
    cutover_str_t           uri;
    const cutover_header_t *req_headers;
    size_t                  n_req_headers;
    const uint8_t          *req_body;
    size_t                  req_body_len;
    int32_t                 status;
    const cutover_header_t *resp_headers;
    size_t                  n_resp_headers;
    const uint8_t          *resp_body;
    size_t                  resp_body_len;      /* bytes held in resp_body */
    int64_t                 resp_body_total;    /* resp_body_len field */
    int                     resp_truncated;
    cutover_str_t           resp_sha256;
    double                  upstream_ms;
    cutover_str_t           content_type;
} cutover_record_t;

/* CRC-32C of len bytes, continuing from crc (start with 0). */
uint32_t cutover_crc32c(uint32_t crc, const void *data, size_t len);

/* Write the 12-byte frame header for payload (already at buf + 12) into
 * buf[0..11]. */
void cutover_frame_seal(uint8_t *buf, const uint8_t *payload, uint32_t len);

/* Parse a frame header.  Returns CUTOVER_OK and *len, or CUTOVER_CORRUPT
 * on a bad magic or length. */
int cutover_frame_header(const uint8_t *hdr, uint32_t *len, uint32_t *crc);

/* Encode rec as one BSON document into buf (cap bytes); *len gets its
 * size.  CUTOVER_NOSPACE when it does not fit. */
int cutover_record_encode(const cutover_record_t *rec, uint8_t *buf,
    size_t cap, size_t *len);

/* Encode rec as a whole frame (header + BSON) into buf; *len gets the
 * frame size, ready for one write(2). */
int cutover_record_frame(const cutover_record_t *rec, uint8_t *buf,
    size_t cap, size_t *len);

/* Bytes the encoded record needs at most (frame header included), so a
 * caller can size its buffer once. */
size_t cutover_record_size(const cutover_record_t *rec);

/* "<base>.<20 digits>" into buf; CUTOVER_NOSPACE when it does not fit. */
int cutover_segment_path(char *buf, size_t cap, const char *base,
    uint64_t seq);

/* The sequence a segment file name carries ("erp.log.000..042" for base
 * name "erp.log"), or 0 when name is not a segment of that base. */
uint64_t cutover_segment_seq(const char *name, const char *base_name);

/* Lowest and highest segment sequence present (both 0 when none), read
 * with getdents64 into the caller's scratch buffer. */
int cutover_segment_range(const char *base, uint8_t *scratch, size_t cap,
    uint64_t *first, uint64_t *last);

/* The writer of one process: the current segment's descriptor. */
typedef struct {
    const char  *base;          /* NUL-terminated log path, borrowed */
    uint64_t     segment_size;  /* rotate at this size, bytes */
    uint64_t     max_bytes;     /* 0, or refuse a segment that would put
                                   (segments present) x segment_size over
                                   it: the log is full (set after init) */
    uint64_t     seq;           /* current segment, 0 = not open */
    uint64_t     reserved;      /* the segment is allocated up to here */
    int          fd;
    int          err;           /* errno of the last failure */
    int          no_reserve;    /* the file system cannot fallocate(2) */
} cutover_writer_t;

void cutover_writer_init(cutover_writer_t *w, const char *base,
    uint64_t segment_size);

/* Append one frame with one write(2), opening or rotating the current
 * segment first as needed.  CUTOVER_NOSPACE when the log is full (see
 * max_bytes), CUTOVER_ERROR with w->err on failure (ENOSPC or EDQUOT when
 * the disk is full): either way the record is not written and the caller
 * counts it as dropped.
 *
 * A frame is written whole or not at all.  Before writing, the writer
 * makes sure the bytes it is about to append are allocated
 * (fallocate(2) with FALLOC_FL_KEEP_SIZE, CUTOVER_RESERVE bytes ahead at a
 * time), so a full disk fails the reservation, not the write half-way.
 * Should a write still come back short (a file system without
 * fallocate(2), or another worker appending between the reservation and
 * the write), the partial frame is cut off again with ftruncate(2), as
 * long as nothing was appended after it.  Once there is room again the
 * next append succeeds: nothing needs resetting. */
int cutover_writer_append(cutover_writer_t *w, const uint8_t *frame,
    size_t len);

/* The same for a batch of whole frames in n pieces (at most IOV_MAX),
 * written with one writev(2): all of them or none, into one segment (a
 * segment may end up to one batch past its size). */
struct iovec;
int cutover_writer_appendv(cutover_writer_t *w, const struct iovec *iov,
    int n);

void cutover_writer_close(cutover_writer_t *w);

#endif /* CUTOVER_RECORD_H */
