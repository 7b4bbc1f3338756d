/* The response cache as the gateway uses it: lookups that end in HIT / STALE / MISS / EXPIRED /
 * BYPASS, entries built from a response while it streams, hits served as precomputed bytes (one
 * writev of head + a small per-hit block + body), 304s for conditional requests, 304 refreshes of
 * stored entries, and invalidation (a path generation table makes "every variant and every query
 * of /api/users/7" one atomic increment). Knows HTTP through policy.c and bytes through store.c;
 * knows nothing of sockets, connections or the gateway's config structs. */
#ifndef AG_CACHE_CACHE_H
#define AG_CACHE_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "cache/policy.h"
#include "cache/store.h"
#include "core/buf.h"
#include "http/h1parse.h"

struct cache;

/* What the cache did for a request (the X-Cache header and the metric label). */
enum cache_status {
    CACHE_NONE = 0, /* route not cached: no X-Cache header */
    CACHE_HIT,      /* fresh entry served */
    CACHE_STALE,    /* stale entry served (stale-while-revalidate, stale-if-error) */
    CACHE_MISS,     /* nothing usable stored: fetched from the origin */
    CACHE_EXPIRED,  /* an entry existed but had to be revalidated / refetched */
    CACHE_BYPASS,   /* not cacheable (credentials, method, no-store): forwarded untouched */
    CACHE_STATUS_COUNT,
};
const char *cache_status_name(enum cache_status s);

/* A stored response: immutable once inserted, shared by every thread through store refs. */
struct cache_entry {
    char *data; /* head (status line + header lines, each CRLF-terminated, no final
                   blank line) followed by the body */
    size_t head_len;
    struct h1_field_ref *fields; /* the head's fields, indexed once when the entry is built, so
                                   a hit hands them to an HTTP/2 session without parsing */
    size_t nfields;
    char *lnames; /* the fields' names in lower case (h1_field_ref.lname_off): HTTP/2's form,
                     made once; in the same allocation as <fields> */
    size_t index_bytes; /* that allocation's size: charged to the cache with the entry's data */
    size_t body_len;
    int status;
    uint64_t stored_ms; /* monotonic ms when the response was received */
    struct policy_fresh fresh;
    uint64_t path_gen; /* generation of its path when the fetch started */
    const char *etag;  /* slice of data, NULL when none */
    size_t etag_len;
    int64_t last_modified; /* wall seconds, INT64_MIN when none */
    int64_t date;          /* wall seconds of the Date header */
    bool varied;           /* stored under a key with the origin's Vary values; then vary /
                              vary_len name them and base_len is the key's length without them */
    size_t base_len;
    /* A vary marker (no response): the origin's Vary field names for this URI */
    bool marker;
    char *vary;
    size_t vary_len;
    /* Cache tags (surrogate keys) the origin gave in policy_conf.tag_header: space-separated,
     * NULL when none; and what a purge by tag did to the entry since (CACHE_TAG_*). */
    char *tags;
    size_t tags_len;
    _Atomic unsigned char tag_purged;
    /* Stored variants (cache_variant_*): every entry has a serial unique in the process;
     * variant_of is 0 for a response as the origin sent it, else the serial of the entry this
     * one was derived from (a compressed copy). memo is a word the deriving filter keeps about
     * this response (what it found in its head, 0 until set); variant_busy has bit v set while
     * a request builds variant v of it, so concurrent hits do not all derive the same copy. */
    uint64_t serial;
    uint64_t variant_of;
    uint64_t body_id; /* the serial of the entry that first stored these body bytes: a 304
                         refresh keeps it, and a variant records its base's */
    _Atomic uint32_t memo;
    _Atomic uint32_t variant_busy;
    _Atomic bool has_variants; /* a variant of it was stored: they go when it is invalidated */
};

enum { CACHE_TAG_NONE = 0, CACHE_TAG_STALE = 1, CACHE_TAG_GONE = 2 };

struct cache_stats {
    struct store_stats store;
    uint64_t purges; /* invalidations (URIs / prefixes) applied */
};

/* Creates a cache of <memory> bytes over <nshards> lock shards. Entries that can be revalidated
 * (a validator, or no-cache) are kept <keep_ms> past their freshness and grace windows, so a stale
 * entry can still be refreshed with a 304 instead of a full transfer. */
struct cache *cache_create(uint64_t memory, unsigned nshards, uint64_t keep_ms);
void cache_destroy(struct cache *c);
struct store *cache_store(struct cache *c);
void cache_stats(struct cache *c, struct cache_stats *out);

/* Result of a lookup. */
struct cache_found {
    struct store_obj *obj;       /* referenced (release with cache_release), NULL on a miss */
    const struct cache_entry *e; /* obj's entry */
    enum policy_use use;
    uint64_t age_ms;
    uint64_t path_gen;  /* current generation of the request's path */
    size_t primary_len; /* key layout in the caller's buffer */
    size_t base_len;    /* primary + route vary values (the coalescing key) */
    size_t key_len;     /* full key (with the origin's Vary values) */
};

