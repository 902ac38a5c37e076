/*
 * cutover_json: the strict RFC 8259 tokenizer (see cutover_json.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_json.h"


typedef struct {
    const char          *json;
    size_t               len;
    size_t               pos;
    cutover_json_tok_t  *toks;
    size_t               ntoks;
    size_t               count;
    cutover_json_tok_t   sink;     /* written instead when toks is NULL */
    char                *err;
    size_t               errlen;
    unsigned             strict_surrogates;
} cutover_json_parser_t;


/* the token i, or the sink when only validating */
#define cutover_json_tok(p, i)  ((p)->toks ? &(p)->toks[i] : &(p)->sink)

static int cutover_json_fail(cutover_json_parser_t *p, const char *what);
static void cutover_json_ws(cutover_json_parser_t *p);
static int cutover_json_alloc(cutover_json_parser_t *p,
    cutover_json_type_e type);
static int cutover_json_string_scan(cutover_json_parser_t *p);
static int cutover_json_number_scan(cutover_json_parser_t *p);
static int cutover_json_literal(cutover_json_parser_t *p, const char *word,
    cutover_json_type_e type);
static int cutover_json_utf8_len(const unsigned char *s, size_t avail);
static int cutover_json_hex4(const char *s, unsigned *v);
static int cutover_json_pair(cutover_json_parser_t *p, unsigned hi);


static int
cutover_json_fail(cutover_json_parser_t *p, const char *what)
{
    if (p->errlen) {
        snprintf(p->err, p->errlen, "%s at byte %zu", what, p->pos);
    }

    return -1;
}


static void
cutover_json_ws(cutover_json_parser_t *p)
{
    while (p->pos < p->len) {
        char c = p->json[p->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return;
        }

        p->pos++;
    }
}


static int
cutover_json_alloc(cutover_json_parser_t *p, cutover_json_type_e type)
{
    cutover_json_tok_t  *t;

    if (p->count >= p->ntoks) {
        return cutover_json_fail(p, "too many values");
    }

    t = cutover_json_tok(p, p->count);
    t->type = type;
    t->start = (uint32_t) p->pos;
    t->end = (uint32_t) p->pos;
    t->size = 0;
    t->skip = 1;

    return (int) p->count++;
}


