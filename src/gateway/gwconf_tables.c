/* The descriptor tables of the gateway config: every key, its type, where it goes, its default,
 * bounds and doc line. Data only; gwconf.c loads with them, gwconf_doc.c prints them. */
#include "gateway/gwconf_priv.h"

#include <stddef.h>

#include "gateway/gwconf.h"

/* ---- descriptor tables ----
 * A nested CFG_SECTION entry has offset 0 and its sub-table uses offsets into the same outer
 * struct (offsetof(outer, section.field)), so the fields land right whether cfg adds the section
 * offset or not. */

#define W(f) offsetof(struct gw_config, workers.f)
const struct cfg_desc gwconf__workers_desc[] = {
    {"threads", CFG_INT, W(threads), "0", "0", "64",
     "event-loop threads of the worker, each with its own SO_REUSEPORT socket per listen "
     "address; 0 = usable CPUs (affinity and container CPU quota)",
     NULL, NULL, false},
    {"worker_timeout", CFG_DURATION, W(worker_timeout_ms), "30s", "1s", "1h",
     "a loop thread that has not ticked for this long gets its worker killed and replaced",
     NULL, NULL, false},
    {"max_requests", CFG_INT, W(max_requests), "0", "0", "1000000000000",
     "replace the worker gracefully after this many requests (like gunicorn); 0 = never", NULL,
     NULL, false},
    {"max_requests_jitter", CFG_INT, W(max_requests_jitter), "0", "0", "1000000000000",
     "add a random 0..N to max_requests so that gateways do not all recycle at once", NULL, NULL,
     false},
    {"drain_timeout", CFG_DURATION, W(drain_timeout_ms), "10s", "0ms", "1h",
     "on SIGTERM or reload, time given to in-flight requests before the worker is killed", NULL,
     NULL, false},
    {"busy_poll", CFG_DURATION_US, W(busy_poll_us), "50us", "0us", "1ms",
     "a busy loop thread asks for events without sleeping for up to this long before it sleeps "
     "(the window adapts: it grows while sleeps stay shorter than this and shrinks to none when "
     "the thread idles); saves the peers' wake-up of a sleeping thread; 0 = always sleep",
     NULL, NULL, false},
    {NULL}};
#undef W

#define S(f) offsetof(struct gw_config, server.f)
const struct cfg_desc gwconf__server_desc[] = {
    {"client_header_timeout", CFG_DURATION, S(client_header_timeout_ms), "10s", "1ms", "1h",
     "the whole request head must arrive within this (slowloris guard); else 408", NULL, NULL,
     false},
    {"client_body_timeout", CFG_DURATION, S(client_body_timeout_ms), "30s", "1ms", "1h",
     "longest pause between two reads of a request body while the gateway waits for it (not "
     "while a slower upstream holds reads paused); else 408",
     NULL, NULL, false},
    {"keepalive_timeout", CFG_DURATION, S(keepalive_timeout_ms), "5s", "0ms", "1h",
     "an idle kept-alive client connection is closed after this; 0 = no keep-alive", NULL, NULL,
     false},
    {"keepalive_requests", CFG_INT, S(keepalive_requests), "0", "0", "1000000000",
     "requests served on one client connection before it is closed; 0 = unlimited", NULL, NULL,
     false},
    {"send_timeout", CFG_DURATION, S(send_timeout_ms), "30s", "1ms", "1h",
     "longest pause between two successful writes to a slow client", NULL, NULL, false},
    {"max_head_size", CFG_SIZE, S(max_head_size), "32KB", "1KB", "1MB",
     "largest request line + headers; larger gets 431", NULL, NULL, false},
    {"max_head_memory", CFG_SIZE, S(max_head_memory), "64MB", "1MB", "64GB",
     "memory the connections of one loop thread may hold for request heads that have not "
     "arrived whole (slowloris); a connection that would go over it is closed", NULL, NULL,
     false},
    {"max_body_size", CFG_SIZE, S(max_body_size), "10MB", "0", "4GB",
     "largest request body; larger gets 413", NULL, NULL, false},
    {"max_headers", CFG_INT, S(max_headers), "100", "1", "1000",
     "most request header fields; more gets 431", NULL, NULL, false},
    {"max_response_headers", CFG_INT, S(max_response_headers), "256", "1", "512",
     "most header fields of an upstream response; more is a 502", NULL, NULL, false},
    {"max_connections", CFG_INT, S(max_connections), "10000", "1", "10000000",
     "open client connections per worker; above it accepting pauses", NULL, NULL, false},
    {"concurrency", CFG_INT, S(concurrency), "0", "0", "10000000",
     "requests in flight in the whole gateway; above it 503 + Retry-After; 0 = unlimited", NULL,
     NULL, false},
    {"backlog", CFG_INT, S(backlog), "511", "1", "65535",
     "listen(2) backlog of each listening socket", NULL, NULL, false},
    {"server_timing", CFG_BOOL, S(server_timing), "false", NULL, NULL,
     "add a Server-Timing header (cache, pool, upstream, total) to responses", NULL, NULL, false},
    {NULL}};
