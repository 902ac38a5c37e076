/* The canonical API of the core: routing and the handlers, free of HTTP
 * server details so tests and other front ends can drive it. */

#ifndef NEWCORE_API_H
#define NEWCORE_API_H

#include <stddef.h>

#include "new_core/newcore_buf.h"
#include "new_core/newcore_db.h"

typedef struct {
    const char  *method;
    const char  *path;          /* without the query string */
    const char  *idem_key;      /* Idempotency-Key header or NULL */
    const char  *body;
    size_t       body_len;
    int          body_too_large;
} newcore_request_t;

typedef struct {
    int            status;
    const char    *allow;       /* the Allow header of a 405, else NULL */
    newcore_buf_t  body;        /* JSON; the caller frees it */
    newcore_error_t err;        /* what went wrong when status >= 400 */
} newcore_reply_t;

void newcore_reply_init(newcore_reply_t *reply);
void newcore_reply_free(newcore_reply_t *reply);

/* Answers one request; never fails to fill reply. */
void newcore_api_handle(newcore_pool_t *pool, const newcore_request_t *req,
    newcore_reply_t *reply);

/* Lowercase hex SHA-256 of METHOD "\n" PATH "\n" BODY into out[65]. */
void newcore_request_hash(const newcore_request_t *req, char *out);

/* Current time as RFC 3339 UTC with milliseconds into out[32]. */
void newcore_now_rfc3339(char *out, size_t size);

#endif /* NEWCORE_API_H */
