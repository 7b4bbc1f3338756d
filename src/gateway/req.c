/* The request layer (see req.h): from a parsed head to the end of the exchange. Routes and
 * admits the request (route and global concurrency limits), runs the route's filters, hands it
 * to the proxy, writes the local answers (error pages), and ends it once: metrics, access log,
 * filters' end, admission released, then the session goes on. Knows the session only through
 * its gw_sess_ops, never its socket or its buffers' owner. */
#include "gateway/req.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/accesslog.h"
#include "gateway/gwconf.h"
#include "gateway/route.h"
#include "gateway/trace.h"
#include "gateway/tunnel.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "http/url.h"
#include "net/wskey.h"

#define GW_REQ_ARENA_CHUNK 4096 /* only for copies that do not fit the <strs> block */

_Static_assert(PX_RES_HEADERS_MAX * sizeof(struct h1_header) <= CONN_BLOCK,
               "response headers fit a block");

/* ---- lifetime ---- */

void gw_req_init(struct gw_req *r, const struct gw_sess_ops *ops, void *sess, struct buf *in,
                 struct buf *out, const char *client_ip)
{
    memset(r, 0, sizeof(*r));
    r->magic = GW_REQ_MAGIC;
    r->sops = ops;
    r->sess = sess;
    r->in = in;
    r->out = out;
    r->client_ip = client_ip;
    r->route = -1;
    arena_init(&r->arena, GW_REQ_ARENA_CHUNK, 1u << 20);
    proxy_init(&r->px);
}

void gw_req_deinit(struct gw_req *r)
{
    proxy_deinit(&r->px);
    arena_deinit(&r->arena);
    free(r->strs); // blocks are plain allocations
    r->strs = NULL;
    r->magic = 0;
}

void gw_req_release(struct gw_req *r)
{
    struct gwthread *th = r->th;
    struct proxy *px = &r->px;
    gwthread_buf_give(th, &px->head);
    gwthread_buf_give(th, &px->uin);
    gwthread_buf_give(th, &px->uout);
    gwthread_buf_give(th, &px->trail);
    buf_deinit(&px->req_trail); // rare (a request body's trailers cut short): not kept
    gwthread_block_give(th, px->res_hdrs);
    px->res_hdrs = NULL;
    gwthread_block_give(th, r->strs);
    r->strs = NULL;
    r->strs_used = 0;
    arena_deinit(&r->arena); // normally empty: only an oversized target used it
}

void gw_req_reset(struct gw_req *r)
{
    r->state = GW_REQ_IDLE;
    r->route = -1;
    r->chain = NULL;
    r->fpos = 0;
    r->admitted_route = r->admitted_global = false;
    r->method = r->target = NULL;
    r->method_len = r->target_len = 0;
    r->log_host = r->log_ua = NULL;
    r->log_host_len = r->log_ua_len = 0;
    r->log_minor = -1;
    r->rid_len = 0;
    r->traceparent[0] = '\0';
    r->status = 0;
    r->head_sent = false;
    r->upgrade = false;
    r->ws_key[0] = '\0';
    r->tunnel = NULL;
    r->bytes_out = 0;
    r->t_start_us = 0;
    r->retry_delay_ms = 0;
    r->head_h1_len = 0;
    r->client_verify = -1;
    /* the proxy's per-request facts are read by the access log even for local answers */
    r->px.t_sent_us = r->px.t_first_byte_us = 0;
    r->px.pool_wait_us = 0;
    r->px.connect_us = 0;
    r->cache_served = NULL;
    r->px.server = NULL;
    r->px.req_body = H1_BODY_NONE;
    r->px.req_body_read = true;
    r->strs_used = 0;
    arena_reset(&r->arena);
}

void gw_req_begin(struct gw_req *r)
{
    AG_ASSERT(r->magic == GW_REQ_MAGIC);
    AG_ASSERT(r->state != GW_REQ_ACTIVE); // the previous request ended
    r->state = GW_REQ_ACTIVE;
}

/* A NUL-terminated copy of <s> that lives until the request ends (for the log): in the block
 * lent for the request, or in the arena when it does not fit. NULL when over the arena limit. */
