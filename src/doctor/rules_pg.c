/* Rules for PostgreSQL and PgBouncer facts: connection headroom, idle pools, long transactions,
 * lock waits, slow statements, missing indexes, cache hit ratio, replication lag, pool starvation.
 * Pure functions: numbers in, findings out. */
#include "doctor/rules.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int rules_pg_pool_size(int active, int max_connections, int reserved)
{
    int want = (int)ceil(active * 1.5);
    if (want < 5)
        want = 5;
    int cap = (int)((max_connections - reserved) * 0.8);
    if (cap < 1)
        cap = 1;
    return want < cap ? want : cap;
}

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '"';
}

/* Case-insensitive search of a whole word <w> in <s>; returns its start or NULL. */
static const char *find_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = s; *p; p++) {
        if (strncasecmp(p, w, n) == 0 && (p == s || !ident_char(p[-1])) && !ident_char(p[n]))
            return p;
    }
    return NULL;
}

static bool is_keyword(const char *w, size_t n)
{
    static const char *const kw[] = {"and",   "or",      "not",    "where", "is",
                                     "null",  "true",    "false",  "in",    "like",
                                     "ilike", "between", "select", "from",  NULL};
    for (int i = 0; kw[i]; i++)
        if (strlen(kw[i]) == n && strncasecmp(kw[i], w, n) == 0)
            return true;
    return false;
}

int rules_pg_candidate_columns(const char *query, const char *table, char *out, size_t outlen)
{
    out[0] = '\0';
    /* "public.orders" in facts, "orders" in most statements: look for the bare name. */
    const char *bare = strrchr(table, '.');
    bare = bare ? bare + 1 : table;
    const char *from = find_word(query, bare);
    if (from == NULL)
        return 0;
    const char *where = find_word(from, "where");
    if (where == NULL)
        return 0;
    int count = 0;
    size_t used = 0;
    const char *p = where + 5;
    while (*p) {
        /* Stop at clauses that end the WHERE. */
        if (find_word(p, "order") == p || find_word(p, "group") == p || find_word(p, "limit") == p)
            break;
        if (!(isalpha((unsigned char)*p) || *p == '_') || (p > query && ident_char(p[-1]))) {
            p++;
            continue;
        }
        const char *w = p;
        while (ident_char(*p))
            p++;
        size_t n = (size_t)(p - w);
        const char *q = p;
        while (*q == ' ')
            q++;
        bool cmp = *q == '=' || *q == '<' || *q == '>' || (*q == '!' && q[1] == '=') ||
                   strncasecmp(q, "in ", 3) == 0 || strncasecmp(q, "in(", 3) == 0 ||
                   strncasecmp(q, "like ", 5) == 0 || strncasecmp(q, "ilike ", 6) == 0 ||
                   strncasecmp(q, "between ", 8) == 0 || strncasecmp(q, "is ", 3) == 0;
        if (!cmp || is_keyword(w, n))
            continue;
        /* "o.customer_id": keep the column. */
        const char *dot = memchr(w, '.', n);
        if (dot) {
            n -= (size_t)(dot + 1 - w);
            w = dot + 1;
        }
        /* Skip duplicates: <out> is "a, b, c". */
        bool dup = false;
        const char *s = out;
        while (*s && !dup) {
            const char *e = strchr(s, ',');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            dup = len == n && strncmp(s, w, n) == 0;
            s = e ? e + 2 : s + len;
        }
        if (dup)
            continue;
        if (used + n + 3 > outlen)
            break;
        used += (size_t)snprintf(out + used, outlen - used, "%s%.*s", count ? ", " : "", (int)n, w);
        count++;
    }
    return count;
}

/* Connection headroom. Past 80% a deploy (old and new pods overlapping) or a traffic spike runs out
 * of slots; past 95% new connections already fail now and then. The probe's own session is not
 * counted. */
