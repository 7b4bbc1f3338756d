/* Layout of the run-time upstreams, shared by upstream.c (set-up), upool.c (per-thread pools) and
 * health.c (active checks) only. Cross-thread fields are atomics; everything else is written at
 * start-up and read-only afterwards. */
#ifndef AG_GATEWAY_UPSTREAM_PRIV_H
#define AG_GATEWAY_UPSTREAM_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/gwconf.h"
#include "gateway/upstream.h"
#include "metrics/metrics.h"
#include "net/sock.h"

struct health;
struct outlier;
struct resolve_name;
struct resolver;
struct tls_client;
struct tls_session;

/* Reasons a connection was closed by the pool: the `reason` label of apigate_pool_closed_total. */
enum upstream_close {
    UPSTREAM_CLOSE_IDLE_TIMEOUT = 0, /* idle longer than pool.idle_timeout */
    UPSTREAM_CLOSE_PEER,             /* the server closed (or sent bytes on) an idle connection */
    UPSTREAM_CLOSE_MAX_IDLE,         /* more idle connections than pool.max_idle */
    UPSTREAM_CLOSE_NOT_REUSABLE,     /* released as not reusable (Connection: close, error) */
    UPSTREAM_CLOSE_MAX_REQUESTS,     /* carried pool.keepalive_requests requests */
    UPSTREAM_CLOSE_SHUTDOWN,         /* pool destroyed */
    UPSTREAM_CLOSE_STRAY,            /* bytes with no request outstanding: on an idle connection,
                                        left over after a complete response, or a response
                                        before its request was sent */
    UPSTREAM_CLOSE_UPGRADED,         /* switched protocols (101): taken out for a tunnel */
    UPSTREAM_CLOSE_COUNT,
};

/* Connect failure reasons: the `reason` label of apigate_upstream_connect_errors_total, in the
 * order of upstream_connect_reasons[]. */
#define UPSTREAM_CONNECT_REASONS 5

struct upstream_server {
    const struct gw_upserver *conf;
    char *name;                    /* label value: the spec as written */
    const char *tls_name;          /* SNI / verified name: tls.sni or the host */
    struct resolve_name *dns;      /* NULL for numeric hosts (conf->addr is used) */
    struct tls_session *tls_sess;  /* NULL for plain servers */
    _Atomic bool healthy;          /* active checks' verdict; true without checks */
    _Atomic uint64_t down_until_ms;/* passive ejection (max_fails) until this monotonic time */
    _Atomic uint32_t fails;        /* failures in the current fail_timeout window */
    _Atomic uint64_t fail_window_ms; /* start of that window */
    /* metrics */
    metrics_ref m_connects;
    metrics_ref m_connect_errors[UPSTREAM_CONNECT_REASONS];
    metrics_ref m_healthy;
    metrics_ref m_checks_ok, m_checks_fail;
    metrics_ref m_ejections;
    metrics_ref m_duration;        /* histogram: lend → release of a connection (one exchange) */
    /* health.c only */
    int64_t hc_ok_streak, hc_fail_streak;
    bool hc_saw_healthy;           /* the verdict as the checker last left it: a server marked up
                                      by a proxied success restarts its failure streak */
    char hc_last[128];             /* last check result for /upstreams ("200", "connect refused") */
};

struct upstream {
    const struct gw_upstream *conf;
    struct upstream_set *set;
    size_t index;
    struct upstream_server *servers;
    size_t nservers;
    struct tls_client *tls;        /* NULL when no server uses TLS */
    struct outlier *outlier;       /* consecutive-failure ejection (outlier.c); NULL: off */
    _Atomic bool panic;            /* every server is down: all are tried anyway (upool.c) */
    /* metrics: per upstream */
    metrics_ref m_in_use, m_idle, m_connecting, m_waiting;
    metrics_ref m_wait;            /* histogram: time queued for a connection */
    metrics_ref m_connect_time;    /* histogram: connect + TLS handshake */
    metrics_ref m_reuses;          /* acquires served by an idle connection */
    metrics_ref m_closed[UPSTREAM_CLOSE_COUNT];
    metrics_ref m_err_queue_timeout, m_err_queue_full, m_err_no_healthy;
    metrics_ref m_tls_full, m_tls_resumed;
};

struct upstream_set {
    const struct gw_config *cfg;
    struct metrics *metrics;
    size_t nthreads;
    struct upstream *ups;
    size_t n;
    struct resolver *resolver;     /* NULL when every host is numeric */
    struct health *health;         /* NULL when no upstream has health checks */
};

extern const char *const upstream_connect_reasons[UPSTREAM_CONNECT_REASONS];
extern const char *const upstream_close_reasons[UPSTREAM_CLOSE_COUNT];

/* Has <s> an address (numeric, or its name resolved at least once)? */
bool upstream__resolved(const struct upstream_server *s);
/* May server <s> take new requests now (healthy, resolved, not passively ejected)? */
bool upstream__usable(const struct upstream_server *s, uint64_t now_ms);
/* Copies a current address of <s> (rotating over DNS records with <seq>); false when none. */
bool upstream__addr(struct upstream_server *s, uint64_t seq, struct sock_addr *out);
/* Records a failure (connect error or failed exchange) for passive ejection; true when this one
 * ejected the server. */
bool upstream__fail(struct upstream *u, struct upstream_server *s, uint64_t now_ms);
/* Records a successful exchange: breaks a run of failures for outlier ejection, ends a passive
 * ejection and marks a server that the health checks had marked down up again at once (the
 * origin answered: the next check confirms or marks it down anew). */
void upstream__success(struct upstream *u, struct upstream_server *s, uint64_t now_ms);
/* Index into m_connect_errors of the reason string <err> (an upool_err_* pointer). */
size_t upstream__reason_index(const char *err);
/* Logs entering (<on>) or leaving panic mode, once per transition of <u> (any thread). */
void upstream__panic(struct upstream *u, bool on);
/* Sets the active health verdict of <s> (health.c); logs transitions. */
void upstream__set_healthy(struct upstream *u, struct upstream_server *s, bool healthy,
                           const char *why);

#endif
