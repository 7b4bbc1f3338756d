/* The cache façade: keys and lookups (with Vary markers), entries built from streamed responses,
 * the bytes a hit sends, 304s, refreshes by 304, and invalidation by path generation. */
#include "cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "http/date.h"
#include "http/h1write.h"
#include "http/headers.h"
#include "http/url.h"

/* Path generations: a fixed table of counters indexed by a hash of the path. An entry remembers
 * the generation of its path when its fetch started; bumping the counter makes every entry of the
 * path (every query string, every variant, every host) unusable at once, without walking the
 * store. Two paths that share a slot invalidate each other: harmless (an extra miss), and rare
 * with 64k slots. */
#define CACHE_GEN_SLOTS 65536u

struct cache {
    struct store *store;
    uint64_t keep_ms;
    _Atomic uint64_t purges;
    _Atomic uint64_t gen[CACHE_GEN_SLOTS];
};

static const char *const cache_status_names[CACHE_STATUS_COUNT] = {
    [CACHE_NONE] = "NONE", [CACHE_HIT] = "HIT",         [CACHE_STALE] = "STALE",
    [CACHE_MISS] = "MISS", [CACHE_EXPIRED] = "EXPIRED", [CACHE_BYPASS] = "BYPASS",
};

const char *cache_status_name(enum cache_status s)
{
    return s < CACHE_STATUS_COUNT ? cache_status_names[s] : "NONE";
}

struct cache *cache_create(uint64_t memory, unsigned nshards, uint64_t keep_ms)
{
    struct cache *c = xcalloc(1, sizeof(*c));
    c->store = store_create(memory, nshards);
    c->keep_ms = keep_ms;
    for (size_t i = 0; i < CACHE_GEN_SLOTS; i++)
        atomic_init(&c->gen[i], 0);
    return c;
}

void cache_destroy(struct cache *c)
{
    if (c == NULL)
        return;
    store_destroy(c->store);
    free(c);
}

struct store *cache_store(struct cache *c)
{
    return c->store;
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
    store_stats(c->store, &out->store);
    out->purges = atomic_load_explicit(&c->purges, memory_order_relaxed);
}

void cache_release(struct cache *c, struct store_obj *o)
{
    if (o != NULL)
        store_unref(c->store, o);
}

/* ---- path generations ---- */

static _Atomic uint64_t *cache__gen_slot(struct cache *c, const char *path, size_t len)
{
    return &c->gen[store_hash(path, len) & (CACHE_GEN_SLOTS - 1)];
}

uint64_t cache_path_gen(struct cache *c, const char *path, size_t len)
{
    return atomic_load_explicit(cache__gen_slot(c, path, len), memory_order_acquire);
}

/* The path part of a primary key "GET <host><path>[?<query>]". */
static void cache__key_path(const char *key, size_t primary_len, const char **path, size_t *len)
{
    size_t i = 4;
    while (i < primary_len && key[i] != '/')
        i++;
    size_t s = i;
    while (i < primary_len && key[i] != '?')
        i++;
    *path = key + s;
    *len = i - s;
}

/* ---- lookup ---- */

int cache_lookup(struct cache *c, const struct policy_conf *pc, const struct h1_request *req,
                 const struct policy_req *preq, uint64_t now_ms, struct buf *key,
                 struct cache_found *f)
{
    memset(f, 0, sizeof(*f));
    buf_reset(key);
    long primary = policy_build_key(pc, req, NULL, 0, key);
    if (primary < 0)
        return -1;
    f->primary_len = (size_t)primary;
    f->base_len = f->key_len = key->len;
    const char *path;
    size_t plen;
    cache__key_path(key->data, f->primary_len, &path, &plen);
    f->path_gen = cache_path_gen(c, path, plen);
    struct store_obj *o = store_lookup(c->store, now_ms, key->data, key->len, f->primary_len);
    if (o != NULL && ((const struct cache_entry *)o->payload)->marker) {
        /* The origin varies this URI on request headers: rebuild the key with their values. */
        const struct cache_entry *m = o->payload;
        buf_reset(key);
        policy_build_key(pc, req, m->vary, m->vary_len, key);
        f->key_len = key->len;
        store_unref(c->store, o);
        o = store_lookup(c->store, now_ms, key->data, key->len, f->primary_len);
    }
    if (o == NULL)
        return 0;
    const struct cache_entry *e = o->payload;
    unsigned char tagged = atomic_load_explicit(&e->tag_purged, memory_order_acquire);
    if (e->marker || e->path_gen != f->path_gen || tagged == CACHE_TAG_GONE) {
        /* invalidated since it was fetched: free it now, it can never be served */
        if (!e->marker)
            store_remove(c->store, o);
        /* its variants too (a remote purge only bumped the generation): everything under this
         * primary key is of the same path, so of the same old generation unless stored since */
        if (!e->marker && atomic_load_explicit(&e->has_variants, memory_order_acquire))
            store_purge_primary(c->store, o->key, o->primary_len);
        store_unref(c->store, o);
        return 0;
    }
    (void)preq;
    f->obj = o;
    f->e = e;
    f->age_ms = policy_age_ms(e->fresh.initial_age_ms, e->stored_ms, now_ms);
    if (tagged == CACHE_TAG_STALE) {
        /* soft-purged: stale now; its windows count from the purge's point of view as from age */
        struct policy_fresh stale = e->fresh;
        stale.lifetime_ms = 0;
        f->use = policy_usable(&stale, f->age_ms, preq);
    } else {
        f->use = policy_usable(&e->fresh, f->age_ms, preq);
    }
    return 0;
}

/* ---- conditionals ---- */

/* Weak comparison of two entity-tags (RFC 9110 §8.8.3.2): equal once "W/" is ignored. */
static bool cache__etag_weak_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen >= 2 && a[0] == 'W' && a[1] == '/') {
        a += 2;
        alen -= 2;
    }
    if (blen >= 2 && b[0] == 'W' && b[1] == '/') {
        b += 2;
        blen -= 2;
    }
    return alen == blen && alen > 0 && memcmp(a, b, alen) == 0;
}

