/* gzip through zlib: the only file that includes <zlib.h>. Window 32 KB, memLevel 8: about
 * 256 KB per encoder and 40 KB per decoder (zlib's zconf.h formulas). */
#include <stdlib.h>
#include <zlib.h>

#include "codec/codec.h"
#include "codec/internal.h"
#include "core/buf.h"
#include "core/xmalloc.h"

struct codec__gz {
    z_stream z;
    bool decode;
};

static void *codec__gz_create(int level, bool decode)
{
    struct codec__gz *g = xcalloc(1, sizeof(*g));
    g->decode = decode;
    int rc;
    if (decode) {
        rc = inflateInit2(&g->z, 15 + 16); // gzip wrapper only
    } else {
        if (level <= 0)
            level = 6;
        if (level > 9)
            level = 9;
        rc = deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    }
    if (rc != Z_OK) {
        free(g);
        return NULL;
    }
    return g;
}

static int codec__gz_step(void *impl, const unsigned char *p, size_t n, bool last, struct buf *out,
                          uint64_t room, bool *done)
{
    struct codec__gz *g = impl;
    z_stream *z = &g->z;
    if (n == 0 && !last)
        return CODEC_OK;
    z->next_in = (unsigned char *)p; // zlib does not write through it
    z->avail_in = (uInt)n;
    for (;;) {
        buf_reserve(out, CODEC__OUT_STEP);
        z->next_out = (unsigned char *)buf_tail(out);
        z->avail_out = CODEC__OUT_STEP;
        int rc = g->decode ? inflate(z, Z_NO_FLUSH) : deflate(z, last ? Z_FINISH : Z_SYNC_FLUSH);
        size_t made = CODEC__OUT_STEP - z->avail_out;
        if (made > room)
            return CODEC_TOO_BIG;
        room -= made;
        buf_commit(out, made);
        if (rc == Z_STREAM_END) {
            if (g->decode) {
                *done = true;
                return z->avail_in > 0 ? CODEC_ERR : CODEC_OK; // bytes after the stream
            }
            return CODEC_OK;
        }
        if (rc == Z_BUF_ERROR) {
            if (z->avail_out == 0)
                continue;
            return CODEC_OK; // no progress possible: needs more input
        }
        if (rc != Z_OK)
            return CODEC_ERR;
        if (z->avail_out == 0)
            continue; // more output pending
        if (g->decode && z->avail_in > 0)
            continue;
        if (!g->decode && last)
            continue; // until Z_STREAM_END
        return CODEC_OK;
    }
}

static void codec__gz_destroy(void *impl)
{
    struct codec__gz *g = impl;
    if (g->decode)
        inflateEnd(&g->z);
    else
        deflateEnd(&g->z);
    free(g);
}

const struct codec__ops codec__gzip_ops = {codec__gz_create, codec__gz_step, codec__gz_destroy,
                                           false};
