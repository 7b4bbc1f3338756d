/* A request head built field by field, for a protocol that delivers the head already split
 * (HTTP/2: pseudo-header fields and fields decoded by HPACK), into the same struct h1_request
 * that h1_parse_request() fills: the request layer reads one head type whatever the wire, and
 * nothing is serialised as HTTP/1.1 to be parsed again. Every check of the h1 parser that still
 * means something applies (field name and value bytes, Content-Length syntax and duplicates,
 * Host / :authority syntax and agreement, the target's bytes and form, head size and field count
 * limits), plus HTTP/2's own (RFC 9113 §8.2-8.3: lower-case names, no leading or trailing
 * whitespace in values, no connection-specific fields, pseudo-header fields once each and before
 * the others). Not a parser: the caller's framing (HPACK, END_STREAM) decides where a head ends. */
#ifndef AG_HTTP_REQHEAD_H
#define AG_HTTP_REQHEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "http/h1parse.h"

struct arena;
struct reqhead;

/* Starts a head whose copies (names, values, the joined Cookie) live in <a> until it is reset.
 * Fields go to <hdrs> (room for <max_hdrs>); <lim>: max_request_line bounds :path (414),
 * max_head the names and values together (431), max_headers the field count (431); zero fields
 * take h1parse's defaults. Returns NULL when <a> is full. */
struct reqhead *reqhead_begin(struct arena *a, struct h1_header *hdrs, size_t max_hdrs,
                              const struct h1_limits *lim);
/* One field as decoded: a pseudo-header field when <name> starts with ':'. Returns 0, or -1 once
 * the head is refused (the first error is kept, later calls return -1 and copy nothing). */
int reqhead_field(struct reqhead *h, const char *name, size_t nlen, const char *value,
                  size_t vlen);
/* The checks every regular HTTP/2 field gets before it may become an HTTP/1.1 line (a head's,
 * or a trailer section's): a lower-case token name, a value of field-value bytes (no NUL, CR,
 * LF, other CTLs or DEL) without leading or trailing whitespace. H1_OK, or the error. */
enum h1_err reqhead_field_check(const char *name, size_t nlen, const char *value, size_t vlen);
/* Completes the head into <req> (its slices point into the arena). <body_follows>: the request
 * has content to come (no END_STREAM on the head): with Content-Length it is H1_BODY_LENGTH,
 * without it H1_BODY_CHUNKED (the caller frames it so). Returns 0, or -1 with req->err set
 * (h1_err_status() gives the answer). */
int reqhead_finish(struct reqhead *h, struct h1_request *req, bool body_follows);
/* The error that refused the head so far (H1_OK when none). */
enum h1_err reqhead_err(const struct reqhead *h);

#endif
