/* The gateway's configuration as typed C structs, loaded from YAML through the descriptor tables of
 * config/cfg.h (every key has a default, bounds and a doc line; `apigate check --help-config`
 * prints them). A loaded struct gw_config is immutable: a reload builds a new one. This file does
 * not open sockets nor resolve names; addresses with a numeric host are parsed here, hostnames are
 * kept for the resolver. */
#ifndef AG_GATEWAY_GWCONF_H
#define AG_GATEWAY_GWCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/cfg.h"
#include "net/sock.h"

/* Units of the fields below: durations are uint64_t milliseconds (`_ms`), sizes uint64_t bytes,
 * percentages a double fraction 0..1, counts int64_t. Enums are stored as int (cfg writes an int
 * index), compare them with the GW_* values. */

enum gw_balance { GW_BALANCE_ROUND_ROBIN = 0, GW_BALANCE_LEAST_REQUEST, GW_BALANCE_EWMA };
enum gw_match { GW_MATCH_PREFIX = 0, GW_MATCH_EXACT, GW_MATCH_GLOB };
enum gw_fmt { GW_FMT_TEXT = 0, GW_FMT_JSON };
enum gw_level { GW_LEVEL_DEBUG = 0, GW_LEVEL_INFO, GW_LEVEL_WARN, GW_LEVEL_ERROR };
enum gw_eviction { GW_EVICT_S3FIFO = 0, GW_EVICT_SIEVE };
enum gw_breaker_scope { GW_BREAKER_ROUTE = 0, GW_BREAKER_UPSTREAM };

/* One certificate of a TLS listener (paths resolved against the config file's folder). */
struct gw_tls_cert {
    char *cert;  /* PEM chain, leaf first */
    char *key;   /* PEM private key */
};

/* `listen: [{address: ..., tls: {...}}]` — TLS termination on one listener (net/tls.h). */
struct gw_listen_tls {
    bool enabled;
    char *cert, *key;            /* the `cert:`/`key:` shorthand (also certs[0] when given) */
    struct gw_tls_cert *certs;   /* every certificate, chosen by SNI; [0] is the default */
    size_t ncerts;
    char *client_ca;             /* clients must present a certificate this CA signed; NULL: off */
    int verify_client;           /* with client_ca: 0 required, 1 optional (the enum's index) */
    int min_version;             /* 0: TLS 1.2, 1: TLS 1.3 (the enum's index) */
    char *ciphers;               /* TLS 1.2 cipher list; NULL: the modern default */
    bool session_tickets;
    uint64_t ticket_rotation_ms; /* a new ticket key this often */
    int64_t session_cache;       /* server-side session cache entries; 0: off */
};

/* One `listen:` address. */
struct gw_listen {
    char *spec;            /* as written: "127.0.0.1:8080" */
    struct sock_addr addr; /* parsed (numeric host or localhost) */
    struct gw_listen_tls tls;
};

/* `workers:` — the process model (supervisor + one worker with N loop threads). */
struct gw_workers {
    int64_t threads;              /* loop threads; 0 in the file = usable CPUs (resolved at load) */
    uint64_t worker_timeout_ms;   /* a loop thread that has not ticked this long: worker killed */
    int64_t max_requests;         /* recycle the worker after this many requests; 0: never */
    int64_t max_requests_jitter;  /* + random 0..jitter, so a fleet does not recycle together */
    uint64_t drain_timeout_ms;    /* SIGTERM / reload: time given to in-flight requests */
    uint64_t busy_poll_us;        /* longest busy-poll window of a loop thread; 0: never spin */
};

/* `server:` — limits on downstream (client) connections. */
struct gw_server {
    uint64_t client_header_timeout_ms; /* whole request head must arrive within this */
    uint64_t client_body_timeout_ms;   /* between two reads of the request body */
    uint64_t keepalive_timeout_ms;     /* idle kept-alive client connection is closed after */
    int64_t keepalive_requests;        /* requests per client connection; 0: unlimited */
    uint64_t send_timeout_ms;          /* between two writes to a slow client */
    uint64_t max_head_size;            /* request line + headers; larger: 431 */
    uint64_t max_head_memory;          /* per loop thread: partial heads held; over: closed */
    uint64_t max_body_size;            /* request body; larger: 413 */
    int64_t max_headers;               /* number of request headers; more: 431 */
    int64_t max_response_headers;      /* header fields of an upstream response; more: 502 */
    int64_t max_connections;           /* open client connections per worker; over: accept paused */
    int64_t concurrency;               /* requests in flight in the whole gateway; 0: unlimited */
    int64_t backlog;                   /* listen(2) backlog of each listening socket */
    bool server_timing;                /* Server-Timing header on responses (trace.c) */
};

