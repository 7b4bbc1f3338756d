/* The HTTP/2 client session (see h2sess.h). nghttp2 parses frames and HPACK; each request stream
 * becomes a struct gw_req whose head is built field by field (http/reqhead.h) into the same
 * struct h1_request an HTTP/1.1 head is parsed into, with the h1 parser's checks and HTTP/2's own
 * (so the request layer, the routes, the cache keys and the upstream request are the same as for
 * HTTP/1.1, and no head is written out and parsed again). The answer comes back the same way:
 * its head as fields (gw_sess_ops.head, struct gw_head), turned into an nghttp2 header list
 * without any HTTP/1.1 in between, and its body bytes into the stream's <out>, whose framing
 * (Content-Length, or chunked when the proxy re-frames an upstream body) is removed before
 * the DATA frames, pulled by nghttp2 as the client's flow-control windows allow. Backpressure
 * both ways:
 * - response: body bytes are decoded from <out> into <body> only while <body> is small, so a
 *   stream whose client window is closed keeps its bytes in <out>, which the proxy sees grow
 *   (CONN_BUF_HIGH) and stops reading its upstream until gw_req_on_drained;
 * - request: DATA is given back to the stream's window (WINDOW_UPDATE) only once the proxy
 *   consumed it from <in>, so a slow upstream slows the client instead of filling memory.
 * A WebSocket over HTTP/2 (RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL, then CONNECT with
 * :protocol websocket) is the HTTP/1.1 Upgrade of the request layer (req.c, proxy.c); on the
 * upstream's 101 its stream answers 200 and becomes the client side of a tunnel (tunnel.c):
 * the client's DATA is pushed in and given back to its window only as the upstream takes it, the
 * upstream's bytes are pulled into DATA as the client's windows allow.
 * Request trailers (HEADERS after DATA) become the chunked body's trailer section, which the
 * proxy filters as it does an HTTP/1.1 client's.
 * Abuse bounds: SETTINGS_MAX_CONCURRENT_STREAMS, decoded header bytes per stream, resets per 10 s
 * (rapid reset: GOAWAY ENHANCE_YOUR_CALM), and nghttp2's own limits on SETTINGS entries and
 * queued control-frame answers. */
#include "gateway/h2sess.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <nghttp2/nghttp2.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/gwconf.h"
#include "gateway/req.h"
#include "gateway/tunnel.h"
#include "http/chunked.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "http/reqhead.h"
#include "net/tls.h"
#include "net/transport.h"

#define H2S_MAGIC 0x68327373u       /* "h2ss" */
#define H2ST_MAGIC 0x68327374u      /* "h2st" */
#define H2S_BODY_HIGH (64u * 1024u) /* decoded response bytes kept ready per stream */
#define H2S_RESET_WINDOW_MS 10000u
#define H2S_WOUT_HIGH (64u * 1024u) /* frames gathered before one write */

/* A stream object outlives its stream: a closed one goes to the thread's free list
 * (th->h2_free_streams) with its request object, header array, head arena and buffer blocks, so
 * a busy session allocates nothing per request. The fields from <s> on are cleared on reuse. */
struct h2_stream {
    unsigned magic;
    struct gw_req rq;
    struct arena harena;    // the request head's copies (reqhead), reset per stream
    struct h1_header *hdrs; // rq.max_hdrs entries
    struct buf in;          // request body for the request layer (chunked when no length)
    struct buf out;         // response body bytes as the request layer sent them (framed as
                            // the head said: Content-Length, chunked or until the end)
    struct buf hd;          // the response head queued by h2s__head, until the first send:
                            // records [u32 name_len][u32 value_len][name, lower case][value]
    struct buf body;        // response body bytes ready for DATA frames
    struct buf trail;       // the chunked response's trailer section (already filtered)
    struct buf rtrail;      // the request's trailer fields as HTTP/1.1 lines, until END_STREAM
    struct h2_stream *next_free;
    // cleared on reuse from here
    struct h2sess *s;
    int32_t id;
    struct h2_stream *next, *prev;
    struct reqhead *rh; // the request head being built, in <harena> (r->req's slices point there)
    struct h1_chunked res_chunk;
    uint64_t res_remaining;
    size_t unconsumed;  // DATA bytes not given back to the stream's window yet
    size_t hdr_bytes;   // decoded header bytes (http2.max_header_list_size)
    uint64_t body_rcvd; // request DATA bytes (checked against Content-Length)
    uint64_t body_at_ms; // the last request DATA, or the window reopened (client_body_timeout)
    int res_body;       // enum h1_body of the response
    int head_status;    // the queued head's status
    uint32_t head_nv;   // fields packed in <hd>
    uint64_t head_bytes; // the head's size as HTTP/1.1 (the access log's bytes, as over h1)
    bool head_queued;   // a head waits in <hd>
    bool chunked_req;   // the request body is re-framed as chunks
    bool started;       // handed to the request layer
    bool req_eos;       // the client's END_STREAM
    bool res_head_done; // HEADERS submitted
    bool res_eof;       // the whole body is in <body>
    bool deferred;      // the data provider waits for bytes
    bool closed;        // nghttp2 closed the stream
    bool want_drained;  // <out> emptied: tell the request layer after the flush
    bool rst_after;     // answered before the request's end: the rest of its body is dropped
    bool res_sent;      // the response's END_STREAM went out
    uint64_t dropped;   // body bytes dropped after an early answer
    struct tunnel *tun; // the stream carries a tunnel (extended CONNECT answered 200)
};

struct h2sess {
    unsigned magic;
    struct transport tp;
    struct gwthread *th;
    nghttp2_session *ng;
    struct h2sess *next, *prev;
    struct buf wout;         // frames the socket did not take yet
    struct loop_timer timer; // idle (no stream) / send timeouts
    struct h2_stream *streams;
    unsigned nstreams;
    unsigned depth; // inside nghttp2 calls or a flush: flush later
    bool writable, closed, draining, flush_again, read_eof, notify_queued;
    bool calm; // GOAWAY ENHANCE_YOUR_CALM queued: read nothing more
    bool goaway_ours; // an error GOAWAY this file asked for (counted where it asked)
    uint64_t reset_window_ms;
    uint64_t stalled_since_ms; // a response has waited on a shut window since (0: none)
    unsigned resets;
    char client_ip[GW_CLIENT_IP_LEN];
};

static const struct gw_sess_ops h2s_sess_ops;
static void h2s__flush(struct h2sess *s);
static void h2s__close(struct h2sess *s);
static void h2s__on_event(struct loop *loop, int fd, void *arg, unsigned events);
static void h2s__on_timer(struct loop *loop, void *arg);
static int h2s__trailer_field(struct h2_stream *st, const uint8_t *name, size_t nlen,
                              const uint8_t *value, size_t vlen);

bool h2sess_is_preface(const char *p, size_t n)
{
    if (n > H2SESS_PREFACE_LEN)
        n = H2SESS_PREFACE_LEN;
    return memcmp(p, H2SESS_PREFACE, n) == 0;
}

/* ---- streams ---- */

#define H2S_FREE_STREAMS 64 /* stream objects a thread keeps for reuse, beyond its recent peak */

