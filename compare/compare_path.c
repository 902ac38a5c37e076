/*
 * compare_path: rule paths ("$.lines[*].sku"): parsed, matched against
 * a walk's position, formatted back.
 */

#include "compare/compare_rules_parse.h"


static int compare_seg_parse(const char **pp, compare_seg_t *seg);
static int compare_seg_match(const compare_seg_t *pat,
    const compare_seg_t *seg);
static size_t compare_put(char *buf, size_t size, size_t off, const char *s,
    size_t n);
static int compare_plain_name(const char *s, size_t n);


/* --- paths ------------------------------------------------------------- */

/* One segment of a rule path at *pp: .name, .*, ["name"], [n], [*],
 * [field=value].  0, or -1 with *pp where it went wrong. */
static int
compare_seg_parse(const char **pp, compare_seg_t *seg)
{
    const char     *p = *pp, *s, *eq;
    char           *endp;
    unsigned long   v;

    memset(seg, 0, sizeof(*seg));
    if (*p == '.') {
        for (s = ++p; *p && *p != '.' && *p != '['; p++) {
            /* the name */
        }
        if (p == s) {
            return -1;
        }
        seg->type = (p - s == 1 && *s == '*') ? COMPARE_SEG_ANY_FIELD
                                              : COMPARE_SEG_FIELD;
        seg->name = s;
        seg->len = (size_t) (p - s);
    } else if (*p == '[' && p[1] == '"') {
        s = p + 2;               /* ["odd.name"]: no escapes inside */
        p = strchr(s, '"');
        if (p == NULL || p[1] != ']') {
            return -1;
        }
        seg->type = COMPARE_SEG_FIELD;
        seg->name = s;
        seg->len = (size_t) (p - s);
        p += 2;
    } else if (*p == '[') {
        s = ++p;
        p = strchr(s, ']');
        if (p == NULL || p == s) {
            return -1;
        }
        eq = memchr(s, '=', (size_t) (p - s));
        if (p - s == 1 && *s == '*') {
            seg->type = COMPARE_SEG_ANY_INDEX;
        } else if (eq != NULL) {
            if (eq == s) {
                return -1;
            }
            seg->type = COMPARE_SEG_KEY;
            seg->name = s;
            seg->len = (size_t) (eq - s);
            seg->value = eq + 1;
            seg->vlen = (size_t) (p - eq - 1);
        } else {
            errno = 0;
            v = isdigit((unsigned char) *s) ? strtoul(s, &endp, 10) : 0;
            if (!isdigit((unsigned char) *s) || endp != p || errno != 0
                || v > UINT32_MAX)
            {
                return -1;
            }
            seg->type = COMPARE_SEG_INDEX;
            seg->index = (uint32_t) v;
        }
        p++;
    } else {
        return -1;
    }
    *pp = p;
    return 0;
}


int
compare_path_parse(const char *text, compare_path_t *path,
    compare_error_t *err)
{
    const char     *p;
    int             cap = 8;
    size_t          len;
    compare_seg_t  *n;

    memset(path, 0, sizeof(*path));
    if (text[0] != '$') {
        snprintf(err->message, sizeof(err->message),
                 "path \"%.100s\" must start with '$'", text);
        return -1;
    }
    len = strlen(text);
    path->text = malloc(len + 1);
    path->segs = malloc(sizeof(compare_seg_t) * (size_t) cap);
    if (path->text == NULL || path->segs == NULL) {
        compare_path_free(path);
        snprintf(err->message, sizeof(err->message), "out of memory");
        return -1;
    }
    memcpy(path->text, text, len + 1);
    p = path->text + 1;
    while (*p) {
        if (path->nsegs == cap) {
            n = realloc(path->segs, sizeof(compare_seg_t) * (size_t) cap * 2);
            if (n == NULL) {
                break;
            }
            path->segs = n;
            cap *= 2;
        }
        if (compare_seg_parse(&p, &path->segs[path->nsegs]) != 0) {
            break;
        }
        path->nsegs++;
    }
    if (*p == '\0') {
        return 0;
    }
    snprintf(err->message, sizeof(err->message),
             "bad path \"%.100s\" near offset %d", text,
             (int) (p - path->text));
    compare_path_free(path);
    return -1;
}