#undef S

#define L(f) offsetof(struct gw_config, logging.f)
const struct cfg_desc gwconf__logging_desc[] = {
    {"level", CFG_ENUM, L(level), "info", NULL, NULL, "lowest level written to the error log",
     "debug|info|warn|error", NULL, false},
    {"format", CFG_ENUM, L(format), "text", NULL, NULL, "error log format (stderr)", "text|json",
     NULL, false},
    {"access_log", CFG_STRING, L(access_log), "off", NULL, NULL,
     "access log destination: a file path, stderr, or off", NULL, NULL, false},
    {"access_format", CFG_ENUM, L(access_format), "text", NULL, NULL,
     "access log line format", "text|json", NULL, false},
    {"access_buffer", CFG_SIZE, L(access_buffer), "64KB", "0", "16MB",
     "access log bytes buffered per thread before a write", NULL, NULL, false},
    {"access_flush", CFG_DURATION, L(access_flush_ms), "1s", "1ms", "1m",
     "buffered access log lines are written at least this often", NULL, NULL, false},
    {NULL}};
#undef L

#define C(f) offsetof(struct gw_config, cache.f)
const struct cfg_desc gwconf__cache_desc[] = {
    {"memory", CFG_SIZE, C(memory), "256MB", "0", "1TB",
     "hard byte limit of the in-process cache shared by all threads; 0 disables caching", NULL,
     NULL, false},
    {"max_object_size", CFG_SIZE, C(max_object_size), "1MB", "0", "1GB",
     "larger responses pass through uncached", NULL, NULL, false},
    {"shards", CFG_INT, C(shards), "0", "0", "4096",
     "lock shards of the cache; 0 = auto (a power of two, at least 4 per thread)", NULL, NULL,
     false},
    {"eviction", CFG_ENUM, C(eviction), "sieve", NULL, NULL,
     "scan-resistant eviction policy", "s3fifo|sieve", NULL, false},
    {"coalesce", CFG_BOOL, C(coalesce), "true", NULL, NULL,
     "concurrent misses on one key wait for a single upstream fetch", NULL, NULL, false},
    {"coalesce_timeout", CFG_DURATION, C(coalesce_timeout_ms), "10s", "1ms", "1h",
     "a coalesced waiter stops waiting after this and fetches by itself", NULL, NULL, false},
    {"max_stale", CFG_DURATION, C(max_stale_ms), "1h", "0ms", "30d",
     "an entry is kept past its freshness at most this long (cap on stale grace)", NULL, NULL,
     false},
    {"redis", CFG_STRING, C(redis), NULL, NULL, NULL,
     "second-level cache shared by gateways (optional): redis://host:port/db, unix:///path, "
     "{cluster: [address:port, ...]} (Redis Cluster seeds) or {sentinels: [address:port, ...], "
     "master: NAME}", NULL, NULL,
     false},
    {"redis_timeout", CFG_DURATION, C(redis_timeout_ms), "50ms", "1ms", "10s",
     "an L2 lookup slower than this counts as a miss", NULL, NULL, false},
    {"redis_prefix", CFG_STRING, C(redis_prefix), "apigate:", "1", NULL,
     "prefix of every key written to Redis", NULL, NULL, false},
    {"redis_channel", CFG_STRING, C(redis_channel), "apigate:purge", "1", NULL,
     "Redis pub/sub channel on which purges are published to every gateway", NULL, NULL, false},
    {"redis_max_object_size", CFG_SIZE, C(redis_max_object_size), "512KB", "0", "512MB",
     "larger objects stay in the in-process cache only", NULL, NULL, false},
    {"redis_reconnect", CFG_DURATION, C(redis_reconnect_ms), "1s", "10ms", "1m",
     "pause between reconnect attempts while Redis is down", NULL, NULL, false},
    {"key_secret", CFG_STRING, C(key_secret), NULL, NULL, NULL,
     "secret (16+ bytes) of the HMAC that stands for varied request header values in cache keys; "
     "unset: key_secret_file, else one agreed through cache.redis, else random per worker",
     NULL, NULL, false},
    {"key_secret_file", CFG_STRING, C(key_secret_file), NULL, NULL, NULL,
     "file holding key_secret (trailing newline ignored); gateways sharing a Redis L2 use the "
     "same", NULL, NULL, false},
    {NULL}};
#undef C

#define P(f) offsetof(struct gw_config, path_norm.f)
const struct cfg_desc gwconf__path_norm_desc[] = {
    {"merge_slashes", CFG_BOOL, P(merge_slashes), "true", NULL, NULL,
     "'//' in a request path counts as '/' for routing and is forwarded merged", NULL, NULL,
     false},
    {"reject_encoded_slash", CFG_BOOL, P(reject_encoded_slash), "true", NULL, NULL,
     "a path with %2F or %5C gets 400; false: they stay encoded and route as part of a segment",
     NULL, NULL, false},
    {NULL}};