static void rule_connections(const struct pg_facts *pg, struct finding_list *out)
{
    if (pg->max_connections <= 0)
        return;
    double use = (double)pg->total / pg->max_connections;
    enum finding_sev sev = use > RULES_PG_CONN_CRIT   ? FINDING_CRITICAL
                           : use > RULES_PG_CONN_WARN ? FINDING_WARNING
                                                      : FINDING_OK;
    int pool = rules_pg_pool_size(pg->active, pg->max_connections, pg->reserved);
    struct finding *f = finding_add(out, "postgres", "pg-connections", sev,
                                    "%d of max_connections %d in use (%.0f%%)", pg->total,
                                    pg->max_connections, use * 100);
    finding_evidence(f, "%d active, %d idle, %d idle in transaction; %d reserved for superusers",
                     pg->active, pg->idle, pg->idle_in_tx, pg->reserved);
    if (pg->active_oldest_pid)
        finding_evidence(f, "longest active statement: %.1f s (pid %d)", pg->active_oldest_s,
                         pg->active_oldest_pid);
    if (pg->idle_in_tx_pid)
        finding_evidence(f, "oldest idle in transaction: %.1f s (pid %d)", pg->idle_in_tx_oldest_s,
                         pg->idle_in_tx_pid);
    finding_source(f, "SELECT state, count(*) FROM pg_stat_activity WHERE backend_type = 'client "
                      "backend' GROUP BY state; SHOW max_connections");
    if (sev >= FINDING_WARNING) {
        finding_fix(f,
                    "put PgBouncer in front in transaction mode: pool_mode = transaction, "
                    "default_pool_size = %d",
                    pool);
        finding_fix(f,
                    "or shrink the application pools so pods x (pool_size + max_overflow) "
                    "stays under %d",
                    (int)((pg->max_connections - pg->reserved) * 0.8));
    }
}

/* Idle sessions cost a backend process (memory, snapshot bookkeeping) each and count against
 * max_connections, while doing nothing: the signature of per-pod pools sized for each pod's
 * peak. Ten sessions at least, so a small dev server is not lectured. */
static void rule_idle(const struct pg_facts *pg, struct finding_list *out)
{
    /* Many idle sessions = pools sized for the peak of every pod at once. */
    if (pg->total < 10 || pg->idle * 2 <= pg->total)
        return;
    int pool = rules_pg_pool_size(pg->active, pg->max_connections, pg->reserved);
    struct finding *f = finding_add(out, "postgres", "pg-idle-pools", FINDING_WARNING,
                                    "%d of %d connections are idle: application pools are "
                                    "oversized",
                                    pg->idle, pg->total);
    finding_evidence(f,
                     "idle %d, active %d (each idle connection holds a backend process and "
                     "counts against max_connections %d)",
                     pg->idle, pg->active, pg->max_connections);
    finding_source(f, "pg_stat_activity.state");
    finding_fix(f,
                "use a transaction pooler: PgBouncer pool_mode = transaction, "
                "default_pool_size = %d (active %d x 1.5, at least 5, at most 80%% of "
                "max_connections - reserved)",
                pool, pg->active);
}

/* A transaction left open holds its row locks and its snapshot: other writers queue behind it and
 * vacuum cannot clean past it. Five seconds is already far longer than any web request should
 * keep a transaction open. */
static void rule_idle_in_tx(const struct pg_facts *pg, struct finding_list *out)
{
    if (pg->idle_in_tx == 0 || pg->idle_in_tx_oldest_s < RULES_PG_IDLE_TX_WARN_S)
        return;
    enum finding_sev sev =
        pg->idle_in_tx_oldest_s >= RULES_PG_IDLE_TX_CRIT_S ? FINDING_CRITICAL : FINDING_WARNING;
    struct finding *f = finding_add(out, "postgres", "pg-idle-in-transaction", sev,
                                    "%d session(s) idle in transaction, oldest for %.0f s",
                                    pg->idle_in_tx, pg->idle_in_tx_oldest_s);
    finding_evidence(f, "pid %d, last statement: %s", pg->idle_in_tx_pid, pg->idle_in_tx_query);
    finding_source(f, "SELECT pid, now() - state_change, query FROM pg_stat_activity WHERE state "
                      "= 'idle in transaction'");
    finding_fix(f, "ALTER SYSTEM SET idle_in_transaction_session_timeout = '60s'; SELECT "
                   "pg_reload_conf();");
    finding_fix(f, "and find the code path that opens a transaction and waits (commit before "
                   "calling other services)");
}

