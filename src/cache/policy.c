/* RFC 9111 decisions for a shared cache: request classification, storability, freshness lifetime,
 * age correction, usability of a stored entry, and cache keys. */
#include "cache/policy.h"

#include <string.h>
#include <strings.h>

#include "cache/keyhash.h"
#include "http/date.h"
#include "http/headers.h"
#include "http/url.h"

/* RFC 9110 §15.1: statuses that are heuristically cacheable (storable without explicit
 * freshness). Other statuses are stored only with explicit freshness. */
static const int policy_heuristic_statuses[] = {200, 203, 204, 206, 300, 301,
                                                308, 404, 405, 410, 414, 501};

static bool policy__in(const int *v, size_t n, int status)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == status)
            return true;
    return false;
}

bool policy_status_cacheable(const struct policy_conf *pc, int status)
{
    if (pc->statuses != NULL)
        return policy__in(pc->statuses, pc->nstatuses, status);
    /* Without a configured list, any final status with explicit freshness may be stored (RFC
     * 9111 §3); this function answers for the heuristic case. 206 is excluded: we do not store
     * partial content. */
    return status != 206 &&
           policy__in(policy_heuristic_statuses,
                      sizeof(policy_heuristic_statuses) / sizeof(policy_heuristic_statuses[0]),
                      status);
}

static bool policy__route_varies_on(const struct policy_conf *pc, const char *name)
{
    for (const char *const *v = pc->vary; v != NULL && *v != NULL; v++)
        if (strcasecmp(*v, name) == 0)
            return true;
    return false;
}

void policy_classify_request(const struct policy_conf *pc, const struct h1_request *req,
                             struct policy_req *out)
{
    memset(out, 0, sizeof(*out));
    cachectl_init(&out->cc);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (headers_name_eq(h->name, h->name_len, "cache-control"))
            cachectl_parse(&out->cc, h->value, h->value_len);
    }
    if (req->method_id != H1_M_GET && req->method_id != H1_M_HEAD) {
        bool safe = req->method_id == H1_M_OPTIONS || req->method_id == H1_M_TRACE;
        out->action = safe ? POLICY_REQ_BYPASS : POLICY_REQ_UNSAFE;
        out->why = "method";
        return;
    }
    /* Never hand a shared entry to a request that carries credentials, and never store its
     * response as a shared entry: only a route that keys on the credential may cache it. */
    if (headers_find(req->headers, req->nheaders, "authorization") != NULL &&
        !policy__route_varies_on(pc, "authorization")) {
        out->action = POLICY_REQ_BYPASS;
        out->why = "authorization";
        return;
    }
    if (headers_find(req->headers, req->nheaders, "cookie") != NULL &&
        !policy__route_varies_on(pc, "cookie")) {
        out->action = POLICY_REQ_BYPASS;
        out->why = "cookie";
        return;
    }
    out->action = POLICY_REQ_CACHE;
    if (pc->override)
        return; /* the route decides freshness; client directives do not force origin trips */
    out->no_store = out->cc.no_store;
    out->no_cache = out->cc.no_cache || out->cc.max_age == 0;
    if (out->cc.max_age == CACHECTL_ABSENT && !out->cc.no_cache) {
        /* Pragma: no-cache counts only without Cache-Control (RFC 9111 §5.4). */
        const struct h1_header *pragma = headers_find(req->headers, req->nheaders, "pragma");
        bool has_cc = headers_find(req->headers, req->nheaders, "cache-control") != NULL;
        if (pragma != NULL && !has_cc &&
            headers_has_token(pragma->value, pragma->value_len, "no-cache"))
            out->no_cache = true;
    }
}

#define POLICY_AGE_MAX 2147483648LL /* RFC 9111 §1.2.2: the largest delta-seconds */

/* The Age of a response in seconds: 0 when absent, POLICY_AGE_MAX when it cannot be trusted. An
 * Age that is not one delta-seconds (two field lines, "0, 0", "7200.0", "-1", "1;x=y") makes the
 * response stale rather than fresh: a cache that cannot tell how old a response is must not
 * assume it is new (http-cache-tests age-parse-*). A list written without spaces ("0,7200", as
 * some intermediaries fold) is read as its first member. */
