/* The field-by-field request head builder (see reqhead.h). It applies the h1 parser's checks
 * through the same functions (http/internal.h) and HTTP/2's own rules on top, and copies each
 * field once into the request's arena: one copy instead of the former serialise + re-parse. */
#include "http/reqhead.h"

#include <string.h>

#include "core/arena.h"
#include "http/internal.h"

enum {
    RH_METHOD = 1u << 0,
    RH_SCHEME = 1u << 1,
    RH_PATH = 1u << 2,
    RH_AUTHORITY = 1u << 3,
    RH_PROTOCOL = 1u << 4,
};

struct reqhead {
    struct arena *a;
    struct h1_header *hdrs;
    size_t max_hdrs, max_line, max_bytes;
    size_t n;     // fields in <hdrs>
    size_t bytes; // names and values so far, counted as HTTP/1.1 lines ("n: v\r\n")
    enum h1_err err;
    unsigned seen;     // RH_* pseudo-header fields seen
    bool regular;      // a regular field came: no pseudo-header field may follow
    unsigned ncl, nhost;
    uint64_t cl;
    const char *method, *path, *authority, *host, *cookie, *protocol;
    size_t method_len, path_len, authority_len, host_len, cookie_len, protocol_len;
};

struct reqhead *reqhead_begin(struct arena *a, struct h1_header *hdrs, size_t max_hdrs,
                              const struct h1_limits *lim)
{
    struct reqhead *h = arena_alloc(a, sizeof(*h));
    if (h == NULL)
        return NULL;
    memset(h, 0, sizeof(*h));
    h->a = a;
    h->hdrs = hdrs;
    h1__limits_of(lim, max_hdrs, &h->max_line, &h->max_bytes, &h->max_hdrs);
    return h;
}

enum h1_err reqhead_err(const struct reqhead *h)
{
    return h->err;
}

static int rh__fail(struct reqhead *h, enum h1_err err)
{
    if (h->err == H1_OK)
        h->err = err;
    return -1;
}

static inline bool rh__is(const char *n, size_t nlen, const char *lit)
{
    size_t l = strlen(lit);
    return nlen == l && memcmp(n, lit, l) == 0;
}

/* A copy in the arena; NULL (and 431) when it is full. */
static const char *rh__copy(struct reqhead *h, const char *p, size_t n)
{
    char *c = arena_strndup(h->a, p, n);
    if (c == NULL)
        rh__fail(h, H1_ERR_HEAD_TOO_LARGE);
    return c;
}