/* `logging:` */
struct gw_logging {
    int level;            /* enum gw_level */
    int format;           /* enum gw_fmt: error log format */
    char *access_log;     /* file path, "stderr", or "off" */
    int access_format;    /* enum gw_fmt */
    uint64_t access_buffer;   /* bytes buffered per thread before a write */
    uint64_t access_flush_ms; /* buffered lines are written at least this often */
};

/* `admin:` — the admin listener's settings besides its address (gw_config.admin). A mutating
 * request (any method but GET and HEAD) needs `Authorization: Bearer <token>` when a token is set;
 * a non-loopback address without one is a config error unless `insecure: true`. */
struct gw_admin {
    char *token_file;            /* NULL: no token */
    bool insecure;               /* non-loopback without a token accepted (mutations open) */
    bool readyz_strict;          /* /readyz also needs every upstream ready (old meaning) */
    int64_t max_connections;     /* open admin connections; probes get reserved slots above */
    uint64_t header_timeout_ms;  /* a request head must be complete this long after it starts */
    uint64_t idle_timeout_ms;    /* an idle admin connection is closed after this */
    char *token;                 /* token_file's content without trailing white space */
    size_t token_len;
};

/* `path_normalization:` — how a request path is made canonical before routing (and forwarded so). */
struct gw_path_norm {
    bool merge_slashes;        /* "//" is "/" */
    bool reject_encoded_slash; /* %2F / %5C get 400; false: kept encoded, routed as one segment */
};

/* `http2:` — HTTP/2 client sessions (h2c by prior knowledge, ALPN h2 on TLS listeners). */
struct gw_http2 {
    bool enabled;                   /* false: h2c prefaces get 505 and ALPN offers http/1.1 only */
    int64_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint64_t max_header_list_size;  /* decoded request header bytes per stream (HPACK bombs) */
    int64_t max_resets;             /* stream resets a client may send per 10 s (rapid reset) */
    uint64_t window_size;           /* request body bytes buffered per stream (flow control) */
};

/* `headers:` (top level) and `routes[].headers:` — request header names with '_'. nginx drops them
 * by default: an origin's CGI-style mapping turns `Content_Length` into CONTENT_LENGTH, the same
 * variable as the real header. */
enum gw_underscores { GW_US_DROP = 0, GW_US_REJECT, GW_US_ALLOW };
struct gw_headers {
    int underscores; /* top level: enum gw_underscores; a route: 0 inherit, else the enum + 1 */
};

/* `cache:` — the shared response cache (L1 in memory, optional L2 in Redis). */
struct gw_cache {
    uint64_t memory;          /* hard byte limit of the in-process cache; 0 disables caching */
    uint64_t max_object_size; /* larger responses pass through uncached */
    int64_t shards;           /* lock shards; 0 = auto (power of two ≥ 4 × threads) */
    int eviction;             /* enum gw_eviction */
    bool coalesce;            /* concurrent misses for one key wait for one upstream fetch */
    uint64_t coalesce_timeout_ms; /* a waiter gives up and fetches itself after this */
    uint64_t max_stale_ms;    /* entries kept past freshness at most this long (grace cap) */
    char *redis;              /* "redis://host:port/db" L2, NULL: none */
    uint64_t redis_timeout_ms;     /* an L2 lookup slower than this counts as a miss */
    char *redis_prefix;            /* key prefix in Redis */
    char *redis_channel;           /* pub/sub channel for purge events */
    uint64_t redis_max_object_size; /* larger objects stay L1-only */
    uint64_t redis_reconnect_ms;   /* pause between reconnect attempts when Redis is down */
    char *key_secret;              /* HMAC secret of varied header values in keys, as written */
    char *key_secret_file;         /* or a file holding it */
    char *key_secret_data;         /* the secret loaded (from either), NULL: none configured */
    size_t key_secret_len;
};