static char *gw_req__strndup(struct gw_req *r, const char *s, size_t n)
{
    if (r->strs == NULL) {
        r->strs = gwthread_block_take(r->th);
        r->strs_used = 0;
    }
    if (n >= CONN_BLOCK - r->strs_used)
        return arena_strndup(&r->arena, s, n);
    char *p = r->strs + r->strs_used;
    memcpy(p, s, n);
    p[n] = '\0';
    r->strs_used += n + 1;
    return p;
}

void gw_req_make_rid(struct gw_req *r, const struct h1_header *h)
{
    if (h != NULL && h->value_len > 0 && h->value_len <= sizeof(r->rid)) {
        memcpy(r->rid, h->value, h->value_len);
        r->rid_len = h->value_len;
        return;
    }
    /* 16 hex digits of a per-thread seed mixed with a counter: unique enough to grep logs. */
    struct gwthread *th = r->th;
    uint64_t x = th->rid_seed + (++th->rid_counter) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++)
        r->rid[i] = hex[(x >> (60 - 4 * i)) & 0xf];
    r->rid_len = 16;
}

/* ---- start ---- */

/* Route filter: the route's `host` and `methods` restrictions. */
static int gw_req__route_ok(void *arg, size_t i)
{
    const struct gw_req *r = arg;
    const struct gw_route *gr = &r->th->sh->cfg->routes[i];
    const struct h1_request *req = &r->req;
    if (gr->methods.n > 0) {
        bool ok = false;
        for (size_t k = 0; k < gr->methods.n && !ok; k++)
            ok = strlen(gr->methods.v[k]) == req->method_len &&
                 memcmp(gr->methods.v[k], req->method, req->method_len) == 0;
        if (!ok)
            return 0;
    }
    if (gr->host != NULL) {
        if (req->host == NULL)
            return 0;
        size_t hl = req->host_len;
        /* compare without the port */
        const char *colon = memchr(req->host, ':', hl);
        if (colon != NULL && req->host[0] != '[')
            hl = (size_t)(colon - req->host);
        if (strlen(gr->host) != hl || !headers_name_eq(req->host, hl, gr->host))
            return 0;
    }
    return 1;
}

/* The path is routed, keyed and forwarded in canonical form (url_path_canon: dot segments
 * removed, unreserved %XX decoded, "//" merged): /api/../internal/x must not be routed as /api/
 * and then resolved by the origin to /internal/x. r->req's target, path and query are pointed at
 * the canonical origin-form copy (the access log keeps the target as sent, r->target). Returns
 * 0, or -1 for a path that is refused (%00, %2F/%5C by config, ".." above the root): <why>. */
static int gw_req__canon_path(struct gw_req *r, const char **why)
{
    struct h1_request *req = &r->req;
    const struct gw_path_norm *pn = &r->th->sh->cfg->path_norm;
    unsigned flags = (pn->merge_slashes ? URL_CANON_MERGE_SLASHES : 0) |
                     (pn->reject_encoded_slash ? URL_CANON_REJECT_ENCODED_SLASH : 0);
    /* the canonical target is never longer than the one received: path_len >= 1 in origin
     * form, and an absolute-form target holds its scheme and authority besides */
    char *t = gw_req__strndup(r, req->target, req->target_len);
    if (t == NULL)
        return -1;
    size_t n = 0;
    if (url_path_canon(req->path, req->path_len, flags, t, &n, why) != 0)
        return -1;
    size_t path_len = n;
    if (req->query != NULL) {
        t[n++] = '?';
        memcpy(t + n, req->query, req->query_len);
        req->query = t + n;
        n += req->query_len;
    }
    t[n] = '\0';
    req->target = req->path = t;
    req->target_len = n;
    req->path_len = path_len;
    return 0;
}

/* Request header names with '_' (headers.underscores, per route or top level): dropped from the
 * parsed head, so neither the upstream nor the cache key ever sees them, or refused. Returns -1
 * when the request must get 400. */
static int gw_req__underscores(struct gw_req *r, const struct gw_route *gr)
{
    const struct gw_config *cfg = r->th->sh->cfg;
    int policy = gr->headers.underscores ? gr->headers.underscores - 1 : cfg->headers.underscores;
    if (policy == GW_US_ALLOW)
        return 0;
    struct h1_request *req = &r->req;
    size_t kept = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (memchr(h->name, '_', h->name_len) != NULL) {
            if (policy == GW_US_REJECT)
                return -1;
            continue;
        }
        if (kept != i)
            req->headers[kept] = *h;
        kept++;
    }
    req->nheaders = kept;
    return 0;
}

