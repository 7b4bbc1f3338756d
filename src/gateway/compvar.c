/* Compression decisions without a request (compvar.h): judging a response, picking the
 * representation a client gets, and writing a variant's validator and head. */
#include "gateway/compvar.h"

#include <string.h>
#include <strings.h>

#include "codec/codec.h"
#include "core/buf.h"
#include "gateway/gwconf.h"
#include "http/h1parse.h"
#include "http/headers.h"

bool compvar_type_ok(const struct gw_compress *cfg, const char *v, size_t n)
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

/* The coding named by a Content-Encoding value: IDENTITY, a codec, or COMPVAR_UNKNOWN (also
 * for a list of several codings: decoding them in turn is not done). */
static unsigned compvar__coding(const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0)
        return CODEC_IDENTITY;
    int e = codec_from_name(v, n);
    return e < 0 ? COMPVAR_UNKNOWN : (unsigned)e;
}

uint32_t compvar_judge(const struct gw_compress *cfg, int status, const struct h1_header *hs,
                       size_t n, bool has_len, uint64_t len)
{
    uint32_t m = COMPVAR_JUDGED;
    if (status < 200 || status == 204 || status == 304)
        return m | COMPVAR_KEEP; // no body to work on
    if (status == 206)
        return m | COMPVAR_KEEP;
    const struct h1_header *ct = NULL;
    unsigned coding = CODEC_IDENTITY;
    for (size_t i = 0; i < n; i++) {
        const struct h1_header *h = &hs[i];
        switch (h->name_len) {
        case 12:
            if (headers_name_eq(h->name, 12, "content-type"))
                ct = h;
            break;
        case 13:
            if (headers_name_eq(h->name, 13, "cache-control") &&
                headers_has_token(h->value, h->value_len, "no-transform"))
                m |= COMPVAR_KEEP;
            if (headers_name_eq(h->name, 13, "content-range"))
                m |= COMPVAR_KEEP;
            break;
        case 16:
            if (headers_name_eq(h->name, 16, "content-encoding")) {
                unsigned c = compvar__coding(h->value, h->value_len);
                if (c != CODEC_IDENTITY)
                    coding = coding == CODEC_IDENTITY ? c : COMPVAR_UNKNOWN; // two: not decoded
            }
            break;
        default:
            break;
        }
    }
    m |= coding << 4;
    if (coding == CODEC_IDENTITY && ct != NULL && compvar_type_ok(cfg, ct->value, ct->value_len) &&
        !(has_len && len < cfg->min_size))
        m |= COMPVAR_FITS;
    return m;
}

uint32_t compvar_judge_stored(const struct gw_compress *cfg, int status, const char *head,
                              size_t head_len, uint64_t body_len)
{
    struct h1_header hs[64]; // the header lines that matter are few; the rest are not needed
    size_t n = 0;
    size_t i = 0;
    const char *eol = memchr(head, '\n', head_len);
    i = eol != NULL ? (size_t)(eol - head) + 1 : head_len; // past the status line
    while (i < head_len && n < sizeof(hs) / sizeof(hs[0])) {
        eol = memchr(head + i, '\n', head_len - i);
        size_t end = eol != NULL ? (size_t)(eol - head) : head_len;
        size_t le = end > i && head[end - 1] == '\r' ? end - 1 : end;
        const char *colon = memchr(head + i, ':', le - i);
        if (colon != NULL) {
            size_t vs = (size_t)(colon - head) + 1;
            while (vs < le && (head[vs] == ' ' || head[vs] == '\t'))
                vs++;
            size_t ve = le;
            while (ve > vs && (head[ve - 1] == ' ' || head[ve - 1] == '\t'))
                ve--;
            size_t nl = (size_t)(colon - (head + i));
            /* only the names compvar_judge reads: a long head never crowds them out */
            const char *nm = head + i;
            if ((nl == 12 && headers_name_eq(nm, nl, "content-type")) ||
                (nl == 13 && (headers_name_eq(nm, nl, "cache-control") ||
                              headers_name_eq(nm, nl, "content-range"))) ||
                (nl == 16 && headers_name_eq(nm, nl, "content-encoding")))
                hs[n++] = (struct h1_header){nm, nl, head + vs, ve - vs};
        }
        i = end + 1;
    }
    return compvar_judge(cfg, status, hs, n, true, body_len);
}

