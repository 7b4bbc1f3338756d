/* The doctor's rules: pure functions from the numbers a probe collected (the "facts" structs
 * below) to findings. No I/O, no clock: probes fill facts, rules judge them, and unit tests feed
 * rules hand-made facts. Thresholds live here, one constant each, and in the table of
 * docs/doctor.md#thresholds, nowhere else. */
#ifndef AG_DOCTOR_RULES_H
#define AG_DOCTOR_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "doctor/finding.h"

/* ---- PostgreSQL ---- */

#define PG_FACTS_MAX 8

struct pg_blocked {
    int pid;
    int blocker_pid;
    double wait_s;           /* since the blocked statement started */
    char query[200];         /* the blocked statement */
    char blocker_state[32];  /* "idle in transaction", "active" */
    double blocker_xact_s;   /* age of the blocker's transaction */
    char blocker_query[200]; /* the blocker's last statement */
};

struct pg_stmt {
    double mean_ms;
    double total_ms;
    long long calls;
    long long rows;
    char query[400];
    char plan[400]; /* what EXPLAIN showed (seq scans, estimated vs actual rows), "" when not run */
};

/* A sequential scan found in the EXPLAIN plan of a top statement: the table, the column its
 * filter or its join condition compares (checked against the table's columns), and whether an
 * index starting with that column exists already. */
struct pg_planscan {
    char table[128];   /* schema.table */
    char column[64];   /* "" when the plan's conditions name no column of the table */
    char cond[160];    /* the condition the column came from: "(o.user_id = u.id)" */
    double est_rows;   /* the planner's estimate for the scan's output */
    double table_rows; /* pg_class.reltuples */
    bool indexed;      /* an index whose first column is <column> exists */
    int stmt;          /* index into pg_facts.stmts */
};

struct pg_seqscan {
    char table[128]; /* schema.table */
    long long seq_scan;
    long long seq_tup_read;
    long long idx_scan;
    long long n_live_tup;
};

/* A connection limit of one role (pg_roles.rolconnlimit) or database (pg_database.datconnlimit)
 * and the client backends counted against it. */
struct pg_limit {
    char name[64];
    int limit;
    int used;
};

struct pg_replica {
    char name[64];   /* application_name */
    char client[64]; /* client_addr */
    char state[32];
    double replay_lag_s; /* -1 when unknown */
    long long lag_bytes; /* -1 when unknown */
};

struct pg_facts {
    char where[160]; /* "127.0.0.1:5432/app" for messages */
    int max_connections;
    int reserved; /* superuser_reserved_connections */
    int total;    /* client backends in pg_stat_activity */
    int active, idle, idle_in_tx;
    int idle_in_tx_pid;         /* the oldest idle-in-transaction session */
    double idle_in_tx_oldest_s; /* its state age */
    char idle_in_tx_query[200];
    int active_oldest_pid;  /* the longest-running active statement */
    double active_oldest_s; /* since its query_start */
    char active_oldest_query[200];
    int n_blocked;
    struct pg_blocked blocked[PG_FACTS_MAX];
    bool pgss; /* pg_stat_statements readable */
    char pgss_error[160];
    int n_stmts;
    struct pg_stmt stmts[PG_FACTS_MAX]; /* by mean time, slowest first */
    int n_seqscans;
    struct pg_seqscan seqscans[PG_FACTS_MAX];
    bool explained;       /* the top statements were EXPLAINed (plan-based index advice) */
    bool explain_analyze; /* ... with ANALYZE (--explain-analyze) */
    int n_planscans;
    struct pg_planscan planscans[PG_FACTS_MAX];
    int n_role_limits, n_db_limits; /* roles / databases that have a limit (>= 0) */
    struct pg_limit role_limits[PG_FACTS_MAX], db_limits[PG_FACTS_MAX]; /* fullest first */
    bool pgbouncer_in_front; /* the PgBouncer probe ran too: advice is about its pools */
    long long blks_hit, blks_read;
    bool is_replica;
    /* When the probed server is itself a replica: */
    bool replay_paused;        /* pg_is_wal_replay_paused() */
    long long replica_pending; /* received but not replayed WAL bytes */
    double replica_behind_s;   /* now() - last replayed commit, meaningful when pending > 0 */
    int n_replicas;
    struct pg_replica replicas[PG_FACTS_MAX];
};

