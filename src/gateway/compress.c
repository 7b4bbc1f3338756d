/* The compression filter (routes[].compress): negotiates a content coding from Accept-Encoding
 * when the request arrives, judges the response (compvar.c: media type, size, its own coding,
 * no-transform, ranges, statuses without a body), and then either re-encodes the body chunk by
 * chunk through src/codec as the proxy streams it (filter.h transform), or decodes an encoded
 * origin body for a client that does not take its coding (bounded: a decompression bomb stops at
 * max_decoded_size). For the cache it derives stored variants (filter.h variant / derive): a
 * stored response is encoded once per coding and the hits serve those bytes as stored. The
 * client gets Content-Encoding, Vary: Accept-Encoding, a weak ETag of its own (W/"x-gzip"), and
 * a chunked body; memory per response is the codec's bounded window plus one output step. See
 * docs/compression.md. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/codec.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/compvar.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/req.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "metrics/metrics.h"

/* The per-request state (in the request's filter area: 16 bytes). */
struct compress_req {
    uint8_t enc;    // enum codec_enc negotiated at the request; IDENTITY: the client takes none
    uint8_t accept; // bit e: the client takes coding e (for an origin's encoded body)
    bool plain;     // HEAD, a Range, or a no-transform request: the body as it is
    bool vary;      // the answer depends on Accept-Encoding: Vary: Accept-Encoding
    struct compress_out *z; // the response is being re-encoded or decoded
};

struct compress_out {
    struct codec *codec;
    unsigned id;  // compvar_pick's: a coding (encoding) or COMPVAR_DECODED
    unsigned from; // decoding: the origin's coding
    struct buf etag; // the answer's ETag value, empty: none
    /* On a cached route, the whole output is kept (up to the route's max_object_size) so that
     * the cache stores it as the response's variant when it stores the response: the first
     * hit does not encode the same body again (compress__transformed). */
    struct buf kept;
    size_t keep_max; // 0: not kept (or it outgrew the limit)
    bool done;       // the last step ran: <kept> is the whole body
};

static metrics_ref compress__counted[CODEC_N]; // apigate_compressed_responses_total{encoding}
static metrics_ref compress__bytes_in, compress__bytes_out; // apigate_compress_bytes_total
static metrics_ref compress__decoded[CODEC_N]; // apigate_decompressed_responses_total{encoding}
static metrics_ref compress__dec_corrupt, compress__dec_too_big; // apigate_decompress_errors_total
static metrics_ref compress__variants[CODEC_N]; // apigate_compress_variants_total{variant};
                                                // [CODEC_IDENTITY]: decoded
static struct log_limit compress__log_corrupt, compress__log_too_big;

static const struct gw_compress *compress__cfg(const struct gw_req *r)
{
    return &r->th->sh->cfg->routes[r->route].compress;
}

static void compress__init(struct gw_shared *sh)
{
    const char *l_enc[] = {"encoding", NULL};
    int f = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_compressed_responses_total",
                           "Bodies the gateway compressed (routes[].compress), by coding: a "
                           "response streamed to a client, or a stored variant derived once "
                           "for the cache; a hit served from a stored variant counts nothing.",
                           l_enc);
    for (int e = CODEC_GZIP; e < CODEC_N; e++)
        compress__counted[e] = metrics_series1(sh->metrics, f, codec_name(e));
    const char *l_dir[] = {"direction", NULL};
    f = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_compress_bytes_total",
                       "Body bytes through the compression filter's encoders: in (plain) and "
                       "out (encoded).",
                       l_dir);
    compress__bytes_in = metrics_series1(sh->metrics, f, "in");
    compress__bytes_out = metrics_series1(sh->metrics, f, "out");
    f = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_decompressed_responses_total",
                       "Encoded origin bodies the gateway decoded for a client that does not "
                       "take their coding, by coding.",
                       l_enc);
    for (int e = CODEC_GZIP; e < CODEC_N; e++)
        compress__decoded[e] = metrics_series1(sh->metrics, f, codec_name(e));
    const char *l_why[] = {"reason", NULL};
    f = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_decompress_errors_total",
                       "Encoded origin bodies that could not be decoded: corrupt, or too_big "
                       "(past routes[].compress.max_decoded_size); the answer was a 502, or "
                       "a close when part of it had gone.",
                       l_why);
    compress__dec_corrupt = metrics_series1(sh->metrics, f, "corrupt");
    compress__dec_too_big = metrics_series1(sh->metrics, f, "too_big");
    const char *l_var[] = {"variant", NULL};
    f = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_compress_variants_total",
                       "Variants of stored responses derived for the cache (once per stored "
                       "response and variant): gzip, br, zstd, or identity (decoded).",
                       l_var);
    for (unsigned e = CODEC_GZIP; e < CODEC_N; e++)
        compress__variants[e] = metrics_series1(sh->metrics, f, compvar_name(e));
    compress__variants[CODEC_IDENTITY] =
        metrics_series1(sh->metrics, f, compvar_name(COMPVAR_DECODED));
}

