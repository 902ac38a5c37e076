/*
 * compare_decimal: exact decimal arithmetic on short coefficients.
 */

#include <stdio.h>
#include <string.h>

#include "compare/compare_decimal.h"

#define COMPARE_DEC_WORK  (4 * COMPARE_DECIMAL_DIGITS)
#define COMPARE_DEC_EXP   100000

typedef struct {
    int          neg;
    const char  *ip;      /* integer digits */
    size_t       ni;
    const char  *fp;      /* fraction digits */
    size_t       nf;
    long         e;       /* exponent */
} compare_dec_lex_t;


static int compare_dec_lex(const char *s, size_t len, compare_dec_lex_t *lx);
static int compare_dec_align(const uint8_t *d, int n, int shift, uint8_t *out);
static int compare_dec_mag_cmp(const uint8_t *x, int nx, const uint8_t *y,
    int ny);
static int compare_dec_mag_sub(const uint8_t *x, int nx, const uint8_t *y,
    int ny, uint8_t *out);
static int compare_dec_mag_add(const uint8_t *x, int nx, const uint8_t *y,
    int ny, uint8_t *out);
static int compare_dec_absdiff(const compare_decimal_t *a,
    const compare_decimal_t *b, uint8_t *out, int32_t *exp);
static int compare_dec_cmp_scaled(const uint8_t *x, int nx, int32_t ex,
    const uint8_t *y, int ny, int32_t ey);


/* The pieces of "[-+]int[.frac][e[+-]exp]"; 0 or -1. */
static int
compare_dec_lex(const char *s, size_t len, compare_dec_lex_t *lx)
{
    const char  *p = s, *end = s + len;
    int          eneg = 0;

    memset(lx, 0, sizeof(*lx));
    if (p < end && (*p == '-' || *p == '+')) {
        lx->neg = (*p++ == '-');
    }
    for (lx->ip = p; p < end && *p >= '0' && *p <= '9'; p++) {
        lx->ni++;
    }
    if (p < end && *p == '.') {
        for (lx->fp = ++p; p < end && *p >= '0' && *p <= '9'; p++) {
            lx->nf++;
        }
        if (lx->nf == 0) {
            return -1;
        }
    }
    if (lx->ni == 0) {
        return -1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (++p < end && (*p == '-' || *p == '+')) {
            eneg = (*p++ == '-');
        }
        if (p == end) {
            return -1;
        }
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (lx->e < COMPARE_DEC_EXP) {
                lx->e = lx->e * 10 + (*p - '0');
            }
        }
    }
    if (p != end || lx->e >= COMPARE_DEC_EXP) {
        return -1;
    }
    lx->e = eneg ? -lx->e : lx->e;
    return 0;
}


int
compare_decimal_parse(const char *s, size_t len, compare_decimal_t *out)
{
    compare_dec_lex_t  lx;
    size_t             i;
    long               e;
    int                k, nt = 0;
    uint8_t            tmp[COMPARE_DECIMAL_DIGITS * 2];

    memset(out, 0, offsetof(compare_decimal_t, d));
    if (compare_dec_lex(s, len, &lx) != 0) {
        return -1;
    }
    /* most significant first into tmp, skipping leading zeros */
    for (i = 0; i < lx.ni + lx.nf; i++) {
        char c = i < lx.ni ? lx.ip[i] : lx.fp[i - lx.ni];

        if (nt == 0 && c == '0') {
            continue;
        }
        if (nt >= (int) sizeof(tmp)) {
            return -1;
        }
        tmp[nt++] = (uint8_t) (c - '0');
    }
    e = lx.e - (long) lx.nf;
    /* strip trailing zeros of the coefficient */
    while (nt > 0 && tmp[nt - 1] == 0) {
        nt--;
        e++;
    }
    if (nt > COMPARE_DECIMAL_DIGITS) {
        return -1;
    }
    if (nt == 0) {
        return 0;    /* zero: no sign, no digits */
    }
    for (k = 0; k < nt; k++) {
        out->d[k] = tmp[nt - 1 - k];
    }
    out->neg = lx.neg;
    out->n = nt;
    out->exp = (int32_t) e;
    return 0;
}


