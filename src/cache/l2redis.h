/* Redis as the cache's second level: one connection per loop thread on our event loop (hiredis
 * parses and formats; commands written at the end of each event batch: pipelined), GET with a
 * deadline in milliseconds, SET with a TTL, PUBLISH, and a SUBSCRIBE connection for purge events.
 * Redis being down or slow is normal operation: lookups answer "error" at once or at their
 * deadline, the connection is retried with backoff, and errors are counted and logged once per
 * interval. hiredis stays in src/cache/l2redis*.c (l2redis_priv.h lists which file does what). */
#ifndef AG_CACHE_L2REDIS_H
#define AG_CACHE_L2REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct loop;
struct l2redis;
struct l2redis_req;

struct l2redis_conf {
    const char *url;       /* redis://host:port/db, unix:///path or redis+cluster://seeds */
    uint64_t timeout_ms;   /* a lookup slower than this answers L2REDIS_ERROR */
    uint64_t reconnect_ms; /* first pause before a reconnect (doubles up to 10x) */
    size_t max_reply; /* a reply with more unparsed bytes drops the connection (least 16 MiB) */
    /* Optional: writes the host's current numeric address into <ip> (0), or -1 when it has none
     * yet. Every connect asks it, so a host name is never resolved on the loop thread (hiredis
     * would call a blocking getaddrinfo); NULL: the URL's host is handed to hiredis as written. */
    int (*resolve)(void *arg, char *ip, size_t iplen);
    void *resolve_arg;
};

enum l2redis_status { L2REDIS_ERROR = -1, L2REDIS_MISS = 0, L2REDIS_HIT = 1 };

/* Answer of a lookup: <vals>[i] / <lens>[i] for each key (NULL: absent); valid during the call. */
typedef void l2redis_get_cb(void *arg, enum l2redis_status st, const char *const *vals,
                            const size_t *lens, size_t n);
/* A message on the subscribed channel; <msg> NULL each time the subscription is (re)confirmed:
 * messages published while it was down were lost. */
typedef void l2redis_msg_cb(void *arg, const char *msg, size_t len);

/* A Redis Cluster is named by its seed nodes: "redis+cluster://host:port,host:port" (the config's
 * cache.redis: {cluster: [...]} becomes this); the rest of the cluster is discovered. */
#define L2REDIS_CLUSTER_SCHEME "redis+cluster://"
#define L2REDIS_MAX_SEEDS 16
/* A Sentinel-managed primary: "redis+sentinel://host:port,host:port/NAME" ({sentinels: [...],
 * master: NAME} in the config). */
#define L2REDIS_SENTINEL_SCHEME "redis+sentinel://"
#define L2REDIS_SLOTS 16384
enum { L2REDIS_MOVED = 1, L2REDIS_ASK = 2 };

/* Parses <url> (for a cluster URL: its first seed); 0 or -1 with a message in <err>. */
int l2redis_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db, char *err,
                      size_t errlen);
/* The seeds of a cluster URL into <hosts>/<ports> (at most <max>): their number, or -1 with a
 * message in <err>. */
int l2redis_parse_seeds(const char *url, char (*hosts)[64], int *ports, size_t max, char *err,
                        size_t errlen);
/* The sentinels of a sentinel URL, as l2redis_parse_seeds, and the master's name into <master>. */
int l2redis_parse_sentinels(const char *url, char (*hosts)[64], int *ports, size_t max,
                            char *master, size_t masterlen, char *err, size_t errlen);
/* Appends the command <argv>[0..argc) (<argl> bytes each) to <out> in RESP, as hiredis's
 * redisFormatCommandArgv would format it ("*<argc>\r\n" then "$<len>\r\n<arg>\r\n" each),
 * without a temporary copy. */
void l2redis_format(struct buf *out, int argc, const char *const *argv, const size_t *argl);
/* CRC16 of the Redis Cluster spec (XMODEM); crc16("123456789") = 0x31C3. */
uint16_t l2redis_crc16(const char *s, size_t n);
/* The cluster slot of <key>: CRC16 mod 16384 of its hash tag (what is between the first '{' and
 * the next '}', when not empty), else of the whole key. */
unsigned l2redis_slot(const char *key, size_t n);
/* True when <host> is a numeric IPv4 or IPv6 address. A node a cluster or the sentinels name by
 * anything else is not connected to: hiredis would resolve the name with a blocking getaddrinfo
 * on the loop thread. */
bool l2redis_is_ip(const char *host);
/* An error reply "MOVED <slot> <host:port>" or "ASK <slot> <host:port>": L2REDIS_MOVED or
 * L2REDIS_ASK with its parts, 0 for another error, -1 for a malformed redirect. */