/* Pseudo-header fields (RFC 9113 §8.3.1): each once, before every regular field. */
static int rh__pseudo(struct reqhead *h, const char *n, size_t nlen, const char *v, size_t vlen)
{
    unsigned bit;
    if (rh__is(n, nlen, ":method"))
        bit = RH_METHOD;
    else if (rh__is(n, nlen, ":scheme"))
        bit = RH_SCHEME;
    else if (rh__is(n, nlen, ":path"))
        bit = RH_PATH;
    else if (rh__is(n, nlen, ":authority"))
        bit = RH_AUTHORITY;
    else if (rh__is(n, nlen, ":protocol"))
        bit = RH_PROTOCOL; // RFC 8441 extended CONNECT (the session announced it)
    else
        return rh__fail(h, H1_ERR_PSEUDO); // :status, unknown
    if (h->regular || (h->seen & bit))
        return rh__fail(h, H1_ERR_PSEUDO);
    h->seen |= bit;
    const unsigned char *u = (const unsigned char *)v;
    switch (bit) {
    case RH_METHOD:
        for (size_t i = 0; i < vlen; i++)
            if (!h1__tchar[u[i]])
                return rh__fail(h, H1_ERR_METHOD);
        if (vlen == 0)
            return rh__fail(h, H1_ERR_METHOD);
        h->method = rh__copy(h, v, vlen);
        h->method_len = vlen;
        break;
    case RH_SCHEME: // only checked: X-Forwarded-Proto says what the connection really was
        for (size_t i = 0; i < vlen; i++)
            if (!(((u[i] | 0x20) >= 'a' && (u[i] | 0x20) <= 'z') ||
                  (i > 0 && ((u[i] >= '0' && u[i] <= '9') || u[i] == '+' || u[i] == '-' ||
                             u[i] == '.'))))
                return rh__fail(h, H1_ERR_TARGET);
        if (vlen == 0)
            return rh__fail(h, H1_ERR_TARGET);
        break;
    case RH_PATH:
        if (vlen > h->max_line)
            return rh__fail(h, H1_ERR_URI_TOO_LONG);
        /* the h1 target bytes: no CTL, SP, DEL or '#'; the form is checked at the end */
        for (size_t i = 0; i < vlen; i++)
            if (!h1__target[u[i]])
                return rh__fail(h, H1_ERR_TARGET);
        if (vlen == 0)
            return rh__fail(h, H1_ERR_TARGET);
        h->path = rh__copy(h, v, vlen);
        h->path_len = vlen;
        break;
    case RH_AUTHORITY:
        /* as a Host value: no userinfo, '/', '?', whitespace (one origin for every parser) */
        if (!h1__authority_valid(u, vlen, false, false))
            return rh__fail(h, H1_ERR_HOST);
        h->authority = rh__copy(h, v, vlen);
        h->authority_len = vlen;
        break;
    case RH_PROTOCOL: // a token ("websocket"); which ones are served is the request layer's say
        for (size_t i = 0; i < vlen; i++)
            if (!h1__tchar[u[i]])
                return rh__fail(h, H1_ERR_PSEUDO);
        if (vlen == 0)
            return rh__fail(h, H1_ERR_PSEUDO);
        h->protocol = rh__copy(h, v, vlen);
        h->protocol_len = vlen;
        break;
    }
    return h->err == H1_OK ? 0 : -1;
}

/* RFC 9113 §8.2.2: fields that only mean something to one HTTP/1.1 connection. */
static bool rh__conn_specific(const char *n, size_t nlen, const char *v, size_t vlen)
{
    if (rh__is(n, nlen, "connection") || rh__is(n, nlen, "keep-alive") ||
        rh__is(n, nlen, "proxy-connection") || rh__is(n, nlen, "transfer-encoding") ||
        rh__is(n, nlen, "upgrade"))
        return true;
    if (rh__is(n, nlen, "te")) { // "trailers" only
        static const char tr[] = "trailers";
        if (vlen != sizeof(tr) - 1)
            return true;
        for (size_t i = 0; i < vlen; i++)
            if ((v[i] | 0x20) != tr[i])
                return true;
    }
    return false;
}

