/*
 * cutover_auth: admin request signatures, keys and the audit chain.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cutover_auth.h"


/* Copies the value of "Name=" out of a header into out (len < cap). */
static int
cutover_auth_field(const char *v, size_t len, const char *name, char *out,
    size_t cap)
{
    size_t       n = strlen(name), i;
    const char  *p = v, *end = v + len, *s;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',')) {
            p++;
        }

        s = p;
        while (p < end && *p != ',') {
            p++;
        }

        if ((size_t) (p - s) > n && memcmp(s, name, n) == 0 && s[n] == '=') {
            i = (size_t) (p - s) - n - 1;

            while (i && s[n + i] == ' ') {
                i--;
            }

            if (i == 0 || i >= cap) {
                return -1;
            }

            memcpy(out, s + n + 1, i);
            out[i] = '\0';
            return 0;
        }
    }

    return -1;
}


int
cutover_auth_parse(const char *value, size_t len, cutover_auth_t *auth,
    cutover_error_t *err)
{
    char        ts[24], *end;
    size_t      n;
    const char  scheme[] = "CUTOVER-HMAC-SHA256 ";

    if (len < sizeof(scheme) - 1
        || memcmp(value, scheme, sizeof(scheme) - 1) != 0)
    {
        cutover_error_set(err, "bad_format", "Authorization is not "
                          "CUTOVER-HMAC-SHA256");
        return -1;
    }

    value += sizeof(scheme) - 1;
    len -= sizeof(scheme) - 1;

    if (cutover_auth_field(value, len, "KeyId", auth->key_id,
                           sizeof(auth->key_id)) != 0
        || cutover_auth_field(value, len, "Timestamp", ts, sizeof(ts)) != 0
        || cutover_auth_field(value, len, "Nonce", auth->nonce,
                              sizeof(auth->nonce)) != 0
        || cutover_auth_field(value, len, "Signature", auth->signature,
                              sizeof(auth->signature)) != 0)
    {
        cutover_error_set(err, "bad_format", "Authorization needs KeyId, "
                          "Timestamp, Nonce and Signature");
        return -1;
    }

    auth->timestamp = strtoll(ts, &end, 10);
    if (*end || ts[0] == '-' || ts[0] == '+') {
        cutover_error_set(err, "bad_format", "bad Timestamp");
        return -1;
    }

    n = strlen(auth->nonce);
    if (n < CUTOVER_NONCE_MIN || !cutover_is_hex(auth->nonce, n)) {
        cutover_error_set(err, "bad_format", "Nonce must be 16 to 64 hex "
                          "digits");
        return -1;
    }

    if (strlen(auth->signature) != 64 || !cutover_is_hex(auth->signature, 64)) {
        cutover_error_set(err, "bad_format", "Signature must be 64 hex "
                          "digits");
        return -1;
    }

    return 0;
}


int
cutover_auth_verify(const cutover_key_t *key, const cutover_auth_t *auth,
    const char *method, size_t method_len, const char *path, size_t path_len,
    const void *body, size_t body_len)
{
    char    expect[65], given[65];
    size_t  i;

    if (cutover_auth_sign(key->secret, key->secret_len, method, method_len,
                          path, path_len, auth->timestamp, auth->nonce, body,
                          body_len, expect) != 0)
    {
        return 0;
    }

    for (i = 0; i < 65; i++) {
        char c = auth->signature[i];
        given[i] = (c >= 'A' && c <= 'F') ? (char) (c - 'A' + 'a') : c;
    }

    return CRYPTO_memcmp(expect, given, 64) == 0;
}