static struct h2_stream *h2s__stream_new(struct h2sess *s, int32_t id)
{
    struct gwthread *th = s->th;
    const struct gw_config *cfg = th->sh->cfg;
    size_t max_hdrs = cfg->server.max_headers > 0 ? (size_t)cfg->server.max_headers : 100;
    struct h2_stream *st = th->h2_free_streams;
    if (st != NULL) {
        AG_ASSERT(st->magic == H2ST_MAGIC);
        th->h2_free_streams = st->next_free;
        th->h2_nfree_streams--;
        st->rq.client_ip = s->client_ip;
    } else {
        st = xcalloc(1, sizeof(*st));
        st->magic = H2ST_MAGIC;
        buf_init(&st->in);
        buf_init(&st->out);
        buf_init(&st->hd);
        buf_init(&st->body);
        buf_init(&st->trail);
        buf_init(&st->rtrail);
        gw_req_init(&st->rq, &h2s_sess_ops, st, &st->in, &st->out, s->client_ip);
        st->rq.th = th;
        st->rq.h2 = true;
        st->rq.max_hdrs = (uint32_t)max_hdrs;
        st->hdrs = xcalloc(max_hdrs, sizeof(*st->hdrs));
        st->rq.hdrs = st->hdrs;
        /* the head's copies: bounded by server.max_head_size (reqhead answers 431 first) */
        arena_init(&st->harena, 2048, cfg->server.max_head_size + 4096);
    }
    st->next_free = NULL;
    memset(&st->s, 0, sizeof(*st) - offsetof(struct h2_stream, s));
    st->s = s;
    st->id = id;
    gw_req_reset(&st->rq);
    st->rq.t_start_us = clock_now_us();
    struct h1_limits lim = {.max_request_line = 0,
                            .max_head = cfg->server.max_head_size,
                            .max_headers = st->rq.max_hdrs};
    st->rh = reqhead_begin(&st->harena, st->hdrs, st->rq.max_hdrs, &lim);
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->nstreams++;
    if (++th->h2_streams > th->h2_streams_hw)
        th->h2_streams_hw = th->h2_streams;
    metrics_counter_inc(th->ms, th->sh->ids.h2_streams);
    return st;
}

static void h2s__stream_destroy(struct h2_stream *st)
{
    gw_req_deinit(&st->rq);
    arena_deinit(&st->harena);
    buf_deinit(&st->in);
    buf_deinit(&st->out);
    buf_deinit(&st->hd);
    buf_deinit(&st->body);
    buf_deinit(&st->trail);
    buf_deinit(&st->rtrail);
    free(st->hdrs);
    st->magic = 0;
    free(st);
}

/* The stream is over: its object goes back to the thread's free list (or away). */
static void h2s__stream_free(struct h2_stream *st)
{
    struct gwthread *th = st->rq.th;
    th->h2_streams--;
    gw_req_abort(&st->rq); // stops the exchange's timers (nothing else: the request ended)
    gw_req_release(&st->rq);
    arena_reset(&st->harena);
    gwthread_buf_give(th, &st->in);
    gwthread_buf_give(th, &st->out);
    gwthread_buf_give(th, &st->hd);
    gwthread_buf_give(th, &st->body);
    buf_deinit(&st->trail); // rare: not kept
    buf_deinit(&st->rtrail);
    AG_ASSERT(st->tun == NULL); // the stream's close or the session's let go of it
    if (th->h2_nfree_streams >= H2S_FREE_STREAMS + th->h2_streams_hw ||
        st->rq.max_hdrs != (uint32_t)(th->sh->cfg->server.max_headers > 0
                                          ? th->sh->cfg->server.max_headers
                                          : 100)) {
        h2s__stream_destroy(st);
        return;
    }
    st->next_free = th->h2_free_streams;
    th->h2_free_streams = st;
    th->h2_nfree_streams++;
}

static void h2s__stream_unlink(struct h2_stream *st)
{
    struct h2sess *s = st->s;
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->next = st->prev = NULL;
    s->nstreams--;
}

static void h2s__stream_free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    h2s__stream_free(arg);
}

/* Frees <st> once nghttp2 closed it and its request is over: after the event batch, since the
 * code that ended the request may still be on the stack. */
static void h2s__stream_maybe_free(struct h2_stream *st)
{
    if (!st->closed || st->rq.state == GW_REQ_ACTIVE || st->s->closed)
        return; // a closed session frees its streams itself
    h2s__stream_unlink(st);
    loop_defer(st->s->th->loop, h2s__stream_free_cb, st);
}

/* ---- response: head fields and body bytes from the request layer -> HEADERS + DATA ---- */

/* Moves body bytes from <out> to <body> (framing removed) while <body> is small. */
static int h2s__decode_body(struct h2_stream *st)
{
    bool had = buf_pending(&st->out) > 0;
    size_t before = buf_pending(&st->body);
    while (!st->res_eof && buf_pending(&st->out) > 0 && buf_pending(&st->body) < H2S_BODY_HIGH) {
        const char *p = buf_head(&st->out);
        size_t pend = buf_pending(&st->out);
        size_t room = H2S_BODY_HIGH - buf_pending(&st->body);
        if (st->res_body == H1_BODY_LENGTH && buf_pending(&st->body) == 0 &&
            pend <= st->res_remaining && pend <= room) {
            /* all of <out> is body (a cache hit's, typically): the buffers change hands, no
             * copy (r->out points at the struct, which stays) */
            struct buf t = st->body;
            st->body = st->out;
            st->out = t;
            buf_reset(&st->out);
            st->res_remaining -= pend;
            if (st->res_remaining == 0)
                st->res_eof = true;
        } else if (st->res_body == H1_BODY_LENGTH) {
            size_t n = pend < room ? pend : room;
            if (n > st->res_remaining)
                n = (size_t)st->res_remaining;
            buf_append(&st->body, p, n);
            buf_consume(&st->out, n);
            st->res_remaining -= n;
            if (st->res_remaining == 0)
                st->res_eof = true;
        } else if (st->res_body == H1_BODY_CHUNKED) {
            const char *data;
            size_t dlen;
            bool in_trailers = st->res_chunk.trailers;
            long n = h1_chunked_step(&st->res_chunk, p, pend, &data, &dlen);
            if (n < 0)
                return -1;
            if (in_trailers && n > 0) // the proxy filtered them as for HTTP/1.1 (proxy.md)
                buf_append(&st->trail, p, (size_t)n);
            if (dlen > 0)
                buf_append(&st->body, data, dlen);
            buf_consume(&st->out, (size_t)n);
            if (st->res_chunk.done)
                st->res_eof = true; // the trailers go as a HEADERS frame after the DATA
            else if (n == 0)
                break;
        } else { // until the request ends
            size_t n = pend < room ? pend : room;
            buf_append(&st->body, p, n);
            buf_consume(&st->out, n);
        }
    }
    /* counted when handed over (the access log records the request before the DATA is out) */
    st->rq.bytes_out += buf_pending(&st->body) - before;
    if (st->res_eof)
        buf_reset(&st->out); // nothing may follow a complete response
    if (had && buf_pending(&st->out) == 0)
        st->want_drained = true; // the proxy may have paused its upstream for it
    return 0;
}

/* The trailer section of a chunked response (field lines, validated by the decoder and filtered
 * by the proxy of what must not be a trailer) as a HEADERS frame with END_STREAM. Returns 0 when
 * it was submitted, -1 when there is none (or it cannot be: the DATA then ends the stream). */
