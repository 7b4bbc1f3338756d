/* Hand-over of the cache, the counters and the history to the next worker (see handoff.h). The
 * snapshot:
 *   "AGHANDO1" | u64 metrics_len | metrics_export bytes | u64 cache_len | cache_export records
 *              | u64 ring_len | statring_export bytes (the /stats/history points)
 * Each cache record carries a tag: the fingerprint of the route that owns its key in the old
 * configuration; the new worker computes the same for its own configuration and keeps the record
 * only when both agree. */
#include "gateway/handoff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache/store.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/cachehook_priv.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/route.h"
#include "gateway/statring.h"
#include "http/headers.h"
#include "metrics/metrics.h"

#define HANDOFF_MAGIC "AGHANDO1"       /* the snapshot: counters and cache */
#define HANDOFF_MAGIC_FINAL "AGHANDF1" /* the old worker's last totals, counters only */
#define HANDOFF_MAGIC_WIP "AGHANDW0"   /* being written: not to be read yet */

struct handoff {
    struct gw_shared *sh;
    int fd;
    struct metrics_slot *base; /* where the carried totals live */
    uint64_t since_ms;
    bool done;
};

static void handoff__strlist(struct buf *b, const struct cfg_strlist *l)
{
    buf_printf(b, "[%zu", l->n);
    for (size_t i = 0; i < l->n; i++)
        buf_printf(b, "|%s", l->v[i]);
    buf_append_str(b, "]");
}

/* Fingerprint of what decides whether and how a key of route <i> is stored and served: the
 * route's pattern and restrictions, its cache policy, and the global settings that shape keys. */
static uint64_t handoff__route_fp(const struct gw_config *cfg, size_t i)
{
    const struct gw_route *r = &cfg->routes[i];
    const struct gw_route_cache *c = &r->cache;
    if (!c->enabled)
        return 0;
    /* Keys of a route with vary: hold an HMAC of the header values. Without a configured secret
     * each worker draws its own: the old keys could never be found again, only take room. */
    if (c->vary.n > 0 && cfg->cache.key_secret_data == NULL)
        return 0;
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s|%d|%s|", r->match, r->kind, r->host ? r->host : "");
    handoff__strlist(&b, &r->methods);
    buf_printf(&b, "|%" PRIu64 "|%d|%" PRIu64 "|%" PRIu64 "|%d|", c->ttl_ms, c->override,
               c->stale_while_revalidate_ms, c->stale_if_error_ms, c->invalidate_self);
    handoff__strlist(&b, &c->invalidate);
    handoff__strlist(&b, &c->vary);
    handoff__strlist(&b, &c->ignore_query);
    buf_printf(&b, "|%d|", c->sort_query);
    handoff__strlist(&b, &c->statuses_str);
    buf_printf(&b, "|%" PRIu64 "|%" PRIu64 "|%d|%d", c->negative_ttl_ms, c->max_object_size,
               c->coalesce, c->allow_set_cookie);
    buf_printf(&b, "|%s", c->tag_header ? c->tag_header : ""); // tags kept, or left in the head
    buf_printf(&b, "|%d|%d|%" PRIu64 "|%" PRIu64, cfg->path_norm.merge_slashes,
               cfg->path_norm.reject_encoded_slash, cfg->cache.max_object_size,
               cfg->cache.max_stale_ms);
    if (c->vary.n > 0) // a new secret makes new keys
        buf_printf(&b, "|%016" PRIx64,
                   store_hash(cfg->cache.key_secret_data, cfg->cache.key_secret_len));
    uint64_t h = store_hash(buf_head(&b), buf_pending(&b));
    buf_deinit(&b);
    return h ? h : 1;
}

/* The key's method, Host and path ("GET <host><path>[?<query>]"), for matching it again. */
struct handoff_key {
    const struct gw_config *cfg;
    const char *method, *host;
    size_t method_len, host_len;
};

static int handoff__route_ok(void *arg, size_t i)
{
    const struct handoff_key *k = arg;
    const struct gw_route *gr = &k->cfg->routes[i];
    if (gr->methods.n > 0) {
        bool ok = false;
        for (size_t m = 0; m < gr->methods.n && !ok; m++)
            ok = strlen(gr->methods.v[m]) == k->method_len &&
                 memcmp(gr->methods.v[m], k->method, k->method_len) == 0;
        if (!ok)
            return 0;
    }
    if (gr->host != NULL) {
        size_t hl = k->host_len;
        const char *colon = memchr(k->host, ':', hl);
        if (colon != NULL && k->host[0] != '[')
            hl = (size_t)(colon - k->host);
        if (strlen(gr->host) != hl || !headers_name_eq(k->host, hl, gr->host))
            return 0;
    }
    return 1;
}

/* What a tag is computed from: the worker's routes and their fingerprints, computed once. */
struct handoff_tags {
    const struct gw_shared *sh;
    uint64_t *fp; /* per route */
};