void
compare_path_free(compare_path_t *path)
{
    free(path->text);
    free(path->segs);
    path->text = NULL;
    path->segs = NULL;
    path->nsegs = 0;
}


static int
compare_seg_match(const compare_seg_t *pat, const compare_seg_t *seg)
{
    switch (pat->type) {
    case COMPARE_SEG_FIELD:
        return seg->type == COMPARE_SEG_FIELD && seg->len == pat->len
               && memcmp(seg->name, pat->name, pat->len) == 0;
    case COMPARE_SEG_ANY_FIELD:
        return seg->type == COMPARE_SEG_FIELD;
    case COMPARE_SEG_INDEX:
        return seg->type == COMPARE_SEG_INDEX && seg->index == pat->index;
    case COMPARE_SEG_ANY_INDEX:
        return seg->type == COMPARE_SEG_INDEX || seg->type == COMPARE_SEG_KEY;
    case COMPARE_SEG_KEY:
        return seg->type == COMPARE_SEG_KEY && seg->len == pat->len
               && seg->vlen == pat->vlen
               && memcmp(seg->name, pat->name, pat->len) == 0
               && memcmp(seg->value, pat->value, pat->vlen) == 0;
    }
    return 0;
}


int
compare_path_match(const compare_path_t *pattern, const compare_seg_t *segs,
    int n)
{
    int  i;

    if (pattern->nsegs != n) {
        return 0;
    }
    for (i = n - 1; i >= 0; i--) {
        if (!compare_seg_match(&pattern->segs[i], &segs[i])) {
            return 0;
        }
    }
    return 1;
}


static size_t
compare_put(char *buf, size_t size, size_t off, const char *s, size_t n)
{
    if (off < size) {
        size_t room = size - off - 1;

        memcpy(buf + off, s, n < room ? n : room);
        buf[off + (n < room ? n : room)] = '\0';
    }
    return off + n;
}


static int
compare_plain_name(const char *s, size_t n)
{
    size_t  i;

    if (n == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!(isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '-'
              || (unsigned char) s[i] >= 0x80))
        {
            return 0;
        }
    }
    return 1;
}


size_t
compare_path_format(const compare_seg_t *segs, int n, char *buf, size_t size)
{
    size_t  off = 0;
    char    num[16];
    int     i;

    if (size > 0) {
        buf[0] = '\0';
    }
    off = compare_put(buf, size, off, "$", 1);
    for (i = 0; i < n; i++) {
        const compare_seg_t *s = &segs[i];

        switch (s->type) {
        case COMPARE_SEG_FIELD:
            if (compare_plain_name(s->name, s->len)) {
                off = compare_put(buf, size, off, ".", 1);
                off = compare_put(buf, size, off, s->name, s->len);
            } else {
                off = compare_put(buf, size, off, "[\"", 2);
                off = compare_put(buf, size, off, s->name, s->len);
                off = compare_put(buf, size, off, "\"]", 2);
            }
            break;
        case COMPARE_SEG_INDEX:
            snprintf(num, sizeof(num), "[%u]", s->index);
            off = compare_put(buf, size, off, num, strlen(num));
            break;
        case COMPARE_SEG_KEY:
            off = compare_put(buf, size, off, "[", 1);
            off = compare_put(buf, size, off, s->name, s->len);
            off = compare_put(buf, size, off, "=", 1);
            off = compare_put(buf, size, off, s->value, s->vlen);
            off = compare_put(buf, size, off, "]", 1);
            break;
        case COMPARE_SEG_ANY_INDEX:
            off = compare_put(buf, size, off, "[*]", 3);
            break;
        case COMPARE_SEG_ANY_FIELD:
            off = compare_put(buf, size, off, ".*", 2);
            break;
        }
    }
    return off;
}
