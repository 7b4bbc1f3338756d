/* The decisions of the compression filter (compress.c) that need no request object, shared by
 * the streamed path (a response from the origin) and the stored one (a cache hit), so the two
 * agree: which responses the route encodes, which coding a response is in, which representation
 * a client gets, and the validator and head of a derived variant. Pure functions (test_compvar). */
#ifndef AG_GATEWAY_COMPVAR_H
#define AG_GATEWAY_COMPVAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct gw_compress;
struct h1_header;

/* What compvar_judge found, as one word (kept as a stored response's filter memo). */
#define COMPVAR_JUDGED 0x1u  /* always set: 0 means "not judged yet" */
#define COMPVAR_FITS 0x2u    /* an identity body the route encodes (type, size, status) */
#define COMPVAR_KEEP 0x4u    /* nothing may be done to it: no-transform, a partial answer */
#define COMPVAR_CODING(m) (((m) >> 4) & 0xfu) /* its Content-Encoding: enum codec_enc, or: */
#define COMPVAR_UNKNOWN 0xfu /* a coding the gateway cannot decode ("compress", "deflate") */

/* Judges a response: <status>, its header fields <hs>[<n>], and its body length when known
 * (<has_len>, <len>). Returns the memo word. */
uint32_t compvar_judge(const struct gw_compress *cfg, int status, const struct h1_header *hs,
                       size_t n, bool has_len, uint64_t len);
/* The same for a stored response: <head> is its status line and header lines (CRLF each). */
uint32_t compvar_judge_stored(const struct gw_compress *cfg, int status, const char *head,
                              size_t head_len, uint64_t body_len);

/* Whether media type <v> (a Content-Type value, parameters ignored) is one of the route's. */
bool compvar_type_ok(const struct gw_compress *cfg, const char *v, size_t n);

/* The representation a client gets of a response judged <memo>. */
#define COMPVAR_DECODED 8u /* the body decoded to identity (the client cannot take its coding) */
struct compvar_pick {
    unsigned id;   /* 0: as it is; CODEC_GZIP, CODEC_BR, CODEC_ZSTD: encoded; COMPVAR_DECODED */
    bool required; /* the response may not go as it is (COMPVAR_DECODED) */
    bool vary;     /* the answer depends on Accept-Encoding: Vary: Accept-Encoding */
};
/* <enc>: the coding negotiated for the client (enum codec_enc); <accept>: bit e set when the
 * client takes coding e; <plain>: the request wants the body as it is (HEAD, a Range, a
 * Cache-Control: no-transform request). */
struct compvar_pick compvar_pick(uint32_t memo, unsigned enc, unsigned accept, bool plain);
/* The key name of variant <id>: "gzip", "br", "zstd", "identity". */
const char *compvar_name(unsigned id);

/* The entity-tag of a variant: "x" or W/"x" becomes W/"x-<name>" (another representation, equal
 * to its origin's only weakly, and told apart from it and from the other codings' even by a weak
 * comparison). Appends to <out>; -1 (nothing appended) when <v> is not an entity-tag. */
int compvar_etag(const char *v, size_t n, const char *name, struct buf *out);
/* The head of variant <id> of a stored response: its status line and header lines without the
 * framing, coding, range and validator lines, then Content-Encoding (unless decoded), the ETag
 * (compvar_etag), Vary: Accept-Encoding and Content-Length: <body_len>. Appends to <out>. */
void compvar_head(const char *head, size_t head_len, unsigned id, uint64_t body_len,
                  struct buf *out);

#endif