static bool compress__attach(struct gw_shared *sh, size_t route)
{
    return sh->cfg->routes[route].compress.enabled;
}

static enum filter_verdict compress__on_request(struct gw_req *r, void *st, struct gw_err *err)
{
    (void)err;
    struct compress_req *c = st;
    const struct gw_compress *cfg = compress__cfg(r);
    const struct h1_header *hs = r->req.headers;
    size_t nh = r->req.nheaders;
    const struct h1_header *ae = headers_find(hs, nh, "accept-encoding");
    const char *v = ae ? ae->value : "";
    size_t vl = ae ? ae->value_len : 0;
    enum codec_enc offer[GW_COMPRESS_MAX_ENC];
    for (size_t i = 0; i < cfg->nenc; i++)
        offer[i] = (enum codec_enc)cfg->enc[i];
    c->enc = (uint8_t)codec_negotiate(v, vl, ae != NULL, offer, cfg->nenc);
    c->accept = 0;
    for (enum codec_enc e = CODEC_GZIP; e < CODEC_N; e++)
        if (codec_negotiate(v, vl, ae != NULL, &e, 1) == e)
            c->accept |= (uint8_t)(1u << e);
    const struct h1_header *cc = headers_find(hs, nh, "cache-control");
    c->plain = r->req.method_id == H1_M_HEAD || headers_find(hs, nh, "range") != NULL ||
               (cc != NULL && headers_has_token(cc->value, cc->value_len, "no-transform"));
    return FILTER_CONTINUE;
}

/* The upstream is asked for the plain body: the gateway encodes what the route offers. An origin
 * that encodes anyway is decoded for a client that does not take its coding. */
static bool compress__upstream_header_skip(struct gw_req *r, void *st, const char *name,
                                           size_t len)
{
    (void)r;
    (void)st;
    return len == 15 && headers_name_eq(name, len, "accept-encoding");
}

static void compress__upstream_headers(struct gw_req *r, void *st, struct buf *head)
{
    (void)r;
    (void)st;
    buf_append_str(head, "Accept-Encoding: identity\r\n");
}

static void compress__out_free(struct compress_out *z)
{
    if (z == NULL)
        return;
    codec_destroy(z->codec);
    buf_deinit(&z->etag);
    buf_deinit(&z->kept);
    free(z);
}

static enum filter_verdict compress__on_response_head(struct gw_req *r, void *st,
                                                      const struct h1_response *res)
{
    struct compress_req *c = st;
    const struct gw_compress *cfg = compress__cfg(r);
    c->vary = false;
    compress__out_free(c->z); // a retried exchange is judged again
    c->z = NULL;
    if (res->body == H1_BODY_NONE || r->req.method_id == H1_M_HEAD)
        return FILTER_CONTINUE;
    uint32_t m = compvar_judge(cfg, res->status, res->headers, res->nheaders,
                               res->body == H1_BODY_LENGTH, res->content_length);
    struct compvar_pick p = compvar_pick(m, c->enc, c->accept, c->plain);
    c->vary = p.vary; // the client's Accept-Encoding chooses the answer
    if (p.id == 0)
        return FILTER_CONTINUE;
    unsigned from = COMPVAR_CODING(m);
    struct codec *codec = p.id == COMPVAR_DECODED
                              ? codec_decoder_create((enum codec_enc)from, cfg->max_decoded)
                              : codec_encoder_create((enum codec_enc)p.id, (int)cfg->level);
    if (codec == NULL)
        return FILTER_CONTINUE; // the library refused (memory): the body goes as it is
    struct compress_out *z = xcalloc(1, sizeof(*z));
    z->codec = codec;
    z->id = p.id;
    z->from = from;
    buf_init(&z->etag);
    buf_init(&z->kept);
    const struct gw_route *gr = &r->th->sh->cfg->routes[r->route];
    if (gr->cache.enabled && r->req.method_id == H1_M_GET)
        z->keep_max = gr->cache.max_object_size ? gr->cache.max_object_size
                                                : r->th->sh->cfg->cache.max_object_size;
    const struct h1_header *etag = headers_find(res->headers, res->nheaders, "etag");
    if (etag != NULL)
        compvar_etag(etag->value, etag->value_len, compvar_name(p.id), &z->etag);
    c->z = z;
    return FILTER_CONTINUE;
}