/* Whether <v> (an Upgrade header value) names only h2c: curl --http2 asks for it on every plain
 * request. The gateway terminates HTTP/2 itself (prior knowledge): such a request is served as
 * HTTP/1.1, its Upgrade dropped, never tunneled (nor kept out of the cache). */
static bool gw_req__only_h2c(const char *v, size_t n)
{
    size_t i = 0;
    bool any = false;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i == s)
            continue;
        if (i - s != 3 || !headers_name_eq(v + s, 3, "h2c"))
            return false;
        any = true;
    }
    return any;
}

/* Whether the client asks to switch to a protocol other than h2c (Connection: upgrade and an
 * Upgrade header naming one). Whatever the answer but a 101, its connection is closed after it:
 * the bytes it sent after its head may be tunnel bytes (WebSocket frames), which must never be
 * read as a next request, on any route, after any answer (a local 404 or 429 too). */
static bool gw_req__wants_upgrade(const struct gw_req *r)
{
    const struct h1_request *req = &r->req;
    if (!req->upgrade || r->h2)
        return false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (h->name_len == 7 && headers_name_eq(h->name, 7, "upgrade") &&
            !gw_req__only_h2c(h->value, h->value_len))
            return true;
    }
    return false;
}

/* An HTTP/1.1 Upgrade request without a body on a route with `websocket: true` is forwarded as
 * one (proxy.c) and becomes a tunnel on a 101 (tunnel.c). Elsewhere its Upgrade is dropped and
 * it is a plain request (still closed after its answer: gw_req__wants_upgrade). */
static void gw_req__upgrade(struct gw_req *r, const struct gw_route *gr)
{
    const struct h1_request *req = &r->req;
    r->upgrade = req->minor_version == 1 && gr->websocket && req->body == H1_BODY_NONE &&
                 gw_req__wants_upgrade(r);
}

/* An HTTP/2 extended CONNECT (RFC 8441; only an HTTP/2 head has a :protocol) on its route: a
 * WebSocket on a route with `websocket: true` becomes the same Upgrade request an HTTP/1.1 client
 * would send (proxy.c writes it with the key made here) and its stream a tunnel on the 101
 * (h2sess.c, tunnel.c). Anything else is refused with 501 as a plain CONNECT is: neither another
 * protocol nor a route that does not tunnel ever sees a request the config did not route there.
 * Returns false when it answered. */
static bool gw_req__xconnect(struct gw_req *r, const struct gw_route *gr)
{
    const struct h1_request *req = &r->req;
    if (req->protocol_len == 9 && headers_name_eq(req->protocol, 9, "websocket") &&
        gr->websocket) {
        r->upgrade = true;
        wskey_new(r->ws_key);
        return true;
    }
    gw_req_respond_error(r, 501, "not_implemented",
                         gr->websocket ? "extended CONNECT: only the websocket protocol is tunneled"
                                       : "extended CONNECT: this route does not tunnel "
                                         "WebSockets (websocket: false)",
                         NULL);
    return false;
}

/* Admission: the route's concurrency limit, then the global one. False when refused (answered). */
static bool gw_req__admit(struct gw_req *r)
{
    struct gwthread *th = r->th;
    struct gw_shared *sh = th->sh;
    const struct gw_config *cfg = sh->cfg;
    const struct gw_route *gr = &cfg->routes[r->route];
    struct gw_route_rt *rt = &sh->rt[r->route];
    if (gr->limit.concurrency > 0) {
        if (atomic_fetch_add(&rt->inflight, 1) >= gr->limit.concurrency) {
            atomic_fetch_sub(&rt->inflight, 1);
            metrics_counter_inc(th->ms, rt->shed);
            char hdr[64];
            snprintf(hdr, sizeof(hdr), "Retry-After: %llu\r\n",
                     (unsigned long long)((gr->limit.retry_after_ms + 999) / 1000));
            gw_req_respond_error(r, 503, "overloaded", "route concurrency limit reached", hdr);
            return false;
        }
        r->admitted_route = true;
    }
    if (cfg->server.concurrency > 0) {
        if (atomic_fetch_add(&sh->inflight, 1) >= cfg->server.concurrency) {
            atomic_fetch_sub(&sh->inflight, 1);
            metrics_counter_inc(th->ms, sh->ids.shed_global);
            uint64_t ra = gr->limit.retry_after_ms ? gr->limit.retry_after_ms : 1000;
            char hdr[64];
            snprintf(hdr, sizeof(hdr), "Retry-After: %llu\r\n",
                     (unsigned long long)((ra + 999) / 1000));
            gw_req_respond_error(r, 503, "overloaded", "gateway concurrency limit reached", hdr);
            return false;
        }
        r->admitted_global = true;
    }
    return true;
}