/* A statement running for a minute is a runaway or a report on the OLTP primary; either way it
 * holds a connection and possibly locks. */
static void rule_long_query(const struct pg_facts *pg, struct finding_list *out)
{
    if (pg->active_oldest_pid == 0 || pg->active_oldest_s < RULES_PG_LONG_QUERY_WARN_S)
        return;
    struct finding *f = finding_add(out, "postgres", "pg-long-queries", FINDING_WARNING,
                                    "a statement has been running for %.0f s", pg->active_oldest_s);
    finding_evidence(f, "pid %d: %s", pg->active_oldest_pid, pg->active_oldest_query);
    finding_source(f, "SELECT pid, now() - query_start, query FROM pg_stat_activity WHERE state "
                      "= 'active' ORDER BY query_start LIMIT 1");
    finding_fix(f,
                "cancel it if it is runaway: SELECT pg_cancel_backend(%d); bound statements "
                "for the application role: ALTER ROLE <app> SET statement_timeout = '30s';",
                pg->active_oldest_pid);
}

/* Lock waits, with who blocks whom: the blocker's state says whether it is working (active) or
 * forgotten (idle in transaction), which decides the fix. */
static void rule_blocked(const struct pg_facts *pg, struct finding_list *out)
{
    if (pg->n_blocked == 0)
        return;
    double worst = 0;
    for (int i = 0; i < pg->n_blocked; i++)
        if (pg->blocked[i].wait_s > worst)
            worst = pg->blocked[i].wait_s;
    enum finding_sev sev = worst >= RULES_PG_BLOCKED_CRIT_S ? FINDING_CRITICAL : FINDING_WARNING;
    struct finding *f = finding_add(out, "postgres", "pg-blocked-queries", sev,
                                    "%d quer%s waiting on locks, longest %.1f s", pg->n_blocked,
                                    pg->n_blocked == 1 ? "y" : "ies", worst);
    for (int i = 0; i < pg->n_blocked; i++) {
        const struct pg_blocked *b = &pg->blocked[i];
        finding_evidence(f, "pid %d waits %.1f s: %s", b->pid, b->wait_s, b->query);
        finding_evidence(f, "  blocked by pid %d (%s, transaction open %.1f s): %s", b->blocker_pid,
                         b->blocker_state, b->blocker_xact_s, b->blocker_query);
    }
    finding_source(f, "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE "
                      "cardinality(pg_blocking_pids(pid)) > 0");
    finding_fix(f, "end the blocker if it is stuck: SELECT pg_terminate_backend(%d);",
                pg->blocked[0].blocker_pid);
    finding_fix(f, "bound waits: ALTER SYSTEM SET lock_timeout = '5s'; keep transactions short");
}

/* pg_stat_statements is the only place per-query timings exist; without it the advice is to
 * enable it. The slowest by mean time is what a user of that endpoint waits for. */