static int h2s__submit_trailers(nghttp2_session *ng, struct h2_stream *st)
{
    nghttp2_nv nv[64];
    size_t k = 0;
    char *p = buf_head(&st->trail), *end = p + buf_pending(&st->trail);
    while (p < end && k < sizeof(nv) / sizeof(nv[0])) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        char *le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon != NULL && colon > p) {
            for (char *c = p; c < colon; c++) // HTTP/2 field names are lower case
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
            char *v = colon + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            nv[k++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, (size_t)(colon - p),
                                   (size_t)(ve - v), NGHTTP2_NV_FLAG_NONE};
        }
        p = eol + 1;
    }
    int rv = k > 0 ? nghttp2_submit_trailer(ng, st->id, nv, k) : -1; // copies the fields
    buf_reset(&st->trail);
    return rv == 0 ? 0 : -1;
}

static ssize_t h2s__data_read(nghttp2_session *ng, int32_t id, uint8_t *dst, size_t length,
                              uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)id;
    (void)user;
    struct h2_stream *st = src->ptr;
    if (h2s__decode_body(st) == -1)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = buf_pending(&st->body);
    if (n > length)
        n = length;
    if (st->res_eof && n > 0 && n == buf_pending(&st->body) && buf_pending(&st->trail) == 0) {
        /* the last frame of the body (a cache hit's whole body, typically): h2s__send_data
         * writes its frame header and these bytes into <wout>, nghttp2 does not copy them
         * into its own frame buffer first */
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_COPY;
        return (ssize_t)n;
    }
    memcpy(dst, buf_head(&st->body), n);
    buf_consume(&st->body, n);
    if (h2s__decode_body(st) == -1)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (!st->res_eof && st->rq.state != GW_REQ_ACTIVE && buf_pending(&st->out) == 0 &&
        buf_pending(&st->body) == 0) {
        /* the request ended with the body short of its framing: a reset says it was cut */
        if (st->res_body != H1_BODY_UNTIL_CLOSE)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->res_eof = true;
    }
    if (st->res_eof && buf_pending(&st->body) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (buf_pending(&st->trail) > 0 && h2s__submit_trailers(ng, st) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; // the trailers' HEADERS ends it
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* nghttp2's send_data_callback, for a DATA frame h2s__data_read marked NGHTTP2_DATA_FLAG_NO_COPY:
 * the frame header and the body bytes go into <wout> (one copy; the flush writes <wout> whole).
 * Past H2S_WOUT_HIGH the frame waits (WOULDBLOCK: nghttp2 keeps it and asks again after the
 * write), since one nghttp2_session_mem_send call may send the DATA of many streams this way. */
static int h2s__send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd,
                          size_t length, nghttp2_data_source *src, void *user)
{
    (void)ng;
    struct h2sess *s = user;
    struct h2_stream *st = src->ptr;
    AG_ASSERT(st->magic == H2ST_MAGIC && buf_pending(&st->body) >= length);
    AG_ASSERT(f->data.padlen == 0); // no padding callback is set
    if (buf_pending(&s->wout) >= H2S_WOUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    gwthread_buf_take(s->th, &s->wout);
    buf_reserve(&s->wout, 9 + length);
    char *p = buf_tail(&s->wout);
    memcpy(p, framehd, 9);
    memcpy(p + 9, buf_head(&st->body), length);
    buf_commit(&s->wout, 9 + length);
    buf_consume(&st->body, length);
    return 0;
}

/* The DATA of a stream that carries a tunnel: the upstream's bytes as the windows allow, and
 * END_STREAM once the upstream closed its side (RFC 8441 §5: a TCP FIN is END_STREAM). */
static ssize_t h2s__tunnel_read(nghttp2_session *ng, int32_t id, uint8_t *dst, size_t length,
                                uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)id;
    (void)user;
    struct h2_stream *st = src->ptr;
    if (st->tun == NULL) // ended under the stream: it is being reset
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    bool eof;
    size_t n = tunnel_stream_read(st->tun, (char *)dst, length, &eof);
    if (eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true; // tunnel_stream_ops.wake resumes it
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* HTTP/1.1's connection fields, which HTTP/2 forbids (RFC 9113 §8.2.2). */
static bool h2s__hop_by_hop(const char *n, size_t len)
{
    switch (len) { // by length first: this runs for every field of every answer
    case 2:
        return strncasecmp(n, "te", 2) == 0;
    case 7:
        return strncasecmp(n, "upgrade", 7) == 0;
    case 10:
        return strncasecmp(n, "connection", 10) == 0 || strncasecmp(n, "keep-alive", 10) == 0;
    case 16:
        return strncasecmp(n, "proxy-connection", 16) == 0;
    case 17:
        return strncasecmp(n, "transfer-encoding", 17) == 0;
    default:
        return false;
    }
}

/* Field <i> of head <h> as HTTP/2 sends it: the stored fields (<h1_refs>) first, then <f>.
 * *<lower>: the name is in lower case already. */
static void h2s__field(const struct gw_head *h, size_t nrefs, size_t i, struct h1_header *out,
                       bool *lower)
{
    if (i < nrefs) { // a stored head's field: offsets into its bytes
        const struct h1_field_ref *rf = &h->h1_refs[i];
        *lower = h->h1_lnames != NULL;
        *out = (struct h1_header){*lower ? h->h1_lnames + rf->lname_off : h->h1 + rf->name_off,
                                  rf->name_len, h->h1 + rf->value_off, rf->value_len};
    } else {
        *lower = false;
        *out = h->f[i - nrefs];
    }
}

/* gw_sess_ops.head. The header list is built from the fields directly (names lowered, HTTP/1.1's
 * connection fields dropped) and submitted at once: nghttp2 copies it, and the HEADERS frame
 * goes out with the first body bytes (the flush is the send's). A head that may be taken back
 * (gw_head.retractable) is packed into <hd> instead and submitted by the next send. */
static void h2s__head(struct gw_req *r, const struct gw_head *h)
{
    struct h2_stream *st = r->sess;
    struct h2sess *s = st->s;
    /* the upstream's 101 to the WebSocket Upgrade an extended CONNECT became: the stream's
     * answer is 200 (RFC 8441 §5), sent with the tunnel's first DATA by h2s__done */
    bool ws101 = h->status == 101 && r->ws_key[0] != '\0';
    if (s->closed || st->closed || st->res_head_done || st->head_queued ||
        (h->status < 200 && !ws101))
        return; // (no other interim answer reaches an HTTP/2 stream: 101 is HTTP/1.1's)
    size_t nrefs = h->h1 != NULL ? h->h1_nrefs : 0, nall = nrefs + h->n;
    uint64_t h1len = h->h1 != NULL ? h->h1_len
                                   : 13 + (h->reason != NULL ? h->reason_len
                                                             : strlen(h1_status_reason(h->status))) + 2;
    size_t names = 0;
    for (size_t i = 0; i < h->n; i++) {
        h1len += h->f[i].name_len + h->f[i].value_len + 4;
        names += h->f[i].name_len;
    }
    st->head_bytes = h1len + 2; // the access log's bytes: the head's size over HTTP/1.1
    st->head_status = ws101 ? 200 : h->status;
    st->res_body = h->body;
    st->res_remaining = h->body == H1_BODY_LENGTH ? h->content_length : 0;
    if (h->body == H1_BODY_CHUNKED)
        h1_chunked_init(&st->res_chunk);
    st->res_eof = h->body == H1_BODY_NONE || (h->body == H1_BODY_LENGTH && h->content_length == 0);
    if (h->retractable || ws101) {
        gwthread_buf_take(s->th, &st->hd);
        buf_reset(&st->hd);
        /* records [u32 name_len][u32 value_len][name, lower case][value], for h2s__submit_head */
        uint32_t k = 0;
        for (size_t i = 0; i < nall; i++) {
            struct h1_header f;
            bool lower;
            h2s__field(h, nrefs, i, &f, &lower);
            if (h2s__hop_by_hop(f.name, f.name_len) || f.name_len > UINT32_MAX ||
                f.value_len > UINT32_MAX)
                continue;
            if (ws101 && f.name_len == 20 && strncasecmp(f.name, "sec-websocket-accept", 20) == 0)
                continue; // answered our key, not the client's: meaningless on the stream
            uint32_t l[2] = {(uint32_t)f.name_len, (uint32_t)f.value_len};
            buf_reserve(&st->hd, sizeof(l) + f.name_len + f.value_len);
            char *p = buf_tail(&st->hd);
            memcpy(p, l, sizeof(l));
            p += sizeof(l);
            for (size_t j = 0; j < f.name_len; j++) {
                char c = f.name[j];
                p[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            if (f.value_len > 0)
                memcpy(p + f.name_len, f.value, f.value_len);
            buf_commit(&st->hd, sizeof(l) + f.name_len + f.value_len);
            k++;
        }
        st->head_nv = k;
        st->head_queued = true;
        return;
    }
    /* names that are not in lower case yet are lowered into <lbuf> (on the stack: nghttp2
     * copies the list; a cache hit's few per-hit names fit) or, past that, into <hd>, reserved
     * once so that the pointers into it hold; values are pointed at where they are. The stack
     * spares a hit a 16 KB block taken and given back, a cold cache line each time with many
     * streams in flight. */
    if (h->h1_lnames == NULL)
        for (size_t i = 0; i < nrefs; i++)
            names += h->h1_refs[i].name_len;
    char lbuf[512];
    char *lp = lbuf;
    if (names > sizeof(lbuf)) {
        gwthread_buf_take(s->th, &st->hd);
        buf_reset(&st->hd);
        buf_reserve(&st->hd, names);
        lp = buf_tail(&st->hd);
    }
    nghttp2_nv local[48], *nv = local;
    if (nall + 1 > sizeof(local) / sizeof(local[0]))
        nv = xmalloc((nall + 1) * sizeof(*nv)); // rare: a head of many fields
    char status[3];
    int sv = h->status <= 999 ? h->status : 500;
    status[0] = (char)('0' + sv / 100);
    status[1] = (char)('0' + sv / 10 % 10);
    status[2] = (char)('0' + sv % 10);
    size_t k = 0;
    nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < nall; i++) {
        struct h1_header f;
        bool lower;
        h2s__field(h, nrefs, i, &f, &lower);
        if (h2s__hop_by_hop(f.name, f.name_len))
            continue;
        const char *name = f.name;
        if (!lower) {
            for (size_t j = 0; j < f.name_len; j++) {
                char c = f.name[j];
                lp[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            name = lp;
            lp += f.name_len;
        }
        nv[k++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)f.value, f.name_len, f.value_len,
                               NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = h2s__data_read};
    int rv = nghttp2_submit_response(s->ng, st->id, nv, k, st->res_eof ? NULL : &dp); // copies
    if (nv != local)
        free(nv);
    if (names > sizeof(lbuf))
        gwthread_buf_give(s->th, &st->hd);
    if (rv != 0)
        return; // no head: the stream is reset when the request ends (h2s__done)
    st->rq.bytes_out += st->head_bytes;
    st->res_head_done = true;
}

/* gw_sess_ops.unhead */
static bool h2s__unhead(struct gw_req *r)
{
    struct h2_stream *st = r->sess;
    if (!st->head_queued || st->res_head_done)
        return false;
    st->head_queued = false;
    gwthread_buf_give(st->s->th, &st->hd);
    return true;
}

/* The queued head as HEADERS (with END_STREAM when there is no body). Returns 0, -1 when it
 * cannot be sent. */
static int h2s__submit_head(struct h2_stream *st)
{
    struct h2sess *s = st->s;
    nghttp2_nv local[64], *nv = local;
    if (st->head_nv + 1 > sizeof(local) / sizeof(local[0]))
        nv = xmalloc((st->head_nv + 1) * sizeof(*nv)); // rare: a head of many fields
    char status[4];
    int sv = st->head_status >= 100 && st->head_status <= 999 ? st->head_status : 500;
    status[0] = (char)('0' + sv / 100);
    status[1] = (char)('0' + sv / 10 % 10);
    status[2] = (char)('0' + sv % 10);
    size_t k = 0;
    nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    const char *p = buf_head(&st->hd), *end = p + buf_pending(&st->hd);
    while (p < end && k < (size_t)st->head_nv + 1) {
        uint32_t l[2];
        memcpy(l, p, sizeof(l));
        p += sizeof(l);
        nv[k++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + l[0], l[0], l[1],
                               NGHTTP2_NV_FLAG_NONE};
        p += l[0] + l[1];
    }
    nghttp2_data_provider dp = {.source.ptr = st,
                                .read_callback = st->tun ? h2s__tunnel_read : h2s__data_read};
    int rv = nghttp2_submit_response(s->ng, st->id, nv, k, st->res_eof ? NULL : &dp); // copies
    if (nv != local)
        free(nv);
    st->head_queued = false;
    gwthread_buf_give(s->th, &st->hd);
    if (rv != 0)
        return -1;
    st->rq.bytes_out += st->head_bytes;
    st->res_head_done = true;
    if (st->res_eof)
        buf_reset(&st->out);
    return 0;
}

/* Translates what the request layer wrote and wakes the stream's data provider. */
static int h2s__translate(struct h2_stream *st)
{
    struct h2sess *s = st->s;
    if (st->closed)
        return 0;
    if (!st->res_head_done) {
        if (!st->head_queued)
            return 0; // no head yet
        if (h2s__submit_head(st) == -1) {
            nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
            return -1;
        }
    }
    if (h2s__decode_body(st) == -1) {
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return -1;
    }
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(s->ng, st->id);
    }
    return 0;
}

/* gw_sess_ops.send */
static int h2s__send(struct gw_req *r, const struct iovec *iov, int n)
{
    struct h2_stream *st = r->sess;
    struct h2sess *s = st->s;
    if (s->closed)
        return -1; // h2s__close aborted the request
    if (st->closed) {
        /* the whole response went out and the client closed the stream: the proxy's last
         * (empty) flush before it ends the request succeeds; anything else is for a stream the
         * client reset: the request is aborted, as the contract of gw_sess_ops.send says */
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        if (st->res_sent && total == 0)
            return 0;
        gw_req_abort(r);
        return -1;
    }
    gwthread_buf_take(s->th, &st->out); // a block of the thread's: no malloc per response
    for (int i = 0; i < n; i++)
        buf_append(&st->out, iov[i].iov_base, iov[i].iov_len);
    st->want_drained = false;
    if (h2s__translate(st) == -1) {
        gw_req_abort(r);
        h2s__flush(s);
        return -1;
    }
    h2s__flush(s);
    return s->closed ? -1 : 0;
}

/* gw_sess_ops.resume_read: body bytes were consumed: open the stream's window again. */
static void h2s__resume_read(struct gw_req *r)
{
    struct h2_stream *st = r->sess;
    struct h2sess *s = st->s;
    if (s->closed || st->closed || st->unconsumed == 0)
        return;
    if (buf_pending(&st->in) >= CONN_BLOCK)
        return;
    nghttp2_session_consume_stream(s->ng, st->id, st->unconsumed);
    st->unconsumed = 0;
    st->body_at_ms = loop_now_ms(s->th->loop); // the client may send again from now
    h2s__flush(s);
}

static void h2s__tun_wake(void *arg)
{
    struct h2_stream *st = arg;
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->s->ng, st->id);
    }
    h2s__flush(st->s);
}

static void h2s__tun_consumed(void *arg, size_t n)
{
    struct h2_stream *st = arg;
    if (!st->closed)
        nghttp2_session_consume_stream(st->s->ng, st->id, n);
    h2s__flush(st->s); // the WINDOW_UPDATE
}

static void h2s__tun_ended(void *arg, enum tunnel_end why)
{
    struct h2_stream *st = arg;
    st->tun = NULL;
    /* both sides ended (END_STREAM each way): the stream closes by itself; else the upstream
     * failed, a timeout or the drain: RFC 8441 §5 maps a TCP reset to RST_STREAM CANCEL */
    if (why != TUNNEL_END_CLOSED && !st->closed)
        nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    h2s__flush(st->s);
}

static const struct tunnel_stream_ops h2s_tunnel_ops = {
    .wake = h2s__tun_wake,
    .consumed = h2s__tun_consumed,
    .ended = h2s__tun_ended,
};

/* The upstream switched to the WebSocket protocol for an extended CONNECT: the stream answers
 * 200 (the head h2s__head queued) and carries the tunnel from here; what the client sent before
 * (held in <in>, its window not opened) and what the upstream sent after its 101 (in <out>)
 * are the tunnel's first bytes. */
static void h2s__to_tunnel(struct h2_stream *st)
{
    struct h2sess *s = st->s;
    struct tunnel *t = st->rq.tunnel;
    st->rq.tunnel = NULL;
    st->tun = t;
    if (h2s__submit_head(st) == -1) {
        st->tun = NULL;
        tunnel_destroy(t);
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        h2s__flush(s);
        return;
    }
    st->unconsumed = 0; // the tunnel gives those bytes back as it writes them (consumed)
    size_t nin = buf_pending(&st->in), nout = buf_pending(&st->out);
    tunnel_start_stream(t, &h2s_tunnel_ops, st, nin ? buf_head(&st->in) : NULL, nin,
                        nout ? buf_head(&st->out) : NULL, nout);
    gwthread_buf_give(s->th, &st->in);
    gwthread_buf_give(s->th, &st->out);
    if (st->tun != NULL && st->req_eos)
        tunnel_stream_eof(st->tun); // the client half-closed before the 200
    h2s__flush(s);
}

/* gw_sess_ops.done */
static void h2s__done(struct gw_req *r)
{
    struct h2_stream *st = r->sess;
    struct h2sess *s = st->s;
    if (s->closed)
        return;
    if (r->tunnel != NULL && !st->closed && st->head_queued) {
        h2s__to_tunnel(st);
        return;
    }
    if (!st->closed) {
        /* the rest of the body drains through the data provider, which resets the stream if the
         * response ended short of its framing */
        if (h2s__translate(st) == 0 && !st->res_head_done)
            nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        else if (!st->req_eos)
            /* answered before the whole body came: the rest is read and dropped (its window
             * reopened), up to server.max_body_size after the answer went out; then
             * RST_STREAM NO_ERROR (RFC 9113 §8.1). Sent at once, the reset would drop the
             * answer queued behind it, and curl takes one that comes while it still uploads
             * for an error even after the answer */
            st->rst_after = true;
        h2s__flush(s);
        return;
    }
    h2s__stream_maybe_free(st);
}

/* gw_sess_ops.continue_100: HTTP/2 clients do not wait for it. */
static void h2s__continue_100(struct gw_req *r)
{
    (void)r;
}

static const struct gw_sess_ops h2s_sess_ops = {
    .head = h2s__head,
    .unhead = h2s__unhead,
    .send = h2s__send,
    .resume_read = h2s__resume_read,
    .done = h2s__done,
    .continue_100 = h2s__continue_100,
};

/* ---- request: nghttp2 callbacks ---- */

static int h2s__on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2sess *s = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (s->draining || s->calm)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; // refused, no request made
    struct h2_stream *st = h2s__stream_new(s, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    return 0;
}

static int h2s__on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                          size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags;
    struct h2sess *s = user;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st == NULL || st->magic != H2ST_MAGIC)
        return 0;
    st->hdr_bytes += nlen + vlen + 32; // trailers count too: the same HPACK-bomb bound
    if (st->hdr_bytes > s->th->sh->cfg->http2.max_header_list_size) {
        metrics_counter_inc(s->th->ms, s->th->sh->ids.h2_hdr_limit);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; // resets the stream
    }
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return h2s__trailer_field(st, name, nlen, value, vlen);
    /* a refused field is remembered and answered once the head is whole (h2s__start) */
    if (st->rh != NULL)
        reqhead_field(st->rh, (const char *)name, nlen, (const char *)value, vlen);
    return 0;
}

/* A request trailer field (a HEADERS frame after DATA): kept as an HTTP/1.1 line for the chunked
 * body's trailer section (h2s__on_frame_recv), where the proxy drops the fields that must not be
 * trailers as it does for an HTTP/1.1 client. A body framed by Content-Length upstream has no
 * trailer section: its trailers are dropped (the head went out before they came; a request that
 * announces them with a Trailer field is sent chunked, h2s__start). */
static int h2s__trailer_field(struct h2_stream *st, const uint8_t *name, size_t nlen,
                              const uint8_t *value, size_t vlen)
{
    if (!st->chunked_req || st->rq.state != GW_REQ_ACTIVE || st->rq.px.req_body_read)
        return 0;
    /* they become HTTP/1.1 lines: the head's fields' checks (reqhead_field_check; a pseudo-
     * header's ':' is no token character) */
    if (reqhead_field_check((const char *)name, nlen, (const char *)value, vlen) != H1_OK)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    buf_append(&st->rtrail, name, nlen);
    buf_append(&st->rtrail, ": ", 2);
    buf_append(&st->rtrail, value, vlen);
    buf_append(&st->rtrail, "\r\n", 2);
    return 0;
}

/* The head is complete: hand the stream to the request layer. */
static void h2s__start(struct h2sess *s, struct h2_stream *st)
{
    struct gw_req *r = &st->rq;
    st->started = true;
    st->body_at_ms = loop_now_ms(s->th->loop);
    gw_req_begin(r);
    r->wall_ms = clock_wall_ms();
    r->keep_alive = true;
    if (st->rh == NULL || reqhead_finish(st->rh, &r->req, !st->req_eos) == -1) {
        enum h1_err err = st->rh ? r->req.err : H1_ERR_HEAD_TOO_LARGE;
        r->route = -1;
        gw_req_make_rid(r, NULL);
        gw_req_respond_error(r, h1_err_status(err), "bad_request", h1_err_text(err), NULL);
        return;
    }
    if (r->req.body == H1_BODY_LENGTH &&
        headers_find(r->req.headers, r->req.nheaders, "trailer") != NULL)
        /* trailers announced (RFC 9110 §6.6.2): only a chunked body can carry them upstream,
         * and the head goes out before they come (nghttp2 still holds the DATA to the
         * content-length) */
        r->req.body = H1_BODY_CHUNKED;
    st->chunked_req = r->req.body == H1_BODY_CHUNKED;
    r->req.https = s->tp.ops != &transport_tcp_ops; // after the build, which clears it
    r->client_verify = (signed char)tls_transport_client_verify(&s->tp);
    gw_req_start(r);
}

static int h2s__on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2sess *s = user;
    struct gwthread *th = s->th;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        uint64_t now = loop_now_ms(th->loop);
        if (now - s->reset_window_ms >= H2S_RESET_WINDOW_MS) {
            s->reset_window_ms = now;
            s->resets = 0;
        }
        if (++s->resets > (unsigned)th->sh->cfg->http2.max_resets && !s->calm) {
            s->calm = true;
            static struct log_limit lim;
            ag_log_limited(AG_LOG_WARN, &lim,
                           "client %s: %u stream resets in 10 s (rapid reset): "
                           "GOAWAY ENHANCE_YOUR_CALM",
                           s->client_ip, s->resets);
            metrics_counter_inc(th->ms, th->sh->ids.h2_calm);
            s->goaway_ours = true;
            nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
        }
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st == NULL || st->magic != H2ST_MAGIC)
        return 0;
    bool eos = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st->req_eos = eos;
        h2s__start(s, st);
        return 0;
    }
    if (eos && st->tun != NULL) {
        st->req_eos = true;
        tunnel_stream_eof(st->tun); // RFC 8441 §5: END_STREAM is the client's FIN
        return 0;
    }
    if (eos && st->started && !st->req_eos) {
        st->req_eos = true;
        if (st->chunked_req && st->rq.state == GW_REQ_ACTIVE) {
            /* the last chunk, the trailers' lines (if HEADERS came after the DATA), the end */
            gwthread_buf_take(s->th, &st->in);
            buf_append_str(&st->in, "0\r\n");
            if (buf_pending(&st->rtrail) > 0) // (an empty buf has no data pointer to offset)
                buf_append(&st->in, buf_head(&st->rtrail), buf_pending(&st->rtrail));
            buf_append_str(&st->in, "\r\n");
        }
        buf_deinit(&st->rtrail);
        gw_req_on_body(&st->rq);
    }
    return 0;
}

