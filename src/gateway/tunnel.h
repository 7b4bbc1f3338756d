/* The byte tunnel of an HTTP/1.1 Upgrade (tunnel.c): after the upstream answered 101 Switching
 * Protocols (WebSocket or any protocol), the client and upstream sockets are joined and bytes
 * flow both ways, untouched, until both sides ended, a timeout or a drain. Owns both transports
 * after the hand-over; knows neither HTTP nor the session that carried the request. */
#ifndef AG_GATEWAY_TUNNEL_H
#define AG_GATEWAY_TUNNEL_H

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
/* A tunnel that never started (the client went away first): closes the upstream side. */
void tunnel_destroy(struct tunnel *t);
/* Ends every tunnel of <th> (the drain deadline, thread stop). */
void tunnel_close_all(struct gwthread *th);

#endif