enum h1_err reqhead_field_check(const char *n, size_t nlen, const char *v, size_t vlen)
{
    const unsigned char *un = (const unsigned char *)n, *uv = (const unsigned char *)v;
    if (nlen == 0)
        return H1_ERR_HEADER_NAME;
    for (size_t i = 0; i < nlen; i++)
        if (!h1__tchar[un[i]] || (un[i] >= 'A' && un[i] <= 'Z')) // HTTP/2 names are lower case
            return H1_ERR_HEADER_NAME;
    for (size_t i = 0; i < vlen; i++)
        if (!h1__vchar[uv[i]])
            return H1_ERR_HEADER_VALUE; // NUL, CR, LF, other CTLs, DEL
    /* RFC 9113 §8.2.1: no leading or trailing whitespace (HTTP/1.1 would have trimmed it) */
    if (vlen > 0 && (v[0] == ' ' || v[0] == '\t' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        return H1_ERR_HEADER_VALUE;
    return H1_OK;
}

int reqhead_field(struct reqhead *h, const char *n, size_t nlen, const char *v, size_t vlen)
{
    if (h->err != H1_OK)
        return -1;
    h->bytes += nlen + vlen + 4;
    if (h->bytes > h->max_bytes)
        return rh__fail(h, H1_ERR_HEAD_TOO_LARGE);
    if (nlen > 0 && n[0] == ':')
        return rh__pseudo(h, n, nlen, v, vlen);
    h->regular = true;
    const unsigned char *uv = (const unsigned char *)v;
    enum h1_err fe = reqhead_field_check(n, nlen, v, vlen);
    if (fe != H1_OK)
        return rh__fail(h, fe);
    if (rh__conn_specific(n, nlen, v, vlen))
        return rh__fail(h, H1_ERR_CONN_FIELD);
    if (rh__is(n, nlen, "content-length")) {
        uint64_t cl;
        if (h1__parse_content_length(uv, vlen, &cl) == -1 || (h->ncl > 0 && cl != h->cl))
            return rh__fail(h, H1_ERR_CONTENT_LENGTH);
        h->ncl++;
        h->cl = cl;
    } else if (rh__is(n, nlen, "host")) {
        if (++h->nhost > 1 || !h1__authority_valid(uv, vlen, true, false))
            return rh__fail(h, H1_ERR_HOST);
    } else if (rh__is(n, nlen, "cookie")) {
        /* RFC 9113 §8.2.3: split cookie fields are joined with "; " for HTTP/1.1 */
        size_t len = h->cookie_len ? h->cookie_len + 2 + vlen : vlen;
        char *c = arena_alloc(h->a, len + 1);
        if (c == NULL)
            return rh__fail(h, H1_ERR_HEAD_TOO_LARGE);
        size_t k = 0;
        if (h->cookie_len) {
            memcpy(c, h->cookie, h->cookie_len);
            memcpy(c + h->cookie_len, "; ", 2);
            k = h->cookie_len + 2;
        }
        memcpy(c + k, v, vlen);
        c[len] = '\0';
        h->cookie = c;
        h->cookie_len = len;
        return 0;
    }
    if (h->n == h->max_hdrs)
        return rh__fail(h, H1_ERR_TOO_MANY_HEADERS);
    char *c = arena_alloc(h->a, nlen + vlen + 2);
    if (c == NULL)
        return rh__fail(h, H1_ERR_HEAD_TOO_LARGE);
    memcpy(c, n, nlen);
    c[nlen] = '\0';
    memcpy(c + nlen + 1, v, vlen);
    c[nlen + 1 + vlen] = '\0';
    struct h1_header *f = &h->hdrs[h->n++];
    f->name = c;
    f->name_len = nlen;
    f->value = c + nlen + 1;
    f->value_len = vlen;
    if (rh__is(n, nlen, "host")) {
        h->host = f->value;
        h->host_len = vlen;
    }
    return 0;
}

static int rh__add(struct reqhead *h, const char *n, size_t nlen, const char *v, size_t vlen)
{
    if (h->n == h->max_hdrs)
        return rh__fail(h, H1_ERR_TOO_MANY_HEADERS);
    h->hdrs[h->n++] = (struct h1_header){n, nlen, v, vlen};
    return 0;
}

static bool rh__same_host(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if ((a[i] | 0x20) != (b[i] | 0x20)) // authority bytes: letters fold, the rest is exact
            return false;
    return true;
}

int reqhead_finish(struct reqhead *h, struct h1_request *req, bool body_follows)
{
    memset(req, 0, sizeof(*req));
    req->headers = h->hdrs;
    if (h->err != H1_OK)
        goto fail;
    if (!(h->seen & RH_METHOD)) {
        rh__fail(h, H1_ERR_PSEUDO);
        goto fail;
    }
    req->method = h->method;
    req->method_len = h->method_len;
    req->method_id = h1__method_id(h->method, h->method_len);
    req->minor_version = 1; // the request layer treats it as HTTP/1.1 semantics
    if (h->seen & RH_PROTOCOL) {
        /* RFC 8441 §4: :protocol only on CONNECT, which then carries :scheme, :path and
         * :authority like any request: the path routes it, the tunnel's bytes are no body */
        if (req->method_id != H1_M_CONNECT ||
            (h->seen & (RH_SCHEME | RH_PATH | RH_AUTHORITY)) !=
                (RH_SCHEME | RH_PATH | RH_AUTHORITY) ||
            h->path[0] != '/') {
            rh__fail(h, H1_ERR_PSEUDO);
            goto fail;
        }
        req->protocol = h->protocol;
        req->protocol_len = h->protocol_len;
        req->target = h->path;
        req->target_len = h->path_len;
    } else if (req->method_id == H1_M_CONNECT) {
        /* RFC 9113 §8.5: :authority only; the request layer answers 501 */
        if ((h->seen & (RH_SCHEME | RH_PATH)) || !(h->seen & RH_AUTHORITY)) {
            rh__fail(h, H1_ERR_PSEUDO);
            goto fail;
        }
        req->target = h->authority;
        req->target_len = h->authority_len;
    } else {
        if ((h->seen & (RH_SCHEME | RH_PATH)) != (RH_SCHEME | RH_PATH)) {
            rh__fail(h, H1_ERR_PSEUDO);
            goto fail;
        }
        /* origin-form, or "*" for OPTIONS (RFC 9113 §8.3.1): never absolute-form */
        if (h->path[0] != '/' && !(h->path_len == 1 && h->path[0] == '*')) {
            rh__fail(h, H1_ERR_TARGET);
            goto fail;
        }
        req->target = h->path;
        req->target_len = h->path_len;
    }
    const char *abs_host = NULL;
    size_t abs_len = 0;
    if (h1__classify_target(req, &abs_host, &abs_len) == -1) {
        rh__fail(h, H1_ERR_TARGET);
        goto fail;
    }
    /* :authority is the host; a Host field beside it must name the same one (RFC 9113 §8.3.1),
     * or the route and the origin could see two different hosts */
    if (h->authority != NULL) {
        if (h->nhost > 0 && !rh__same_host(h->host, h->host_len, h->authority, h->authority_len)) {
            rh__fail(h, H1_ERR_HOST);
            goto fail;
        }
        if (h->nhost == 0 && rh__add(h, "host", 4, h->authority, h->authority_len) == -1)
            goto fail;
        req->host = h->authority;
        req->host_len = h->authority_len;
    } else if (h->nhost > 0) {
        req->host = h->host;
        req->host_len = h->host_len;
    } else {
        rh__fail(h, H1_ERR_HOST); // as HTTP/1.1 requires a Host
        goto fail;
    }
    if (h->cookie != NULL && rh__add(h, "cookie", 6, h->cookie, h->cookie_len) == -1)
        goto fail;
    if (req->protocol != NULL) {
        /* what follows the head of an extended CONNECT is the tunnel's, not a request body */
        if (h->ncl > 0 && h->cl > 0) {
            rh__fail(h, H1_ERR_CONTENT_LENGTH);
            goto fail;
        }
        req->body = H1_BODY_NONE;
    } else if (!body_follows) {
        /* END_STREAM on the head: a Content-Length promising bytes is a lie (§8.1.1) */
        if (h->ncl > 0 && h->cl > 0) {
            rh__fail(h, H1_ERR_CONTENT_LENGTH);
            goto fail;
        }
        req->body = H1_BODY_NONE;
    } else if (h->ncl > 0) {
        req->body = H1_BODY_LENGTH;
        req->content_length = h->cl;
    } else {
        req->body = H1_BODY_CHUNKED;
    }
    req->nheaders = h->n;
    req->keep_alive = true;
    return 0;
fail:
    req->nheaders = h->n;
    req->err = h->err;
    return -1;
}
