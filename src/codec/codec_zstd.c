/* zstd through libzstd: the only file that includes <zstd.h>. The encoder's window is 2^19
 * (512 KB) and the decoder refuses frames that need more than 2^23 (8 MB), to bound memory per
 * stream. */
#include <stdlib.h>
#include <zstd.h>

#include "codec/codec.h"
#include "codec/internal.h"
#include "core/buf.h"
#include "core/xmalloc.h"

struct codec__zs {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
};

static void *codec__zs_create(int level, bool decode)
{
    struct codec__zs *z = xcalloc(1, sizeof(*z));
    if (decode) {
        z->d = ZSTD_createDCtx();
        if (z->d != NULL)
            ZSTD_DCtx_setParameter(z->d, ZSTD_d_windowLogMax, 23);
    } else {
        z->c = ZSTD_createCCtx();
        if (z->c != NULL) {
            if (level <= 0)
                level = 3;
            if (level > 19)
                level = 19;
            ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, level);
            ZSTD_CCtx_setParameter(z->c, ZSTD_c_windowLog, 19);
        }
    }
    if (z->c == NULL && z->d == NULL) {
        free(z);
        return NULL;
    }
    return z;
}

static int codec__zs_step(void *impl, const unsigned char *p, size_t n, bool last, struct buf *out,
                          uint64_t room, bool *done)
{
    struct codec__zs *z = impl;
    if (n == 0 && !last)
        return CODEC_OK;
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        buf_reserve(out, CODEC__OUT_STEP);
        ZSTD_outBuffer o = {buf_tail(out), CODEC__OUT_STEP, 0};
        if (z->c != NULL) {
            size_t left = ZSTD_compressStream2(z->c, &o, &in, last ? ZSTD_e_end : ZSTD_e_flush);
            if (ZSTD_isError(left))
                return CODEC_ERR;
            buf_commit(out, o.pos);
            if (left > 0 || in.pos < in.size)
                continue;
            return CODEC_OK;
        }
        size_t pos0 = in.pos;
        size_t rc = ZSTD_decompressStream(z->d, &o, &in);
        if (ZSTD_isError(rc))
            return CODEC_ERR;
        if (o.pos > room)
            return CODEC_TOO_BIG;
        room -= o.pos;
        buf_commit(out, o.pos);
        if (rc == 0)
            *done = true; // a frame ended and was flushed whole
        else if (in.pos > pos0)
            *done = false; // another frame began
        if (o.pos == o.size || in.pos < in.size)
            continue;
        return CODEC_OK;
    }
}

static void codec__zs_destroy(void *impl)
{
    struct codec__zs *z = impl;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    free(z);
}

const struct codec__ops codec__zstd_ops = {codec__zs_create, codec__zs_step, codec__zs_destroy,
                                           true};