static int64_t policy__age(const struct h1_response *res)
{
    const struct h1_header *h = NULL;
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *x = &res->headers[i];
        if (x->name_len == 3 && headers_name_eq(x->name, 3, "age")) {
            if (h != NULL)
                return POLICY_AGE_MAX;
            h = x;
        }
    }
    if (h == NULL)
        return 0;
    size_t n = h->value_len;
    const char *comma = memchr(h->value, ',', n);
    if (comma != NULL) {
        if (memchr(h->value, ' ', n) != NULL || memchr(h->value, '\t', n) != NULL)
            return POLICY_AGE_MAX;
        n = (size_t)(comma - h->value);
    }
    if (n == 0)
        return POLICY_AGE_MAX;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h->value[i];
        if (c < '0' || c > '9')
            return POLICY_AGE_MAX;
        if (v < POLICY_AGE_MAX)
            v = v * 10 + (c - '0');
    }
    return v > POLICY_AGE_MAX ? POLICY_AGE_MAX : v;
}

/* Surrogate-Control (W3C Edge Architecture note): directives for reverse proxies, which take
 * precedence over Cache-Control in a surrogate. A directive may name its target after ';'
 * ("max-age=60;apigate"); only untargeted ones and ours apply. Returns true when present. */
static bool policy__surrogate(const struct h1_response *res, struct cache_control *sc)
{
    cachectl_init(sc);
    bool found = false;
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (h->name_len != 17 || !headers_name_eq(h->name, 17, "surrogate-control"))
            continue;
        found = true;
        const char *v = h->value;
        size_t n = h->value_len, s = 0;
        while (s < n) {
            size_t e = s;
            while (e < n && v[e] != ',')
                e++;
            const char *semi = memchr(v + s, ';', e - s);
            size_t dlen = semi != NULL ? (size_t)(semi - (v + s)) : e - s;
            bool ours = true;
            if (semi != NULL) {
                const char *t = semi + 1;
                size_t tl = (size_t)((v + e) - t);
                while (tl > 0 && (*t == ' ' || *t == '\t')) {
                    t++;
                    tl--;
                }
                while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
                    tl--;
                ours = tl == strlen(POLICY_SURROGATE_TARGET) &&
                       strncasecmp(t, POLICY_SURROGATE_TARGET, tl) == 0;
            }
            if (ours && dlen > 0)
                cachectl_parse(sc, v + s, dlen);
            s = e + 1;
        }
    }
    return found;
}

static int64_t policy__date(const struct h1_response *res, const char *name)
{
    const struct h1_header *h = headers_find(res->headers, res->nheaders, name);
    int64_t t;
    if (h == NULL || http_date_parse(h->value, h->value_len, &t) != 0)
        return INT64_MIN;
    return t;
}

