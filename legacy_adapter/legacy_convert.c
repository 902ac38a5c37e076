/* legacy: fen and yuan, legacy local time and RFC 3339. */

#include <stdio.h>
#include <string.h>

#include "legacy_adapter/legacy_convert.h"


static int legacy_days_in_month(int year, int month);
static int legacy_digits(const char *s, int n, int *value);
static int legacy_check_fields(int y, int mo, int d, int h, int mi, int s,
    legacy_error_t *err);


int
legacy_yuan_to_fen(const char *s, int allow_negative, int64_t *fen,
    legacy_error_t *err)
{
    const char  *p = s;
    int64_t      whole = 0, cents = 0;
    int          negative = 0, ndec = 0, nint = 0;

    if (s == NULL || *s == '\0') {
        return legacy_error_set(err, LEGACY_E_INVALID, "empty amount");
    }

    if (*p == '-') {
        if (!allow_negative) {
            return legacy_error_set(err, LEGACY_E_INVALID,
                                    "negative amount \"%.32s\"", s);
        }
        negative = 1;
        p++;
    }

    if (p[0] == '0' && p[1] >= '0' && p[1] <= '9') {
        goto bad;
    }

    for ( /* void */ ; *p >= '0' && *p <= '9'; p++, nint++) {
        whole = whole * 10 + (*p - '0');
        if (whole * 100 > LEGACY_FEN_MAX) {
            return legacy_error_set(err, LEGACY_E_INVALID,
                                    "amount \"%.32s\" too large", s);
        }
    }
    if (nint == 0) {
        goto bad;
    }

    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, ndec++) {
            if (ndec == 2) {
                return legacy_error_set(err, LEGACY_E_INVALID,
                                        "amount \"%.32s\" has more than two"
                                        " decimals", s);
            }
            cents = cents * 10 + (*p - '0');
        }
        if (ndec == 0) {
            goto bad;
        }
        if (ndec == 1) {
            cents *= 10;
        }
    }
    if (*p != '\0') {
        goto bad;
    }

    if (negative && whole == 0 && cents == 0) {
        goto bad;
    }

    *fen = whole * 100 + cents;
    if (*fen > LEGACY_FEN_MAX) {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "amount \"%.32s\" too large", s);
    }
    if (negative) {
        *fen = -*fen;
    }
    return LEGACY_OK;

bad:
    return legacy_error_set(err, LEGACY_E_INVALID,
                            "amount \"%.32s\" is not a decimal in yuan", s);
}


void
legacy_fen_to_yuan(int64_t fen, char *buf)
{
    uint64_t  abs;

    abs = fen < 0 ? (uint64_t) 0 - (uint64_t) fen : (uint64_t) fen;
    snprintf(buf, LEGACY_YUAN_LEN, "%s%llu.%02llu", fen < 0 ? "-" : "",
             (unsigned long long) (abs / 100),
             (unsigned long long) (abs % 100));
}


static int
legacy_days_in_month(int year, int month)
{
    static const int  days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                 30, 31 };

    if (month == 2
        && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
    {
        return 29;
    }
    return days[month - 1];
}


static int
legacy_digits(const char *s, int n, int *value)
{
    int  i;

    *value = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return LEGACY_ERROR;
        }
        *value = *value * 10 + (s[i] - '0');
    }
    return LEGACY_OK;
}


static int
legacy_check_fields(int y, int mo, int d, int h, int mi, int s,
    legacy_error_t *err)
{
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1
        || d > legacy_days_in_month(y, mo) || h > 23 || mi > 59 || s > 59)
    {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "time out of range");
    }
    return LEGACY_OK;
}


int
legacy_time_parse(const char *legacy, int offset_min, time_t *t,
    legacy_error_t *err)
{
    int        y, mo, d, h, mi, s;
    struct tm  tm;

    if (legacy == NULL || strlen(legacy) != 14
        || legacy_digits(legacy, 4, &y) != LEGACY_OK
        || legacy_digits(legacy + 4, 2, &mo) != LEGACY_OK
        || legacy_digits(legacy + 6, 2, &d) != LEGACY_OK
        || legacy_digits(legacy + 8, 2, &h) != LEGACY_OK
        || legacy_digits(legacy + 10, 2, &mi) != LEGACY_OK
        || legacy_digits(legacy + 12, 2, &s) != LEGACY_OK)
    {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "time \"%.32s\" is not YYYYMMDDHHMMSS",
                                legacy ? legacy : "");
    }
    if (legacy_check_fields(y, mo, d, h, mi, s, err) != LEGACY_OK) {
        return legacy_error_set(err, LEGACY_E_INVALID,
                                "time \"%.32s\" out of range", legacy);
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    *t = timegm(&tm) - (time_t) offset_min * 60;

    return LEGACY_OK;
}


int
legacy_time_to_rfc3339(const char *legacy, int offset_min, char *buf,
    legacy_error_t *err)
{
    time_t     t;
    struct tm  tm;

    if (legacy_time_parse(legacy, offset_min, &t, err) != LEGACY_OK) {
        return LEGACY_ERROR;
    }
    gmtime_r(&t, &tm);
    strftime(buf, LEGACY_RFC3339_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);

    return LEGACY_OK;
}


void
legacy_time_from_unix(time_t t, int offset_min, char *buf)
{
    struct tm  tm;

    t += (time_t) offset_min * 60;
    gmtime_r(&t, &tm);
    strftime(buf, LEGACY_TIME_LEN, "%Y%m%d%H%M%S", &tm);
}


int
legacy_time_from_rfc3339(const char *rfc, int offset_min, char *buf,
    legacy_error_t *err)
{
    int          y, mo, d, h, mi, s, oh, om, sign;
    const char  *p;
    struct tm    tm;
    time_t       t;

    if (rfc == NULL || strlen(rfc) < 20
        || legacy_digits(rfc, 4, &y) != LEGACY_OK || rfc[4] != '-'
        || legacy_digits(rfc + 5, 2, &mo) != LEGACY_OK || rfc[7] != '-'
        || legacy_digits(rfc + 8, 2, &d) != LEGACY_OK
        || (rfc[10] != 'T' && rfc[10] != 't')
        || legacy_digits(rfc + 11, 2, &h) != LEGACY_OK || rfc[13] != ':'
        || legacy_digits(rfc + 14, 2, &mi) != LEGACY_OK || rfc[16] != ':'
        || legacy_digits(rfc + 17, 2, &s) != LEGACY_OK)
    {
        goto bad;
    }

    p = rfc + 19;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) { /* void */ }
        if (p == rfc + 20) {
            goto bad;
        }
    }

    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        oh = 0;
        om = 0;
        sign = 1;

    } else if ((*p == '+' || *p == '-') && strlen(p) == 6
               && legacy_digits(p + 1, 2, &oh) == LEGACY_OK && p[3] == ':'
               && legacy_digits(p + 4, 2, &om) == LEGACY_OK
               && oh < 24 && om < 60)
    {
        sign = *p == '-' ? -1 : 1;

    } else {
        goto bad;
    }

    if (legacy_check_fields(y, mo, d, h, mi, s, err) != LEGACY_OK) {
        goto bad;
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    t = timegm(&tm) - sign * (oh * 3600 + om * 60);
    legacy_time_from_unix(t, offset_min, buf);

    return LEGACY_OK;

bad:
    return legacy_error_set(err, LEGACY_E_INVALID,
                            "time \"%.40s\" is not RFC 3339", rfc ? rfc : "");
}