static int
compare_dec_align(const uint8_t *d, int n, int shift, uint8_t *out)
{
    if (shift < 0 || n + shift > COMPARE_DEC_WORK) {
        return -1;
    }
    memset(out, 0, (size_t) shift);
    memcpy(out + shift, d, (size_t) n);
    return n + shift;
}


static int
compare_dec_mag_cmp(const uint8_t *x, int nx, const uint8_t *y, int ny)
{
    int  i;

    while (nx > 0 && x[nx - 1] == 0) {
        nx--;
    }
    while (ny > 0 && y[ny - 1] == 0) {
        ny--;
    }
    if (nx != ny) {
        return nx < ny ? -1 : 1;
    }
    for (i = nx - 1; i >= 0; i--) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}


/* x - y, with x >= y */
static int
compare_dec_mag_sub(const uint8_t *x, int nx, const uint8_t *y, int ny,
    uint8_t *out)
{
    int  i, borrow = 0, v;

    for (i = 0; i < nx; i++) {
        v = x[i] - borrow - (i < ny ? y[i] : 0);
        borrow = v < 0;
        out[i] = (uint8_t) (v < 0 ? v + 10 : v);
    }
    while (nx > 0 && out[nx - 1] == 0) {
        nx--;
    }
    return nx;
}


static int
compare_dec_mag_add(const uint8_t *x, int nx, const uint8_t *y, int ny,
    uint8_t *out)
{
    int  i, carry = 0, v, n = nx > ny ? nx : ny;

    if (n + 1 > COMPARE_DEC_WORK) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        v = (i < nx ? x[i] : 0) + (i < ny ? y[i] : 0) + carry;
        carry = v >= 10;
        out[i] = (uint8_t) (v % 10);
    }
    if (carry) {
        out[n++] = 1;
    }
    return n;
}


int
compare_decimal_cmp(const compare_decimal_t *a, const compare_decimal_t *b)
{
    uint8_t  x[COMPARE_DEC_WORK], y[COMPARE_DEC_WORK];
    int      e, nx, ny, c;

    if (a->n == 0 || b->n == 0 || a->neg != b->neg) {
        int sa = a->n == 0 ? 0 : (a->neg ? -1 : 1);
        int sb = b->n == 0 ? 0 : (b->neg ? -1 : 1);

        return sa < sb ? -1 : (sa > sb ? 1 : 0);
    }
    /* same sign: compare magnitudes by order of magnitude first */
    if (a->n + a->exp != b->n + b->exp) {
        c = a->n + a->exp < b->n + b->exp ? -1 : 1;
        return a->neg ? -c : c;
    }
    e = a->exp < b->exp ? a->exp : b->exp;
    nx = compare_dec_align(a->d, a->n, a->exp - e, x);
    ny = compare_dec_align(b->d, b->n, b->exp - e, y);
    if (nx < 0 || ny < 0) {
        return 0;
    }
    c = compare_dec_mag_cmp(x, nx, y, ny);
    return a->neg ? -c : c;
}


/* |a - b| as a magnitude at exponent *exp. */
static int
compare_dec_absdiff(const compare_decimal_t *a, const compare_decimal_t *b,
    uint8_t *out, int32_t *exp)
{
    uint8_t  x[COMPARE_DEC_WORK], y[COMPARE_DEC_WORK];
    int      e, nx, ny;

    e = a->exp < b->exp ? a->exp : b->exp;
    if (a->n == 0) {
        e = b->exp;
    } else if (b->n == 0) {
        e = a->exp;
    }
    nx = a->n ? compare_dec_align(a->d, a->n, a->exp - e, x) : 0;
    ny = b->n ? compare_dec_align(b->d, b->n, b->exp - e, y) : 0;
    if (nx < 0 || ny < 0) {
        return -1;
    }
    *exp = e;
    if (a->neg != b->neg) {
        return compare_dec_mag_add(x, nx, y, ny, out);
    }
    if (compare_dec_mag_cmp(x, nx, y, ny) >= 0) {
        return compare_dec_mag_sub(x, nx, y, ny, out);
    }
    return compare_dec_mag_sub(y, ny, x, nx, out);
}


