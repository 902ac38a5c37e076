/*
 * cutover_duration: durations into milliseconds (see the header).
 */

#include <string.h>

#include "common/cutover_duration.h"

#define CUTOVER_DURATION_MAX_MS  (10LL * 365 * 86400 * 1000)


int64_t
cutover_duration_ms(const char *s, size_t len, int64_t bare_ms,
    int fractions)
{
    size_t   i, u;
    int64_t  v = 0, frac = 0, scale = 1, unit;

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > 100000000000LL) {
            return -1;
        }

        v = v * 10 + (s[i] - '0');
    }

    if (i == 0) {
        return -1;
    }

    if (i < len && s[i] == '.') {
        if (!fractions) {
            return -1;
        }

        for (u = ++i; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (scale < 1000) {
                frac = frac * 10 + (s[i] - '0');
                scale *= 10;
            }
        }

        if (i == u) {
            return -1;                      /* "2." */
        }
    }

    u = len - i;

    if (u == 0) {
        unit = bare_ms;

    } else if (u == 2 && s[i] == 'm' && s[i + 1] == 's') {
        unit = scale == 1 ? 1 : 0;          /* no fraction of a ms */

    } else if (u == 1) {
        unit = s[i] == 's' ? 1000 : s[i] == 'm' ? 60000
               : s[i] == 'h' ? 3600000 : s[i] == 'd' ? 86400000 : 0;

    } else {
        unit = 0;
    }

    if (unit == 0) {
        return -1;
    }

    v = v * unit + frac * unit / scale;

    return v > CUTOVER_DURATION_MAX_MS ? -1 : v;
}