/* Length of the valid UTF-8 sequence at s, or 0 when it is not valid. */
static int
cutover_json_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned  c = s[0], n, min, cp, i;

    if (c < 0x80) {
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2; min = 0x80; cp = c & 0x1f;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3; min = 0x800; cp = c & 0x0f;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4; min = 0x10000; cp = c & 0x07;

    } else {
        return 0;
    }

    if (avail < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (s[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return (int) n;
}


static int
cutover_json_hex4(const char *s, unsigned *v)
{
    int       i;
    unsigned  r = 0;

    for (i = 0; i < 4; i++) {
        char c = s[i];

        r <<= 4;

        if (c >= '0' && c <= '9') {
            r |= (unsigned) (c - '0');

        } else if (c >= 'a' && c <= 'f') {
            r |= (unsigned) (c - 'a' + 10);

        } else if (c >= 'A' && c <= 'F') {
            r |= (unsigned) (c - 'A' + 10);

        } else {
            return -1;
        }
    }

    *v = r;
    return 0;
}


/* A \u escape of a surrogate at p->pos (value hi) must be a high one
 * followed by a \u escape of a low one; on success p->pos moves to the
 * second escape. */
static int
cutover_json_pair(cutover_json_parser_t *p, unsigned hi)
{
    unsigned  lo;

    if (hi >= 0xdc00) {
        return cutover_json_fail(p, "lone low surrogate");
    }

    if (p->pos + 12 > p->len || p->json[p->pos + 6] != '\\'
        || p->json[p->pos + 7] != 'u')
    {
        return cutover_json_fail(p, "lone high surrogate");
    }

    if (cutover_json_hex4(p->json + p->pos + 8, &lo) != 0
        || lo < 0xdc00 || lo > 0xdfff)
    {
        return cutover_json_fail(p, "bad surrogate pair");
    }

    p->pos += 6;
    return 0;
}


static int
cutover_json_string_scan(cutover_json_parser_t *p)
{
    int       t, n;
    unsigned  u;

    p->pos++;                               /* the opening quote */

    t = cutover_json_alloc(p, CUTOVER_JSON_STRING);
    if (t < 0) {
        return -1;
    }

    while (p->pos < p->len) {
        unsigned char c = (unsigned char) p->json[p->pos];

        if (c == '"') {
            cutover_json_tok(p, t)->end = (uint32_t) p->pos;
            p->pos++;
            return t;
        }

        if (c < 0x20) {
            return cutover_json_fail(p, "control character in string");
        }

        if (c == '\\') {
            if (p->pos + 1 >= p->len) {
                break;
            }

            c = (unsigned char) p->json[p->pos + 1];

            if (c == 'u') {
                if (p->pos + 6 > p->len
                    || cutover_json_hex4(p->json + p->pos + 2, &u) != 0)
                {
                    return cutover_json_fail(p, "bad \\u escape");
                }

                if (p->strict_surrogates && u >= 0xd800 && u <= 0xdfff
                    && cutover_json_pair(p, u) != 0)
                {
                    return -1;
                }

                p->pos += 6;
                continue;
            }

            if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
                return cutover_json_fail(p, "bad escape");
            }

            p->pos += 2;
            continue;
        }

        n = cutover_json_utf8_len((const unsigned char *) p->json + p->pos,
                                  p->len - p->pos);
        if (n == 0) {
            return cutover_json_fail(p, "invalid UTF-8 in string");
        }

        p->pos += (size_t) n;
    }

    return cutover_json_fail(p, "unterminated string");
}


static int
cutover_json_number_scan(cutover_json_parser_t *p)
{
    int          t;
    size_t       digits;
    const char  *s = p->json;

    t = cutover_json_alloc(p, CUTOVER_JSON_NUMBER);
    if (t < 0) {
        return -1;
    }

    if (s[p->pos] == '-') {
        p->pos++;
    }

    if (p->pos < p->len && s[p->pos] == '0') {
        p->pos++;

    } else {
        for (digits = 0; p->pos < p->len && s[p->pos] >= '0'
                         && s[p->pos] <= '9'; digits++)
        {
            p->pos++;
        }

        if (digits == 0) {
            return cutover_json_fail(p, "bad number");
        }
    }

    if (p->pos < p->len && s[p->pos] == '.') {
        p->pos++;

        for (digits = 0; p->pos < p->len && s[p->pos] >= '0'
                         && s[p->pos] <= '9'; digits++)
        {
            p->pos++;
        }

        if (digits == 0) {
            return cutover_json_fail(p, "bad fraction");
        }
    }

    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        p->pos++;

        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-')) {
            p->pos++;
        }

        for (digits = 0; p->pos < p->len && s[p->pos] >= '0'
                         && s[p->pos] <= '9'; digits++)
        {
            p->pos++;
        }

        if (digits == 0) {
            return cutover_json_fail(p, "bad exponent");
        }
    }

    cutover_json_tok(p, t)->end = (uint32_t) p->pos;
    return t;
}


static int
cutover_json_literal(cutover_json_parser_t *p, const char *word,
    cutover_json_type_e type)
{
    int     t;
    size_t  n = strlen(word);

    if (p->len - p->pos < n || memcmp(p->json + p->pos, word, n) != 0) {
        return cutover_json_fail(p, "unexpected character");
    }

    t = cutover_json_alloc(p, type);
    if (t < 0) {
        return -1;
    }

    p->pos += n;
    cutover_json_tok(p, t)->end = (uint32_t) p->pos;
    return t;
}


int
cutover_json_parse(const char *json, size_t len, cutover_json_tok_t *toks,
    size_t ntoks, char *err, size_t errlen)
{
    return cutover_json_parse_opts(json, len, toks, ntoks, NULL, err, errlen);
}


/*
 * One loop over values rather than recursion, so that the depth costs a
 * fixed stack; kept whole (past 80 lines) because its states (member name,
 * value, after a value) read best side by side.
 */
