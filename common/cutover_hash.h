/*
 * cutover_hash: SHA-256, HMAC-SHA256 and lowercase hex, over OpenSSL.
 * No allocation beyond OpenSSL's own; safe for nginx workers.
 */

#ifndef CUTOVER_HASH_H
#define CUTOVER_HASH_H

#include <stddef.h>

/* Lowercase hex of SHA-256(data). */
void cutover_sha256_hex(const void *data, size_t len, char hex[65]);

/* Lowercase hex of HMAC-SHA256(key, data); an empty string when OpenSSL
 * fails. */
void cutover_hmac_sha256_hex(const void *key, size_t keylen,
    const void *data, size_t len, char hex[65]);

/* Lowercase hex of len bytes into out[2 * len + 1]. */
void cutover_hex(const unsigned char *in, size_t len, char *out);

#endif /* CUTOVER_HASH_H */
