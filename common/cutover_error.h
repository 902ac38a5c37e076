/*
 * cutover_error: the error every library part reports, in a caller-owned
 * struct (like bson_error_t).  compare_error_t, shadow_error_t,
 * legacy_error_t, newcore_error_t and cutover_httpd_error_t are this type
 * under their part's name.
 */

#ifndef CUTOVER_ERROR_H
#define CUTOVER_ERROR_H

#define CUTOVER_OK              0
#define CUTOVER_ERROR           -1

typedef struct {
    int       code;          /* a number of the part's own (an HTTP status
                                in new_core/), 0 when it has none */
    char      name[40];      /* machine-readable, e.g. "invalid_percent" */
    char      message[256];
} cutover_error_t;

/* Sets name and message (code is left as it is); err may be NULL (the
 * error is then dropped). */
void cutover_error_set(cutover_error_t *err, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* CUTOVER_ERROR_H */