static bool cache__inm_match(const struct cache_entry *e, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        if (i < n && v[i] == '*')
            return true;
        if (i + 1 < n && v[i] == 'W' && v[i + 1] == '/')
            i += 2;
        if (i < n && v[i] == '"') {
            i++;
            while (i < n && v[i] != '"')
                i++;
            if (i < n)
                i++;
        } else {
            while (i < n && v[i] != ',')
                i++;
        }
        if (e->etag != NULL && cache__etag_weak_eq(v + s, i - s, e->etag, e->etag_len))
            return true;
    }
    return false;
}

bool cache_conditional_match(const struct cache_entry *e, const struct h1_request *req)
{
    bool has_inm = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (h->name_len == 13 && headers_name_eq(h->name, 13, "if-none-match")) {
            has_inm = true;
            if (cache__inm_match(e, h->value, h->value_len))
                return true;
        }
    }
    if (has_inm)
        return false; /* If-Modified-Since is ignored when If-None-Match is present */
    const struct h1_header *ims = headers_find(req->headers, req->nheaders, "if-modified-since");
    int64_t t;
    if (ims == NULL || http_date_parse(ims->value, ims->value_len, &t) != 0)
        return false;
    int64_t lm = e->last_modified != INT64_MIN ? e->last_modified : e->date;
    return lm != INT64_MIN && lm <= t;
}

/* ---- bytes of a hit ---- */

static size_t cache__u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

size_t cache_hit_block(char *out, uint64_t age_ms, enum cache_status st, const char *conn_hdr)
{
    char *p = out;
    memcpy(p, "Age: ", 5);
    p += 5;
    p += cache__u64(p, age_ms / 1000);
    memcpy(p, "\r\nX-Cache: ", 11);
    p += 11;
    const char *s = cache_status_name(st);
    size_t sl = strlen(s);
    memcpy(p, s, sl);
    p += sl;
    memcpy(p, "\r\n", 2);
    p += 2;
    if (conn_hdr != NULL) {
        size_t cl = strlen(conn_hdr);
        memcpy(p, conn_hdr, cl);
        p += cl;
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    return (size_t)(p - out);
}

/* Parses the stored head of <e> (status line and headers) into <res>/<hdrs>. The bytes are copied
 * into <tmp> (with the final blank line the parser needs). Returns 0 or -1. */
static int cache__parse_head(const struct cache_entry *e, struct buf *tmp, struct h1_response *res,
                             struct h1_header *hdrs, size_t max)
{
    buf_reset(tmp);
    buf_append(tmp, e->data, e->head_len);
    buf_append(tmp, "\r\n", 2);
    struct h1_limits lim = {.max_request_line = 0, .max_head = tmp->len + 1, .max_headers = max};
    return h1_parse_response(tmp->data, tmp->len, res, hdrs, max, &lim, true) > 0 ? 0 : -1;
}

bool cache_field_in_304(const struct cache_entry *e, const struct h1_field_ref *f)
{
    static const char *const keep[] = {
        "cache-control", "content-location", "date", "etag", "expires",
        "vary",          "last-modified",    NULL};
    const char *name = e->data + f->name_off;
    for (size_t k = 0; keep[k] != NULL; k++)
        if (strlen(keep[k]) == f->name_len && headers_name_eq(name, f->name_len, keep[k]))
            return true;
    return false;
}

void cache_write_304(const struct cache_entry *e, uint64_t age_ms, enum cache_status st,
                     const char *conn_hdr, struct buf *out)
{
    buf_append_str(out, "HTTP/1.1 304 Not Modified\r\n");
    for (size_t i = 0; i < e->nfields; i++) {
        const struct h1_field_ref *f = &e->fields[i];
        if (!cache_field_in_304(e, f))
            continue;
        buf_append(out, e->data + f->name_off, f->name_len);
        buf_append(out, ": ", 2);
        buf_append(out, e->data + f->value_off, f->value_len);
        buf_append(out, "\r\n", 2);
    }
    char block[288]; // conn_hdr may carry a filter's lines too (cachehook.c)
    size_t n = cache_hit_block(block, age_ms, st, conn_hdr);
    buf_append(out, block, n);
}

/* The bytes <e> holds, as the store's memory limit counts them: its head and body, and the
 * field index beside them (about as large as the head again: refs and lower-case names). */
static size_t cache__size(const struct cache_entry *e)
{
    return e->head_len + e->body_len + e->index_bytes;
}

/* Indexes the fields of <e>'s stored head (the status line skipped; a line without a colon, or
 * one that would not fit the index's offsets, is left out). */
static void cache__index(struct cache_entry *e)
{
    size_t n = 0;
    const char *p = e->data, *end = e->data + e->head_len;
    for (const char *q = p; q < end; q++)
        n += *q == '\n';
    /* one allocation: the index, then the lower-case names (at most the head's bytes) */
    e->index_bytes = n > 0 ? n * sizeof(*e->fields) + e->head_len : 0;
    e->fields = n > 0 ? xmalloc(e->index_bytes) : NULL;
    e->lnames = n > 0 ? (char *)(e->fields + n) : NULL;
    e->nfields = 0;
    uint32_t lused = 0;
    if (e->head_len > UINT32_MAX)
        return;
    const char *eol = memchr(p, '\n', (size_t)(end - p)); // the status line
    p = eol != NULL ? eol + 1 : end;
    while (p < end && e->nfields < n) {
        eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol != NULL ? eol : end;
        const char *ve = le > p && le[-1] == '\r' ? le - 1 : le;
        const char *colon = memchr(p, ':', (size_t)(ve - p));
        if (colon != NULL && colon > p) {
            const char *v = colon + 1;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            e->fields[e->nfields++] = (struct h1_field_ref){
                (uint32_t)(p - e->data), (uint32_t)(colon - p), (uint32_t)(v - e->data),
                (uint32_t)(ve - v), lused};
            for (const char *c = p; c < colon; c++)
                e->lnames[lused++] = (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c;
        }
        p = le + 1;
    }
}

/* ---- filling ---- */

struct cache_fill {
    struct buf head; /* status line + kept headers */
    struct buf body;
    size_t max;
    struct buf key; /* full key */
    size_t primary_len, base_len;
    char *vary; /* the origin's Vary names when the key carries them */
    size_t vary_len;
    struct policy_fresh fresh;
    int status;
    uint64_t stored_ms;
    uint64_t path_gen;
    int64_t date, last_modified;
    size_t etag_off, etag_len; /* in head; etag_len 0: none */
    bool has_etag;
    const char *tag_header; /* policy_conf.tag_header */
    struct buf tags;        /* its values, space-separated */
};

/* Response headers never stored: hop-by-hop ones, the framing (we store a Content-Length), Age
 * (recomputed per hit), our own X-Cache, and Set-Cookie: a response that carries one is stored
 * only when the route allows it (policy_conf.allow_set_cookie), and then the cookie goes to the
 * one client whose request filled the entry, never to the clients served from it. */
static bool cache__skip_stored(const struct h1_header *hs, size_t n, const struct h1_header *h)
{
    if (headers_is_hop_by_hop(h->name, h->name_len))
        return true;
    if ((h->name_len == 14 && headers_name_eq(h->name, 14, "content-length")) ||
        (h->name_len == 3 && headers_name_eq(h->name, 3, "age")) ||
        (h->name_len == 7 && headers_name_eq(h->name, 7, "x-cache")) ||
        (h->name_len == 17 && headers_name_eq(h->name, 17, "surrogate-control")) ||
        (h->name_len == 10 && headers_name_eq(h->name, 10, "set-cookie")))
        return true;
    return headers_find(hs, n, "connection") != NULL &&
           headers_listed_in_connection(hs, n, h->name, h->name_len);
}

static int64_t cache__date(const struct h1_header *hs, size_t n, const char *name)
{
    const struct h1_header *h = headers_find(hs, n, name);
    int64_t t;
    if (h == NULL || http_date_parse(h->value, h->value_len, &t) != 0)
        return INT64_MIN;
    return t;
}

/* The origin's Vary field names, all Vary lines joined with ",". */
static void cache__vary_names(const struct h1_response *res, struct buf *out)
{
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (h->name_len == 4 && headers_name_eq(h->name, 4, "vary") && h->value_len > 0) {
            if (out->len > 0)
                buf_append(out, ",", 1);
            buf_append(out, h->value, h->value_len);
        }
    }
}

/* Writes the stored head of <res> into <f>: status line and kept headers, noting the validators. */
static void cache__fill_head(struct cache_fill *f, const struct h1_response *res,
                             const char *date_if_missing)
{
    struct buf *b = &f->head;
    buf_printf(b, "HTTP/1.1 %03d ", res->status);
    if (res->reason_len > 0)
        buf_append(b, res->reason, res->reason_len);
    else
        buf_append_str(b, h1_status_reason(res->status));
    buf_append(b, "\r\n", 2);
    bool has_date = false;
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (f->tag_header != NULL && h->name_len == strlen(f->tag_header) &&
            headers_name_eq(h->name, h->name_len, f->tag_header)) {
            /* kept beside the entry, never sent to a client */
            if (f->tags.len > 0)
                buf_append(&f->tags, " ", 1);
            buf_append(&f->tags, h->value, h->value_len);
            continue;
        }
        if (cache__skip_stored(res->headers, res->nheaders, h))
            continue;
        if (h->name_len == 4 && headers_name_eq(h->name, 4, "date"))
            has_date = true;
        buf_append(b, h->name, h->name_len);
        buf_append(b, ": ", 2);
        if (!f->has_etag && h->name_len == 4 && headers_name_eq(h->name, 4, "etag")) {
            f->has_etag = true;
            f->etag_off = b->len;
            f->etag_len = h->value_len;
        }
        buf_append(b, h->value, h->value_len);
        buf_append(b, "\r\n", 2);
    }
    if (!has_date && date_if_missing != NULL) {
        buf_append_str(b, "Date: ");
        buf_append_str(b, date_if_missing);
        buf_append(b, "\r\n", 2);
    }
}

