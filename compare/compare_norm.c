/*
 * compare_norm: normalising strings before they are compared.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cutover_hash.h"
#include "compare/compare_norm.h"
#include "compare/compare_rules.h"


static int compare_num(const char **p, const char *end, int ndig, int *v);
static int compare_time_epoch(const char *p, const char *end, int64_t *us);
static int compare_time_fields(const char **pp, const char *end, struct tm *tm,
    int64_t *frac);
static int compare_time_zone(const char *p, const char *end, long *offset);


static int
compare_num(const char **p, const char *end, int ndig, int *v)
{
    int  i;

    *v = 0;
    for (i = 0; i < ndig; i++) {
        if (*p >= end || !isdigit((unsigned char) **p)) {
            return -1;
        }
        *v = *v * 10 + (**p - '0');
        (*p)++;
    }
    return 0;
}


/* Unix seconds (10 digits) or milliseconds (13 digits). */
static int
compare_time_epoch(const char *p, const char *end, int64_t *us)
{
    int64_t  v = 0;
    size_t   n = (size_t) (end - p), i;

    if (n != 10 && n != 13) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char) p[i])) {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    *us = n == 10 ? v * 1000000 : v * 1000;
    return 0;
}


/* "YYYY-MM-DD" or "YYYY/MM/DD", then optionally [T ]HH:MM[:SS[.frac]]. */
static int
compare_time_fields(const char **pp, const char *end, struct tm *tm,
    int64_t *frac)
{
    const char  *p = *pp;
    int          y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t      scale = 1000000;

    *frac = 0;
    if (compare_num(&p, end, 4, &y) != 0 || p >= end
        || (*p != '-' && *p != '/')
        || (p++, compare_num(&p, end, 2, &mo)) != 0 || p >= end
        || (*p != '-' && *p != '/')
        || (p++, compare_num(&p, end, 2, &d)) != 0)
    {
        return -1;
    }
    if (p < end && (*p == 'T' || *p == 't' || *p == ' ')
        && end - p > 1 && isdigit((unsigned char) p[1]))
    {
        p++;
        if (compare_num(&p, end, 2, &h) != 0 || p >= end || *p != ':'
            || (p++, compare_num(&p, end, 2, &mi)) != 0)
        {
            return -1;
        }
        if (p < end && *p == ':') {
            p++;
            if (compare_num(&p, end, 2, &sec) != 0) {
                return -1;
            }
            if (p < end && (*p == '.' || *p == ',')) {
                p++;
                if (p >= end || !isdigit((unsigned char) *p)) {
                    return -1;
                }
                for (; p < end && isdigit((unsigned char) *p); p++) {
                    if (scale > 1) {
                        scale /= 10;
                        *frac += (*p - '0') * scale;
                    }
                }
            }
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59
        || sec > 60)
    {
        return -1;
    }
    memset(tm, 0, sizeof(*tm));
    tm->tm_year = y - 1900;
    tm->tm_mon = mo - 1;
    tm->tm_mday = d;
    tm->tm_hour = h;
    tm->tm_min = mi;
    tm->tm_sec = sec;
    *pp = p;
    return 0;
}


/* "Z", " UTC", "+08:00", "+0800" or nothing (UTC): offset in seconds. */
static int
compare_time_zone(const char *p, const char *end, long *offset)
{
    int  oh = 0, om = 0, sign = 1;

    if (p < end && *p == ' ') {
        p++;
    }
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (end - p == 3 && strncasecmp(p, "UTC", 3) == 0) {
        p += 3;
    } else if (p < end && (*p == '+' || *p == '-')) {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (compare_num(&p, end, 2, &oh) != 0) {
            return -1;
        }
        if (p < end && *p == ':') {
            p++;
        }
        if (compare_num(&p, end, 2, &om) != 0 || oh > 23 || om > 59) {
            return -1;
        }
    }
    *offset = sign * (oh * 3600L + om * 60L);
    return p == end ? 0 : -1;
}


int
compare_time_parse(const char *s, size_t len, int64_t *us)
{
    const char  *p = s, *end = s + len;
    struct tm    tm;
    int64_t      frac;
    long         offset;

    while (p < end && isspace((unsigned char) *p)) {
        p++;
    }
    while (end > p && isspace((unsigned char) end[-1])) {
        end--;
    }
    if (compare_time_epoch(p, end, us) == 0) {
        return 0;
    }
    if (compare_time_fields(&p, end, &tm, &frac) != 0
        || compare_time_zone(p, end, &offset) != 0)
    {
        return -1;
    }
    *us = ((int64_t) timegm(&tm) - offset) * 1000000 + frac;
    return 0;
}


void
compare_time_format(int64_t us, char *buf, size_t size)
{
    time_t     t;
    struct tm  tm;
    int64_t    frac = us % 1000000;
    char       tmp[32];

    t = (time_t) (us / 1000000);
    if (frac < 0) {
        frac += 1000000;
        t--;
    }
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year > 9999 - 1900
        || tm.tm_year < -1900)
    {
        snprintf(buf, size, "%lld us", (long long) us);  /* years past 9999 */
        return;
    }
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%06lldZ", tmp, (long long) frac);
}


char *
compare_norm_string(const char *s, size_t len, unsigned flags,
    size_t *outlen)
{
    char     *out;
    size_t    i, o = 0;
    int       space = 0;
    int64_t   us;

    if ((flags & COMPARE_NORM_TIME) && compare_time_parse(s, len, &us) == 0) {
        out = malloc(40);
        if (out != NULL) {
            compare_time_format(us, out, 40);
            *outlen = strlen(out);
        }
        return out;
    }
    out = malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];

        if (flags & COMPARE_NORM_SPACE) {
            if (isspace((unsigned char) c)) {
                space = o > 0;
                continue;
            }
            if (space) {
                out[o++] = ' ';
                space = 0;
            }
        }
        if (flags & COMPARE_NORM_CASE) {
            c = (char) tolower((unsigned char) c);
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}


void
compare_mask(const unsigned char *key, size_t keylen, const void *data,
    size_t len, char out[COMPARE_MASK_TEXT_LEN])
{
    memcpy(out, "hmac:", 5);
    cutover_hmac_sha256_hex(key, keylen, data, len, out + 5);
}