/* Thresholds (docs/doctor.md has the reasons). */
#define RULES_PG_CONN_WARN 0.80
#define RULES_PG_CONN_CRIT 0.95
#define RULES_PG_IDLE_TX_WARN_S 5.0
#define RULES_PG_IDLE_TX_CRIT_S 300.0
#define RULES_PG_BLOCKED_CRIT_S 30.0
#define RULES_PG_LONG_QUERY_WARN_S 60.0
#define RULES_PG_STMT_WARN_MS 100.0
#define RULES_PG_STMT_CRIT_MS 1000.0
#define RULES_PG_STMT_MIN_CALLS 10           /* fewer calls: a one-off (setup, migration, manual) */
#define RULES_PG_STMT_ONEOFF_WARN_MS 30000.0 /* ... judged only from this mean on */
#define RULES_PG_LIMIT_WARN 0.80             /* per-role / per-database connection limits */
#define RULES_PG_SEQ_MIN_SCANS 10
#define RULES_PG_SEQ_MIN_ROWS_PER_SCAN 1000
#define RULES_PG_SEQ_MIN_TUP_READ 100000
#define RULES_PG_HIT_WARN 0.90
#define RULES_PG_HIT_MIN_BLOCKS 10000
#define RULES_PG_REPL_WARN_S 10.0
#define RULES_PG_REPL_CRIT_S 60.0
#define RULES_PG_REPL_WARN_BYTES (16ll << 20) /* one WAL segment */
#define RULES_PG_REPL_CRIT_BYTES (1ll << 30)

/* A PgBouncer default_pool_size for a database whose sessions are mostly idle: enough server
 * connections for the busy ones with headroom (active × 1.5, at least 5), never more than 80% of
 * what the server accepts (max_connections − reserved). <active> is the active session count. */
int rules_pg_pool_size(int active, int max_connections, int reserved);
/* The column of a table with alias <alias> that the plan condition <cond> compares
 * ("(o.user_id = u.id)" with alias "o" gives "user_id"; unqualified names count too), keeping only
 * names listed in <columns> (the table's columns, comma-separated: "id,user_id,total"). Prefers a
 * column compared with '='. Returns 1 with the name in <out>, or 0. */
int rules_pg_plan_column(const char *cond, const char *alias, const char *columns, char *out,
                         size_t outlen);
void rules_pg(const struct pg_facts *pg, struct finding_list *out);

/* ---- PgBouncer ---- */

struct pgb_pool {
    char database[64];
    char user[64];
    char mode[16]; /* session / transaction / statement */
    int cl_active, cl_waiting;
    int sv_active, sv_idle, sv_used;
    double maxwait_s; /* how long the oldest waiting client has waited */
    int pool_size;    /* from SHOW DATABASES, 0 when unknown */
};

struct pgb_facts {
    char where[160];
    int n_pools;
    struct pgb_pool pools[PG_FACTS_MAX * 2];
    double avg_wait_us;         /* SHOW STATS avg_wait_time, largest over databases */
    int server_max_connections; /* from the PostgreSQL probe when it ran, else 0 */
};

#define RULES_PGB_WAIT_CRIT_S 1.0

void rules_pgbouncer(const struct pgb_facts *pgb, struct finding_list *out);

/* ---- Redis ---- */

struct redis_slow {
    long long id;
    long long duration_us;
    char command[160];
};

/* A Redis Cluster node as CLUSTER NODES shows it, and what the probe read from it. */
#define REDIS_NODES_MAX 32
struct redis_node {
    char addr[64];       /* ip:port (the client port) */
    char id[41];         /* node id */
    char primary_id[41]; /* a replica's primary ("" for a primary) */
    bool primary, myself;
    bool fail, pfail; /* the cluster's verdict (fail), or this node's suspicion (fail?) */
    bool noaddr;      /* no address known (handshake, noaddr): not asked */
    bool linked;      /* link-state connected */
    int slots;        /* slots it serves */
    char ranges[80];  /* "0-5460 10923", cut to fit */
    int replicas;     /* its replicas that are not failing */
    /* from the node itself (reached: INFO read; else <error>) */
    bool reached;
    char error[96];
    long long used_memory, used_memory_peak, maxmemory, evicted_keys, hits, misses;
    long long connected_clients, maxclients, rejected_connections;
    long long apigate_keys; /* primaries: keys of the L2 prefix in one SCAN step */
    char policy[32];
};

/* A primary a Sentinel monitors (SENTINEL MASTERS, SENTINEL REPLICAS, SENTINEL CKQUORUM). */
#define REDIS_SENTINEL_MASTERS 8
struct redis_sentinel_master {
    char name[64];
    char addr[72];   /* the primary's ip:port */
    char flags[64];  /* "master", "master,s_down,o_down", ... */
    int replicas;    /* known replicas (num-slaves) */
    int replicas_ok; /* ... not down or disconnected */
    int sentinels;   /* sentinels monitoring it, this one included (num-other-sentinels + 1) */
    int quorum;
    bool ckquorum_ok; /* SENTINEL CKQUORUM: a failover can be authorized */
    char ckquorum[160];
};

