/* libFuzzer target for the content-coding decoders (src/codec), which take an origin's encoded
 * body for a client that does not take its coding (gateway/compress.c): bytes from anywhere. The
 * first byte picks the coding (low 2 bits: gzip, br, zstd; 0 takes gzip) and the piece size (the
 * next 2 bits: whole, 1, 7, 4096 bytes per step); the rest is the encoded body. Beyond crashes and
 * over-reads it checks what the gateway relies on: the output never passes the bound by more than
 * one output step, the outcome and the bytes do not depend on how the input is split, and the
 * encoder's output of the same bytes decodes back to them.
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1]. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "core/buf.h"

#define FZ_BOUND (256u * 1024)
#define FZ_STEP 16384 /* codec/internal.h CODEC__OUT_STEP */

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Decodes <in> in pieces of <piece> bytes; the outcome (CODEC_OK, CODEC_ERR, CODEC_TOO_BIG). */
static int decode(enum codec_enc e, const uint8_t *in, size_t len, size_t piece, struct buf *out)
{
    struct codec *d = codec_decoder_create(e, FZ_BOUND);
    check(d != NULL);
    int rc = CODEC_OK;
    size_t off = 0;
    do {
        size_t k = len - off < piece ? len - off : piece;
        bool last = off + k == len;
        rc = codec_step(d, in + off, k, last, out);
        off += k;
        check(buf_pending(out) <= FZ_BOUND + FZ_STEP);
    } while (rc == CODEC_OK && off < len);
    codec_destroy(d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const enum codec_enc codings[4] = {CODEC_GZIP, CODEC_GZIP, CODEC_BR, CODEC_ZSTD};
    static const size_t pieces[4] = {0, 1, 7, 4096};
    enum codec_enc e = codings[data[0] & 3];
    size_t piece = pieces[(data[0] >> 2) & 3];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    struct buf whole, split;
    buf_init(&whole);
    buf_init(&split);
    int rw = decode(e, in, len, len ? len : 1, &whole);
    if (piece != 0) {
        int rs = decode(e, in, len, piece, &split);
        if (rw == CODEC_OK) {
            check(rs == CODEC_OK);
            check(buf_pending(&split) == buf_pending(&whole));
            check(memcmp(buf_head(&split), buf_head(&whole), buf_pending(&whole)) == 0);
        }
    }
    /* the same bytes encoded then decoded come back */
    struct buf enc, back;
    buf_init(&enc);
    buf_init(&back);
    struct codec *c = codec_encoder_create(e, 1);
    check(c != NULL);
    check(codec_step(c, in, len, true, &enc) == CODEC_OK);
    codec_destroy(c);
    if (len <= FZ_BOUND) {
        check(decode(e, (const uint8_t *)buf_head(&enc), buf_pending(&enc), 4096, &back) ==
              CODEC_OK);
        check(buf_pending(&back) == len && (len == 0 || memcmp(buf_head(&back), in, len) == 0));
    }
    buf_deinit(&enc);
    buf_deinit(&back);
    buf_deinit(&whole);
    buf_deinit(&split);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
