/* Incremental decoder for the chunked transfer coding (RFC 9112 §7.1), trailers included. It does
 * not modify its input: it reports where the data is, so a proxy can forward the raw bytes and a
 * cache can keep the decoded body from the same pass. */
#ifndef AG_HTTP_CHUNKED_H
#define AG_HTTP_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h1_chunked {
    uint64_t max_size;    /* the body limit: a chunk size that would take the data past it is
                             invalid at once (its digits, not its data); 0 = only the absolute
                             ceiling of 2^53 bytes. Set after h1_chunked_init. */
    int _state;
    uint64_t _remaining;  /* data bytes left in the current chunk */
    size_t _line_len;     /* bytes of the current size/extension/trailer line, for the limit */
    size_t _trailer_len;  /* total trailer bytes, for the limit */
    uint64_t _total;      /* data bytes consumed so far, for max_size */
    bool done;            /* the last chunk and the trailers have been consumed */
    bool too_large;       /* the -1 was for a size over max_size (a 413, not a 400) */
    bool trailers;        /* the last chunk was read: what follows, up to done, is the trailer
                             section (the step returns right after the last-chunk line) */
};

void h1_chunked_init(struct h1_chunked *c);

/* Consumes framing and at most one run of data from <in>[0, <len>).
 * Returns the number of bytes consumed (0 when more input is needed, or when done), or -1 on
 * invalid framing (bad hex, a size over max_size or the ceiling, bad CRLF, over-long line or
 * trailers).
 * *<data> and *<data_len> give the chunk data found inside the consumed bytes (len 0 if none).
 * Call again with the rest until it returns 0 or sets c->done. Bytes after the end are not
 * consumed (a pipelined next message). */
long h1_chunked_step(struct h1_chunked *c, const char *in, size_t len, const char **data,
                     size_t *data_len);

/* Removes from a complete, validated trailer section <p>[0, <len>) (the field lines and the final
 * CRLF that follow the last-chunk line) the fields that must not be trailers: framing
 * (Content-Length, Transfer-Encoding), Host, authentication, caching and content fields,
 * hop-by-hop ones (RFC 9110 §6.5.1). In place; returns the new length. */
size_t h1_chunked_filter_trailers(char *p, size_t len);

/* Convenience for whole bodies in tests and tools: decodes <in> entirely, appending the data to
 * <out> (caller's buffer of <out_cap> bytes); returns bytes consumed, -2 if incomplete, -1 if
 * invalid or if <out> is too small. */
long h1_chunked_decode_all(const char *in, size_t len, char *out, size_t out_cap, size_t *out_len);

#endif
