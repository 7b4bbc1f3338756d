/* Declarations shared by the files of src/mock only (no other folder includes this): the profile
 * (routes, latency distributions, global DB pool / cold start / stall), the shared DB pool queue,
 * the per-thread counters, and the server/thread/connection/request objects of `apigate mock`. */
#ifndef AG_MOCK_INTERNAL_H
#define AG_MOCK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/loop.h"
#include "http/date.h"
#include "http/h1parse.h"
#include "net/sock.h"

/* ---- random numbers and latency distributions (mock_dist.c) ---- */

/* splitmix64: fast, good enough for jitter, and seedable so unit tests are deterministic. */
uint64_t mock_rng_next(uint64_t *state);
/* Uniform in the open interval (0, 1). */
double mock_rng_unit(uint64_t *state);
/* Standard normal (Box-Muller, one value per call). */
double mock_rng_normal(uint64_t *state);

enum mock_dist {
    MOCK_DIST_NONE = 0,  /* no latency */
    MOCK_DIST_FIXED,     /* ms */
    MOCK_DIST_UNIFORM,   /* min..max */
    MOCK_DIST_NORMAL,    /* mean, stddev (clipped at 0) */
    MOCK_DIST_LOGNORMAL, /* median, sigma: exp(ln(median) + sigma * N(0,1)) */
    MOCK_DIST_PARETO,    /* min (scale x_m), alpha (tail index): x_m / U^(1/alpha) */
};

/* All values in milliseconds (fractions allowed) except sigma and alpha. */
struct mock_latency {
    enum mock_dist dist;
    double ms;            /* fixed */
    double min, max;      /* uniform bounds; min is also the Pareto scale */
    double mean, stddev;  /* normal */
    double median, sigma; /* log-normal */
    double alpha;         /* Pareto */
    double cap;           /* upper clamp of every sample; 0 = none */
};

/* One sample in milliseconds (>= 0) of <l>, drawing from <rng>. */
double mock_dist_sample(const struct mock_latency *l, uint64_t *rng);
/* The name of <d> as written in profiles ("lognormal"); mock_dist_parse() is the reverse (-1 if
 * unknown). */
const char *mock_dist_name(enum mock_dist d);
int mock_dist_parse(const char *s, enum mock_dist *out);

/* ---- route patterns and query strings (mock_route.c) ---- */

#define MOCK_MAX_PARAMS 4

/* A compiled path pattern: literal bytes, "{name}" segments (one non-empty path segment each), and
 * an optional trailing "*" (any suffix; a pattern ending in slash-star also matches without the
 * slash). */
struct mock_pattern {
    char *text; /* as written */
    size_t nparams;
    char *params[MOCK_MAX_PARAMS]; /* names of the {…} segments, in order */
};

struct mock_param {
    const char *name;
    const char *value; /* slice of the matched path */
    size_t value_len;
};

/* Compiles <text> into <p>. Returns 0, or -1 with a message in <err>. */
int mock_pattern_compile(struct mock_pattern *p, const char *text, char *err, size_t errlen);
void mock_pattern_free(struct mock_pattern *p);
/* Matches <path>[0,<len>) (no query). Returns the number of params captured into <params> (room
 * for MOCK_MAX_PARAMS), or -1 when it does not match. */
int mock_pattern_match(const struct mock_pattern *p, const char *path, size_t len,
                       struct mock_param *params);
/* Finds parameter <name> in the query string <q>[0,<len>) ("a=1&b=2"); returns true and the raw
 * (not percent-decoded) value slice, or false. A parameter without '=' has an empty value. */
bool mock_query_get(const char *q, size_t len, const char *name, const char **val, size_t *val_len);

/* ---- profile (mock_profile.c) ---- */

enum mock_handler {
    MOCK_H_JSON = 0, /* generic JSON: route, method, path, params, query */
    MOCK_H_STATIC,   /* the route's literal `body` */
    MOCK_H_USER,     /* a user record by {id}; PUT/DELETE answer updated/deleted */
    MOCK_H_ORDERS,   /* orders of ?user_id= (400 without) */
    MOCK_H_PRODUCTS, /* a product list */
    MOCK_H_SEARCH,   /* results for ?q= (400 without) */
    MOCK_H_LOGIN,    /* POST body {"user": …} or user=… -> {"token": "tok-<user>"} */
    MOCK_H_ME,       /* the user named by "Authorization: Bearer tok-<user>"; 401 without */
    MOCK_H_ECHO,     /* method, path, query, headers and body as JSON */
    MOCK_H_HEALTH,   /* {"status":"ok"} */
    MOCK_H_COUNTER,  /* {"route","n"}: n counts the bodies built, so every answer differs */
};