static int h2s__on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                        size_t len, void *user)
{
    (void)flags;
    (void)user;
    nghttp2_session_consume_connection(ng, len); // per stream windows bound the buffering
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL || st->magic != H2ST_MAGIC || !st->started)
        return 0;
    if (st->tun != NULL) { // tunnel bytes: the window opens as they reach the upstream
        tunnel_stream_data(st->tun, (const char *)data, len);
        return 0;
    }
    if (st->rq.ws_key[0] && st->rq.state == GW_REQ_ACTIVE) {
        /* an extended CONNECT waiting for the upstream's 101: the bytes are the tunnel's
         * first, held (the window, not given back, bounds them) */
        gwthread_buf_take(st->s->th, &st->in);
        buf_append(&st->in, data, len);
        st->unconsumed += len;
        return 0;
    }
    if (st->rq.state != GW_REQ_ACTIVE || st->rq.px.req_body_read) {
        nghttp2_session_consume_stream(ng, id, len); // answered already: dropped
        st->dropped += len;
        if (st->rst_after && st->res_sent &&
            st->dropped > st->s->th->sh->cfg->server.max_body_size) {
            st->rst_after = false;
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        }
        return 0;
    }
    st->body_rcvd += len;
    st->body_at_ms = loop_now_ms(st->s->th->loop);
    if (st->rq.req.body == H1_BODY_LENGTH && st->body_rcvd > st->rq.req.content_length) {
        /* more DATA than Content-Length said (nghttp2 refuses it first; the upstream request is
         * framed by that length, so an excess must never reach it): RFC 9113 §8.1.1 */
        metrics_counter_inc(st->s->th->ms, st->s->th->sh->ids.h2_proto);
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
        gw_req_abort(&st->rq);
        return 0;
    }
    gwthread_buf_take(st->s->th, &st->in);
    if (st->chunked_req)
        h1_write_chunk(&st->in, (const char *)data, len);
    else
        buf_append(&st->in, data, len);
    st->unconsumed += len;
    gw_req_on_body(&st->rq);
    return 0;
}

