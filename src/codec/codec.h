/* Content codings of HTTP bodies (RFC 9110 8.4): gzip (zlib), br (libbrotli) and zstd (libzstd)
 * as streaming encoders and decoders, and Accept-Encoding negotiation. Each library is used from
 * one file (codec_gzip.c, codec_br.c, codec_zstd.c); their types stay out of this header.
 *
 * A codec takes input a piece at a time and appends its output to a caller's buf; each step
 * flushes, so what went in can be sent at once (streaming). Memory per stream is bounded by the
 * level and the window each file sets (no whole-body buffering). A decoder stops with
 * CODEC_TOO_BIG once its output passes <max_out> bytes (a decompression bomb). */
#ifndef AG_CODEC_CODEC_H
#define AG_CODEC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

enum codec_enc {
    CODEC_IDENTITY = 0,
    CODEC_GZIP,
    CODEC_BR,
    CODEC_ZSTD,
    CODEC_N,
};

#define CODEC_OK 0
#define CODEC_ERR (-1)     /* invalid input (decoder), or a library failure */
#define CODEC_TOO_BIG (-2) /* the decoder's output passed its bound */

struct codec;

/* "identity", "gzip", "br", "zstd". */
const char *codec_name(enum codec_enc e);
/* The coding named <s> (<n> bytes, case-insensitive); -1 when unknown. "x-gzip" is gzip. */
int codec_from_name(const char *s, size_t n);

/* An encoder at <level> (0: the coding's default; clamped to its range), or NULL for identity. */
struct codec *codec_encoder_create(enum codec_enc e, int level);
/* A decoder whose output may not pass <max_out> bytes (0: no bound), or NULL for identity. */
struct codec *codec_decoder_create(enum codec_enc e, uint64_t max_out);
/* Feeds <n> bytes of <p>; <last>: the input ends here (the encoder finishes its frame, the
 * decoder checks that the stream ended). The output is appended to <out>. CODEC_OK, CODEC_ERR or
 * CODEC_TOO_BIG. */
int codec_step(struct codec *c, const void *p, size_t n, bool last, struct buf *out);
/* Bytes in and out so far. */
uint64_t codec_bytes_in(const struct codec *c);
uint64_t codec_bytes_out(const struct codec *c);
void codec_destroy(struct codec *c);

/* Accept-Encoding negotiation (RFC 9110 12.5.3). <ae> is the header's value (<present> false:
 * no such header). <offer> lists the codings the server may use, in its order of preference.
 * Returns the coding to use: the offered one with the highest q above 0 (a tie goes to the
 * earlier in <offer>); an offered coding not named takes the q of '*', else it is not
 * acceptable. CODEC_IDENTITY when none is (also when the client refuses identity: the body then
 * goes as it is, which RFC 9110 allows instead of a 406). */
enum codec_enc codec_negotiate(const char *ae, size_t len, bool present,
                               const enum codec_enc *offer, size_t noffer);

#endif
