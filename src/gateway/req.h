/* The request layer: one exchange (struct gw_req) apart from the client session that carries it.
 * A session (HTTP/1.1 today: conn.c; HTTP/2 streams later) parses a request into a gw_req, calls
 * gw_req_start, feeds it body bytes, and gets the response back through its gw_sess_ops. The
 * request owns the route, the admission, the filters' state (filter.h), the upstream exchange
 * (proxy.h), the timings and the status of the response being sent. One place ends a request
 * (gw_req_end) and one place writes to the client (the session's send).
 *
 * A response head reaches the session as fields (struct gw_head: status, header fields, the
 * framing of the body bytes that follow), which each session encodes in its own protocol:
 * conn.c as HTTP/1.1 lines (gw_head_write_h1), h2sess.c as an nghttp2 header list. The body
 * bytes that follow go through gw_req_send in the framing the head names. */
#ifndef AG_GATEWAY_REQ_H
#define AG_GATEWAY_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/arena.h"
#include "core/buf.h"
#include "gateway/filter.h"
#include "gateway/gwthread.h"
#include "gateway/proxy.h"
#include "http/h1parse.h"

struct tunnel;

/* A response head as fields. Filled by whoever answers (the proxy from the upstream's parsed
 * response, the cache from a stored entry, the error pages), encoded by the session. Names keep
 * the case they were given (HTTP/1.1 writes them as they are; HTTP/2 lowers them). Slices are
 * borrowed: they must stay valid until gw_req_head returns (the session copies what it keeps).
 * Fields a session's protocol does not carry (Connection, Transfer-Encoding: HTTP/1.1's
 * connection management) are dropped by the sessions that do not want them. */
#define GW_HEAD_LOCAL 32    /* fields kept in the struct itself; more go to the heap */
#define GW_HEAD_STORE 448   /* bytes for values the head formats itself (numbers, dates) */
struct gw_head {
    int status;
    const char *reason;      // HTTP/1.1 reason phrase as received; NULL: the standard one
    size_t reason_len;
    /* Optional: a head that exists as HTTP/1.1 bytes already (a stored response's: status line
     * and fields, CRLF each, no blank line), with its fields indexed as offsets into those
     * bytes (<h1_refs>). An HTTP/1.1 session copies <h1> as it is, another session reads the
     * fields through <h1_refs>; the fields of <f> come after them. */
    const char *h1;
    size_t h1_len;
    const struct h1_field_ref *h1_refs;
    size_t h1_nrefs;
    const char *h1_lnames;   // the names of <h1_refs> in lower case (lname_off), or NULL
    bool retractable;        // gw_req_unhead may follow: the session keeps the head apart until
                             // the next send (else it may hand it to its encoder at once)
    struct h1_header *f;     // the fields (after those of <h1>), in order
    size_t n, cap;
    enum h1_body body;       // framing of the body bytes that follow in gw_req_send (NONE for
    uint64_t content_length; // HEAD, 204, 304); LENGTH: <content_length> bytes
    size_t used;
    struct h1_header local[GW_HEAD_LOCAL];
    char store[GW_HEAD_STORE];
};

#define GW_REQ_MAGIC 0x72657131u /* "req1" */
#define GW_CLIENT_IP_LEN 48
#define GW_REQ_LOG_H2 20 /* log_minor of a request carried by HTTP/2 */

enum gw_req_state {
    GW_REQ_IDLE = 0, // no request (between two of a keep-alive session)
    GW_REQ_ACTIVE,   // begun, not ended: exactly one gw_req_end or gw_req_abort follows
    GW_REQ_ENDED,    // ended; the session resets it before the next one
};

