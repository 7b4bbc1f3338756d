/* The in-process object store shared by every loop thread of a worker: a sharded hash table of
 * reference-counted objects under a hard byte limit, with SIEVE eviction. It knows keys, bytes,
 * reference counts and expiry times; it knows nothing about HTTP (policy.c does).
 *
 * Objects are found by a primary key (the URI part of a cache key) and a full key (primary key
 * plus the Vary'd request header values). All variants of one primary key live in one shard and
 * one bucket chain, so "drop every variant of /api/users/7" costs one chain walk. */
#ifndef AG_CACHE_STORE_H
#define AG_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* A stored object. The payload is immutable once inserted; readers hold a reference. */
struct store_obj {
    uint64_t primary_hash;
    uint64_t full_hash;
    char *key; /* full key bytes; the first primary_len bytes are the primary key */
    size_t key_len;
    size_t primary_len;
    void *payload; /* caller's data, freed with free_payload when the last ref goes */
    size_t size;   /* bytes charged against the limit (payload + key + overhead) */
    void (*free_payload)(void *payload);
    uint64_t expire_ms; /* monotonic ms after which the object is useless (fresh + grace) */
    uint64_t inserted_ms;
    /* private */
    _Atomic uint32_t _refs;
    _Atomic uint8_t _visited;          /* SIEVE bit: set on hit, cleared by the hand */
    bool _linked;                      /* still in the table */
    struct store_obj *_chain;          /* next in the hash bucket */
    struct store_obj *_newer, *_older; /* SIEVE queue (FIFO by insertion) */
};

/* Bytes charged per object for the struct and its bookkeeping, on top of its payload's size and
 * its key's length. */
#define STORE_OBJ_OVERHEAD 128

struct store_stats {
    uint64_t objects;
    uint64_t bytes;
    uint64_t limit;
    uint64_t inserts;
    uint64_t evictions; /* removed to make room */
    uint64_t expired;   /* removed because expire_ms passed */
    uint64_t purged;    /* removed by invalidation or purge */
    uint64_t rejected;  /* inserts refused (larger than a shard's share of the limit) */
};

/* Creates a store holding at most <limit_bytes>, split over <nshards> (rounded up to a power of
 * two, at least 1). */
struct store *store_create(uint64_t limit_bytes, unsigned nshards);
/* Frees every object not referenced by a reader; objects still referenced are freed by their last
 * store_unref(). */
void store_destroy(struct store *s);

/* 64-bit hash of <n> bytes (xxh3). */
uint64_t store_hash(const void *p, size_t n);

/* Finds the object with this full key and takes a reference, or returns NULL. An object past its
 * expire_ms is removed and not returned. Hits mark the object visited (SIEVE). */
struct store_obj *store_lookup(struct store *s, uint64_t now_ms, const char *key, size_t key_len,
                               size_t primary_len);

/* Inserts a new object (copying the key), replacing any object with the same full key; evicts
 * until the shard fits. On success the store owns <payload> and the caller receives a reference
 * to the new object (release it with store_unref). Returns NULL when the object is too large for
 * the store; then the caller still owns <payload>. <payload_size> is the byte cost of payload. */
struct store_obj *store_insert(struct store *s, uint64_t now_ms, const char *key, size_t key_len,
                               size_t primary_len, void *payload, size_t payload_size,
                               void (*free_payload)(void *), uint64_t expire_ms);

/* Takes another reference. */
void store_ref(struct store_obj *o);
/* Drops a reference; the object is freed when it is unlinked and the count reaches zero. */
void store_unref(struct store *s, struct store_obj *o);

/* Removes <o> if it is still linked (a newer copy under the same key is not touched). */
void store_remove(struct store *s, struct store_obj *o);
/* Removes every variant of <primary>; returns how many. */
size_t store_purge_primary(struct store *s, const char *primary, size_t len);
/* Removes every object whose primary key starts with <prefix>; returns how many. Walks the whole
 * store: an admin operation, not a request-path one. */
size_t store_purge_prefix(struct store *s, const char *prefix, size_t len);
/* Removes every object for which <pred>(<arg>, key, key_len, primary_len) is true; returns how
 * many. Walks the whole store (admin operation). <pred> runs under a shard lock: keep it short. */
size_t store_purge_if(struct store *s,
                      bool (*pred)(void *arg, const char *key, size_t key_len, size_t primary_len),
                      void *arg);
/* Removes every object. */
size_t store_purge_all(struct store *s);

/* Calls <cb>(<arg>, o) for every object still linked, oldest first within each shard, under the
 * shard's lock (keep <cb> short: no store call from it). A hand-over at reload, not a request-path
 * operation. */
void store_foreach(struct store *s, void (*cb)(void *arg, const struct store_obj *o), void *arg);
/* The same for shard <i> only (0 <= i < store_shards(s)). */
void store_foreach_shard(struct store *s, unsigned i,
                         void (*cb)(void *arg, const struct store_obj *o), void *arg);
unsigned store_shards(const struct store *s);

void store_stats(struct store *s, struct store_stats *out);

#endif
