/* Private to src/cache/l2redis*.c: the client's structures, its bounds, and the functions its
 * files share. The client is split by job: l2redis.c (create, destroy, the view, commands),
 * l2redis_conn.c (one connection: connect, write, read, replies, reconnect), l2redis_cluster.c
 * (slot map, routing, MOVED/ASK), l2redis_sentinel.c (the primary the sentinels name),
 * l2redis_parse.c (URLs, CRC16, redirects: pure) and l2redis_agree.c (the blocking SET NX/GET of
 * a worker's start). hiredis is used from these files only; no other folder includes this one. */
#ifndef AG_CACHE_L2REDIS_PRIV_H
#define AG_CACHE_L2REDIS_PRIV_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/l2redis.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/loop.h"

#define L2REDIS_LOG_INTERVAL_MS 10000
#define L2REDIS_MAX_BACKOFF_FACTOR 10
#define L2REDIS_CONNECT_TIMEOUT_MS 2000
#define L2REDIS_MAX_PENDING 4096 /* commands sent and not answered yet, per connection */
#define L2REDIS_MAX_OBUF (16u * 1024 * 1024)  /* bytes formatted and not written yet */
#define L2REDIS_OUT_KEEP (64u * 1024) /* an emptied output buffer larger than this is freed */
#define L2REDIS_MAX_REPLY (16u * 1024 * 1024) /* least cap on one reply's unparsed bytes */
#define L2REDIS_MAX_OBJECTS 64                /* objects in one reply (a lookup's have at most 5) */
#define L2REDIS_MAX_ELEMENTS 4096             /* elements of an l2redis_command answer, at most */
#define L2REDIS_READ_BUDGET (256u * 1024)     /* bytes read per event before yielding the loop */
/* Redis Cluster */
#define L2REDIS_MAX_NODES 64         /* nodes one client talks to (seeds, primaries, redirects) */
#define L2REDIS_MAX_REDIRECTS 3      /* MOVED/ASK followed per command, then it fails */
#define L2REDIS_TOPO_OBJECTS 65536   /* objects in a CLUSTER SLOTS reply, at most */
#define L2REDIS_TOPO_REFRESH_MS 5000 /* the slot map is read again this often */
#define L2REDIS_TOPO_SOON_MS 100     /* ... and this soon after a redirect or a lost node */
#define L2REDIS_TOPO_RETRY_MS 100    /* no node connected yet: asked again after this */
/* Sentinel */
#define L2REDIS_SENTINEL_POLL_MS 1000 /* the primary's address is asked for this often */

struct l2node;

/* A command written (or to be written) and not answered yet: its request (NULL for a reply only
 * checked: SELECT, ASKING) and where its bytes end in the connection's output (an absolute
 * offset: its bytes start where the previous command's end). */
struct l2pend {
    struct l2redis_req *q;
    uint64_t end;
};

struct l2conn {
    struct l2redis *r;
    struct l2node *node; // the node connected to (the subscriber's changes in a cluster)
    redisContext *c;     // NULL while down
    int fd;
    bool sub;                // the subscriber connection
    bool connected;          // the TCP (or unix) connect completed
    bool flush_queued;       // a deferred write is pending
    bool registered;         // fd in the loop
    struct loop_timer retry; // reconnect pause, or the connect deadline while connecting
    struct loop_timer more;  // reading resumes here when the read budget ran out
    uint64_t backoff_ms;
    /* replies expected, oldest first */
    struct l2pend *pend;
    size_t pend_head, pend_count;
    /* The commands' bytes, formatted here by l2redis_format (no allocation per command) and
     * kept until answered, so that a MOVED/ASK sends the same bytes again from here instead of
     * each command keeping a copy. Absolute offsets (bytes since the connection was made):
     * out.data[0] is byte out_base; out_sent were written to the socket; out_done are answered
     * (the start of the oldest pending command's bytes). Bytes below both are dropped after
     * each write and each read (l2redis__trim). */
    struct buf out;
    uint64_t out_base, out_sent, out_done;
    /* the reply being parsed */
    redisReplyObjectFunctions fns; // hiredis's defaults, wrapped to count objects
    const redisReplyObjectFunctions *base;
    unsigned objects;
    bool too_many; // the reply went over its object limit
};

/* A Redis server: the only one, or a cluster node. */
struct l2node {
    char host[256]; // address (or unix path, or the URL's host name)
    int port;       // -1: unix socket; 0: not known yet (a sentinel-managed primary)
    bool sentinel;  // a sentinel, asked where the primary is
    struct l2conn cmd;
    uint64_t errors; // counted against this node (l2redis__error)
};

