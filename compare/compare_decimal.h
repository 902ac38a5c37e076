/*
 * compare_decimal: exact decimal numbers for money and quantities
 * ("12.5" equals "12.50"; tolerances without binary rounding).
 */

#ifndef COMPARE_DECIMAL_H
#define COMPARE_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define COMPARE_DECIMAL_DIGITS  128

/* value = (-1)^neg * digits * 10^exp; digits little-endian, no trailing
 * zeros in the coefficient (so equal values have equal representations). */
typedef struct {
    int       neg;
    int32_t   exp;
    int       n;
    uint8_t   d[COMPARE_DECIMAL_DIGITS];
} compare_decimal_t;

/* Parse "[-+]digits[.digits][e[+-]digits]".  Returns 0, or -1 when the text
 * is not a decimal or has more significant digits than we keep. */
int compare_decimal_parse(const char *s, size_t len, compare_decimal_t *out);

/* -1, 0, 1 as a < b, a == b, a > b. */
int compare_decimal_cmp(const compare_decimal_t *a,
    const compare_decimal_t *b);

/* Is |a - b| <= abs_tol (when given) or <= rel_tol * max(|a|, |b|) (when
 * given)?  1 yes, 0 no, -1 when the figures are too far apart in scale to
 * be computed exactly. */
int compare_decimal_within(const compare_decimal_t *a,
    const compare_decimal_t *b, const compare_decimal_t *abs_tol,
    const compare_decimal_t *rel_tol);

/* Write the canonical text (no exponent when it fits in 40 chars). */
void compare_decimal_format(const compare_decimal_t *v, char *buf,
    size_t size);

#endif /* COMPARE_DECIMAL_H */