static void rule_statements(const struct pg_facts *pg, struct finding_list *out)
{
    if (!pg->pgss) {
        struct finding *f = finding_add(out, "postgres", "pg-stat-statements", FINDING_INFO,
                                        "pg_stat_statements is not available: no per-query "
                                        "timings");
        finding_evidence(f, "%s", pg->pgss_error[0] ? pg->pgss_error : "extension not installed");
        finding_source(f, "SELECT ... FROM pg_stat_statements");
        finding_fix(f, "postgresql.conf: shared_preload_libraries = 'pg_stat_statements' "
                       "(restart), then: CREATE EXTENSION pg_stat_statements;");
        return;
    }
    if (pg->n_stmts == 0)
        return;
    double worst = pg->stmts[0].mean_ms;
    enum finding_sev sev = worst >= RULES_PG_STMT_CRIT_MS   ? FINDING_CRITICAL
                           : worst >= RULES_PG_STMT_WARN_MS ? FINDING_WARNING
                                                            : FINDING_INFO;
    struct finding *f = finding_add(out, "postgres", "pg-slow-statements", sev,
                                    "slowest statement takes %.1f ms on average", worst);
    for (int i = 0; i < pg->n_stmts; i++) {
        const struct pg_stmt *s = &pg->stmts[i];
        finding_evidence(f, "%8.1f ms mean  %8lld calls  %10.0f ms total  %s", s->mean_ms, s->calls,
                         s->total_ms, s->query);
    }
    finding_source(f, "SELECT mean_exec_time, calls, total_exec_time, query FROM "
                      "pg_stat_statements ORDER BY mean_exec_time DESC LIMIT 5");
    if (sev >= FINDING_WARNING) {
        finding_fix(f, "EXPLAIN (ANALYZE, BUFFERS) the statement above; add the index the "
                       "pg-missing-index finding names; cache its result in the gateway "
                       "(cache: {ttl: 30s}) if it is a read");
    }
}

/* A table read by many sequential scans of many rows each, and rarely by an index, is filtered on
 * columns without an index. The minimums keep small lookup tables (where a seq scan is the right
 * plan) out. */
static void rule_seqscans(const struct pg_facts *pg, struct finding_list *out)
{
    for (int i = 0; i < pg->n_seqscans; i++) {
        const struct pg_seqscan *t = &pg->seqscans[i];
        if (t->seq_scan < RULES_PG_SEQ_MIN_SCANS || t->seq_tup_read < RULES_PG_SEQ_MIN_TUP_READ)
            continue;
        long long per = t->seq_tup_read / t->seq_scan;
        if (per < RULES_PG_SEQ_MIN_ROWS_PER_SCAN || t->idx_scan > t->seq_scan)
            continue;
        struct finding *f = finding_add(out, "postgres", "pg-missing-index", FINDING_WARNING,
                                        "%s is read by sequential scans (%lld scans, %lld rows "
                                        "each)",
                                        t->table, t->seq_scan, per);
        finding_evidence(f, "seq_scan %lld, seq_tup_read %lld, idx_scan %lld, live rows %lld",
                         t->seq_scan, t->seq_tup_read, t->idx_scan, t->n_live_tup);
        finding_source(f, "pg_stat_user_tables (and pg_stat_statements for the columns)");
        if (t->columns[0])
            finding_fix(f, "CREATE INDEX CONCURRENTLY ON %s (%s);", t->table, t->columns);
        else
            finding_fix(f,
                        "find the filtering columns with EXPLAIN on the queries touching %s, "
                        "then CREATE INDEX CONCURRENTLY ON %s (<column>);",
                        t->table, t->table);
    }
}

/* Reads served from shared_buffers vs from the OS/disk. Judged only after 10 000 blocks, because a
 * freshly started server has a cold cache by definition. */
static void rule_hit_ratio(const struct pg_facts *pg, struct finding_list *out)
{
    long long total = pg->blks_hit + pg->blks_read;
    if (total <= 0)
        return;
    double r = (double)pg->blks_hit / (double)total;
    enum finding_sev sev =
        total >= RULES_PG_HIT_MIN_BLOCKS && r < RULES_PG_HIT_WARN ? FINDING_WARNING : FINDING_OK;
    struct finding *f = finding_add(out, "postgres", "pg-cache-hit-ratio", sev,
                                    "buffer cache hit ratio %.1f%%", r * 100);
    finding_evidence(f, "blks_hit %lld, blks_read %lld", pg->blks_hit, pg->blks_read);
    finding_source(f, "SELECT sum(blks_hit), sum(blks_read) FROM pg_stat_database");
    if (sev >= FINDING_WARNING)
        finding_fix(f, "raise shared_buffers (25%% of RAM is the usual start) or add the "
                       "missing indexes so queries read fewer pages");
}

