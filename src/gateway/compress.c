/* The compression filter (routes[].compress): negotiates a content coding from Accept-Encoding
 * when the request arrives, judges the response head (media type, size, already encoded,
 * no-transform, ranges, statuses without a body), and re-encodes the body chunk by chunk through
 * src/codec as the proxy streams it (filter.h transform). The client gets Content-Encoding,
 * Vary: Accept-Encoding, a weak ETag, and a chunked body; memory per response is the codec's
 * bounded window plus one output step. See docs/compression.md. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/codec.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "gateway/filter.h"
#include "gateway/gwconf.h"
#include "gateway/req.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "metrics/metrics.h"

/* The per-request state (in the request's filter area). */
struct compress_req {
    uint8_t enc;      // enum codec_enc negotiated at the request; IDENTITY: the client takes none
    bool vary;        // the response is one the route compresses: Vary: Accept-Encoding
    bool weak_etag;   // the upstream's strong ETag goes out as W/ (in <z>)
    struct compress_out *z; // the response is being re-encoded
};

struct compress_out {
    struct codec *codec;
    char *etag; // the upstream's ETag value (strong), or NULL
    size_t etag_len;
};

static metrics_ref compress__counted[CODEC_N]; // apigate_compressed_responses_total{encoding}
static metrics_ref compress__bytes_in, compress__bytes_out; // apigate_compress_bytes_total

static const struct gw_compress *compress__cfg(const struct gw_req *r)
{
    return &r->th->sh->cfg->routes[r->route].compress;
}

static void compress__init(struct gw_shared *sh)
{
    const char *l_enc[] = {"encoding", NULL};
    int f = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_compressed_responses_total",
                           "Responses the gateway compressed (routes[].compress), by coding: "
                           "each one was encoded by this gateway, once.",
                           l_enc);
    for (int e = CODEC_GZIP; e < CODEC_N; e++)
        compress__counted[e] = metrics_series1(sh->metrics, f, codec_name(e));
    const char *l_dir[] = {"direction", NULL};
    f = metrics_family(sh->metrics, METRICS_COUNTER, "apigate_compress_bytes_total",
                       "Body bytes through the compression filter: in (as the upstream sent "
                       "them) and out (encoded).",
                       l_dir);
    compress__bytes_in = metrics_series1(sh->metrics, f, "in");
    compress__bytes_out = metrics_series1(sh->metrics, f, "out");
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
    const struct h1_header *ae =
        headers_find(r->req.headers, r->req.nheaders, "accept-encoding");
    enum codec_enc offer[GW_COMPRESS_MAX_ENC];
    for (size_t i = 0; i < cfg->nenc; i++)
        offer[i] = (enum codec_enc)cfg->enc[i];
    c->enc = (uint8_t)codec_negotiate(ae ? ae->value : "", ae ? ae->value_len : 0, ae != NULL,
                                      offer, cfg->nenc);
    return FILTER_CONTINUE;
}

/* The upstream is asked for the plain body: the gateway encodes (XXX(#13): an encoded upstream
 * answer is not decoded; it passes as it is, which is why the gateway does not ask for one). */
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

/* Whether media type <v> (a Content-Type value) is one of the route's. */
static bool compress__type_ok(const struct gw_compress *cfg, const char *v, size_t n)
{
    size_t t = 0;
    while (t < n && v[t] != ';' && v[t] != ' ' && v[t] != '\t')
        t++;
    static const char *const defaults[] = {"application/json", "text/*"};
    size_t ntypes = cfg->types.n ? cfg->types.n : 2;
    for (size_t i = 0; i < ntypes; i++) {
        const char *p = cfg->types.n ? cfg->types.v[i] : defaults[i];
        size_t pl = strlen(p);
        if (pl >= 2 && p[pl - 1] == '*') {
            if (t >= pl - 1 && strncasecmp(v, p, pl - 1) == 0)
                return true;
        } else if (t == pl && strncasecmp(v, p, pl) == 0) {
            return true;
        }
    }
    return false;
}