int l2redis_parse_redirect(const char *s, size_t n, unsigned *slot, char *host, size_t hostlen,
                           int *port);

/* Creates a client on <loop> (its thread only). With <on_msg>, it subscribes to <channel> (a
 * dedicated connection: a subscribed connection can issue nothing else). Connects at once and
 * keeps reconnecting while down. */
struct l2redis *l2redis_create(struct loop *loop, const struct l2redis_conf *conf,
                               const char *channel, l2redis_msg_cb *on_msg, void *msg_arg);
/* Fails pending lookups (their callbacks are not called when cancelled) and disconnects. */
void l2redis_destroy(struct l2redis *r);

/* MGET of <n> keys (n <= 4). Returns a handle, or NULL when Redis is unavailable now (then <cb>
 * is never called). <cb> runs later on the loop, exactly once unless cancelled. */
struct l2redis_req *l2redis_mget(struct l2redis *r, const char *const *keys, const size_t *klens,
                                 size_t n, l2redis_get_cb *cb, void *arg);
/* Any command, answered like a lookup: an array reply's elements (at most <max_n>, up to 4096;
 * strings, or integers as text within the first four; other elements NULL), or a single string,
 * integer or nil as one element; an error reply or a longer array is L2REDIS_ERROR. argv[key_arg]
 * is the key that picks the cluster node (-1: any node). NULL when Redis is unavailable now (then
 * <cb> is never called). */
struct l2redis_req *l2redis_command(struct l2redis *r, int argc, const char **argv,
                                    const size_t *argl, int key_arg, size_t max_n,
                                    l2redis_get_cb *cb, void *arg);
/* Any command whose reply is only checked (an error reply is counted and logged); argv[key_arg]
 * as above. 0, or -1 when Redis is unavailable now (counted). */
int l2redis_send(struct l2redis *r, int argc, const char **argv, const size_t *argl, int key_arg);
/* The lookup's answer is no longer wanted: <cb> will not be called. */
void l2redis_cancel(struct l2redis_req *q);
/* SET key value PX ttl_ms (fire and forget). */
void l2redis_set(struct l2redis *r, const char *key, size_t klen, const char *val, size_t vlen,
                 uint64_t ttl_ms);
/* PUBLISH channel msg (fire and forget). */
void l2redis_publish(struct l2redis *r, const char *channel, const char *msg, size_t len);
bool l2redis_connected(const struct l2redis *r);

/* Agrees on one value with every gateway of this Redis: SET <key> <proposal> NX, then GET <key>
 * (the value of whichever gateway set it first). Blocking, each step bounded by <timeout_ms>:
 * for a worker's start, never for a loop thread. Writes the value into <out> (at most <outlen>
 * bytes) and returns its length, or -1 with a reason for people in <err> (a value longer than
 * <outlen> or shorter than <minlen> is an error). */
long l2redis_agree(const struct l2redis_conf *conf, const char *key, const char *proposal,
                   size_t plen, char *out, size_t outlen, size_t minlen, uint64_t timeout_ms,
                   char *err, size_t errlen);
/* Errors so far (failed commands, timeouts, refused lookups while down, disconnects). */
uint64_t l2redis_errors(const struct l2redis *r);
/* Cluster redirections (MOVED, ASK) followed so far. */
uint64_t l2redis_redirects(const struct l2redis *r);

/* What one client knows of its Redis, for the gateway's /stats (and so for `doctor --gateway`). */
#define L2REDIS_VIEW_NODES 64
struct l2redis_node_view {
    char addr[72];    /* host:port, or the unix socket's path */
    const char *role; /* "primary" (the only Redis, the sentinels' primary or a cluster node the
                         slot map gives slots), "node" (a cluster node serving none: a seed that
                         is a replica), "sentinel" */
    bool connected;
    unsigned slots;  /* cluster: slots the map gives it */
    uint64_t errors; /* failed connects, lost connections, error replies, timeouts, refusals */
};
struct l2redis_view {
    const char *mode; /* "single", "cluster", "sentinel" */
    size_t nodes;     /* known (a sentinel-managed primary not named yet is not) */
    size_t connected;
    size_t slots_covered; /* cluster: slots the map gives to a node (of L2REDIS_SLOTS) */
    /* times the primary changed: the sentinels named another, or a slot map read gave a served
     * slot to another node (a failover, or a resharding) */
    uint64_t failovers;
    uint64_t redirects, errors;
    size_t n; /* node[] entries */
    struct l2redis_node_view node[L2REDIS_VIEW_NODES];
};
/* Fills <v> from <r> (on <r>'s thread). */
void l2redis_view(const struct l2redis *r, struct l2redis_view *v);

#endif
