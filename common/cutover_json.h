/*
 * cutover_json: the project's one JSON reader, a strict RFC 8259
 * tokenizer (admin request bodies in the module, the comparator's BSON
 * builder, the programs' files), and its JSON string writer.
 *
 * No allocation: tokens go into an array the caller provides, strings are
 * decoded into buffers the caller provides.  Safe for nginx workers.  A
 * token is offsets into the text, so a number's exact text ("12.50") is
 * at hand.
 */

#ifndef CUTOVER_JSON_H
#define CUTOVER_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CUTOVER_JSON_MAX_DEPTH    64      /* cutover_json_parse() */
#define CUTOVER_JSON_DEPTH_LIMIT  256     /* the most opts->max_depth */

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

/* What a caller may change in the rules (cutover_json_parse_opts()). */
typedef struct {
    unsigned  max_depth;          /* in: 1..CUTOVER_JSON_DEPTH_LIMIT (more
                                     is that limit; 0 is the default) */
    unsigned  strict_surrogates;  /* in: refuse \u escapes of a lone or
                                     badly paired UTF-16 surrogate (else
                                     they read as U+FFFD) */
    unsigned  too_deep;           /* out: refused for max_depth */
} cutover_json_opts_t;

/* cutover_json_parse() with opts (NULL: the defaults of that function). */
int cutover_json_parse_opts(const char *json, size_t len,
    cutover_json_tok_t *toks, size_t ntoks, cutover_json_opts_t *opts,
    char *err, size_t errlen);

/* Index of the value of member `name` in the object at `obj`, or -1. */
int cutover_json_get(const char *json, const cutover_json_tok_t *toks,
    int obj, const char *name);

/* Index of the token that follows the subtree of toks[i]. */
#define cutover_json_next(toks, i)  ((i) + (int) (toks)[i].skip)

/* Decodes a string token into buf (NUL-terminated, UTF-8); returns its
 * length, or -1 when it does not fit or holds a NUL character. */
int cutover_json_string(const char *json, const cutover_json_tok_t *tok,
    char *buf, size_t cap);

/* Decodes a string token into buf, NUL characters (\u0000) included;
 * returns its length (buf is also NUL-terminated), or -1 when it does not
 * fit.  tok->end - tok->start + 1 bytes are always enough. */
int cutover_json_decode(const char *json, const cutover_json_tok_t *tok,
    char *buf, size_t cap);

/* Whether the (undecoded) string token equals s exactly. */
int cutover_json_eq(const char *json, const cutover_json_tok_t *tok,
    const char *s);

/*
 * The one JSON string writer.  Bytes that need no escape go to the sink in
 * runs, escapes one at a time.  Always escaped: '"', '\\' and bytes below
 * 0x20 (as \u00XX).  The flags keep each output as it has always been:
 */
#define CUTOVER_JSON_ESC_SHORT   0x01   /* \n \r \t as such, not \u00XX */
#define CUTOVER_JSON_ESC_DEL     0x02   /* 0x7f as \u007f */
#define CUTOVER_JSON_ESC_FFFD    0x04   /* a byte that starts no valid
                                           UTF-8 sequence as \ufffd */
#define CUTOVER_JSON_ESC_LATIN1  0x08   /* ... as \u00XX (Latin-1) */
                                        /* neither: bytes >= 0x80 as is */

/* A sink takes n bytes; non-zero stops the writer, which returns it. */
typedef int (*cutover_json_sink_pt)(void *data, const char *p, size_t n);

/* Writes the body of a JSON string (no quotes) for s[0..len). */
int cutover_json_write(const char *s, size_t len, unsigned flags,
    cutover_json_sink_pt sink, void *data);

/* Writes s to buf as a JSON string body (no quotes, NUL-terminated);
 * returns the bytes written or -1 when it does not fit.  Control bytes and
 * DEL as \u00XX, invalid UTF-8 as U+FFFD. */
int cutover_json_escape(const char *s, size_t len, char *buf, size_t cap);

/* Prints s to out as a JSON string, quotes included (for programs). */
int cutover_json_fprint(FILE *out, const char *s);

#endif /* CUTOVER_JSON_H */