const char *policy_storable(const struct policy_conf *pc, const struct h1_request *req,
                            const struct policy_req *preq, const struct h1_response *res,
                            int64_t request_time_s, int64_t response_time_s, struct policy_fresh *f)
{
    memset(f, 0, sizeof(*f));
    if (preq->action != POLICY_REQ_CACHE)
        return "request";
    if (res->status < 200 || res->status == 206)
        return "status";
    struct cache_control cc;
    cachectl_init(&cc);
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (headers_name_eq(h->name, h->name_len, "cache-control"))
            cachectl_parse(&cc, h->value, h->value_len);
    }
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (h->name_len == 4 && headers_name_eq(h->name, 4, "vary") &&
            headers_has_token(h->value, h->value_len, "*"))
            return "vary-star"; /* on any of the Vary lines */
    }
    if (!pc->allow_set_cookie && headers_find(res->headers, res->nheaders, "set-cookie") != NULL)
        return "set-cookie";

    f->has_validator = headers_find(res->headers, res->nheaders, "etag") != NULL ||
                       headers_find(res->headers, res->nheaders, "last-modified") != NULL;
    f->swr_ms = pc->swr_ms;
    f->sie_ms = pc->sie_ms;

    if (pc->override) {
        /* The route owns freshness: the usual case of an API that sends no Cache-Control. */
        if (!policy_status_cacheable(pc, res->status))
            return "status";
        f->lifetime_ms = pc->ttl_ms;
        if (res->status == 404 || res->status == 410) {
            /* "not found" is not what `ttl` was written for: a user created a second later
             * must not stay missing for a minute. Only negative_ttl caches it. */
            if (pc->negative_ttl_ms == 0)
                return "status";
            f->lifetime_ms = pc->negative_ttl_ms;
        }
        goto windows;
    }
    struct cache_control sc;
    bool has_sc = policy__surrogate(res, &sc);
    if (has_sc && sc.no_store)
        return "no-store";
    /* a Surrogate-Control freshness for us replaces what Cache-Control says to shared caches */
    bool sc_fresh = has_sc && (sc.max_age != CACHECTL_ABSENT || sc.max_age_invalid);
    if (preq->no_store || (cc.no_store && !sc_fresh))
        return "no-store";
    if (cc.private_ && !cc.private_fields && !sc_fresh)
        return "private";
    /* A request with credentials reaches here only on a route that keys on them: each user gets
     * their own entry, so the RFC 9111 §3.5 restriction on shared entries does not apply. */
    (void)req;
    if (cc.must_understand && !policy_status_cacheable(pc, res->status))
        return "status";

    /* Age correction, RFC 9111 §4.2.3, in seconds. */
    int64_t date = policy__date(res, "date");
    int64_t age_value = policy__age(res);
    int64_t date_value = date != INT64_MIN ? date : response_time_s;
    int64_t apparent_age = response_time_s - date_value;
    if (apparent_age < 0)
        apparent_age = 0;
    int64_t response_delay = response_time_s - request_time_s;
    if (response_delay < 0)
        response_delay = 0;
    int64_t corrected_age_value = age_value + response_delay;
    int64_t initial_age = apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
    f->initial_age_ms = (uint64_t)initial_age * 1000u;

    bool explicit_fresh = true;
    if (sc_fresh) {
        f->lifetime_ms = sc.max_age_invalid ? 0 : (uint64_t)sc.max_age * 1000u;
    } else if (cc.s_maxage != CACHECTL_ABSENT) {
        f->lifetime_ms = (uint64_t)cc.s_maxage * 1000u;
        /* s-maxage implies proxy-revalidate for a shared cache (RFC 9111 §5.2.2.10). */
        f->must_revalidate = true;
    } else if (cc.max_age_invalid) {
        f->lifetime_ms = 0; /* invalid max-age: treat as stale (RFC 9111 §4.2.1) */
    } else if (cc.max_age != CACHECTL_ABSENT) {
        f->lifetime_ms = (uint64_t)cc.max_age * 1000u;
    } else if (headers_find(res->headers, res->nheaders, "expires") != NULL) {
        int64_t expires = policy__date(res, "expires");
        /* An invalid Expires (e.g. "0") means already expired. */
        f->lifetime_ms = expires != INT64_MIN && expires > date_value
                             ? (uint64_t)(expires - date_value) * 1000u
                             : 0;
    } else {
        explicit_fresh = false;
        if (!policy_status_cacheable(pc, res->status) && !cc.public_)
            return "status";
        int64_t lm = policy__date(res, "last-modified");
        if (lm != INT64_MIN && lm < date_value) {
            /* Heuristic freshness: 10% of the time since last modification (RFC 9111 §4.2.2),
             * capped by the route ttl when one is set, else at one day. */
            uint64_t h = (uint64_t)(date_value - lm) * 100u; /* 10% in ms */
            uint64_t cap = pc->ttl_ms ? pc->ttl_ms : 86400000u;
            f->lifetime_ms = h < cap ? h : cap;
        } else {
            f->lifetime_ms = (res->status == 404 || res->status == 410) && pc->negative_ttl_ms
                                 ? pc->negative_ttl_ms
                                 : pc->ttl_ms;
        }
    }
    if (explicit_fresh && pc->statuses != NULL && !policy_status_cacheable(pc, res->status))
        return "status";
    f->no_cache =
        cc.no_cache; // unqualified only: qualified no-cache="f" constrains fields, not the entry
    f->must_revalidate = f->must_revalidate || cc.must_revalidate || cc.proxy_revalidate;
    if (f->lifetime_ms == 0 && !f->has_validator && !f->no_cache &&
        cc.stale_while_revalidate == CACHECTL_ABSENT && cc.stale_if_error == CACHECTL_ABSENT &&
        pc->swr_ms == 0 && pc->sie_ms == 0)
        return "no-freshness"; /* would be stale at once and could never be revalidated */
    if (cc.stale_while_revalidate != CACHECTL_ABSENT)
        f->swr_ms = (uint64_t)cc.stale_while_revalidate * 1000u;
    if (cc.stale_if_error != CACHECTL_ABSENT)
        f->sie_ms = (uint64_t)cc.stale_if_error * 1000u;
    if (f->must_revalidate)
        f->swr_ms = 0;