static int h2s__on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    (void)user;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL || st->magic != H2ST_MAGIC)
        return 0;
    st->closed = true;
    if (st->tun != NULL) {
        /* reset by the client (RFC 8441 §5: CANCEL is its TCP reset) or both ends closed:
         * the upstream connection goes too */
        struct tunnel *t = st->tun;
        st->tun = NULL;
        tunnel_stream_reset(t, code == NGHTTP2_NO_ERROR || code == NGHTTP2_CANCEL
                                   ? TUNNEL_END_CLOSED
                                   : TUNNEL_END_ERROR);
    }
    if (st->rq.state == GW_REQ_ACTIVE &&
        !(st->res_head_done && st->res_eof && buf_pending(&st->body) == 0 && code == 0))
        gw_req_abort(&st->rq); // the client reset it (a whole response is still recorded)
    h2s__stream_maybe_free(st);
    return 0;
}

static int h2s__on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2sess *s = user;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR &&
        !s->goaway_ours) {
        /* nghttp2 ended the session itself (its reason in the opaque data): a SETTINGS frame
         * of too many entries, its own reset rate limit, a protocol error it found */
        const struct gw_metric_ids *ids = &s->th->sh->ids;
        const char *why = (const char *)f->goaway.opaque_data;
        size_t wl = f->goaway.opaque_data_len;
        metrics_ref ref = ids->h2_proto;
        if (wl >= 8 && memcmp(why, "SETTINGS", 8) == 0)
            ref = ids->h2_flood_settings;
        else if (f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM)
            ref = ids->h2_calm;
        metrics_counter_inc(s->th->ms, ref);
        s->goaway_ours = true; // once per session
        return 0;
    }
    if (f->hd.type == NGHTTP2_RST_STREAM && f->rst_stream.error_code == NGHTTP2_REFUSED_STREAM) {
        /* nghttp2 refused a stream over SETTINGS_MAX_CONCURRENT_STREAMS (this file never
         * sends REFUSED_STREAM itself) */
        metrics_counter_inc(s->th->ms, s->th->sh->ids.h2_max_streams);
        return 0;
    }
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st != NULL && st->magic == H2ST_MAGIC)
        st->res_sent = true;
    return 0;
}

