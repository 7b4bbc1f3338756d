/* WebSocket key and accept values (see wskey.h): SHA-1 and base64 from OpenSSL's EVP, the key's
 * randomness from getrandom(2). Not a WebSocket implementation: frames are never looked at. */
#include "net/wskey.h"

#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "core/assert.h"

/* RFC 6455 §1.3: the GUID every accept value is derived with */
static const char wskey__guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void wskey_new(char key[WSKEY_LEN + 1])
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof(raw)) { // never short for 16 bytes once the pool is up; loop anyway
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        AG_ASSERT(n > 0);
        got += (size_t)n;
    }
    int n = EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    AG_ASSERT(n == WSKEY_LEN);
    key[WSKEY_LEN] = '\0';
}

void wskey_accept(const char *key, size_t len, char out[WSKEY_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    AG_ASSERT(c != NULL);
    int ok = EVP_DigestInit_ex(c, EVP_sha1(), NULL) && EVP_DigestUpdate(c, key, len) &&
             EVP_DigestUpdate(c, wskey__guid, sizeof(wskey__guid) - 1) &&
             EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    AG_ASSERT(ok && mdlen == 20);
    int n = EVP_EncodeBlock((unsigned char *)out, md, mdlen);
    AG_ASSERT(n == WSKEY_ACCEPT_LEN);
    out[WSKEY_ACCEPT_LEN] = '\0';
}

bool wskey_accept_ok(const char *key, const char *v, size_t vlen)
{
    char want[WSKEY_ACCEPT_LEN + 1];
    wskey_accept(key, strlen(key), want);
    return vlen == WSKEY_ACCEPT_LEN && memcmp(v, want, WSKEY_ACCEPT_LEN) == 0;
}
