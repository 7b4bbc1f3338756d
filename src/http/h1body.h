/* The body framing of one HTTP/1.1 message, read incrementally: Content-Length, chunked (through
 * chunked.h) or until the peer closes, with the no-body rules of a response (HEAD, 1xx, 204, 304:
 * RFC 9112 §6.3), and the final response head before it (h1body_response_head). Every client of
 * an upstream reads its answers with these (the proxy, the cache's background refresh, load,
 * net/httpc). It copies nothing: each step reports where the body bytes
 * are inside the input, so a caller can forward the raw bytes or keep the decoded ones. */
#ifndef AG_HTTP_H1BODY_H
#define AG_HTTP_H1BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/chunked.h"
#include "http/h1parse.h"

enum h1body_state {
    H1BODY_MORE = 0, /* the body goes on: feed more bytes (or report the close) */
    H1BODY_DONE,     /* the body is complete; bytes after it belong to the next message */
    H1BODY_ERROR,    /* invalid chunked framing, or the peer closed before the end */
};

struct h1body {
    enum h1body_state state;
    enum h1_body framing;
    uint64_t received;   /* body bytes yielded so far (decoded: chunk framing excluded) */
    uint64_t _remaining; /* H1_BODY_LENGTH: bytes still due */
    struct h1_chunked _chunked;
};

/* Starts a body of <framing> (<content_length> for H1_BODY_LENGTH). A body of no bytes (NONE, or
 * a length of 0) is H1BODY_DONE at once. */
void h1body_init(struct h1body *b, enum h1_body framing, uint64_t content_length);

/* Starts the body of the parsed response <res> to a request that was HEAD if <head_request>:
 * none after HEAD or a 1xx, 204 or 304 status whatever the headers say, else the head's framing.
 * (An interim 1xx is the caller's to skip: the real response follows.) */
void h1body_init_response(struct h1body *b, const struct h1_response *res, bool head_request);

/* Consumes framing and at most one run of body bytes from <in>[0, <len>). Returns the bytes
 * consumed (0 when more input is needed, or once the body is DONE), or -1 when the framing is
 * invalid (state ERROR, and every later call returns -1). *<data>, *<data_len>: the body bytes
 * inside the consumed ones (length 0 if none). Bytes after the end of the body are never
 * consumed. Call again with the rest until it returns 0 or the state leaves H1BODY_MORE. */
long h1body_step(struct h1body *b, const char *in, size_t len, const char **data,
                 size_t *data_len);

/* The head half of every client-side exchange: parses the final response head at <in>[0, <len>)
 * to a request that was HEAD if <head_request>. Interim 1xx heads before it (100 Continue, 103
 * Early Hints) are skipped: *<interim> gets the bytes they take, which the caller consumes whatever
 * the result. A 101 is returned as final (a client that did not ask to switch protocols refuses
 * it). Returns the final head's length counted from <in> + *<interim>, -2 when incomplete or -1
 * when invalid (res->err), as h1_parse_response. */
int h1body_response_head(const char *in, size_t len, struct h1_response *res,
                         struct h1_header *hdrs, size_t max_hdrs, const struct h1_limits *lim,
                         bool head_request, size_t *interim);

/* Whether a chunked body is in its trailer section (the last chunk was read): the caller may
 * treat those bytes apart (the proxy filters the fields that must not be trailers). */
static inline bool h1body_in_trailers(const struct h1body *b)
{
    return b->framing == H1_BODY_CHUNKED && b->_chunked.trailers;
}

/* The peer closed its side: a body that lasts until the close ends here (DONE); one still
 * expecting bytes was cut short (ERROR). Returns the new state; a DONE body stays DONE. */
enum h1body_state h1body_eof(struct h1body *b);

#endif
