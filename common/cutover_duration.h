/*
 * cutover_duration: the one reader of durations ("800ms", "1.5s", "30s",
 * "10m", "2h", "7d") behind every option, directive parameter and admin
 * field that takes one.  Plain C; the module compiles it.
 */

#ifndef CUTOVER_DURATION_H
#define CUTOVER_DURATION_H

#include <stddef.h>
#include <stdint.h>

/*
 * "<digits>[.<digits>]<unit>", unit ms, s, m, h or d, into milliseconds.
 * bare_ms: what a number without a unit counts (0: a unit is required).
 * A fraction is read only with fractions set, to whole milliseconds, and
 * never with "ms".  -1 when bad or past ten years.
 */
int64_t cutover_duration_ms(const char *s, size_t len, int64_t bare_ms,
    int fractions);

#endif /* CUTOVER_DURATION_H */