struct cache_fill *cache_fill_begin(struct cache *c, const struct policy_conf *pc,
                                    const struct h1_request *req, const struct policy_req *preq,
                                    const struct h1_response *res, int64_t request_wall_s,
                                    int64_t response_wall_s, uint64_t now_ms, uint64_t path_gen,
                                    size_t max_size, const char *date_if_missing, const char **why)
{
    (void)c;
    if (req->method_id != H1_M_GET) {
        *why = "method";
        return NULL;
    }
    if (res->status < 200 || res->status == 304 || res->status == 206) {
        *why = "status";
        return NULL;
    }
    if (res->body == H1_BODY_LENGTH && res->content_length > max_size) {
        *why = "size";
        return NULL;
    }
    struct policy_fresh fresh;
    const char *no = policy_storable(pc, req, preq, res, request_wall_s, response_wall_s, &fresh);
    if (no != NULL) {
        *why = no;
        return NULL;
    }
    struct cache_fill *f = xcalloc(1, sizeof(*f));
    buf_init(&f->head);
    buf_init(&f->body);
    buf_init(&f->key);
    buf_init(&f->tags);
    f->tag_header = pc->tag_header;
    f->max = max_size;
    f->fresh = fresh;
    f->status = res->status;
    f->stored_ms = now_ms;
    f->path_gen = path_gen;
    long primary = policy_build_key(pc, req, NULL, 0, &f->key);
    if (primary < 0) {
        cache_fill_abort(f);
        *why = "key";
        return NULL;
    }
    f->primary_len = (size_t)primary;
    f->base_len = f->key.len;
    struct buf vary = BUF_INIT;
    cache__vary_names(res, &vary);
    if (vary.len > 0) {
        buf_reset(&f->key);
        policy_build_key(pc, req, vary.data, vary.len, &f->key);
        if (f->key.len != f->base_len) {
            f->vary = xmalloc(vary.len);
            memcpy(f->vary, vary.data, vary.len);
            f->vary_len = vary.len;
        }
    }
    buf_deinit(&vary);
    f->date = cache__date(res->headers, res->nheaders, "date");
    if (f->date == INT64_MIN)
        f->date = response_wall_s;
    f->last_modified = cache__date(res->headers, res->nheaders, "last-modified");
    cache__fill_head(f, res, date_if_missing);
    if (f->head.len > max_size) {
        cache_fill_abort(f);
        *why = "size";
        return NULL;
    }
    if (res->body == H1_BODY_LENGTH)
        buf_reserve(&f->body, (size_t)res->content_length);
    return f;
}