int
cutover_audit_format(const cutover_audit_entry_t *e, char *buf, size_t cap,
    char hash[65])
{
    int        n, k;
    char       when[32];
    time_t     t = (time_t) e->time;
    struct tm  tm;

    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

    n = snprintf(buf, cap, CUTOVER_AUDIT_F_SEQ "%llu,\"time\":\"%s\","
                 "\"key_id\":\"", (unsigned long long) e->seq, when);
    if (n < 0 || (size_t) n >= cap) {
        return -1;
    }

    k = cutover_json_escape(e->key_id, strlen(e->key_id), buf + n,
                            cap - (size_t) n);
    if (k < 0) {
        return -1;
    }
    n += k;

    if (strlen(e->action) > CUTOVER_AUDIT_ACTION_MAX) {
        return -1;
    }

    k = snprintf(buf + n, cap - (size_t) n, CUTOVER_AUDIT_F_ACTION "%s\","
                 "\"result\":\"%s\",\"from\":%s,\"to\":%s,\"reason\":\"",
                 e->action, e->result, e->from ? e->from : "null",
                 e->to ? e->to : "null");
    if (k < 0 || (size_t) (n + k) >= cap) {
        return -1;
    }
    n += k;

    k = cutover_json_escape(e->reason, strlen(e->reason), buf + n,
                            cap - (size_t) n);
    if (k < 0) {
        return -1;
    }
    n += k;

    if (e->pending_break) {
        k = snprintf(buf + n, cap - (size_t) n, "\"" CUTOVER_AUDIT_F_BREAK
                     "%llu", (unsigned long long) e->pending_break);

    } else {
        k = snprintf(buf + n, cap - (size_t) n, "\"");
    }

    if (k < 0 || (size_t) (n + k) >= cap) {
        return -1;
    }
    n += k;

    k = snprintf(buf + n, cap - (size_t) n, CUTOVER_AUDIT_F_PREV "%s\"",
                 e->prev);
    if (k < 0 || (size_t) (n + k) >= cap) {
        return -1;
    }
    n += k;

    cutover_sha256_hex(buf, (size_t) n, hash);

    k = snprintf(buf + n, cap - (size_t) n, CUTOVER_AUDIT_F_HASH "%s"
                 CUTOVER_AUDIT_F_END "\n", hash);
    if (k < 0 || (size_t) (n + k) >= cap) {
        return -1;
    }

    return n + k;
}


/* The first occurrence of needle in s[0..len), or NULL. */
static const char *
cutover_find(const char *s, size_t len, const char *needle, size_t n)
{
    size_t  i;

    for (i = 0; i + n <= len; i++) {
        if (s[i] == needle[0] && memcmp(s + i, needle, n) == 0) {
            return s + i;
        }
    }

    return NULL;
}


/* The unsigned decimal that ends just before `end`; its start in *start. */
static int
cutover_audit_number_before(const char *line, const char *end,
    const char **start, uint64_t *value)
{
    const char  *p = end;

    while (p > line && p[-1] >= '0' && p[-1] <= '9') {
        p--;
    }

    if (p == end || end - p > 19) {
        return -1;
    }

    *value = strtoull(p, NULL, 10);
    *start = p;
    return 0;
}


/*
 * Kept whole: the fields of an entry's head are taken in their fixed order,
 * each check reading on from the last.
 */
