/* The codec front: names, the stream object around each library's ops, the output bound, and
 * Accept-Encoding negotiation. No compression library here. */
#include "codec/codec.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/internal.h"
#include "core/buf.h"
#include "core/xmalloc.h"

struct codec {
    const struct codec__ops *ops;
    void *impl;
    bool decode;
    bool done;        // a decoder saw the end of its stream
    uint64_t max_out; // decoder bound; 0: none
    uint64_t in, out;
};

static const char *const codec__names[CODEC_N] = {"identity", "gzip", "br", "zstd"};

const char *codec_name(enum codec_enc e)
{
    return (unsigned)e < CODEC_N ? codec__names[e] : "?";
}

int codec_from_name(const char *s, size_t n)
{
    for (int e = 0; e < CODEC_N; e++)
        if (strlen(codec__names[e]) == n && strncasecmp(s, codec__names[e], n) == 0)
            return e;
    if (n == 6 && strncasecmp(s, "x-gzip", 6) == 0)
        return CODEC_GZIP;
    return -1;
}

static const struct codec__ops *codec__ops_of(enum codec_enc e)
{
    switch (e) {
    case CODEC_GZIP:
        return &codec__gzip_ops;
    case CODEC_BR:
        return &codec__br_ops;
    case CODEC_ZSTD:
        return &codec__zstd_ops;
    default:
        return NULL;
    }
}

static struct codec *codec__create(enum codec_enc e, int level, bool decode, uint64_t max_out)
{
    const struct codec__ops *ops = codec__ops_of(e);
    if (ops == NULL)
        return NULL;
    void *impl = ops->create(level, decode);
    if (impl == NULL)
        return NULL;
    struct codec *c = xcalloc(1, sizeof(*c));
    c->ops = ops;
    c->impl = impl;
    c->decode = decode;
    c->max_out = max_out;
    return c;
}

struct codec *codec_encoder_create(enum codec_enc e, int level)
{
    return codec__create(e, level, false, 0);
}

struct codec *codec_decoder_create(enum codec_enc e, uint64_t max_out)
{
    return codec__create(e, 0, true, max_out);
}

int codec_step(struct codec *c, const void *p, size_t n, bool last, struct buf *out)
{
    if (c->decode && c->done && !c->ops->concatenates)
        return n > 0 ? CODEC_ERR : CODEC_OK; // bytes after the end of the stream, or nothing
    uint64_t room = UINT64_MAX;
    if (c->decode && c->max_out > 0)
        room = c->out >= c->max_out ? 0 : c->max_out - c->out;
    size_t before = buf_pending(out);
    int rc = c->ops->step(c->impl, p, n, last, out, room, &c->done);
    c->in += n;
    c->out += buf_pending(out) - before;
    if (rc == CODEC_OK && c->decode && last && !c->done)
        return CODEC_ERR; // truncated stream
    return rc;
}

uint64_t codec_bytes_in(const struct codec *c)
{
    return c->in;
}

uint64_t codec_bytes_out(const struct codec *c)
{
    return c->out;
}

void codec_destroy(struct codec *c)
{
    if (c == NULL)
        return;
    c->ops->destroy(c->impl);
    c->impl = NULL;
    free(c);
}

/* ---- Accept-Encoding ---- */

/* The q-value at <p> (after "q="): 0..1000 in thousandths, or -1 when malformed. */
static int codec__qvalue(const char *p, size_t n)
{
    if (n == 0 || (p[0] != '0' && p[0] != '1'))
        return -1;
    int q = (p[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (p[1] != '.' || n > 5)
        return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        q += (p[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

static bool codec__ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

enum codec_enc codec_negotiate(const char *ae, size_t len, bool present,
                               const enum codec_enc *offer, size_t noffer)
{
    if (!present)
        return CODEC_IDENTITY; // any coding is acceptable, but the plain body is the safe one
    int q[CODEC_N];
    for (int e = 0; e < CODEC_N; e++)
        q[e] = -1; // not named
    int star = -1;
    size_t i = 0;
    while (i < len) {
        /* one element: coding *( OWS ";" OWS param ) */
        size_t end = i;
        while (end < len && ae[end] != ',')
            end++;
        size_t s = i;
        while (s < end && codec__ows(ae[s]))
            s++;
        size_t t = s;
        while (t < end && ae[t] != ';' && !codec__ows(ae[t]))
            t++;
        int qv = 1000;
        size_t k = t;
        while (k < end) {
            while (k < end && (codec__ows(ae[k]) || ae[k] == ';'))
                k++;
            size_t ps = k;
            while (k < end && ae[k] != ';')
                k++;
            size_t pe = k;
            while (pe > ps && codec__ows(ae[pe - 1]))
                pe--;
            if (pe - ps >= 2 && (ae[ps] == 'q' || ae[ps] == 'Q') && ae[ps + 1] == '=') {
                int v = codec__qvalue(ae + ps + 2, pe - ps - 2);
                qv = v < 0 ? 0 : v; // a malformed q counts as a refusal, never as a yes
            }
        }
        if (t > s) {
            if (t - s == 1 && ae[s] == '*') {
                star = qv;
            } else {
                int e = codec_from_name(ae + s, t - s);
                if (e >= 0 && qv > q[e])
                    q[e] = qv;
            }
        }
        i = end + 1;
    }
    enum codec_enc best = CODEC_IDENTITY;
    int bestq = 0;
    for (size_t k = 0; k < noffer; k++) {
        enum codec_enc e = offer[k];
        if (e == CODEC_IDENTITY || (unsigned)e >= CODEC_N)
            continue;
        int v = q[e] >= 0 ? q[e] : (star >= 0 ? star : 0);
        if (v > bestq) {
            best = e;
            bestq = v;
        }
    }
    return best;
}