/* Looks <req> up. The key is built into <key> (reset first). Returns 0 (found->obj may be NULL:
 * a miss) or -1 when the request cannot be keyed (not cached). */
int cache_lookup(struct cache *c, const struct policy_conf *pc, const struct h1_request *req,
                 const struct policy_req *preq, uint64_t now_ms, struct buf *key,
                 struct cache_found *found);
void cache_release(struct cache *c, struct store_obj *o);

/* True when <req>'s conditional headers (If-None-Match, else If-Modified-Since) match entry <e>:
 * the answer is then a 304. */
bool cache_conditional_match(const struct cache_entry *e, const struct h1_request *req);

/* Per-hit header block: "Age: N\r\nX-Cache: S\r\n[connection]\r\n" into <out> (>= 128 bytes).
 * Returns its length. <conn_hdr> is NULL or a full header line ("Connection: close\r\n"). */
size_t cache_hit_block(char *out, uint64_t age_ms, enum cache_status st, const char *conn_hdr);

/* Whether stored field <f> of <e> is repeated in a 304 (RFC 9110 §15.4.5: validators and
 * cache headers). */
bool cache_field_in_304(const struct cache_entry *e, const struct h1_field_ref *f);

/* Appends a 304 for <e> (validators and cache headers of the stored response, Age, X-Cache). */
void cache_write_304(const struct cache_entry *e, uint64_t age_ms, enum cache_status st,
                     const char *conn_hdr, struct buf *out);

/* ---- filling ---- */
struct cache_fill;

/* Starts an entry from response head <res> to request <req>. Returns NULL with a static reason
 * in *<why> when the response may not be stored. <path_gen>: from the lookup, so a response
 * fetched before an invalidation is never served after it. <max_size>: head + body limit. */
struct cache_fill *cache_fill_begin(struct cache *c, const struct policy_conf *pc,
                                    const struct h1_request *req, const struct policy_req *preq,
                                    const struct h1_response *res, int64_t request_wall_s,
                                    int64_t response_wall_s, uint64_t now_ms, uint64_t path_gen,
                                    size_t max_size, const char *date_if_missing, const char **why);
/* Adds body bytes. Returns -1 (and drops the fill's data) when the object outgrew max_size. */
int cache_fill_body(struct cache_fill *f, const char *p, size_t n);
/* Completes and inserts the entry (and the vary marker). Frees <f>. Returns 0 or -1. */
int cache_fill_end(struct cache *c, struct cache_fill *f, uint64_t now_ms);
/* Same, returning a reference to the stored object (NULL when not stored). */
struct store_obj *cache_fill_end_ref(struct cache *c, struct cache_fill *f, uint64_t now_ms);

/* ---- second level (serialized entries) ---- */
/* Appends entry <e> as bytes for another process: its monotonic times become wall times
 * (<now_ms> monotonic and <wall_ms> wall clock of the same instant). */
void cache_entry_serialize(const struct cache_entry *e, uint64_t now_ms, uint64_t wall_ms,
                           struct buf *out);
/* Wall ms at which serialized entry <blob> was received from its origin; 0 when invalid. */
uint64_t cache_serialized_stored_wall(const char *blob, size_t len);
/* Inserts a serialized entry under <key>. Returns a reference, or NULL when <blob> is invalid or
 * the store refused it. */
struct store_obj *cache_insert_serialized(struct cache *c, const char *blob, size_t len,
                                          const char *key, size_t key_len, size_t primary_len,
                                          uint64_t path_gen, uint64_t now_ms, uint64_t wall_ms);
/* How long a second level should keep <e>: freshness left plus its grace windows (0: not worth
 * storing). */
uint64_t cache_entry_ttl_ms(const struct cache_entry *e, uint64_t now_ms);
/* Inserts a Vary marker naming <names> under the base key [0, <base_len>) of <key>. */
void cache_insert_marker(struct cache *c, const char *key, size_t base_len, size_t primary_len,
                         const char *names, size_t len, uint64_t now_ms, uint64_t ttl_ms);
/* The path part of a primary key. */
void cache_key_path(const char *key, size_t primary_len, const char **path, size_t *len);
/* True when <e> carries tag <tag> (<len> bytes; tags compare exactly). */
bool cache_entry_has_tag(const struct cache_entry *e, const char *tag, size_t len);
/* Purges every entry tagged <tag>: gone at its next lookup, or (<soft>) stale from now on, so a
 * stale-while-revalidate window serves it while one refresh runs. Returns how many. */
size_t cache_purge_tag(struct cache *c, const char *tag, size_t len, bool soft);
void cache_fill_abort(struct cache_fill *f);

/* ---- hand-over to the next worker process (reload, recycle) ---- */
/* Decides whether an entry is handed over: returns a non-zero tag written with it (the importer
 * compares it with its own), or 0 to leave it out. Called without any store lock held. */
typedef uint64_t cache_export_tag_cb(void *arg, const char *key, size_t key_len,
                                     size_t primary_len);