/* What the request layer asks of its session. */
struct gw_sess_ops {
    /* Writes what is queued in *r->out, then <iov> (zero-copy: what the client does not take
     * now is copied into *r->out). Returns 0, or -1 when the client is gone: the session then
     * aborted the request (gw_req_abort), and the caller returns at once. */
    int (*send)(struct gw_req *r, const struct iovec *iov, int n);
    /* Body bytes were consumed from *r->in: read more of them from the client. */
    void (*resume_read)(struct gw_req *r);
    /* The request ended (called once, by gw_req_end): keep-alive or close, next request. When
     * r->tunnel is set (a 101), a session that can hand its connection over starts the tunnel
     * with its transport and buffered bytes (tunnel_start) and sets r->tunnel to NULL. */
    void (*done)(struct gw_req *r);
    /* The request goes upstream and the client waits for "100 Continue" before its body. */
    void (*continue_100)(struct gw_req *r);
    /* Queues the response head <h>, encoded in the session's protocol: nothing of it is written
     * before the next send (which carries the first body bytes with it). The session copies
     * what it keeps. Optional: without it the head is written to *r->out as HTTP/1.1. */
    void (*head)(struct gw_req *r, const struct gw_head *h);
    /* Takes back the head queued by <head> (a retractable one, for HTTP/2) when nothing of it
     * was written and nothing was queued after it. Returns true when it was taken back. */
    bool (*unhead)(struct gw_req *r);
};

/* Small fields are grouped: the struct is in every connection, idle ones included. */
struct gw_req {
    unsigned magic;
    enum gw_req_state state;
    struct gwthread *th;
    const struct gw_sess_ops *sops;
    void *sess;                 // the session (a struct conn for HTTP/1.1)
    const char *client_ip;      // the session's peer address
    struct buf *in;             // request body bytes received, not yet consumed (the session's)
    struct buf *out;            // response bytes queued for the client (the session's)
    // the request: parsed from HTTP/1.1 (conn.c) or built from HTTP/2 fields (http/reqhead.h)
    struct h1_request req;
    struct h1_header *hdrs;     // max_hdrs entries the head was parsed into (the session's)
    const struct filter_chain *chain; // the route's filters, NULL before routing
    uint32_t max_hdrs;
    uint32_t rid_len;
    int route;                  // index or -1
    int status;                 // status sent to the client
    unsigned fpos;              // the filter that answered FILTER_WAIT
    int log_minor;              // HTTP/1.<minor> of the request; -1 before a request line
    uint32_t retry_delay_ms;    // set by the filter that answered FILTER_RETRY
    uint32_t head_h1_len;       // bytes of the HTTP/1.1 head gw_head_write_h1 last queued in
                                // *out (for gw_req_unhead without a session op)
    bool admitted_route, admitted_global;
    bool keep_alive;            // the session stays open after this response
    bool head_sent;             // the response head went out (no error page possible any more)
    bool h2;                    // carried by an HTTP/2 stream (h2sess.c): logged as HTTP/2
    signed char client_verify;  // the TLS client certificate: -1 not asked (no client_ca), 0 none
                                // (verify_client: optional), 1 verified; set with req.https
    bool upgrade;               // an Upgrade the route tunnels: forwarded with its Upgrade
                                // header, never cached or retried, closed after a non-101 answer
    /* an HTTP/2 extended CONNECT for a WebSocket (RFC 8441) the route tunnels: the upstream gets
     * an HTTP/1.1 GET with Upgrade: websocket and this key of the gateway's (a client over HTTP/2
     * sends none), and a 101 counts only with the Sec-WebSocket-Accept that matches it ("": no) */
    char ws_key[25];
    const char *method;         // copies in <strs>/<arena>, for the log (valid until the reset)
    const char *target;
    const char *log_host;       // Host and User-Agent copies for the access log (only when on)
    const char *log_ua;
    uint32_t method_len, target_len, log_host_len, log_ua_len;
    char rid[64];
    char traceparent[56];       // W3C traceparent sent upstream (trace.c); chars 3..34: trace id
    uint64_t t_start_us;        // first byte of the request
    uint64_t wall_ms;
    uint64_t bytes_out;         // bytes the session wrote for this response
    const char *cache_served;   // X-Cache word when the cache answered from memory (access log)
    char *strs;                 // per-request copies (log fields): a block lent per request
    size_t strs_used;
    struct arena arena;         // copies too long for <strs>, reset per request
    _Alignas(8) unsigned char fstate[FILTER_STATE_MAX]; // the filters' per-request state
    struct tunnel *tunnel;      // the upstream switched protocols (101): the session takes it
                                // in gw_sess_ops.done (tunnel_start), else gw_req_end drops it
    struct proxy px;            // the upstream exchange
    struct gw_req *next_free;   // the thread's free list (a session's own use)
};

