/* Chunked transfer coding decoder (RFC 9112 §7.1) as a byte-driven state machine, so a body can
 * arrive in any split. It is stricter than the RFC's robustness allowances on purpose: every line
 * of the framing must end in CRLF (a lone LF or CR is where parsers in a chain disagree), sizes
 * are bounded, extensions and trailers are length-limited and must be well-formed. */
#include "http/chunked.h"

#include <string.h>

#include "http/internal.h"

#define CHUNK_LINE_MAX 4096     /* size line with extensions, CRLF excluded */
#define CHUNK_TRAILER_MAX 16384 /* all trailer lines together */
#define CHUNK_DIGITS_MAX 16
/* No body is 2^53 bytes (8 PiB): a size above it is an attack on the decoder's arithmetic or on
 * a peer's, never data. */
#define CHUNK_SIZE_MAX (UINT64_C(1) << 53)

enum {
    CS_SIZE0 = 0,  /* first hex digit of a chunk size */
    CS_SIZE,       /* more hex digits */
    CS_EXT_BWS,    /* whitespace after the size, before ';' or CR */
    CS_EXT,        /* inside chunk extensions, after a ';' */
    CS_EXT_QUOTE,  /* inside a quoted-string extension value */
    CS_EXT_QPAIR,  /* after a backslash in a quoted-string */
    CS_SIZE_LF,    /* CR of the size line seen */
    CS_DATA,
    CS_DATA_CR,    /* CRLF after the data */
    CS_DATA_LF,
    CS_TR_START,   /* start of a trailer line, or of the final empty line */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_END_LF,     /* CR of the final empty line seen */
    CS_DONE,
};

void h1_chunked_init(struct h1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->_state = CS_SIZE0;
}

static inline int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

long h1_chunked_step(struct h1_chunked *c, const char *in, size_t len, const char **data,
                     size_t *data_len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
    *data = NULL;
    *data_len = 0;
    while (i < len && c->_state != CS_DONE) {
        unsigned char ch = p[i];
        switch (c->_state) {
        case CS_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->_remaining)
                n = (size_t)c->_remaining;
            *data = in + i;
            *data_len = n;
            c->_remaining -= n;
            c->_total += n;
            if (c->_remaining == 0)
                c->_state = CS_DATA_CR;
            return (long)(i + n); /* one run of data per call */
        }
        case CS_SIZE0:
        case CS_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                /* more than 16 digits (leading zeros included) or a size over 2^63 is refused:
                 * a wrapped size is the classic way to make two decoders disagree */
                if (++c->_line_len > CHUNK_DIGITS_MAX ||
                    c->_remaining > (CHUNK_SIZE_MAX - (uint64_t)h) / 16)
                    return -1;
                c->_remaining = c->_remaining * 16 + (uint64_t)h;
                c->_state = CS_SIZE;
                break;
            }
            if (c->_state == CS_SIZE0)
                return -1; /* no digit: "", "-1", "0x1", " 1" */
            /* the size is known: over the body limit, it is refused before any of its data is
             * read or forwarded (a 2^63 chunk once streamed until the limit) */
            if (c->max_size > 0 && (c->_total > c->max_size ||
                                    c->_remaining > c->max_size - c->_total)) {
                c->too_large = true;
                return -1;
            }
            if (ch == '\r')
                c->_state = CS_SIZE_LF;
            else if (ch == ';')
                c->_state = CS_EXT;
            else if (ch == ' ' || ch == '\t')
                c->_state = CS_EXT_BWS;
            else
                return -1;
            c->_line_len++;
            break;
        }
        case CS_EXT_BWS:
            if (ch == ';')
                c->_state = CS_EXT;
            else if (ch == '\r')
                c->_state = CS_SIZE_LF;
            else if (ch != ' ' && ch != '\t')
                return -1;
            if (++c->_line_len > CHUNK_LINE_MAX)
                return -1;
            break;
        case CS_EXT:
            /* name, '=', token values, BWS and further ';': any tchar or those separators */
            if (ch == '\r')
                c->_state = CS_SIZE_LF;
            else if (ch == '"')
                c->_state = CS_EXT_QUOTE;
            else if (!h1__tchar[ch] && ch != ';' && ch != '=' && ch != ' ' && ch != '\t')
                return -1;
            if (++c->_line_len > CHUNK_LINE_MAX)
                return -1;
            break;
        case CS_EXT_QUOTE:
            if (ch == '"')
                c->_state = CS_EXT;
            else if (ch == '\\')
                c->_state = CS_EXT_QPAIR;
            else if (!h1__vchar[ch])
                return -1; /* CR, LF, NUL, CTL inside a quoted string */
            if (++c->_line_len > CHUNK_LINE_MAX)
                return -1;
            break;
        case CS_EXT_QPAIR:
            if (!h1__vchar[ch])
                return -1;
            c->_state = CS_EXT_QUOTE;
            if (++c->_line_len > CHUNK_LINE_MAX)
                return -1;
            break;
        case CS_SIZE_LF:
            if (ch != '\n')
                return -1;
            c->_line_len = 0;
            if (c->_remaining == 0) {
                /* the last chunk: return here, so the caller knows where the trailer section
                 * starts (a proxy filters it) */
                c->_state = CS_TR_START;
                c->trailers = true;
                return (long)(i + 1);
            }
            c->_state = CS_DATA;
            break;
        case CS_DATA_CR:
            if (ch != '\r')
                return -1; /* data longer than announced, or a lone LF */
            c->_state = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (ch != '\n')
                return -1;
            c->_state = CS_SIZE0;
            break;
        case CS_TR_START:
            if (++c->_trailer_len > CHUNK_TRAILER_MAX)
                return -1;
            if (ch == '\r') {
                c->_state = CS_END_LF;
            } else if (h1__tchar[ch]) {
                c->_state = CS_TR_NAME;
            } else {
                return -1; /* obs-fold, empty name, lone LF, junk */
            }
            break;
        case CS_TR_NAME:
            if (++c->_trailer_len > CHUNK_TRAILER_MAX)
                return -1;
            if (ch == ':')
                c->_state = CS_TR_VALUE;
            else if (!h1__tchar[ch])
                return -1; /* includes whitespace before the colon */
            break;
        case CS_TR_VALUE:
            if (++c->_trailer_len > CHUNK_TRAILER_MAX)
                return -1;
            if (ch == '\r')
                c->_state = CS_TR_LF;
            else if (!h1__vchar[ch])
                return -1;
            break;
        case CS_TR_LF:
            if (++c->_trailer_len > CHUNK_TRAILER_MAX || ch != '\n')
                return -1;
            c->_state = CS_TR_START;
            break;
        case CS_END_LF:
            if (ch != '\n')
                return -1;
            c->_state = CS_DONE;
            c->done = true;
            break;
        default:
            return -1;
        }
        i++;
    }
    return (long)i;
}