/* `upstreams.<name>.tls:` (implied by https:// servers). */
struct gw_tls {
    bool enabled;   /* set when any server is https:// or the upstream has a tls: section */
    bool verify;    /* verify the certificate chain and name */
    char *ca_file;  /* PEM bundle; NULL: system default */
    char *sni;      /* server name sent and verified; NULL: the server's host */
    char *cert_file;/* client certificate (mutual TLS), NULL: none */
    char *key_file;
};

/* `upstreams.<name>.pool:` — per loop thread, per server. */
struct gw_pool {
    int64_t max_connections;  /* open connections (busy + idle) */
    int64_t max_idle;         /* idle kept-alive connections kept */
    uint64_t idle_timeout_ms; /* idle connection closed after */
    uint64_t queue_timeout_ms;/* a request waits this long for a connection, then 503 */
    int64_t max_queue;        /* requests waiting for a connection; over: 503 at once */
    int64_t keepalive_requests; /* requests per upstream connection; 0: unlimited */
    uint64_t settle_ms;       /* quiet time before reuse after a bodyless response; 0: off */
};

/* `upstreams.<name>.health:` — active checks (enabled when the section is present). */
struct gw_health {
    bool enabled;
    char *path;
    uint64_t interval_ms;
    uint64_t timeout_ms;
    int64_t healthy_threshold;   /* consecutive successes to mark a server up */
    int64_t unhealthy_threshold; /* consecutive failures to mark it down */
    int64_t expect_min;          /* a status in expect_min..expect_max is a success */
    int64_t expect_max;
};

/* `upstreams.<name>.outlier:` — consecutive-failure ejection (outlier.c); off while
 * consecutive_failures is 0. */
struct gw_outlier {
    int64_t consecutive;          /* 5xx / connect failures in a row that eject a server */
    uint64_t base_ejection_ms;    /* first ejection; the k-th lasts k × this */
    uint64_t max_ejection_ms;     /* cap of the growing ejection time */
    double max_ejection_percent;  /* never more than this share of the servers out at once */
};

/* One upstream server. */
struct gw_upserver {
    char *spec;            /* as written */
    char *host;            /* hostname or IP literal, without brackets */
    int port;
    bool tls;              /* https:// or the upstream's tls: section */
    bool numeric;          /* host is an IP literal / localhost: addr is valid */
    struct sock_addr addr; /* when numeric */
    int64_t weight;        /* relative share (round_robin), default 1 */
    bool backup;           /* used only when every non-backup server is down */
};

/* `upstreams.<name>:` */
struct gw_upstream {
    char *name;
    struct gw_upserver *servers;
    size_t nservers;
    int balance;                 /* enum gw_balance */
    struct gw_pool pool;
    uint64_t connect_timeout_ms;
    struct gw_health health;
    struct gw_tls tls;
    char *host;                  /* Host header sent upstream; NULL: the client's */
    int64_t max_fails;           /* passive: failures within fail_timeout mark a server down */
    uint64_t fail_timeout_ms;    /* … and keep it down this long; max_fails 0 disables */
    struct gw_outlier outlier;
};

/* `routes[].cache:` — enabled when the key is present (`cache: {}` = pure RFC 9111). */
struct gw_route_cache {
    bool enabled;
    uint64_t ttl_ms;            /* freshness when the origin gives none (always, with override) */
    bool override;              /* ignore origin no-store/private/max-age: use ttl */
    uint64_t stale_while_revalidate_ms;
    uint64_t stale_if_error_ms;
    struct cfg_strlist invalidate; /* paths purged after a successful unsafe request */
    struct cfg_strlist invalidate_tags; /* tags purged then; "{N}": the Nth path segment */
    bool invalidate_self;       /* a successful unsafe request purges its own URI (RFC 9111 4.4) */
    struct cfg_strlist vary;    /* request headers added to the key */
    struct cfg_strlist ignore_query; /* query parameters dropped from the key ("*": all) */
    bool sort_query;            /* normalise parameter order in the key */
    struct cfg_strlist statuses_str; /* cacheable statuses as written; parsed into statuses */
    int *statuses;              /* NULL: RFC 9111 heuristically cacheable set */
    size_t nstatuses;
    uint64_t negative_ttl_ms;   /* ttl for 404/410 when the origin says nothing; 0: no */
    uint64_t max_object_size;   /* 0: the global cache.max_object_size */
    bool coalesce;              /* per-route switch for request coalescing */
    bool allow_set_cookie;      /* store Set-Cookie responses (the cookie itself never stored) */
    char *tag_header;           /* response header of cache tags; NULL: none */
};

