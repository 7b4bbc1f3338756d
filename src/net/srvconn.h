/* The server side of one client connection, the part every server of the tree shares (the
 * gateway's HTTP/1.1 session, the admin listener, the mock): non-blocking socket I/O over a
 * transport with edge-triggered readiness memory, request heads read within limits, the one
 * connection timer (header counted from a head's first byte, idle, body, send, linger), the output
 * queue with its high mark (backpressure), keep-alive or close after an answer, and the lingering
 * close. Knows HTTP/1.1 heads (http/h1parse), never what a request means: routes, answers,
 * upstreams and bodies are the users'. Embedded by value in each user's connection struct. */
#ifndef AG_NET_SRVCONN_H
#define AG_NET_SRVCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "core/loop.h"
#include "http/h1parse.h"
#include "net/transport.h"

/* What the connection's one timer means while armed (srvconn_arm). */
enum srvconn_timer {
    SRVCONN_T_NONE = 0,
    SRVCONN_T_HEADER, // a request head is due: counted from its first byte, never re-armed per read
    SRVCONN_T_IDLE,   // keep-alive: waiting for the next request
    SRVCONN_T_BODY,   // a request body is due (the user's)
    SRVCONN_T_SEND,   // the longest pause between two writes that made progress
    SRVCONN_T_LINGER, // half-closed after the last answer: the client's EOF is due
};

/* Results of srvconn_head besides a head's length. */
#define SRVCONN_HEAD_MORE 0    // incomplete: wait for more bytes (the header timer runs)
#define SRVCONN_HEAD_BAD (-1)  // invalid or over a limit: <req>->err says which (4xx)
#define SRVCONN_HEAD_EOF (-3)  // the client closed before a whole head: nothing to answer

struct srvconn {
    struct transport tp; // the client's byte stream (tp.fd: the socket)
    struct buf in;       // client bytes: heads (and the users' bodies)
    struct buf out;      // bytes for the client not taken by the socket yet
    struct loop_timer timer;
    uint8_t timer_kind;  // enum srvconn_timer
    bool readable;       // edge-triggered memory: bytes may wait in the socket
    bool writable;       // the last write did not meet EAGAIN
    bool read_eof;       // the client closed its side (everything before it is in <in>)
    bool peer_hup;       // LOOP_HUP seen: read on to the EOF, a short read says nothing then
    bool closing;        // no keep-alive: the last answer goes out, then the lingering close
    bool sent_continue;  // "100 Continue" went out for the request under way
    bool handshaking;    // a TLS handshake is under way (no head is read before it ends)
};

/* Prepares <s> for a life of many connections: buffers empty, the timer calling <on_timer> with
 * <arg>. */
void srvconn_init(struct srvconn *s, loop_timer_cb *on_timer, void *arg);
/* Frees the buffers (the transport is closed by srvconn_close). */
void srvconn_deinit(struct srvconn *s);
/* Starts a connection on the accepted non-blocking <fd> as plain TCP (a TLS user sets s->tp
 * itself, then calls it with fd -1): not readable until an event says so, writable. */
void srvconn_open(struct srvconn *s, int fd);
/* Stops the timer, takes the fd off <loop> and closes the transport. The buffers stay (the user
 * frees or recycles its struct after the event batch). */
void srvconn_close(struct srvconn *s, struct loop *loop);

/* Accepts one connection from the listening <lfd> (non-blocking, close-on-exec): its fd, or -1
 * when there is none left to accept (EAGAIN; a descriptor shortage is logged, rate-limited). */
int srvconn_accept(int lfd);

/* Records what an fd event says (readable, writable, the peer's hang-up). */
void srvconn_on_events(struct srvconn *s, unsigned events);

/* Arms the timer as <kind> for <ms> (SRVCONN_T_NONE or 0 ms: stops it). */
void srvconn_arm(struct srvconn *s, struct loop *loop, enum srvconn_timer kind, uint64_t ms);

/* One read into <in> (at least <reserve> bytes of room). Returns the bytes read (>0), 0 when the
 * socket is drained or at its EOF (s->readable / s->read_eof say which), or IO_ERR. A short read
 * on plain TCP drains the socket as surely as an EAGAIN (the next bytes bring a new edge), unless
 * the client hung up: its FIN may have come with these bytes and brings no edge of its own. */
ssize_t srvconn_read_once(struct srvconn *s, struct buf *in, size_t reserve);
/* Reads into s->in until the socket is drained, at its EOF, or s->in holds <limit> bytes (the rest
 * stays in the socket: s->readable stays true). Returns IO_OK or IO_ERR. */
int srvconn_read(struct srvconn *s, size_t reserve, size_t limit);

/* Parses the request head at the start of s->in. Returns its length (>0; the slices of <req>
 * point into s->in until it is consumed), SRVCONN_HEAD_MORE (the header timer is armed for
 * <header_ms> from now unless it already runs: a head trickled a byte at a time must still
 * complete in time; <header_ms> 0: no header timeout, the timer is left alone), SRVCONN_HEAD_BAD
 * (over <lim>, NULL: the parser's defaults, or invalid: req->err) or SRVCONN_HEAD_EOF. */
int srvconn_head(struct srvconn *s, struct loop *loop, struct h1_request *req,
                 struct h1_header *hdrs, size_t max_hdrs, const struct h1_limits *lim,
                 uint64_t header_ms);

/* The one writer: what waits in s->out, then <iov> (zero-copy: the part the socket does not take
 * is copied into s->out). Returns the bytes written to the socket (0 when it was full: s->writable
 * is then false and LOOP_WRITE resumes) or IO_ERR when the client is gone. */
ssize_t srvconn_sendv(struct srvconn *s, const struct iovec *iov, int n);
/* Writes what s->out holds. Same returns as srvconn_sendv. */
static inline ssize_t srvconn_flush(struct srvconn *s) { return srvconn_sendv(s, NULL, 0); }
/* Backpressure: whether s->out holds <high> bytes or more (stop producing, stop parsing). */
static inline bool srvconn_out_full(const struct srvconn *s, size_t high)
{
    return buf_pending(&s->out) >= high;
}

/* Reads and drops what the client sends until the socket is drained. Returns IO_AGAIN (wait for
 * more), 0 at the client's EOF or IO_ERR (either way: close now). */
int srvconn_drop_input(struct srvconn *s);
/* The lingering close, once the last answer is out: half-closes (TLS: close_notify), arms
 * SRVCONN_T_LINGER for <ms> and drops what the client still sends, so the kernel does not answer
 * unread bytes with a RST that would destroy the answer in the client's buffers. Returns IO_AGAIN
 * while lingering, or 0/IO_ERR when the client is already done (close now). */
int srvconn_linger(struct srvconn *s, struct loop *loop, uint64_t ms);

/* After an answer was queued in s->out: flushes it, and then keep-alive (arms SRVCONN_T_IDLE for
 * <idle_ms> once the output is out, SRVCONN_T_SEND for as long while it waits for the socket) or,
 * with <keep_alive> false, the lingering close for <linger_ms> once it is out. Returns IO_OK to go on, IO_ERR when the connection must be closed
 * now (the client is gone, or done after a close). */
int srvconn_answered(struct srvconn *s, struct loop *loop, bool keep_alive, uint64_t idle_ms,
                     uint64_t linger_ms);
/* LOOP_WRITE or a drain: flushes s->out; a closing connection whose output is out lingers.
 * Returns IO_OK, IO_AGAIN (output still pending) or IO_ERR (close now). */
int srvconn_drain(struct srvconn *s, struct loop *loop, uint64_t linger_ms);

#endif
