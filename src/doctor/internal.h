/* Declarations shared by the files of src/doctor only (no other folder includes this). */
#ifndef AG_DOCTOR_INTERNAL_H
#define AG_DOCTOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "doctor/finding.h"
#include "doctor/rules.h"

/* Sorts <l>, prints it (text, or JSON when <json>) to stdout and returns the exit code: 1 when a
 * finding is at or above <fail_on>, else 0. */
int doctor__report(struct finding_list *l, bool json, enum finding_sev fail_on);

/* `apigate doctor plan ...` (plan.c); argv[0] is "plan". */
int plan_main(int argc, char **argv);

/* ---- probes: each connects, collects facts and returns 0, or adds a "cannot reach" finding to
 * <out> and returns -1. Blocking, bounded by <timeout_ms> per network step; run on their own
 * thread by doctor.c. Judging the facts is rules_*()'s job, done after the join. ---- */

/* <explain_analyze>: EXPLAIN ANALYZE (runs the statement, read-only, rolled back) the top
 * statements that have no parameters; otherwise EXPLAIN only. */
int probe_pg_run(const char *url, int timeout_ms, bool explain_analyze, struct pg_facts *f,
                 struct finding_list *out);
int probe_pgbouncer_run(const char *url, int timeout_ms, struct pgb_facts *f,
                        struct finding_list *out);
/* Splits "redis://[user:password@]host[:port][/db]" (also "host:port"). Returns 0 or -1. */
int probe_redis_parse_url(const char *url, char *host, size_t hostlen, int *port, char *pass,
                          size_t passlen);
int probe_redis_run(const char *url, int timeout_ms, struct redis_facts *f,
                    struct finding_list *out);
/* Two samples of /stats <window_ms> apart, judged as their difference; one sample (counters since
 * start) when <window_ms> is 0. */
int probe_gateway_run(const char *url, int timeout_ms, int window_ms, struct gw_facts *f,
                      struct finding_list *out);
/* Reads /proc under <proc_root> ("/proc", or a copy of its files for tests and for judging a
 * snapshot taken elsewhere). */
int probe_host_run(const char *proc_root, struct host_facts *f, struct finding_list *out);
/* <f>->samples is allocated here (f->n of them); the caller frees it. */
int probe_target_run(const char *url, int timeout_ms, int samples, struct target_facts *f,
                     struct finding_list *out);

/* Parsers behind probe_host, exposed for unit tests: */
/* Marks the listening ports of one /proc/net/tcp or tcp6 text in <f> (call for both files before
 * parsing connections, so accepted sockets are not taken for outgoing ones). */
void probe_host__parse_listeners(const char *text, struct host_facts *f);
/* Adds the sockets of one /proc/net/tcp or tcp6 text to <f> (counts and destinations). */
void probe_host__parse_tcp(const char *text, struct host_facts *f);
/* Reads "TcpExt:" ListenOverflows / ListenDrops from /proc/net/netstat text; -1 when absent. */
void probe_host__parse_netstat(const char *text, long long *overflows, long long *drops);
/* Parses INFO text of Redis into <f> (probe_redis). */
void probe_redis__parse_info(const char *text, struct redis_facts *f);
/* CLUSTER NODES text into f->nodes (slots, ranges and each primary's live replicas counted);
 * CLUSTER INFO text into the cluster_* fields (probe_redis_cluster.c). */
void probe_redis__parse_nodes(const char *text, struct redis_facts *f);
void probe_redis__parse_cluster_info(const char *text, struct redis_facts *f);
/* Adds node <n>'s numbers into the cluster totals of <f> (hits, misses, evictions, L2 keys), and
 * makes it the memory or clients node when it is the fullest so far. */
void probe_redis__add_node(struct redis_facts *f, const struct redis_node *n);
/* Reads hits, misses and hitRate of a cache-stats JSON body into <f> (-1 each when absent). */
void probe_target__parse_cache(const char *body, struct target_facts *f);
/* Parses a /stats JSON body into <f>; returns 0 or -1 when it is not a JSON object. */
int probe_gateway__parse(const char *body, struct gw_facts *f);
/* Adds apigate_pool_closed_total by reason (not_reusable, upstream_closed) from /metrics text. */
void probe_gateway__parse_metrics(const char *text, struct gw_facts *f);
/* The window between samples <a> and <b> (<window_s> apart) into <w>: counter differences (the
 * second sample alone when the request counters went down), p95 from the latency_window
 * histograms, gauges and "since start" values from <b>. */
void probe_gateway__window(const struct gw_facts *a, const struct gw_facts *b, double window_s,
                           struct gw_facts *w);

/* ---- EXPLAIN (VERBOSE, FORMAT JSON) plans (explain.c) ---- */

#define EXPLAIN_MAX_SCANS 4

struct explain_scan {
    char schema[64], relation[64], alias[64];
    char filter[160]; /* the scan's own Filter, "" when none */
    char join[160];   /* the join conditions of the nodes above it, " AND "-joined */
    double est_rows;
    double actual_rows; /* rows × loops with ANALYZE, -1 without */
};

struct explain_result {
    int n_scans;
    struct explain_scan scans[EXPLAIN_MAX_SCANS];
    char root_type[48];
    double root_est, root_actual; /* root_actual -1 without ANALYZE */
};

/* Parses one EXPLAIN (FORMAT JSON) document; 0, or -1 when it is not a plan. */
int explain_parse(const char *json, struct explain_result *r);
/* One line for people: "Seq Scan on public.orders o, filter (o.user_id = $1) (estimated 5 rows);
 * Nested Loop Left Join at the top, estimated 5 rows". */
void explain_summary(const struct explain_result *r, char *out, size_t outlen);

/* ---- the libpq wrapper shared by probe_pg.c and probe_pgbouncer.c (only probe_pg.c includes
 * <libpq-fe.h>). Results are copied into plain strings so callers never see libpq types. ---- */

struct probe_pg_conn;
struct probe_pg_res {
    int rows, cols;
    char **names; /* cols */
    char **vals;  /* rows × cols, NULL for SQL NULL */
};

/* Connects to <url> (a postgres:// URI or a conninfo string). <admin_console>: PgBouncer's
 * console, which rejects startup options. NULL with a message in <err> on failure. */
struct probe_pg_conn *probe_pg_connect(const char *url, int timeout_ms, bool admin_console,
                                       char *err, size_t errlen);
/* Runs <sql> with the simple query protocol. 0, or -1 with the server's message in <err>. */
int probe_pg_exec(struct probe_pg_conn *c, const char *sql, struct probe_pg_res *res, char *err,
                  size_t errlen);
/* Value at <row> of column <name>, NULL when the column does not exist or the value is NULL. */
const char *probe_pg_get(const struct probe_pg_res *r, int row, const char *name);
void probe_pg_res_free(struct probe_pg_res *r);
void probe_pg_close(struct probe_pg_conn *c);
/* "host:port/db" of <c> for messages. */
void probe_pg_where(struct probe_pg_conn *c, char *out, size_t outlen);
/* Copies <url> to <out> with any password replaced by "***" ("postgres://app:***@db/x", also a
 * conninfo "password=..."), so reports can be pasted into tickets. */
void doctor__redact(const char *url, char *out, size_t outlen);
/* The reason libpq gave, cut to its first line (for "cannot reach" findings). */
void doctor__first_line(char *s);

#endif
