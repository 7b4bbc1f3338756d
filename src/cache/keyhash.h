/* Keyed hashes of request header values in cache keys: a key names "authorization:<HMAC>", never
 * the token itself, so a key listed in Redis (KEYS, MONITOR, a backup) or in a purge or a log
 * carries no credential. HMAC-SHA256 truncated to 128 bits, hex; the secret comes from the
 * config or is agreed through Redis (gateway/cachel2.c). The only file of src/cache that includes
 * OpenSSL. */
#ifndef AG_CACHE_KEYHASH_H
#define AG_CACHE_KEYHASH_H

#include <stddef.h>

#include "core/buf.h"

#define KEYHASH_HEX_LEN 32    /* characters keyhash_append() writes */
#define KEYHASH_MIN_SECRET 16 /* shortest secret accepted (bytes) */

struct keyhash;

/* A keyed hash with <secret> (<len> bytes, copied). Aborts when OpenSSL cannot give HMAC-SHA256. */
struct keyhash *keyhash_create(const void *secret, size_t len);
void keyhash_destroy(struct keyhash *kh);

/* Appends the hex HMAC of <data>[0,<n>) to <out>. <data> may lie inside <out>. Thread-safe: the
 * keyed state is copied per call, never written. */
void keyhash_append(const struct keyhash *kh, const char *data, size_t n, struct buf *out);

/* The same hash into <out> (KEYHASH_HEX_LEN characters, not terminated). */
void keyhash_hex(const struct keyhash *kh, const char *data, size_t n, char out[KEYHASH_HEX_LEN]);

/* Fills <out> with <n> bytes from the system's CSPRNG. Returns 0, or -1. */
int keyhash_random(void *out, size_t n);

#endif