/* Hands the records gathered so far to the caller (which writes them out and empties <out>). */
typedef void cache_export_flush_cb(void *arg, struct buf *out);
/* Appends every stored response whose <tag_of> is non-zero to <out> as records
 * [u32 key_len][u32 primary_len][u32 blob_len][u64 tag][key][blob] (blob: cache_entry_serialize).
 * Vary markers and entries stored under an origin's Vary are left out (they are fetched again).
 * A shard's lock is held only to take references; the bytes are copied after it. When <flush>
 * is given it is called whenever <out> holds more than <flush_at> bytes, so the copy never holds
 * the whole cache at once. Returns the number of records. */
size_t cache_export(struct cache *c, uint64_t now_ms, uint64_t wall_ms, cache_export_tag_cb *tag_of,
                    void *arg, struct buf *out, cache_export_flush_cb *flush, size_t flush_at);
/* Inserts the records of <p>[0, <n>) written by cache_export for which <keep>(<arg>, key,
 * key_len, primary_len, tag) is true, under the current generation of their path. Stops at a
 * malformed record. Returns the number inserted (expired ones and refused ones are not). */
typedef bool cache_import_keep_cb(void *arg, const char *key, size_t key_len, size_t primary_len,
                                  uint64_t tag);
size_t cache_import(struct cache *c, const char *p, size_t n, cache_import_keep_cb *keep, void *arg,
                    uint64_t now_ms, uint64_t wall_ms);

/* Refreshes the stored entry <old> with the headers of a 304 <res> (RFC 9111 §4.3.4) and
 * inserts the result under <key>. Returns a referenced object of the new entry (or NULL when it
 * could not be stored: then <old> is still fine to serve once). */
struct store_obj *cache_refresh_304(struct cache *c, const struct policy_conf *pc,
                                    const struct h1_request *req, const struct policy_req *preq,
                                    struct store_obj *old, const struct h1_response *res,
                                    int64_t request_wall_s, int64_t response_wall_s,
                                    uint64_t now_ms, const char *key, size_t key_len,
                                    size_t primary_len);

/* ---- stored variants ----
 * A variant is another representation of a stored response (its gzip copy, say), derived once
 * by the gateway and stored as an entry of its own under the base entry's key plus "\n~" <name>:
 * the same primary key (so a purge of the URI, a prefix or everything removes it with its base),
 * the same path generation, tags, freshness and expiry as its base, and charged to the store like
 * any entry. It is tied to the exact base entry it came from (variant_of == base serial): a
 * refreshed or refetched base never serves an old variant. Variants stay in this process: they
 * are neither handed over at reload nor written to a second level (derived again there). */
/* The variant <name> of base object <base>, referenced, or NULL (none, or one of an older base).
 * With <same_body>, a variant of an older base with the same body (the base was refreshed by a
 * 304 since) is returned there, referenced, for its body to be reused. */
struct store_obj *cache_variant_lookup(struct cache *c, const struct store_obj *base,
                                       const char *name, uint64_t now_ms,
                                       struct store_obj **same_body);
/* Builds variant <name> of base object <base> from <head> (status line and header lines, CRLF
 * each, no blank line; its ETag line becomes the variant's validator) and <body>; not stored. */
struct cache_entry *cache_variant_create(const struct store_obj *base, const char *head,
                                        size_t head_len, const char *body, size_t body_len);
/* Stores variant <v> (cache_variant_create) of <base> under <name>, charged like any entry, with
 * its base's expiry. Returns a reference, or NULL when the store refused it: the caller then
 * still owns <v> (cache_entry_destroy). */
struct store_obj *cache_variant_store(struct cache *c, const struct store_obj *base,
                                      const char *name, struct cache_entry *v, uint64_t now_ms);
void cache_entry_destroy(struct cache_entry *e);

/* ---- invalidation ---- */
/* Current generation of <path> (normalized path bytes, no query). */
uint64_t cache_path_gen(struct cache *c, const char *path, size_t len);
/* Invalidates every entry (all variants, all queries) of <path> under any host: bumps its
 * generation, frees what is stored under <host><path> when <host> is given. */
void cache_invalidate_path(struct cache *c, const char *host, size_t host_len, const char *path,
                           size_t len);
/* Invalidates the URI of <target> (a path, or an absolute URL whose host equals <host>; other
 * hosts are ignored as RFC 9111 §4.4 requires). */
void cache_invalidate_uri(struct cache *c, const char *host, size_t host_len, const char *target,
                          size_t len);
/* The path of <target> when it is a path or an absolute URL of <host> (no query): true and the
 * slice in *<path>; false for another host or a relative reference. */
bool cache_uri_path(const char *host, size_t host_len, const char *target, size_t len,
                    const char **path, size_t *path_len);
/* Admin purge: entries whose path (after the host) equals <path>, or starts with it when
 * <prefix>. "*" or an empty prefix purges everything. Returns the number of objects removed. */
size_t cache_purge(struct cache *c, const char *path, size_t len, bool prefix);

#endif
