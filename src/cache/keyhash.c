/* HMAC-SHA256 of cache-key header values with OpenSSL's EVP_MAC: the key is set once into a
 * template context, and each hash works on a copy (no shared state written, so any loop thread
 * may hash at once, and the per-call cost is a copy plus two SHA-256 passes over short data). */
#include "cache/keyhash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

struct keyhash {
    EVP_MAC *mac;
    EVP_MAC_CTX *tmpl; // keyed, never used directly: copied for each hash
};

static void keyhash__fatal(const char *what)
{
    fprintf(stderr, "fatal: cache key hash: %s (OpenSSL without HMAC-SHA256?)\n", what);
    abort();
}

struct keyhash *keyhash_create(const void *secret, size_t len)
{
    struct keyhash *kh = xcalloc(1, sizeof(*kh));
    kh->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (kh->mac == NULL)
        keyhash__fatal("EVP_MAC_fetch(HMAC)");
    kh->tmpl = EVP_MAC_CTX_new(kh->mac);
    if (kh->tmpl == NULL)
        keyhash__fatal("EVP_MAC_CTX_new");
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(kh->tmpl, secret, len, params) != 1)
        keyhash__fatal("EVP_MAC_init");
    return kh;
}

void keyhash_destroy(struct keyhash *kh)
{
    if (kh == NULL)
        return;
    EVP_MAC_CTX_free(kh->tmpl);
    EVP_MAC_free(kh->mac);
    free(kh);
}

void keyhash_hex(const struct keyhash *kh, const char *data, size_t n, char out[KEYHASH_HEX_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t mdlen = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(kh->tmpl);
    if (ctx == NULL || EVP_MAC_update(ctx, (const unsigned char *)data, n) != 1 ||
        EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) != 1 || mdlen < KEYHASH_HEX_LEN / 2)
        keyhash__fatal("HMAC computation failed");
    EVP_MAC_CTX_free(ctx);
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < KEYHASH_HEX_LEN / 2; i++) {
        out[2 * i] = hx[md[i] >> 4];
        out[2 * i + 1] = hx[md[i] & 15];
    }
}

void keyhash_append(const struct keyhash *kh, const char *data, size_t n, struct buf *out)
{
    char hex[KEYHASH_HEX_LEN];
    keyhash_hex(kh, data, n, hex);
    buf_append(out, hex, sizeof(hex)); // <data> may be in <out>: appended only once hashed
}

int keyhash_random(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
}
