/* Request filters: what the cache, the resilience layer (breaker, retry, adaptive limit, outlier
 * feedback) and the fallback answer do to a request, as ops called at named moments of the
 * exchange and answering with named verdicts (HAProxy's flt_ops, in small). A route's chain is
 * built once at worker start from the filters that apply to it; the request layer (req.c) and
 * the proxy (proxy.c) call the chain, never a filter by name.
 *
 * Order: a request goes through the chain forwards (first filter first), the response and the
 * errors come back through it backwards. The chain is fallback, cache, resil: a request is first
 * looked up in the cache, then admitted by the breaker; an upstream failure is first offered to
 * retry, then to the cache (stale-if-error), then to the fallback.
 *
 * Adding a filter (rate limiting, say) is one new file with a `const struct filter_ops` and one
 * line in filter.c's table. */
#ifndef AG_GATEWAY_FILTER_H
#define AG_GATEWAY_FILTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct gw_head;
struct gw_req;
struct gw_shared;
struct gwthread;
struct h1_response;

/* A response the cache holds, as a filter that derives variants sees it (stored variants,
 * below). */
struct filter_stored {
    const char *head; // status line and header lines, each CRLF-terminated, no blank line
    size_t head_len;
    const char *body;
    size_t body_len;
    int status;
    _Atomic uint32_t *memo; // the deriving filter's note about this response (0: none yet)
};

/* The representation of a stored response a request gets (filter_ops.variant). */
struct filter_variant {
    unsigned id;       // 0: the stored response as it is; else 1..31, a variant derive builds
    const char *name;  // the variant's name in the cache key (a short token: "gzip")
    const char *extra; // header lines ("Vary: Accept-Encoding\r\n") every answer of this
                       // stored response carries when it goes as it is, or NULL
    bool required;     // the stored response must not go to this client as it is (it cannot
                       // take its coding): derive it, or answer 502
};

enum filter_verdict {
    FILTER_CONTINUE = 0, // go on: the next filter, then the default behaviour
    FILTER_RESPOND,      // the filter answered the request (written, and ended or ending)
    FILTER_WAIT,         // the filter holds the request and resumes it later (gw_req_continue)
    FILTER_RETRY,        // drop this attempt, send the request again after r->retry_delay_ms
    FILTER_ABORT,        // on_request: refuse the request with the error it filled in
};

/* What failed, for on_error (and for an ABORT from on_request). */
enum gw_err_kind {
    GW_ERR_CONNECT = 0, // no connection to the upstream (refused, connect timeout, no server)
    GW_ERR_POOL,        // the pool queue was full or timed out
    GW_ERR_TIMEOUT,     // first byte or total deadline
    GW_ERR_PROTO,       // the upstream broke the exchange (reset, close, bad framing)
    GW_ERR_LOCAL,       // refused here (breaker open, ...): the upstream was not tried
};

struct gw_err {
    int status;                // status of the error page
    const char *code;          // "bad_gateway", ...: the JSON error code
    const char *msg;           // for people
    const char *extra_headers; // "Retry-After: 1\r\n" or NULL
    enum gw_err_kind kind;
    bool head_received;        // the upstream's response head had arrived
    bool got_bytes;            // some response byte had arrived
    bool untried;              // the gateway's own failure: the origin was not tried (no server
                               // with an address, the deadline spent queued for a connection)
};

/* A filter. Every op is optional (NULL). <st> is the filter's per-request state: state_size
 * bytes inside the request, zeroed when the request enters the chain. */
