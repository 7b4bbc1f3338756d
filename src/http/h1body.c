/* Body framing of one HTTP/1.1 message (see h1body.h): counting for Content-Length, chunked.h for
 * the chunked coding, everything until the close otherwise. */
#include "http/h1body.h"

void h1body_init(struct h1body *b, enum h1_body framing, uint64_t content_length)
{
    b->framing = framing;
    b->received = 0;
    b->_remaining = framing == H1_BODY_LENGTH ? content_length : 0;
    h1_chunked_init(&b->_chunked);
    bool empty = framing == H1_BODY_NONE || (framing == H1_BODY_LENGTH && content_length == 0);
    b->state = empty ? H1BODY_DONE : H1BODY_MORE;
}

void h1body_init_response(struct h1body *b, const struct h1_response *res, bool head_request)
{
    /* h1_parse_response applies the same rules; they are applied here again so that a caller
     * that built or adjusted <res> itself cannot wait for a body that never comes. */
    if (head_request || res->status < 200 || res->status == 204 || res->status == 304)
        h1body_init(b, H1_BODY_NONE, 0);
    else
        h1body_init(b, res->body, res->content_length);
}

int h1body_response_head(const char *in, size_t len, struct h1_response *res,
                         struct h1_header *hdrs, size_t max_hdrs, const struct h1_limits *lim,
                         bool head_request, size_t *interim)
{
    size_t off = 0;
    for (;;) {
        int n = h1_parse_response(in + off, len - off, res, hdrs, max_hdrs, lim, head_request);
        if (n > 0 && res->status >= 100 && res->status < 200 && res->status != 101) {
            off += (size_t)n; /* interim: the real answer follows */
            continue;
        }
        *interim = off;
        return n;
    }
}

long h1body_step(struct h1body *b, const char *in, size_t len, const char **data,
                 size_t *data_len)
{
    *data = NULL;
    *data_len = 0;
    if (b->state == H1BODY_ERROR)
        return -1;
    if (b->state == H1BODY_DONE || len == 0)
        return 0;
    switch (b->framing) {
    case H1_BODY_LENGTH: {
        size_t take = b->_remaining < len ? (size_t)b->_remaining : len;
        b->_remaining -= take;
        b->received += take;
        *data = in;
        *data_len = take;
        if (b->_remaining == 0)
            b->state = H1BODY_DONE;
        return (long)take;
    }
    case H1_BODY_CHUNKED: {
        long n = h1_chunked_step(&b->_chunked, in, len, data, data_len);
        if (n < 0) {
            b->state = H1BODY_ERROR;
            *data = NULL;
            *data_len = 0;
            return -1;
        }
        b->received += *data_len;
        if (b->_chunked.done)
            b->state = H1BODY_DONE;
        return n;
    }
    case H1_BODY_UNTIL_CLOSE:
        b->received += len;
        *data = in;
        *data_len = len;
        return (long)len;
    case H1_BODY_NONE:
        break;
    }
    b->state = H1BODY_DONE; // H1_BODY_NONE (not reached: init made it DONE)
    return 0;
}

enum h1body_state h1body_eof(struct h1body *b)
{
    if (b->state == H1BODY_MORE)
        b->state = b->framing == H1_BODY_UNTIL_CLOSE ? H1BODY_DONE : H1BODY_ERROR;
    return b->state;
}
