/*
 * cutover_auth: signed admin requests (CUTOVER-HMAC-SHA256), operator keys,
 * and the hash-chained audit trail.  Plain C over OpenSSL; no nginx headers.
 */

#ifndef CUTOVER_AUTH_H
#define CUTOVER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_hash.h"
#include "common/cutover_sign.h"
#include "cutover_dial.h"
#include "common/cutover_json.h"

#define CUTOVER_AUTH_WINDOW     300      /* seconds either side of now */
#define CUTOVER_NONCE_MAX       64       /* hex digits */
#define CUTOVER_NONCE_MIN       16

/* The parts of an Authorization header. */
typedef struct {
    char      key_id[CUTOVER_ID_MAX + 1];
    int64_t   timestamp;
    char      nonce[CUTOVER_NONCE_MAX + 1];
    char      signature[65];
} cutover_auth_t;

/* Parses "CUTOVER-HMAC-SHA256 KeyId=.., Timestamp=.., Nonce=..,
 * Signature=..". */
int cutover_auth_parse(const char *value, size_t len, cutover_auth_t *auth,
    cutover_error_t *err);

/* Constant-time check of auth->signature; 1 when it is right. */
int cutover_auth_verify(const cutover_key_t *key, const cutover_auth_t *auth,
    const char *method, size_t method_len, const char *path, size_t path_len,
    const void *body, size_t body_len);

/* --- audit trail ---------------------------------------------------------
 *
 * One JSON object per line.  "hash" is the SHA-256 (hex) of the line's text
 * up to, not including, the `,"hash":` that ends it; the text includes
 * "prev", the hash of the line before (64 zeros for the first).  Editing,
 * removing or reordering any line breaks the chain at that line.
 *
 * The line, field by field (the writer and the parser below both use these
 * pieces; nothing else knows the layout):
 *
 *   {"seq":N,"time":"...","key_id":"...","action":"...","result":"...",
 *    "from":V,"to":V,"reason":"..."[,"pending_break":S],"prev":"<64 hex>",
 *    "hash":"<64 hex>"}
 *
 * "pending_break" is on every entry written while the trail holds a break
 * (an "audit_break" entry, seq S) that no admin has accepted yet, so that
 * the last line alone says whether dial-up is allowed.
 */

#define CUTOVER_AUDIT_LINE_MAX  32768
#define CUTOVER_AUDIT_GENESIS \
    "0000000000000000000000000000000000000000000000000000000000000000"

#define CUTOVER_AUDIT_F_SEQ      "{\"seq\":"
#define CUTOVER_AUDIT_F_ACTION   "\",\"action\":\""
#define CUTOVER_AUDIT_F_BREAK    ",\"pending_break\":"
#define CUTOVER_AUDIT_F_PREV     ",\"prev\":\""
#define CUTOVER_AUDIT_F_HASH     ",\"hash\":\""
#define CUTOVER_AUDIT_F_END      "\"}"

#define CUTOVER_AUDIT_ACTION_MAX  32

typedef struct {
    uint64_t     seq;
    int64_t      time;
    const char  *key_id;
    const char  *action;      /* "dial", "rollback", "audit_break", ... */
    const char  *result;      /* "accepted" or "refused:<code>" */
    const char  *from;        /* JSON value or NULL (null) */
    const char  *to;          /* JSON value or NULL */
    const char  *reason;      /* free text, escaped here */
    uint64_t     pending_break;   /* seq of an unaccepted break, or 0 */
    const char  *prev;        /* 64 hex */
} cutover_audit_entry_t;

/* What a line says about the chain, read by cutover_audit_parse_head. */
typedef struct {
    uint64_t     seq;
    uint64_t     pending_break;
    char         action[CUTOVER_AUDIT_ACTION_MAX + 1];
    char         prev[65];
    char         hash[65];
} cutover_audit_head_t;

/* Writes the line (with '\n') and its hash; returns the length or -1. */
int cutover_audit_format(const cutover_audit_entry_t *e, char *buf,
    size_t cap, char hash[65]);

/* Reads seq, action, pending_break, prev and hash of one line (a trailing
 * '\n' is allowed) and checks that the hash is the hash of the line's
 * text.  It does not check the chain (see cutover_audit_check_line).
 * -1 with the reason in err. */
int cutover_audit_parse_head(const char *line, size_t len,
    cutover_audit_head_t *head, cutover_error_t *err);

/* Checks one line against the expected seq and prev hash; on success
 * copies its hash out.  -1 with the reason in err. */
int cutover_audit_check_line(const char *line, size_t len, uint64_t seq,
    const char *prev, char hash[65], cutover_error_t *err);


#endif /* CUTOVER_AUTH_H */