windows:
    if (pc->max_stale_ms) {
        if (f->swr_ms > pc->max_stale_ms)
            f->swr_ms = pc->max_stale_ms;
        if (f->sie_ms > pc->max_stale_ms)
            f->sie_ms = pc->max_stale_ms;
    }
    return NULL;
}

enum policy_use policy_usable(const struct policy_fresh *f, uint64_t age_ms,
                              const struct policy_req *preq)
{
    if (f->no_cache || preq->no_cache)
        return POLICY_USE_REVALIDATE;
    uint64_t lifetime = f->lifetime_ms;
    /* The client's max-age bounds the age it accepts: past it, only the origin will do (serving
     * stale-while-revalidate would hand back exactly what the client refused). */
    if (preq->cc.max_age != CACHECTL_ABSENT && age_ms >= (uint64_t)preq->cc.max_age * 1000u)
        return POLICY_USE_REVALIDATE;
    uint64_t need = age_ms;
    if (preq->cc.min_fresh != CACHECTL_ABSENT)
        need += (uint64_t)preq->cc.min_fresh * 1000u;
    if (need < lifetime)
        return POLICY_USE_FRESH;
    if (f->must_revalidate)
        return POLICY_USE_REVALIDATE;
    uint64_t stale_for = age_ms > lifetime ? age_ms - lifetime : 0;
    if (preq->cc.max_stale != CACHECTL_ABSENT &&
        (preq->cc.max_stale == INT64_MAX || stale_for < (uint64_t)preq->cc.max_stale * 1000u))
        return POLICY_USE_FRESH;
    if (stale_for < f->swr_ms)
        return POLICY_USE_STALE_SWR;
    return POLICY_USE_REVALIDATE;
}

bool policy_stale_if_error_ok(const struct policy_fresh *f, uint64_t age_ms,
                              const struct policy_req *preq)
{
    if (f->must_revalidate)
        return false;
    uint64_t window = f->sie_ms;
    if (preq->cc.stale_if_error != CACHECTL_ABSENT)
        window = (uint64_t)preq->cc.stale_if_error * 1000u;
    uint64_t stale_for = age_ms > f->lifetime_ms ? age_ms - f->lifetime_ms : 0;
    return stale_for < window;
}

/* Appends "\n<name>:<values>" for one header name: every field line of that name joined by ",",
 * whitespace around commas dropped, so "a, b" and "a,b" share an entry. With a key hash, <values>
 * is their keyed hash: a key never carries a credential. */
static void policy__append_vary_value(const struct policy_conf *pc, const struct h1_request *req,
                                      const char *name, size_t nlen, struct buf *out)
{
    buf_append(out, "\n", 1);
    for (size_t i = 0; i < nlen; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        buf_append(out, &c, 1);
    }
    buf_append(out, ":", 1);
    size_t mark = out->len;
    bool first = true;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0)
            continue;
        if (!first)
            buf_append(out, ",", 1);
        first = false;
        const char *v = h->value;
        size_t n = h->value_len;
        for (size_t j = 0; j < n; j++) {
            if (v[j] == ',') {
                buf_append(out, ",", 1);
                while (j + 1 < n && (v[j + 1] == ' ' || v[j + 1] == '\t'))
                    j++;
            } else {
                buf_append(out, &v[j], 1);
            }
        }
    }
    if (pc->key_hash != NULL) {
        /* the joined values are hashed where they were written, then replaced by the hash */
        size_t n = out->len - mark;
        keyhash_append(pc->key_hash, out->data + mark, n, out);
        memmove(out->data + mark, out->data + mark + n, KEYHASH_HEX_LEN);
        out->len = mark + KEYHASH_HEX_LEN;
    }
}