/* `routes[].timeout:` */
struct gw_route_timeout {
    uint64_t connect_ms;    /* 0: the upstream's connect_timeout */
    uint64_t first_byte_ms; /* last request byte sent → first byte of the response head */
    uint64_t total_ms;      /* whole exchange, including retries */
};

/* `routes[].limit:` */
struct gw_route_limit {
    int64_t concurrency;      /* requests in flight on this route (per gateway); 0: unlimited */
    uint64_t retry_after_ms;  /* Retry-After of the 503 sent when over the limit */
    bool adaptive;            /* gradient limit from measured latency (adaptive.c) */
    int64_t adaptive_min;     /* the adaptive limit never goes below this */
    int64_t adaptive_max;     /* … nor above this */
    int64_t adaptive_initial; /* limit before the first measurement */
    uint64_t adaptive_window_ms;   /* latency samples are averaged over this */
    uint64_t min_rtt_interval_ms;  /* the minimum latency is re-measured this often */
};

/* `routes[].rate_limit:` — enabled when present (ratelimit.c, docs/ratelimit.md). */
enum gw_rl_key { GW_RL_KEY_CLIENT = 0, GW_RL_KEY_HEADER, GW_RL_KEY_JWT };
struct gw_rate_limit {
    bool enabled;
    char *rate;               /* as written: N/s, N/m or N/h */
    char *key;                /* as written: client, header:NAME or jwt:CLAIM */
    int64_t burst;            /* GCRA: admitted at once; 0: the default (count / 10, at least 1) */
    int algorithm;            /* enum rlimit_algo: gcra|fixed_window|sliding_window */
    bool shared;              /* counts shared across instances through cache.redis */
    uint64_t sync_interval_ms; /* shared: each active key synced this often (rlshare.c) */
    int64_t max_keys;         /* keys tracked per route (memory bound) */
    /* derived at load */
    uint64_t count;           /* N of N/period */
    uint64_t period_ms;       /* 1000, 60000 or 3600000 */
    uint64_t burst_eff;       /* burst, or its default */
    int key_kind;             /* enum gw_rl_key */
    const char *key_name;     /* the header name or the claim, inside <key> */
};

/* `routes[].breaker:` — enabled when present. */
struct gw_breaker {
    bool enabled;
    uint64_t window_ms;
    int64_t buckets;
    double error_threshold;   /* fraction of failed requests in the window that opens it */
    int64_t min_requests;     /* no decision below this many requests in the window */
    uint64_t open_for_ms;     /* open → half-open after */
    int64_t half_open_requests; /* probes let through while half-open */
    struct cfg_strlist failure_statuses; /* statuses that count as failures; empty: every 5xx */
    int scope;                /* enum gw_breaker_scope: own breaker, or the upstream's shared one */
};

/* `routes[].retry:` */
struct gw_retry {
    int64_t attempts;         /* extra attempts after the first; 0: none */
    double budget;            /* retries ≤ this fraction of requests (per route, per thread) */
    struct cfg_strlist on;    /* connect_error, timeout, 502, 503, 504 …; empty: connect_error */
    uint64_t backoff_ms;      /* base pause before a retry (jittered) */
    bool non_idempotent;      /* also retry POST / PATCH (requests without a body only) */
};

struct gw_header {
    char *name;
    char *value;
};

/* `routes[].fallback:` — served when the upstream fails and no stale copy exists. */
struct gw_fallback {
    bool enabled;
    int64_t status;
    struct gw_header *headers;
    size_t nheaders;
    char *body;
    size_t body_len;
};

/* `routes[].compress:` — response compression, on when present (compress.c). */
#define GW_COMPRESS_MAX_ENC 3
struct gw_compress {
    bool enabled;
    struct cfg_strlist types;     /* media types (type/subtype, or a whole type); empty: the default */
    uint64_t min_size;            /* bodies with a smaller Content-Length go as they are */
    int64_t level;                /* 0: each coding's default */
    uint64_t max_decoded;         /* an origin's encoded body decodes to at most this much */
    struct cfg_strlist encodings_str; /* as written; parsed into enc */
    int enc[GW_COMPRESS_MAX_ENC]; /* enum codec_enc, the server's order of preference */
    size_t nenc;
};

