/* Exact money in fen (int64), the points rule and the member tier rule. */

#ifndef NEWCORE_MONEY_H
#define NEWCORE_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* Largest amount we accept anywhere: 99 999 999 999.99 yuan. */
#define NEWCORE_MONEY_MAX_FEN  INT64_C(9999999999999)

/* Room for "-99999999999.99" and more, NUL included. */
#define NEWCORE_MONEY_STRLEN   32

/*
 * Parses a decimal yuan string strictly: digits, optionally "." and one or
 * two digits ("12", "12.5", "12.50"); no sign, no exponent, no spaces, at
 * most 11 integer digits.  Returns NEWCORE_OK and the amount in fen, or
 * NEWCORE_ERROR.
 */
int newcore_money_parse(const char *s, size_t len, int64_t *fen);

/* Writes fen as yuan with two places ("258.00", "-0.05"); returns buf. */
char *newcore_money_format(int64_t fen, char *buf, size_t size);

/*
 * Points earned by an order total: one point per yuan, rounded half up
 * (12.49 -> 12, 12.50 -> 13).  Totals below zero earn nothing.
 */
int64_t newcore_points_earned(int64_t total_fen);

/* "gold" from 3000 points, "silver" from 1000, else "standard". */
const char *newcore_member_tier(int64_t points);

/* a * b, or NEWCORE_ERROR when the result leaves [0, NEWCORE_MONEY_MAX_FEN]. */
int newcore_money_mul(int64_t a, int64_t b, int64_t *out);

/* a + b under the same bound. */
int newcore_money_add(int64_t a, int64_t b, int64_t *out);

#endif /* NEWCORE_MONEY_H */
