/* PostgreSQL probe: reads pg_settings, pg_stat_activity, pg_blocking_pids(), pg_stat_statements,
 * pg_stat_user_tables, pg_stat_database and pg_stat_replication into pg_facts. Also the small
 * libpq wrapper PgBouncer's probe uses. The only file that includes <libpq-fe.h>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* pg_stat_statements: the top 5 by mean time for the report, and the 50 heaviest by total time
 * (into <all>) to find the columns of missing indexes. A failure (not installed, not loaded) is
 * kept in pgss_error and becomes the advice to enable it. */
static void read_statements(struct probe_pg_conn *c, struct pg_facts *f, struct probe_pg_res *all)
{
    struct probe_pg_res r;
    memset(all, 0, sizeof(*all));
    /* Only this database's statements, and not the probe's own. */
    static const char *const filter =
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query "
        "NOT LIKE '%apigate-doctor%' AND query NOT ILIKE '%pg_stat_statements%' ";
    char sql[1024];
    snprintf(sql, sizeof(sql),
             TAG "SELECT mean_exec_time AS mean, calls, total_exec_time AS total, rows, "
                 "left(regexp_replace(query, '\\s+', ' ', 'g'), 390) AS query FROM "
                 "pg_stat_statements %s ORDER BY mean_exec_time DESC LIMIT 5",
             filter);
    if (q(c, sql, &r, f->pgss_error, sizeof(f->pgss_error)) < 0)
        return;
    f->pgss = true;
    for (int i = 0; i < r.rows && f->n_stmts < PG_FACTS_MAX; i++) {
        struct pg_stmt *s = &f->stmts[f->n_stmts++];
        s->mean_ms = dbl(probe_pg_get(&r, i, "mean"));
        s->calls = num(probe_pg_get(&r, i, "calls"));
        s->total_ms = dbl(probe_pg_get(&r, i, "total"));
        s->rows = num(probe_pg_get(&r, i, "rows"));
        copy(s->query, sizeof(s->query), probe_pg_get(&r, i, "query"));
    }
    probe_pg_res_free(&r);
    /* The heaviest statements, to find the columns of missing indexes. */
    snprintf(sql, sizeof(sql),
             TAG "SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query FROM pg_stat_statements "
                 "%s ORDER BY total_exec_time DESC LIMIT 50",
             filter);
    char err[256];
    if (q(c, sql, all, err, sizeof(err)) < 0)
        memset(all, 0, sizeof(*all));
}

/* pg_stat_user_tables: the tables read most by sequential scans, each with the candidate columns
 * found in the statements of <stmts>. */
static void read_tables(struct probe_pg_conn *c, struct pg_facts *f,
                        const struct probe_pg_res *stmts)
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
        /* The first heavy statement that filters this table names the columns. */
        for (int k = 0; k < stmts->rows && !t->columns[0]; k++) {
            const char *sq = probe_pg_get(stmts, k, "query");
            if (sq)
                rules_pg_candidate_columns(sq, t->table, t->columns, sizeof(t->columns));
        }
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

int probe_pg_run(const char *url, int timeout_ms, struct pg_facts *f, struct finding_list *out)
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
    struct probe_pg_res stmts;
    read_statements(c, f, &stmts);
    read_tables(c, f, &stmts);
    probe_pg_res_free(&stmts);
    read_server(c, f);
    probe_pg_close(c);
    return 0;
}
