/* Bearer tokens of the admin listener (RFC 6750 section 2.1). */
#include "gateway/adminauth.h"

#include <strings.h>

bool adminauth_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    for (size_t i = 0; i < alen; i++)
        d |= (unsigned char)a[i] ^ (unsigned char)(i < blen ? b[i] : 0);
    return d == 0;
}

bool adminauth_bearer_ok(const char *want, size_t wlen, const char *v, size_t vlen)
{
    if (want == NULL || wlen == 0 || v == NULL)
        return false;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (vlen < 7 || strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return false;
    v += 7;
    vlen -= 7;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    return adminauth_equal(want, wlen, v, vlen);
}
