/* Strict, zero-copy HTTP/1.1 request and response head parser. Header names and values are
 * slices of the caller's buffer (nothing is copied or allocated). Stateless between calls, like
 * picohttpparser: call again with the whole head-so-far when more bytes arrive (the cost is a
 * re-scan of at most the head, which limits bound). Rejects everything that could smuggle a second
 * request or desynchronise a proxy from its peers. Body framing is decided here; body bytes are
 * handled by chunked.h or by counting Content-Length. */
#ifndef AG_HTTP_H1PARSE_H
#define AG_HTTP_H1PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h1_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading/trailing whitespace removed */
    size_t value_len;
};

/* A header field as offsets into a head kept elsewhere (a stored response's bytes): a quarter of
 * the size of struct h1_header, and valid wherever the bytes move. */
struct h1_field_ref {
    uint32_t name_off, name_len, value_off, value_len;
    uint32_t lname_off; // the name in lower case, in a blob of the owner's (HTTP/2 wants it)
};

/* Why a head was rejected. h1_err_status() maps each to the status to answer with. */
enum h1_err {
    H1_OK = 0,
    H1_ERR_METHOD,          /* 400 bad method token */
    H1_ERR_TARGET,          /* 400 bad request-target (empty, control chars, not origin/absolute/
                               authority/asterisk form) */
    H1_ERR_VERSION,         /* 505 not HTTP/1.0 or HTTP/1.1 (400 when malformed) */
    H1_ERR_LINE,            /* 400 malformed start line or header line (bare CR, missing colon) */
    H1_ERR_HEADER_NAME,     /* 400 invalid character in a header name, or space before colon */
    H1_ERR_HEADER_VALUE,    /* 400 invalid character (NUL, CTL) in a header value */
    H1_ERR_OBS_FOLD,        /* 400 obsolete line folding */
    H1_ERR_CONTENT_LENGTH,  /* 400 invalid Content-Length, or several differing values */
    H1_ERR_TE_AND_CL,       /* 400 Transfer-Encoding together with Content-Length */
    H1_ERR_TE_UNSUPPORTED,  /* 501 Transfer-Encoding other than a final "chunked" */
    H1_ERR_TE_HTTP10,       /* 400 Transfer-Encoding in an HTTP/1.0 message */
    H1_ERR_HOST,            /* 400 missing (HTTP/1.1) or repeated Host, or invalid Host value */
    H1_ERR_URI_TOO_LONG,    /* 414 request line over the limit */
    H1_ERR_HEAD_TOO_LARGE,  /* 431 head over the size limit */
    H1_ERR_TOO_MANY_HEADERS,/* 431 more header lines than the limit */
    H1_ERR_STATUS,          /* response: malformed status line (502 for a proxy) */
    H1_ERR_TE_BAD,          /* 400 Transfer-Encoding with "chunked" not final or repeated, or an
                               empty list element */
    H1_ERR_CONN_FIELD,      /* 400 HTTP/2: a connection-specific field (Connection, Keep-Alive,
                               Proxy-Connection, Transfer-Encoding, Upgrade, TE but "trailers"),
                               RFC 9113 §8.2.2 */
    H1_ERR_PSEUDO,          /* 400 HTTP/2: a pseudo-header missing, repeated, unknown or after a
                               regular field (RFC 9113 §8.3) */
};

/* Status code to answer with for <err> (400, 414, 431, 501, 505). */
int h1_err_status(enum h1_err err);
/* A short static description for logs and error bodies
 * ("Transfer-Encoding with Content-Length"). */
const char *h1_err_text(enum h1_err err);

/* Size limits; zero fields take the defaults (8 KiB line, 32 KiB head, 100 headers). */
struct h1_limits {
    size_t max_request_line; /* request line bytes, CRLF excluded -> 414 */
    size_t max_head;         /* whole head including the final CRLF -> 431 */
    size_t max_headers;      /* header lines -> 431; also bounded by the caller's array */
};

enum h1_body {
    H1_BODY_NONE = 0,    /* no body (no framing headers on a request; 1xx/204/304/HEAD responses) */
    H1_BODY_LENGTH,      /* Content-Length bytes follow */
    H1_BODY_CHUNKED,     /* chunked transfer coding: decode with chunked.h */
    H1_BODY_UNTIL_CLOSE, /* response only: body ends when the server closes */
};

enum h1_method {
    H1_M_OTHER = 0, H1_M_GET, H1_M_HEAD, H1_M_POST, H1_M_PUT, H1_M_DELETE, H1_M_PATCH,
    H1_M_OPTIONS, H1_M_CONNECT, H1_M_TRACE,
};

struct h1_request {
    const char *method;
    size_t method_len;
    enum h1_method method_id;
    const char *target; /* request-target as received */
    size_t target_len;
    const char *path;   /* path part of the target (origin form; for absolute form, after the
                           authority), without the query */
    size_t path_len;
    const char *query;  /* after '?', without it; NULL when there is no '?' */
    size_t query_len;
    int minor_version;  /* 0 or 1 */
    struct h1_header *headers; /* the caller's array */
    size_t nheaders;
    const char *host;   /* Host header value (or authority of an absolute target); NULL if none */
    size_t host_len;
    enum h1_body body;
    uint64_t content_length; /* valid when body == H1_BODY_LENGTH */
    bool keep_alive;         /* from version and Connection */
    bool expect_continue;    /* Expect: 100-continue */
    bool upgrade;            /* Connection: upgrade with an Upgrade header */
    const char *protocol;    /* HTTP/2 extended CONNECT (RFC 8441): the :protocol value, with
                                method CONNECT and target :path; NULL otherwise (HTTP/1.1 never) */
    size_t protocol_len;
    bool https;              /* not parsed: set by the session after the parse when the request
                                came over TLS (X-Forwarded-Proto, the cache key's scheme) */
    enum h1_err err;         /* set when the parser returns -1 */
};

struct h1_response {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    struct h1_header *headers;
    size_t nheaders;
    enum h1_body body;
    uint64_t content_length;
    bool keep_alive;
    enum h1_err err;
};

/* Parses a request head from <buf>[0, <len>). <headers> has room for <max_headers> entries.
 * Returns the head's length in bytes (> 0) when complete, -2 when more bytes are needed, -1 when
 * invalid (req->err says why; answer h1_err_status() and close). An over-limit head returns -1
 * even when incomplete, so a client cannot make us buffer without bound. */
int h1_parse_request(const char *buf, size_t len, struct h1_request *req,
                     struct h1_header *headers, size_t max_headers, const struct h1_limits *lim);

/* Cheap pre-check for callers that re-parse as bytes arrive: false when the bytes received since
 * the last call, [<prev_len>, <len>), cannot have completed a head (no LF ending an empty line in
 * them). Skipping the parse then turns a one-byte-per-read client from O(head^2) work into
 * O(head). Callers must still parse when false if <len> reached the head limit, so an over-limit
 * head fails at once. Pass <prev_len> 0 for a fresh buffer. */
bool h1_head_maybe_complete(const char *buf, size_t len, size_t prev_len);

/* Parses a response head. <head_request>: the request was HEAD (so no body whatever the headers
 * say). Returns like h1_parse_request(). 1xx responses are returned as such; the caller skips
 * them (except 101) and parses again. */
int h1_parse_response(const char *buf, size_t len, struct h1_response *res,
                      struct h1_header *headers, size_t max_headers,
                      const struct h1_limits *lim, bool head_request);

#endif