static int h2s__on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *user)
{
    (void)ng;
    (void)f;
    (void)err;
    struct h2sess *s = user;
    metrics_counter_inc(s->th->ms, s->th->sh->ids.h2_proto);
    return 0;
}

/* ---- session ---- */

/* Whether a response waits on a flow-control window the client keeps shut (its stream's or the
 * connection's): the bytes are ready, nghttp2 may not send them. */
static bool h2s__window_stalled(struct h2sess *s)
{
    bool conn_shut = nghttp2_session_get_remote_window_size(s->ng) <= 0;
    for (struct h2_stream *st = s->streams; st != NULL; st = st->next) {
        if (!st->res_head_done || st->res_sent || st->closed ||
            (buf_pending(&st->body) == 0 && buf_pending(&st->out) == 0))
            continue;
        if (conn_shut || nghttp2_session_get_stream_remote_window_size(s->ng, st->id) <= 0)
            return true;
    }
    return false;
}

/* Whether <st> waits for request body bytes the client may send (its window is open: what it
 * sent was consumed), so that their not coming is the client's doing. */
static bool h2s__body_waits(const struct h2_stream *st)
{
    return st->started && !st->req_eos && !st->closed && st->rq.state == GW_REQ_ACTIVE &&
           !st->rq.px.req_body_read && st->unconsumed == 0 && buf_pending(&st->in) == 0;
}

