/* PostgreSQL probe: reads pg_settings, pg_stat_activity, pg_blocking_pids(), pg_stat_statements,
 * pg_stat_user_tables, pg_stat_database and pg_stat_replication into pg_facts. Also the small
 * libpq wrapper PgBouncer's probe uses. The only file that includes <libpq-fe.h>. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "core/xmalloc.h"
#include "doctor/internal.h"

/* Wraps the PGconn so that no other file needs libpq's types. */
struct probe_pg_conn {
    PGconn *pg;
};

struct probe_pg_conn *probe_pg_connect(const char *url, int timeout_ms, bool admin_console,
                                       char *err, size_t errlen)
{
    /* libpq's connect_timeout is whole seconds and at least 2. */
    char tmo[16];
    snprintf(tmo, sizeof(tmo), "%d", timeout_ms < 2000 ? 2 : (timeout_ms + 999) / 1000);
    char opts[64];
    snprintf(opts, sizeof(opts), "-c statement_timeout=%d", timeout_ms);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *vals[] = {url, tmo, "apigate-doctor", opts, NULL};
    if (admin_console)
        keys[3] = vals[3] = NULL; // the console rejects "options"
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        doctor__first_line(err);
        if (pg)
            PQfinish(pg);
        return NULL;
    }
    struct probe_pg_conn *c = xcalloc(1, sizeof(*c));
    c->pg = pg;
    return c;
}

void probe_pg_where(struct probe_pg_conn *c, char *out, size_t outlen)
{
    const char *host = PQhost(c->pg);
    snprintf(out, outlen, "%s:%s/%s",
             host && host[0] == '/' ? "unix"
             : host                 ? host
                                    : "?",
             PQport(c->pg), PQdb(c->pg));
}

/* Copies the result out of libpq (strings per cell) so the caller's code stays free of libpq;
 * the result sets here are a few dozen rows at most. */
int probe_pg_exec(struct probe_pg_conn *c, const char *sql, struct probe_pg_res *r, char *err,
                  size_t errlen)
{
    memset(r, 0, sizeof(*r));
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "%s",
                 PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
        doctor__first_line(err);
        PQclear(res);
        return -1;
    }
    r->rows = PQntuples(res);
    r->cols = PQnfields(res);
    r->names = xcalloc((size_t)r->cols + 1, sizeof(char *));
    r->vals = xcalloc((size_t)r->rows * (size_t)r->cols + 1, sizeof(char *));
    for (int j = 0; j < r->cols; j++)
        r->names[j] = xstrdup(PQfname(res, j));
    for (int i = 0; i < r->rows; i++)
        for (int j = 0; j < r->cols; j++)
            if (!PQgetisnull(res, i, j))
                r->vals[i * r->cols + j] = xstrdup(PQgetvalue(res, i, j));
    PQclear(res);
    return 0;
}

const char *probe_pg_get(const struct probe_pg_res *r, int row, const char *name)
{
    if (row < 0 || row >= r->rows)
        return NULL;
    for (int j = 0; j < r->cols; j++)
        if (strcmp(r->names[j], name) == 0)
            return r->vals[row * r->cols + j];
    return NULL;
}

void probe_pg_res_free(struct probe_pg_res *r)
{
    for (int j = 0; j < r->cols; j++)
        free(r->names[j]);
    for (int i = 0; i < r->rows * r->cols; i++)
        free(r->vals[i]);
    free(r->names);
    free(r->vals);
    memset(r, 0, sizeof(*r));
}