struct filter_ops {
    const char *name;
    size_t state_size;
    /* Worker start / stop (before the loop threads start / after they stopped). */
    void (*init)(struct gw_shared *sh);
    void (*deinit)(struct gw_shared *sh);
    /* On each loop thread once it runs / before its pools go. */
    void (*thread_start)(struct gwthread *th);
    void (*thread_stop)(struct gwthread *th);
    /* Whether the filter runs on route <route> (once per route at worker start). */
    bool (*attach)(struct gw_shared *sh, size_t route);
    /* The request was routed and admitted. CONTINUE, RESPOND, WAIT, or ABORT with <err>. */
    enum filter_verdict (*on_request)(struct gw_req *r, void *st, struct gw_err *err);
    /* The upstream request head is being written: true when the client's request header
     * <name> must not be forwarded. */
    bool (*upstream_header_skip)(struct gw_req *r, void *st, const char *name, size_t len);
    /* The upstream request head is being written: append header lines to <head>. */
    void (*upstream_headers)(struct gw_req *r, void *st, struct buf *head);
    /* The upstream's final response head arrived. CONTINUE, RETRY, or RESPOND (the filter
     * wrote the whole answer to the client; the upstream response is dropped). */
    enum filter_verdict (*on_response_head)(struct gw_req *r, void *st,
                                            const struct h1_response *res);
    /* The client response head is being written: true when the upstream's response header
     * <name> must not reach the client. */
    bool (*client_header_skip)(struct gw_req *r, void *st, const char *name, size_t len);
    /* The client response head is being built: add fields to <head> (gw_head_add*, req.h). */
    void (*client_headers)(struct gw_req *r, void *st, struct gw_head *head);
    /* Decoded response body bytes on their way to the client. */
    void (*on_body)(struct gw_req *r, void *st, const char *p, size_t n);
    /* Whether this filter re-encodes the response body it judged in on_response_head (asked
     * once, when the client head is written). A re-encoded body goes to the client chunked
     * (HTTP/1.1; until the close for 1.0), without Content-Length or trailers, through
     * <transform>. At most one filter of a chain re-encodes. */
    bool (*transforms)(struct gw_req *r, void *st);
    /* Re-encodes <n> body bytes (the same bytes on_body saw; <last>: the body ends, n may be 0),
     * appending the output to <out>. 0, or -1 when it cannot (the client is then closed: the
     * head is gone). */
    int (*transform)(struct gw_req *r, void *st, const char *p, size_t n, bool last,
                     struct buf *out);
    /* The upstream response was received completely. <usable> false: it cannot be trusted (the
     * upstream sent bytes past it, or answered before the request was sent): nothing of it may
     * be kept. */
    void (*on_response_done)(struct gw_req *r, void *st, bool usable);
    /* Stored variants: a filter that transforms bodies (compression) lets the cache keep its
     * output per variant, so that a hit serves the transformed bytes as stored and the work is
     * done once per stored response and variant, never per hit. <variant>: which representation
     * of stored response <s> request <r> gets (the cache asks at every hit of a route running
     * this filter; fill <v>, zeroed by the caller). <derive>: builds variant <v->id> of <s>,
     * appending its head (status line and header lines with their Content-Length, CRLF each, no
     * blank line) to <head> and its body to <body>: 0, or -1 when it cannot (the stored response
     * goes as it is, or a 502 when v->required). <prev>: that variant of an earlier copy of the
     * same body (a 304 from the origin refreshed the stored response's head since), whose body
     * may be taken as it is; NULL when there is none. */
    void (*variant)(struct gw_req *r, void *st, const struct filter_stored *s,
                    struct filter_variant *v);
    int (*derive)(struct gw_req *r, void *st, const struct filter_stored *s,
                  const struct filter_variant *v, const struct filter_stored *prev,
                  struct buf *head, struct buf *body);
    /* The whole body this request's response went to the client as, re-encoded by this
     * filter's transform, when the filter kept it: variant <id> of the response the cache is
     * storing (the bytes stay valid until the request ends). The cache stores them as that
     * variant, so the first hit does not derive it again. False: none kept. */
    bool (*transformed)(struct gw_req *r, void *st, unsigned *id, const char **body,
                        size_t *len);
    /* The exchange failed. RETRY, RESPOND, or CONTINUE (not mine). */
    enum filter_verdict (*on_error)(struct gw_req *r, void *st, const struct gw_err *err);
    /* The request is over (answered, or the client went away): release what it holds. Also
     * called for a request the filter never saw (its state is then zero). */
    void (*on_end)(struct gw_req *r, void *st);
    /* The X-Cache word of the request for logs and Server-Timing, or NULL. */
    const char *(*cache_status)(const struct gw_req *r, const void *st);
};

