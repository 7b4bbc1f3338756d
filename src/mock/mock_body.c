/* Response bodies of the mock's handlers. Every body depends on what identifies the resource (the
 * {id}, the query, the user behind the token), so a gateway that caches under a wrong key serves a
 * body a test can tell apart; and bodies are padded to the route's body_size so payload size is a
 * knob of the benchmark. Pure: no I/O, no clock. */
#include <stdio.h>
#include <string.h>

#include "http/headers.h"
#include "mock/internal.h"

char mock_last_modified[HTTP_DATE_LEN + 1] = "Thu, 01 Jan 2026 00:00:00 GMT";
int64_t mock_last_modified_s = 1767225600;

static uint64_t mock_body__hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: tiny and stable across runs */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Strong: the same bytes always give the same tag, so 304s work across restarts too. */
void mock_body_etag(const char *body, size_t len, char out[24])
{
    snprintf(out, 24, "\"%016llx\"", (unsigned long long)mock_body__hash(body, len));
}

/* Error bodies are JSON like the rest, so clients parse one format. */
void mock_body_error(struct buf *out, const char *msg)
{
    buf_append_str(out, "{\"error\":");
    buf_append_json_str(out, msg, strlen(msg));
    buf_append_str(out, "}");
}

/* Exactly <size> bytes when the object is smaller: benchmarks compare equal payloads. */
void mock_body_pad(struct buf *out, uint64_t size)
{
    static const char filler[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    const size_t overhead = sizeof(",\"padding\":\"\"") - 1;
    size_t len = buf_pending(out);
    if (len == 0 || buf_head(out)[len - 1] != '}' || size < len + overhead)
        return;
    bool empty = len == 2; /* "{}": no comma before the member */
    size_t pad = (size_t)size - len - overhead + (empty ? 1 : 0);
    out->len--; /* reopen the object */
    buf_append_str(out, empty ? "\"padding\":\"" : ",\"padding\":\"");
    buf_reserve(out, pad + 2);
    while (pad > 0) {
        size_t n = pad < sizeof(filler) - 1 ? pad : sizeof(filler) - 1;
        buf_append(out, filler, n);
        pad -= n;
    }
    buf_append_str(out, "\"}");
}

/* The first {param} of the route, or "" when it has none. */
static void mock_body__param(const struct mock_reqinfo *ri, const char **v, size_t *n)
{
    *v = "";
    *n = 0;
    if (ri->nparams > 0) {
        *v = ri->params[0].value;
        *n = ri->params[0].value_len;
    }
}

/* A non-empty query parameter (an empty one counts as missing: 400). */
static bool mock_body__query(const struct mock_reqinfo *ri, const char *name, const char **v,
                             size_t *n)
{
    if (!ri->req)
        return false;
    return mock_query_get(ri->req->query, ri->req->query_len, name, v, n) && *n > 0;
}

/* A user record derived from the id (plan and order count are hashes of it). */
static void mock_body__user(const struct mock_reqinfo *ri, struct buf *out)
{
    const char *id;
    size_t n;
    mock_body__param(ri, &id, &n);
    static const char *const plans[] = {"free", "pro", "team", "enterprise"};
    uint64_t h = mock_body__hash(id, n);
    enum h1_method m = ri->req ? ri->req->method_id : H1_M_GET;
    buf_append_str(out, "{\"id\":");
    buf_append_json_str(out, id, n);
    if (m == H1_M_PUT || m == H1_M_PATCH || m == H1_M_POST) {
        buf_printf(out, ",\"updated\":true,\"received_bytes\":%zu}", ri->body_len);
        return;
    }
    if (m == H1_M_DELETE) {
        buf_append_str(out, ",\"deleted\":true}");
        return;
    }
    buf_printf(out,
               ",\"name\":\"user-%.*s\",\"email\":\"user-%.*s@example.com\",\"plan\":\"%s\","
               "\"orders\":%llu}",
               (int)n, id, (int)n, id, plans[h % 4], (unsigned long long)(h % 97));
    /* the id goes in verbatim into name/email: keep it JSON-safe */
    for (size_t i = 0; i < n; i++) {
        if (id[i] == '"' || id[i] == '\\' || (unsigned char)id[i] < 0x20) {
            out->len = out->off;
            buf_append_str(out, "{\"id\":");
            buf_append_json_str(out, id, n);
            buf_append_str(out, "}");
            return;
        }
    }
}

/* Three orders whose totals are derived from user_id: another user, other numbers. */
static int mock_body__orders(const struct mock_reqinfo *ri, struct buf *out)
{
    const char *uid;
    size_t n;
    if (!mock_body__query(ri, "user_id", &uid, &n)) {
        mock_body_error(out, "query parameter user_id is required");
        return 400;
    }
    uint64_t h = mock_body__hash(uid, n);
    buf_append_str(out, "{\"user_id\":");
    buf_append_json_str(out, uid, n);
    buf_append_str(out, ",\"orders\":[");
    for (int i = 0; i < 3; i++) {
        uint64_t cents = (h >> (i * 12)) % 50000;
        buf_printf(out, "%s{\"n\":%d,\"total\":%llu.%02llu}", i ? "," : "", i + 1,
                   (unsigned long long)(cents / 100), (unsigned long long)(cents % 100));
    }
    buf_append_str(out, "]}");
    return 0;
}

/* The same catalog for everyone: the shared, cacheable resource. */
static void mock_body__products(struct buf *out)
{
    buf_append_str(out, "{\"products\":[");
    for (int i = 1; i <= 10; i++)
        buf_printf(out, "%s{\"id\":%d,\"name\":\"product-%d\",\"price\":%d.99}", i > 1 ? "," : "",
                   i, i, i * 7);
    buf_append_str(out, "]}");
}

/* Results derived from q: each query is its own cache entry. */
static int mock_body__search(const struct mock_reqinfo *ri, struct buf *out)
{
    const char *q;
    size_t n;
    if (!mock_body__query(ri, "q", &q, &n)) {
        mock_body_error(out, "query parameter q is required");
        return 400;
    }
    uint64_t h = mock_body__hash(q, n);
    buf_append_str(out, "{\"q\":");
    buf_append_json_str(out, q, n);
    buf_append_str(out, ",\"results\":[");
    for (int i = 0; i < 3; i++)
        buf_printf(out, "%s{\"id\":%llu,\"score\":0.%02d}", i ? "," : "",
                   (unsigned long long)((h >> (i * 16)) % 10000), 90 - i * 10);
    buf_append_str(out, "]}");
    return 0;
}

/* Finds the user name in a login body: JSON {"user": "…"} / {"username": "…"} or a form
 * user=…; only [A-Za-z0-9._-] is accepted, so it can go into a token unescaped. */
static bool mock_body__login_user(const char *b, size_t len, const char **u, size_t *ulen)
{
    static const char *const keys[] = {"\"username\"", "\"user\"", "username=", "user=", NULL};
    for (size_t k = 0; keys[k]; k++) {
        size_t kl = strlen(keys[k]);
        for (size_t i = 0; i + kl <= len; i++) {
            if (memcmp(b + i, keys[k], kl) != 0)
                continue;
            if (keys[k][0] == '=' || keys[k][kl - 1] == '=') {
                if (i > 0 && b[i - 1] != '&')
                    continue;
                size_t s = i + kl, e = s;
                while (e < len && b[e] != '&')
                    e++;
                *u = b + s;
                *ulen = e - s;
            } else {
                size_t j = i + kl;
                while (j < len && (b[j] == ' ' || b[j] == ':'))
                    j++;
                if (j >= len || b[j] != '"')
                    continue;
                size_t s = ++j;
                while (j < len && b[j] != '"')
                    j++;
                *u = b + s;
                *ulen = j - s;
            }
            if (*ulen == 0 || *ulen > 64)
                return false;
            for (size_t c = 0; c < *ulen; c++) {
                char ch = (*u)[c];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
                    return false;
            }
            return true;
        }
    }
    return false;
}

/* The token names the user, so /me can answer without a session store. */
static int mock_body__login(const struct mock_reqinfo *ri, struct buf *out)
{
    const char *u;
    size_t n;
    if (!mock_body__login_user(ri->body ? ri->body : "", ri->body_len, &u, &n)) {
        mock_body_error(out, "body must name a user: {\"user\": \"alice\"} or user=alice "
                             "([A-Za-z0-9._-], up to 64)");
        return 400;
    }
    buf_printf(out, "{\"token\":\"tok-%.*s\",\"user\":\"%.*s\",\"expires_in\":3600}", (int)n, u,
               (int)n, u);
    return 0;
}

/* Per-user: a cache that ignores Authorization serves alice's body to bob, visibly. */
static int mock_body__me(const struct mock_reqinfo *ri, struct buf *out)
{
    const struct h1_header *a =
        ri->req ? headers_find(ri->req->headers, ri->req->nheaders, "Authorization") : NULL;
    if (!a || a->value_len <= 7 || strncasecmp(a->value, "Bearer ", 7) != 0) {
        mock_body_error(out, "missing or invalid bearer token");
        return 401;
    }
    const char *tok = a->value + 7;
    size_t n = a->value_len - 7;
    if (n > 4 && memcmp(tok, "tok-", 4) == 0) {
        tok += 4;
        n -= 4;
    }
    uint64_t h = mock_body__hash(tok, n);
    buf_append_str(out, "{\"user\":");
    buf_append_json_str(out, tok, n);
    buf_printf(out, ",\"id\":%llu,\"roles\":[\"%s\"]}", (unsigned long long)(h % 100000),
               h % 5 == 0 ? "admin" : "member");
    return 0;
}

/* What the origin received: gateway tests check forwarded and hop-by-hop headers here. */
static void mock_body__echo(const struct mock_reqinfo *ri, struct buf *out)
{
    const struct h1_request *q = ri->req;
    buf_append_str(out, "{\"method\":");
    buf_append_json_str(out, q->method, q->method_len);
    buf_append_str(out, ",\"path\":");
    buf_append_json_str(out, q->path, q->path_len);
    buf_append_str(out, ",\"query\":");
    if (q->query)
        buf_append_json_str(out, q->query, q->query_len);
    else
        buf_append_str(out, "null");
    buf_append_str(out, ",\"target\":");
    buf_append_json_str(out, q->target, q->target_len);
    /* names lower-cased; repeated headers joined with ", " as RFC 9110 §5.3 allows */
    buf_append_str(out, ",\"headers\":{");
    bool first = true;
    for (size_t i = 0; i < q->nheaders; i++) {
        const struct h1_header *h = &q->headers[i];
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = h->name_len == q->headers[j].name_len &&
                   strncasecmp(h->name, q->headers[j].name, h->name_len) == 0;
        if (seen)
            continue;
        char lname[256];
        size_t ln = h->name_len < sizeof(lname) ? h->name_len : sizeof(lname);
        for (size_t c = 0; c < ln; c++)
            lname[c] =
                (char)((h->name[c] >= 'A' && h->name[c] <= 'Z') ? h->name[c] + 32 : h->name[c]);
        buf_append_str(out, first ? "" : ",");
        first = false;
        buf_append_json_str(out, lname, ln);
        buf_append_str(out, ":");
        struct buf v = BUF_INIT;
        buf_append(&v, h->value, h->value_len);
        for (size_t j = i + 1; j < q->nheaders; j++) {
            const struct h1_header *o = &q->headers[j];
            if (o->name_len == h->name_len && strncasecmp(o->name, h->name, h->name_len) == 0) {
                buf_append(&v, ", ", 2);
                buf_append(&v, o->value, o->value_len);
            }
        }
        buf_append_json_str(out, buf_head(&v), buf_pending(&v));
        buf_deinit(&v);
    }
    buf_append_str(out, "},\"body\":");
    buf_append_json_str(out, ri->body ? ri->body : "", ri->body_len);
    buf_printf(out, ",\"body_len\":%zu}", ri->body_len);
}

/* The default handler: enough of the request to tell any two URLs apart. */
static void mock_body__json(const struct mock_route *r, const struct mock_reqinfo *ri,
                            struct buf *out)
{
    buf_append_str(out, "{\"route\":");
    buf_append_json_str(out, r->name, strlen(r->name));
    if (ri->req) {
        buf_append_str(out, ",\"method\":");
        buf_append_json_str(out, ri->req->method, ri->req->method_len);
        buf_append_str(out, ",\"path\":");
        buf_append_json_str(out, ri->req->path, ri->req->path_len);
        buf_append_str(out, ",\"query\":");
        if (ri->req->query)
            buf_append_json_str(out, ri->req->query, ri->req->query_len);
        else
            buf_append_str(out, "null");
    }
    buf_append_str(out, ",\"params\":{");
    for (size_t i = 0; i < ri->nparams; i++) {
        buf_append_str(out, i ? "," : "");
        buf_append_json_str(out, ri->params[i].name, strlen(ri->params[i].name));
        buf_append_str(out, ":");
        buf_append_json_str(out, ri->params[i].value, ri->params[i].value_len);
    }
    buf_append_str(out, "}}");
}

/* Dispatches on the route's handler; padding applies to successful JSON answers only. */
int mock_body_build(const struct mock_route *r, const struct mock_reqinfo *ri, struct buf *out)
{
    int status = 0;
    switch (r->handler) {
    case MOCK_H_STATIC:
        buf_append_str(out, r->body ? r->body : "");
        mock_body_pad(out, r->body_size); /* only a JSON object gets a padding member */
        return r->status;
    case MOCK_H_JSON:
        mock_body__json(r, ri, out);
        break;
    case MOCK_H_USER:
        mock_body__user(ri, out);
        break;
    case MOCK_H_ORDERS:
        status = mock_body__orders(ri, out);
        break;
    case MOCK_H_PRODUCTS:
        mock_body__products(out);
        break;
    case MOCK_H_SEARCH:
        status = mock_body__search(ri, out);
        break;
    case MOCK_H_LOGIN:
        status = mock_body__login(ri, out);
        break;
    case MOCK_H_ME:
        status = mock_body__me(ri, out);
        break;
    case MOCK_H_ECHO:
        if (ri->req)
            mock_body__echo(ri, out);
        else
            buf_append_str(out, "{}");
        break;
    case MOCK_H_HEALTH:
        buf_append_str(out, "{\"status\":\"ok\"}");
        break;
    case MOCK_H_COUNTER: {
        /* a new version on each fetch: what a cache test needs to see a refresh happen */
        uint64_t n = r->built ? atomic_fetch_add(r->built, 1) + 1 : 1;
        buf_append_str(out, "{\"route\":");
        buf_append_json_str(out, r->name, strlen(r->name));
        buf_printf(out, ",\"n\":%llu}", (unsigned long long)n);
        break;
    }
    }
    if (status != 0)
        return status; /* a handler's 4xx is small and unpadded */
    mock_body_pad(out, r->body_size);
    return r->status;
}
