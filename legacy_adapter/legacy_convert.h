/*
 * legacy: the scalar rules of the dialect: yuan decimal strings <-> fen,
 * RFC 3339 UTC <-> YYYYMMDDHHMMSS in the legacy system's local time.
 */

#ifndef LEGACY_CONVERT_H
#define LEGACY_CONVERT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "legacy_adapter/legacy_common.h"

/* Largest amount either side may carry: 100 billion yuan, in fen. */
#define LEGACY_FEN_MAX  10000000000000LL

#define LEGACY_YUAN_LEN  24    /* buffer for legacy_fen_to_yuan() */
#define LEGACY_TIME_LEN  16    /* "YYYYMMDDHHMMSS" + NUL */
#define LEGACY_RFC3339_LEN 32  /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/*
 * "12.50", "12.5", "12" -> 1250 fen.  No exponent, no sign unless
 * allow_negative, at most two decimals, no leading zeros ("0.50" is fine).
 */
int legacy_yuan_to_fen(const char *s, int allow_negative, int64_t *fen,
    legacy_error_t *err);

/* 1250 -> "12.50", -5 -> "-0.05".  buf holds LEGACY_YUAN_LEN bytes. */
void legacy_fen_to_yuan(int64_t fen, char *buf);

/* Legacy local time (offset in minutes east of UTC) -> "...Z". */
int legacy_time_to_rfc3339(const char *legacy, int offset_min, char *buf,
    legacy_error_t *err);

/* RFC 3339 with any offset -> legacy local time; fractions are dropped. */
int legacy_time_from_rfc3339(const char *rfc, int offset_min, char *buf,
    legacy_error_t *err);

/* Unix time -> legacy local time. */
void legacy_time_from_unix(time_t t, int offset_min, char *buf);

/* Parses legacy local time into Unix time. */
int legacy_time_parse(const char *legacy, int offset_min, time_t *t,
    legacy_error_t *err);

#endif
