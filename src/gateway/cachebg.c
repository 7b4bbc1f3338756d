/* Background refresh for stale-while-revalidate: the client got the stale copy already; this
 * fetches the URI once more on a pooled upstream connection of the same thread, with the stored
 * validators, and stores the answer (a 304 refreshes the entry, a storable response replaces it,
 * anything else leaves it). One refresh per key at a time (the coalescing table), and a miss of
 * that key meanwhile waits for it like for any fetch. The exchange is the proxy's: the request
 * head is written by proxy_write_head (the same forwarded headers), and net/h1cli writes it,
 * reads the answer and frames it (final head past interim 1xx, http/h1body), as for the proxy;
 * what is left here is what the head and each piece of the body mean to the cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/cachehook_priv.h"
#include "gateway/gwconf.h"
#include "gateway/req.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "net/h1cli.h"
#include "net/transport.h"

#define CHBG_MAGIC 0x63686267u /* "chbg" */
#define CHBG_MAX_HEAD (64u * 1024u)
#define CHBG_HDRS 100

struct chbg {
    unsigned magic;
    struct chbg *next, *prev; // thread's list
    struct cachehook *ch;
    struct gwthread *th;
    const struct chroute *route;
    struct upool *pool;
    struct uconn *uc;
    struct upool_waiter waiter;
    bool waiting;
    struct loop_timer timer;
    struct buf out; // request head to the upstream
    struct buf in; // response bytes
    uint64_t l2_seq; // purge sequence known when the refresh began (cachel2.c)
    struct h1cli x; // the exchange: x.res the response head, x.body its framing
    struct h1_header hdrs[PX_RES_HEADERS_MAX];
    size_t max_hdrs; // server.max_response_headers
    bool validators;
    struct cache_fill *fill;
    // the client request, copied (policy and keys read it)
    struct buf rhead;
    struct h1_request rq;
    struct h1_header rhdrs[CHBG_HDRS];
    struct policy_req preq;
    struct store_obj *old;
    char *key;
    size_t key_len, primary_len;
    uint64_t path_gen;
    int64_t req_wall_s;
    struct coalesce_flight *flight;
    char client_ip[GW_CLIENT_IP_LEN]; // whose request started the refresh
};

static void chbg__free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct chbg *b = arg;
    buf_deinit(&b->out);
    buf_deinit(&b->in);
    buf_deinit(&b->rhead);
    free(b->key);
    b->magic = 0;
    free(b);
}

/* Ends the refresh: gives the connection back (reusable only after a clean, complete exchange),
 * wakes misses that waited for it, frees after the event batch. */
static void chbg__end(struct chbg *b, bool reusable)
{
    struct cachehook *ch = b->ch;
    struct chthread *t = &ch->threads[b->th->index];
    if (b->waiting) {
        upool_cancel(&b->waiter);
        b->waiting = false;
    }
    if (b->uc != NULL) {
        upool_release(b->pool, b->uc, reusable);
        b->uc = NULL;
    }
    loop_timer_stop(b->th->loop, &b->timer);
    cache_fill_abort(b->fill);
    b->fill = NULL;
    if (b->flight != NULL) {
        coalesce_finish(ch->co, b->flight);
        b->flight = NULL;
    }
    cache_release(ch->cache, b->old);
    b->old = NULL;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        t->bg = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    b->next = b->prev = NULL;
    loop_defer(b->th->loop, chbg__free_cb, b);
}

static void chbg__on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct chbg *b = arg;
    ag_log(AG_LOG_DEBUG, "cache: background refresh timed out");
    chbg__end(b, false);
}

/* The response is complete: store it. */
static void chbg__complete(struct chbg *b)
{
    struct cachehook *ch = b->ch;
    uint64_t now = loop_now_ms(b->th->loop);
    if (buf_pending(&b->in) > 0 && b->x.res.body != H1_BODY_UNTIL_CLOSE) {
        /* bytes past the response: the origin's framing is off, this may be stray bytes of an
         * earlier exchange; neither stored nor reused (proxy.md, late bytes) */
        uconn_stray(b->uc, "bytes past the end of a response");
        b->uc = NULL;
        chbg__end(b, false);
        return;
    }
    if (b->fill != NULL && !uconn_settled(b->uc)) {
        cache_fill_abort(b->fill); // reused right after an exchange: possibly its late bytes
        b->fill = NULL;
    }
    if (b->fill != NULL) {
        struct cache_fill *f = b->fill;
        b->fill = NULL;
        struct store_obj *o = cache_fill_end_ref(ch->cache, f, now);
        if (o != NULL) {
            metrics_counter_inc(b->th->ms, ch->m_stores);
            chl2_store(ch, b->th, o, b->l2_seq);
            cache_release(ch->cache, o);
        }
    }
    bool reusable =
        b->x.res.keep_alive && buf_pending(&b->in) == 0 && b->x.res.body != H1_BODY_UNTIL_CLOSE;
    chbg__end(b, reusable);
}

