/* Growable byte buffer with a read offset. */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

void buf_init(struct buf *b) { memset(b, 0, sizeof(*b)); }

void buf_deinit(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    /* Reclaim consumed space before growing: a connection buffer that is read and parsed in a
     * loop keeps a steady size this way. */
    if (b->off > 0) {
        buf_compact(b);
        if (b->cap - b->len >= n)
            return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void buf_compact(struct buf *b)
{
    if (b->off == 0)
        return;
    size_t n = b->len - b->off;
    if (n)
        memmove(b->data, b->data + b->off, n);
    b->off = 0;
    b->len = n;
}

void buf_reset(struct buf *b) { b->off = b->len = 0; }

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void buf_append_str(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n + 1);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0)
        b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_append_json_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, n + 2);
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_append(b, e, 2);
        } else if (c == '\n') {
            buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            buf_append(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 6);
        } else {
            buf_append(b, &s[i], 1);
        }
    }
    buf_append(b, "\"", 1);
}