void probe_pg_close(struct probe_pg_conn *c)
{
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

/* ---- the probe ---- */

static long long num(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

static double dbl(const char *s)
{
    return s ? strtod(s, NULL) : 0;
}

static void copy(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

/* Every query carries this comment so the probe can leave its own statements out of
 * pg_stat_statements' top list. */
#define TAG "/* apigate-doctor */ "

static int q(struct probe_pg_conn *c, const char *sql, struct probe_pg_res *r, char *err,
             size_t errlen)
{
    return probe_pg_exec(c, sql, r, err, errlen);
}

/* pg_stat_activity: sessions by state, the oldest active statement, the oldest idle-in-transaction
 * session, and every lock wait with its blocker (pg_blocking_pids, PostgreSQL 9.6+). */
static void read_activity(struct probe_pg_conn *c, struct pg_facts *f)
{
    struct probe_pg_res r;
    char err[256];
    if (q(c,
          TAG "SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM "
              "pg_stat_activity WHERE backend_type = 'client backend' AND pid <> "
              "pg_backend_pid() GROUP BY 1",
          &r, err, sizeof(err)) == 0) {
        for (int i = 0; i < r.rows; i++) {
            const char *st = probe_pg_get(&r, i, "state");
            int n = (int)num(probe_pg_get(&r, i, "n"));
            f->total += n;
            if (strcmp(st, "active") == 0)
                f->active += n;
            else if (strcmp(st, "idle") == 0)
                f->idle += n;
            else if (strncmp(st, "idle in transaction", 19) == 0)
                f->idle_in_tx += n;
        }
        probe_pg_res_free(&r);
    }
    if (q(c,
          TAG "SELECT pid, extract(epoch FROM now() - state_change) AS age, "
              "left(regexp_replace(query, '\\s+', ' ', 'g'), 190) AS query FROM "
              "pg_stat_activity WHERE state LIKE 'idle in transaction%' ORDER BY state_change "
              "LIMIT 1",
          &r, err, sizeof(err)) == 0) {
        if (r.rows > 0) {
            f->idle_in_tx_pid = (int)num(probe_pg_get(&r, 0, "pid"));
            f->idle_in_tx_oldest_s = dbl(probe_pg_get(&r, 0, "age"));
            copy(f->idle_in_tx_query, sizeof(f->idle_in_tx_query), probe_pg_get(&r, 0, "query"));
        }
        probe_pg_res_free(&r);
    }
    if (q(c,
          TAG "SELECT pid, extract(epoch FROM now() - query_start) AS age, "
              "left(regexp_replace(query, '\\s+', ' ', 'g'), 190) AS query FROM "
              "pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND "
              "pid <> pg_backend_pid() ORDER BY query_start LIMIT 1",
          &r, err, sizeof(err)) == 0) {
        if (r.rows > 0) {
            f->active_oldest_pid = (int)num(probe_pg_get(&r, 0, "pid"));
            f->active_oldest_s = dbl(probe_pg_get(&r, 0, "age"));
            copy(f->active_oldest_query, sizeof(f->active_oldest_query),
                 probe_pg_get(&r, 0, "query"));
        }
        probe_pg_res_free(&r);
    }
    if (q(c,
          TAG "SELECT a.pid, b.pid AS blocker, extract(epoch FROM now() - a.query_start) AS "
              "wait, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 190) AS query, "
              "coalesce(b.state, '?') AS bstate, coalesce(extract(epoch FROM now() - "
              "b.xact_start), 0) AS bxact, left(regexp_replace(b.query, '\\s+', ' ', 'g'), "
              "190) AS bquery FROM pg_stat_activity a CROSS JOIN LATERAL "
              "unnest(pg_blocking_pids(a.pid)) AS bp(pid) JOIN pg_stat_activity b ON b.pid = "
              "bp.pid ORDER BY wait DESC LIMIT 8",
          &r, err, sizeof(err)) == 0) {
        for (int i = 0; i < r.rows && f->n_blocked < PG_FACTS_MAX; i++) {
            struct pg_blocked *b = &f->blocked[f->n_blocked++];
            b->pid = (int)num(probe_pg_get(&r, i, "pid"));
            b->blocker_pid = (int)num(probe_pg_get(&r, i, "blocker"));
            b->wait_s = dbl(probe_pg_get(&r, i, "wait"));
            copy(b->query, sizeof(b->query), probe_pg_get(&r, i, "query"));
            copy(b->blocker_state, sizeof(b->blocker_state), probe_pg_get(&r, i, "bstate"));
            b->blocker_xact_s = dbl(probe_pg_get(&r, i, "bxact"));
            copy(b->blocker_query, sizeof(b->blocker_query), probe_pg_get(&r, i, "bquery"));
        }
        probe_pg_res_free(&r);
    }
}

/* Per-role and per-database connection limits with the client backends counted against them,
 * fullest first. Only limits that exist (>= 0) are read. */
static void read_limits(struct probe_pg_conn *c, struct pg_facts *f)
{
    struct probe_pg_res r;
    char err[256];
    if (q(c,
          TAG "SELECT * FROM (SELECT r.rolname AS name, r.rolconnlimit AS lim, (SELECT "
              "count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname AND a.backend_type = "
              "'client backend' AND a.pid <> pg_backend_pid()) AS used FROM pg_roles r WHERE "
              "r.rolconnlimit >= 0 AND r.rolcanlogin) l ORDER BY used::float8 / greatest(lim, 1) "
              "DESC, name LIMIT 8",
          &r, err, sizeof(err)) == 0) {
        for (int i = 0; i < r.rows && f->n_role_limits < PG_FACTS_MAX; i++) {
            struct pg_limit *l = &f->role_limits[f->n_role_limits++];
            copy(l->name, sizeof(l->name), probe_pg_get(&r, i, "name"));
            l->limit = (int)num(probe_pg_get(&r, i, "lim"));
            l->used = (int)num(probe_pg_get(&r, i, "used"));
        }
        probe_pg_res_free(&r);
    }
    if (q(c,
          TAG "SELECT * FROM (SELECT d.datname AS name, d.datconnlimit AS lim, (SELECT "
              "count(*) FROM pg_stat_activity a WHERE a.datid = d.oid AND a.backend_type = "
              "'client backend' AND a.pid <> pg_backend_pid()) AS used FROM pg_database d WHERE "
              "d.datconnlimit >= 0 AND d.datallowconn) l ORDER BY used::float8 / greatest(lim, 1) "
              "DESC, name LIMIT 8",
          &r, err, sizeof(err)) == 0) {
        for (int i = 0; i < r.rows && f->n_db_limits < PG_FACTS_MAX; i++) {
            struct pg_limit *l = &f->db_limits[f->n_db_limits++];
            copy(l->name, sizeof(l->name), probe_pg_get(&r, i, "name"));
            l->limit = (int)num(probe_pg_get(&r, i, "lim"));
            l->used = (int)num(probe_pg_get(&r, i, "used"));
        }
        probe_pg_res_free(&r);
    }
}

/* The highest $N of a normalized statement (pg_stat_statements replaces constants by $1..$N),
 * outside string literals. */
static int param_count(const char *sql)
{
    int max = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '\'') {
            for (p++; *p && !(*p == '\'' && p[1] != '\''); p += (*p == '\'') ? 2 : 1)
                ;
            if (*p == '\0')
                break;
        } else if (*p == '$' && isdigit((unsigned char)p[1])) {
            int n = (int)strtol(p + 1, NULL, 10);
            if (n > max && n <= 1000)
                max = n;
        }
    }
    return max;
}

/* Whether EXPLAIN can take <sql>: a plain DML statement (EXPLAIN without ANALYZE plans it and
 * runs nothing). */
static bool explainable(const char *sql)
{
    while (*sql == ' ' || *sql == '(')
        sql++;
    static const char *const kw[] = {"select", "with", "update", "delete", "insert", "table", NULL};
    for (int i = 0; kw[i]; i++) {
        size_t n = strlen(kw[i]);
        if (strncasecmp(sql, kw[i], n) == 0 && !isalnum((unsigned char)sql[n]))
            return true;
    }
    return false;
}

/* Escapes <s> into a SQL string literal in <out> ('it''s'); returns -1 when it does not fit. */
static int literal(const char *s, char *out, size_t n)
{
    size_t j = 0;
    if (n < 3)
        return -1;
    out[j++] = '\'';
    for (; *s; s++) {
        if (j + 3 >= n)
            return -1;
        if (*s == '\'')
            out[j++] = '\'';
        out[j++] = *s;
    }
    out[j++] = '\'';
    out[j] = '\0';
    return 0;
}

/* For a sequential scan of <s> in the plan of statement <k>: the table's size, the column its
 * filter (or else the join conditions above it) compares, and whether an index already starts
 * with that column. */
static void read_planscan(struct probe_pg_conn *c, struct pg_facts *f, int k,
                          const struct explain_scan *s)
{
    if (f->n_planscans >= PG_FACTS_MAX || s->relation[0] == '\0')
        return;
    char schema[160], rel[160], sql[2048], err[256];
    if (literal(s->schema[0] ? s->schema : "public", schema, sizeof(schema)) < 0 ||
        literal(s->relation, rel, sizeof(rel)) < 0)
        return;
    char reg[400];
    snprintf(reg, sizeof(reg), "(quote_ident(%s) || '.' || quote_ident(%s))::regclass", schema,
             rel);
    snprintf(sql, sizeof(sql),
             TAG
             "SELECT (SELECT string_agg(attname, ',') FROM pg_attribute WHERE attrelid = %s "
             "AND attnum > 0 AND NOT attisdropped) AS cols, greatest((SELECT reltuples FROM "
             "pg_class WHERE oid = %s), (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid "
             "= %s), 0) AS n",
             reg, reg, reg);
    struct probe_pg_res r;
    if (q(c, sql, &r, err, sizeof(err)) < 0)
        return;
    struct pg_planscan *p = &f->planscans[f->n_planscans];
    memset(p, 0, sizeof(*p));
    const char *cols = probe_pg_get(&r, 0, "cols");
    snprintf(p->table, sizeof(p->table), "%s.%s", s->schema[0] ? s->schema : "public", s->relation);
    p->table_rows = dbl(probe_pg_get(&r, 0, "n"));
    p->est_rows = s->est_rows;
    p->stmt = k;
    if (cols && rules_pg_plan_column(s->filter, s->alias, cols, p->column, sizeof(p->column)))
        snprintf(p->cond, sizeof(p->cond), "%s", s->filter);
    else if (cols && rules_pg_plan_column(s->join, s->alias, cols, p->column, sizeof(p->column)))
        snprintf(p->cond, sizeof(p->cond), "%s", s->join);
    probe_pg_res_free(&r);
    f->n_planscans++;
    if (p->column[0] == '\0')
        return;
    char col[160];
    if (literal(p->column, col, sizeof(col)) < 0)
        return;
    snprintf(sql, sizeof(sql),
             TAG "SELECT count(*) AS n FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                 "i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = %s AND a.attname = %s",
             reg, col);
    if (q(c, sql, &r, err, sizeof(err)) == 0) {
        p->indexed = num(probe_pg_get(&r, 0, "n")) > 0;
        probe_pg_res_free(&r);
    }
}

/* EXPLAIN of statement <k>. A statement with parameters ($1..) is prepared and explained as the
 * generic plan (plan_cache_mode = force_generic_plan), which needs no values and runs nothing.
 * With <analyze>, a statement without parameters is run by EXPLAIN ANALYZE inside a READ ONLY
 * transaction that is rolled back (a write, even nextval(), is refused). */
static void explain_stmt(struct probe_pg_conn *c, struct pg_facts *f, int k, const char *sql,
                         bool analyze)
{
    int nparams = param_count(sql);
    size_t len = strlen(sql) + 256 + (size_t)nparams * 6;
    char *cmd = xmalloc(len);
    char err[256];
    struct probe_pg_res r;
    int rc = -1;
    bool analyzed = false;
    if (analyze && nparams == 0) {
        if (q(c, TAG "BEGIN TRANSACTION READ ONLY", &r, err, sizeof(err)) == 0) {
            probe_pg_res_free(&r);
            snprintf(cmd, len, TAG "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) %s", sql);
            rc = q(c, cmd, &r, err, sizeof(err));
            analyzed = rc == 0;
            struct probe_pg_res rb;
            if (q(c, TAG "ROLLBACK", &rb, err, sizeof(err)) == 0)
                probe_pg_res_free(&rb);
        }
    } else {
        snprintf(cmd, len, TAG "PREPARE apigate_doctor_%d AS %s", k, sql);
        if (q(c, cmd, &r, err, sizeof(err)) == 0) {
            probe_pg_res_free(&r);
            int n = snprintf(cmd, len,
                             TAG "EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE apigate_doctor_%d", k);
            for (int i = 0; i < nparams; i++)
                n += snprintf(cmd + n, len - (size_t)n, "%sNULL", i ? ", " : "(");
            snprintf(cmd + n, len - (size_t)n, "%s", nparams ? ")" : "");
            rc = q(c, cmd, &r, err, sizeof(err));
            snprintf(cmd, len, TAG "DEALLOCATE apigate_doctor_%d", k);
            struct probe_pg_res rd;
            if (q(c, cmd, &rd, err, sizeof(err)) == 0)
                probe_pg_res_free(&rd);
        }
    }
    free(cmd);
    if (rc < 0) {
        snprintf(f->stmts[k].plan, sizeof(f->stmts[k].plan), "not explained: %.200s", err);
        return;
    }
    struct explain_result ex;
    const char *json = r.rows > 0 && r.cols > 0 ? r.vals[0] : NULL;
    if (json && explain_parse(json, &ex) == 0) {
        explain_summary(&ex, f->stmts[k].plan, sizeof(f->stmts[k].plan));
        if (analyze && !analyzed) {
            size_t n = strlen(f->stmts[k].plan);
            snprintf(f->stmts[k].plan + n, sizeof(f->stmts[k].plan) - n,
                     " (generic plan: its parameters are not known, so it was not run)");
        }
        for (int i = 0; i < ex.n_scans; i++)
            read_planscan(c, f, k, &ex.scans[i]);
    }
    probe_pg_res_free(&r);
}

/* pg_stat_statements: the 8 statements with the most total time, and EXPLAIN of the top
 * frequent ones (their seq scans name the missing indexes). A failure (not installed, not
 * loaded) is kept in pgss_error and becomes the advice to enable it. */
static void read_statements(struct probe_pg_conn *c, struct pg_facts *f, bool analyze)
{
    struct probe_pg_res r;
    /* Only this database's statements, and not the probe's own. */
    static const char *const filter =
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query "
        "NOT LIKE '%apigate-doctor%' AND query NOT ILIKE '%pg_stat_statements%' ";
    char sql[1024];
    snprintf(sql, sizeof(sql),
             TAG "SELECT mean_exec_time AS mean, calls, total_exec_time AS total, rows, "
                 "left(regexp_replace(query, '\\s+', ' ', 'g'), 390) AS query, query AS full_query "
                 "FROM pg_stat_statements %s ORDER BY total_exec_time DESC LIMIT 8",
             filter);
    if (q(c, sql, &r, f->pgss_error, sizeof(f->pgss_error)) < 0)
        return;
    f->pgss = true;
    f->explained = true;
    f->explain_analyze = analyze;
    for (int i = 0; i < r.rows && f->n_stmts < PG_FACTS_MAX; i++) {
        struct pg_stmt *s = &f->stmts[f->n_stmts++];
        s->mean_ms = dbl(probe_pg_get(&r, i, "mean"));
        s->calls = num(probe_pg_get(&r, i, "calls"));
        s->total_ms = dbl(probe_pg_get(&r, i, "total"));
        s->rows = num(probe_pg_get(&r, i, "rows"));
        copy(s->query, sizeof(s->query), probe_pg_get(&r, i, "query"));
    }
    char err[256];
    struct probe_pg_res set;
    if (q(c, TAG "SET plan_cache_mode = force_generic_plan", &set, err, sizeof(err)) == 0)
        probe_pg_res_free(&set);
    int explained = 0;
    for (int i = 0; i < f->n_stmts && explained < 4; i++) {
        const char *full = probe_pg_get(&r, i, "full_query");
        if (f->stmts[i].calls < RULES_PG_STMT_MIN_CALLS || full == NULL || !explainable(full))
            continue;
        explain_stmt(c, f, i, full, analyze);
        explained++;
    }
    probe_pg_res_free(&r);
}

/* pg_stat_user_tables: the tables read most by sequential scans (counters since the last
 * statistics reset: evidence, and the index hint when there are no plans). */
static void read_tables(struct probe_pg_conn *c, struct pg_facts *f)
{
    struct probe_pg_res r;
    char err[256];
    if (q(c,
          TAG "SELECT schemaname || '.' || relname AS t, seq_scan, seq_tup_read, "
              "coalesce(idx_scan, 0) AS idx_scan, n_live_tup FROM pg_stat_user_tables WHERE "
              "seq_scan > 0 ORDER BY seq_tup_read DESC LIMIT 8",
          &r, err, sizeof(err)) < 0)
        return;
    for (int i = 0; i < r.rows && f->n_seqscans < PG_FACTS_MAX; i++) {
        struct pg_seqscan *t = &f->seqscans[f->n_seqscans++];
        copy(t->table, sizeof(t->table), probe_pg_get(&r, i, "t"));
        t->seq_scan = num(probe_pg_get(&r, i, "seq_scan"));
        t->seq_tup_read = num(probe_pg_get(&r, i, "seq_tup_read"));
        t->idx_scan = num(probe_pg_get(&r, i, "idx_scan"));
        t->n_live_tup = num(probe_pg_get(&r, i, "n_live_tup"));
    }
    probe_pg_res_free(&r);
}

/* Cache hit ratio over all databases, and replication: the replicas of a primary, or a replica's
 * own replay state. */
static void read_server(struct probe_pg_conn *c, struct pg_facts *f)
{
    struct probe_pg_res r;
    char err[256];
    if (q(c, TAG "SELECT sum(blks_hit) AS hit, sum(blks_read) AS rd FROM pg_stat_database", &r, err,
          sizeof(err)) == 0) {
        f->blks_hit = num(probe_pg_get(&r, 0, "hit"));
        f->blks_read = num(probe_pg_get(&r, 0, "rd"));
        probe_pg_res_free(&r);
    }
    if (f->is_replica) {
        if (q(c,
              TAG "SELECT coalesce(extract(epoch FROM now() - "
                  "pg_last_xact_replay_timestamp()), 0) AS behind, "
                  "coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                  "pg_last_wal_replay_lsn()), 0)::bigint AS pending, "
                  "pg_is_wal_replay_paused() AS paused",
              &r, err, sizeof(err)) == 0) {
            f->replica_behind_s = dbl(probe_pg_get(&r, 0, "behind"));
            f->replica_pending = num(probe_pg_get(&r, 0, "pending"));
            const char *p = probe_pg_get(&r, 0, "paused");
            f->replay_paused = p && p[0] == 't';
            probe_pg_res_free(&r);
        }
        return;
    }
    if (q(c,
          TAG "SELECT coalesce(application_name, '') AS name, coalesce(host(client_addr), "
              "'local') AS client, coalesce(state, '?') AS state, coalesce(extract(epoch FROM "
              "replay_lag), 0) AS lag, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), "
              "replay_lsn), -1)::bigint AS bytes FROM pg_stat_replication",
          &r, err, sizeof(err)) == 0) {
        for (int i = 0; i < r.rows && f->n_replicas < PG_FACTS_MAX; i++) {
            struct pg_replica *p = &f->replicas[f->n_replicas++];
            copy(p->name, sizeof(p->name), probe_pg_get(&r, i, "name"));
            copy(p->client, sizeof(p->client), probe_pg_get(&r, i, "client"));
            copy(p->state, sizeof(p->state), probe_pg_get(&r, i, "state"));
            p->replay_lag_s = dbl(probe_pg_get(&r, i, "lag"));
            p->lag_bytes = num(probe_pg_get(&r, i, "bytes"));
        }
        probe_pg_res_free(&r);
    }
}

