/* Per-request arena: chunks of bump allocation. Large requests get their own chunk. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* usable bytes in mem */
    size_t pos;  /* next free byte */
    _Alignas(16) unsigned char mem[];
};

void arena_init(struct arena *a, size_t chunk_size, size_t limit)
{
    a->_head = NULL;
    a->_used = 0;
    a->_limit = limit;
    a->_chunk_size = chunk_size ? chunk_size : 4096;
}

void arena_deinit(struct arena *a)
{
    struct arena_chunk *c = a->_head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->_head = NULL;
    a->_used = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = (n + 15u) & ~(size_t)15u;
    if (need < n || need > SIZE_MAX - sizeof(struct arena_chunk))
        return NULL;
    /* Written as a subtraction: _used + need could wrap around and pass the test. */
    if (a->_limit && need > a->_limit - a->_used)
        return NULL;
    struct arena_chunk *c = a->_head;
    if (c == NULL || c->size - c->pos < need) {
        if (need > a->_chunk_size / 4 && c != NULL) {
            /* A large block gets a chunk of its own, linked behind the current one: the room left
             * in the current chunk keeps serving the small allocations that follow. */
            struct arena_chunk *big = xmalloc(sizeof(*big) + need);
            big->size = need;
            big->pos = need;
            big->next = c->next;
            c->next = big;
            a->_used += need;
            return big->mem;
        }
        size_t size = need > a->_chunk_size ? need : a->_chunk_size;
        c = xmalloc(sizeof(*c) + size);
        c->size = size;
        c->pos = 0;
        c->next = a->_head;
        a->_head = c;
    }
    void *p = c->mem + c->pos;
    c->pos += need;
    a->_used += need;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void arena_reset(struct arena *a)
{
    /* Keep one chunk of the configured size: steady-state requests fit in it, so a reset costs
     * no free/malloc pair. Larger chunks (one big header) go back to malloc. */
    struct arena_chunk *c = a->_head, *keep = NULL;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        if (keep == NULL && c->size == a->_chunk_size)
            keep = c;
        else
            free(c);
        c = next;
    }
    if (keep != NULL) {
        keep->pos = 0;
        keep->next = NULL;
    }
    a->_head = keep;
    a->_used = 0;
}