#define FILTER_MAX 6          /* filters on one route */
#define FILTER_STATE_MAX 56   /* bytes of per-request state of one route's filters together:
                                 cache 8 + resil 24 + ratelimit 8 + compress 16 (in every
                                 request object: keep it small) */

struct filter_slot {
    const struct filter_ops *ops;
    uint16_t off; // of its state in the request's filter state area
};

/* A route's filters, in request order. */
struct filter_chain {
    unsigned n;
    uint16_t state_size;
    struct filter_slot f[FILTER_MAX];
};

/* The built-in filters (cachehook.c, resil.c, ratelimit.c). */
extern const struct filter_ops cachehook_filter;
extern const struct filter_ops resil_filter;
extern const struct filter_ops fallback_filter;
extern const struct filter_ops ratelimit_filter; // ratelimit.c
extern const struct filter_ops compress_filter;

/* Worker start: runs every filter's init, then builds each route's chain (sh->rt[i].chain). */
void filter_init(struct gw_shared *sh);
void filter_deinit(struct gw_shared *sh);
void filter_thread_start(struct gwthread *th);
void filter_thread_stop(struct gwthread *th);

/* Runs on_request of the filters from position <from> on. Returns CONTINUE when the request
 * goes upstream, else RESPOND (answered: by a filter, or with the error page of an ABORT after
 * the earlier filters' on_error passed) or WAIT (a filter resumes it: gw_req_continue). */
enum filter_verdict filter_request(struct gw_req *r, unsigned from);
bool filter_upstream_header_skip(struct gw_req *r, const char *name, size_t len);
bool filter_client_header_skip(struct gw_req *r, const char *name, size_t len);
void filter_upstream_headers(struct gw_req *r, struct buf *head);
enum filter_verdict filter_response_head(struct gw_req *r, const struct h1_response *res);
void filter_client_headers(struct gw_req *r, struct gw_head *head);
void filter_body(struct gw_req *r, const char *p, size_t n);
/* The filter that re-encodes this response's body (its position + 1), or 0: none. */
unsigned filter_transformer(struct gw_req *r);
/* Through the re-encoding filter <which> (filter_transformer's answer). 0 or -1. */
int filter_transform(struct gw_req *r, unsigned which, const char *p, size_t n, bool last,
                     struct buf *out);
void filter_response_done(struct gw_req *r, bool usable);
/* The variant of stored response <s> that <r> gets, from the first filter with a variant op
 * (<v> zeroed first): its position + 1 (for filter_derive), or 0 when no filter derives. */
unsigned filter_variant(struct gw_req *r, const struct filter_stored *s, struct filter_variant *v);
bool filter_transformed(struct gw_req *r, unsigned which, unsigned *id, const char **body,
                        size_t *len);
int filter_derive(struct gw_req *r, unsigned which, const struct filter_stored *s,
                  const struct filter_variant *v, const struct filter_stored *prev,
                  struct buf *head, struct buf *body);
/* Offers a failure to the filters, backwards from position <below> - 1 (the chain's length for
 * all of them). RETRY, RESPOND, or CONTINUE: nobody took it, the caller answers. */
enum filter_verdict filter_error(struct gw_req *r, unsigned below, const struct gw_err *err);
void filter_end(struct gw_req *r);
const char *filter_cache_status(const struct gw_req *r);
/* The state of filter <ops> in <r>, or NULL when the route does not run it. */
void *filter_state(struct gw_req *r, const struct filter_ops *ops);

#endif
