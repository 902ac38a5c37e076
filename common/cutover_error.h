/*
 * cutover_error: the error every library part reports, in a caller-owned
 * struct (like bson_error_t): a machine-readable code and a message.
 */

#ifndef CUTOVER_ERROR_H
#define CUTOVER_ERROR_H

#define CUTOVER_OK              0
#define CUTOVER_ERROR           -1

typedef struct {
    char      code[40];      /* machine-readable, e.g. "invalid_percent" */
    char      message[256];
} cutover_error_t;

/* Sets code and message; err may be NULL (the error is then dropped). */
void cutover_error_set(cutover_error_t *err, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* CUTOVER_ERROR_H */
