/*
 * cutover_dial: dial state, sticky buckets, routing, dial changes.  The
 * state file and the rules as JSON are in cutover_state.c.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_hash.h"
#include "cutover_dial.h"


static uint64_t cutover_mix64(uint64_t h);
static int cutover_rule_has(const cutover_state_t *st, uint32_t first,
    uint32_t n, const char *name, size_t len);
static int cutover_ids_copy(cutover_state_t *dst, const cutover_state_t *src,
    uint16_t first, uint16_t n, uint16_t *nfirst);


uint64_t
cutover_hash(const void *data, size_t len)
{
    size_t          i;
    uint64_t        h = 0xcbf29ce484222325ULL;
    const uint8_t  *p = data;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }

    /* FNV alone spreads short, similar keys ("S001:pos") poorly */
    return cutover_mix64(h);
}


static uint64_t
cutover_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;

    return h;
}


void
cutover_record_id(uint64_t seed0, uint64_t seed1, uint64_t counter,
    char out[32])
{
    int                i;
    uint64_t           hi, lo;
    static const char  digits[] = "0123456789abcdef";

    hi = cutover_mix64(seed0 + counter);
    lo = cutover_mix64(seed1 ^ (counter * 0x9e3779b97f4a7c15ULL));

    for (i = 15; i >= 0; i--) {
        out[i] = digits[hi & 0xf];
        out[16 + i] = digits[lo & 0xf];
        hi >>= 4;
        lo >>= 4;
    }
}


uint32_t
cutover_bucket(const void *key, size_t len)
{
    unsigned __int128  x;

    x = (unsigned __int128) cutover_hash(key, len) * CUTOVER_BUCKETS;

    return (uint32_t) (x >> 64);
}


/*
 * Kept whole: one scan of a JSON number (sign, digits, fraction, exponent)
 * with one error exit; split up, the position would have to travel between
 * helpers.
 */
int32_t
cutover_percent_parse(const char *s, size_t len, cutover_error_t *err)
{
    size_t       i = 0, ndigits = 0;
    int          neg = 0, eneg = 0, frac = 0;
    long         e = 0, exp10 = 0;
    uint64_t     d = 0;
    const char  *what = "not a number";

    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }

    if (i >= len || s[i] < '0' || s[i] > '9') {
        goto bad;
    }

    /* digits of the mantissa; past 18 significant digits only zeros fit */
    for ( ;; ) {
        if (i < len && s[i] >= '0' && s[i] <= '9') {
            if (d != 0 || s[i] != '0') {
                if (ndigits >= 18) {
                    what = "out of range 0..100";
                    goto bad;
                }

                d = d * 10 + (uint64_t) (s[i] - '0');
                ndigits++;
            }

            exp10 -= frac;
            i++;
            continue;
        }

        if (i < len && s[i] == '.' && !frac) {
            frac = 1;
            i++;

            if (i >= len || s[i] < '0' || s[i] > '9') {
                goto bad;
            }

            continue;
        }

        break;
    }

    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;

        if (i < len && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }

        if (i >= len || s[i] < '0' || s[i] > '9') {
            goto bad;
        }

        for ( ; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (e < 100000) {
                e = e * 10 + (s[i] - '0');
            }
        }

        exp10 += eneg ? -e : e;
    }

    if (i != len) {
        goto bad;
    }

    if (d == 0) {
        return 0;
    }

    if (neg) {
        what = "out of range 0..100";
        goto bad;
    }

    /* value = d * 10^exp10 percent; basis points = d * 10^(exp10 + 2) */
    exp10 += 2;

    for ( ; exp10 < 0; exp10++) {
        if (d % 10 != 0) {
            what = "finer than 0.01";
            goto bad;
        }

        d /= 10;
    }

    for ( ; exp10 > 0; exp10--) {
        if (d > CUTOVER_BUCKETS) {
            break;
        }

        d *= 10;
    }

    if (d > CUTOVER_BUCKETS) {
        what = "out of range 0..100";
        goto bad;
    }

    return (int32_t) d;

bad:

    cutover_error_set(err, "invalid_percent", "percent %s: \"%.*s\"", what,
                      (int) (len > 40 ? 40 : len), s);
    return -1;
}


