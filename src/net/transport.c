/* Plain TCP transport: read(2)/writev(2) on a non-blocking socket, errno mapped to IO_AGAIN or to a
 * static reason. The TLS variant lives in tls.c. */
#include "net/transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

const char transport_err_reset[] = "reset";
const char transport_err_io[] = "io";
const char transport_err_tls[] = "tls";
const char transport_err_tls_verify[] = "tls_verify";

static ssize_t tcp_fail(struct transport *t)
{
    t->err_errno = errno;
    t->err = (errno == ECONNRESET || errno == EPIPE) ? transport_err_reset : transport_err_io;
    return IO_ERR;
}

static ssize_t tcp_read(struct transport *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(t->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return IO_AGAIN;
        return tcp_fail(t);
    }
}

static ssize_t tcp_writev(struct transport *t, const struct iovec *iov, int iovcnt)
{
    /* sendmsg with MSG_NOSIGNAL: a peer that reset the connection must not raise SIGPIPE. */
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t n = sendmsg(t->fd, &msg, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return IO_AGAIN;
        return tcp_fail(t);
    }
}

static int tcp_handshake(struct transport *t)
{
    (void)t;
    return IO_OK;
}

static void tcp_shutdown(struct transport *t)
{
    if (t->fd >= 0)
        shutdown(t->fd, SHUT_WR);
}

static void tcp_close(struct transport *t)
{
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
}

static bool tcp_drained(const struct transport *t, size_t got, size_t asked)
{
    (void)t;
    return got < asked;
}

const struct transport_ops transport_tcp_ops = {
    .read = tcp_read,
    .writev = tcp_writev,
    .handshake = tcp_handshake,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .drained = tcp_drained,
};

void transport_init_tcp(struct transport *t, int fd)
{
    t->ops = &transport_tcp_ops;
    t->fd = fd;
    t->err = NULL;
    t->err_errno = 0;
    t->_tls = NULL;
}

void transport_close(struct transport *t)
{
    if (t->ops != NULL && t->fd >= 0)
        t->ops->close(t);
    t->fd = -1;
}
