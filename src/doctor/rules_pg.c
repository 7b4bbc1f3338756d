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

static bool ident_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* Whether <name> (<n> bytes) is one of the comma-separated <list>. */
static bool in_list(const char *list, const char *name, size_t n)
{
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* Whether the identifier at [w, e) of <s> is an operand of '=' (and not of "=>" or "<=" ...). */
static bool next_to_eq(const char *s, const char *w, const char *e)
{
    const char *a = e;
    while (*a == ' ' || *a == ')')
        a++;
    if (a[0] == '=' && a[1] != '>')
        return true;
    const char *b = w;
    while (b > s && (b[-1] == ' ' || b[-1] == '('))
        b--;
    return b > s && b[-1] == '=' && (b - 1 == s || strchr("<>!=", b[-2]) == NULL);
}

int rules_pg_plan_column(const char *cond, const char *alias, const char *columns, char *out,
                         size_t outlen)
{
    out[0] = '\0';
    size_t alen = strlen(alias);
    const char *first = NULL, *first_end = NULL;
    const char *p = cond;
    while (*p) {
        if (*p == '\'') { // a string literal: skip it whole ('' is an escaped quote)
            for (p++; *p && !(*p == '\'' && p[1] != '\''); p += (*p == '\'') ? 2 : 1)
                ;
            if (*p)
                p++;
            continue;
        }
        if (!ident_start(*p) || (p > cond && (ident_char(p[-1]) || p[-1] == '.'))) {
            p++;
            continue;
        }
        const char *w = p;
        while (ident_char(*p))
            p++;
        const char *col = w, *e = p;
        bool ours = true;
        if (*p == '.' && ident_start(p[1])) { // qualified: alias.column
            ours = (size_t)(p - w) == alen && strncmp(w, alias, alen) == 0;
            col = ++p;
            while (ident_char(*p))
                p++;
            e = p;
        }
        bool cast = w >= cond + 2 && w[-1] == ':' && w[-2] == ':';
        if (!ours || cast || *e == '(' || !in_list(columns, col, (size_t)(e - col)))
            continue;
        if (next_to_eq(cond, w, e)) {
            snprintf(out, outlen, "%.*s", (int)(e - col), col);
            return 1;
        }
        if (first == NULL) {
            first = col;
            first_end = e;
        }
    }
    if (first == NULL)
        return 0;
    snprintf(out, outlen, "%.*s", (int)(first_end - first), first);
    return 1;
}

/* Connection headroom. Non-superusers get max_connections − superuser_reserved_connections: at
 * that count they are refused ("remaining connection slots are reserved"), so 17 of 20 with 3
 * reserved is full. Past 80% of the usable slots a deploy (old and new pods overlapping) or a
 * spike runs out; past 95% new connections already fail now and then. The probe's own session is
 * not counted. */
static void rule_connections(const struct pg_facts *pg, struct finding_list *out)
{
    if (pg->max_connections <= 0)
        return;
    int usable = pg->max_connections - pg->reserved;
    if (usable < 1)
        usable = 1;
    double use = (double)pg->total / usable;
    enum finding_sev sev = use > RULES_PG_CONN_CRIT   ? FINDING_CRITICAL
                           : use > RULES_PG_CONN_WARN ? FINDING_WARNING
                                                      : FINDING_OK;
    int pool = rules_pg_pool_size(pg->active, pg->max_connections, pg->reserved);
    struct finding *f =
        finding_add(out, "postgres", "pg-connections", sev,
                    "%d of %d usable connections in use (%.0f%%; max_connections %d, %d reserved "
                    "for superusers)",
                    pg->total, usable, use * 100, pg->max_connections, pg->reserved);
    finding_evidence(f, "%d active, %d idle, %d idle in transaction", pg->active, pg->idle,
                     pg->idle_in_tx);
    if (pg->total >= usable)
        finding_evidence(f, "a non-superuser connecting now gets FATAL: remaining connection "
                            "slots are reserved for non-replication superuser connections");
    if (pg->active_oldest_pid)
        finding_evidence(f, "longest active statement: %.1f s (pid %d)", pg->active_oldest_s,
                         pg->active_oldest_pid);
    if (pg->idle_in_tx_pid)
        finding_evidence(f, "oldest idle in transaction: %.1f s (pid %d)", pg->idle_in_tx_oldest_s,
                         pg->idle_in_tx_pid);
    finding_source(f, "SELECT state, count(*) FROM pg_stat_activity WHERE backend_type = 'client "
                      "backend' GROUP BY state; SHOW max_connections; SHOW "
                      "superuser_reserved_connections");
    if (sev < FINDING_WARNING)
        return;
    if (pg->pgbouncer_in_front) {
        finding_fix(f,
                    "PgBouncer is already in front: the server connections are its pools; keep "
                    "the sum of its pool sizes (default_pool_size x databases x users, or "
                    "max_db_connections) under %d, and look for connections that bypass it",
                    (int)(usable * 0.8));
        return;
    }
    finding_fix(f,
                "put PgBouncer in front in transaction mode: pool_mode = transaction, "
                "default_pool_size = %d",
                pool);
    finding_fix(f,
                "or shrink the application pools so pods x (pool_size + max_overflow) "
                "stays under %d",
                (int)(usable * 0.8));
}

/* Per-role (ALTER ROLE ... CONNECTION LIMIT n) and per-database (datconnlimit) limits refuse
 * connections long before max_connections: "FATAL: too many connections for role "app"". */
static void rule_limit(const struct pg_limit *l, bool role, struct finding_list *out)
{
    double use = l->limit > 0 ? (double)l->used / l->limit : 1.0;
    enum finding_sev sev = l->used >= l->limit          ? FINDING_CRITICAL
                           : use >= RULES_PG_LIMIT_WARN ? FINDING_WARNING
                                                        : FINDING_OK;
    const char *what = role ? "role" : "database";
    struct finding *f =
        finding_add(out, "postgres", role ? "pg-role-connections" : "pg-database-connections", sev,
                    "%s \"%s\": %d of CONNECTION LIMIT %d in use%s", what, l->name, l->used,
                    l->limit, sev == FINDING_CRITICAL ? " (full)" : "");
    if (sev == FINDING_CRITICAL)
        finding_evidence(f, "a new connection %s gets FATAL: too many connections for %s \"%s\"",
                         role ? "as this role" : "to this database", what, l->name);
    finding_source(f, role ? "SELECT rolname, rolconnlimit FROM pg_roles WHERE rolconnlimit >= 0; "
                             "count(*) FROM pg_stat_activity by usename"
                           : "SELECT datname, datconnlimit FROM pg_database WHERE datconnlimit "
                             ">= 0; count(*) FROM pg_stat_activity by datname");
    if (sev >= FINDING_WARNING) {
        finding_fix(f,
                    "ALTER %s \"%s\" CONNECTION LIMIT %d; (or make its pools smaller: the "
                    "sessions above are what they hold)",
                    role ? "ROLE" : "DATABASE", l->name,
                    l->limit * 2 > l->used + 5 ? l->limit * 2 : l->used + 5);
        if (!role || l->used > 0)
            finding_fix(f, "a transaction pooler in front (PgBouncer pool_mode = transaction) "
                           "serves the same clients with fewer sessions");
    }
}

static void rule_limits(const struct pg_facts *pg, struct finding_list *out)
{
    for (int i = 0; i < pg->n_role_limits; i++)
        rule_limit(&pg->role_limits[i], true, out);
    for (int i = 0; i < pg->n_db_limits; i++)
        rule_limit(&pg->db_limits[i], false, out);
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
    if (pg->pgbouncer_in_front)
        finding_fix(f,
                    "PgBouncer is already in front: its pools keep these idle server "
                    "connections; lower default_pool_size to %d (active %d x 1.5, at least 5) "
                    "and set server_idle_timeout = 60 so idle ones are closed",
                    pool, pg->active);
    else
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

static bool oneoff(const struct pg_stmt *s)
{
    return s->calls < RULES_PG_STMT_MIN_CALLS;
}

/* pg_stat_statements is the only place per-query timings exist; without it the advice is to
 * enable it. Statements are ranked by total time (what the server spends on them), and judged by
 * their mean among those called at least 10 times: a setup INSERT or a manual pg_sleep run once
 * says nothing about the application, unless it ran for 30 s. */
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
    enum finding_sev sev = FINDING_INFO;
    const struct pg_stmt *worst = NULL;
    double all_ms = 0;
    for (int i = 0; i < pg->n_stmts; i++) {
        const struct pg_stmt *s = &pg->stmts[i];
        all_ms += s->total_ms;
        enum finding_sev si = FINDING_INFO;
        if (oneoff(s))
            si = s->mean_ms >= RULES_PG_STMT_ONEOFF_WARN_MS ? FINDING_WARNING : FINDING_INFO;
        else
            si = s->mean_ms >= RULES_PG_STMT_CRIT_MS   ? FINDING_CRITICAL
                 : s->mean_ms >= RULES_PG_STMT_WARN_MS ? FINDING_WARNING
                                                       : FINDING_INFO;
        if (si > sev || (worst == NULL && si == sev && !oneoff(s))) {
            sev = si;
            worst = s;
        }
    }
    const struct pg_stmt *top = &pg->stmts[0];
    struct finding *f;
    if (sev >= FINDING_WARNING)
        f = finding_add(out, "postgres", "pg-slow-statements", sev,
                        "a statement takes %.1f ms on average over %lld calls (%.0f ms in all)",
                        worst->mean_ms, worst->calls, worst->total_ms);
    else
        f = finding_add(out, "postgres", "pg-slow-statements", sev,
                        "heaviest statement: %.0f ms in all over %lld calls (%.1f ms mean)",
                        top->total_ms, top->calls, top->mean_ms);
    finding_evidence(f, "   total ms  share      calls    mean ms  statement (by total time)");
    for (int i = 0; i < pg->n_stmts; i++) {
        const struct pg_stmt *s = &pg->stmts[i];
        finding_evidence(f, "%11.0f %5.1f%% %10lld %10.1f  %s%s", s->total_ms,
                         all_ms > 0 ? 100.0 * s->total_ms / all_ms : 0.0, s->calls, s->mean_ms,
                         oneoff(s) ? "[one-off, not judged] " : "", s->query);
        if (s->plan[0])
            finding_evidence(f, "             %s: %s",
                             pg->explain_analyze ? "EXPLAIN ANALYZE" : "EXPLAIN", s->plan);
    }
    finding_source(f,
                   "SELECT total_exec_time, calls, mean_exec_time, query FROM "
                   "pg_stat_statements ORDER BY total_exec_time DESC LIMIT 8%s",
                   pg->explained ? (pg->explain_analyze ? "; EXPLAIN (ANALYZE) of the top ones"
                                                        : "; EXPLAIN (no ANALYZE: nothing is run) "
                                                          "of the top ones")
                                 : "");
    if (sev >= FINDING_WARNING) {
        finding_fix(f, "read its plan above (EXPLAIN; --explain-analyze runs it for actual rows); "
                       "add the index pg-missing-index names; cache its result in the gateway "
                       "(cache: {ttl: 30s}) if it is a read");
    }
}

/* Missing indexes, from the plans of the top statements: a sequential scan of a table of 1000
 * rows or more whose filter or join condition names a column without an index starting with it.
 * The plan is the present: once the index exists, the planner uses it and the finding is gone,
 * whatever the lifetime counters of pg_stat_user_tables say. Without plans (no
 * pg_stat_statements), the counters give a hint without a column. */
static void rule_seqscans(const struct pg_facts *pg, struct finding_list *out)
{
    for (int i = 0; i < pg->n_planscans; i++) {
        const struct pg_planscan *p = &pg->planscans[i];
        if (p->column[0] == '\0' || p->indexed || p->table_rows < RULES_PG_SEQ_MIN_ROWS_PER_SCAN)
            continue;
        bool dup = false; // one finding per table and column
        for (int k = 0; k < i && !dup; k++)
            dup = strcmp(pg->planscans[k].table, p->table) == 0 &&
                  strcmp(pg->planscans[k].column, p->column) == 0 && !pg->planscans[k].indexed &&
                  pg->planscans[k].table_rows >= RULES_PG_SEQ_MIN_ROWS_PER_SCAN;
        if (dup)
            continue;
        const struct pg_stmt *s = &pg->stmts[p->stmt];
        struct finding *f = finding_add(out, "postgres", "pg-missing-index", FINDING_WARNING,
                                        "%s (%.0f rows) is read by a sequential scan on %s",
                                        p->table, p->table_rows, p->column);
        finding_evidence(f, "plan of (%lld calls, %.1f ms mean): %s", s->calls, s->mean_ms,
                         s->query);
        finding_evidence(f, "Seq Scan on %s, condition %s, estimated %.0f rows", p->table, p->cond,
                         p->est_rows);
        for (int k = 0; k < pg->n_seqscans; k++)
            if (strcmp(pg->seqscans[k].table, p->table) == 0)
                finding_evidence(f,
                                 "seq_scan %lld, seq_tup_read %lld, idx_scan %lld (since the "
                                 "statistics were last reset)",
                                 pg->seqscans[k].seq_scan, pg->seqscans[k].seq_tup_read,
                                 pg->seqscans[k].idx_scan);
        finding_source(f,
                       "EXPLAIN (VERBOSE, FORMAT JSON) of the statement, no ANALYZE; pg_index "
                       "for the indexes of %s",
                       p->table);
        finding_fix(f, "CREATE INDEX CONCURRENTLY ON %s (%s);", p->table, p->column);
    }
    if (pg->explained)
        return;
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
        finding_source(f, "pg_stat_user_tables (no plans: pg_stat_statements is not available)");
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
    rule_limits(pg, out);
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