/* Prepares <r> for its session (once per session object). <in>, <out> and <client_ip> belong
 * to the session and outlive <r>. */
void gw_req_init(struct gw_req *r, const struct gw_sess_ops *ops, void *sess, struct buf *in,
                 struct buf *out, const char *client_ip);
void gw_req_deinit(struct gw_req *r);
/* Hands back the thread blocks the request borrowed (session idle or closing). */
void gw_req_release(struct gw_req *r);
/* Clears the per-request facts before the next request (state IDLE). */
void gw_req_reset(struct gw_req *r);
/* A request starts (a parsed head, or a refusal the session answers itself): state ACTIVE. */
void gw_req_begin(struct gw_req *r);
/* Takes the client's X-Request-Id <h> when usable, else generates one. */
void gw_req_make_rid(struct gw_req *r, const struct h1_header *h);
/* The head is parsed into r->req (its slices stay valid until the request copied what it
 * needs, which it does before reading anything more from the client): routes, admits, runs the
 * filters and forwards upstream, or answers. */
void gw_req_start(struct gw_req *r);
/* A filter that answered FILTER_WAIT resumes the request: the filters after it, then upstream. */
void gw_req_continue(struct gw_req *r);
/* The session's writer: queued output, then <iov> / <p>. 0, or -1 when the client is gone. */
int gw_req_sendv(struct gw_req *r, const struct iovec *iov, int n);
int gw_req_send(struct gw_req *r, const char *p, size_t n);
/* Starts head <h> with status <status>, no fields, no body. */
void gw_head_init(struct gw_head *h, int status);
/* Frees what a head holds beyond itself (fields past GW_HEAD_LOCAL). */
void gw_head_deinit(struct gw_head *h);
/* Adds a field (borrowed slices). */
void gw_head_add(struct gw_head *h, const char *name, size_t name_len, const char *value,
                 size_t value_len);
void gw_head_add_str(struct gw_head *h, const char *name, const char *value);
/* Adds a field whose value is copied into the head's own store (<value_len> must fit what is
 * left of GW_HEAD_STORE; a value that does not is dropped: only short values are formatted). */
void gw_head_add_copy(struct gw_head *h, const char *name, size_t name_len, const char *value,
                      size_t value_len);
void gw_head_add_u64(struct gw_head *h, const char *name, size_t name_len, uint64_t value);
/* Adds the fields of <lines> ("Name: value\r\n" each, as the filters' constant lines are
 * written), borrowed. */
void gw_head_add_lines(struct gw_head *h, const char *lines);
/* Appends <h> to <b> as an HTTP/1.1 head (status line, fields, blank line). Returns its bytes. */
size_t gw_head_write_h1(const struct gw_head *h, struct buf *b);
/* Hands head <h> to the session (gw_sess_ops.head): r->status and r->head_sent follow. */
void gw_req_head(struct gw_req *r, const struct gw_head *h);
/* Takes back the head just queued (gw_sess_ops.unhead). True when it was taken back. */
bool gw_req_unhead(struct gw_req *r);
/* Before writing a local answer: an unread body or a draining thread close the session after. */
void gw_req_local_answer(struct gw_req *r);
/* A complete local response (error pages, shed), JSON body; ends the request. After a part of
 * the response went out, only a close can tell the client: it ends the request with it. */
void gw_req_respond_error(struct gw_req *r, int status, const char *code, const char *msg,
                          const char *extra_headers);
/* Ends the request, once: records it, ends its filters, releases its admission, hands the
 * session on (gw_sess_ops.done). The response is written to *r->out or sent. */
void gw_req_end(struct gw_req *r);
/* The session goes away with the request unfinished (no record); no-op on an ended request but
 * for stopping the exchange's timers. */
void gw_req_abort(struct gw_req *r);
/* Session -> request: body bytes arrived in *r->in / the client output drained. */
void gw_req_on_body(struct gw_req *r);
void gw_req_on_drained(struct gw_req *r);
/* Whether the request still has body bytes to read from the client. */
static inline bool gw_req_body_pending(const struct gw_req *r)
{
    return r->state == GW_REQ_ACTIVE && !r->px.req_body_read;
}

#endif
