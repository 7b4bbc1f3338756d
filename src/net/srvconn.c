/* The server-side connection core (srvconn.h): the socket I/O, head reading, timer and close
 * rules that the gateway's session, the admin listener and the mock share. Mechanism only: what
 * to answer, and when a request ends, is the user's. */
#include "net/srvconn.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/log.h"

void srvconn_init(struct srvconn *s, loop_timer_cb *on_timer, void *arg)
{
    memset(s, 0, sizeof(*s));
    s->tp.fd = -1;
    buf_init(&s->in);
    buf_init(&s->out);
    loop_timer_init(&s->timer, on_timer, arg);
}

void srvconn_deinit(struct srvconn *s)
{
    buf_deinit(&s->in);
    buf_deinit(&s->out);
}

void srvconn_open(struct srvconn *s, int fd)
{
    if (fd != -1)
        transport_init_tcp(&s->tp, fd);
    s->timer_kind = SRVCONN_T_NONE;
    s->readable = false;
    s->writable = true;
    s->read_eof = false;
    s->peer_hup = false;
    s->closing = false;
    s->sent_continue = false;
    s->handshaking = false;
}

void srvconn_close(struct srvconn *s, struct loop *loop)
{
    loop_timer_stop(loop, &s->timer);
    s->timer_kind = SRVCONN_T_NONE;
    if (s->tp.fd != -1)
        loop_del_fd(loop, s->tp.fd);
    transport_close(&s->tp); // TLS: frees the session state (no close_notify wait)
}

int srvconn_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd != -1)
            return fd;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            static struct log_limit lim; // every accept fails alike until a descriptor frees
            ag_log_limited(AG_LOG_WARN, &lim, "accept: %s", strerror(errno));
        }
        return -1; /* EAGAIN: all accepted */
    }
}

void srvconn_on_events(struct srvconn *s, unsigned events)
{
    if (events & (LOOP_READ | LOOP_ERROR))
        s->readable = true;
    if (events & LOOP_HUP)
        s->peer_hup = true;
    if (events & (LOOP_WRITE | LOOP_ERROR))
        s->writable = true;
}

void srvconn_arm(struct srvconn *s, struct loop *loop, enum srvconn_timer kind, uint64_t ms)
{
    s->timer_kind = (uint8_t)kind;
    if (kind == SRVCONN_T_NONE || ms == 0)
        loop_timer_stop(loop, &s->timer);
    else
        loop_timer_start(loop, &s->timer, ms);
}

ssize_t srvconn_read_once(struct srvconn *s, struct buf *in, size_t reserve)
{
    buf_reserve(in, reserve);
    ssize_t n = transport_read(&s->tp, buf_tail(in), buf_room(in));
    if (n > 0) {
        size_t asked = buf_room(in);
        buf_commit(in, (size_t)n);
        if (!s->peer_hup && transport_drained(&s->tp, (size_t)n, asked))
            s->readable = false;
        return n;
    }
    if (n == 0) {
        s->read_eof = true;
        s->readable = false;
        return 0;
    }
    if (n == IO_AGAIN) {
        s->readable = false;
        return 0;
    }
    return IO_ERR;
}

int srvconn_read(struct srvconn *s, size_t reserve, size_t limit)
{
    while (s->readable && !s->read_eof && buf_pending(&s->in) < limit)
        if (srvconn_read_once(s, &s->in, reserve) == IO_ERR)
            return IO_ERR;
    return IO_OK;
}

int srvconn_head(struct srvconn *s, struct loop *loop, struct h1_request *req,
                 struct h1_header *hdrs, size_t max_hdrs, const struct h1_limits *lim,
                 uint64_t header_ms)
{
    size_t pend = buf_pending(&s->in);
    if (pend == 0) {
        memset(req, 0, sizeof(*req));
        return s->read_eof ? SRVCONN_HEAD_EOF : SRVCONN_HEAD_MORE;
    }
    int r = h1_parse_request(buf_head(&s->in), pend, req, hdrs, max_hdrs, lim);
    if (r > 0) {
        if (s->timer_kind == SRVCONN_T_HEADER)
            srvconn_arm(s, loop, SRVCONN_T_NONE, 0); // this head made it; the next gets its own
        return r;
    }
    if (r == -1)
        return SRVCONN_HEAD_BAD;
    if (s->read_eof)
        return SRVCONN_HEAD_EOF; // half a head, then EOF: it cannot complete
    if (header_ms > 0 && s->timer_kind != SRVCONN_T_HEADER)
        srvconn_arm(s, loop, SRVCONN_T_HEADER, header_ms);
    return SRVCONN_HEAD_MORE;
}