struct redis_facts {
    char where[160];
    long long hits, misses;
    long long evicted_keys;
    long long used_memory, used_memory_peak, maxmemory;
    char policy[32]; /* maxmemory-policy */
    long long connected_clients, blocked_clients, maxclients, rejected_connections;
    double ping_ms; /* median of a few PINGs */
    int n_slow;
    struct redis_slow slow[5];
    long long apigate_keys; /* keys named apigate:* in one SCAN step: apigate's L2 lives here */
    /* Redis Cluster (INFO cluster_enabled:1): CLUSTER INFO, CLUSTER NODES, and each node's INFO.
     * hits, misses, evicted_keys and apigate_keys above are then sums over the nodes read; the
     * memory and clients fields are the fullest node's (mem_node, clients_node). */
    bool cluster;
    char cluster_state[16]; /* "ok", "fail" */
    int slots_assigned, slots_ok, slots_pfail, slots_fail, known_nodes;
    int n_nodes, nodes_reached;
    bool nodes_truncated; /* more than REDIS_NODES_MAX nodes: the rest not listed */
    struct redis_node nodes[REDIS_NODES_MAX];
    char mem_node[64], clients_node[64];
    /* A Redis Sentinel (INFO redis_mode:sentinel): what it monitors; the keyspace rules are
     * then the primary's business, not this process's. */
    bool sentinel;
    int n_masters;
    struct redis_sentinel_master masters[REDIS_SENTINEL_MASTERS];
    bool gateway_l2;                 /* the gateway probe ran and its cache has a Redis L2 */
    bool gateway_caches;             /* the gateway probe ran and its cache answers lookups */
    double gw_l2_hits, gw_l2_misses; /* its L2 counters (in its window), -1 unknown */
};

#define RULES_REDIS_HIT_CRIT 0.10
#define RULES_REDIS_HIT_WARN 0.80
#define RULES_REDIS_MIN_LOOKUPS 100
#define RULES_REDIS_MEM_WARN 0.90
#define RULES_REDIS_CLIENTS_WARN 0.80
#define RULES_REDIS_SLOW_WARN_US 10000
#define RULES_REDIS_PING_WARN_MS 10.0

void rules_redis(const struct redis_facts *r, struct finding_list *out);
/* The cluster's findings (rules_redis_cluster.c): slots, failing nodes, replicas. */
void rules_redis__cluster(const struct redis_facts *r, struct finding_list *out);
/* A Sentinel's findings (rules_redis_sentinel.c): each monitored primary, its replicas, the
 * quorum. */
void rules_redis__sentinel(const struct redis_facts *r, struct finding_list *out);

/* ---- Gateway (/stats) ---- */

#define GW_LE_MAX 80
#define GW_L2_NODES 16

/* A Redis node as the gateway's L2 sees it (cache.l2.nodes[] of /stats). */
struct gw_l2_node {
    char addr[72];
    char role[12]; /* primary, node, sentinel */
    bool connected;
    double slots;
    double errors; /* a counter: since start in a sample, the difference in a window */
};

/* One /stats document (probe_gateway__parse), or the window between two of them
 * (probe_gateway__window). Each field is -1 when /stats did not have it (the rule that needs it
 * is skipped). Counters are totals since start in a sample, differences in a window. */
struct gw_facts {
    char where[160];
    double window_s; /* > 0: counters are the differences over this many seconds; 0: since start */
    bool reset;      /* the request counters restarted inside the window (a new worker): the
                        window's numbers are the second sample's, since that restart */
    double requests_total;
    double responses_5xx;
    double latency_p95_ms; /* over the window when latency_windowed, else since start */
    bool latency_windowed;
    double cache_hits, cache_misses; /* hits = fresh + stale, misses = miss + expired */
    double cache_stale, cache_expired, cache_bypass, cache_not_stored, cache_stores;
    double l2_hits, l2_misses;
    bool l2_enabled;
    /* the L2's view of Redis (cache.l2 of apigate serve): "" / -1 when /stats has none */
    char l2_mode[16]; /* single, cluster, sentinel */
    double l2_errors, l2_nodes_known, l2_nodes_connected, l2_slots_covered, l2_failovers;
    int n_l2_nodes;
    struct gw_l2_node l2_nodes[GW_L2_NODES];
    double shed_total;
    double pool_wait_p95_ms; /* since start (a histogram /stats gives only as a percentile) */
    double breakers_open;    /* a gauge: now */
    double upstream_connects_total;
    double upstream_reuses; /* requests sent on a reused upstream connection */
    double closed_not_reusable,
        closed_upstream_closed; /* from /metrics apigate_pool_closed_total */
    double worker_restarts;
    double worker_crashes, worker_recycles; /* the restarts split: crashed or hung / max_requests */
    double threads;
    double life_requests, life_5xx, life_crashes, life_recycles; /* since start, for evidence */
    int n_le; /* latency_window: cumulative counts per upper bound (ms) */
    double le_ms[GW_LE_MAX], le_count[GW_LE_MAX];
    double le_total; /* requests in latency_window, over every bound */
};

