/* The HTTP/1.1 client session of the gateway (conn.c): the socket, its buffers and timeouts, the
 * HTTP/1.1 codec, and the one request it carries at a time (pipelined requests wait in the
 * buffer). The request layer (req.h) sees it only through its gw_sess_ops. Private to the
 * worker's request path (worker.c owns the accept). */
#ifndef AG_GATEWAY_CONN_H
#define AG_GATEWAY_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/loop.h"
#include "gateway/req.h"
#include "net/srvconn.h"
#include "net/transport.h"

struct gwthread;
struct tls_server;

#define CONN_MAGIC 0x636f6e6eu   /* "conn" */

enum conn_state {
    CONN_HEAD = 0,  // waiting for / reading a request head (idle keep-alive included)
    CONN_BUSY,      // a request is being answered
    CONN_CLOSING,   // flushing the last bytes, then close
    CONN_CLOSED,    // closed, waiting for the deferred free
};

struct conn {
    /* small fields first, together: the struct is what an idle keep-alive connection costs */
    unsigned magic;
    enum conn_state state;
    uint32_t in_parked;         // >0: <in> is a right-sized copy of a partial head (its size)
    uint32_t max_hdrs;          // server.max_headers
    struct gwthread *th;
    struct conn *next, *prev;   // thread's active list, or free list (next only)
    char client_ip[GW_CLIENT_IP_LEN];
    struct h1_header *hdrs;     // cfg max_headers entries, lent per request (NULL when idle)
    /* the socket (sc.tp: plain TCP or TLS), sc.in (request heads and bodies), sc.out (bytes for
     * the client not taken yet), the edge-triggered readiness memory and the one timer (header,
     * idle, body, send, linger): the servers' connection core, net/srvconn */
    struct srvconn sc;
    uint64_t requests;          // requests served on this connection
    uint64_t accept_ms;         // loop time of the accept
    struct gw_req *rq;          // the request being served (one at a time), from the thread's
                                // free list while the connection is busy; NULL when idle
};

/* Takes over an accepted socket (non-blocking). <tls>: the listener's TLS context, or NULL for
 * plain HTTP; the handshake then runs step by step on the loop within the header timeout. */
void conn_accept(struct gwthread *th, int fd, const char *ip, struct tls_server *tls);
/* Closes <c> (deferred free). Safe from inside its own callbacks. */
void conn_close(struct conn *c);
/* Frees every conn object of the thread's free list. */
void conn_free_all(struct gwthread *th);
/* Closes idle keep-alive connections (drain). */
void conn_close_idle(struct gwthread *th);
/* worker tick: frees the thread's spare conn structs and blocks above what its open connections
 * need, and asks malloc to give freed memory back to the system once enough was freed (after a
 * burst of connections, such as a slowloris attack, the RSS comes back). */
void conn_trim(struct gwthread *th);

#endif