/* The filters said go: upstream. */
static void gw_req__forward(struct gw_req *r)
{
    const struct h1_request *req = &r->req;
    if (req->expect_continue && req->body != H1_BODY_NONE && buf_pending(r->in) == 0) {
        /* Answer 100 ourselves: the upstream never sees Expect (we strip it), and a client that
         * waits for it would otherwise stall until its own timeout. */
        r->sops->continue_100(r);
        if (r->state != GW_REQ_ACTIVE)
            return;
    }
    proxy_start(r);
}

void gw_req_start(struct gw_req *r)
{
    struct gwthread *th = r->th;
    struct gw_shared *sh = th->sh;
    const struct gw_config *cfg = sh->cfg;
    const struct h1_request *req = &r->req;
    r->method = gw_req__strndup(r, req->method, req->method_len);
    r->method_len = r->method ? req->method_len : 0;
    r->target = gw_req__strndup(r, req->target, req->target_len);
    r->target_len = r->target ? req->target_len : 0;
    r->log_minor = r->h2 ? GW_REQ_LOG_H2 : req->minor_version;
    if (th->alog != NULL) {
        /* copied (the head may move once the body streams) only when a log line will use them */
        if (req->host != NULL) {
            r->log_host = gw_req__strndup(r, req->host, req->host_len);
            r->log_host_len = r->log_host ? req->host_len : 0;
        }
        const struct h1_header *ua = headers_find(req->headers, req->nheaders, "user-agent");
        if (ua != NULL) {
            r->log_ua = gw_req__strndup(r, ua->value, ua->value_len);
            r->log_ua_len = r->log_ua ? ua->value_len : 0;
        }
    }
    gw_req_make_rid(r, headers_find(req->headers, req->nheaders, "x-request-id"));
    {
        /* continue the client's trace (new span for our hop) or start one: every request has a
         * trace id for the access log and the upstream */
        const struct h1_header *tp = headers_find(req->headers, req->nheaders, "traceparent");
        struct trace_ctx tc;
        trace_continue(tp ? tp->value : NULL, tp ? tp->value_len : 0, &tc);
        trace_format(&tc, r->traceparent);
    }
    /* Framing facts the proxy needs even when we answer locally. */
    r->px.req_body = req->body;
    r->px.req_body_read = req->body == H1_BODY_NONE;
    if (gw_req__wants_upgrade(r))
        r->keep_alive = false;

    if (req->method_id == H1_M_CONNECT && req->protocol == NULL) {
        /* an extended CONNECT (RFC 8441) is judged by its route (gw_req__xconnect) */
        gw_req_respond_error(r, 501, "not_implemented", "CONNECT is not supported", NULL);
        return;
    }
    if (req->body == H1_BODY_LENGTH && req->content_length > cfg->server.max_body_size) {
        r->keep_alive = false;
        gw_req_respond_error(r, 413, "payload_too_large", "request body over server.max_body_size",
                             NULL);
        return;
    }
    const char *why = NULL;
    if (gw_req__canon_path(r, &why) != 0) {
        r->keep_alive = false;
        gw_req_respond_error(r, 400, "bad_path", why ? why : "request path not usable", NULL);
        return;
    }
    r->route = route_match_filtered(sh->routes, req->path, req->path_len, gw_req__route_ok, r);
    if (r->route < 0) {
        gw_req_respond_error(r, 404, "no_route", "no route matches this request", NULL);
        return;
    }
    /* The filters' state is ready from here: a local answer (a limit, a refused header) gets
     * their headers (a cached route's X-Cache) like any other. */
    r->chain = &sh->rt[r->route].chain;
    memset(r->fstate, 0, r->chain->state_size);
    if (gw_req__underscores(r, &cfg->routes[r->route]) != 0) {
        gw_req_respond_error(r, 400, "bad_header",
                             "header name with '_' (headers.underscores: reject)", NULL);
        return;
    }
    gw_req__upgrade(r, &cfg->routes[r->route]);
    if (req->protocol != NULL && !gw_req__xconnect(r, &cfg->routes[r->route]))
        return;
    if (!gw_req__admit(r))
        return;
    /* The filters: a cache hit answers from memory, a coalesced miss waits, an open breaker
     * refuses; else on to the upstream. */
    if (filter_request(r, 0) == FILTER_CONTINUE)
        gw_req__forward(r);
}