int cache_fill_body(struct cache_fill *f, const char *p, size_t n)
{
    if (f->head.len + f->body.len + n > f->max)
        return -1;
    buf_append(&f->body, p, n);
    return 0;
}

void cache_fill_abort(struct cache_fill *f)
{
    if (f == NULL)
        return;
    buf_deinit(&f->head);
    buf_deinit(&f->body);
    buf_deinit(&f->key);
    buf_deinit(&f->tags);
    free(f->vary);
    free(f);
}

/* When the store may drop an entry: freshness left + the longest window it can still serve in. */
static uint64_t cache__expire(const struct cache *c, const struct policy_fresh *fr, uint64_t now_ms)
{
    uint64_t left = fr->lifetime_ms > fr->initial_age_ms ? fr->lifetime_ms - fr->initial_age_ms : 0;
    uint64_t grace = fr->swr_ms > fr->sie_ms ? fr->swr_ms : fr->sie_ms;
    /* kept past its windows while it can still be refreshed by a 304 */
    if ((fr->has_validator || fr->no_cache) && c->keep_ms > grace)
        grace = c->keep_ms;
    if (grace == 0 && left == 0)
        grace = 1; /* stored for the requests already waiting on it (coalescing) */
    return now_ms + left + grace;
}

static void cache__free_entry(void *p)
{
    struct cache_entry *e = p;
    free(e->vary);
    free(e->tags);
    free(e->fields);
    free(e);
}

/* <e>'s tags: <n> bytes of space-separated names (commas too), kept single-spaced. */
static void cache__set_tags(struct cache_entry *e, const char *p, size_t n)
{
    free(e->tags);
    e->tags = NULL;
    e->tags_len = 0;
    if (n == 0)
        return;
    e->tags = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        bool sep = p[i] == ' ' || p[i] == ',' || p[i] == '\t';
        if (!sep)
            e->tags[o++] = p[i];
        else if (o > 0 && e->tags[o - 1] != ' ')
            e->tags[o++] = ' ';
    }
    while (o > 0 && e->tags[o - 1] == ' ')
        o--;
    e->tags[o] = '\0';
    e->tags_len = o;
    if (o == 0) {
        free(e->tags);
        e->tags = NULL;
    }
}

bool cache_entry_has_tag(const struct cache_entry *e, const char *tag, size_t len)
{
    const char *p = e->tags, *end = e->tags + e->tags_len;
    if (p == NULL || len == 0)
        return false;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t n = sp != NULL ? (size_t)(sp - p) : (size_t)(end - p);
        if (n == len && memcmp(p, tag, len) == 0)
            return true;
        p += n + 1;
    }
    return false;
}

static _Atomic uint64_t cache__serials = 1;

/* One allocation: the struct, then the data bytes. */
static struct cache_entry *cache__entry_alloc(size_t data_len)
{
    struct cache_entry *e = xcalloc(1, sizeof(*e) + data_len + 1);
    e->data = (char *)(e + 1);
    e->serial = atomic_fetch_add_explicit(&cache__serials, 1, memory_order_relaxed);
    e->body_id = e->serial;
    e->last_modified = INT64_MIN;
    e->date = INT64_MIN;
    return e;
}

int cache_fill_end(struct cache *c, struct cache_fill *f, uint64_t now_ms)
{
    struct store_obj *o = cache_fill_end_ref(c, f, now_ms);
    if (o == NULL)
        return -1;
    store_unref(c->store, o);
    return 0;
}

struct store_obj *cache_fill_end_ref(struct cache *c, struct cache_fill *f, uint64_t now_ms)
{
    char cl[48] = "";
    int cln = 0;
    if (f->status != 204)
        cln = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", f->body.len);
    size_t head_len = f->head.len + (size_t)cln;
    struct cache_entry *e = cache__entry_alloc(head_len + f->body.len);
    memcpy(e->data, f->head.data, f->head.len);
    memcpy(e->data + f->head.len, cl, (size_t)cln);
    if (f->body.len)
        memcpy(e->data + head_len, f->body.data, f->body.len);
    e->head_len = head_len;
    e->body_len = f->body.len;
    cache__index(e);
    e->status = f->status;
    e->stored_ms = f->stored_ms;
    e->fresh = f->fresh;
    e->path_gen = f->path_gen;
    if (f->has_etag) {
        e->etag = e->data + f->etag_off;
        e->etag_len = f->etag_len;
    }
    e->last_modified = f->last_modified;
    e->date = f->date;
    e->varied = f->vary != NULL;
    e->base_len = f->base_len;
    if (f->vary != NULL) {
        e->vary = xmalloc(f->vary_len);
        memcpy(e->vary, f->vary, f->vary_len);
        e->vary_len = f->vary_len;
    }
    cache__set_tags(e, f->tags.data, f->tags.len);
    uint64_t expire = cache__expire(c, &f->fresh, now_ms);
    if (f->vary != NULL) {
        struct cache_entry *m = cache__entry_alloc(0);
        m->marker = true;
        m->vary = f->vary;
        m->vary_len = f->vary_len;
        f->vary = NULL;
        /* the marker outlives its variants a little: they come and go under it */
        struct store_obj *mo =
            store_insert(c->store, now_ms, f->key.data, f->base_len, f->primary_len, m,
                         m->vary_len + 64, cache__free_entry, expire + 60000);
        if (mo == NULL)
            cache__free_entry(m);
        else
            store_unref(c->store, mo);
    }
    struct store_obj *o = store_insert(c->store, now_ms, f->key.data, f->key.len, f->primary_len, e,
                                       cache__size(e), cache__free_entry, expire);
    if (o == NULL)
        cache__free_entry(e);
    cache_fill_abort(f);
    return o;
}

