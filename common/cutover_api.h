/*
 * cutover_api: the canonical API's input rules, one definition for the new
 * core and the legacy adapter, so both refuse the same requests alike.
 */

#ifndef CUTOVER_API_H
#define CUTOVER_API_H

#include <stddef.h>

/* ids (order, store, member, SKU): 1-64 characters of [A-Za-z0-9._-] */
#define CUTOVER_API_ID_MAX     64

/* lines of one order; more is 400 invalid_request */
#define CUTOVER_API_LINES_MAX  100

/* request bodies; larger is 413 invalid_request */
#define CUTOVER_API_BODY_MAX   (64 * 1024)

/* 1 when s[0..len) is a valid id, else 0. */
int cutover_api_id_valid(const char *s, size_t len);

/* An Idempotency-Key: 1-255 printable ASCII characters (0x21-0x7e), the
 * same on both sides; 1 when s (NUL-terminated) is one. */
#define CUTOVER_API_IDEM_KEY_MAX  255

int cutover_api_idem_key_valid(const char *s);

#endif /* CUTOVER_API_H */