void gw_req_continue(struct gw_req *r)
{
    if (r->state != GW_REQ_ACTIVE)
        return;
    if (filter_request(r, r->fpos + 1) == FILTER_CONTINUE)
        gw_req__forward(r);
}

/* ---- response heads ---- */

void gw_head_init(struct gw_head *h, int status)
{
    h->status = status;
    h->reason = NULL;
    h->reason_len = 0;
    h->h1 = NULL;
    h->h1_len = 0;
    h->h1_refs = NULL;
    h->h1_nrefs = 0;
    h->h1_lnames = NULL;
    h->retractable = false;
    h->f = h->local;
    h->n = 0;
    h->cap = GW_HEAD_LOCAL;
    h->body = H1_BODY_NONE;
    h->content_length = 0;
    h->used = 0;
}

void gw_head_deinit(struct gw_head *h)
{
    if (h->f != h->local)
        free(h->f);
    h->f = h->local;
    h->n = 0;
    h->cap = GW_HEAD_LOCAL;
}

void gw_head_add(struct gw_head *h, const char *name, size_t name_len, const char *value,
                 size_t value_len)
{
    if (h->n == h->cap) {
        /* rare: an upstream answer of more than GW_HEAD_LOCAL fields */
        size_t cap = h->cap * 2;
        struct h1_header *f = xmalloc(cap * sizeof(*f));
        memcpy(f, h->f, h->n * sizeof(*f));
        if (h->f != h->local)
            free(h->f);
        h->f = f;
        h->cap = cap;
    }
    h->f[h->n++] = (struct h1_header){name, name_len, value, value_len};
}

void gw_head_add_str(struct gw_head *h, const char *name, const char *value)
{
    gw_head_add(h, name, strlen(name), value, strlen(value));
}

void gw_head_add_copy(struct gw_head *h, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    if (value_len > GW_HEAD_STORE - h->used)
        return;
    char *p = h->store + h->used;
    memcpy(p, value, value_len);
    h->used += value_len;
    gw_head_add(h, name, name_len, p, value_len);
}