int
cutover_json_parse_opts(const char *json, size_t len,
    cutover_json_tok_t *toks, size_t ntoks, cutover_json_opts_t *opts,
    char *err, size_t errlen)
{
    int                    stack[CUTOVER_JSON_DEPTH_LIMIT], depth, t, top;
    char                   c, is_object[CUTOVER_JSON_DEPTH_LIMIT];
    int                    max_depth;
    cutover_json_parser_t  p;

    p.json = json;
    p.len = len;
    p.pos = 0;
    p.toks = toks;
    p.ntoks = toks ? ntoks : (size_t) -1;
    p.count = 0;
    p.err = err;
    p.errlen = errlen;
    p.strict_surrogates = opts ? opts->strict_surrogates : 0;
    max_depth = CUTOVER_JSON_MAX_DEPTH;

    if (opts) {
        opts->too_deep = 0;

        if (opts->max_depth > CUTOVER_JSON_DEPTH_LIMIT) {
            max_depth = CUTOVER_JSON_DEPTH_LIMIT;

        } else if (opts->max_depth > 0) {
            max_depth = (int) opts->max_depth;
        }
    }

    if (len > UINT32_MAX) {
        return cutover_json_fail(&p, "document too large");
    }

    depth = 0;

    /*
     * One loop over values: after a value, either close containers or
     * expect a separator.  "top" is the innermost open container.
     */
    for ( ;; ) {
        top = depth ? stack[depth - 1] : -1;

        cutover_json_ws(&p);

        if (p.pos >= len) {
            return cutover_json_fail(&p, "unexpected end of input");
        }

        c = json[p.pos];

        /* an object member starts with its key */
        if (top >= 0 && is_object[depth - 1]) {
            if (c != '"') {
                return cutover_json_fail(&p, "expected a member name");
            }

            if (cutover_json_string_scan(&p) < 0) {
                return -1;
            }

            cutover_json_ws(&p);

            if (p.pos >= len || json[p.pos] != ':') {
                return cutover_json_fail(&p, "expected ':'");
            }

            p.pos++;
            cutover_json_ws(&p);

            if (p.pos >= len) {
                return cutover_json_fail(&p, "unexpected end of input");
            }

            c = json[p.pos];
        }

        if (c == '{' || c == '[') {
            if (depth == max_depth) {
                if (opts) {
                    opts->too_deep = 1;
                }

                return cutover_json_fail(&p, "nesting too deep");
            }

            t = cutover_json_alloc(&p, c == '{' ? CUTOVER_JSON_OBJECT
                                                : CUTOVER_JSON_ARRAY);
            if (t < 0) {
                return -1;
            }

            if (top >= 0) {
                cutover_json_tok(&p, top)->size++;
            }

            p.pos++;
            is_object[depth] = c == '{';
            stack[depth++] = t;
            cutover_json_ws(&p);

            if (p.pos < len && json[p.pos] == (c == '{' ? '}' : ']')) {
                p.pos++;
                cutover_json_tok(&p, t)->end = (uint32_t) p.pos;
                depth--;
                goto value_done;
            }

            continue;
        }

        if (c == '"') {
            t = cutover_json_string_scan(&p);

        } else if (c == '-' || (c >= '0' && c <= '9')) {
            t = cutover_json_number_scan(&p);

        } else if (c == 't') {
            t = cutover_json_literal(&p, "true", CUTOVER_JSON_TRUE);

        } else if (c == 'f') {
            t = cutover_json_literal(&p, "false", CUTOVER_JSON_FALSE);

        } else if (c == 'n') {
            t = cutover_json_literal(&p, "null", CUTOVER_JSON_NULL);

        } else {
            return cutover_json_fail(&p, "unexpected character");
        }

        if (t < 0) {
            return -1;
        }

        if (top >= 0) {
            cutover_json_tok(&p, top)->size++;
        }

    value_done:

        /* after a value: close finished containers or take a comma */
        for ( ;; ) {
            cutover_json_ws(&p);

            if (depth == 0) {
                if (p.pos != len) {
                    return cutover_json_fail(&p, "trailing characters");
                }

                return (int) p.count;
            }

            top = stack[depth - 1];

            if (p.pos >= len) {
                return cutover_json_fail(&p, "unexpected end of input");
            }

            c = json[p.pos];

            if (c == ',') {
                p.pos++;
                break;
            }

            if (c == (is_object[depth - 1] ? '}' : ']')) {
                p.pos++;
                cutover_json_tok(&p, top)->end = (uint32_t) p.pos;
                cutover_json_tok(&p, top)->skip =
                                    (uint32_t) (p.count - (size_t) top);
                depth--;
                continue;
            }

            return cutover_json_fail(&p, "expected ',' or a closing bracket");
        }
    }
}


int
cutover_json_get(const char *json, const cutover_json_tok_t *toks, int obj,
    const char *name)
{
    int       i;
    uint32_t  n;

    if (toks[obj].type != CUTOVER_JSON_OBJECT) {
        return -1;
    }

    i = obj + 1;

    for (n = 0; n < toks[obj].size; n++) {
        if (cutover_json_eq(json, &toks[i], name)) {
            return i + 1;
        }

        i = cutover_json_next(toks, i + 1);
    }

    return -1;
}


int
cutover_json_eq(const char *json, const cutover_json_tok_t *tok,
    const char *s)
{
    size_t  n = strlen(s);

    return tok->type == CUTOVER_JSON_STRING
           && tok->end - tok->start == n
           && memcmp(json + tok->start, s, n) == 0;
}


