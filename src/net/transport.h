/* A byte stream to a peer behind a small ops table: plain TCP (transport.c) or TLS (tls.c), so the
 * data path reads and writes the same way on both (wrk src/net.h `struct sock`). Non-blocking
 * only: every call returns at once with bytes, IO_AGAIN or IO_ERR. Not a connection pool, not a
 * connect helper: the fd comes already connected (see net/sock.h, gateway/upool.h). */
#ifndef AG_NET_TRANSPORT_H
#define AG_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Results of a non-blocking step. Negative, so read/write can return a byte count instead. */
#define IO_OK 0
#define IO_ERR (-1)
#define IO_AGAIN (-2)

/* Reasons a transport failed: static strings compared by pointer (also metric label values). */
extern const char transport_err_reset[];       /* "reset": ECONNRESET / EPIPE */
extern const char transport_err_io[];          /* "io": any other errno */
extern const char transport_err_tls[];         /* "tls": protocol error, alert */
extern const char transport_err_tls_verify[];  /* "tls_verify": certificate not trusted or name
                                                  mismatch */

struct transport;

struct transport_ops {
    /* Reads up to <len> bytes: returns >0 bytes, 0 at end of stream, IO_AGAIN or IO_ERR. */
    ssize_t (*read)(struct transport *t, void *buf, size_t len);
    /* Writes from <iov>: returns bytes written (may be fewer than asked), IO_AGAIN or IO_ERR. */
    ssize_t (*writev)(struct transport *t, const struct iovec *iov, int iovcnt);
    /* Advances the handshake: IO_OK when done (always for TCP), IO_AGAIN or IO_ERR. */
    int (*handshake)(struct transport *t);
    /* Sends the end of our side (TCP: shutdown(SHUT_WR); TLS: close_notify, best effort). */
    void (*shutdown)(struct transport *t);
    /* Frees the protocol state and closes the fd. Does not touch the loop: loop_del_fd() first. */
    void (*close)(struct transport *t);
    /* After a read that returned <got> of the <asked> bytes: true when the next read could only
     * say IO_AGAIN until the fd is announced again (edge-triggered: a new arrival). TCP: a short
     * read. TLS returns one record per read, so its short reads say nothing: true only where the
     * transport saw its own read(2) come back short with nothing decrypted left over. */
    bool (*drained)(const struct transport *t, size_t got, size_t asked);
};

/* Embedded by value in connections. */
struct transport {
    const struct transport_ops *ops;
    int fd;
    const char *err;   /* why the last IO_ERR happened (transport_err_*), NULL before */
    int err_errno;     /* errno of the last IO_ERR when it came from a system call, else 0 */
    void *_tls;        /* SSL * for TLS transports, NULL for TCP */
};

/* The ops of plain TCP transports: `t->ops == &transport_tcp_ops` tells TCP from TLS. */
extern const struct transport_ops transport_tcp_ops;

/* Makes <t> a plain TCP transport over the connected non-blocking <fd> (taken over by <t>). */
void transport_init_tcp(struct transport *t, int fd);

/* The rules for callers, the same for both kinds:
 * - Edge-triggered: read until IO_AGAIN (TLS may hold decrypted bytes that epoll does not
 *   announce), write until done or IO_AGAIN.
 * - With TLS an IO_AGAIN from read may wait for writability and the other way round. Register the
 *   fd for LOOP_READ | LOOP_WRITE once and, on any event, retry whatever is pending. */
static inline ssize_t transport_read(struct transport *t, void *buf, size_t len)
{
    return t->ops->read(t, buf, len);
}
static inline ssize_t transport_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    return t->ops->writev(t, iov, iovcnt);
}
static inline ssize_t transport_write(struct transport *t, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return t->ops->writev(t, &iov, 1);
}
static inline int transport_handshake(struct transport *t) { return t->ops->handshake(t); }
static inline bool transport_drained(const struct transport *t, size_t got, size_t asked)
{
    return t->ops->drained(t, got, asked);
}
static inline void transport_shutdown(struct transport *t) { t->ops->shutdown(t); }
/* Closes and sets fd to -1; a closed transport may be closed again (no-op). */
void transport_close(struct transport *t);

#endif