/* One timer per session: the socket not taking bytes (server.send_timeout), no stream open
 * (server.keepalive_timeout), a response held behind a window the client does not open
 * (server.send_timeout from when it shut: a client that never sends WINDOW_UPDATE cannot keep
 * streams, their requests and their buffers forever), or a request body that stopped coming
 * (server.client_body_timeout since its last DATA, as over HTTP/1.1: 408). */
static void h2s__arm(struct h2sess *s)
{
    const struct gw_config *cfg = s->th->sh->cfg;
    struct loop *loop = s->th->loop;
    if (buf_pending(&s->wout) > 0) {
        s->stalled_since_ms = 0;
        loop_timer_start(loop, &s->timer, cfg->server.send_timeout_ms);
    } else if (s->nstreams == 0) {
        s->stalled_since_ms = 0;
        loop_timer_start(loop, &s->timer,
                         cfg->server.keepalive_timeout_ms ? cfg->server.keepalive_timeout_ms
                                                          : cfg->server.client_header_timeout_ms);
    } else {
        uint64_t now = loop_now_ms(loop), due = 0;
        if (!s->calm && h2s__window_stalled(s)) {
            if (s->stalled_since_ms == 0)
                s->stalled_since_ms = now;
            due = s->stalled_since_ms + cfg->server.send_timeout_ms;
        } else {
            s->stalled_since_ms = 0;
        }
        for (struct h2_stream *st = s->streams; st != NULL; st = st->next)
            if (h2s__body_waits(st)) {
                uint64_t d = st->body_at_ms + cfg->server.client_body_timeout_ms;
                if (due == 0 || d < due)
                    due = d;
            }
        if (due != 0)
            loop_timer_start(loop, &s->timer, due > now ? due - now : 0);
        else if (loop_timer_armed(&s->timer))
            loop_timer_stop(loop, &s->timer);
    }
}

/* Streams whose output emptied resume their upstream reads (gw_req_on_drained). */
static void h2s__notify_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct h2sess *s = arg;
    s->notify_queued = false;
    if (s->closed)
        return;
    s->depth++;
    for (struct h2_stream *st = s->streams, *next; st != NULL; st = next) {
        next = st->next;
        if (st->want_drained && st->rq.state == GW_REQ_ACTIVE) {
            /* also for a stream whose response went out whole: the request ends here */
            st->want_drained = false;
            gw_req_on_drained(&st->rq);
        }
    }
    s->depth--;
    h2s__flush(s);
}

/* Writes frames until the socket is full or nghttp2 has nothing more; then tells streams whose
 * output emptied. Re-entered from a request's callbacks: the outer call loops again. */
static void h2s__flush(struct h2sess *s)
{
    if (s->closed)
        return;
    if (s->depth > 0) {
        s->flush_again = true;
        return;
    }
    s->depth++;
    do {
        s->flush_again = false;
        while (s->writable) {
            /* gather every frame nghttp2 has (up to H2S_WOUT_HIGH), then one write: a batch of
             * ten responses is one syscall (and one TLS record run), not one per frame */
            while (buf_pending(&s->wout) < H2S_WOUT_HIGH) {
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(s->ng, &data);
                if (n < 0) {
                    s->depth--;
                    h2s__close(s);
                    return;
                }
                if (n == 0)
                    break;
                gwthread_buf_take(s->th, &s->wout);
                buf_append(&s->wout, data, (size_t)n);
            }
            if (buf_pending(&s->wout) == 0)
                break;
            ssize_t w = transport_write(&s->tp, buf_head(&s->wout), buf_pending(&s->wout));
            if (w == IO_AGAIN) {
                s->writable = false;
                break;
            }
            if (w < 0) {
                s->depth--;
                h2s__close(s);
                return;
            }
            buf_consume(&s->wout, (size_t)w);
        }
        if (!s->notify_queued)
            for (struct h2_stream *st = s->streams; st != NULL; st = st->next)
                if (st->want_drained && st->rq.state == GW_REQ_ACTIVE) {
                    /* never from inside the request's own send: after the batch */
                    s->notify_queued = true;
                    loop_defer(s->th->loop, h2s__notify_cb, s);
                    break;
                }
    } while (s->flush_again && !s->closed);
    s->depth--;
    if (s->closed)
        return;
    if (buf_pending(&s->wout) == 0)
        gwthread_buf_give(s->th, &s->wout);
    bool done = !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng);
    if (s->draining && s->nstreams == 0 && !nghttp2_session_want_write(s->ng))
        done = true;
    if (done && buf_pending(&s->wout) == 0) {
        h2s__close(s);
        return;
    }
    h2s__arm(s);
}

/* Feeds <n> bytes to nghttp2. Returns -1 when the session was closed. */
static int h2s__feed(struct h2sess *s, const char *p, size_t n)
{
    s->depth++;
    ssize_t rv = nghttp2_session_mem_recv(s->ng, (const uint8_t *)p, n);
    s->depth--;
    if (rv < 0) {
        static struct log_limit lim;
        ag_log_limited(AG_LOG_DEBUG, &lim, "client %s: HTTP/2: %s", s->client_ip,
                       nghttp2_strerror((int)rv));
        const struct gw_metric_ids *ids = &s->th->sh->ids;
        metrics_counter_inc(s->th->ms, rv == NGHTTP2_ERR_FLOODED ? ids->h2_flood_ctl
                                       : rv == NGHTTP2_ERR_TOO_MANY_SETTINGS ? ids->h2_flood_settings
                                       : rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                                           ? ids->h2_flood_cont
                                           : ids->h2_proto);
        if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC || rv == NGHTTP2_ERR_FLOODED) {
            h2s__close(s);
            return -1;
        }
        s->goaway_ours = true;
        nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
    }
    return 0;
}

/* Reads and feeds until the socket is empty. <hup>: the peer's end was announced with this
 * event, so read until EOF, never stopping at a short read. */
static void h2s__read(struct h2sess *s, bool hup)
{
    char tmp[16384];
    while (!s->closed && !s->read_eof && !s->calm) {
        if (buf_pending(&s->wout) > 0 && !s->writable)
            break; // the client does not read what it asked for: stop reading it
        ssize_t n = transport_read(&s->tp, tmp, sizeof(tmp));
        if (n > 0) {
            /* A read that found the socket drained (transport_drained: a short plaintext read;
             * a server-side TLS read whose own read(2) was short, OpenSSL holding nothing more)
             * ends the loop: the read that would meet EAGAIN is skipped (one system call per
             * batch of requests), the next bytes bring a new edge-triggered event, as
             * srvconn_read_once does for HTTP/1.1. */
            bool drained = !hup && transport_drained(&s->tp, (size_t)n, sizeof(tmp));
            if (h2s__feed(s, tmp, (size_t)n) == -1)
                return;
            if (drained)
                break;
            continue;
        }
        if (n == IO_AGAIN)
            break;
        s->read_eof = true;
        h2s__close(s);
        return;
    }
    h2s__flush(s);
}

static void h2s__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct h2sess *s = arg;
    if (s->magic != H2S_MAGIC || s->closed)
        return;
    if (events & LOOP_WRITE) {
        s->writable = true;
        h2s__flush(s);
    }
    if (!s->closed && (events & (LOOP_READ | LOOP_HUP)))
        h2s__read(s, (events & LOOP_HUP) != 0);
}