int probe_pg_run(const char *url, int timeout_ms, bool explain_analyze, struct pg_facts *f,
                 struct finding_list *out)
{
    char err[512];
    struct probe_pg_conn *c = probe_pg_connect(url, timeout_ms, false, err, sizeof(err));
    if (c == NULL) {
        struct finding *fd = finding_add(out, "postgres", "pg-unreachable", FINDING_CRITICAL,
                                         "cannot reach PostgreSQL: %s", err);
        char safe[512];
        doctor__redact(url, safe, sizeof(safe));
        finding_source(fd, "libpq connect to %s", safe);
        finding_fix(fd, "check the URL, that the server runs and pg_hba.conf allows this host");
        return -1;
    }
    probe_pg_where(c, f->where, sizeof(f->where));
    struct probe_pg_res r;
    if (q(c,
          TAG "SELECT current_setting('max_connections') AS max, "
              "current_setting('superuser_reserved_connections') AS reserved, "
              "pg_is_in_recovery() AS replica",
          &r, err, sizeof(err)) < 0) {
        struct finding *fd =
            finding_add(out, "postgres", "pg-unreachable", FINDING_CRITICAL,
                        "PostgreSQL at %s answers but cannot be read: %s", f->where, err);
        finding_source(fd, "SELECT current_setting('max_connections')");
        probe_pg_close(c);
        return -1;
    }
    f->max_connections = (int)num(probe_pg_get(&r, 0, "max"));
    f->reserved = (int)num(probe_pg_get(&r, 0, "reserved"));
    const char *rep = probe_pg_get(&r, 0, "replica");
    f->is_replica = rep && rep[0] == 't';
    probe_pg_res_free(&r);
    read_activity(c, f);
    read_limits(c, f);
    read_tables(c, f);
    read_statements(c, f, explain_analyze);
    read_server(c, f);
    probe_pg_close(c);
    return 0;
}
