/* The client side of one HTTP/1.1 exchange on a transport: the request head out (with the body
 * bytes the caller hands over behind it), then the answer read, its final head past interim 1xx
 * (h1body_response_head) and its body framed by http/h1body, handed back one event at a time
 * (the pull style of Python's h11, `next_event`). Every client of an upstream in the gateway runs
 * its exchange through it: the proxy (request bodies, filters and the client's backpressure stay
 * around it, in proxy.c) and the cache's background refresh (cachebg.c). It owns no socket, no
 * timer and no memory: the transport, the request head and the input buffer are the caller's,
 * and so are the deadlines and what a failure means. */
#ifndef AG_NET_H1CLI_H
#define AG_NET_H1CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "http/h1body.h"
#include "http/h1parse.h"

struct transport;

enum h1cli_ev {
    H1CLI_AGAIN = 0, /* nothing more until the transport is ready again (h1cli_on_events) */
    H1CLI_HEAD,      /* x->res is the final head; its slices point into *x->in, valid until the
                        next call or the caller's next write into *x->in */
    H1CLI_BODY,      /* a piece of the body: struct h1cli_piece (the same validity) */
    H1CLI_DONE,      /* the response is complete; bytes after it stay in *x->in */
    H1CLI_ERROR,     /* x->err says why; every later call returns H1CLI_ERROR again */
};

/* Why an exchange failed (x->err): static strings compared by pointer. */
extern const char h1cli_err_closed[];    /* "closed": EOF before the response was complete */
extern const char h1cli_err_io[];        /* "io": the transport failed (x->tp->err says how) */
extern const char h1cli_err_head[];      /* "head": an invalid response head, or none within
                                            lim.max_head bytes (x->res.err says which) */
extern const char h1cli_err_body[];      /* "body": invalid chunked framing */
extern const char h1cli_err_early[];     /* "early": bytes before the whole request head was
                                            sent, where that makes them stray (early_stray) */
extern const char h1cli_err_interim[];   /* "interim": more than max_interim bytes of 1xx
                                            heads before the final one */

/* Bytes of interim (1xx) heads a response may carry before its final head, by default. RFC 9110
 * sets no number, but a server sending them without end would keep its reader busy for ever;
 * a finite run of them, however long, is passed over (e2e/96 sends 500 KB of 100 Continue). */
#define H1CLI_MAX_INTERIM (1024u * 1024u)

/* One piece of the body, as consumed from *x->in. */
struct h1cli_piece {
    const char *raw;  /* the bytes consumed, framing included: a chunked body passed on as is */
    size_t raw_len;
    const char *data; /* the body bytes among them, decoded (len 0: framing only) */
    size_t len;
    bool trailers;    /* raw is (part of) the trailer section of a chunked body */
};

struct h1cli {
    /* the caller's, set by h1cli_begin */
    struct transport *tp;
    const struct buf *head;   /* the whole request head, sent first */
    struct buf *in;           /* response bytes; h1cli reserves read_chunk before each read */
    /* the caller's, set after h1cli_begin (zero: defaults) */
    size_t read_chunk;        /* room per read (16 KB when 0) */
    struct h1_header *hdrs;   /* max_hdrs entries for the response head */
    size_t max_hdrs;
    struct h1_limits lim;     /* the response head's (h1_parse_response) */
    bool head_request;        /* the request was HEAD: no body whatever the head says */
    size_t max_interim;       /* bytes of 1xx heads before h1cli_err_interim (0: the default
                                 H1CLI_MAX_INTERIM) */
    bool early_stray;         /* a reused connection: bytes before our head went whole are an
                                 earlier exchange's (h1cli_err_early) */
    /* edge-triggered readiness memory (h1cli_on_events), read by the caller too */
    bool readable, writable, hup;
    /* progress */
    size_t head_sent;         /* bytes of *head written */
    bool got_bytes;           /* any response byte arrived */
    size_t received;          /* response bytes read from the transport (1xx, head, body) */
    bool head_done;           /* res holds the final head, body its framing */
    size_t _tried;            /* bytes pending at the last incomplete head parse */
    size_t _interim;          /* bytes of 1xx heads consumed so far */
    const char *err;          /* h1cli_err_*, NULL while none */
    struct h1_response res;
    struct h1body body;
};

/* Starts an exchange on <tp> (a connection just lent, nothing readable yet: its request not
 * sent): <head> is the request head, <in> the buffer the response is read into (emptied by the
 * caller). Clears every progress and readiness field but the writable one (set). */
void h1cli_begin(struct h1cli *x, struct transport *tp, const struct buf *head, struct buf *in);

/* Records the loop's <events> (LOOP_READ, LOOP_WRITE, LOOP_ERROR, LOOP_HUP) for the next calls. */
void h1cli_on_events(struct h1cli *x, unsigned events);

/* Whether the whole request head was written. */
static inline bool h1cli_head_sent(const struct h1cli *x)
{
    return x->head_sent == buf_pending(x->head);
}

/* One write of what is left of the request head followed by the <n> pieces of <body> (request
 * body bytes, may be none). Returns how many bytes of <body> it took (0: only head bytes, or
 * nothing to write), IO_AGAIN (x->writable false) or IO_ERR (the transport's err set). */
ssize_t h1cli_write(struct h1cli *x, const struct iovec *body, int n);

/* The next event of the response: parses what *x->in holds, and reads from the transport only
 * when that is not enough and the transport is readable. A short read means the socket is
 * drained: x->readable turns false until the next LOOP_READ (not once LOOP_HUP came: the EOF is
 * there with no edge to come). <p> is filled for H1CLI_BODY. */
enum h1cli_ev h1cli_next(struct h1cli *x, struct h1cli_piece *p);

#endif
