/*
 * cutover_dial: dial state, sticky buckets, routing, the state file.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_hash.h"
#include "cutover_dial.h"


#define CUTOVER_STATE_MAGIC  "cutover-state 1\n"


static uint64_t cutover_mix64(uint64_t h);
static int cutover_rule_has(const cutover_state_t *st, uint32_t first,
    uint32_t n, const char *name, size_t len);
static int cutover_ids_add(cutover_state_t *dst, const char *const *names,
    size_t n, uint16_t *first, uint16_t *count, cutover_error_t *err);
static int cutover_ids_copy(cutover_state_t *dst, const cutover_state_t *src,
    uint16_t first, uint16_t n, uint16_t *nfirst);
static int cutover_json_ids(const cutover_state_t *st, uint32_t first,
    uint32_t n, char *buf, size_t cap);
static int cutover_decode_ramp(cutover_state_t *st, char *line,
    cutover_error_t *err);


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


int
cutover_id_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > CUTOVER_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
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
static int
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


/* Appends "name=a,b" (or "name=-") of a rule's ids. */
static int
cutover_text_ids(const cutover_state_t *st, const char *name, uint32_t first,
    uint32_t n, char *buf, size_t cap)
{
    int       k, len;
    uint32_t  i;

    len = snprintf(buf, cap, " %s=%s", name, n ? "" : "-");

    for (i = 0; i < n && len >= 0 && (size_t) len < cap; i++) {
        k = snprintf(buf + len, cap - (size_t) len, "%s%s", i ? "," : "",
                     st->ids[first + i].name);
        len = k < 0 ? -1 : len + k;
    }

    return (len < 0 || (size_t) len >= cap) ? -1 : len;
}


int
cutover_state_encode(const cutover_state_t *st, const char *zone, char *buf,
    size_t cap)
{
    int                    n, k;
    char                   hex[65];
    uint32_t               i;
    const cutover_rule_t  *r;

    n = snprintf(buf, cap, CUTOVER_STATE_MAGIC "zone %s\nversion %llu\n"
                 "changed_at %lld\nstate %s\n", zone,
                 (unsigned long long) st->version,
                 (long long) st->changed_at,
                 st->rolled_back ? "rolled_back" : "active");

    for (i = 0; i < st->nrules && n >= 0 && (size_t) n < cap; i++) {
        r = &st->rules[i];

        k = snprintf(buf + n, cap - (size_t) n, "rule %s %u %u", r->id,
                     r->bp, r->counter);
        if (k < 0 || (size_t) (n + k) >= cap) {
            return -1;
        }
        n += k;

        k = cutover_text_ids(st, "stores", r->first_store, r->nstores,
                             buf + n, cap - (size_t) n);
        if (k < 0) {
            return -1;
        }
        n += k;

        k = cutover_text_ids(st, "channels", r->first_channel, r->nchannels,
                             buf + n, cap - (size_t) n);
        if (k < 0 || (size_t) (n + k + 1) >= cap) {
            return -1;
        }
        n += k;
        buf[n++] = '\n';
    }

    /* ramps after the rules (a reader finds their rule first) */
    for (i = 0; i < st->nrules && n >= 0 && (size_t) n < cap; i++) {
        r = &st->rules[i];

        if (r->ramp_step == 0) {
            continue;
        }

        k = snprintf(buf + n, cap - (size_t) n, "ramp %s %u %u %u %lld\n",
                     r->id, r->ramp_to, r->ramp_step, r->ramp_every,
                     (long long) r->ramp_next);
        if (k < 0 || (size_t) (n + k) >= cap) {
            return -1;
        }
        n += k;
    }

    if (n < 0 || (size_t) n + 76 >= cap) {
        return -1;
    }

    cutover_sha256_hex(buf, (size_t) n, hex);
    n += snprintf(buf + n, cap - (size_t) n, "sha256 %s\n", hex);

    return n;
}


/* Splits "a,b,c" (or "-") into the id pool. */
static int
cutover_decode_ids(cutover_state_t *st, char *list, uint16_t *first,
    uint16_t *count, cutover_error_t *err)
{
    size_t       n = 0;
    char        *save = NULL, *tok;
    const char  *names[CUTOVER_MAX_IDS];

    if (strcmp(list, "-") != 0) {
        for (tok = strtok_r(list, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save))
        {
            if (n == CUTOVER_MAX_IDS) {
                cutover_error_set(err, "corrupt", "too many ids");
                return CUTOVER_ERROR;
            }

            names[n++] = tok;
        }
    }

    return cutover_ids_add(st, names, n, first, count, err);
}