static bool compress__transforms(struct gw_req *r, void *st)
{
    (void)r;
    const struct compress_req *c = st;
    return c->z != NULL;
}

static bool compress__client_header_skip(struct gw_req *r, void *st, const char *name,
                                         size_t len)
{
    (void)r;
    const struct compress_req *c = st;
    if (c->z == NULL)
        return false;
    return (len == 16 && headers_name_eq(name, len, "content-encoding")) || // ours instead
           (len == 13 && headers_name_eq(name, len, "accept-ranges")) ||    // not of this body
           (len == 4 && headers_name_eq(name, len, "etag"));                // the variant's
}

static void compress__client_headers(struct gw_req *r, void *st, struct gw_head *head)
{
    (void)r;
    const struct compress_req *c = st;
    if (c->z != NULL) {
        if (c->z->id != COMPVAR_DECODED)
            gw_head_add_str(head, "Content-Encoding", compvar_name(c->z->id));
        if (c->z->etag.len > 0) // in the filter's state: valid until the request ends
            gw_head_add(head, "ETag", 4, c->z->etag.data, c->z->etag.len);
    }
    if (c->vary)
        gw_head_add(head, "Vary", 4, "Accept-Encoding", 15);
}

/* A decoder failed: counted, and logged (one line a second at most for each cause). */
static void compress__decode_failed(struct gw_req *r, unsigned from, int rc)
{
    bool big = rc == CODEC_TOO_BIG;
    metrics_counter_inc(r->th->ms, big ? compress__dec_too_big : compress__dec_corrupt);
    ag_log_limited(AG_LOG_WARN, big ? &compress__log_too_big : &compress__log_corrupt,
                   "compress: the origin's %s body %s, route: %s, request: %.*s",
                   codec_name((enum codec_enc)from),
                   big ? "decodes to more than max_decoded_size" : "is corrupt",
                   r->th->sh->rt[r->route].label, (int)r->rid_len, r->rid);
}

static int compress__transform(struct gw_req *r, void *st, const char *p, size_t n, bool last,
                               struct buf *out)
{
    struct compress_req *c = st;
    struct compress_out *z = c->z;
    size_t before = buf_pending(out);
    int rc = codec_step(z->codec, p, n, last, out);
    struct metrics_slot *ms = r->th->ms;
    if (z->id == COMPVAR_DECODED) {
        if (rc != CODEC_OK) {
            compress__decode_failed(r, z->from, rc);
            return -1;
        }
        if (last)
            metrics_counter_inc(ms, compress__decoded[z->from]);
        return 0;
    }
    if (rc != CODEC_OK)
        return -1;
    if (z->keep_max > 0) {
        size_t add = buf_pending(out) - before;
        if (buf_pending(&z->kept) + add <= z->keep_max) {
            buf_append(&z->kept, buf_head(out) + before, add);
        } else { // larger than the cache takes: not kept
            z->keep_max = 0;
            buf_deinit(&z->kept);
        }
    }
    metrics_counter_add(ms, compress__bytes_in, n);
    metrics_counter_add(ms, compress__bytes_out, buf_pending(out) - before);
    if (last) {
        z->done = true;
        metrics_counter_inc(ms, compress__counted[z->id]);
    }
    return 0;
}