ssize_t srvconn_sendv(struct srvconn *s, const struct iovec *iov, int n)
{
    if (!s->writable) {
        for (int i = 0; i < n; i++)
            buf_append(&s->out, iov[i].iov_base, iov[i].iov_len);
        return 0;
    }
    enum { SRVCONN_IOV_MAX = 4 };
    struct iovec v[SRVCONN_IOV_MAX];
    int nv = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len == 0)
            continue;
        AG_ASSERT(nv < SRVCONN_IOV_MAX); // callers send a head, a body piece, a framing tail
        v[nv++] = iov[i];
    }
    int first = 0;  // first slice of <v> not written whole
    size_t off = 0; // bytes of v[first] written
    ssize_t total = 0;
    for (;;) {
        struct iovec w_iov[SRVCONN_IOV_MAX + 1];
        int k = 0;
        size_t pend = buf_pending(&s->out);
        if (pend) {
            w_iov[k].iov_base = buf_head(&s->out);
            w_iov[k++].iov_len = pend;
        }
        for (int i = first; i < nv; i++) {
            w_iov[k].iov_base = (char *)v[i].iov_base + (i == first ? off : 0);
            w_iov[k++].iov_len = v[i].iov_len - (i == first ? off : 0);
        }
        if (k == 0)
            break;
        ssize_t w = transport_writev(&s->tp, w_iov, k);
        if (w < 0) {
            if (w == IO_AGAIN) {
                s->writable = false;
                break;
            }
            return IO_ERR;
        }
        total += w;
        size_t wz = (size_t)w;
        if (pend) {
            size_t take = wz < pend ? wz : pend;
            buf_consume(&s->out, take);
            wz -= take;
        }
        while (wz > 0 && first < nv) {
            size_t left = v[first].iov_len - off;
            if (wz >= left) {
                wz -= left;
                first++;
                off = 0;
            } else {
                off += wz;
                wz = 0;
            }
        }
    }
    for (int i = first; i < nv; i++) // the socket is full: keep a copy
        buf_append(&s->out, (char *)v[i].iov_base + (i == first ? off : 0),
                   v[i].iov_len - (i == first ? off : 0));
    return total;
}

int srvconn_drop_input(struct srvconn *s)
{
    char scratch[4096];
    for (;;) {
        ssize_t n = transport_read(&s->tp, scratch, sizeof(scratch));
        if (n > 0)
            continue;
        if (n == IO_AGAIN) {
            s->readable = false;
            return IO_AGAIN;
        }
        s->read_eof = n == 0;
        return n == 0 ? 0 : IO_ERR;
    }
}

int srvconn_linger(struct srvconn *s, struct loop *loop, uint64_t ms)
{
    transport_shutdown(&s->tp); // TLS: close_notify first
    s->closing = true;
    srvconn_arm(s, loop, SRVCONN_T_LINGER, ms);
    return srvconn_drop_input(s);
}

int srvconn_drain(struct srvconn *s, struct loop *loop, uint64_t linger_ms)
{
    if (srvconn_flush(s) == IO_ERR)
        return IO_ERR;
    if (buf_pending(&s->out) > 0)
        return IO_AGAIN;
    if (!s->closing)
        return IO_OK;
    if (s->timer_kind != SRVCONN_T_LINGER)
        return srvconn_linger(s, loop, linger_ms) == IO_AGAIN ? IO_AGAIN : IO_ERR;
    return srvconn_drop_input(s) == IO_AGAIN ? IO_AGAIN : IO_ERR;
}

int srvconn_answered(struct srvconn *s, struct loop *loop, bool keep_alive, uint64_t idle_ms,
                     uint64_t linger_ms)
{
    if (!keep_alive)
        s->closing = true;
    int rc = srvconn_drain(s, loop, linger_ms);
    if (rc == IO_ERR)
        return IO_ERR;
    if (rc == IO_OK)
        srvconn_arm(s, loop, SRVCONN_T_IDLE, idle_ms);
    else if (s->timer_kind != SRVCONN_T_LINGER && s->timer_kind != SRVCONN_T_SEND)
        srvconn_arm(s, loop, SRVCONN_T_SEND, idle_ms); // a client that reads nothing goes too
    return IO_OK;
}