static enum filter_verdict compress__on_response_head(struct gw_req *r, void *st,
                                                      const struct h1_response *res)
{
    struct compress_req *c = st;
    const struct gw_compress *cfg = compress__cfg(r);
    c->vary = false;
    if (res->body == H1_BODY_NONE || r->req.method_id == H1_M_HEAD || res->status == 204 ||
        res->status == 206 || res->status == 304 || res->status < 200)
        return FILTER_CONTINUE;
    const struct h1_header *ct = NULL, *etag = NULL;
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        switch (h->name_len) {
        case 4:
            if (headers_name_eq(h->name, 4, "etag"))
                etag = h;
            break;
        case 12:
            if (headers_name_eq(h->name, 12, "content-type"))
                ct = h;
            break;
        case 13:
            if (headers_name_eq(h->name, 13, "cache-control") &&
                headers_has_token(h->value, h->value_len, "no-transform"))
                return FILTER_CONTINUE;
            if (headers_name_eq(h->name, 13, "content-range"))
                return FILTER_CONTINUE;
            break;
        case 16:
            /* already encoded (anything but identity): never twice */
            if (headers_name_eq(h->name, 16, "content-encoding") &&
                !(h->value_len == 8 && strncasecmp(h->value, "identity", 8) == 0))
                return FILTER_CONTINUE;
            break;
        default:
            break;
        }
    }
    if (ct == NULL || !compress__type_ok(cfg, ct->value, ct->value_len))
        return FILTER_CONTINUE;
    if (res->body == H1_BODY_LENGTH && res->content_length < cfg->min_size)
        return FILTER_CONTINUE;
    c->vary = true; // the client's Accept-Encoding chooses the answer from here on
    if (c->enc == CODEC_IDENTITY)
        return FILTER_CONTINUE;
    struct codec *codec = codec_encoder_create((enum codec_enc)c->enc, (int)cfg->level);
    if (codec == NULL)
        return FILTER_CONTINUE; // the library refused (memory): the body goes as it is
    if (c->z != NULL) { // a retried exchange judged again
        codec_destroy(c->z->codec);
        free(c->z->etag);
        free(c->z);
    }
    c->z = xcalloc(1, sizeof(*c->z));
    c->z->codec = codec;
    c->weak_etag = false;
    if (etag != NULL && etag->value_len >= 2 && etag->value[0] == '"') {
        c->z->etag = xmalloc(etag->value_len);
        memcpy(c->z->etag, etag->value, etag->value_len);
        c->z->etag_len = etag->value_len;
        c->weak_etag = true;
    }
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
    return (len == 16 && headers_name_eq(name, len, "content-encoding")) || // identity
           (len == 13 && headers_name_eq(name, len, "accept-ranges")) ||    // not of this body
           (len == 4 && c->weak_etag && headers_name_eq(name, len, "etag"));
}

static void compress__client_headers(struct gw_req *r, void *st, struct buf *head)
{
    (void)r;
    const struct compress_req *c = st;
    if (c->z != NULL) {
        buf_append_str(head, "Content-Encoding: ");
        buf_append_str(head, codec_name((enum codec_enc)c->enc));
        buf_append(head, "\r\n", 2);
        if (c->weak_etag) {
            /* another representation than the identity one: equal only weakly (RFC 9110 8.8.1) */
            buf_append_str(head, "ETag: W/");
            buf_append(head, c->z->etag, c->z->etag_len);
            buf_append(head, "\r\n", 2);
        }
    }
    if (c->vary)
        buf_append_str(head, "Vary: Accept-Encoding\r\n");
}

static int compress__transform(struct gw_req *r, void *st, const char *p, size_t n, bool last,
                               struct buf *out)
{
    struct compress_req *c = st;
    size_t before = buf_pending(out);
    if (codec_step(c->z->codec, p, n, last, out) != CODEC_OK)
        return -1;
    struct metrics_slot *ms = r->th->ms;
    metrics_counter_add(ms, compress__bytes_in, n);
    metrics_counter_add(ms, compress__bytes_out, buf_pending(out) - before);
    if (last)
        metrics_counter_inc(ms, compress__counted[c->enc]);
    return 0;
}

static void compress__on_end(struct gw_req *r, void *st)
{
    (void)r;
    struct compress_req *c = st;
    if (c->z != NULL) {
        codec_destroy(c->z->codec);
        free(c->z->etag);
        free(c->z);
        c->z = NULL;
    }
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
    .on_end = compress__on_end,
};