void
cutover_percent_format(uint32_t bp, char buf[16])
{
    if (bp % 100 == 0) {
        snprintf(buf, 16, "%u", bp / 100);

    } else if (bp % 10 == 0) {
        snprintf(buf, 16, "%u.%u", bp / 100, (bp % 100) / 10);

    } else {
        snprintf(buf, 16, "%u.%02u", bp / 100, bp % 100);
    }
}





void
cutover_state_init(cutover_state_t *st)
{
    memset(st, 0, sizeof(*st));
    st->version = 1;
    st->nrules = 1;
    strcpy(st->rules[0].id, "default");
}


static int
cutover_rule_has(const cutover_state_t *st, uint32_t first, uint32_t n,
    const char *name, size_t len)
{
    uint32_t  i;
    uint64_t  h;

    if (first > CUTOVER_MAX_IDS || n > CUTOVER_MAX_IDS - first
        || len > CUTOVER_ID_MAX)
    {
        return 0;
    }

    h = cutover_hash(name, len);

    for (i = first; i < first + n; i++) {
        if (st->ids[i].hash == h
            && strncmp(st->ids[i].name, name, len) == 0
            && st->ids[i].name[len] == '\0')
        {
            return 1;
        }
    }

    return 0;
}


int
cutover_state_route(const cutover_state_t *st, const char *store,
    size_t store_len, const char *channel, size_t channel_len,
    uint32_t bucket, cutover_route_t *out)
{
    uint32_t               i, n;
    const cutover_rule_t  *r;

    n = st->nrules;
    if (n == 0 || n > CUTOVER_MAX_RULES) {
        n = 1;                      /* torn read: the caller retries */
    }

    for (i = 0; i < n - 1; i++) {
        r = &st->rules[i];

        if (r->nstores
            && !cutover_rule_has(st, r->first_store, r->nstores, store,
                                 store_len))
        {
            continue;
        }

        if (r->nchannels
            && !cutover_rule_has(st, r->first_channel, r->nchannels, channel,
                                 channel_len))
        {
            continue;
        }

        break;
    }

    r = &st->rules[i];

    out->rule = i;
    out->counter = r->counter < CUTOVER_MAX_RULES ? r->counter : 0;
    out->bp = r->bp;
    out->version = st->version;
    out->to_new = bucket < r->bp;
    memcpy(out->rule_id, r->id, CUTOVER_ID_MAX);
    out->rule_id[CUTOVER_ID_MAX] = '\0';

    return CUTOVER_OK;
}


int
cutover_state_find(const cutover_state_t *st, const char *rule)
{
    uint32_t  i;

    for (i = 0; i < st->nrules; i++) {
        if (strcmp(st->rules[i].id, rule) == 0) {
            return (int) i;
        }
    }

    return -1;
}


/* Appends names (deduplicated, validated) to dst's id pool. */
int
cutover_ids_add(cutover_state_t *dst, const char *const *names, size_t n,
    uint16_t *first, uint16_t *count, cutover_error_t *err)
{
    size_t  i, len;

    *first = (uint16_t) dst->nids;
    *count = 0;

    for (i = 0; i < n; i++) {
        len = strlen(names[i]);

        if (!cutover_id_valid(names[i], len)) {
            cutover_error_set(err, "invalid_request",
                              "bad store or channel id \"%.40s\": 1 to 32 of "
                              "A-Z a-z 0-9 _ . -", names[i]);
            return CUTOVER_ERROR;
        }

        if (cutover_rule_has(dst, *first, *count, names[i], len)) {
            continue;
        }

        if (dst->nids >= CUTOVER_MAX_IDS) {
            cutover_error_set(err, "too_many_ids",
                              "more than %d stores and channels over all "
                              "rules", CUTOVER_MAX_IDS);
            return CUTOVER_ERROR;
        }

        dst->ids[dst->nids].hash = cutover_hash(names[i], len);
        memcpy(dst->ids[dst->nids].name, names[i], len + 1);
        dst->nids++;
        (*count)++;
    }

    return CUTOVER_OK;
}


static int
cutover_ids_copy(cutover_state_t *dst, const cutover_state_t *src,
    uint16_t first, uint16_t n, uint16_t *nfirst)
{
    if (dst->nids + n > CUTOVER_MAX_IDS) {
        return CUTOVER_ERROR;
    }

    *nfirst = (uint16_t) dst->nids;
    memcpy(&dst->ids[dst->nids], &src->ids[first], n * sizeof(cutover_id_t));
    dst->nids += n;

    return CUTOVER_OK;
}


