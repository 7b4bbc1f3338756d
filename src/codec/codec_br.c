/* brotli through libbrotli: the only file that includes <brotli/encode.h> and <brotli/decode.h>.
 * The encoder's window is 2^18 (256 KB) to bound memory per stream; the decoder's window is the
 * stream's (at most 16 MB by the format). */
#include <brotli/decode.h>
#include <brotli/encode.h>
#include <stdlib.h>

#include "codec/codec.h"
#include "codec/internal.h"
#include "core/buf.h"
#include "core/xmalloc.h"

struct codec__br {
    BrotliEncoderState *enc;
    BrotliDecoderState *dec;
};

static void *codec__br_create(int level, bool decode)
{
    struct codec__br *b = xcalloc(1, sizeof(*b));
    if (decode) {
        b->dec = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    } else {
        b->enc = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (b->enc != NULL) {
            if (level <= 0)
                level = 4;
            if (level > 11)
                level = 11;
            BrotliEncoderSetParameter(b->enc, BROTLI_PARAM_QUALITY, (uint32_t)level);
            BrotliEncoderSetParameter(b->enc, BROTLI_PARAM_LGWIN, 18);
        }
    }
    if (b->enc == NULL && b->dec == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

static int codec__br_step(void *impl, const unsigned char *p, size_t n, bool last, struct buf *out,
                          uint64_t room, bool *done)
{
    struct codec__br *b = impl;
    if (n == 0 && !last)
        return CODEC_OK;
    const uint8_t *in = p;
    size_t avail_in = n;
    for (;;) {
        buf_reserve(out, CODEC__OUT_STEP);
        uint8_t *o = (uint8_t *)buf_tail(out);
        size_t avail_out = CODEC__OUT_STEP;
        if (b->enc != NULL) {
            BrotliEncoderOperation op = last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
            if (!BrotliEncoderCompressStream(b->enc, op, &avail_in, &in, &avail_out, &o, NULL))
                return CODEC_ERR;
            buf_commit(out, CODEC__OUT_STEP - avail_out);
            if (avail_in > 0 || BrotliEncoderHasMoreOutput(b->enc))
                continue;
            if (last && !BrotliEncoderIsFinished(b->enc))
                continue;
            return CODEC_OK;
        }
        BrotliDecoderResult rc =
            BrotliDecoderDecompressStream(b->dec, &avail_in, &in, &avail_out, &o, NULL);
        size_t made = CODEC__OUT_STEP - avail_out;
        if (made > room)
            return CODEC_TOO_BIG;
        room -= made;
        buf_commit(out, made);
        switch (rc) {
        case BROTLI_DECODER_RESULT_SUCCESS:
            *done = true;
            return avail_in > 0 ? CODEC_ERR : CODEC_OK;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
            continue;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
            return CODEC_OK;
        default:
            return CODEC_ERR;
        }
    }
}

static void codec__br_destroy(void *impl)
{
    struct codec__br *b = impl;
    if (b->enc != NULL)
        BrotliEncoderDestroyInstance(b->enc);
    if (b->dec != NULL)
        BrotliDecoderDestroyInstance(b->dec);
    free(b);
}

const struct codec__ops codec__br_ops = {codec__br_create, codec__br_step, codec__br_destroy,
                                         false};