struct mock_route {
    char *name;   /* for stats; default "METHOD pattern" */
    char *method; /* "GET", …, or "ANY" */
    struct mock_pattern pattern;
    enum mock_handler handler;
    int status; /* success status (default 200) */
    char *body; /* MOCK_H_STATIC: literal body */
    char *content_type;
    struct mock_latency latency; /* application time, added to any DB time */
    bool db;                     /* goes through the shared DB pool */
    double error_rate;           /* fraction of requests answered with error_status */
    int error_status;
    uint64_t body_size; /* JSON bodies are padded up to this many bytes (0: no padding) */
    char *headers;      /* extra raw header lines "Name: value\r\n…" ("" when none) */
    char *cache_control;
    bool etag;
    bool last_modified;
    bool chunked; /* chunked response encoding */
    bool close;   /* Connection: close after each response */
    bool hang;    /* never answer */
    size_t index; /* position in the profile, for stats */
    /* Precomputed response after the Date line (headers and body), keep-alive form, for routes
     * whose answer does not depend on the request (NULL otherwise). */
    char *pre;
    size_t pre_len;
    char pre_etag[24];       /* ETag of the constant body, for 304 checks */
    _Atomic uint64_t *built; /* MOCK_H_COUNTER: bodies built so far (shared by threads) */
};

struct mock_pool_conf {
    uint64_t size;               /* concurrent DB requests; 0 = no pool */
    struct mock_latency service; /* time a request holds a slot */
    uint64_t queue_timeout_ms;   /* 0 = wait forever */
    uint64_t queue_limit;        /* waiting requests beyond which 503 at once; 0 = unbounded */
};

struct mock_pool;
struct mock_stats;

struct mock_profile {
    _Atomic long refs;
    char *name;   /* file name or "built-in" */
    char *source; /* the text it was loaded from */
    struct mock_route *routes;
    size_t nroutes;
    struct mock_pool_conf pool_conf;
    uint64_t cold_idle_ms, cold_extra_ms;  /* 0 = no cold start */
    uint64_t stall_every_ms, stall_for_ms; /* 0 = no stall */
    uint64_t max_body;                     /* request body limit (413 beyond) */
    uint64_t keepalive_timeout_ms; /* idle keep-alive connections closed after this; 0 = never */
    struct mock_pool *pool;        /* runtime: created with the profile */
    struct mock_stats *stats;      /* runtime: one slot per thread and route */
};

/* The built-in default profile, modelled on the seed (YAML text). */
extern const char mock_profile_default_yaml[];

/* Parses a profile from YAML (or JSON) <text>; <name> is used in error positions. Returns the
 * profile with one reference (runtime parts created for <nthreads> threads), or NULL with every
 * problem as "name:line:col: key: what is wrong" lines in <err>. */
struct mock_profile *mock_profile_parse(const char *text, size_t len, const char *name,
                                        size_t nthreads, struct buf *err);
/* Same from a file. */
struct mock_profile *mock_profile_load(const char *path, size_t nthreads, struct buf *err);
void mock_profile_ref(struct mock_profile *p);
/* Drops one reference; the last one frees the profile (from any thread). */
void mock_profile_unref(struct mock_profile *p);
/* Appends a JSON description of the routes to <out>. */
void mock_profile_json(const struct mock_profile *p, struct buf *out);

/* ---- DB pool shared by all threads (mock_pool.c) ---- */

enum mock_wait_state { MOCK_WAIT_NONE = 0, MOCK_WAIT_QUEUED, MOCK_WAIT_GRANTED };

/* Embedded in a request; the pool links waiters through it under its lock. */
struct mock_waiter {
    struct mock_waiter *prev, *next;
    enum mock_wait_state state; /* guarded by the pool lock */
};

enum mock_pool_result { MOCK_POOL_GRANTED, MOCK_POOL_QUEUED, MOCK_POOL_FULL };

struct mock_pool *mock_pool_create(uint64_t size, uint64_t queue_limit);
void mock_pool_destroy(struct mock_pool *p);
/* Takes a slot for <w> if one is free and nobody waits (GRANTED), else queues it at the tail
 * (QUEUED), or refuses when the queue is at its limit (FULL). */
enum mock_pool_result mock_pool_acquire(struct mock_pool *p, struct mock_waiter *w);
/* Gives back a slot. When requests wait, the slot passes to the oldest one, which is returned
 * (state GRANTED): the caller must hand it to its owner thread. Otherwise returns NULL. */
struct mock_waiter *mock_pool_release(struct mock_pool *p);
/* Removes a queued <w> (timeout, closed connection). Returns false when it was granted meanwhile
 * (its grant is on its way to the owner thread). */
bool mock_pool_cancel(struct mock_pool *p, struct mock_waiter *w);
/* Snapshot for stats. */
void mock_pool_counts(struct mock_pool *p, uint64_t *in_use, uint64_t *queued);

/* ---- counters (mock_stats.c) ---- */

#define MOCK_STATUS_MIN 100
#define MOCK_STATUS_MAX 599

