/* Growable byte buffer with a read offset: bytes [off, len) are pending. Published because
 * connections embed it by value. Growth aborts on allocation failure (xmalloc rule); callers bound
 * sizes with config limits. */
#ifndef AG_CORE_BUF_H
#define AG_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t off; /* first unconsumed byte */
    size_t len; /* end of valid bytes */
    size_t cap; /* allocated size of data */
};

#define BUF_INIT {NULL, 0, 0, 0}

void buf_init(struct buf *b);
void buf_deinit(struct buf *b);
/* Pending bytes and their count. */
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }
static inline size_t buf_pending(const struct buf *b) { return b->len - b->off; }
/* Room at the tail and its size; buf_reserve() guarantees at least <n> bytes of room. */
static inline char *buf_tail(const struct buf *b) { return b->data + b->len; }
static inline size_t buf_room(const struct buf *b) { return b->cap - b->len; }
void buf_reserve(struct buf *b, size_t n);
/* Marks <n> bytes written at the tail. */
static inline void buf_commit(struct buf *b, size_t n) { b->len += n; }
/* Takes back the last <n> pending bytes appended (n <= buf_pending). */
static inline void buf_unappend(struct buf *b, size_t n) { b->len -= n; }
/* Drops <n> pending bytes from the head; resets to empty when everything is consumed. */
void buf_consume(struct buf *b, size_t n);
/* Moves pending bytes to the start of the allocation. */
void buf_compact(struct buf *b);
void buf_reset(struct buf *b);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends <s> as a JSON string literal (quotes and escapes included). */
void buf_append_json_str(struct buf *b, const char *s, size_t n);
/* Appends the whole content of file <path> to <b>. Refuses a directory, and stops with an error
 * once the content passes <max> bytes, so /dev/zero or a wrong path to a huge file fails at once
 * instead of filling memory. Returns 0, or -1 with the reason, without the path, in <err>
 * ("cannot open: No such file or directory", "is a directory", "larger than 16 MB"); <b> may
 * then hold part of the file. Each "read a whole file" of a command line goes through here. */
int buf_read_file(struct buf *b, const char *path, size_t max, char *err, size_t errlen);

#endif