long policy_build_key(const struct policy_conf *pc, const struct h1_request *req,
                      const char *vary_names, size_t vary_len, struct buf *out)
{
    size_t start = out->len;
    /* GET and HEAD share entries: a HEAD is answered from a stored GET. */
    buf_append_str(out, "GET ");
    /* the host in lower case, written in place (a buf_append per byte was ~1k instructions of
     * every cache hit, an eighth of a plain HTTP/1.1 hit: callgrind) */
    buf_reserve(out, req->host_len);
    char *h = buf_tail(out);
    for (size_t i = 0; i < req->host_len; i++) {
        char c = req->host[i];
        h[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    buf_commit(out, req->host_len);
    /* Only a path already in normal form gets a key. The origin (and the route match) see the
     * path as sent, and /a/%2E%2E/b or /a/%62 may name another resource there than /b or /a/b:
     * keying such a request under its normal form would store that answer for the normal path
     * (or serve the normal path's answer for it). It is forwarded uncached instead. */
    size_t p0 = out->len;
    if (url_normalize_path(req->path, req->path_len, out) != 0 ||
        out->len - p0 != req->path_len || memcmp(out->data + p0, req->path, req->path_len) != 0) {
        out->len = start;
        return -1;
    }
    if (req->query != NULL) {
        size_t before = out->len;
        buf_append(out, "?", 1);
        size_t mark = out->len;
        url_normalize_query(req->query, req->query_len, pc->ignore_query, out);
        if (out->len == mark)
            out->len = before; /* every parameter ignored: same entry as no query */
    }
    long primary = (long)(out->len - start);
    /* https and http answers are kept apart (the origin learns the scheme from
     * X-Forwarded-Proto and may build links with it), as a variant of the same primary key, so
     * invalidations and purges of the path reach both. ':' cannot start a header name, so no
     * vary value can spell this. */
    if (req->https)
        buf_append_str(out, "\n:scheme:https");
    for (const char *const *v = pc->vary; v != NULL && *v != NULL; v++)
        policy__append_vary_value(pc, req, *v, strlen(*v), out);
    /* The origin's Vary field names, comma-separated. */
    size_t i = 0;
    while (vary_names != NULL && i < vary_len) {
        while (i < vary_len &&
               (vary_names[i] == ' ' || vary_names[i] == '\t' || vary_names[i] == ','))
            i++;
        size_t s = i;
        while (i < vary_len && vary_names[i] != ',' && vary_names[i] != ' ' &&
               vary_names[i] != '\t')
            i++;
        if (i > s) {
            char name[128];
            size_t n = i - s < sizeof(name) - 1 ? i - s : sizeof(name) - 1;
            memcpy(name, vary_names + s, n);
            name[n] = '\0';
            if (!policy__route_varies_on(pc, name))
                policy__append_vary_value(pc, req, name, n, out);
        }
    }
    return primary;
}

const char *const policy_unkeyed_headers[] = {
    "x-original-url",     "x-rewrite-url",  "x-http-method-override", "x-http-method",
    "x-method-override",  "x-host",         "x-forwarded-server",     "x-forwarded-scheme",
    "x-original-host",    NULL,
};

bool policy_strip_request_header(const struct policy_conf *pc, const char *name, size_t len)
{
    if (len < 6 || (name[0] != 'x' && name[0] != 'X') || name[1] != '-')
        return false; /* every name on the list starts "x-" and is 6+ bytes: most names stop here */
    for (const char *const *u = policy_unkeyed_headers; *u != NULL; u++) {
        if (strlen(*u) != len || strncasecmp(*u, name, len) != 0)
            continue;
        for (const char *const *v = pc->vary; v != NULL && *v != NULL; v++)
            if (strlen(*v) == len && strncasecmp(*v, name, len) == 0)
                return false; /* in the key: forwarded */
        return true;
    }
    return false;
}