/* ---- serialized entries ---- */

#define CACHE_BLOB_MAGIC 0x31434741u /* "AGC1" */

struct cache__blob {
    uint32_t magic;
    uint32_t status;
    uint64_t head_len, body_len;
    uint64_t stored_wall_ms;
    uint64_t lifetime_ms, initial_age_ms, swr_ms, sie_ms;
    int64_t last_modified, date;
    uint64_t etag_off, etag_len;
    uint8_t no_cache, must_revalidate, has_validator, pad;
    uint32_t tags_len; /* the entry's tags follow its body (0 in blobs of older versions) */
};

void cache_entry_serialize(const struct cache_entry *e, uint64_t now_ms, uint64_t wall_ms,
                           struct buf *out)
{
    struct cache__blob b;
    memset(&b, 0, sizeof(b));
    b.magic = CACHE_BLOB_MAGIC;
    b.status = (uint32_t)e->status;
    b.head_len = e->head_len;
    b.body_len = e->body_len;
    uint64_t resident = now_ms > e->stored_ms ? now_ms - e->stored_ms : 0;
    b.stored_wall_ms = wall_ms > resident ? wall_ms - resident : 0;
    b.lifetime_ms = e->fresh.lifetime_ms;
    b.initial_age_ms = e->fresh.initial_age_ms;
    b.swr_ms = e->fresh.swr_ms;
    b.sie_ms = e->fresh.sie_ms;
    b.last_modified = e->last_modified;
    b.date = e->date;
    if (e->etag != NULL) {
        b.etag_off = (uint64_t)(e->etag - e->data);
        b.etag_len = e->etag_len;
    }
    b.no_cache = e->fresh.no_cache;
    b.must_revalidate = e->fresh.must_revalidate;
    b.has_validator = e->fresh.has_validator;
    b.tags_len = (uint32_t)e->tags_len;
    buf_append(out, &b, sizeof(b));
    buf_append(out, e->data, e->head_len + e->body_len);
    if (e->tags_len > 0)
        buf_append(out, e->tags, e->tags_len);
}

static int cache__blob_read(const char *blob, size_t len, struct cache__blob *b)
{
    if (len < sizeof(*b))
        return -1;
    memcpy(b, blob, sizeof(*b));
    if (b->magic != CACHE_BLOB_MAGIC || b->head_len > len || b->body_len > len ||
        b->tags_len > len || sizeof(*b) + b->head_len + b->body_len + b->tags_len != len ||
        b->etag_off + b->etag_len > b->head_len)
        return -1;
    return 0;
}

uint64_t cache_serialized_stored_wall(const char *blob, size_t len)
{
    struct cache__blob b;
    return cache__blob_read(blob, len, &b) == 0 ? b.stored_wall_ms : 0;
}

struct store_obj *cache_insert_serialized(struct cache *c, const char *blob, size_t len,
                                          const char *key, size_t key_len, size_t primary_len,
                                          uint64_t path_gen, uint64_t now_ms, uint64_t wall_ms)
{
    struct cache__blob b;
    if (cache__blob_read(blob, len, &b) != 0)
        return NULL;
    struct cache_entry *e = cache__entry_alloc(b.head_len + b.body_len);
    memcpy(e->data, blob + sizeof(b), b.head_len + b.body_len);
    e->head_len = b.head_len;
    e->body_len = b.body_len;
    cache__index(e);
    e->status = (int)b.status;
    uint64_t elapsed = wall_ms > b.stored_wall_ms ? wall_ms - b.stored_wall_ms : 0;
    e->stored_ms = now_ms > elapsed ? now_ms - elapsed : 0;
    if (now_ms <= elapsed) /* a young process: carry the difference in the initial age */
        b.initial_age_ms += elapsed - now_ms;
    e->fresh.lifetime_ms = b.lifetime_ms;
    e->fresh.initial_age_ms = b.initial_age_ms;
    e->fresh.swr_ms = b.swr_ms;
    e->fresh.sie_ms = b.sie_ms;
    e->fresh.no_cache = b.no_cache;
    e->fresh.must_revalidate = b.must_revalidate;
    e->fresh.has_validator = b.has_validator;
    e->path_gen = path_gen;
    e->last_modified = b.last_modified;
    e->date = b.date;
    cache__set_tags(e, blob + sizeof(b) + b.head_len + b.body_len, b.tags_len);
    if (b.etag_len > 0) {
        e->etag = e->data + b.etag_off;
        e->etag_len = b.etag_len;
    }
    /* expiry counted from when it was stored at the origin side */
    uint64_t expire = cache__expire(c, &e->fresh, e->stored_ms);
    if (expire <= now_ms) {
        cache__free_entry(e);
        return NULL;
    }
    struct store_obj *o = store_insert(c->store, now_ms, key, key_len, primary_len, e,
                                       cache__size(e), cache__free_entry, expire);
    if (o == NULL)
        cache__free_entry(e);
    return o;
}

uint64_t cache_entry_ttl_ms(const struct cache_entry *e, uint64_t now_ms)
{
    uint64_t age = policy_age_ms(e->fresh.initial_age_ms, e->stored_ms, now_ms);
    uint64_t left = e->fresh.lifetime_ms > age ? e->fresh.lifetime_ms - age : 0;
    uint64_t grace = e->fresh.swr_ms > e->fresh.sie_ms ? e->fresh.swr_ms : e->fresh.sie_ms;
    return left + grace;
}

void cache_insert_marker(struct cache *c, const char *key, size_t base_len, size_t primary_len,
                         const char *names, size_t len, uint64_t now_ms, uint64_t ttl_ms)
{
    struct cache_entry *m = cache__entry_alloc(0);
    m->marker = true;
    m->vary = xmalloc(len ? len : 1);
    memcpy(m->vary, names, len);
    m->vary_len = len;
    struct store_obj *o = store_insert(c->store, now_ms, key, base_len, primary_len, m, len + 64,
                                       cache__free_entry, now_ms + ttl_ms);
    if (o == NULL)
        cache__free_entry(m);
    else
        store_unref(c->store, o);
}

