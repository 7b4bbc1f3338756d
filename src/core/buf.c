/* Growable byte buffer with a read offset. */
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    if (n > SIZE_MAX / 2 - b->len) {
        /* Config limits bound every buffer far below this; reaching it is a bug. */
        fprintf(stderr, "fatal: buffer of %zu + %zu bytes\n", b->len, n);
        abort();
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
    /* <p> may point into this buffer (appending a part of itself): growing would move it. */
    const char *src = p;
    if (b->data != NULL && src >= b->data && src < b->data + b->cap) {
        size_t at = (size_t)(src - b->data);
        if (at >= b->off) {
            at -= b->off; /* buf_reserve() may compact: offsets count from the head */
            buf_reserve(b, n);
            memmove(b->data + b->len, b->data + b->off + at, n);
            b->len += n;
            return;
        }
    }
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

/* Length of the valid UTF-8 sequence at <s> (at most <n> bytes), or 0 when it is not one:
 * overlong forms, surrogates and code points above U+10FFFF are refused (RFC 3629). */
static size_t buf__utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void buf_append_json_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, n + 2);
    buf_append(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, appended in one go */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = buf__utf8_len((const unsigned char *)s + i, n - i);
            if (len > 0) {
                run += len;
                i += len;
                continue;
            }
        }
        buf_append(b, s + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_append(b, e, 2);
        } else if (c == '\n') {
            buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            buf_append(b, "\\t", 2);
        } else if (c >= 0x80) {
            /* Not UTF-8 (bytes off the network): JSON must be UTF-8, so say "something was here"
             * with U+FFFD instead of writing a line that parsers reject. */
            buf_append(b, "\\ufffd", 6);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 6);
        }
        i++;
    }
    buf_append(b, s + n - run, run);
    buf_append(b, "\"", 1);
}

int buf_read_file(struct buf *b, const char *path, size_t max, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "cannot read: %s", strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "is a directory");
        goto fail;
    }
    size_t got = 0;
    for (;;) {
        buf_reserve(b, 65536);
        ssize_t n = read(fd, buf_tail(b), buf_room(b));
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            snprintf(err, errlen, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        buf_commit(b, (size_t)n);
        got += (size_t)n;
        if (got > max) {
            if (max >= (1u << 20))
                snprintf(err, errlen, "larger than %zu MB", max >> 20);
            else
                snprintf(err, errlen, "larger than %zu bytes", max);
            goto fail;
        }
    }
    close(fd);
    return 0;
fail:
    close(fd);
    return -1;
}
