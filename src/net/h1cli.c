/* The client side of one HTTP/1.1 exchange (see h1cli.h): the writes of the request head, the
 * reads of the answer, and http/h1body between the bytes and the events. */
#include "net/h1cli.h"

#include "core/loop.h"
#include "net/transport.h"

#define H1CLI_READ_CHUNK (16u * 1024u)

const char h1cli_err_closed[] = "closed";
const char h1cli_err_io[] = "io";
const char h1cli_err_head[] = "head";
const char h1cli_err_body[] = "body";
const char h1cli_err_early[] = "early";
const char h1cli_err_interim[] = "interim";

void h1cli_begin(struct h1cli *x, struct transport *tp, const struct buf *head, struct buf *in)
{
    x->tp = tp;
    x->head = head;
    x->in = in;
    /* Nothing can be readable before our request is sent: a lent connection that went readable
     * while idle (EOF) was seen by its pool. */
    x->readable = false;
    x->hup = false;
    x->writable = true;
    x->head_sent = 0;
    x->got_bytes = false;
    x->received = 0;
    x->head_done = false;
    x->_tried = 0;
    x->_interim = 0;
    x->err = NULL;
}

void h1cli_on_events(struct h1cli *x, unsigned events)
{
    if (events & (LOOP_READ | LOOP_ERROR))
        x->readable = true;
    if (events & LOOP_HUP)
        x->hup = true;
    if (events & (LOOP_WRITE | LOOP_ERROR))
        x->writable = true;
}

ssize_t h1cli_write(struct h1cli *x, const struct iovec *body, int n)
{
    struct iovec iov[8];
    int k = 0;
    size_t hrest = buf_pending(x->head) - x->head_sent;
    if (hrest) {
        iov[k].iov_base = buf_head(x->head) + x->head_sent;
        iov[k++].iov_len = hrest;
    }
    for (int i = 0; i < n && k < (int)(sizeof(iov) / sizeof(iov[0])); i++)
        if (body[i].iov_len)
            iov[k++] = body[i];
    if (k == 0)
        return 0;
    ssize_t w = transport_writev(x->tp, iov, k);
    if (w == IO_AGAIN) {
        x->writable = false;
        return IO_AGAIN;
    }
    if (w < 0)
        return IO_ERR;
    size_t wz = (size_t)w;
    size_t take = wz < hrest ? wz : hrest;
    x->head_sent += take;
    return (ssize_t)(wz - take);
}

static enum h1cli_ev h1cli__fail(struct h1cli *x, const char *why)
{
    x->err = why;
    return H1CLI_ERROR;
}

/* Parses the final head from *x->in: 1 with the head consumed and the body's framing set, 0 when
 * more bytes are needed, -1 after a failure. Interim 1xx heads are consumed whatever comes next. */
static int h1cli__head(struct h1cli *x)
{
    size_t interim = 0;
    int n = h1body_response_head(buf_head(x->in), buf_pending(x->in), &x->res, x->hdrs,
                                 x->max_hdrs, &x->lim, x->head_request, &interim);
    buf_consume(x->in, interim); // 100 Continue, 103 Early Hints: never passed on
    x->_interim += interim;
    if (x->_interim > (x->max_interim ? x->max_interim : H1CLI_MAX_INTERIM)) {
        h1cli__fail(x, h1cli_err_interim);
        return -1;
    }
    if (n == -1) {
        h1cli__fail(x, h1cli_err_head);
        return -1;
    }
    if (n == -2) { // (a head still incomplete at lim.max_head bytes is -1)
        x->_tried = buf_pending(x->in);
        return 0;
    }
    /* the parser applied HEAD's and the statuses' no-body rules; a 101's bytes after the head
     * are not HTTP: its body is none, they stay in *x->in for the caller */
    h1body_init_response(&x->body, &x->res, x->head_request);
    buf_consume(x->in, (size_t)n); // the slices stay where they are until the next read
    x->head_done = true;
    return 1;
}

enum h1cli_ev h1cli_next(struct h1cli *x, struct h1cli_piece *p)
{
    for (;;) {
        if (x->err != NULL)
            return H1CLI_ERROR;
        size_t pend = buf_pending(x->in);
        if (x->head_done) {
            if (x->body.state == H1BODY_DONE)
                return H1CLI_DONE;
            if (pend > 0) {
                const char *raw = buf_head(x->in);
                p->trailers = h1body_in_trailers(&x->body);
                long n = h1body_step(&x->body, raw, pend, &p->data, &p->len);
                if (n < 0)
                    return h1cli__fail(x, h1cli_err_body);
                if (n > 0) {
                    p->raw = raw;
                    p->raw_len = (size_t)n;
                    buf_consume(x->in, (size_t)n);
                    return H1CLI_BODY;
                }
                if (x->body.state == H1BODY_DONE)
                    return H1CLI_DONE;
                /* a chunk line or the trailers still incomplete: read on */
            }
        } else if (pend > x->_tried) { // new bytes since the last incomplete parse
            int r = h1cli__head(x);
            if (r < 0)
                return H1CLI_ERROR;
            if (r > 0)
                return H1CLI_HEAD;
        }
        if (!x->readable)
            return H1CLI_AGAIN;
        size_t chunk = x->read_chunk ? x->read_chunk : H1CLI_READ_CHUNK;
        buf_reserve(x->in, chunk);
        size_t room = buf_room(x->in);
        ssize_t n = transport_read(x->tp, buf_tail(x->in), room);
        if (n == IO_AGAIN) {
            x->readable = false;
            return H1CLI_AGAIN;
        }
        if (n < 0)
            return h1cli__fail(x, h1cli_err_io);
        if (n == 0) {
            /* the close ends a body that lasts until it, and cuts any other short */
            if (x->head_done && h1body_eof(&x->body) == H1BODY_DONE)
                return H1CLI_DONE;
            return h1cli__fail(x, h1cli_err_closed);
        }
        buf_commit(x->in, (size_t)n);
        x->got_bytes = true;
        x->received += (size_t)n;
        if (x->early_stray && !h1cli_head_sent(x))
            return h1cli__fail(x, h1cli_err_early);
        /* A drained socket (a short plaintext read; with TLS only what the transport can tell,
         * as a read returns one record) brings a new edge with its next bytes, so skip the read
         * that would only say EAGAIN. Not once the peer closed (LOOP_HUP): its FIN may have
         * come with these bytes, and a FIN already seen brings no new edge. */
        if (!x->hup && transport_drained(x->tp, (size_t)n, room))
            x->readable = false;
    }
}