/*
 * Kept whole: every check comes before the new state is built, and the
 * order of the checks is the order of the errors a client sees.
 */
int
cutover_state_dial(cutover_state_t *dst, const cutover_state_t *src,
    const cutover_dial_t *dial, int64_t now, cutover_error_t *err)
{
    int              idx, is_new;
    uint32_t         i, slot;
    uint64_t         used;
    cutover_rule_t  *r;

    if (!cutover_id_valid(dial->rule, strlen(dial->rule))) {
        cutover_error_set(err, "invalid_request", "bad rule id \"%.40s\": 1 "
                          "to 32 of A-Z a-z 0-9 _ . -", dial->rule);
        return CUTOVER_ERROR;
    }

    if (dial->bp < 0 || dial->bp > CUTOVER_BUCKETS) {
        cutover_error_set(err, "invalid_percent", "percent out of range");
        return CUTOVER_ERROR;
    }

    idx = cutover_state_find(src, dial->rule);
    is_new = idx < 0;

    if (strcmp(dial->rule, "default") == 0
        && (dial->has_stores || dial->has_channels))
    {
        cutover_error_set(err, "invalid_request", "rule \"default\" matches "
                          "every request and takes no stores or channels");
        return CUTOVER_ERROR;
    }

    if (is_new && dial->nstores == 0 && dial->nchannels == 0) {
        cutover_error_set(err, "unknown_rule", "rule \"%s\" does not exist; "
                          "give stores or channels to create it", dial->rule);
        return CUTOVER_ERROR;
    }

    if (is_new && src->nrules >= CUTOVER_MAX_RULES) {
        cutover_error_set(err, "too_many_rules", "at most %d rules",
                          CUTOVER_MAX_RULES);
        return CUTOVER_ERROR;
    }

    /* rebuild the rule list and the id pool, the new rule before default */
    memset(dst, 0, sizeof(*dst));
    used = 0;

    for (i = 0; i < src->nrules; i++) {
        if (is_new && i == src->nrules - 1) {
            r = &dst->rules[dst->nrules++];
            memset(r, 0, sizeof(*r));
            snprintf(r->id, sizeof(r->id), "%s", dial->rule);
            idx = (int) i;
        }

        r = &dst->rules[dst->nrules++];
        *r = src->rules[i];

        if (cutover_ids_copy(dst, src, src->rules[i].first_store,
                             src->rules[i].nstores, &r->first_store) != 0
            || cutover_ids_copy(dst, src, src->rules[i].first_channel,
                                src->rules[i].nchannels, &r->first_channel)
               != 0)
        {
            cutover_error_set(err, "too_many_ids", "state is full");
            return CUTOVER_ERROR;
        }

        used |= 1ULL << (r->counter % 64);
    }

    r = &dst->rules[idx];

    if (is_new) {
        for (slot = 0; used & (1ULL << slot); slot++) { /* void */ }
        r->counter = slot;
    }

    if (dial->has_stores || is_new) {
        if (cutover_ids_add(dst, dial->stores, dial->nstores,
                            &r->first_store, &r->nstores, err) != 0)
        {
            return CUTOVER_ERROR;
        }
    }

    if (dial->has_channels || is_new) {
        if (cutover_ids_add(dst, dial->channels, dial->nchannels,
                            &r->first_channel, &r->nchannels, err) != 0)
        {
            return CUTOVER_ERROR;
        }
    }

    if (strcmp(r->id, "default") != 0 && r->nstores == 0
        && r->nchannels == 0)
    {
        cutover_error_set(err, "invalid_request", "rule \"%s\" would match "
                          "every request; keep stores or channels", r->id);
        return CUTOVER_ERROR;
    }

    r->bp = (uint32_t) dial->bp;
    r->ramp_to = 0;
    r->ramp_step = 0;
    r->ramp_every = 0;
    r->ramp_next = 0;
    dst->version = src->version + 1;
    dst->changed_at = now;
    dst->rolled_back = 0;

    return CUTOVER_OK;
}


void
cutover_state_rollback(cutover_state_t *st, int64_t now)
{
    uint32_t  i;

    for (i = 0; i < st->nrules; i++) {
        st->rules[i].bp = 0;
        st->rules[i].ramp_to = 0;
        st->rules[i].ramp_step = 0;
        st->rules[i].ramp_every = 0;
        st->rules[i].ramp_next = 0;
    }

    st->rolled_back = 1;
    st->version++;
    st->changed_at = now;
}