#undef P
#define H(f) offsetof(struct gw_config, headers.f)
const struct cfg_desc gwconf__headers_desc[] = {
    {"underscores", CFG_ENUM, H(underscores), "drop", NULL, NULL,
     "request header names with '_' (Content_Length, X_User): drop = not forwarded, not seen by "
     "the cache (nginx's default); reject = 400; allow = treated like any header",
     "drop|reject|allow", NULL, false},
    {NULL}};
#undef H

/* `admin:` as a map; `admin: ADDR` sets only the address (the first entry). */
#define A(f) offsetof(struct gw_config, admin_cfg.f)
const struct cfg_desc gwconf__admin_desc[] = {
    {"address", CFG_STRING, offsetof(struct gw_config, admin), "127.0.0.1:9901", "1", NULL,
     "admin listener (/metrics, /stats, /healthz, /readyz, /cache/purge): host:port, or off",
     NULL, NULL, false},
    {"token_file", CFG_STRING, A(token_file), NULL, "1", NULL,
     "file holding the token (16+ visible characters) that mutating requests (POST "
     "/cache/purge, ...) must send as 'Authorization: Bearer TOKEN'; read at start and reload",
     NULL, NULL, false},
    {"insecure", CFG_BOOL, A(insecure), "false", NULL, NULL,
     "accept a non-loopback address without token_file (anyone who reaches it may purge); "
     "without it that is a config error", NULL, NULL, false},
    {"readyz_strict", CFG_BOOL, A(readyz_strict), "false", NULL, NULL,
     "/readyz also answers 503 while an upstream has no healthy server (as /readyz?strict=1); "
     "default: ready = this gateway serves", NULL, NULL, false},
    {"max_connections", CFG_INT, A(max_connections), "64", "1", "100000",
     "open admin connections; above it 4 more may only ask /healthz or /readyz", NULL, NULL,
     false},
    {"header_timeout", CFG_DURATION, A(header_timeout_ms), "10s", "1ms", "1h",
     "a request head must be complete within this from its first byte (from the accept for "
     "the first); else the connection is closed", NULL, NULL, false},
    {"idle_timeout", CFG_DURATION, A(idle_timeout_ms), "30s", "1ms", "1h",
     "an admin connection with no request under way is closed after this", NULL, NULL, false},
    {NULL}};
#undef A

#define H(f) offsetof(struct gw_config, http2.f)
const struct cfg_desc gwconf__http2_desc[] = {
    {"enabled", CFG_BOOL, H(enabled), "true", NULL, NULL,
     "HTTP/2 on client listeners: h2c by prior knowledge on plain ones, ALPN h2 on TLS ones",
     NULL, NULL, false},
    {"max_concurrent_streams", CFG_INT, H(max_concurrent_streams), "100", "1", "10000",
     "streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are "
     "refused with REFUSED_STREAM",
     NULL, NULL, false},
    {"max_header_list_size", CFG_SIZE, H(max_header_list_size), "32KB", "1KB", "1MB",
     "decoded request header bytes per stream (HPACK bombs, CONTINUATION floods); more resets "
     "the stream",
     NULL, NULL, false},
    {"max_resets", CFG_INT, H(max_resets), "200", "1", "1000000",
     "stream resets (RST_STREAM) a client may send in 10 s; more closes the connection with "
     "GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487)",
     NULL, NULL, false},
    {"window_size", CFG_SIZE, H(window_size), "64KB", "16KB", "16MB",
     "request body bytes a stream may have in flight before the gateway consumed them "
     "(its flow-control window)",
     NULL, NULL, false},
    {NULL}};
#undef H

const struct cfg_desc gwconf__root_desc[] = {
    {"workers", CFG_SECTION, 0, NULL, NULL, NULL, "process model", NULL, gwconf__workers_desc,
     false},
    {"server", CFG_SECTION, 0, NULL, NULL, NULL, "client connection limits", NULL,
     gwconf__server_desc, false},
    {"logging", CFG_SECTION, 0, NULL, NULL, NULL, "error and access logs", NULL,
     gwconf__logging_desc, false},
    {"cache", CFG_SECTION, 0, NULL, NULL, NULL, "shared response cache", NULL, gwconf__cache_desc,
     false},
    {"path_normalization", CFG_SECTION, 0, NULL, NULL, NULL,
     "request paths are routed and forwarded after RFC 3986 dot-segment removal and decoding of "
     "unreserved %XX; %00 and a '..' above the root always get 400",
     NULL, gwconf__path_norm_desc, false},
    {"http2", CFG_SECTION, 0, NULL, NULL, NULL, "HTTP/2 client sessions (docs/http2.md)", NULL,
     gwconf__http2_desc, false},
    {"headers", CFG_SECTION, 0, NULL, NULL, NULL, "request header handling", NULL,
     gwconf__headers_desc, false},
    {NULL}};
