/* Per-thread helpers of the request path (see gwthread.h): the Date header, the blocks a thread
 * lends to its sessions and requests, the request counter and the duration series cache. */
#include "gateway/gwthread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/xmalloc.h"
#include "http/h1parse.h"

const char *gwthread_date(struct gwthread *th)
{
    int64_t now = clock_wall_s();
    if (now != th->date_sec) {
        http_date_format(now, th->date);
        th->date_sec = now;
    }
    return th->date;
}

/* ---- blocks lent per request ---- */

/* Under ASan a block on the free list is poisoned (but for its next pointer): a stale pointer
 * into a block given back is reported like a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define GWTHREAD_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define GWTHREAD_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define GWTHREAD_POISON(p, n) ((void)(p), (void)(n))
#define GWTHREAD_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

void *gwthread_block_take(struct gwthread *th)
{
    void *b = th->free_blocks;
    if (b == NULL)
        return xmalloc(CONN_BLOCK);
    memcpy(&th->free_blocks, b, sizeof(void *));
    th->nfree_blocks--;
    GWTHREAD_UNPOISON((char *)b + sizeof(void *), CONN_BLOCK - sizeof(void *));
    return b;
}

void gwthread_block_give(struct gwthread *th, void *block)
{
    if (block == NULL)
        return;
    /* HTTP/2: up to two blocks per recent stream (a batch of streams ends at once and the next
     * batch takes them again); the trim tick gives back what a quieter second does not use */
    if (th->nfree_blocks >= CONN_BLOCKS_KEPT + 2 * th->h2_streams_hw) {
        free(block);
        return;
    }
    memcpy(block, &th->free_blocks, sizeof(void *));
    GWTHREAD_POISON((char *)block + sizeof(void *), CONN_BLOCK - sizeof(void *));
    th->free_blocks = block;
    th->nfree_blocks++;
}

void gwthread_blocks_free(struct gwthread *th)
{
    while (th->free_blocks != NULL) {
        void *b = th->free_blocks;
        memcpy(&th->free_blocks, b, sizeof(void *));
        GWTHREAD_UNPOISON((char *)b + sizeof(void *), CONN_BLOCK - sizeof(void *));
        free(b);
    }
    th->nfree_blocks = 0;
}

size_t gwthread_blocks_trim(struct gwthread *th, size_t keep)
{
    size_t freed = 0;
    while (th->nfree_blocks > keep) {
        void *b = th->free_blocks;
        memcpy(&th->free_blocks, b, sizeof(void *));
        GWTHREAD_UNPOISON((char *)b + sizeof(void *), CONN_BLOCK - sizeof(void *));
        free(b);
        th->nfree_blocks--;
        freed += CONN_BLOCK;
    }
    return freed;
}

void gwthread_buf_take(struct gwthread *th, struct buf *b)
{
    if (b->data != NULL)
        return;
    b->data = gwthread_block_take(th);
    b->cap = CONN_BLOCK;
    b->off = b->len = 0;
}

void gwthread_buf_give(struct gwthread *th, struct buf *b)
{
    if (b->data != NULL && b->cap == CONN_BLOCK) {
        gwthread_block_give(th, b->data);
        buf_init(b);
    } else {
        buf_deinit(b);
    }
}

/* ---- counters ---- */

static const char *const gwthread_method_names[] = {
    [H1_M_OTHER] = "_OTHER", [H1_M_GET] = "GET",         [H1_M_HEAD] = "HEAD",
    [H1_M_POST] = "POST",    [H1_M_PUT] = "PUT",         [H1_M_DELETE] = "DELETE",
    [H1_M_PATCH] = "PATCH",  [H1_M_OPTIONS] = "OPTIONS", [H1_M_CONNECT] = "CONNECT",
    [H1_M_TRACE] = "TRACE",
};

void gwthread_count_request(struct gwthread *th) { th->requests++; }

metrics_ref gwthread_duration_series(struct gwthread *th, int route, int method, int status)
{
    if (method < 0 || method > H1_M_TRACE)
        method = H1_M_OTHER;
    if (status < 0 || status > 999)
        status = 0;
    uint32_t key = ((uint32_t)(route + 2) << 16) | ((uint32_t)method << 10) | (uint32_t)status;
    uint32_t h = (key * 2654435761u) >> 23; // 9 bits: GW_SERIES_CACHE slots
    for (unsigned i = 0; i < GW_SERIES_CACHE; i++) {
        struct gw_series_slot *s = &th->series[(h + i) & (GW_SERIES_CACHE - 1)];
        if (s->key == key)
            return s->ref;
        if (s->key == 0) {
            /* first time on this thread: register (locked, once) and remember */
            struct gw_shared *sh = th->sh;
            char code[8];
            snprintf(code, sizeof(code), "%d", status);
            const char *v[] = {route >= 0 ? sh->rt[route].label : "", gwthread_method_names[method],
                               code, NULL};
            s->ref = metrics_series(sh->metrics, sh->ids.req_duration, v);
            s->key = key;
            return s->ref;
        }
    }
    return METRICS_REF_NONE;
}