int
cutover_state_ramp_start(cutover_state_t *dst, const cutover_state_t *src,
    const char *rule, int32_t to, int32_t step, int64_t every, int64_t now,
    cutover_error_t *err)
{
    int              n;
    char             pct[16];
    cutover_rule_t  *r;

    n = cutover_state_find(src, rule);
    if (n < 0) {
        cutover_error_set(err, "unknown_rule", "rule \"%.32s\" does not "
                          "exist", rule);
        return CUTOVER_ERROR;
    }

    if (to < 0 || to > CUTOVER_BUCKETS) {
        cutover_error_set(err, "invalid_percent", "to: percent out of range");
        return CUTOVER_ERROR;
    }

    if ((uint32_t) to <= src->rules[n].bp) {
        cutover_percent_format(src->rules[n].bp, pct);
        cutover_error_set(err, "invalid_request", "to must be above the "
                          "rule's dial (%s%%)", pct);
        return CUTOVER_ERROR;
    }

    if (step <= 0 || step > CUTOVER_BUCKETS) {
        cutover_error_set(err, "invalid_request", "step must be above 0 and "
                          "at most 100");
        return CUTOVER_ERROR;
    }

    if (every <= 0 || every > 366 * 86400) {
        cutover_error_set(err, "invalid_request", "every must be a duration "
                          "from 1s to 366d (10m, 30s, 1h)");
        return CUTOVER_ERROR;
    }

    memcpy(dst, src, sizeof(*dst));

    r = &dst->rules[n];
    r->ramp_to = (uint32_t) to;
    r->ramp_step = (uint32_t) step;
    r->ramp_every = (uint32_t) every;
    r->ramp_next = now + every;

    dst->version = src->version + 1;
    dst->changed_at = now;

    return CUTOVER_OK;
}


int
cutover_state_ramp_due(const cutover_state_t *st, int64_t now)
{
    uint32_t  i;

    for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
        if (st->rules[i].ramp_step && st->rules[i].ramp_next <= now) {
            return (int) i;
        }
    }

    return -1;
}


int
cutover_state_ramp_step(cutover_state_t *dst, const cutover_state_t *src,
    int n, int64_t now, cutover_error_t *err)
{
    int64_t                next;
    uint32_t               bp;
    cutover_dial_t        *dial;
    cutover_rule_t        *r;
    const cutover_rule_t  *s;

    if (n < 0 || (uint32_t) n >= src->nrules || src->rules[n].ramp_step == 0) {
        cutover_error_set(err, "no_ramp", "the rule has no ramp");
        return CUTOVER_ERROR;
    }

    s = &src->rules[n];

    bp = s->bp + s->ramp_step;
    if (bp > s->ramp_to) {
        bp = s->ramp_to;
    }

    /* the dial as POST dial makes it: same rule, same stores */
    dial = calloc(1, sizeof(cutover_dial_t));
    if (dial == NULL) {
        cutover_error_set(err, "no_memory", "out of memory");
        return CUTOVER_ERROR;
    }

    snprintf(dial->rule, sizeof(dial->rule), "%s", s->id);
    dial->bp = (int32_t) bp;

    if (cutover_state_dial(dst, src, dial, now, err) != CUTOVER_OK) {
        free(dial);
        return CUTOVER_ERROR;
    }

    free(dial);

    r = &dst->rules[n];

    if (bp < s->ramp_to) {
        /* on schedule; a step taken late does not bring the next closer */
        next = s->ramp_next + s->ramp_every;
        if (next <= now) {
            next = now + s->ramp_every;
        }

        r->ramp_to = s->ramp_to;
        r->ramp_step = s->ramp_step;
        r->ramp_every = s->ramp_every;
        r->ramp_next = next;
    }

    return CUTOVER_OK;
}


int
cutover_state_ramp_resume(cutover_state_t *st, int64_t now)
{
    int       moved = 0;
    uint32_t  i;

    for (i = 0; i < st->nrules && i < CUTOVER_MAX_RULES; i++) {
        if (st->rules[i].ramp_step && st->rules[i].ramp_next <= now) {
            st->rules[i].ramp_next = now + st->rules[i].ramp_every;
            moved++;
        }
    }

    return moved;
}
