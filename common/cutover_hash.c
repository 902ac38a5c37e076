/*
 * cutover_hash: SHA-256, HMAC-SHA256 and hex over OpenSSL (see
 * cutover_hash.h).
 */

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/cutover_hash.h"


void
cutover_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned       n = 0;
    unsigned char  md[EVP_MAX_MD_SIZE];

    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    cutover_hex(md, 32, hex);
}


void
cutover_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
    size_t len, char hex[65])
{
    unsigned int   n = 0;
    unsigned char  md[EVP_MAX_MD_SIZE];

    if (HMAC(EVP_sha256(), key, (int) keylen, data, len, md, &n) == NULL
        || n != 32)
    {
        hex[0] = '\0';
        return;
    }

    cutover_hex(md, 32, hex);
}


void
cutover_hex(const unsigned char *in, size_t len, char *out)
{
    size_t             i;
    static const char  digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }

    out[2 * len] = '\0';
}
