/*
 * compare_norm: string normalisation (case, whitespace, times to instants)
 * and masking of personal values with a keyed HMAC-SHA256.
 */

#ifndef COMPARE_NORM_H
#define COMPARE_NORM_H

#include <stddef.h>
#include <stdint.h>

#define COMPARE_MASK_TEXT_LEN  (5 + 64 + 1)   /* "hmac:" + hex + NUL */

/* Normalise s (flags COMPARE_NORM_*) into a new malloc'd string (NUL
 * terminated, length in *outlen); NULL when out of memory.  Idempotent. */
char *compare_norm_string(const char *s, size_t len, unsigned flags,
    size_t *outlen);

/* A time in RFC 3339 or a common variant ("2026-11-21 10:00:00",
 * "2026/11/21 10:00:00+08:00", Unix seconds or milliseconds) as an instant
 * in microseconds since the epoch.  0 or -1. */
int compare_time_parse(const char *s, size_t len, int64_t *us);

/* RFC 3339 UTC text of an instant, microseconds, 28 chars + NUL. */
void compare_time_format(int64_t us, char *buf, size_t size);

/* "hmac:<hex>" of the value under key. */
void compare_mask(const unsigned char *key, size_t keylen, const void *data,
    size_t len, char out[COMPARE_MASK_TEXT_LEN]);

#endif /* COMPARE_NORM_H */