void cache_key_path(const char *key, size_t primary_len, const char **path, size_t *len)
{
    cache__key_path(key, primary_len, path, len);
}

/* Fields a 304 never changes in the stored response: they describe the stored representation
 * (its framing, coding, range, digest and identity), which the 304 did not send. */
static bool cache__no_update(const struct h1_header *h)
{
    static const char *const keep[] = {
        "content-length", "content-encoding", "content-range", "content-md5", "etag", NULL};
    for (size_t k = 0; keep[k] != NULL; k++)
        if (h->name_len == strlen(keep[k]) && headers_name_eq(h->name, h->name_len, keep[k]))
            return true;
    return false;
}

struct store_obj *cache_refresh_304(struct cache *c, const struct policy_conf *pc,
                                    const struct h1_request *req, const struct policy_req *preq,
                                    struct store_obj *old, const struct h1_response *res,
                                    int64_t request_wall_s, int64_t response_wall_s,
                                    uint64_t now_ms, const char *key, size_t key_len,
                                    size_t primary_len)
{
    const struct cache_entry *oe = old->payload;
    struct buf tmp = BUF_INIT, merged = BUF_INIT;
    struct h1_header ohdrs[100];
    struct h1_response ores;
    struct store_obj *out = NULL;
    if (cache__parse_head(oe, &tmp, &ores, ohdrs, 100) != 0)
        goto done;
    /* a 304 that sets a cookie refreshes nothing unless the route stores such responses (the
     * merge below never keeps the cookie) */
    if (!pc->allow_set_cookie && headers_find(res->headers, res->nheaders, "set-cookie") != NULL)
        goto done;
    /* RFC 9111 §4.3.4: the 304's fields replace the stored ones of the same name; the framing of
     * the stored response stays. */
    buf_printf(&merged, "HTTP/1.1 %03d ", ores.status);
    buf_append(&merged, ores.reason, ores.reason_len);
    buf_append(&merged, "\r\n", 2);
    for (size_t i = 0; i < ores.nheaders; i++) {
        const struct h1_header *h = &ores.headers[i];
        if (!cache__no_update(h)) {
            char name[128];
            size_t nl = h->name_len < sizeof(name) - 1 ? h->name_len : sizeof(name) - 1;
            memcpy(name, h->name, nl);
            name[nl] = '\0';
            const struct h1_header *nh = headers_find(res->headers, res->nheaders, name);
            if (nh != NULL && !cache__skip_stored(res->headers, res->nheaders, nh))
                continue;
        }
        buf_append(&merged, h->name, h->name_len);
        buf_append(&merged, ": ", 2);
        buf_append(&merged, h->value, h->value_len);
        buf_append(&merged, "\r\n", 2);
    }
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct h1_header *h = &res->headers[i];
        if (cache__skip_stored(res->headers, res->nheaders, h) || cache__no_update(h))
            continue;
        buf_append(&merged, h->name, h->name_len);
        buf_append(&merged, ": ", 2);
        buf_append(&merged, h->value, h->value_len);
        buf_append(&merged, "\r\n", 2);
    }
    size_t head_len = merged.len;
    buf_append(&merged, "\r\n", 2);
    /* Re-parse the merged head: the freshness of the refreshed entry comes from it. */
    struct h1_header mhdrs[100];
    struct h1_response mres;
    struct h1_limits lim = {.max_request_line = 0, .max_head = merged.len + 1, .max_headers = 100};
    if (h1_parse_response(merged.data, merged.len, &mres, mhdrs, 100, &lim, true) <= 0)
        goto done;
    struct policy_fresh fresh;
    if (policy_storable(pc, req, preq, &mres, request_wall_s, response_wall_s, &fresh) != NULL)
        goto done;
    struct cache_entry *e = cache__entry_alloc(head_len + oe->body_len);
    memcpy(e->data, merged.data, head_len);
    memcpy(e->data + head_len, oe->data + oe->head_len, oe->body_len);
    e->head_len = head_len;
    e->body_len = oe->body_len;
    cache__index(e);
    e->status = oe->status;
    e->stored_ms = now_ms;
    e->fresh = fresh;
    e->path_gen = oe->path_gen;
    e->body_id = oe->body_id; /* the same bytes: its variants' bodies still hold */
    cache__set_tags(e, oe->tags, oe->tags_len);
    e->date = cache__date(mres.headers, mres.nheaders, "date");
    if (e->date == INT64_MIN)
        e->date = response_wall_s;
    e->last_modified = cache__date(mres.headers, mres.nheaders, "last-modified");
    const struct h1_header *et = headers_find(mres.headers, mres.nheaders, "etag");
    if (et != NULL) {
        e->etag = e->data + (et->value - merged.data);
        e->etag_len = et->value_len;
    }
    out = store_insert(c->store, now_ms, key, key_len, primary_len, e, cache__size(e),
                       cache__free_entry, cache__expire(c, &fresh, now_ms));
    if (out == NULL)
        cache__free_entry(e);
done:
    buf_deinit(&tmp);
    buf_deinit(&merged);
    return out;
}

/* ---- invalidation ---- */