struct compvar_pick compvar_pick(uint32_t memo, unsigned enc, unsigned accept, bool plain)
{
    struct compvar_pick p = {0, false, false};
    unsigned coding = COMPVAR_CODING(memo);
    if (memo & COMPVAR_KEEP)
        return p;
    if (coding == CODEC_IDENTITY) {
        if (!(memo & COMPVAR_FITS))
            return p;
        p.vary = true;
        if (!plain && enc != CODEC_IDENTITY)
            p.id = enc;
        return p;
    }
    if (coding == COMPVAR_UNKNOWN)
        return p; // passes as the origin sent it
    p.vary = true;
    if (!(accept & (1u << coding))) {
        p.id = COMPVAR_DECODED;
        p.required = true;
    }
    return p;
}

const char *compvar_name(unsigned id)
{
    return id == COMPVAR_DECODED ? "identity" : codec_name((enum codec_enc)id);
}

int compvar_etag(const char *v, size_t n, const char *name, struct buf *out)
{
    if (n >= 2 && v[0] == 'W' && v[1] == '/') {
        v += 2;
        n -= 2;
    }
    if (n < 2 || v[0] != '"' || v[n - 1] != '"')
        return -1;
    buf_append(out, "W/", 2);
    buf_append(out, v, n - 1);
    buf_append(out, "-", 1);
    buf_append_str(out, name);
    buf_append(out, "\"", 1);
    return 0;
}

static bool compvar__is(const char *line, size_t nl, const char *name)
{
    return strlen(name) == nl && headers_name_eq(line, nl, name);
}

void compvar_head(const char *head, size_t head_len, unsigned id, uint64_t body_len,
                  struct buf *out)
{
    const char *etag = NULL;
    size_t etag_len = 0;
    size_t i = 0;
    bool first = true;
    while (i < head_len) {
        const char *eol = memchr(head + i, '\n', head_len - i);
        size_t end = eol != NULL ? (size_t)(eol - head) + 1 : head_len;
        const char *colon = first ? NULL : memchr(head + i, ':', end - i);
        size_t nl = colon != NULL ? (size_t)(colon - (head + i)) : 0;
        const char *line = head + i;
        bool drop = colon != NULL && (compvar__is(line, nl, "content-length") ||
                                      compvar__is(line, nl, "content-encoding") ||
                                      compvar__is(line, nl, "accept-ranges") ||
                                      compvar__is(line, nl, "etag"));
        if (colon != NULL && compvar__is(line, nl, "etag") && etag == NULL) {
            size_t vs = nl + 1, ve = end - i;
            while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
                vs++;
            while (ve > vs && (line[ve - 1] == '\r' || line[ve - 1] == '\n' ||
                               line[ve - 1] == ' ' || line[ve - 1] == '\t'))
                ve--;
            etag = line + vs;
            etag_len = ve - vs;
        }
        if (!drop) {
            buf_append(out, line, end - i);
            if (end == head_len && (end == i || head[end - 1] != '\n'))
                buf_append(out, "\r\n", 2); // a head without its last CRLF
        }
        first = false;
        i = end;
    }
    if (id != COMPVAR_DECODED) {
        buf_append_str(out, "Content-Encoding: ");
        buf_append_str(out, compvar_name(id));
        buf_append(out, "\r\n", 2);
    }
    if (etag != NULL) {
        size_t at = out->len;
        buf_append_str(out, "ETag: ");
        if (compvar_etag(etag, etag_len, compvar_name(id), out) == 0)
            buf_append(out, "\r\n", 2);
        else
            out->len = at; // not an entity-tag: none is better than a wrong one
    }
    buf_append_str(out, "Vary: Accept-Encoding\r\n");
    buf_printf(out, "Content-Length: %llu\r\n", (unsigned long long)body_len);
}
