/*
 * cutover_admin_call: one signed call to the gateway's admin API over
 * libcurl (cutoverctl, cutover-shadowd's mismatch guard).  Not for nginx
 * workers: it blocks until the answer or the timeout.
 */

#ifndef CUTOVER_ADMIN_CALL_H
#define CUTOVER_ADMIN_CALL_H

#include <stddef.h>

#include "common/cutover_error.h"

/* receives the answer's body, as libcurl's write callback */
typedef size_t (*cutover_admin_write_pt)(char *p, size_t size, size_t n,
    void *data);

typedef struct {
    const char            *key_id;
    const unsigned char   *secret;
    size_t                 secret_len;
    long                   timeout_ms;   /* the whole call; connecting
                                            gets half of it */
} cutover_admin_client_t;

/* METHOD url (the call's full URL) with body (NULL: none), signed with the
 * client's key; the answer's body goes to write(data).  The HTTP status,
 * or -1 with err (a bad URL, no randomness, unreachable, timed out). */
long cutover_admin_call(const cutover_admin_client_t *cl, const char *method,
    const char *url, const char *body, cutover_admin_write_pt write,
    void *data, cutover_error_t *err);

#endif /* CUTOVER_ADMIN_CALL_H */
