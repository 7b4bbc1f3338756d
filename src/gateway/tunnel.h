/* The byte tunnel of an HTTP/1.1 Upgrade (tunnel.c): after the upstream answered 101 Switching
 * Protocols (WebSocket or any protocol), the client and upstream sockets are joined and bytes
 * flow both ways, untouched, until both sides ended, a timeout or a drain. Owns both transports
 * after the hand-over; knows neither HTTP nor the session that carried the request. */
#ifndef AG_GATEWAY_TUNNEL_H
#define AG_GATEWAY_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>

struct gw_req;
struct gwthread;
struct transport;

struct tunnel;

/* Why tunnels end: the `reason` label of apigate_tunnels_closed_total, in this order. */
enum tunnel_end {
    TUNNEL_END_CLOSED = 0, // both sides ended their stream (or one closed and the other followed)
    TUNNEL_END_IDLE,       // tunnel.idle_timeout without a byte either way
    TUNNEL_END_MAX,        // tunnel.max_duration
    TUNNEL_END_ERROR,      // a reset or I/O error on either side
    TUNNEL_END_DRAIN,      // the worker stopped (reload, SIGTERM) after workers.drain_timeout
    TUNNEL_END_COUNT,
};
extern const char *const tunnel_end_names[TUNNEL_END_COUNT];

/* The upstream answered 101 to request <r>: a tunnel that owns the upstream byte stream <up>
 * (taken over: moved out of *<up>, its fd registered with no loop) and copies what the access
 * log line at the end needs from <r> (route, target, ids, timings). Not running yet: the
 * session hands it the client side with tunnel_start, or it is destroyed. */
struct tunnel *tunnel_create(struct gw_req *r, struct transport *up);
/* Starts <t> with the client's byte stream <client> (moved in, fd registered with no loop),
 * <to_up>: bytes the client sent after the Upgrade request (tunnel bytes, never a next request),
 * <to_client>: the 101 head and whatever the upstream sent after it. <t> is then on the thread's
 * list and counted as one of its connections until it ends. */
void tunnel_start(struct tunnel *t, struct transport *client, const char *to_up, size_t n_to_up,
                  const char *to_client, size_t n_to_client);
/* The client side of a tunnel carried by an HTTP/2 stream (RFC 8441 extended CONNECT) instead of
 * a socket of its own: the session moves the client's bytes in (tunnel_stream_data, _eof) and
 * out (tunnel_stream_read, pulled into DATA frames as the client's windows allow), so the
 * stream's flow control is the backpressure a socket's would be. Called back with <arg>: */
struct tunnel_stream_ops {
    /* bytes for the client wait (or the upstream's end): the stream's DATA may go on */
    void (*wake)(void *arg);
    /* <n> bytes the client sent went to the upstream: its stream window may open by as many */
    void (*consumed)(void *arg, size_t n);
    /* the tunnel ended on its own (<why>: the upstream closed or failed, a timeout, the drain);
     * for anything but TUNNEL_END_CLOSED the stream is reset (RST_STREAM CANCEL). The tunnel
     * is gone after this call. */
    void (*ended)(void *arg, enum tunnel_end why);
};
/* Starts <t> with an HTTP/2 stream as its client side (<ops>, <arg>), <to_up>: DATA the client
 * sent before the 200 (not yet given back to its window: reported through ops->consumed once
 * written), <to_client>: whatever the upstream sent after its 101. Counted in the tunnel
 * metrics, but not as a connection (its session is one). <t> may have ended when this returns. */
void tunnel_start_stream(struct tunnel *t, const struct tunnel_stream_ops *ops, void *arg,
                         const char *to_up, size_t n_to_up, const char *to_client,
                         size_t n_to_client);
/* DATA from the client of a stream tunnel: held until the upstream takes it (bounded by the
 * stream's window, which only ops->consumed opens again). May end <t>. */
void tunnel_stream_data(struct tunnel *t, const char *p, size_t n);
/* The client's END_STREAM: passed on as a half-close once its bytes are out. May end <t>. */
void tunnel_stream_eof(struct tunnel *t);
/* Up to <len> bytes for the client into <dst>; *<eof> once the upstream ended and everything it
 * sent was read (the stream's END_STREAM). May end <t> (both directions done). */
size_t tunnel_stream_read(struct tunnel *t, char *dst, size_t len, bool *eof);
/* The stream ended under the tunnel (reset by the client, the session closed): the upstream
 * connection is closed, <why> counted; no callback. */
void tunnel_stream_reset(struct tunnel *t, enum tunnel_end why);
/* A tunnel that never started (the client went away first): closes the upstream side. */
void tunnel_destroy(struct tunnel *t);
/* Ends every tunnel of <th> (the drain deadline, thread stop). */
void tunnel_close_all(struct gwthread *th);

#endif
