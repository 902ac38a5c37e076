/*
 * shadow_deadletter: the dead-letter store of cutover-shadowd, records an
 * operator must act on (replay or discard), kept durably per ordering key.
 *
 * A directory (by default "<checkpoint>.dead-letter") with:
 *
 *     lock                  flock(2): the daemon and the dead-letter
 *                           command never change the store at once
 *     <stem>.dl             a parked key's records, in log order: frames
 *                           as in the dual-run log
 *                           (common/cutover_record.h), each
 *                           payload a BSON document {key, parked_us,
 *                           reason, attempts, record (the log's payload)}
 *     <stem>.replay         the same, handed back by "replay": the daemon
 *                           replays them first, then deletes the file
 *     discarded/<stem>.<us>.dl   what "discard" set aside
 *     actions.log           one JSON line per operator action (append-only,
 *                           fsynced): when, who, what, which key, how many
 *
 * <stem> is the key in hex (a longer key: "h" and its SHA-256).  A file
 * ends with whole frames: an append first cuts a torn tail off.
 */

#ifndef SHADOW_DEADLETTER_H
#define SHADOW_DEADLETTER_H

#include <stdint.h>
#include <sys/types.h>

#include "shadow/shadow_reader.h"

#define SHADOW_DL_STEM_MAX  130

typedef struct shadow_dl_s  shadow_dl_t;

/* One parked record as read back; strings and payload owned by the
 * reader's callback argument, valid during the callback. */
typedef struct {
    const char     *key;
    size_t          key_len;
    int64_t         parked_us;
    const char     *reason;
    int             attempts;
    const uint8_t  *payload;    /* the record as in the log */
    uint32_t        len;
} shadow_dl_entry_t;

typedef int (*shadow_dl_entry_pt)(void *ctx, const shadow_dl_entry_t *e);

/* Creates the directory when missing.  Caller frees with
 * shadow_dl_free() (NULL-safe). */
shadow_dl_t *shadow_dl_open(const char *dir, shadow_error_t *err);
void shadow_dl_free(shadow_dl_t *dl);

const char *shadow_dl_dir(const shadow_dl_t *dl);

/* Exclusive lock of the store: SHADOW_OK, or SHADOW_AGAIN when someone
 * holds it and wait is 0. */
int shadow_dl_lock(shadow_dl_t *dl, int wait, shadow_error_t *err);
void shadow_dl_unlock(shadow_dl_t *dl);

/* The file stem of a key (buf of SHADOW_DL_STEM_MAX + 1 bytes). */
void shadow_dl_stem(const char *key, size_t len, char *buf);

/* "<dir>/<stem><suffix>" into buf. */
int shadow_dl_path(const shadow_dl_t *dl, const char *key, size_t len,
    const char *suffix, char *buf, size_t cap);

/* Appends e to the key's .dl file and fsyncs it (and the directory when
 * the file is new): durable on SHADOW_OK.  *verified is the size known to
 * end with a whole frame (0 at first): a file of another size is checked
 * and a torn tail cut first. */
int shadow_dl_append(shadow_dl_t *dl, const shadow_dl_entry_t *e,
    off_t *verified, shadow_error_t *err);

/* Calls cb for each whole frame of the file at path, in order; stops at a
 * torn or corrupt tail (*bad gets its offset, or -1) or when cb returns
 * non-zero.  Returns the number of entries passed, -1 on error. */
long shadow_dl_read(const char *path, shadow_dl_entry_pt cb, void *ctx,
    off_t *bad, shadow_error_t *err);

/* 1 when the file at path exists. */
int shadow_dl_exists(const char *path);

/* Appends one JSON line to actions.log and fsyncs it. */
int shadow_dl_audit(shadow_dl_t *dl, const char *action, const char *key,
    long records, const char *first_id, const char *last_id,
    const char *note, shadow_error_t *err);

#endif /* SHADOW_DEADLETTER_H */