/* <nroutes> routes plus one "unmatched" slot, per thread. */
struct mock_stats *mock_stats_create(size_t nthreads, size_t nroutes);
void mock_stats_destroy(struct mock_stats *s);
/* Counts one response of <status> for route <route> (nroutes = unmatched) on <thread>. */
void mock_stats_count(struct mock_stats *s, size_t thread, size_t route, int status);
void mock_stats_reset(struct mock_stats *s);
/* Served responses of <route> with <status> (0: all statuses), summed over threads. */
uint64_t mock_stats_get(const struct mock_stats *s, size_t route, int status);
/* Appends "routes" and "total" JSON members (no braces) for <p> to <out>. */
void mock_stats_json(const struct mock_profile *p, struct buf *out);

/* ---- the server (mock.c, mock_conn.c, mock_body.c, mock_admin.c) ---- */

struct mock_thread;

struct mock_server {
    struct sock_addr addr;
    size_t nthreads;
    struct mock_thread *threads;
    pthread_mutex_t profile_lock;
    struct mock_profile *profile;     /* guarded by profile_lock; one reference */
    _Atomic uint64_t profile_gen;     /* bumped on each swap: threads compare it per request */
    _Atomic uint64_t last_request_ms; /* cold start: time of the latest request */
    _Atomic uint64_t warm_at_ms;      /* cold start: requests before this wait until it */
    uint64_t start_ms;                /* monotonic, for stall windows and uptime */
    int64_t start_wall_s;             /* Last-Modified of the routes that send it */
};

struct mock_conn;

struct mock_thread {
    struct mock_server *srv;
    size_t id;
    pthread_t tid;
    struct loop *loop;
    int lfd;
    struct mock_profile *profile; /* this thread's reference to the current profile */
    uint64_t gen;
    uint64_t rng;
    char date[HTTP_DATE_LEN + 1];
    uint64_t date_sec;       /* monotonic second the date was formatted for */
    _Atomic long inflight;   /* requests accepted and not yet answered (owner writes) */
    struct mock_conn *conns; /* live connections, for shutdown */
    struct buf scratch;      /* body under construction */
};

/* Swaps in <p> (takes over the caller's reference). */
void mock_server_set_profile(struct mock_server *srv, struct mock_profile *p);
/* A new reference to the current profile. */
struct mock_profile *mock_server_get_profile(struct mock_server *srv);

/* Listener callback of a loop thread (mock_conn.c). */
void mock_conn_accept(struct loop *loop, int fd, void *arg, unsigned events);
/* Closes every connection of <th> (at shutdown, on its own thread). */
void mock_conn_close_all(struct mock_thread *th);

/* ---- response bytes (mock_resp.c) ---- */

/* The thread's Date header value, refreshed once per second. */
const char *mock_thread_date(struct mock_thread *th);
/* Appends a whole response to <dst>. <r> may be NULL (admin, errors: no route headers). <etag>:
 * the ETag to send or NULL; <extra>: raw header lines or NULL. The body is framed with
 * Content-Length or, for chunked routes, chunks; 204/304 carry none, HEAD keeps the length only. */
void mock_resp_write(struct mock_thread *th, struct buf *dst, int status,
                     const struct mock_route *r, const char *ctype, const char *body, size_t blen,
                     const char *etag, const char *extra, bool keep_alive, int minor,
                     bool head_only);
/* A response with the JSON body {"error": <msg>}. */
void mock_resp_error(struct mock_thread *th, struct buf *dst, int status, const char *msg,
                     bool keep_alive, int minor);
/* Should this GET/HEAD be answered 304 (If-None-Match against <etag>, else If-Modified-Since
 * against the routes' Last-Modified)? */
bool mock_resp_not_modified(const struct h1_request *req, const struct mock_route *r,
                            const char *etag);

/* What a handler may look at: slices of the parsed request, valid during the call only. */
struct mock_reqinfo {
    const struct h1_request *req;
    const struct mock_param *params;
    size_t nparams;
    const char *body;
    size_t body_len;
};

/* Builds the body of <r> for <ri> into <out> (mock_body.c). Returns the status to answer with
 * (the route's status, or 400/401 when the handler rejects the request). */
int mock_body_build(const struct mock_route *r, const struct mock_reqinfo *ri, struct buf *out);
/* Last-Modified of the routes that send it: the process start, formatted once at startup. */
extern char mock_last_modified[HTTP_DATE_LEN + 1];
extern int64_t mock_last_modified_s;
/* Builds a small JSON error body {"error": <msg>}. */
void mock_body_error(struct buf *out, const char *msg);
/* Pads the JSON object in <out> (which ends with '}') up to <size> bytes with a "padding" member.
 */
void mock_body_pad(struct buf *out, uint64_t size);
/* Strong ETag of <body> as "\"<16 hex>\"" into <out> (24 bytes). */
void mock_body_etag(const char *body, size_t len, char out[24]);

/* Admin endpoints under /_mock/ (mock_admin.c): fills <status>, the JSON body in <out>. */
int mock_admin_handle(struct mock_thread *th, const struct h1_request *req, const char *body,
                      size_t body_len, struct buf *out);

#endif