static void h2s__on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct h2sess *s = arg;
    struct gwthread *th = s->th;
    if (s->closed)
        return;
    if (buf_pending(&s->wout) > 0 || s->nstreams == 0) {
        /* a client that stopped reading, or an idle session */
        metrics_counter_inc(th->ms, buf_pending(&s->wout) > 0 ? th->sh->ids.h2_to_send
                                                              : th->sh->ids.h2_to_idle);
        h2s__close(s);
        return;
    }
    uint64_t now = loop_now_ms(th->loop);
    const struct gw_config *cfg = th->sh->cfg;
    if (s->stalled_since_ms != 0 && now >= s->stalled_since_ms + cfg->server.send_timeout_ms &&
        !s->calm && h2s__window_stalled(s)) {
        static struct log_limit lim;
        ag_log_limited(AG_LOG_WARN, &lim,
                       "client %s: HTTP/2 flow-control window shut for %llu ms with a response "
                       "waiting: GOAWAY ENHANCE_YOUR_CALM",
                       s->client_ip,
                       (unsigned long long)(loop_now_ms(th->loop) - s->stalled_since_ms));
        metrics_counter_inc(th->ms, th->sh->ids.h2_to_window);
        s->calm = true; // read nothing more; the session closes once the GOAWAY is out
        s->goaway_ours = true;
        nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
        h2s__flush(s);
        if (!s->closed && buf_pending(&s->wout) == 0)
            h2s__close(s);
        return;
    }
    s->depth++; // the answers flush once, below
    for (struct h2_stream *st = s->streams, *next; st != NULL; st = next) {
        next = st->next;
        if (!h2s__body_waits(st) || now < st->body_at_ms + cfg->server.client_body_timeout_ms)
            continue;
        metrics_counter_inc(th->ms, th->sh->ids.h2_to_body);
        if (!st->rq.head_sent) {
            /* as HTTP/1.1 does; the rest of the body, if it comes, is dropped (h2s__done) */
            gw_req_respond_error(&st->rq, 408, "request_timeout",
                                 "request body not received in time", NULL);
        } else {
            nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
            gw_req_abort(&st->rq);
        }
    }
    s->depth--;
    h2s__flush(s); // arms the timer again
}

static void h2s__free_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct h2sess *s = arg;
    struct h2_stream *st = s->streams;
    s->streams = NULL;
    nghttp2_session_del(s->ng); // no callbacks from here on (the streams are ours)
    while (st != NULL) {
        struct h2_stream *next = st->next;
        h2s__stream_free(st);
        st = next;
    }
    gwthread_buf_give(s->th, &s->wout);
    buf_deinit(&s->wout);
    s->magic = 0;
    free(s);
}

static void h2s__close(struct h2sess *s)
{
    if (s->closed)
        return;
    struct gwthread *th = s->th;
    s->closed = true;
    for (struct h2_stream *st = s->streams; st != NULL; st = st->next) {
        if (st->rq.state == GW_REQ_ACTIVE)
            gw_req_abort(&st->rq);
        if (st->tun != NULL) { // the client's side is gone: so is the upstream connection
            struct tunnel *t = st->tun;
            st->tun = NULL;
            tunnel_stream_reset(t, th->draining ? TUNNEL_END_DRAIN : TUNNEL_END_ERROR);
        }
    }
    loop_timer_stop(th->loop, &s->timer);
    loop_del_fd(th->loop, s->tp.fd);
    transport_close(&s->tp);
    if (s->prev)
        s->prev->next = s->next;
    else
        th->h2_active = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    th->nconns--;
    atomic_fetch_sub(&th->sh->conns, 1);
    metrics_gauge_add(th->ms, th->sh->ids.conns_open, -1);
    loop_defer(th->loop, h2s__free_cb, s);
}

void h2sess_accept(struct gwthread *th, struct transport *tp, const char *ip, const char *pre,
                   size_t npre)
{
    const struct gw_config *cfg = th->sh->cfg;
    struct h2sess *s = xcalloc(1, sizeof(*s));
    s->magic = H2S_MAGIC;
    s->tp = *tp;
    s->th = th;
    s->writable = true;
    buf_init(&s->wout);
    snprintf(s->client_ip, sizeof(s->client_ip), "%s", ip);
    loop_timer_init(&s->timer, h2s__on_timer, s);
    s->reset_window_ms = loop_now_ms(th->loop);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2s__on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2s__on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2s__on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2s__on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2s__on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, h2s__on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2s__on_frame_send);
    nghttp2_session_callbacks_set_send_data_callback(cb, h2s__send_data);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_settings(opt, 32);       // entries per SETTINGS frame
    nghttp2_option_set_max_outbound_ack(opt, 1000); // PING/SETTINGS answers queued (floods)
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_session_server_new2(&s->ng, cb, s, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    /* RFC 8441: extended CONNECT (WebSockets over HTTP/2) is announced when a route tunnels
     * WebSockets; nghttp2 accepts :protocol only after we announced it (and refuses it
     * otherwise, as a malformed request) */
    bool ws = false;
    for (size_t i = 0; i < cfg->nroutes && !ws; i++)
        ws = cfg->routes[i].websocket;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)cfg->http2.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)cfg->http2.window_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->http2.max_header_list_size},
        /* RFC 9218 §2.1: no RFC 7540 priority tree (deprecated by RFC 9113 §5.3.2). nghttp2
         * then schedules streams by urgency and keeps no closed streams for the tree: less work
         * per stream and per DATA frame, and less memory per session */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
        /* last: left out when no route tunnels WebSockets */
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv,
                            sizeof(iv) / sizeof(iv[0]) - (ws ? 0 : 1));
    /* the connection window: every stream's window may be in flight at once */
    uint64_t cw = (uint64_t)cfg->http2.window_size * (uint64_t)cfg->http2.max_concurrent_streams;
    if (cw > (1u << 30))
        cw = 1u << 30;
    if (cw > 65535)
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)cw);
    s->next = th->h2_active;
    if (th->h2_active)
        th->h2_active->prev = s;
    th->h2_active = s;
    th->nconns++;
    atomic_fetch_add(&th->sh->conns, 1);
    metrics_gauge_add(th->ms, th->sh->ids.conns_open, 1);
    metrics_counter_inc(th->ms, th->sh->ids.h2_sessions);
    if (loop_add_fd(th->loop, s->tp.fd, LOOP_READ | LOOP_WRITE, h2s__on_event, s) == -1) {
        h2s__close(s);
        return;
    }
    if (th->draining)
        s->draining = true;
    if (npre > 0 && h2s__feed(s, pre, npre) == -1)
        return;
    h2s__read(s, false); // bytes that came with the preface (or after the TLS handshake)
}

void h2sess_drain(struct gwthread *th)
{
    for (struct h2sess *s = th->h2_active, *next; s != NULL; s = next) {
        next = s->next;
        if (s->draining)
            continue;
        s->draining = true;
        nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR,
                              NULL, 0);
        h2s__flush(s);
    }
}

void h2sess_close_all(struct gwthread *th)
{
    while (th->h2_active != NULL)
        h2s__close(th->h2_active);
}

size_t h2sess_trim(struct gwthread *th, size_t keep)
{
    size_t freed = 0;
    while (th->h2_nfree_streams > keep) {
        struct h2_stream *st = th->h2_free_streams;
        th->h2_free_streams = st->next_free;
        th->h2_nfree_streams--;
        freed += sizeof(*st) + st->rq.max_hdrs * sizeof(struct h1_header);
        h2s__stream_destroy(st);
    }
    return freed;
}

void h2sess_thread_stop(struct gwthread *th)
{
    h2sess_close_all(th);
    h2sess_trim(th, 0);
}