static size_t
cutover_json_put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }

    if (cp < 0x800) {
        out[0] = (char) (0xc0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        out[0] = (char) (0xe0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }

    out[0] = (char) (0xf0 | (cp >> 18));
    out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}


int
cutover_json_string(const char *json, const cutover_json_tok_t *tok,
    char *buf, size_t cap)
{
    int  n;

    n = cutover_json_decode(json, tok, buf, cap);

    if (n < 0 || memchr(buf, '\0', (size_t) n) != NULL) {
        return -1;
    }

    return n;
}


int
cutover_json_decode(const char *json, const cutover_json_tok_t *tok,
    char *buf, size_t cap)
{
    char        *o = buf, u8[4];
    size_t       n;
    unsigned     cp, lo;
    const char  *s, *end;

    if (tok->type != CUTOVER_JSON_STRING || cap == 0) {
        return -1;
    }

    s = json + tok->start;
    end = json + tok->end;

    while (s < end) {
        if (*s != '\\') {
            if ((size_t) (o - buf) + 1 >= cap) {
                return -1;
            }

            *o++ = *s++;
            continue;
        }

        s++;

        switch (*s) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            (void) cutover_json_hex4(s + 1, &cp);
            s += 4;

            /* a surrogate pair makes one code point; a lone one is U+FFFD */
            if (cp >= 0xd800 && cp <= 0xdbff && end - s >= 7
                && s[1] == '\\' && s[2] == 'u'
                && cutover_json_hex4(s + 3, &lo) == 0
                && lo >= 0xdc00 && lo <= 0xdfff)
            {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s += 6;

            } else if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd;
            }

            break;
        default:  cp = (unsigned char) *s; break;
        }

        s++;

        n = cutover_json_put_utf8(u8, cp);

        if ((size_t) (o - buf) + n >= cap) {
            return -1;
        }

        memcpy(o, u8, n);
        o += n;
    }

    *o = '\0';
    return (int) (o - buf);
}


int
cutover_json_write(const char *s, size_t len, unsigned flags,
    cutover_json_sink_pt sink, void *data)
{
    int                   rc, n;
    char                  esc[8];
    size_t                i, run;
    const unsigned char  *u = (const unsigned char *) s;

    for (i = 0, run = 0; i < len; i++) {
        unsigned char c = u[i];

        if (c >= 0x20 && c != '"' && c != '\\'
            && !(c == 0x7f && (flags & CUTOVER_JSON_ESC_DEL)))
        {
            if (c < 0x80
                || !(flags & (CUTOVER_JSON_ESC_FFFD|CUTOVER_JSON_ESC_LATIN1)))
            {
                continue;
            }

            n = cutover_json_utf8_len(u + i, len - i);
            if (n > 0) {
                i += (size_t) n - 1;
                continue;
            }
        }

        if (i > run && (rc = sink(data, s + run, i - run)) != 0) {
            return rc;
        }

        run = i + 1;

        if (c == '"' || c == '\\') {
            esc[0] = '\\'; esc[1] = (char) c; n = 2;

        } else if ((flags & CUTOVER_JSON_ESC_SHORT)
                   && (c == '\n' || c == '\r' || c == '\t'))
        {
            esc[0] = '\\'; esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            n = 2;

        } else if (c >= 0x80 && (flags & CUTOVER_JSON_ESC_FFFD)) {
            memcpy(esc, "\\ufffd", 6); n = 6;

        } else {
            n = snprintf(esc, sizeof(esc), "\\u%04x", c);
        }

        if ((rc = sink(data, esc, (size_t) n)) != 0) {
            return rc;
        }
    }

    return i > run ? sink(data, s + run, i - run) : 0;
}


typedef struct {
    char    *buf;
    size_t   len;
    size_t   cap;
} cutover_json_mem_t;


static int
cutover_json_mem_sink(void *data, const char *p, size_t n)
{
    cutover_json_mem_t  *m = data;

    if (m->len + n >= m->cap) {
        return -1;
    }

    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return 0;
}


int
cutover_json_escape(const char *s, size_t len, char *buf, size_t cap)
{
    cutover_json_mem_t  m;

    m.buf = buf;
    m.len = 0;
    m.cap = cap;

    if (cutover_json_write(s, len, CUTOVER_JSON_ESC_DEL|CUTOVER_JSON_ESC_FFFD,
                           cutover_json_mem_sink, &m) != 0)
    {
        return -1;
    }

    if (cap > 0) {
        buf[m.len] = '\0';
    }

    return (int) m.len;
}


int
cutover_json_fprint(FILE *out, const char *s)
{
    int     n;
    char    small[512], *buf = small;
    size_t  len = strlen(s), cap = 6 * len + 1;

    if (cap > sizeof(small)) {
        buf = malloc(cap);
        if (buf == NULL) {
            return -1;
        }
    }

    n = cutover_json_escape(s, len, buf, cap);
    if (n >= 0) {
        n = fprintf(out, "\"%s\"", buf);
    }

    if (buf != small) {
        free(buf);
    }

    return n < 0 ? -1 : 0;
}