/* Replay lag: reads sent to a lagging replica return stale data (a user does not see what they
 * just wrote). Judged in time (replay_lag, which the primary measures only while the replica
 * keeps replaying) and in bytes of WAL not yet replayed (which grows even when replay stalls). */
static enum finding_sev lag_sev(double s, long long bytes)
{
    if (s >= RULES_PG_REPL_CRIT_S || bytes >= RULES_PG_REPL_CRIT_BYTES)
        return FINDING_CRITICAL;
    if (s >= RULES_PG_REPL_WARN_S || bytes >= RULES_PG_REPL_WARN_BYTES)
        return FINDING_WARNING;
    return FINDING_OK;
}

static void rule_replication(const struct pg_facts *pg, struct finding_list *out)
{
    for (int i = 0; i < pg->n_replicas; i++) {
        const struct pg_replica *r = &pg->replicas[i];
        enum finding_sev sev = lag_sev(r->replay_lag_s, r->lag_bytes);
        struct finding *f = finding_add(out, "postgres", "pg-replication-lag", sev,
                                        "replica %s (%s) lags %.1f s, %.1f MB of WAL",
                                        r->name[0] ? r->name : "?", r->client, r->replay_lag_s,
                                        (double)(r->lag_bytes > 0 ? r->lag_bytes : 0) / 1048576.0);
        finding_evidence(f, "state %s, replay lag %.1f s, %lld bytes behind", r->state,
                         r->replay_lag_s, r->lag_bytes);
        finding_source(f, "SELECT application_name, client_addr, state, replay_lag, "
                          "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM "
                          "pg_stat_replication");
        if (sev >= FINDING_WARNING)
            finding_fix(f, "do not send read-your-writes traffic to this replica; check its I/O, "
                           "network, long queries on it (max_standby_streaming_delay) and whether "
                           "replay is paused (SELECT pg_is_wal_replay_paused() on the replica)");
    }
    if (!pg->is_replica)
        return;
    /* The probed server is a replica: its own view of how far replay is behind. */
    double behind = pg->replica_pending > 0 ? pg->replica_behind_s : 0;
    enum finding_sev sev = lag_sev(behind, pg->replica_pending);
    if (pg->replay_paused && pg->replica_pending > 0 && sev < FINDING_WARNING)
        sev = FINDING_WARNING;
    struct finding *f = finding_add(out, "postgres", "pg-replication-lag", sev,
                                    "this server is a replica %.1f s, %.1f MB of WAL behind%s",
                                    behind, (double)pg->replica_pending / 1048576.0,
                                    pg->replay_paused ? " (replay paused)" : "");
    finding_source(f, "SELECT now() - pg_last_xact_replay_timestamp(), "
                      "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), "
                      "pg_is_wal_replay_paused()");
    if (pg->replay_paused)
        finding_fix(f, "SELECT pg_wal_replay_resume();");
    else if (sev >= FINDING_WARNING)
        finding_fix(f, "check the replica's I/O and queries that conflict with replay "
                       "(max_standby_streaming_delay)");
}

void rules_pg(const struct pg_facts *pg, struct finding_list *out)
{
    rule_connections(pg, out);
    rule_idle(pg, out);
    rule_idle_in_tx(pg, out);
    rule_long_query(pg, out);
    rule_blocked(pg, out);
    rule_statements(pg, out);
    rule_seqscans(pg, out);
    rule_hit_ratio(pg, out);
    rule_replication(pg, out);
}

/* PgBouncer: waiting clients mean every server connection of the pool is busy, so requests queue
 * in the pooler (the application sees it as query latency). The computed pool size serves the
 * current demand (busy + waiting), capped below the server's limit when it is known. */