#define RULES_GW_5XX_WARN 0.01
#define RULES_GW_5XX_CRIT 0.05
#define RULES_GW_P95_WARN_MS 500.0
#define RULES_GW_P95_CRIT_MS 2000.0
#define RULES_GW_HIT_WARN 0.80   /* the alert: below 80% */
#define RULES_GW_HIT_TARGET 0.90 /* the target: above 90% (info between the two) */
#define RULES_GW_MIN_REQUESTS 20 /* requests (or cache lookups) before a rate is judged */
#define RULES_GW_SHED_WARN 0.01
#define RULES_GW_POOL_WAIT_WARN_MS 100.0
#define RULES_GW_CHURN_WARN 0.50

void rules_gateway(const struct gw_facts *g, struct finding_list *out);

/* ---- Host (/proc) ---- */

struct host_dest {
    char addr[64]; /* "10.0.0.5:5432" */
    int total;     /* sockets to it from an ephemeral local port, any state but LISTEN */
    int time_wait;
    char service[16]; /* db_dests only: "PostgreSQL", "PgBouncer", "Redis", ... */
};

/* A port whose clients should hold pooled connections: a connection per request to it shows as
 * TIME_WAIT sockets (the client closes first). */
struct host_db_port {
    int port;
    char service[16];
};

struct host_facts {
    int port_lo, port_hi; /* ip_local_port_range */
    int sockets;          /* all non-listening TCP sockets */
    int time_wait;
    int n_dests;
    struct host_dest dests[PG_FACTS_MAX]; /* busiest first */
    long long fd_allocated, fd_max;       /* /proc/sys/fs/file-nr */
    long long nofile_soft;                /* RLIMIT_NOFILE of this shell: what a child would get */
    long long listen_overflows;           /* TcpExt ListenOverflows, -1 when unknown */
    long long listen_drops;
    int somaxconn;
    int cpus;
    int gateway_threads; /* from the gateway probe, 0 when unknown */
    int n_db_ports;      /* set before the probe runs (doctor.c) */
    struct host_db_port db_ports[16];
    int n_db_dests; /* outgoing sockets to those ports, busiest first */
    struct host_dest db_dests[PG_FACTS_MAX];
    uint8_t listen_ports[65536 / 8]; /* bitmap of local ports in LISTEN (probe scratch) */
};

#define RULES_HOST_PORTS_WARN 0.50
#define RULES_HOST_PORTS_CRIT 0.80
#define RULES_HOST_FD_WARN 0.80
#define RULES_HOST_NOFILE_MIN 4096
#define RULES_HOST_SOMAXCONN_MIN 1024
#define RULES_HOST_DB_TIME_WAIT_WARN 100 /* TIME_WAIT sockets to one database address */
#define RULES_HOST_DB_TIME_WAIT_CRIT 5000

/* Adds the usual database ports (PostgreSQL 5432, PgBouncer 6432, MySQL 3306, Redis 6379,
 * MongoDB 27017, memcached 11211) to <h>, and <port> as <service> when it is not among them
 * (the ports of --postgres, --pgbouncer, --redis). */
void rules_host_db_port(struct host_facts *h, int port, const char *service);

void rules_host(const struct host_facts *h, struct finding_list *out);

/* ---- Target (--target URL) ---- */

struct target_sample {
    bool ok;
    int status;
    double dns_ms, connect_ms, tls_ms, ttfb_ms,
        total_ms; /* cumulative from the start, as curl -w */
    char error[96];
};

struct target_facts {
    char url[512];
    int n;
    struct target_sample *samples; /* n of them, owned by the caller */
    /* When the last good answer is a cache-stats JSON object (a /metrics/cache endpoint:
     * {"hits": N, "misses": M} or "hitRate": 0.93 / "93.0%"), else -1. */
    double cache_hits, cache_misses, cache_rate;
};

#define RULES_TARGET_P95_WARN_MS 500.0

/* Percentile <p> (0..100, nearest rank) of <n> values; sorts a copy. 0 when n == 0. */
double rules_percentile(const double *v, int n, double p);
void rules_target(const struct target_facts *t, struct finding_list *out);

#endif