struct l2redis {
    struct loop *loop;
    bool cluster;
    int db;
    int (*resolve)(void *arg, char *ip, size_t iplen); // l2redis_conf.resolve (single node)
    void *resolve_arg;
    uint64_t timeout_ms, reconnect_ms;
    size_t max_reply;
    struct l2node *nodes[L2REDIS_MAX_NODES]; // [0] the single node, or the first seed
    size_t nnodes;
    struct l2conn sub;
    size_t sub_next; // cluster: the node the subscriber tries next
    char *channel;
    l2redis_msg_cb *on_msg;
    void *msg_arg;
    uint64_t errors, redirects, failovers;
    struct log_limit limit, topo_limit;
    bool destroying;
    /* cluster: slot -> node index + 1 (0: nobody known), refreshed from CLUSTER SLOTS */
    uint8_t *slots;
    uint8_t *slots_read; // the map as the last CLUSTER SLOTS gave it (MOVED leaves it alone)
    size_t slots_covered;
    struct loop_timer topo;
    bool topo_inflight;
    uint64_t topo_ms; // when the slot map was last read
    size_t topo_next; // the node asked next
    /* sentinel: nodes[0] is the primary they name; the topo timer asks them */
    bool sentinel;
    char master[129];
    struct l2node *sentinels[L2REDIS_MAX_SEEDS];
    size_t nsentinels;
    struct l2conn ssub; // subscribed to +switch-master on one sentinel
    size_t ssub_next;
};

struct l2redis_req {
    struct l2redis *r;
    size_t max_n;         // elements the answer may have (4 for a lookup, more for a command)
    unsigned max_objects; // objects its reply may have
    l2redis_get_cb *cb;   // NULL: the reply is only checked
    void (*raw)(struct l2redis *r, struct l2node *from, const redisReply *rep); // internal
    struct l2node *to; // where it was sent last
    void *arg;
    struct loop_timer timer;
    bool answered; // cb called (or timed out)
    bool cancelled;
    unsigned redirects;
};

/* ---- l2redis_conn.c: connections and replies ---- */

/* Logs <what>: <detail> for <node> (NULL: the cluster), at most once per L2REDIS_LOG_INTERVAL_MS.
 */
void l2redis__complain(struct l2redis *r, const struct l2node *node, const char *what,
                       const char *detail);
/* An error, counted for the client and against <node> when known. */
void l2redis__error(struct l2redis *r, struct l2node *node);
void l2redis__req_free(struct l2redis_req *q);
/* Closes <k>'s connection, answers its pending requests with an error, schedules the reconnect. */
void l2redis__fail(struct l2conn *k, const char *what, const char *detail);
/* Room for one more command on <node> (connected, pending and unsent bytes under their bounds). */
bool l2redis__room(struct l2redis *r, struct l2node *node);
/* Formats a command into <k>'s output (written after the event batch); l2redis__push follows. */
void l2redis__append(struct l2conn *k, int argc, const char **argv, const size_t *argl);
/* <q> (NULL: a reply only checked) answers the command just appended to <k>; flushed after the
 * event batch. */
void l2redis__push(struct l2conn *k, struct l2redis_req *q);
/* The node at <host>:<port>, added and connected when new; NULL when the table is full. */
struct l2node *l2redis__node(struct l2redis *r, const char *host, int port);
size_t l2redis__node_index(const struct l2redis *r, const struct l2node *n);
void l2redis__connect(struct l2conn *k);
void l2redis__conn_init(struct l2redis *r, struct l2conn *k, struct l2node *node, bool sub);

/* ---- l2redis_cluster.c: slot map and routing ---- */

/* Follows a MOVED/ASK reply <rep> to <q>, whose command is the bytes [<start>, <end>) of
 * <from>'s output; true when <q> went on (those bytes appended to the named node's output). */
bool l2redis__redirect(struct l2redis *r, struct l2conn *from, struct l2redis_req *q,
                       const redisReply *rep, uint64_t start, uint64_t end);
/* The topo timer: asks a node for the slot map (a sentinel for the primary). */
void l2redis__topo_cb(struct loop *loop, void *arg);
/* The slot map (or the sentinels' primary) is asked for again soon. */
void l2redis__topo_soon(struct l2redis *r);
/* The node for a command on <key> (NULL key: any connected node); NULL when nobody serves it. */
struct l2node *l2redis__route(struct l2redis *r, const char *key, size_t klen);

/* ---- l2redis_sentinel.c ---- */

/* Asks a connected sentinel (each in turn) where the primary is. */
void l2redis__ask_sentinel(struct l2redis *r);

#endif
