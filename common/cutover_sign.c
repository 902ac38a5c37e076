/*
 * cutover_sign: the signing side of the admin API's signatures (see
 * cutover_sign.h), shared by the module, cutoverctl and cutover-shadowd.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/cutover_hash.h"
#include "common/cutover_sign.h"


static const char  *cutover_roles[] = { "none", "viewer", "guard", "operator",
                                        "admin" };


int
cutover_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


int
cutover_is_hex(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (cutover_hex_value(s[i]) < 0) {
            return 0;
        }
    }

    return 1;
}


cutover_role_e
cutover_role_parse(const char *s)
{
    int  i;

    for (i = CUTOVER_ROLE_VIEWER; i <= CUTOVER_ROLE_ADMIN; i++) {
        if (strcmp(s, cutover_roles[i]) == 0) {
            return (cutover_role_e) i;
        }
    }

    return CUTOVER_ROLE_NONE;
}


const char *
cutover_role_name(cutover_role_e role)
{
    return cutover_roles[role <= CUTOVER_ROLE_ADMIN ? role : 0];
}


int
cutover_key_parse_line(const char *line, size_t len, cutover_key_t *key,
    cutover_error_t *err)
{
    char    buf[512], *f[4], *save = NULL;
    size_t  n, i;

    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        len--;
    }

    if (len >= sizeof(buf)) {
        cutover_error_set(err, "invalid_key", "line too long");
        return -1;
    }

    memcpy(buf, line, len);
    buf[len] = '\0';

    for (n = 0; n < 4; n++) {
        f[n] = strtok_r(n ? NULL : buf, " \t", &save);
        if (f[n] == NULL) {
            break;
        }
    }

    if (n == 0 || f[0][0] == '#') {
        return 0;
    }

    if (n != 3) {
        cutover_error_set(err, "invalid_key", "expected \"<key-id> <role> "
                          "<hex secret>\"");
        return -1;
    }

    if (!cutover_id_valid(f[0], strlen(f[0]))) {
        cutover_error_set(err, "invalid_key", "bad key id \"%.40s\"", f[0]);
        return -1;
    }

    key->role = cutover_role_parse(f[1]);
    if (key->role == CUTOVER_ROLE_NONE) {
        cutover_error_set(err, "invalid_key", "unknown role \"%.20s\" "
                          "(viewer, guard, operator or admin)", f[1]);
        return -1;
    }

    n = strlen(f[2]);
    if (n % 2 || n < 2 * CUTOVER_SECRET_MIN || n > 2 * CUTOVER_SECRET_MAX
        || !cutover_is_hex(f[2], n))
    {
        cutover_error_set(err, "invalid_key", "secret of key \"%s\" must be "
                          "%d to %d hex digits", f[0], 2 * CUTOVER_SECRET_MIN,
                          2 * CUTOVER_SECRET_MAX);
        return -1;
    }

    for (i = 0; i < n / 2; i++) {
        key->secret[i] = (unsigned char) (cutover_hex_value(f[2][2 * i]) << 4
                                          | cutover_hex_value(f[2][2 * i + 1]));
    }

    key->secret_len = n / 2;
    strcpy(key->id, f[0]);
    OPENSSL_cleanse(buf, sizeof(buf));

    return 1;
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


int
cutover_auth_sign(const unsigned char *secret, size_t secret_len,
    const char *method, size_t method_len, const char *path, size_t path_len,
    int64_t timestamp, const char *nonce, const void *body, size_t body_len,
    char signature[65])
{
    int            n;
    char           head[128], bodyhash[65];
    unsigned int   mdlen = 0;
    unsigned char  md[EVP_MAX_MD_SIZE];
    EVP_MD_CTX    *ctx;
    EVP_PKEY      *pkey;
    size_t         siglen = sizeof(md);

    cutover_sha256_hex(body ? body : "", body_len, bodyhash);

    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, secret,
                                        secret_len);
    ctx = EVP_MD_CTX_new();

    if (pkey == NULL || ctx == NULL
        || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1
        || EVP_DigestSignUpdate(ctx, method, method_len) != 1
        || EVP_DigestSignUpdate(ctx, "\n", 1) != 1
        || EVP_DigestSignUpdate(ctx, path, path_len) != 1)
    {
        goto failed;
    }

    n = snprintf(head, sizeof(head), "\n%lld\n%s\n", (long long) timestamp,
                 nonce);

    if (n < 0 || (size_t) n >= sizeof(head)
        || EVP_DigestSignUpdate(ctx, head, (size_t) n) != 1
        || EVP_DigestSignUpdate(ctx, bodyhash, 64) != 1
        || EVP_DigestSignFinal(ctx, md, &siglen) != 1)
    {
        goto failed;
    }

    mdlen = (unsigned int) siglen;
    cutover_hex(md, mdlen, signature);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return 0;

failed:

    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return -1;
}


int
cutover_auth_header(const char *key_id, const unsigned char *secret,
    size_t secret_len, const char *method, const char *url,
    const char *body, int64_t now, char *out, size_t cap,
    cutover_error_t *err)
{
    int             n;
    char            sig[65], nonce[33];
    const char     *path;
    unsigned char   rnd[16];

    /* the signed path is the path and query as sent */
    path = strstr(url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    if (path == NULL) {
        cutover_error_set(err, "bad_url", "no path in the URL \"%.200s\"",
                          url);
        return CUTOVER_ERROR;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        cutover_error_set(err, "no_random", "no randomness for a nonce");
        return CUTOVER_ERROR;
    }

    cutover_hex(rnd, sizeof(rnd), nonce);

    if (cutover_auth_sign(secret, secret_len, method, strlen(method), path,
                          strlen(path), now, nonce, body,
                          body ? strlen(body) : 0, sig) != 0)
    {
        cutover_error_set(err, "sign_failed", "cannot sign the request");
        return CUTOVER_ERROR;
    }

    n = snprintf(out, cap, "Authorization: CUTOVER-HMAC-SHA256 KeyId=%s, "
                 "Timestamp=%lld, Nonce=%s, Signature=%s", key_id,
                 (long long) now, nonce, sig);
    if (n < 0 || (size_t) n >= cap) {
        cutover_error_set(err, "too_long", "key id too long");
        return CUTOVER_ERROR;
    }

    return CUTOVER_OK;
}
