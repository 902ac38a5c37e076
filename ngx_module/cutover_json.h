/*
 * cutover_json: a strict RFC 8259 JSON tokenizer for admin request bodies.
 *
 * No allocation: tokens go into an array the caller provides, strings are
 * decoded into buffers the caller provides.  Safe for nginx workers.
 */

#ifndef CUTOVER_JSON_H
#define CUTOVER_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CUTOVER_JSON_MAX_DEPTH  64

typedef enum {
    CUTOVER_JSON_OBJECT = 1,
    CUTOVER_JSON_ARRAY,
    CUTOVER_JSON_STRING,
    CUTOVER_JSON_NUMBER,
    CUTOVER_JSON_TRUE,
    CUTOVER_JSON_FALSE,
    CUTOVER_JSON_NULL
} cutover_json_type_e;

typedef struct {
    cutover_json_type_e  type;
    uint32_t             start;    /* offset of the first byte */
    uint32_t             end;      /* offset past the last byte; strings
                                      exclude their quotes */
    uint32_t             size;     /* members (object) or elements (array) */
    uint32_t             skip;     /* tokens in this subtree, itself included */
} cutover_json_tok_t;

/*
 * Parses the whole of json[0..len) as one JSON text.  Returns the number of
 * tokens used, or -1 with a message in err (position included).  An object
 * member is two tokens: the key (a string) and its value.  With toks NULL
 * it only validates (no token limit, nothing stored).
 */
int cutover_json_parse(const char *json, size_t len, cutover_json_tok_t *toks,
    size_t ntoks, char *err, size_t errlen);

/* Index of the value of member `name` in the object at `obj`, or -1. */
int cutover_json_get(const char *json, const cutover_json_tok_t *toks,
    int obj, const char *name);

/* Index of the token that follows the subtree of toks[i]. */
#define cutover_json_next(toks, i)  ((i) + (int) (toks)[i].skip)

/* Decodes a string token into buf (NUL-terminated, UTF-8); returns its
 * length, or -1 when it does not fit or holds a NUL character. */
int cutover_json_string(const char *json, const cutover_json_tok_t *tok,
    char *buf, size_t cap);

/* Whether the (undecoded) string token equals s exactly. */
int cutover_json_eq(const char *json, const cutover_json_tok_t *tok,
    const char *s);

/* Writes s to buf as a JSON string body (no quotes); returns the bytes
 * written or -1 when it does not fit.  Invalid UTF-8 becomes U+FFFD. */
int cutover_json_escape(const char *s, size_t len, char *buf, size_t cap);

/* Prints s to out as a JSON string, quotes included (for programs). */
int cutover_json_fprint(FILE *out, const char *s);

#endif /* CUTOVER_JSON_H */