const char *const gwconf__root_manual[] = {"listen", "admin", "upstreams", "routes", NULL};

/* upstreams.<name> */
#define U(f) offsetof(struct gw_upstream, f)
const struct cfg_desc gwconf__pool_desc[] = {
    {"max_connections", CFG_INT, U(pool.max_connections), "64", "1", "100000",
     "open connections (busy + idle) per loop thread and server", NULL, NULL, false},
    {"max_idle", CFG_INT, U(pool.max_idle), "32", "0", "100000",
     "idle keep-alive connections kept per loop thread and server", NULL, NULL, false},
    {"idle_timeout", CFG_DURATION, U(pool.idle_timeout_ms), "60s", "1ms", "1h",
     "an idle pooled connection is closed after this (keep it below the upstream's own)", NULL,
     NULL, false},
    {"queue_timeout", CFG_DURATION, U(pool.queue_timeout_ms), "1s", "0ms", "1m",
     "a request waits this long for a free connection, then gets 503", NULL, NULL, false},
    {"max_queue", CFG_INT, U(pool.max_queue), "1024", "0", "10000000",
     "requests waiting for a connection per loop thread; above it 503 at once", NULL, NULL,
     false},
    {"keepalive_requests", CFG_INT, U(pool.keepalive_requests), "0", "0", "1000000000",
     "requests sent on one upstream connection before it is closed; 0 = unlimited", NULL, NULL,
     false},
    {"settle", CFG_DURATION, U(pool.settle_ms), "50ms", "0ms", "10s",
     "after a response that has no body (HEAD, 204, 304), and after every response once the "
     "server sent stray bytes, a connection is reused only after this long idle (late bytes "
     "then close it); a cached route's GET/HEAD takes only a connection idle this long (or a "
     "new one); 0 = reuse at once", NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__health_desc[] = {
    {"path", CFG_STRING, U(health.path), "/", "1", NULL, "path probed with GET", NULL, NULL,
     false},
    {"interval", CFG_DURATION, U(health.interval_ms), "2s", "10ms", "1h", "time between probes",
     NULL, NULL, false},
    {"timeout", CFG_DURATION, U(health.timeout_ms), "1s", "1ms", "1m",
     "a probe slower than this failed", NULL, NULL, false},
    {"healthy_threshold", CFG_INT, U(health.healthy_threshold), "2", "1", "1000",
     "consecutive successes that mark a server up", NULL, NULL, false},
    {"unhealthy_threshold", CFG_INT, U(health.unhealthy_threshold), "3", "1", "1000",
     "consecutive failures that mark a server down", NULL, NULL, false},
    {"expect_min", CFG_INT, U(health.expect_min), "200", "100", "599",
     "lowest status that counts as healthy", NULL, NULL, false},
    {"expect_max", CFG_INT, U(health.expect_max), "399", "100", "599",
     "highest status that counts as healthy", NULL, NULL, false},
    {NULL}};
#define L(f) offsetof(struct gw_listen_tls, f)
const struct cfg_desc gwconf__listen_tls_desc[] = {
    {"cert", CFG_STRING, L(cert), NULL, NULL, NULL,
     "certificate chain (PEM, leaf first); relative paths start at the config file's folder",
     NULL, NULL, false},
    {"key", CFG_STRING, L(key), NULL, NULL, NULL, "private key (PEM) of cert", NULL, NULL,
     false},
    {"client_ca", CFG_STRING, L(client_ca), NULL, NULL, NULL,
     "PEM CA bundle: clients must present a certificate it signed (mutual TLS); default: off",
     NULL, NULL, false},
    {"verify_client", CFG_ENUM, L(verify_client), "required", NULL, NULL,
     "with client_ca: required (no certificate, no handshake) or optional (a client without one "
     "is let in; X-Client-Verify tells the upstream NONE or SUCCESS)",
     "required|optional", NULL, false},
    {"min_version", CFG_ENUM, L(min_version), "1.2", NULL, NULL,
     "oldest TLS version accepted", "1.2|1.3", NULL, false},
    {"ciphers", CFG_STRING, L(ciphers), NULL, NULL, NULL,
     "TLS 1.2 cipher list (OpenSSL syntax); default: ECDHE with AES-GCM or ChaCha20", NULL, NULL,
     false},
    {"session_tickets", CFG_BOOL, L(session_tickets), "true", NULL, NULL,
     "resumption by session tickets (keys in memory, shared by the worker's threads)", NULL,
     NULL, false},
    {"ticket_rotation", CFG_DURATION, L(ticket_rotation_ms), "1h", "1m", "1d",
     "a new ticket key this often; tickets resume for two periods", NULL, NULL, false},
    {"session_cache", CFG_INT, L(session_cache), "20000", "0", "10000000",
     "sessions kept for resumption by session id (TLS 1.2 clients without tickets); 0 = off",
     NULL, NULL, false},
    {NULL}};
const char *const gwconf__listen_tls_manual[] = {"certs", NULL};
#undef L
const struct cfg_desc gwconf__tls_desc[] = {
    {"verify", CFG_BOOL, U(tls.verify), "true", NULL, NULL,
     "verify the server certificate chain and name", NULL, NULL, false},
    {"ca_file", CFG_STRING, U(tls.ca_file), NULL, NULL, NULL,
     "PEM file of trusted CAs; default: the system store", NULL, NULL, false},
    {"sni", CFG_STRING, U(tls.sni), NULL, NULL, NULL,
     "server name sent (SNI) and verified; default: the server's host", NULL, NULL, false},
    {"cert_file", CFG_STRING, U(tls.cert_file), NULL, NULL, NULL,
     "client certificate (PEM) for mutual TLS", NULL, NULL, false},
    {"key_file", CFG_STRING, U(tls.key_file), NULL, NULL, NULL,
     "private key (PEM) of cert_file", NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__outlier_desc[] = {
    {"consecutive_failures", CFG_INT, U(outlier.consecutive), "0", "0", "1000",
     "5xx / connect failures in a row that eject a server; 0 = off", NULL, NULL, false},
    {"base_ejection_time", CFG_DURATION, U(outlier.base_ejection_ms), "10s", "10ms", "1h",
     "first ejection; the k-th recent one lasts k times this", NULL, NULL, false},
    {"max_ejection_time", CFG_DURATION, U(outlier.max_ejection_ms), "5m", "10ms", "1d",
     "cap of the growing ejection time", NULL, NULL, false},
    {"max_ejection_percent", CFG_PERCENT, U(outlier.max_ejection_percent), "50%", "1%", "100%",
     "never eject more than this share of the servers (at least one may be)", NULL, NULL,
     false},
    {NULL}};
const struct cfg_desc gwconf__upstream_desc[] = {
    {"balance", CFG_ENUM, U(balance), "round_robin", NULL, NULL,
     "how a server is chosen", "round_robin|least_request|ewma", NULL, false},
    {"pool", CFG_SECTION, 0, NULL, NULL, NULL, "keep-alive connection pool", NULL,
     gwconf__pool_desc, false},
    {"connect_timeout", CFG_DURATION, U(connect_timeout_ms), "1s", "1ms", "1m",
     "time to open a TCP (and TLS) connection to a server", NULL, NULL, false},
    {"host", CFG_STRING, U(host), NULL, NULL, NULL,
     "Host header sent upstream; default: the client's", NULL, NULL, false},
    {"max_fails", CFG_INT, U(max_fails), "0", "0", "1000",
     "passive checks: this many failures within fail_timeout mark a server down; 0 = off", NULL,
     NULL, false},
    {"fail_timeout", CFG_DURATION, U(fail_timeout_ms), "10s", "1ms", "1h",
     "window of max_fails and the time a failed server stays down", NULL, NULL, false},
    {"outlier", CFG_SECTION, 0, NULL, NULL, NULL,
     "outlier ejection: consecutive failures eject a server for a growing time", NULL,
     gwconf__outlier_desc, false},
    {NULL}};
const char *const gwconf__upstream_manual[] = {"servers", "health", "tls", NULL};
#undef U

/* routes[] */
#define R(f) offsetof(struct gw_route, f)
const struct cfg_desc gwconf__rcache_desc[] = {
    {"ttl", CFG_DURATION, R(cache.ttl_ms), "0ms", "0ms", "365d",
     "freshness when the origin gives none (always, with override); 0 = origin headers only",
     NULL, NULL, false},
    {"override", CFG_BOOL, R(cache.override), "false", NULL, NULL,
     "ignore the origin's no-store/private/no-cache/max-age and use ttl", NULL, NULL, false},
    {"stale_while_revalidate", CFG_DURATION, R(cache.stale_while_revalidate_ms), "0ms", "0ms",
     "30d", "serve a stale copy this long while it is refreshed in the background", NULL, NULL,
     false},
    {"stale_if_error", CFG_DURATION, R(cache.stale_if_error_ms), "0ms", "0ms", "30d",
     "serve a stale copy this long when the upstream fails (5xx, timeout, breaker open)", NULL,
     NULL, false},
    {"invalidate", CFG_STRLIST, R(cache.invalidate), NULL, NULL, NULL,
     "paths purged (all variants) after a successful POST/PUT/PATCH/DELETE on this route; or a "
     "map {paths: [...], tags: [...]} (below)",
     NULL, NULL, false},
    {"invalidate_tags", CFG_STRLIST, R(cache.invalidate_tags), NULL, NULL, NULL,
     "cache tags purged after a successful POST/PUT/PATCH/DELETE on this route; {N} is the Nth "
     "path segment after the route's match (user-{1} for PUT /api/users/7 on match /api/users/)",
     NULL, NULL, false},
    {"invalidate_self", CFG_BOOL, R(cache.invalidate_self), "true", NULL, NULL,
     "a successful unsafe request purges its own URI and Location/Content-Location", NULL, NULL,
     false},
    {"vary", CFG_STRLIST, R(cache.vary), NULL, NULL, NULL,
     "request headers added to the cache key (e.g. Authorization for per-user entries)", NULL,
     NULL, false},
    {"ignore_query", CFG_STRLIST, R(cache.ignore_query), NULL, NULL, NULL,
     "query parameters left out of the key (utm_source, ...; \"*\" = the whole query)", NULL,
     NULL, false},
    {"sort_query", CFG_BOOL, R(cache.sort_query), "true", NULL, NULL,
     "sort query parameters in the key so ?a=1&b=2 and ?b=2&a=1 share an entry", NULL, NULL,
     false},
    {"statuses", CFG_STRLIST, R(cache.statuses_str), NULL, NULL, NULL,
     "cacheable statuses; default: RFC 9111's heuristically cacheable ones", NULL, NULL, false},
    {"negative_ttl", CFG_DURATION, R(cache.negative_ttl_ms), "0ms", "0ms", "1d",
     "freshness of 404/410 when the origin gives none; 0 = not cached", NULL, NULL, false},
    {"max_object_size", CFG_SIZE, R(cache.max_object_size), "0", "0", "1GB",
     "per-route limit; 0 = cache.max_object_size", NULL, NULL, false},
    {"coalesce", CFG_BOOL, R(cache.coalesce), "true", NULL, NULL,
     "coalesce concurrent misses of this route", NULL, NULL, false},
    {"tag_header", CFG_STRING, R(cache.tag_header), NULL, NULL, NULL,
     "response header naming the entry's cache tags (Surrogate-Key, Cache-Tag), space or comma "
     "separated; kept with the entry for POST /cache/purge?tag=, never sent to clients",
     NULL, NULL, false},
    {"allow_set_cookie", CFG_BOOL, R(cache.allow_set_cookie), "false", NULL, NULL,
     "store responses that carry Set-Cookie, without it: the cookie reaches only the client "
     "whose request filled the entry",
     NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__timeout_desc[] = {
    {"connect", CFG_DURATION, R(timeout.connect_ms), "0ms", "0ms", "1m",
     "time to connect to the upstream; 0 = the upstream's connect_timeout", NULL, NULL, false},
    {"first_byte", CFG_DURATION, R(timeout.first_byte_ms), "30s", "1ms", "1h",
     "last request byte sent to first byte of the response; else 504", NULL, NULL, false},
    {"total", CFG_DURATION, R(timeout.total_ms), "60s", "1ms", "1h",
     "whole exchange including retries; else 504", NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__limit_desc[] = {
    {"concurrency", CFG_INT, R(limit.concurrency), "0", "0", "10000000",
     "requests in flight on this route; above it 503 + Retry-After; 0 = unlimited", NULL, NULL,
     false},
    {"retry_after", CFG_DURATION, R(limit.retry_after_ms), "1s", "0ms", "1h",
     "Retry-After sent with the 503 (rounded up to seconds)", NULL, NULL, false},
    {"adaptive", CFG_BOOL, R(limit.adaptive), "false", NULL, NULL,
     "adaptive concurrency limit from measured latency (gradient); excess gets 503 at once",
     NULL, NULL, false},
    {"adaptive_min", CFG_INT, R(limit.adaptive_min), "2", "1", "100000",
     "lowest adaptive limit", NULL, NULL, false},
    {"adaptive_max", CFG_INT, R(limit.adaptive_max), "1000", "1", "100000",
     "highest adaptive limit", NULL, NULL, false},
    {"adaptive_initial", CFG_INT, R(limit.adaptive_initial), "20", "1", "100000",
     "adaptive limit before the first measurement", NULL, NULL, false},
    {"adaptive_window", CFG_DURATION, R(limit.adaptive_window_ms), "250ms", "10ms", "1m",
     "latency samples averaged over this before the limit moves", NULL, NULL, false},
    {"min_rtt_interval", CFG_DURATION, R(limit.min_rtt_interval_ms), "30s", "100ms", "1h",
     "the unloaded latency is re-measured this often (limit held at adaptive_min meanwhile)",
     NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__breaker_desc[] = {
    {"window", CFG_DURATION, R(breaker.window_ms), "10s", "100ms", "1h",
     "sliding window in which errors are counted", NULL, NULL, false},
    {"buckets", CFG_INT, R(breaker.buckets), "10", "1", "1000", "buckets of the window", NULL,
     NULL, false},
    {"error_threshold", CFG_PERCENT, R(breaker.error_threshold), "50%", "1%", "100%",
     "share of failed requests (5xx, timeouts, connect errors) that opens the breaker", NULL,
     NULL, false},
    {"min_requests", CFG_INT, R(breaker.min_requests), "20", "1", "1000000",
     "no decision with fewer requests than this in the window", NULL, NULL, false},
    {"open_for", CFG_DURATION, R(breaker.open_for_ms), "30s", "10ms", "1h",
     "an open breaker lets probes through (half-open) after this", NULL, NULL, false},
    {"half_open_requests", CFG_INT, R(breaker.half_open_requests), "1", "1", "1000",
     "probe requests let through while half-open", NULL, NULL, false},
    {"scope", CFG_ENUM, R(breaker.scope), "route", NULL, NULL,
     "route: a breaker of this route alone; upstream: one breaker shared by every route of the "
     "upstream with scope upstream (the first such route's settings)",
     "route|upstream", NULL, false},
    {"failure_statuses", CFG_STRLIST, R(breaker.failure_statuses), NULL, NULL, NULL,
     "response statuses that count as failures (500..599 or 5xx); default: every 5xx", NULL,
     NULL, false},
    {NULL}};
/* `routes[].cache.invalidate:` written as a map (issue 15's `invalidate: {tags: [user-{1}]}`);
 * the list form `invalidate: [/path]` is the paths alone. Same fields as the flat keys. */
const struct cfg_desc gwconf__rinvalidate_desc[] = {
    {"paths", CFG_STRLIST, R(cache.invalidate), NULL, NULL, NULL,
     "paths purged after a successful POST/PUT/PATCH/DELETE (as invalidate: [...])", NULL, NULL,
     false},
    {"tags", CFG_STRLIST, R(cache.invalidate_tags), NULL, NULL, NULL,
     "cache tags purged then; {N} is the Nth path segment after the route's match (as "
     "invalidate_tags)",
     NULL, NULL, false},
    {NULL},
};

const struct cfg_desc gwconf__ratelimit_desc[] = {
    {"rate", CFG_STRING, R(rate_limit.rate), NULL, NULL, NULL,
     "(required) requests per key: N/s, N/m or N/h (N 1..10000000)", NULL, NULL, false},
    {"burst", CFG_INT, R(rate_limit.burst), "0", "0", "10000000",
     "gcra: requests admitted at once from an idle key; 0 = N/10 (at least 1)", NULL, NULL,
     false},
    {"key", CFG_STRING, R(rate_limit.key), "client", NULL, NULL,
     "what is limited: client (address), header:NAME (e.g. an API key), jwt:CLAIM (read from "
     "the Bearer token WITHOUT verifying it); a request without it is keyed by its address",
     NULL, NULL, false},
    {"algorithm", CFG_ENUM, R(rate_limit.algorithm), "gcra", NULL, NULL,
     "gcra: smooth rate with a burst; fixed_window: N per calendar window; sliding_window: N in "
     "any window (estimate from two fixed ones)",
     "gcra|fixed_window|sliding_window", NULL, false},
    {"shared", CFG_BOOL, R(rate_limit.shared), "false", NULL, NULL,
     "one limit for every instance, counted through cache.redis (gcra; admission stays local, "
     "synced every sync_interval; Redis down: each instance counts alone)",
     NULL, NULL, false},
    {"sync_interval", CFG_DURATION, R(rate_limit.sync_interval_ms), "50ms", "10ms", "1s",
     "shared: how often each active key's count is synced with Redis (the overshoot bound grows "
     "with it: docs/ratelimit.md)",
     NULL, NULL, false},
    {"max_keys", CFG_INT, R(rate_limit.max_keys), "65536", "512", "16777216",
     "keys tracked per route (24 bytes each); over it the least limited keys are forgotten",
     NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__retry_desc[] = {
    {"attempts", CFG_INT, R(retry.attempts), "0", "0", "10",
     "extra attempts after the first, for idempotent requests only; 0 = none", NULL, NULL,
     false},
    {"budget", CFG_PERCENT, R(retry.budget), "20%", "0%", "100%",
     "retries allowed as a share of requests, so retries cannot amplify an outage", NULL, NULL,
     false},
    {"on", CFG_STRLIST, R(retry.on), NULL, NULL, NULL,
     "failures retried: connect_error, timeout, 502, 503, 504; default: connect_error", NULL,
     NULL, false},
    {"backoff", CFG_DURATION, R(retry.backoff_ms), "25ms", "0ms", "10s",
     "base pause before a retry (doubled per attempt, jittered)", NULL, NULL, false},
    {"non_idempotent", CFG_BOOL, R(retry.non_idempotent), "false", NULL, NULL,
     "also retry POST and PATCH (requests without a body only)", NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__fallback_desc[] = {
    {"status", CFG_INT, R(fallback.status), "503", "100", "599",
     "status of the fallback response", NULL, NULL, false},
    {"body", CFG_STRING, R(fallback.body), NULL, NULL, NULL, "body of the fallback response",
     NULL, NULL, false},
    {NULL}};
const char *const gwconf__fallback_manual[] = {"headers", NULL};
const struct cfg_desc gwconf__compress_desc[] = {
    {"types", CFG_STRLIST, R(compress.types), NULL, NULL, NULL,
     "response media types compressed: type/subtype or type/* (parameters such as charset are "
     "ignored); default: application/json, text/*", NULL, NULL, false},
    {"min_size", CFG_SIZE, R(compress.min_size), "1KB", "0", "1GB",
     "a response whose Content-Length is below this goes as it is (a body of unknown length is "
     "compressed)", NULL, NULL, false},
    {"level", CFG_INT, R(compress.level), "0", "0", "19",
     "compression level; 0 = each coding's default (gzip 6, br 4, zstd 3); clamped to gzip "
     "1..9, br 1..11, zstd 1..19", NULL, NULL, false},
    {"encodings", CFG_STRLIST, R(compress.encodings_str), NULL, NULL, NULL,
     "codings offered, in the gateway's order of preference (a tie of q-values goes to the "
     "earlier): br, zstd, gzip; default: br, zstd, gzip", NULL, NULL, false},
    {"max_decoded_size", CFG_SIZE, R(compress.max_decoded), "64MB", "1KB", "16GB",
     "an origin's encoded body decoded for a client that does not take its coding may grow to "
     "this much; past it the answer stops (a decompression bomb): a 502, or a close when part "
     "of it went out", NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__route_headers_desc[] = {
    {"underscores", CFG_ENUM, R(headers.underscores), "inherit", NULL, NULL,
     "header names with '_' on this route: inherit = the top-level headers.underscores",
     "inherit|drop|reject|allow", NULL, false},
    {NULL}};
const struct cfg_desc gwconf__tunnel_desc[] = {
    {"idle_timeout", CFG_DURATION, R(tunnel.idle_timeout_ms), "5m", "1s", "7d",
     "an Upgrade tunnel (WebSocket) with no byte either way this long is closed", NULL, NULL,
     false},
    {"max_duration", CFG_DURATION, R(tunnel.max_duration_ms), "0ms", "0ms", "30d",
     "an Upgrade tunnel is closed this long after its 101, busy or not; 0 = no limit", NULL, NULL,
     false},
    {"buffer", CFG_SIZE, R(tunnel.buffer), "64KB", "4KB", "16MB",
     "bytes held per direction of a tunnel; a side is not read while the other has not taken "
     "them (a peer that never reads costs at most twice this)",
     NULL, NULL, false},
    {NULL}};
const struct cfg_desc gwconf__route_desc[] = {
    {"match", CFG_STRING, R(match), NULL, NULL, NULL,
     "(required) path pattern: /prefix/, \"= /exact\", or a glob with * (one segment), ** or ?",
     NULL, NULL, false},
    {"exact", CFG_BOOL, R(exact), "false", NULL, NULL, "match the path exactly", NULL, NULL,
     false},
    {"host", CFG_STRING, R(host), NULL, NULL, NULL,
     "match only requests for this Host (port ignored); default: any", NULL, NULL, false},
    {"methods", CFG_STRLIST, R(methods), NULL, NULL, NULL,
     "match only these methods (GET, POST, ...); default: any", NULL, NULL, false},
    {"upstream", CFG_STRING, R(upstream), NULL, NULL, NULL,
     "(required) name of the upstream the route forwards to", NULL, NULL, false},
    {"timeout", CFG_SECTION, 0, NULL, NULL, NULL, "upstream timeouts", NULL, gwconf__timeout_desc,
     false},
    {"limit", CFG_SECTION, 0, NULL, NULL, NULL, "admission control", NULL, gwconf__limit_desc,
     false},
    {"headers", CFG_SECTION, 0, NULL, NULL, NULL, "request header handling for this route", NULL,
     gwconf__route_headers_desc, false},
    {"retry", CFG_SECTION, 0, NULL, NULL, NULL, "retries with a budget", NULL, gwconf__retry_desc,
     false},
    {"websocket", CFG_BOOL, R(websocket), "true", NULL, NULL,
     "forward HTTP/1.1 Upgrade requests (WebSocket or any protocol but h2c) and HTTP/2 "
     "extended CONNECT WebSockets (RFC 8441), and tunnel the connection (or stream) after the "
     "upstream's 101; false = Upgrade headers dropped, a plain request; an extended CONNECT 501",
     NULL, NULL, false},
    {"tunnel", CFG_SECTION, 0, NULL, NULL, NULL, "the byte tunnel of an accepted Upgrade", NULL,
     gwconf__tunnel_desc, false},
    {NULL}};
const char *const gwconf__route_manual[] = {"cache", "breaker", "fallback", "rate_limit", "compress", NULL};
#undef R
