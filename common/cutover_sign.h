/*
 * cutover_sign: what a client of the admin API needs to sign a request
 * (CUTOVER-HMAC-SHA256, SPEC "Signature header"): operator keys and their
 * roles, one line of a keys file, ids, and the signature itself.  The
 * module verifies with the same function (ngx_module/cutover_auth.h);
 * cutoverctl and cutover-shadowd's guard sign with it.
 */

#ifndef CUTOVER_SIGN_H
#define CUTOVER_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "common/cutover_error.h"

#define CUTOVER_ID_MAX          32          /* bytes of an id */
#define CUTOVER_SECRET_MAX      64          /* bytes */
#define CUTOVER_SECRET_MIN      16

typedef enum {
    CUTOVER_ROLE_NONE = 0,
    CUTOVER_ROLE_VIEWER,
    CUTOVER_ROLE_GUARD,          /* reads and rolls back, nothing else */
    CUTOVER_ROLE_OPERATOR,
    CUTOVER_ROLE_ADMIN
} cutover_role_e;

typedef struct {
    char            id[CUTOVER_ID_MAX + 1];
    cutover_role_e  role;
    unsigned char   secret[CUTOVER_SECRET_MAX];
    size_t          secret_len;
} cutover_key_t;

/* An id (key, rule, zone): 1 to CUTOVER_ID_MAX of [A-Za-z0-9_.-]. */
int cutover_id_valid(const char *s, size_t len);

/* A hex digit's value, or -1; whether s holds len hex digits. */
int cutover_hex_value(char c);
int cutover_is_hex(const char *s, size_t len);

cutover_role_e cutover_role_parse(const char *s);
const char *cutover_role_name(cutover_role_e role);

/* One line of a keys file: "<key-id> <role> <hex secret>".  Returns 1 for
 * a key, 0 for a blank or comment line, -1 with err on a bad line. */
int cutover_key_parse_line(const char *line, size_t len, cutover_key_t *key,
    cutover_error_t *err);

/* hex(HMAC-SHA256(secret, METHOD\nPATH\nTS\nNONCE\nhex(SHA-256(body)))). */
int cutover_auth_sign(const unsigned char *secret, size_t secret_len,
    const char *method, size_t method_len, const char *path, size_t path_len,
    int64_t timestamp, const char *nonce, const void *body, size_t body_len,
    char signature[65]);

/* The whole "Authorization: CUTOVER-HMAC-SHA256 KeyId=.., Timestamp=..,
 * Nonce=.., Signature=.." header line of a request to the admin API, with
 * a fresh random nonce; url is the full URL whose path and query are
 * signed.  CUTOVER_OK, or CUTOVER_ERROR with err (a URL without a path,
 * no randomness, a line over cap). */
int cutover_auth_header(const char *key_id, const unsigned char *secret,
    size_t secret_len, const char *method, const char *url,
    const char *body, int64_t now, char *out, size_t cap,
    cutover_error_t *err);

#endif /* CUTOVER_SIGN_H */