static void handoff__tags_init(struct handoff_tags *t, const struct gw_shared *sh)
{
    t->sh = sh;
    t->fp = xcalloc(sh->cfg->nroutes ? sh->cfg->nroutes : 1, sizeof(*t->fp));
    for (size_t i = 0; i < sh->cfg->nroutes; i++)
        t->fp[i] = handoff__route_fp(sh->cfg, i);
}

static void handoff__tags_deinit(struct handoff_tags *t)
{
    free(t->fp);
    t->fp = NULL;
}

/* The tag of a key in this worker's configuration: its route's fingerprint, 0 when no cached
 * route owns it. */
static uint64_t handoff__tag(const struct handoff_tags *t, const char *key, size_t primary_len)
{
    const char *sp = memchr(key, ' ', primary_len);
    if (sp == NULL)
        return 0;
    const char *path;
    size_t plen;
    cache_key_path(key, primary_len, &path, &plen);
    struct handoff_key k = {
        .cfg = t->sh->cfg,
        .method = key,
        .method_len = (size_t)(sp - key),
        .host = sp + 1,
        .host_len = (size_t)(path - (sp + 1)),
    };
    int r = route_match_filtered(t->sh->routes, path, plen, handoff__route_ok, &k);
    return r < 0 ? 0 : t->fp[r];
}

static bool handoff__keep(void *arg, const char *key, size_t key_len, size_t primary_len,
                          uint64_t tag)
{
    (void)key_len;
    return tag != 0 && handoff__tag(arg, key, primary_len) == tag;
}

static int handoff__write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The snapshot being written: records go to the file a few MB at a time. */
struct handoff_w {
    struct gw_shared *sh;
    struct handoff_tags tags;
    int fd;
    int err;          /* errno of the first failed write, 0: none */
    uint64_t written; /* bytes in the file so far */
};

static uint64_t handoff__wtag(void *arg, const char *key, size_t key_len, size_t primary_len)
{
    (void)key_len;
    return handoff__tag(&((struct handoff_w *)arg)->tags, key, primary_len);
}

static void handoff__flush(void *arg, struct buf *out)
{
    struct handoff_w *w = arg;
    if (w->err == 0 && handoff__write_all(w->fd, buf_head(out), buf_pending(out)) == -1)
        w->err = errno ? errno : EIO;
    w->written += buf_pending(out);
    buf_reset(out);
}

#define HANDOFF_FLUSH_AT (4u << 20)

int64_t handoff_write(struct gw_shared *sh, int fd)
{
    uint64_t t0 = clock_now_us();
    struct handoff_w w = {.sh = sh, .fd = fd};
    handoff__tags_init(&w.tags, sh);
    if (ftruncate(fd, 0) == -1 || lseek(fd, 0, SEEK_SET) == -1)
        w.err = errno;
    struct buf b = BUF_INIT;
    buf_append_str(&b, HANDOFF_MAGIC);
    uint64_t len = 0;
    buf_append(&b, &len, sizeof(len));
    metrics_export(sh->metrics, &b);
    len = buf_pending(&b) - 8 - sizeof(len);
    memcpy(buf_head(&b) + 8, &len, sizeof(len));
    len = 0;
    buf_append(&b, &len, sizeof(len)); /* the cache part's length, written at the end */
    handoff__flush(&w, &b);
    uint64_t clen_at = w.written - sizeof(len);
    size_t entries = 0;
    if (sh->cache != NULL)
        entries = cache_export(sh->cache->cache, clock_now_ms(), clock_wall_ms(), handoff__wtag,
                               &w, &b, handoff__flush, HANDOFF_FLUSH_AT);
    handoff__flush(&w, &b);
    handoff__tags_deinit(&w.tags);
    len = w.written - clen_at - sizeof(len);
    if (w.err == 0 && pwrite(fd, &len, sizeof(len), (off_t)clen_at) != (ssize_t)sizeof(len))
        w.err = errno ? errno : EIO;
    /* the history: points keep their timestamps, the next worker's own follow them */
    uint64_t rlen = 0;
    buf_append(&b, &rlen, sizeof(rlen));
    if (sh->ring != NULL)
        statring_export(sh->ring, &b);
    rlen = buf_pending(&b) - sizeof(rlen);
    memcpy(buf_head(&b), &rlen, sizeof(rlen));
    handoff__flush(&w, &b);
    buf_deinit(&b);
    if (w.err != 0) {
        ag_log(AG_LOG_WARN, "hand-over to the next worker failed: %s (it starts with an empty "
                            "cache and counters from zero)", strerror(w.err));
        return -1;
    }
    ag_log(AG_LOG_INFO, "hand-over to the next worker: %zu cache entries, the counters and the "
                        "history, %llu bytes in %.1f ms", entries, (unsigned long long)w.written,
           (double)(clock_now_us() - t0) / 1000.0);
    return (int64_t)w.written;
}