void rules_pgbouncer(const struct pgb_facts *b, struct finding_list *out)
{
    int waiting = 0, pool_total = 0, busiest = -1;
    double maxwait = 0;
    bool session_mode = false;
    for (int i = 0; i < b->n_pools; i++) {
        const struct pgb_pool *p = &b->pools[i];
        if (strcmp(p->database, "pgbouncer") == 0)
            continue; // the admin console's own pseudo pool
        waiting += p->cl_waiting;
        pool_total += p->pool_size;
        if (p->maxwait_s > maxwait || (busiest < 0 && p->cl_waiting > 0)) {
            maxwait = p->maxwait_s > maxwait ? p->maxwait_s : maxwait;
            busiest = i;
        }
        if (strcmp(p->mode, "session") == 0 && p->cl_active > p->sv_active + p->sv_idle)
            session_mode = true;
    }
    if (waiting > 0) {
        const struct pgb_pool *p = &b->pools[busiest < 0 ? 0 : busiest];
        enum finding_sev sev =
            maxwait >= RULES_PGB_WAIT_CRIT_S ? FINDING_CRITICAL : FINDING_WARNING;
        int want = p->sv_active + p->sv_idle + p->cl_waiting;
        if (b->server_max_connections > 0 && want > b->server_max_connections * 8 / 10)
            want = b->server_max_connections * 8 / 10;
        struct finding *f = finding_add(out, "pgbouncer", "pgb-pool-starvation", sev,
                                        "%d client(s) waiting for a server connection, oldest "
                                        "%.1f s",
                                        waiting, maxwait);
        for (int i = 0; i < b->n_pools; i++) {
            const struct pgb_pool *q = &b->pools[i];
            if (strcmp(q->database, "pgbouncer") == 0)
                continue;
            finding_evidence(f,
                             "%s/%s (%s): cl_active %d, cl_waiting %d, sv_active %d, sv_idle %d, "
                             "pool_size %d, maxwait %.1f s",
                             q->database, q->user, q->mode, q->cl_active, q->cl_waiting,
                             q->sv_active, q->sv_idle, q->pool_size, q->maxwait_s);
        }
        if (b->avg_wait_us > 0)
            finding_evidence(f, "average client wait %.1f ms (SHOW STATS avg_wait_time)",
                             b->avg_wait_us / 1000.0);
        finding_source(f, "PgBouncer admin console: SHOW POOLS; SHOW DATABASES; SHOW STATS");
        finding_fix(f,
                    "the pool is smaller than the concurrency: default_pool_size = %d (in "
                    "[databases] %s = ... pool_size=%d), and make sure pool_mode = transaction",
                    want, p->database, want);
        finding_fix(f, "or find the transactions that hold server connections long "
                       "(pg-idle-in-transaction, pg-slow-statements)");
    } else {
        struct finding *f = finding_add(out, "pgbouncer", "pgb-pool-starvation", FINDING_OK,
                                        "no client waiting for a server connection");
        finding_source(f, "SHOW POOLS");
    }
    if (b->server_max_connections > 0 && pool_total > b->server_max_connections) {
        struct finding *f = finding_add(out, "pgbouncer", "pgb-pool-oversize", FINDING_CRITICAL,
                                        "pool sizes add up to %d > PostgreSQL max_connections %d",
                                        pool_total, b->server_max_connections);
        finding_evidence(f, "sum of pool_size over SHOW DATABASES = %d", pool_total);
        finding_source(f, "SHOW DATABASES; SHOW max_connections on the server");
        finding_fix(f,
                    "lower default_pool_size so the sum stays under %d, or set "
                    "max_db_connections = %d",
                    b->server_max_connections * 8 / 10, b->server_max_connections * 8 / 10);
    }
    if (session_mode) {
        struct finding *f = finding_add(out, "pgbouncer", "pgb-session-mode", FINDING_INFO,
                                        "a pool runs in session mode: one server connection per "
                                        "client for its whole session");
        finding_source(f, "SHOW POOLS pool_mode");
        finding_fix(f, "pool_mode = transaction (unless the application uses session state: "
                       "SET, advisory locks, LISTEN)");
    }
}