/* Trailer fields a recipient must not merge into the header section (RFC 9110 §6.5.1): framing,
 * routing, request modifiers, authentication, response control and content processing, and
 * hop-by-hop fields. Sorted by length for a quick reject. */
static bool trailer_forbidden(const char *n, size_t len)
{
    static const char *const names[] = {
        "te", "age", "date", "host", "vary", "range", "cookie", "expect", "pragma", "trailer",
        "expires", "upgrade", "warning", "location", "if-match", "if-range", "connection",
        "keep-alive", "set-cookie", "retry-after", "content-type", "max-forwards",
        "authorization", "cache-control", "content-range", "if-none-match", "content-length",
        "content-encoding", "proxy-connection", "www-authenticate", "if-modified-since",
        "transfer-encoding", "proxy-authenticate", "if-unmodified-since", "proxy-authorization",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t nl = strlen(names[i]);
        if (nl != len)
            continue;
        size_t k = 0;
        while (k < len && (unsigned char)(n[k] | 0x20) == (unsigned char)names[i][k])
            k++;
        if (k == len)
            return true;
    }
    return false;
}

size_t h1_chunked_filter_trailers(char *p, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        size_t end = in;
        while (end < len && p[end] != '\n')
            end++;
        size_t line = end < len ? end + 1 - in : len - in;
        size_t colon = in;
        while (colon < in + line && p[colon] != ':')
            colon++;
        bool keep = colon < in + line && !trailer_forbidden(p + in, colon - in);
        if (colon >= in + line) /* the final empty line */
            keep = true;
        if (keep) {
            memmove(p + out, p + in, line);
            out += line;
        }
        in += line;
    }
    return out;
}

long h1_chunked_decode_all(const char *in, size_t len, char *out, size_t out_cap, size_t *out_len)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    size_t pos = 0, o = 0;
    *out_len = 0;
    for (;;) {
        const char *d;
        size_t dl;
        long n = h1_chunked_step(&c, in + pos, len - pos, &d, &dl);
        if (n < 0)
            return -1;
        if (dl) {
            if (dl > out_cap - o)
                return -1;
            memcpy(out + o, d, dl);
            o += dl;
            *out_len = o;
        }
        pos += (size_t)n;
        if (c.done)
            return (long)pos;
        if (n == 0)
            return -2;
    }
}