void handoff_write_final(struct gw_shared *sh, int fd)
{
    if (fd < 0)
        return;
    struct buf b = BUF_INIT;
    buf_append_str(&b, HANDOFF_MAGIC_WIP);
    uint64_t len = 0;
    buf_append(&b, &len, sizeof(len));
    metrics_export(sh->metrics, &b);
    len = buf_pending(&b) - 8 - sizeof(len);
    memcpy(buf_head(&b) + 8, &len, sizeof(len));
    /* the magic goes last: a reader never takes a half-written file for the final totals */
    if (ftruncate(fd, 0) == -1 || pwrite(fd, buf_head(&b), buf_pending(&b), 0) !=
                                      (ssize_t)buf_pending(&b) ||
        pwrite(fd, HANDOFF_MAGIC_FINAL, 8, 0) != 8)
        ag_log(AG_LOG_WARN, "final counters for the next worker not written: %s",
               strerror(errno));
    buf_deinit(&b);
}

struct handoff *handoff_read(struct gw_shared *sh, int fd, uint64_t len)
{
    if (fd < 0)
        return NULL;
    struct handoff *h = xcalloc(1, sizeof(*h));
    h->sh = sh;
    h->fd = fd;
    h->base = metrics_slot_get(sh->metrics);
    h->since_ms = clock_now_ms();
    if (len < 8 + 16)
        return h;
    uint64_t t0 = clock_now_us();
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
        ag_log(AG_LOG_WARN, "hand-over from the previous worker unreadable: %s", strerror(errno));
        return h;
    }
    const char *p = map;
    size_t n = (size_t)len;
    if (memcmp(p, HANDOFF_MAGIC, 8) != 0) {
        munmap(map, len);
        return h; /* not written yet, or the final totals already: handoff_poll takes those */
    }
    p += 8;
    n -= 8;
    uint64_t mlen;
    memcpy(&mlen, p, sizeof(mlen));
    p += sizeof(mlen);
    n -= sizeof(mlen);
    size_t series = 0, entries = 0;
    int points = 0;
    if (mlen <= n) {
        series = metrics_import(sh->metrics, h->base, p, (size_t)mlen, false);
        p += mlen;
        n -= (size_t)mlen;
    } else {
        n = 0;
    }
    uint64_t clen = 0;
    if (n >= sizeof(clen)) {
        memcpy(&clen, p, sizeof(clen));
        p += sizeof(clen);
        n -= sizeof(clen);
    }
    if (clen <= n && clen > 0 && sh->cache != NULL) {
        struct handoff_tags tags;
        handoff__tags_init(&tags, sh);
        entries = cache_import(sh->cache->cache, p, (size_t)clen, handoff__keep, &tags,
                               clock_now_ms(), clock_wall_ms());
        handoff__tags_deinit(&tags);
    }
    if (clen <= n) {
        p += clen;
        n -= (size_t)clen;
    } else {
        n = 0;
    }
    uint64_t rlen = 0;
    if (n >= sizeof(rlen)) {
        memcpy(&rlen, p, sizeof(rlen));
        p += sizeof(rlen);
        n -= sizeof(rlen);
    }
    if (rlen > 0 && rlen <= n && sh->ring != NULL) {
        points = statring_import(sh->ring, p, (size_t)rlen);
        if (points < 0) {
            ag_log(AG_LOG_WARN, "hand-over from the previous worker: history unreadable, "
                                "/stats/history starts empty");
            points = 0;
        }
    }
    munmap(map, len);
    ag_log(AG_LOG_INFO, "hand-over from the previous worker: %zu counter series, %zu cache "
                        "entries and %d seconds of history carried in %.1f ms", series, entries,
           points,
           (double)(clock_now_us() - t0) / 1000.0);
    return h;
}

void handoff_poll(struct handoff *h, uint64_t give_up_ms)
{
    if (h == NULL || h->done)
        return;
    char magic[8];
    uint64_t mlen = 0;
    bool final = pread(h->fd, magic, 8, 0) == 8 && memcmp(magic, HANDOFF_MAGIC_FINAL, 8) == 0 &&
                 pread(h->fd, &mlen, sizeof(mlen), 8) == (ssize_t)sizeof(mlen) &&
                 mlen < ((uint64_t)1 << 30);
    if (!final) {
        if (clock_now_ms() - h->since_ms > give_up_ms) {
            h->done = true;
            close(h->fd);
            h->fd = -1;
        }
        return;
    }
    char *p = xmalloc(mlen ? (size_t)mlen : 1);
    if (pread(h->fd, p, (size_t)mlen, 16) == (ssize_t)mlen) {
        size_t series = metrics_import(h->sh->metrics, h->base, p, (size_t)mlen, true);
        ag_log(AG_LOG_INFO, "the previous worker's final counters carried (%zu series)", series);
    }
    free(p);
    h->done = true;
    close(h->fd);
    h->fd = -1;
}

void handoff_destroy(struct handoff *h)
{
    if (h == NULL)
        return;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    free(h);
}
