/* Private to src/codec/: the ops each library's file implements. */
#ifndef AG_CODEC_INTERNAL_H
#define AG_CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* One direction of one coding. <impl> is the library's stream. */
struct codec__ops {
    void *(*create)(int level, bool decode);
    /* Appends output to <out>: CODEC_OK, CODEC_ERR, or CODEC_TOO_BIG as soon as more than
     * <room> bytes would be appended. <done> is set when a decoder saw the end of the stream. */
    int (*step)(void *impl, const unsigned char *p, size_t n, bool last, struct buf *out,
                uint64_t room, bool *done);
    void (*destroy)(void *impl);
    /* The coding's streams may be concatenated (zstd frames, RFC 8878 3.1): bytes after the
     * end of one begin another, and <done> says the input ends on a boundary. Otherwise bytes
     * after the end are an error, whether they come in the same step or a later one. */
    bool concatenates;
};

extern const struct codec__ops codec__gzip_ops;
extern const struct codec__ops codec__br_ops;
extern const struct codec__ops codec__zstd_ops;

/* Output is produced in steps of this many bytes, so a decoder's bound is checked before a bomb
 * can grow the buffer past it by more than one step. */
#define CODEC__OUT_STEP 16384

#endif