static int
cutover_decode_rule(cutover_state_t *st, char *line, cutover_error_t *err)
{
    char            *f[6], *save = NULL, *end;
    size_t           n;
    unsigned long    bp, counter;
    cutover_rule_t  *r;

    for (n = 0; n < 6; n++) {
        f[n] = strtok_r(n ? NULL : line, " ", &save);
        if (f[n] == NULL) {
            break;
        }
    }

    if (n != 6 || strtok_r(NULL, " ", &save) != NULL
        || strncmp(f[4], "stores=", 7) != 0
        || strncmp(f[5], "channels=", 9) != 0
        || st->nrules >= CUTOVER_MAX_RULES
        || !cutover_id_valid(f[1], strlen(f[1])))
    {
        cutover_error_set(err, "corrupt", "bad rule line");
        return CUTOVER_ERROR;
    }

    errno = 0;
    bp = strtoul(f[2], &end, 10);
    if (errno || *end || bp > CUTOVER_BUCKETS) {
        cutover_error_set(err, "corrupt", "bad dial in rule %s", f[1]);
        return CUTOVER_ERROR;
    }

    counter = strtoul(f[3], &end, 10);
    if (*end || counter >= CUTOVER_MAX_RULES) {
        cutover_error_set(err, "corrupt", "bad counter in rule %s", f[1]);
        return CUTOVER_ERROR;
    }

    r = &st->rules[st->nrules++];
    memset(r, 0, sizeof(*r));
    strcpy(r->id, f[1]);
    r->bp = (uint32_t) bp;
    r->counter = (uint32_t) counter;

    if (cutover_decode_ids(st, f[4] + 7, &r->first_store, &r->nstores, err)
        != 0
        || cutover_decode_ids(st, f[5] + 9, &r->first_channel,
                              &r->nchannels, err) != 0)
    {
        return CUTOVER_ERROR;
    }

    return CUTOVER_OK;
}


/* "RULE TO STEP EVERY NEXT" of a rule read before */
static int
cutover_decode_ramp(cutover_state_t *st, char *line, cutover_error_t *err)
{
    int              n;
    char             id[CUTOVER_ID_MAX + 1];
    unsigned         to, step, every;
    long long        next;
    cutover_rule_t  *r;

    if (sscanf(line, "%32s %u %u %u %lld%n", id, &to, &step, &every, &next,
               &n) != 5
        || line[n] != '\0')
    {
        cutover_error_set(err, "corrupt", "bad ramp line");
        return CUTOVER_ERROR;
    }

    n = cutover_state_find(st, id);
    if (n < 0 || to > CUTOVER_BUCKETS || step == 0 || step > CUTOVER_BUCKETS
        || every == 0)
    {
        cutover_error_set(err, "corrupt", "bad ramp of rule %s", id);
        return CUTOVER_ERROR;
    }

    r = &st->rules[n];
    r->ramp_to = to;
    r->ramp_step = step;
    r->ramp_every = every;
    r->ramp_next = next;

    return CUTOVER_OK;
}