/* `routes[].tunnel:` — the byte tunnel an HTTP/1.1 Upgrade (WebSocket) becomes after the
 * upstream's 101 (tunnel.c). */
struct gw_route_tunnel {
    uint64_t idle_timeout_ms;  /* no byte either way this long: closed */
    uint64_t max_duration_ms;  /* closed this long after the 101 whatever it does; 0: no limit */
    uint64_t buffer;           /* bytes buffered per direction before the reading side pauses */
};

/* `routes[]:` */
struct gw_route {
    char *match;            /* pattern in route.h form: "= /x" exact (also for `exact: true`),
                               glob when it has '*' or '?', else prefix */
    char *path;             /* the literal pattern, without the "= " */
    int kind;               /* enum gw_match */
    bool exact;             /* `exact: true` or "= /path" */
    char *host;             /* match only this Host (without port); NULL: any */
    struct cfg_strlist methods; /* upper-case; empty: any */
    char *upstream;         /* name */
    size_t upstream_index;  /* into gw_config.upstreams, checked at load */
    struct gw_route_cache cache;
    struct gw_route_timeout timeout;
    struct gw_route_limit limit;
    struct gw_breaker breaker;
    struct gw_rate_limit rate_limit;
    struct gw_retry retry;
    struct gw_fallback fallback;
    struct gw_compress compress;
    struct gw_headers headers; /* underscores: 0 = the top-level setting */
    bool websocket;         /* Upgrade requests are forwarded and tunneled after a 101 */
    struct gw_route_tunnel tunnel;
    int line;               /* position in the file, for messages */
};

struct gw_config {
    char *path;                /* file it was loaded from */
    struct gw_listen *listen;
    size_t nlisten;
    char *admin;               /* as written; NULL when "off" */
    bool admin_enabled;
    struct sock_addr admin_addr;
    struct gw_admin admin_cfg; /* the rest of `admin:` */
    struct gw_workers workers;
    struct gw_server server;
    struct gw_logging logging;
    struct gw_cache cache;
    struct gw_path_norm path_norm;
    struct gw_http2 http2;
    struct gw_headers headers;
    struct gw_upstream *upstreams;
    size_t nupstreams;
    struct gw_route *routes;   /* in file order */
    size_t nroutes;
};

/* Loads and validates <path>. Returns the config, or NULL with every error of the file in <errs>
 * ("file:line:col: key: what is wrong; what is allowed"). The caller frees with gwconf_free. */
struct gw_config *gwconf_load(const char *path, struct cfg_errors *errs);
/* Same from a string; <name> stands for the file name in messages. */
struct gw_config *gwconf_load_string(const char *text, size_t len, const char *name,
                                     struct cfg_errors *errs);
void gwconf_free(struct gw_config *cfg);

/* Command-line overrides applied right after load (serve --listen/--admin/--threads). Each
 * returns 0 or -1 with a message in <err>. <addr> for admin may be "off". */
int gwconf_set_listen(struct gw_config *cfg, const char *addr, char *err, size_t errlen);
int gwconf_set_admin(struct gw_config *cfg, const char *addr, char *err, size_t errlen);
/* True when the admin listener is on, off loopback and without a token (`insecure: true`):
 * anyone who reaches it may purge the cache. check warns, serve logs it. */
bool gwconf_admin_open(const struct gw_config *cfg);
int gwconf_set_threads(struct gw_config *cfg, long threads, char *err, size_t errlen);

/* Lookups for the data path. NULL when out of range / unknown. */
const struct gw_route *gwconf_route(const struct gw_config *cfg, size_t i);
const struct gw_upstream *gwconf_upstream(const struct gw_config *cfg, size_t i);
const struct gw_upstream *gwconf_upstream_by_name(const struct gw_config *cfg, const char *name);
/* Index of upstream <name>, or -1. */
long gwconf_upstream_index(const struct gw_config *cfg, const char *name);

/* True when the listening sockets of <a> and <b> differ (addresses or thread count), so a reload
 * must open new ones. */
bool gwconf_listen_changed(const struct gw_config *a, const struct gw_config *b);

/* Prints the reference of every key (Markdown table rows with defaults, bounds and docs). */
void gwconf_print_reference(FILE *out);
/* Prints <cfg> as YAML with every key, defaults included (`apigate check --dump`); loading the
 * output gives the same configuration. */
void gwconf_dump(const struct gw_config *cfg, FILE *out);

#endif