/* ---- stored variants (the cache asks) ---- */

static void compress__variant(struct gw_req *r, void *st, const struct filter_stored *s,
                              struct filter_variant *v)
{
    const struct compress_req *c = st;
    uint32_t m = atomic_load_explicit(s->memo, memory_order_relaxed);
    if (m == 0) { // judged once per stored response; any thread may store the same word
        m = compvar_judge_stored(compress__cfg(r), s->status, s->head, s->head_len, s->body_len);
        atomic_store_explicit(s->memo, m, memory_order_relaxed);
    }
    struct compvar_pick p = compvar_pick(m, c->enc, c->accept, c->plain);
    v->id = p.id;
    v->name = p.id != 0 ? compvar_name(p.id) : NULL;
    v->required = p.required;
    v->extra = p.vary ? "Vary: Accept-Encoding\r\n" : NULL;
}

static int compress__derive(struct gw_req *r, void *st, const struct filter_stored *s,
                            const struct filter_variant *v, const struct filter_stored *prev,
                            struct buf *head, struct buf *body)
{
    (void)st;
    const struct gw_compress *cfg = compress__cfg(r);
    if (prev != NULL) {
        /* a 304 refreshed the head only: the earlier variant's bytes are this body's too, so a
         * response revalidated on every request is still encoded once */
        buf_append(body, prev->body, prev->body_len);
        compvar_head(s->head, s->head_len, v->id, body->len, head);
        return 0;
    }
    unsigned from = COMPVAR_CODING(atomic_load_explicit(s->memo, memory_order_relaxed));
    bool decode = v->id == COMPVAR_DECODED;
    struct codec *k = decode ? codec_decoder_create((enum codec_enc)from, cfg->max_decoded)
                             : codec_encoder_create((enum codec_enc)v->id, (int)cfg->level);
    if (k == NULL)
        return -1;
    int rc = codec_step(k, s->body, s->body_len, true, body);
    codec_destroy(k);
    struct metrics_slot *ms = r->th->ms;
    if (rc != CODEC_OK) {
        if (decode)
            compress__decode_failed(r, from, rc);
        return -1;
    }
    if (decode) {
        metrics_counter_inc(ms, compress__decoded[from]);
        metrics_counter_inc(ms, compress__variants[CODEC_IDENTITY]);
    } else {
        metrics_counter_add(ms, compress__bytes_in, s->body_len);
        metrics_counter_add(ms, compress__bytes_out, body->len);
        metrics_counter_inc(ms, compress__counted[v->id]);
        metrics_counter_inc(ms, compress__variants[v->id]);
    }
    compvar_head(s->head, s->head_len, v->id, body->len, head);
    return 0;
}

/* The whole encoded body this request's response was streamed as, when kept (on a cached
 * route, whole and under the object limit): the cache stores it as the variant instead of
 * encoding the stored body again at the first hit. */
static bool compress__transformed(struct gw_req *r, void *st, unsigned *id, const char **body,
                                  size_t *len)
{
    (void)r;
    const struct compress_req *c = st;
    const struct compress_out *z = c->z;
    if (z == NULL || z->keep_max == 0 || !z->done || z->id == COMPVAR_DECODED)
        return false;
    *id = z->id;
    *body = buf_head(&z->kept);
    *len = buf_pending(&z->kept);
    return true;
}

static void compress__on_end(struct gw_req *r, void *st)
{
    (void)r;
    struct compress_req *c = st;
    compress__out_free(c->z);
    c->z = NULL;
}

const struct filter_ops compress_filter = {
    .name = "compress",
    .state_size = sizeof(struct compress_req),
    .init = compress__init,
    .attach = compress__attach,
    .on_request = compress__on_request,
    .upstream_header_skip = compress__upstream_header_skip,
    .upstream_headers = compress__upstream_headers,
    .on_response_head = compress__on_response_head,
    .client_header_skip = compress__client_header_skip,
    .client_headers = compress__client_headers,
    .transforms = compress__transforms,
    .transform = compress__transform,
    .variant = compress__variant,
    .derive = compress__derive,
    .transformed = compress__transformed,
    .on_end = compress__on_end,
};