/* The response head (b->x.res): a 304 refreshes the stored entry, a storable answer starts a
 * fill. Returns -1 for a 101 (never asked). */
static int chbg__head(struct chbg *b)
{
    struct cachehook *ch = b->ch;
    if (b->x.res.status == 101)
        return -1;
    uint64_t now = loop_now_ms(b->th->loop);
    int64_t wall = clock_wall_s();
    if (b->x.res.status == 304 && b->validators && b->old != NULL) {
        struct store_obj *o =
            cache_refresh_304(ch->cache, &b->route->pc, &b->rq, &b->preq, b->old, &b->x.res,
                              b->req_wall_s, wall, now, b->key, b->key_len, b->primary_len);
        if (o != NULL) {
            metrics_counter_inc(b->th->ms, ch->m_revalidated);
            chl2_store(ch, b->th, o, b->l2_seq);
            cache_release(ch->cache, o);
        }
    } else if (b->x.res.status < 500) {
        const char *why = NULL;
        b->fill = cache_fill_begin(ch->cache, &b->route->pc, &b->rq, &b->preq, &b->x.res,
                                   b->req_wall_s, wall, now, b->path_gen, b->route->max_object,
                                   gwthread_date(b->th), &why);
    }
    return 1;
}

/* Moves the exchange on: the head out, then the answer's events until the transport has no
 * more (its next edge calls again), the end or a failure. */
static void chbg__pump(struct chbg *b)
{
    struct h1cli *x = &b->x;
    while (!h1cli_head_sent(x)) {
        ssize_t w = h1cli_write(x, NULL, 0);
        if (w == IO_AGAIN)
            return;
        if (w < 0) {
            chbg__end(b, false);
            return;
        }
    }
    for (;;) {
        struct h1cli_piece pc;
        switch (h1cli_next(x, &pc)) {
        case H1CLI_AGAIN:
            return;
        case H1CLI_HEAD:
            if (chbg__head(b) < 0) {
                chbg__end(b, false);
                return;
            }
            break;
        case H1CLI_BODY:
            if (pc.len > 0 && b->fill != NULL && cache_fill_body(b->fill, pc.data, pc.len) == -1) {
                cache_fill_abort(b->fill);
                b->fill = NULL;
            }
            break;
        case H1CLI_DONE:
            chbg__complete(b);
            return;
        case H1CLI_ERROR:
            chbg__end(b, false);
            return;
        }
    }
}

static void chbg__on_event(struct uconn *uc, unsigned events, void *arg)
{
    (void)uc;
    struct chbg *b = arg;
    AG_ASSERT(b->magic == CHBG_MAGIC);
    if (b->uc == NULL)
        return;
    h1cli_on_events(&b->x, events);
    chbg__pump(b);
}

static void chbg__attach(struct chbg *b, struct uconn *uc)
{
    b->uc = uc;
    struct h1cli *x = &b->x;
    h1cli_begin(x, uconn_transport(uc), &b->out, &b->in);
    x->hdrs = b->hdrs;
    x->max_hdrs = b->max_hdrs;
    x->lim = (struct h1_limits){
        .max_request_line = 0, .max_head = CHBG_MAX_HEAD, .max_headers = b->max_hdrs};
    uconn_set_handler(uc, chbg__on_event, b);
    chbg__pump(b);
}

static void chbg__on_conn(struct upool_waiter *w, struct uconn *uc, const char *err)
{
    struct chbg *b = w->arg;
    (void)err;
    b->waiting = false;
    if (uc == NULL) {
        chbg__end(b, false);
        return;
    }
    chbg__attach(b, uc);
}

static bool chbg__skip(void *arg, const char *name, size_t len)
{
    const struct chbg *b = arg;
    return policy_strip_request_header(&b->route->pc, name, len) ||
           headers_name_eq(name, len, "if-none-match") ||
           headers_name_eq(name, len, "if-modified-since");
}

