/*
 * shadow_reader: the daemon side of the dual-run log: tailing segments
 * from a position, decoding records (libbson), the durable checkpoint.
 * Not for nginx workers (allocates, uses libbson).
 */

#ifndef SHADOW_READER_H
#define SHADOW_READER_H

#include <stdint.h>

#include "common/cutover_record.h"

/* Return codes of shadow/: the record format's (common/cutover_record.h)
 * with the reader's own. */
#define SHADOW_OK        CUTOVER_OK
#define SHADOW_ERROR     CUTOVER_ERROR
#define SHADOW_AGAIN     -2      /* nothing yet: try again later */
#define SHADOW_CORRUPT   CUTOVER_CORRUPT
#define SHADOW_NOSPACE   CUTOVER_NOSPACE
#define SHADOW_NOTFOUND  -5

typedef cutover_error_t  shadow_error_t;

typedef struct shadow_reader_s  shadow_reader_t;

/* A position in the log: segment sequence and byte offset in it. */
typedef struct {
    uint64_t  seq;
    uint64_t  off;
} shadow_pos_t;

/* One frame as read.  payload points into the reader's buffer and is valid
 * until the next shadow_reader_next() call. */
typedef struct {
    shadow_pos_t    at;        /* where the frame starts */
    shadow_pos_t    next;      /* where the next frame starts */
    const uint8_t  *payload;
    uint32_t        len;
} shadow_frame_t;

/* Start reading at pos; pos.seq == 0 means the oldest segment present.
 * grace_ms: how long a fully read segment is watched for late writes
 * after its successor appeared.  Caller frees with shadow_reader_free(). */
shadow_reader_t *shadow_reader_new(const char *base, shadow_pos_t pos,
    unsigned grace_ms, shadow_error_t *err);

/* SHADOW_OK: *frame is the next frame.  SHADOW_AGAIN: nothing complete
 * yet.  SHADOW_CORRUPT: a corrupt region (bad magic, length or CRC, or a
 * torn tail) was skipped; err->message names segment and offset.
 * SHADOW_ERROR: an I/O error, in err. */
int shadow_reader_next(shadow_reader_t *r, shadow_frame_t *frame,
    shadow_error_t *err);

/* Where the next frame will be read from. */
shadow_pos_t shadow_reader_pos(const shadow_reader_t *r);

/* Bytes in the log after the read position (a lag metric). */
uint64_t shadow_reader_unread(const shadow_reader_t *r);

void shadow_reader_free(shadow_reader_t *r);

/* Checkpoint file: "seq <n> off <n>\n", replaced atomically (tmp, fsync,
 * rename, fsync of the directory). */
int shadow_checkpoint_write(const char *path, shadow_pos_t pos,
    shadow_error_t *err);

/* SHADOW_NOTFOUND when there is no checkpoint yet. */
int shadow_checkpoint_read(const char *path, shadow_pos_t *pos,
    shadow_error_t *err);

/* Decode a record payload.  String fields point into payload (which must
 * outlive rec) and are NUL-terminated; the header arrays are allocated:
 * release them with shadow_record_clear(). */
int shadow_record_decode(const uint8_t *payload, size_t len,
    cutover_record_t *rec, shadow_error_t *err);
void shadow_record_clear(cutover_record_t *rec);

/* Fill err (printf-style), return code. */
int shadow_error_set(shadow_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* SHADOW_READER_H */