int
cutover_audit_parse_head(const char *line, size_t len,
    cutover_audit_head_t *head, cutover_error_t *err)
{
    char         computed[65], *end;
    size_t       body, prev, n;
    const char  *p, *q, *start;

    static const char  f_seq[] = CUTOVER_AUDIT_F_SEQ;
    static const char  f_action[] = CUTOVER_AUDIT_F_ACTION;
    static const char  f_break[] = CUTOVER_AUDIT_F_BREAK;
    static const char  f_prev[] = CUTOVER_AUDIT_F_PREV;
    static const char  f_hash[] = CUTOVER_AUDIT_F_HASH;
    static const char  f_end[] = CUTOVER_AUDIT_F_END;

    memset(head, 0, sizeof(*head));

    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        len--;
    }

    /* ...,"prev":"<64>","hash":"<64>"} */
    n = (sizeof(f_prev) - 1) + 64 + 1 + (sizeof(f_hash) - 1) + 64
        + (sizeof(f_end) - 1);

    if (len < sizeof(f_seq) - 1 + n) {
        cutover_error_set(err, "broken", "entry too short");
        return -1;
    }

    body = len - (sizeof(f_end) - 1) - 64 - (sizeof(f_hash) - 1);
    prev = body - 1 - 64 - (sizeof(f_prev) - 1);

    if (memcmp(line + body, f_hash, sizeof(f_hash) - 1) != 0
        || memcmp(line + len - (sizeof(f_end) - 1), f_end,
                  sizeof(f_end) - 1) != 0
        || !cutover_is_hex(line + body + sizeof(f_hash) - 1, 64))
    {
        cutover_error_set(err, "broken", "entry does not end with its hash");
        return -1;
    }

    if (memcmp(line + prev, f_prev, sizeof(f_prev) - 1) != 0
        || line[body - 1] != '"'
        || !cutover_is_hex(line + prev + sizeof(f_prev) - 1, 64))
    {
        cutover_error_set(err, "broken", "entry has no prev hash before its "
                          "hash");
        return -1;
    }

    if (memcmp(line, f_seq, sizeof(f_seq) - 1) != 0) {
        cutover_error_set(err, "broken", "entry does not start with its seq");
        return -1;
    }

    head->seq = strtoull(line + sizeof(f_seq) - 1, &end, 10);
    if (end == line + sizeof(f_seq) - 1 || *end != ','
        || line[sizeof(f_seq) - 1] == '-' || line[sizeof(f_seq) - 1] == '+')
    {
        cutover_error_set(err, "broken", "entry has a bad seq");
        return -1;
    }

    /* a '"' inside an escaped string is always preceded by '\', so the
     * first `","action":"` is the field */
    p = cutover_find(line, prev, f_action, sizeof(f_action) - 1);
    if (p == NULL) {
        cutover_error_set(err, "broken", "entry has no action");
        return -1;
    }

    p += sizeof(f_action) - 1;
    q = memchr(p, '"', (size_t) (line + prev - p));
    if (q == NULL || q == p || q - p > CUTOVER_AUDIT_ACTION_MAX) {
        cutover_error_set(err, "broken", "entry has a bad action");
        return -1;
    }

    memcpy(head->action, p, (size_t) (q - p));
    head->action[q - p] = '\0';

    /* an optional ,"pending_break":S just before ,"prev" */
    if (cutover_audit_number_before(line, line + prev, &start,
                                    &head->pending_break) == 0
        && (size_t) (start - line) >= sizeof(f_break) - 1
        && memcmp(start - (sizeof(f_break) - 1), f_break,
                  sizeof(f_break) - 1) == 0)
    {
        if (head->pending_break == 0 || head->pending_break > head->seq) {
            cutover_error_set(err, "broken", "entry has a bad "
                              "pending_break");
            return -1;
        }

    } else {
        head->pending_break = 0;
    }

    cutover_sha256_hex(line, body, computed);

    if (memcmp(computed, line + body + sizeof(f_hash) - 1, 64) != 0) {
        cutover_error_set(err, "broken", "hash does not match the entry's "
                          "text (the entry was edited)");
        return -1;
    }

    memcpy(head->prev, line + prev + sizeof(f_prev) - 1, 64);
    head->prev[64] = '\0';
    memcpy(head->hash, computed, 65);

    return 0;
}


int
cutover_audit_check_line(const char *line, size_t len, uint64_t seq,
    const char *prev, char hash[65], cutover_error_t *err)
{
    cutover_audit_head_t  head;

    if (cutover_audit_parse_head(line, len, &head, err) != 0) {
        return -1;
    }

    if (head.seq != seq) {
        cutover_error_set(err, "broken", "expected seq %llu (an entry was "
                          "removed, added or moved)",
                          (unsigned long long) seq);
        return -1;
    }

    if (strcmp(head.prev, prev) != 0) {
        cutover_error_set(err, "broken", "prev does not match the hash of "
                          "the entry before");
        return -1;
    }

    memcpy(hash, head.hash, 65);
    return 0;
}
