/* Per-request arena: bump allocation from chunks, reset (not freed) after each response, with a
 * byte limit so that a hostile request cannot grow it without bound. Running out is a request
 * error (431/500) for the caller, never an abort. Published because connections embed it. */
#ifndef AG_CORE_ARENA_H
#define AG_CORE_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *_head;  /* current chunk; older chunks follow */
    size_t _used;               /* bytes handed out from all chunks */
    size_t _limit;              /* 0: unlimited */
    size_t _chunk_size;         /* size of the first chunk, kept over resets */
};

/* Prepares <a>: chunks of <chunk_size> bytes, at most <limit> bytes in all (0: no limit). */
void arena_init(struct arena *a, size_t chunk_size, size_t limit);
/* Frees every chunk. */
void arena_deinit(struct arena *a);
/* Returns <n> bytes aligned to 16, or NULL when the limit would be exceeded. */
void *arena_alloc(struct arena *a, size_t n);
/* Copies <n> bytes of <s> plus a NUL; NULL when over the limit. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* Forgets every allocation but keeps the first chunk for reuse. */
void arena_reset(struct arena *a);
/* Bytes handed out since the last reset. */
static inline size_t arena_used(const struct arena *a) { return a->_used; }

#endif