void gw_head_add_u64(struct gw_head *h, const char *name, size_t name_len, uint64_t value)
{
    char tmp[20], *end = tmp + sizeof(tmp), *d = end;
    do {
        *--d = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    gw_head_add_copy(h, name, name_len, d, (size_t)(end - d));
}

void gw_head_add_lines(struct gw_head *h, const char *lines)
{
    const char *p = lines;
    while (p != NULL && *p != '\0') {
        const char *eol = strchr(p, '\n');
        const char *le = eol != NULL ? eol : p + strlen(p);
        const char *end = le > p && le[-1] == '\r' ? le - 1 : le;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon != NULL && colon > p) {
            const char *v = colon + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            gw_head_add(h, p, (size_t)(colon - p), v, (size_t)(end - v));
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
}

size_t gw_head_write_h1(const struct gw_head *h, struct buf *b)
{
    /* sized first and reserved once: this runs for every answer */
    const char *reason = NULL;
    size_t rl = 0, total = 2;
    if (h->h1 != NULL) {
        total += h->h1_len;
    } else {
        reason = h->reason != NULL ? h->reason : h1_status_reason(h->status);
        rl = h->reason != NULL ? h->reason_len : strlen(reason);
        total += 13 + rl + 2;
    }
    for (size_t i = 0; i < h->n; i++)
        total += h->f[i].name_len + h->f[i].value_len + 4;
    buf_reserve(b, total);
    char *p = buf_tail(b);
    if (h->h1 != NULL) {
        memcpy(p, h->h1, h->h1_len);
        p += h->h1_len;
    } else {
        int status = h->status >= 100 && h->status <= 999 ? h->status : 500;
        memcpy(p, "HTTP/1.1 ", 9);
        p[9] = (char)('0' + status / 100);
        p[10] = (char)('0' + status / 10 % 10);
        p[11] = (char)('0' + status % 10);
        p[12] = ' ';
        p += 13;
        memcpy(p, reason, rl);
        p += rl;
        *p++ = '\r';
        *p++ = '\n';
    }
    for (size_t i = 0; i < h->n; i++) {
        const struct h1_header *f = &h->f[i];
        memcpy(p, f->name, f->name_len);
        p += f->name_len;
        *p++ = ':';
        *p++ = ' ';
        if (f->value_len > 0)
            memcpy(p, f->value, f->value_len);
        p += f->value_len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p++ = '\r';
    *p++ = '\n';
    buf_commit(b, total);
    return total;
}

void gw_req_head(struct gw_req *r, const struct gw_head *h)
{
    AG_ASSERT(r->state == GW_REQ_ACTIVE);
    if (r->sops->head != NULL) {
        r->sops->head(r, h);
    } else {
        size_t n = gw_head_write_h1(h, r->out);
        r->head_h1_len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    r->status = h->status;
    r->head_sent = true;
}

bool gw_req_unhead(struct gw_req *r)
{
    if (r->sops->unhead != NULL)
        return r->sops->unhead(r);
    if (r->head_h1_len == 0 || buf_pending(r->out) < r->head_h1_len)
        return false;
    buf_unappend(r->out, r->head_h1_len);
    r->head_h1_len = 0;
    return true;
}

/* ---- output ---- */

int gw_req_sendv(struct gw_req *r, const struct iovec *iov, int n)
{
    if (r->state != GW_REQ_ACTIVE)
        return -1;
    return r->sops->send(r, iov, n);
}

int gw_req_send(struct gw_req *r, const char *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return gw_req_sendv(r, &iov, n > 0 ? 1 : 0);
}

void gw_req_local_answer(struct gw_req *r)
{
    /* A request body that was not read entirely cannot be skipped reliably: close after. */
    if (r->px.req_body != H1_BODY_NONE && !r->px.req_body_read)
        r->keep_alive = false;
    if (r->th->draining)
        r->keep_alive = false;
}

void gw_req_respond_error(struct gw_req *r, int status, const char *code, const char *msg,
                          const char *extra_headers)
{
    if (r->state != GW_REQ_ACTIVE)
        return;
    proxy_abort(r); // whatever the exchange holds goes: this is the answer
    if (r->head_sent) {
        /* part of an upstream response went out already: the only honest signal is a close */
        r->status = r->status ? r->status : status;
        r->keep_alive = false;
        gw_req_end(r);
        return;
    }
    gw_req_local_answer(r);
    struct gwthread *th = r->th;
    /* every string escaped: the message may quote a parser text, the id comes from the client */
    struct buf *jbp = &th->scratch; // per thread, reused: no allocation after warm-up
    buf_reset(jbp);
    buf_append_str(jbp, "{\"error\":");
    buf_append_json_str(jbp, code, strlen(code));
    buf_printf(jbp, ",\"status\":%d,\"message\":", status);
    buf_append_json_str(jbp, msg, strlen(msg));
    buf_append_str(jbp, ",\"request_id\":");
    buf_append_json_str(jbp, r->rid, r->rid_len);
    buf_append_str(jbp, "}\n");
    size_t blen = buf_pending(jbp);
    struct gw_head h;
    gw_head_init(&h, status);
    gw_head_add(&h, "Date", 4, gwthread_date(th), HTTP_DATE_LEN);
    gw_head_add(&h, "Content-Type", 12, "application/json", 16);
    gw_head_add_u64(&h, "Content-Length", 14, (uint64_t)blen);
    if (r->rid_len)
        gw_head_add(&h, "X-Request-Id", 12, r->rid, r->rid_len);
    if (extra_headers)
        gw_head_add_lines(&h, extra_headers);
    filter_client_headers(r, &h); // a cached route's answers all carry X-Cache (cache.md)
    if (!r->keep_alive)
        gw_head_add(&h, "Connection", 10, "close", 5);
    if (r->req.method_id != H1_M_HEAD) {
        h.body = H1_BODY_LENGTH;
        h.content_length = blen;
    }
    gw_req_head(r, &h);
    gw_head_deinit(&h);
    if (r->req.method_id != H1_M_HEAD)
        buf_append(r->out, buf_head(jbp), blen);
    if (gw_req_send(r, NULL, 0) == -1)
        return;
    gw_req_end(r);
}

/* ---- end ---- */

static void gw_req__record(struct gw_req *r)
{
    struct gwthread *th = r->th;
    struct gw_shared *sh = th->sh;
    uint64_t now = clock_now_us();
    uint64_t total = r->t_start_us ? now - r->t_start_us : 0;
    int method = r->req.method_id;
    metrics_ref m = gwthread_duration_series(th, r->route, method, r->status);
    metrics_hist_observe_us(th->ms, m, total);
    {
        struct gw_route_rt *rt = &sh->rt[r->route >= 0 ? (size_t)r->route : sh->cfg->nroutes];
        metrics_hist_observe_us(th->ms, rt->route_duration, total);
        int cls = r->status / 100;
        metrics_counter_inc(th->ms, rt->status_class[cls >= 1 && cls <= 5 ? cls : 0]);
        if (r->px.t_first_byte_us && r->px.t_sent_us)
            metrics_hist_observe_us(th->ms, rt->ttfb, r->px.t_first_byte_us - r->t_start_us);
    }
    if (th->alog && r->tunnel == NULL) { // a tunnel writes its line when it ends (tunnel.c)
        struct accesslog_entry e = {
            .wall_ms = r->wall_ms,
            .method = r->method,
            .method_len = r->method_len,
            .target = r->target,
            .target_len = r->target_len,
            .status = r->status,
            .bytes = r->bytes_out + buf_pending(r->out),
            .total_us = total,
            .upstream_us = r->px.t_sent_us ? now - r->px.t_sent_us : 0,
            .pool_wait_us = r->px.pool_wait_us,
            .upstream_ttfb_us = r->px.t_first_byte_us && r->px.t_sent_us
                                    ? r->px.t_first_byte_us - r->px.t_sent_us
                                    : 0,
            .upstream = r->px.server,
            .request_id = r->rid_len ? r->rid : NULL,
            .request_id_len = r->rid_len,
            .route = r->route >= 0 ? sh->rt[r->route].label : NULL,
            .trace_id = r->traceparent[0] ? r->traceparent + 3 : NULL,
            .trace_id_len = r->traceparent[0] ? TRACE_ID_HEX : 0,
            .connect_us = r->px.connect_us,
            .cache = r->cache_served ? r->cache_served : filter_cache_status(r),
            .client = r->client_ip[0] ? r->client_ip : NULL,
            .host = r->log_host,
            .host_len = r->log_host_len,
            .user_agent = r->log_ua,
            .user_agent_len = r->log_ua_len,
            .http_minor = r->log_minor,
        };
        accesslog_write(th->alog, &e);
    }
    gwthread_count_request(th);
}

/* What the request holds of the worker: its filters' resources and its admission. */
static void gw_req__let_go(struct gw_req *r)
{
    struct gw_shared *sh = r->th->sh;
    filter_end(r);
    if (r->admitted_route) {
        atomic_fetch_sub(&sh->rt[r->route].inflight, 1);
        r->admitted_route = false;
    }
    if (r->admitted_global) {
        atomic_fetch_sub(&sh->inflight, 1);
        r->admitted_global = false;
    }
}

void gw_req_end(struct gw_req *r)
{
    AG_ASSERT(r->magic == GW_REQ_MAGIC);
    AG_ASSERT(r->state == GW_REQ_ACTIVE); // a request ends once
    gw_req__record(r);
    gw_req__let_go(r);
    r->px.state = PX_IDLE;
    r->state = GW_REQ_ENDED;
    r->sops->done(r);
    if (r->tunnel != NULL) { // the session could not take it (it closed, or cannot hand over)
        tunnel_destroy(r->tunnel);
        r->tunnel = NULL;
    }
}

void gw_req_abort(struct gw_req *r)
{
    proxy_abort(r);
    if (r->state != GW_REQ_ACTIVE)
        return;
    gw_req__let_go(r);
    r->state = GW_REQ_ENDED;
}

/* ---- session events ---- */

void gw_req_on_body(struct gw_req *r)
{
    if (r->state == GW_REQ_ACTIVE)
        proxy_on_client_data(r);
}

void gw_req_on_drained(struct gw_req *r)
{
    if (r->state == GW_REQ_ACTIVE)
        proxy_on_client_drained(r);
}
