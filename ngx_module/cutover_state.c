/*
 * cutover_state: the state file (written with a SHA-256 line, read
 * back strictly) and the rules as JSON for the admin API and the audit
 * trail.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cutover_hash.h"
#include "cutover_dial.h"


#define CUTOVER_STATE_MAGIC  "cutover-state 1\n"


static int cutover_json_ids(const cutover_state_t *st, uint32_t first,
    uint32_t n, char *buf, size_t cap);


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


/*
 * Kept whole: the state file's lines are read in their fixed order with one
 * error exit.
 */
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