int
cutover_state_decode(cutover_state_t *st, const char *text, size_t len,
    cutover_error_t *err)
{
    int           rc = CUTOVER_ERROR;
    char         *copy, *line, *save = NULL, hex[65], *end;
    size_t        body;
    const char   *sum;
    unsigned      lineno = 0;

    /* the checksum line covers everything before it */
    if (len < 80 || len > CUTOVER_STATE_TEXT_MAX || text[len - 1] != '\n'
        || memcmp(text, CUTOVER_STATE_MAGIC, sizeof(CUTOVER_STATE_MAGIC) - 1)
           != 0)
    {
        cutover_error_set(err, "corrupt", "not a cutover state file");
        return CUTOVER_ERROR;
    }

    sum = text + len - 72;
    body = len - 72;

    if (memcmp(sum, "sha256 ", 7) != 0 || (body && text[body - 1] != '\n')) {
        cutover_error_set(err, "corrupt", "no checksum line");
        return CUTOVER_ERROR;
    }

    cutover_sha256_hex(text, body, hex);

    if (memcmp(hex, sum + 7, 64) != 0) {
        cutover_error_set(err, "corrupt", "checksum mismatch");
        return CUTOVER_ERROR;
    }

    copy = malloc(body + 1);
    if (copy == NULL) {
        cutover_error_set(err, "no_memory", "out of memory");
        return CUTOVER_ERROR;
    }

    memcpy(copy, text, body);
    copy[body] = '\0';
    memset(st, 0, sizeof(*st));

    for (line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
    {
        lineno++;

        if (lineno == 1 || strncmp(line, "zone ", 5) == 0) {
            continue;
        }

        if (strncmp(line, "version ", 8) == 0) {
            st->version = strtoull(line + 8, &end, 10);
            if (*end || st->version == 0) {
                goto bad;
            }

        } else if (strncmp(line, "changed_at ", 11) == 0) {
            st->changed_at = strtoll(line + 11, &end, 10);
            if (*end) {
                goto bad;
            }

        } else if (strcmp(line, "state active") == 0) {
            st->rolled_back = 0;

        } else if (strcmp(line, "state rolled_back") == 0) {
            st->rolled_back = 1;

        } else if (strncmp(line, "rule ", 5) == 0) {
            if (cutover_decode_rule(st, line, err) != 0) {
                goto done;
            }

        } else if (strncmp(line, "ramp ", 5) == 0) {
            if (cutover_decode_ramp(st, line + 5, err) != 0) {
                goto done;
            }

        } else {
            goto bad;
        }
    }

    if (st->version == 0 || st->nrules == 0
        || strcmp(st->rules[st->nrules - 1].id, "default") != 0)
    {
        cutover_error_set(err, "corrupt", "no version or no default rule");
        goto done;
    }

    rc = CUTOVER_OK;
    goto done;

bad:

    cutover_error_set(err, "corrupt", "bad line %u", lineno);

done:

    free(copy);
    return rc;
}


static int
cutover_json_ids(const cutover_state_t *st, uint32_t first, uint32_t n,
    char *buf, size_t cap)
{
    int       len, k;
    uint32_t  i;

    len = snprintf(buf, cap, "[");

    for (i = 0; i < n && (size_t) len < cap; i++) {
        k = snprintf(buf + len, cap - (size_t) len, "%s\"%s\"", i ? "," : "",
                     st->ids[first + i].name);
        len += k;
    }

    if ((size_t) len + 1 >= cap) {
        return -1;
    }

    buf[len++] = ']';
    buf[len] = '\0';

    return len;
}


int
cutover_state_rule_json(const cutover_state_t *st, int rule, char *buf,
    size_t cap)
{
    int                    n, k;
    char                   pct[16];
    const cutover_rule_t  *r = &st->rules[rule];

    cutover_percent_format(r->bp, pct);

    n = snprintf(buf, cap, "{\"id\":\"%s\",\"stores\":", r->id);
    if (n < 0 || (size_t) n >= cap) {
        return -1;
    }

    k = cutover_json_ids(st, r->first_store, r->nstores, buf + n,
                         cap - (size_t) n);
    if (k < 0) {
        return -1;
    }
    n += k;

    k = snprintf(buf + n, cap - (size_t) n, ",\"channels\":");
    if (k < 0 || (size_t) (n + k) >= cap) {
        return -1;
    }
    n += k;

    k = cutover_json_ids(st, r->first_channel, r->nchannels, buf + n,
                         cap - (size_t) n);
    if (k < 0) {
        return -1;
    }
    n += k;

    k = snprintf(buf + n, cap - (size_t) n, ",\"percent\":%s}", pct);
    if (k < 0 || (size_t) (n + k) >= cap) {
        return -1;
    }

    return n + k;
}


int
cutover_state_rules_json(const cutover_state_t *st, char *buf, size_t cap)
{
    int       n = 1, k;
    uint32_t  i;

    if (cap < 3) {
        return -1;
    }

    buf[0] = '[';

    for (i = 0; i < st->nrules; i++) {
        if (i) {
            buf[n++] = ',';
        }

        k = cutover_state_rule_json(st, (int) i, buf + n,
                                    cap - (size_t) n - 2);
        if (k < 0) {
            return -1;
        }

        n += k;
    }

    buf[n++] = ']';
    buf[n] = '\0';

    return n;
}
