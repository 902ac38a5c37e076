/* Exact money in fen (int64), the points rule and the member tier rule. */

#include <stdio.h>

#include "new_core/newcore_buf.h"
#include "new_core/newcore_money.h"


int
newcore_money_parse(const char *s, size_t len, int64_t *fen)
{
    size_t   i, int_digits, frac_digits;
    int64_t  yuan, cents;

    if (s == NULL || len == 0) {
        return NEWCORE_ERROR;
    }

    yuan = 0;
    int_digits = 0;

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (++int_digits > 11) {
            return NEWCORE_ERROR;
        }
        yuan = yuan * 10 + (s[i] - '0');
    }

    if (int_digits == 0) {
        return NEWCORE_ERROR;
    }

    cents = 0;
    frac_digits = 0;

    if (i < len) {
        if (s[i] != '.') {
            return NEWCORE_ERROR;
        }

        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (++frac_digits > 2) {
                return NEWCORE_ERROR;
            }
            cents = cents * 10 + (s[i] - '0');
        }

        if (frac_digits == 0 || i != len) {
            return NEWCORE_ERROR;
        }

        if (frac_digits == 1) {
            cents *= 10;
        }
    }

    *fen = yuan * 100 + cents;
    return NEWCORE_OK;
}


char *
newcore_money_format(int64_t fen, char *buf, size_t size)
{
    uint64_t  abs;

    abs = fen < 0 ? (uint64_t) 0 - (uint64_t) fen : (uint64_t) fen;

    snprintf(buf, size, "%s%llu.%02llu", fen < 0 ? "-" : "",
             (unsigned long long) (abs / 100),
             (unsigned long long) (abs % 100));
    return buf;
}


int64_t
newcore_points_earned(int64_t total_fen)
{
    if (total_fen <= 0) {
        return 0;
    }

    return (total_fen + 50) / 100;
}


const char *
newcore_member_tier(int64_t points)
{
    if (points >= 3000) {
        return "gold";
    }

    if (points >= 1000) {
        return "silver";
    }

    return "standard";
}


int
newcore_money_mul(int64_t a, int64_t b, int64_t *out)
{
    int64_t  r;

    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)
        || r > NEWCORE_MONEY_MAX_FEN)
    {
        return NEWCORE_ERROR;
    }

    *out = r;
    return NEWCORE_OK;
}


int
newcore_money_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t  r;

    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)
        || r > NEWCORE_MONEY_MAX_FEN)
    {
        return NEWCORE_ERROR;
    }

    *out = r;
    return NEWCORE_OK;
}
