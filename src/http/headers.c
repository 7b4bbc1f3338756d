/* Lookups over the parser's header arrays. Linear scans on purpose: a request has ~10 headers and
 * a hash would cost more to build than it saves. Names are compared ASCII case-insensitively
 * (RFC 9110 §5.1); no locale is involved. */
#include "http/headers.h"

#include <string.h>

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
}

bool headers_name_eq(const char *a, size_t alen, const char *b)
{
    size_t i = 0;
    for (; i < alen; i++) {
        if (b[i] == '\0' || lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    }
    return b[i] == '\0';
}

static bool span_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

const struct h1_header *headers_find(const struct h1_header *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (span_eq(h[i].name, h[i].name_len, name, len))
            return &h[i];
    return NULL;
}

bool headers_has_token(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i <= len) {
        size_t s = i;
        while (i < len && value[i] != ',')
            i++;
        size_t e = i;
        while (s < e && (value[s] == ' ' || value[s] == '\t'))
            s++;
        while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
            e--;
        if (span_eq(value + s, e - s, token, tlen))
            return true;
        i++; /* past the comma */
    }
    return false;
}

bool headers_is_hop_by_hop(const char *name, size_t len)
{
    /* The fixed set of RFC 9110 §7.6.1 plus the de-facto Keep-Alive and Proxy-Connection. */
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "proxy-authenticate", "proxy-authorization",
    };
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (headers_name_eq(name, len, hop[i]))
            return true;
    return false;
}

bool headers_listed_in_connection(const struct h1_header *h, size_t n, const char *name,
                                  size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (!span_eq(h[i].name, h[i].name_len, "connection", 10))
            continue;
        const char *v = h[i].value;
        size_t vlen = h[i].value_len, j = 0;
        while (j <= vlen) {
            size_t s = j;
            while (j < vlen && v[j] != ',')
                j++;
            size_t e = j;
            while (s < e && (v[s] == ' ' || v[s] == '\t'))
                s++;
            while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                e--;
            if (span_eq(v + s, e - s, name, len))
                return true;
            j++;
        }
    }
    return false;
}