/* Compare magnitudes x*10^ex and y*10^ey: -1, 0, 1, or -2 on overflow. */
static int
compare_dec_cmp_scaled(const uint8_t *x, int nx, int32_t ex,
    const uint8_t *y, int ny, int32_t ey)
{
    uint8_t  ax[COMPARE_DEC_WORK], ay[COMPARE_DEC_WORK];
    int32_t  e = ex < ey ? ex : ey;
    int      n1, n2;

    while (nx > 0 && x[nx - 1] == 0) {
        nx--;
    }
    while (ny > 0 && y[ny - 1] == 0) {
        ny--;
    }
    if (nx == 0 || ny == 0) {
        return nx == 0 ? (ny == 0 ? 0 : -1) : 1;
    }
    if (nx + ex != ny + ey) {
        return nx + ex < ny + ey ? -1 : 1;
    }
    n1 = compare_dec_align(x, nx, ex - e, ax);
    n2 = compare_dec_align(y, ny, ey - e, ay);
    if (n1 < 0 || n2 < 0) {
        return -2;
    }
    return compare_dec_mag_cmp(ax, n1, ay, n2);
}


int
compare_decimal_within(const compare_decimal_t *a, const compare_decimal_t *b,
    const compare_decimal_t *abs_tol, const compare_decimal_t *rel_tol)
{
    uint8_t                   diff[COMPARE_DEC_WORK], prod[COMPARE_DEC_WORK];
    int32_t                   de;
    int                       nd, i, j, c, np;
    const compare_decimal_t  *m;

    nd = compare_dec_absdiff(a, b, diff, &de);
    if (nd < 0) {
        return -1;
    }
    if (nd == 0) {
        return 1;
    }
    if (abs_tol != NULL) {
        c = compare_dec_cmp_scaled(diff, nd, de, abs_tol->d, abs_tol->n,
                                   abs_tol->exp);
        if (c == -2) {
            return -1;
        }
        if (c <= 0) {
            return 1;
        }
    }
    if (rel_tol != NULL && rel_tol->n > 0) {
        compare_decimal_t  ma = *a, mb = *b;

        ma.neg = 0;
        mb.neg = 0;
        m = compare_decimal_cmp(&ma, &mb) >= 0 ? a : b;
        np = m->n + rel_tol->n;
        memset(prod, 0, (size_t) np);
        for (i = 0; i < m->n; i++) {
            int carry = 0;

            for (j = 0; j < rel_tol->n; j++) {
                int v = prod[i + j] + m->d[i] * rel_tol->d[j] + carry;

                prod[i + j] = (uint8_t) (v % 10);
                carry = v / 10;
            }
            for (j = i + rel_tol->n; carry; j++) {
                int v = prod[j] + carry;

                prod[j] = (uint8_t) (v % 10);
                carry = v / 10;
            }
        }
        c = compare_dec_cmp_scaled(diff, nd, de, prod, np,
                                   m->exp + rel_tol->exp);
        if (c == -2) {
            return -1;
        }
        if (c <= 0) {
            return 1;
        }
    }
    return 0;
}


void
compare_decimal_format(const compare_decimal_t *v, char *buf, size_t size)
{
    char  digits[COMPARE_DECIMAL_DIGITS + 1];
    int   i, point;

    if (v->n == 0) {
        snprintf(buf, size, "0");
        return;
    }
    for (i = 0; i < v->n; i++) {
        digits[i] = (char) ('0' + v->d[v->n - 1 - i]);
    }
    digits[v->n] = '\0';
    point = v->n + v->exp;     /* digits before the decimal point */
    if (v->exp >= 0 && point <= 40) {
        snprintf(buf, size, "%s%s%0*d", v->neg ? "-" : "", digits,
                 (int) v->exp, 0);
        if (v->exp == 0) {
            snprintf(buf, size, "%s%s", v->neg ? "-" : "", digits);
        }
    } else if (v->exp < 0 && point > 0) {
        snprintf(buf, size, "%s%.*s.%s", v->neg ? "-" : "", point, digits,
                 digits + point);
    } else if (v->exp < 0 && point > -20) {
        snprintf(buf, size, "%s0.%0*d%s", v->neg ? "-" : "", -point, 0,
                 digits);
        if (point == 0) {
            snprintf(buf, size, "%s0.%s", v->neg ? "-" : "", digits);
        }
    } else {
        snprintf(buf, size, "%s%se%d", v->neg ? "-" : "", digits,
                 (int) v->exp);
    }
}