/* The request head: the client's GET as proxy.c forwards it (proxy_write_head: the same header
 * filter, the same X-Forwarded-*: the refreshed answer is stored for everyone, so nothing the
 * client claims about this hop may reach the origin), its own conditionals replaced by ours. */
static void chbg__build(struct chbg *b, const struct gw_upstream *up)
{
    struct buf *o = &b->out;
    struct px_head h = {.req = &b->rq,
                        .up = up,
                        .method = "GET",
                        .client_ip = b->client_ip,
                        .skip = chbg__skip,
                        .skip_arg = b};
    proxy_write_head(o, &h);
    const struct cache_entry *e = b->old->payload;
    if (e->etag != NULL) {
        buf_append_str(o, "If-None-Match: ");
        buf_append(o, e->etag, e->etag_len);
        buf_append(o, "\r\n", 2);
        b->validators = true;
    }
    if (e->last_modified != INT64_MIN) {
        char d[HTTP_DATE_LEN + 1];
        http_date_format(e->last_modified, d);
        buf_append_str(o, "If-Modified-Since: ");
        buf_append_str(o, d);
        buf_append(o, "\r\n", 2);
        b->validators = true;
    }
    buf_append(o, "\r\n", 2);
}

void chbg_refresh(struct cachehook *ch, struct gw_req *r, struct chreq *cr, struct store_obj *o)
{
    struct coalesce_flight *flight = NULL;
    if (!coalesce_try_lead(ch->co, cr->key, cr->base_len, &flight))
        return; /* a fetch of this key is already running */
    struct gwthread *th = r->th;
    const struct gw_config *cfg = th->sh->cfg;
    const struct gw_route *gr = cr->route->gr;
    struct chbg *b = xcalloc(1, sizeof(*b));
    b->max_hdrs = (size_t)cfg->server.max_response_headers;
    b->magic = CHBG_MAGIC;
    b->ch = ch;
    b->th = th;
    b->route = cr->route;
    b->l2_seq = chl2_seq(ch->l2);
    b->flight = flight;
    b->pool = th->pools[gr->upstream_index];
    buf_init(&b->out);
    buf_init(&b->in);
    buf_init(&b->rhead);
    buf_append(&b->rhead, cr->head.data, cr->head.len);
    struct h1_limits lim = {.max_request_line = b->rhead.len + 1,
                            .max_head = b->rhead.len + 1,
                            .max_headers = CHBG_HDRS};
    store_ref(o);
    b->old = o;
    struct chthread *t = &ch->threads[th->index];
    b->next = t->bg;
    if (t->bg != NULL)
        t->bg->prev = b;
    t->bg = b;
    loop_timer_init(&b->timer, chbg__on_timer, b);
    if (h1_parse_request(b->rhead.data, b->rhead.len, &b->rq, b->rhdrs, CHBG_HDRS, &lim) <= 0) {
        chbg__end(b, false);
        return;
    }
    b->rq.https = r->req.https; // the refresh asks as the request did (X-Forwarded-Proto)
    b->preq = cr->preq;
    b->key = xmalloc(cr->key_len + 1);
    memcpy(b->key, cr->key, cr->key_len);
    b->key_len = cr->key_len;
    b->primary_len = cr->primary_len;
    b->path_gen = cr->path_gen;
    b->req_wall_s = clock_wall_s();
    snprintf(b->client_ip, sizeof(b->client_ip), "%s", r->client_ip);
    chbg__build(b, &cfg->upstreams[gr->upstream_index]);
    metrics_counter_inc(th->ms, ch->m_bg_refresh);
    loop_timer_start(th->loop, &b->timer, gr->timeout.total_ms ? gr->timeout.total_ms : 30000);
    b->waiter.ready = chbg__on_conn;
    b->waiter.arg = b;
    b->waiter.settled = true; // what it fetches is stored (proxy.md, late bytes)
    const char *err = NULL;
    b->waiting = true;
    struct uconn *uc = upool_acquire(b->pool, &b->waiter, gr->timeout.connect_ms, &err);
    if (uc != NULL) {
        b->waiting = false;
        chbg__attach(b, uc);
        return;
    }
    if (err != NULL) {
        b->waiting = false;
        chbg__end(b, false);
    }
}

void chbg_thread_stop(struct cachehook *ch, struct gwthread *th)
{
    struct chthread *t = &ch->threads[th->index];
    while (t->bg != NULL)
        chbg__end(t->bg, false);
}