void cache_invalidate_path(struct cache *c, const char *host, size_t host_len, const char *path,
                           size_t len)
{
    struct buf k = BUF_INIT;
    buf_append_str(&k, "GET ");
    for (size_t i = 0; host != NULL && i < host_len; i++) {
        char ch = host[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        buf_append(&k, &ch, 1);
    }
    size_t pstart = k.len;
    if (len == 0) {
        path = "/";
        len = 1;
    }
    if (url_normalize_path(path, len, &k) == 0) {
        atomic_fetch_add_explicit(cache__gen_slot(c, k.data + pstart, k.len - pstart), 1,
                                  memory_order_acq_rel);
        atomic_fetch_add_explicit(&c->purges, 1, memory_order_relaxed);
        if (host != NULL)
            store_purge_primary(c->store, k.data, k.len);
    }
    buf_deinit(&k);
}

bool cache_uri_path(const char *host, size_t host_len, const char *target, size_t len,
                    const char **path, size_t *path_len)
{
    const char *p = target;
    size_t n = len;
    if (n >= 7 && (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0)) {
        size_t skip = p[4] == ':' ? 7 : 8;
        p += skip;
        n -= skip;
        size_t a = 0;
        while (a < n && p[a] != '/' && p[a] != '?' && p[a] != '#')
            a++;
        /* only the same origin (RFC 9111 §4.4: to prevent denial-of-service attacks) */
        if (host == NULL || a != host_len || strncasecmp(p, host, a) != 0)
            return false;
        p += a;
        n -= a;
    } else if (n == 0 || p[0] != '/') {
        return false; /* relative references other than absolute paths are not resolved */
    }
    size_t e = 0;
    while (e < n && p[e] != '?' && p[e] != '#')
        e++;
    *path = p;
    *path_len = e;
    return true;
}

void cache_invalidate_uri(struct cache *c, const char *host, size_t host_len, const char *target,
                          size_t len)
{
    const char *p;
    size_t n;
    if (cache_uri_path(host, host_len, target, len, &p, &n))
        cache_invalidate_path(c, host, host_len, p, n);
}

struct cache__purge_arg {
    struct cache *c;
    const char *path;
    size_t len;
    bool prefix;
};

static bool cache__purge_pred(void *arg, const char *key, size_t key_len, size_t primary_len)
{
    (void)key_len;
    const struct cache__purge_arg *a = arg;
    const char *path;
    size_t plen;
    cache__key_path(key, primary_len, &path, &plen);
    if (a->prefix) {
        /* a prefix may reach into the query: "/api/users?" */
        size_t whole = primary_len - (size_t)(path - key);
        return whole >= a->len && memcmp(path, a->path, a->len) == 0;
    }
    return plen == a->len && memcmp(path, a->path, a->len) == 0;
}

struct cache__tag_arg {
    const char *tag;
    size_t len;
    unsigned char mark;
    size_t n;
};

static void cache__tag_one(void *arg, const struct store_obj *o)
{
    struct cache__tag_arg *a = arg;
    struct cache_entry *e = o->payload;
    if (!e->marker && cache_entry_has_tag(e, a->tag, a->len)) {
        unsigned char cur = atomic_load_explicit(&e->tag_purged, memory_order_relaxed);
        if (cur < a->mark)
            atomic_store_explicit(&e->tag_purged, a->mark, memory_order_release);
        a->n++;
    }
}

size_t cache_purge_tag(struct cache *c, const char *tag, size_t len, bool soft)
{
    atomic_fetch_add_explicit(&c->purges, 1, memory_order_relaxed);
    struct cache__tag_arg a = {
        .tag = tag, .len = len, .mark = soft ? CACHE_TAG_STALE : CACHE_TAG_GONE};
    store_foreach(c->store, cache__tag_one, &a);
    return a.n;
}

size_t cache_purge(struct cache *c, const char *path, size_t len, bool prefix)
{
    atomic_fetch_add_explicit(&c->purges, 1, memory_order_relaxed);
    if (prefix && (len == 0 || (len == 1 && (path[0] == '*' || path[0] == '/'))))
        return store_purge_all(c->store);
    if (!prefix) {
        /* fetches in flight for this path must not store what they bring back */
        struct buf norm = BUF_INIT;
        if (url_normalize_path(path, len, &norm) == 0)
            atomic_fetch_add_explicit(cache__gen_slot(c, norm.data, norm.len), 1,
                                      memory_order_acq_rel);
        buf_deinit(&norm);
    }
    struct cache__purge_arg a = {.c = c, .path = path, .len = len, .prefix = prefix};
    return store_purge_if(c->store, cache__purge_pred, &a);
}

/* ---- hand-over to the next worker process ---- */

struct cache__export {
    uint64_t now_ms, wall_ms;
    cache_export_tag_cb *tag_of;
    void *arg;
    struct buf *out;
    size_t n;
    struct store_obj **objs; /* referenced under the shard lock, written after it */
    size_t nobjs, cap;
};

/* Under the shard lock: only takes a reference (entries are immutable), so the lock is held for a
 * walk of pointers, never for copying bytes. */
static void cache__export_ref(void *arg, const struct store_obj *o)
{
    struct cache__export *x = arg;
    const struct cache_entry *e = o->payload;
    if (e == NULL || e->marker || e->varied || e->variant_of != 0 || o->expire_ms <= x->now_ms)
        return; /* variants are derived again from their base in the next worker */
    if (x->nobjs == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->objs = xrealloc(x->objs, x->cap * sizeof(*x->objs));
    }
    struct store_obj *ro = (struct store_obj *)o;
    store_ref(ro);
    x->objs[x->nobjs++] = ro;
}

static void cache__export_one(struct cache__export *x, const struct store_obj *o)
{
    const struct cache_entry *e = o->payload;
    uint64_t tag = x->tag_of(x->arg, o->key, o->key_len, o->primary_len);
    if (tag == 0)
        return;
    uint32_t hdr[3] = {(uint32_t)o->key_len, (uint32_t)o->primary_len, 0};
    size_t at = buf_pending(x->out);
    buf_append(x->out, hdr, sizeof(hdr));
    buf_append(x->out, &tag, sizeof(tag));
    buf_append(x->out, o->key, o->key_len);
    size_t blob_at = buf_pending(x->out);
    cache_entry_serialize(e, x->now_ms, x->wall_ms, x->out);
    hdr[2] = (uint32_t)(buf_pending(x->out) - blob_at);
    memcpy(buf_head(x->out) + at, hdr, sizeof(hdr));
    x->n++;
}

size_t cache_export(struct cache *c, uint64_t now_ms, uint64_t wall_ms, cache_export_tag_cb *tag_of,
                    void *arg, struct buf *out, cache_export_flush_cb *flush, size_t flush_at)
{
    struct cache__export x = {now_ms, wall_ms, tag_of, arg, out, 0, NULL, 0, 0};
    for (unsigned i = 0; i < store_shards(c->store); i++) {
        x.nobjs = 0;
        store_foreach_shard(c->store, i, cache__export_ref, &x);
        for (size_t k = 0; k < x.nobjs; k++) {
            cache__export_one(&x, x.objs[k]);
            store_unref(c->store, x.objs[k]);
            if (flush != NULL && buf_pending(out) > flush_at)
                flush(arg, out);
        }
    }
    free(x.objs);
    return x.n;
}

size_t cache_import(struct cache *c, const char *p, size_t n, cache_import_keep_cb *keep, void *arg,
                    uint64_t now_ms, uint64_t wall_ms)
{
    size_t done = 0;
    while (n > 0) {
        uint32_t hdr[3];
        uint64_t tag;
        if (n < sizeof(hdr) + sizeof(tag))
            break;
        memcpy(hdr, p, sizeof(hdr));
        memcpy(&tag, p + sizeof(hdr), sizeof(tag));
        size_t rec = sizeof(hdr) + sizeof(tag) + (size_t)hdr[0] + (size_t)hdr[2];
        if (rec > n || hdr[1] > hdr[0] || hdr[1] < 5)
            break;
        const char *key = p + sizeof(hdr) + sizeof(tag);
        const char *blob = key + hdr[0];
        if (keep(arg, key, hdr[0], hdr[1], tag)) {
            const char *path;
            size_t plen;
            cache__key_path(key, hdr[1], &path, &plen);
            struct store_obj *o =
                cache_insert_serialized(c, blob, hdr[2], key, hdr[0], hdr[1],
                                        cache_path_gen(c, path, plen), now_ms, wall_ms);
            if (o != NULL) {
                store_unref(c->store, o);
                done++;
            }
        }
        p += rec;
        n -= rec;
    }
    return done;
}

/* ---- stored variants ---- */

/* The key of variant <name> of <base> into <small> (<cap> bytes) or, when longer, a malloc'd
 * copy the caller frees (*<heap>). */
static char *cache__variant_key(const struct store_obj *base, const char *name, char *small,
                                size_t cap, size_t *len, char **heap)
{
    size_t nl = strlen(name);
    *len = base->key_len + 2 + nl;
    char *k = *len <= cap ? small : (*heap = xmalloc(*len));
    memcpy(k, base->key, base->key_len);
    memcpy(k + base->key_len, "\n~", 2); /* never in a key built from a request: no clash */
    memcpy(k + base->key_len + 2, name, nl);
    return k;
}

struct store_obj *cache_variant_lookup(struct cache *c, const struct store_obj *base,
                                       const char *name, uint64_t now_ms,
                                       struct store_obj **same_body)
{
    char small[512], *heap = NULL; /* the hit path allocates nothing for usual keys */
    size_t kl;
    const char *k = cache__variant_key(base, name, small, sizeof(small), &kl, &heap);
    struct store_obj *o = store_lookup(c->store, now_ms, k, kl, base->primary_len);
    free(heap);
    if (o == NULL)
        return NULL;
    const struct cache_entry *be = base->payload, *e = o->payload;
    if (e->variant_of != be->serial) {
        if (same_body != NULL && e->body_id == be->body_id)
            *same_body = o; /* of the base before a 304 refresh: its body is still right */
        else
            store_unref(c->store, o); /* of an older base: replaced when derived again */
        return NULL;
    }
    return o;
}

struct cache_entry *cache_variant_create(const struct store_obj *base, const char *head,
                                        size_t head_len, const char *body, size_t body_len)
{
    const struct cache_entry *be = base->payload;
    struct cache_entry *e = cache__entry_alloc(head_len + body_len);
    memcpy(e->data, head, head_len);
    if (body_len > 0)
        memcpy(e->data + head_len, body, body_len);
    e->head_len = head_len;
    e->body_len = body_len;
    cache__index(e);
    e->status = be->status;
    e->stored_ms = be->stored_ms;
    e->fresh = be->fresh;
    e->path_gen = be->path_gen;
    e->last_modified = be->last_modified;
    e->date = be->date;
    e->varied = be->varied;
    e->base_len = be->base_len;
    e->variant_of = be->serial;
    e->body_id = be->body_id;
    atomic_store_explicit(&e->tag_purged,
                          atomic_load_explicit(&be->tag_purged, memory_order_acquire),
                          memory_order_relaxed);
    cache__set_tags(e, be->tags, be->tags_len);
    /* the variant's own validator: its ETag line, as the deriving filter wrote it */
    for (size_t i = 0; i < head_len;) {
        const char *eol = memchr(e->data + i, '\n', head_len - i);
        size_t end = eol != NULL ? (size_t)(eol - e->data) + 1 : head_len;
        if (end - i > 5 && strncasecmp(e->data + i, "etag:", 5) == 0) {
            size_t s = i + 5, t = end;
            while (s < t && (e->data[s] == ' ' || e->data[s] == '\t'))
                s++;
            while (t > s && (e->data[t - 1] == '\r' || e->data[t - 1] == '\n' ||
                             e->data[t - 1] == ' ' || e->data[t - 1] == '\t'))
                t--;
            e->etag = e->data + s;
            e->etag_len = t - s;
            break;
        }
        i = end;
    }
    return e;
}

struct store_obj *cache_variant_store(struct cache *c, const struct store_obj *base,
                                      const char *name, struct cache_entry *v, uint64_t now_ms)
{
    char small[512], *heap = NULL;
    size_t kl;
    const char *k = cache__variant_key(base, name, small, sizeof(small), &kl, &heap);
    struct store_obj *o = store_insert(c->store, now_ms, k, kl, base->primary_len, v,
                                       cache__size(v), cache__free_entry,
                                       base->expire_ms);
    free(heap);
    if (o != NULL)
        atomic_store_explicit(&((struct cache_entry *)base->payload)->has_variants, true,
                              memory_order_release);
    return o;
}

void cache_entry_destroy(struct cache_entry *e)
{
    if (e != NULL)
        cache__free_entry(e);
}
