/* Fuzz target for the cache's handling of network input: a request head followed by a response
 * head and body (as an origin would send them) go through classification, keys with Vary,
 * storability and freshness, filling an entry, lookups, conditional matching, 304 generation and
 * refresh, L2 serialization round trip and invalidation by Location. Invariants: no crash, no
 * read outside the input (ASan), a stored entry's head re-parses as a response, and a serialized
 * entry inserted again has the same bytes.
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1]. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fuzz targets link only ag_http and ag_core (CMakeLists.txt keeps the clang build small), so the
 * three cache files are compiled in here; xxHash is header-only with XXH_INLINE_ALL. */
#define XXH_INLINE_ALL
#include "../../src/cache/cache.c"
#include "../../src/cache/keyhash.c"
#include "../../src/cache/policy.c"
#include "../../src/cache/store.c"
#include "http/headers.h"

#define MAXH 32

static void check(bool ok)
{
    if (!ok)
        abort();
}

static struct cache *fz_cache;

static void fz_one(const struct policy_conf *pc, const struct h1_request *req,
                   const struct h1_response *res, const char *body, size_t blen, uint64_t now)
{
    struct policy_req p;
    policy_classify_request(pc, req, &p);
    struct buf key = BUF_INIT;
    struct cache_found f;
    if (cache_lookup(fz_cache, pc, req, &p, now, &key, &f) != 0) {
        buf_deinit(&key);
        return;
    }
    cache_release(fz_cache, f.obj);
    const char *why = NULL;
    struct cache_fill *fill =
        cache_fill_begin(fz_cache, pc, req, &p, res, 1700000000, 1700000001, now, f.path_gen,
                         64 * 1024, "Tue, 14 Nov 2023 22:13:20 GMT", &why);
    if (fill == NULL) {
        check(why != NULL);
        buf_deinit(&key);
        return;
    }
    if (cache_fill_body(fill, body, blen) == -1) {
        cache_fill_abort(fill);
        buf_deinit(&key);
        return;
    }
    struct store_obj *o = cache_fill_end_ref(fz_cache, fill, now);
    if (o != NULL) {
        const struct cache_entry *e = o->payload;
        /* the stored head is a valid response head */
        struct buf h = BUF_INIT;
        buf_append(&h, e->data, e->head_len);
        buf_append(&h, "\r\n", 2);
        struct h1_header hs[100];
        struct h1_response r2;
        struct h1_limits lim = {.max_request_line = 0, .max_head = h.len + 1, .max_headers = 100};
        check(h1_parse_response(h.data, h.len, &r2, hs, 100, &lim, true) > 0);
        buf_deinit(&h);
        (void)cache_conditional_match(e, req);
        struct buf out = BUF_INIT;
        cache_write_304(e, 1234, CACHE_HIT, "Connection: close\r\n", &out);
        char block[160];
        check(cache_hit_block(block, UINT64_MAX / 2, CACHE_STALE, NULL) < sizeof(block));
        /* L2 round trip */
        buf_reset(&out);
        cache_entry_serialize(e, now, 1700000005000ull, &out);
        struct store_obj *o2 =
            cache_insert_serialized(fz_cache, out.data, out.len, o->key, o->key_len, o->primary_len,
                                    f.path_gen, now, 1700000005000ull);
        if (o2 != NULL) {
            const struct cache_entry *e2 = o2->payload;
            check(e2->head_len == e->head_len && e2->body_len == e->body_len);
            check(memcmp(e2->data, e->data, e->head_len + e->body_len) == 0);
            cache_release(fz_cache, o2);
        }
        buf_deinit(&out);
        /* the response again, as a 304 refresh */
        struct store_obj *n =
            cache_refresh_304(fz_cache, pc, req, &p, o, res, 1700000010, 1700000010, now + 10000,
                              o->key, o->key_len, o->primary_len);
        cache_release(fz_cache, n);
        cache_release(fz_cache, o);
    }
    /* a lookup at several ages */
    for (uint64_t dt = 0; dt < 4; dt++) {
        struct cache_found g;
        if (cache_lookup(fz_cache, pc, req, &p, now + dt * 3600000, &key, &g) == 0 &&
            g.obj != NULL) {
            (void)policy_stale_if_error_ok(&g.e->fresh, g.age_ms, &p);
            cache_release(fz_cache, g.obj);
        }
    }
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *hh = &res->headers[i];
        if (headers_name_eq(hh->name, hh->name_len, "location"))
            cache_invalidate_uri(fz_cache, req->host, req->host_len, hh->value, hh->value_len);
    }
    buf_deinit(&key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fz_cache == NULL)
        fz_cache = cache_create(256 * 1024, 4, 60000);
    const char *s = (const char *)data;
    const char *split = NULL;
    for (size_t i = 0; i + 3 < size; i++) {
        if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
            split = s + i + 4;
            break;
        }
    }
    if (split == NULL)
        return 0;
    struct h1_header rqh[MAXH], rsh[MAXH];
    struct h1_request req;
    struct h1_response res;
    if (h1_parse_request(s, (size_t)(split - s), &req, rqh, MAXH, NULL) <= 0)
        return 0;
    size_t rest = size - (size_t)(split - s);
    int n = h1_parse_response(split, rest, &res, rsh, MAXH, NULL, false);
    if (n <= 0)
        return 0;
    const char *body = split + n;
    size_t blen = rest - (size_t)n;
    static const char *const vary_auth[] = {"Authorization", NULL};
    static const char *const ignore[] = {"utm_*", NULL};
    static const int statuses[] = {200, 404};
    const struct policy_conf confs[] = {
        {.max_stale_ms = 3600000},
        {.ttl_ms = 60000,
         .override = true,
         .vary = vary_auth,
         .ignore_query = ignore,
         .swr_ms = 1000,
         .sie_ms = 5000,
         .negative_ttl_ms = 1000},
        {.ttl_ms = 1000, .statuses = statuses, .nstatuses = 2, .max_stale_ms = 10},
    };
    for (size_t i = 0; i < sizeof(confs) / sizeof(confs[0]); i++)
        fz_one(&confs[i], &req, &res, body, blen, 1000000 + i);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
