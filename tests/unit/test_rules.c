/* The doctor's rules as pure functions: thresholds → severities, and the computed fixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "doctor/rules.h"

static enum finding_sev sev_of(const struct finding_list *l, const char *id)
{
    const struct finding *f = finding_find(l, id);
    assert_non_null(f);
    return f->sev;
}

static struct pg_facts pg_base(void)
{
    struct pg_facts pg;
    memset(&pg, 0, sizeof(pg));
    pg.max_connections = 100;
    pg.reserved = 3;
    pg.pgss = true;
    return pg;
}

static void test_pg_connections(void **state)
{
    (void)state;
    struct pg_facts pg = pg_base();
    struct finding_list l;
    static const struct {
        int total;
        enum finding_sev sev;
    } cases[] = {{77, FINDING_OK},        // of 97 usable (100 - 3 reserved): 79%
                 {78, FINDING_WARNING},   // 80.4%
                 {92, FINDING_WARNING},   // 94.8%
                 {93, FINDING_CRITICAL},  // 95.9%
                 {97, FINDING_CRITICAL},  // full
                 {10, FINDING_OK}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pg.total = cases[i].total;
        pg.active = 2;
        pg.idle = 0;
        finding_list_init(&l);
        rules_pg(&pg, &l);
        assert_int_equal(sev_of(&l, "pg-connections"), cases[i].sev);
        finding_list_deinit(&l);
    }
    /* 17 of max_connections 20 with 3 reserved is full, not 85%. */
    pg.max_connections = 20;
    pg.total = 17;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    const struct finding *f = finding_find(&l, "pg-connections");
    assert_int_equal(f->sev, FINDING_CRITICAL);
    assert_non_null(strstr(f->title, "17 of 17 usable connections in use (100%"));
    assert_non_null(strstr(f->evidence, "remaining connection slots are reserved"));
    assert_non_null(strstr(f->fix, "put PgBouncer in front"));
    finding_list_deinit(&l);
    /* PgBouncer already in front: no advice to put it there. */
    pg.pgbouncer_in_front = true;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    f = finding_find(&l, "pg-connections");
    assert_null(strstr(f->fix, "put PgBouncer in front"));
    assert_non_null(strstr(f->fix, "PgBouncer is already in front"));
    finding_list_deinit(&l);
}

static void test_pg_limits(void **state)
{
    (void)state;
    struct pg_facts pg = pg_base();
    pg.total = 5;
    pg.n_role_limits = 2;
    pg.role_limits[0] = (struct pg_limit){"app", 3, 3};
    pg.role_limits[1] = (struct pg_limit){"report", 10, 2};
    pg.n_db_limits = 1;
    pg.db_limits[0] = (struct pg_limit){"shop", 10, 8};
    struct finding_list l;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-connections"), FINDING_OK); // 5 of 97
    const struct finding *f = finding_find(&l, "pg-role-connections");
    assert_int_equal(f->sev, FINDING_CRITICAL);
    assert_string_equal(f->title, "role \"app\": 3 of CONNECTION LIMIT 3 in use (full)");
    assert_non_null(strstr(f->evidence, "FATAL: too many connections for role \"app\""));
    assert_non_null(strstr(f->fix, "ALTER ROLE \"app\" CONNECTION LIMIT"));
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++)
        if (strcmp(l.v[i].id, "pg-role-connections") == 0) {
            n++;
            if (strstr(l.v[i].title, "report"))
                assert_int_equal(l.v[i].sev, FINDING_OK); // 2 of 10
        }
    assert_int_equal(n, 2);
    assert_int_equal(sev_of(&l, "pg-database-connections"), FINDING_WARNING); // 8 of 10
    finding_list_deinit(&l);
}

static void test_pg_pool_size(void **state)
{
    (void)state;
    assert_int_equal(rules_pg_pool_size(2, 100, 3), 5);    // at least 5
    assert_int_equal(rules_pg_pool_size(10, 100, 3), 15);  // active × 1.5
    assert_int_equal(rules_pg_pool_size(100, 100, 3), 77); // capped at 80% of 97
    assert_int_equal(rules_pg_pool_size(3, 20, 3), 5);
}

static void test_pg_idle(void **state)
{
    (void)state;
    struct pg_facts pg = pg_base();
    pg.max_connections = 20;
    pg.total = 18;
    pg.idle = 17;
    pg.active = 1;
    struct finding_list l;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-connections"), FINDING_CRITICAL); // 18 of 17 usable
    const struct finding *f = finding_find(&l, "pg-idle-pools");
    assert_non_null(f);
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->fix, "default_pool_size = 5"));
    finding_list_deinit(&l);
    /* Half idle or fewer: no finding. */
    pg.idle = 9;
    pg.active = 9;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_null(finding_find(&l, "pg-idle-pools"));
    finding_list_deinit(&l);
}

static void test_pg_idle_in_tx_and_blocked(void **state)
{
    (void)state;
    struct pg_facts pg = pg_base();
    pg.total = 3;
    pg.idle_in_tx = 1;
    pg.idle_in_tx_oldest_s = 4.9;
    struct finding_list l;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_null(finding_find(&l, "pg-idle-in-transaction"));
    finding_list_deinit(&l);
    pg.idle_in_tx_oldest_s = 6;
    pg.n_blocked = 1;
    pg.blocked[0].pid = 42;
    pg.blocked[0].blocker_pid = 41;
    pg.blocked[0].wait_s = 3;
    strcpy(pg.blocked[0].query, "UPDATE t SET v = 1 WHERE id = 1");
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-idle-in-transaction"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "pg-blocked-queries"), FINDING_WARNING);
    assert_non_null(
        strstr(finding_find(&l, "pg-blocked-queries")->fix, "pg_terminate_backend(41)"));
    finding_list_deinit(&l);
    pg.idle_in_tx_oldest_s = 301;
    pg.blocked[0].wait_s = 31;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-idle-in-transaction"), FINDING_CRITICAL);
    assert_int_equal(sev_of(&l, "pg-blocked-queries"), FINDING_CRITICAL);
    finding_list_deinit(&l);
}

static void test_pg_long_queries(void **state)
{
    (void)state;
    struct pg_facts pg = pg_base();
    pg.total = 1;
    pg.active = 1;
    pg.active_oldest_pid = 77;
    pg.active_oldest_s = 59;
    strcpy(pg.active_oldest_query, "SELECT pg_sleep(600)");
    struct finding_list l;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_null(finding_find(&l, "pg-long-queries"));
    assert_non_null(strstr(finding_find(&l, "pg-connections")->evidence,
                           "longest active statement: 59.0 s (pid 77)"));
    finding_list_deinit(&l);
    pg.active_oldest_s = 61;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-long-queries"), FINDING_WARNING);
    assert_non_null(strstr(finding_find(&l, "pg-long-queries")->fix, "pg_cancel_backend(77)"));
    finding_list_deinit(&l);
}

static void test_pg_statements(void **state)
{
    (void)state;
    struct pg_facts pg = pg_base();
    struct finding_list l;
    pg.pgss = false;
    strcpy(pg.pgss_error, "relation \"pg_stat_statements\" does not exist");
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-stat-statements"), FINDING_INFO);
    assert_non_null(strstr(finding_find(&l, "pg-stat-statements")->fix,
                           "shared_preload_libraries = 'pg_stat_statements'"));
    finding_list_deinit(&l);
    pg.pgss = true;
    pg.n_stmts = 1;
    strcpy(pg.stmts[0].query, "SELECT 1");
    static const struct {
        double ms;
        long long calls;
        enum finding_sev sev;
    } cases[] = {{99, 100, FINDING_INFO},      {100, 100, FINDING_WARNING},
                 {1000, 10, FINDING_CRITICAL}, {452, 1, FINDING_INFO}, // a setup INSERT
                 {16900, 1, FINDING_INFO},                             // a manual pg_sleep
                 {16900, 9, FINDING_INFO},     {30000, 2, FINDING_WARNING}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pg.stmts[0].mean_ms = cases[i].ms;
        pg.stmts[0].calls = cases[i].calls;
        pg.stmts[0].total_ms = cases[i].ms * (double)cases[i].calls;
        finding_list_init(&l);
        rules_pg(&pg, &l);
        assert_int_equal(sev_of(&l, "pg-slow-statements"), cases[i].sev);
        finding_list_deinit(&l);
    }
    /* Ranked by total time: the one-off leads the list but the verdict is the frequent one's,
     * and the evidence shows mean and calls for each. */
    pg.n_stmts = 2;
    pg.stmts[0] = (struct pg_stmt){.mean_ms = 16900, .calls = 1, .total_ms = 16900};
    strcpy(pg.stmts[0].query, "SELECT pg_sleep($1)");
    pg.stmts[1] = (struct pg_stmt){.mean_ms = 150, .calls = 40, .total_ms = 6000};
    strcpy(pg.stmts[1].query, "SELECT * FROM orders WHERE user_id = $1");
    strcpy(pg.stmts[1].plan, "Seq Scan on public.orders");
    finding_list_init(&l);
    rules_pg(&pg, &l);
    const struct finding *f = finding_find(&l, "pg-slow-statements");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_string_equal(f->title, "a statement takes 150.0 ms on average over 40 calls (6000 ms in all)");
    assert_non_null(strstr(f->evidence, "[one-off, not judged] SELECT pg_sleep($1)"));
    assert_non_null(strstr(f->evidence, "EXPLAIN: Seq Scan on public.orders"));
    assert_true(strstr(f->evidence, "pg_sleep") < strstr(f->evidence, "user_id"));
    finding_list_deinit(&l);
}

static void test_pg_seqscan(void **state)
{
    (void)state;
    /* Without plans (no pg_stat_statements): the counters give a hint without a column. */
    struct pg_facts pg = pg_base();
    pg.pgss = false;
    pg.n_seqscans = 2;
    struct pg_seqscan *t = &pg.seqscans[0];
    strcpy(t->table, "public.orders");
    t->seq_scan = 20;
    t->seq_tup_read = 20 * 50000;
    t->n_live_tup = 50000;
    struct pg_seqscan *small = &pg.seqscans[1]; // small table: seq scans are right there
    strcpy(small->table, "public.countries");
    small->seq_scan = 1000;
    small->seq_tup_read = 1000 * 200;
    struct finding_list l;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    const struct finding *f = finding_find(&l, "pg-missing-index");
    assert_non_null(f);
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->fix, "CREATE INDEX CONCURRENTLY ON public.orders (<column>);"));
    assert_null(strstr(f->title, "countries"));
    finding_list_deinit(&l);
    t->idx_scan = 1000; // used mostly through an index: not flagged
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_null(finding_find(&l, "pg-missing-index"));
    finding_list_deinit(&l);

    /* With plans, the lifetime counters alone say nothing: the plan's seq scan and its column. */
    t->idx_scan = 0;
    pg.pgss = true;
    pg.explained = true;
    pg.n_stmts = 1;
    pg.stmts[0] = (struct pg_stmt){.mean_ms = 30, .calls = 200, .total_ms = 6000};
    strcpy(pg.stmts[0].query, "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id = $1");
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_null(finding_find(&l, "pg-missing-index")); // no seq scan in the plans
    finding_list_deinit(&l);
    pg.n_planscans = 2;
    pg.planscans[0] = (struct pg_planscan){.table = "public.orders", .column = "user_id",
                                           .cond = "(o.user_id = $1)", .est_rows = 5,
                                           .table_rows = 50000};
    pg.planscans[1] = pg.planscans[0]; // the same scan in another statement: one finding
    finding_list_init(&l);
    rules_pg(&pg, &l);
    f = finding_find(&l, "pg-missing-index");
    assert_non_null(f);
    assert_string_equal(f->fix, "CREATE INDEX CONCURRENTLY ON public.orders (user_id);");
    assert_non_null(strstr(f->evidence, "seq_scan 20, seq_tup_read 1000000"));
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++)
        n += strcmp(l.v[i].id, "pg-missing-index") == 0;
    assert_int_equal(n, 1);
    finding_list_deinit(&l);
    /* The index exists (a seq scan anyway), the table is small, or no column was found: nothing. */
    for (int k = 0; k < 3; k++) {
        pg.n_planscans = 1;
        pg.planscans[0].indexed = k == 0;
        pg.planscans[0].table_rows = k == 1 ? 500 : 50000;
        strcpy(pg.planscans[0].column, k == 2 ? "" : "user_id");
        finding_list_init(&l);
        rules_pg(&pg, &l);
        assert_null(finding_find(&l, "pg-missing-index"));
        finding_list_deinit(&l);
    }
}

static void test_pg_plan_column(void **state)
{
    (void)state;
    char out[64];
    const char *cols = "id,user_id,total,status,note";
    /* The join key of the scanned side, not the other side's primary key. */
    assert_int_equal(rules_pg_plan_column("(o.user_id = u.id)", "o", cols, out, sizeof(out)), 1);
    assert_string_equal(out, "user_id");
    assert_int_equal(rules_pg_plan_column("(u.id = o.user_id)", "o", cols, out, sizeof(out)), 1);
    assert_string_equal(out, "user_id");
    /* Another alias's columns are not this table's. */
    assert_int_equal(rules_pg_plan_column("(u.id = $1)", "o", cols, out, sizeof(out)), 0);
    /* Unqualified filter; '=' preferred over a range; literals and casts skipped. */
    assert_int_equal(rules_pg_plan_column("((total > '10'::numeric) AND (status = 'id'::text))",
                                          "orders", cols, out, sizeof(out)),
                     1);
    assert_string_equal(out, "status");
    assert_int_equal(rules_pg_plan_column("(orders.total > $1)", "orders", cols, out, sizeof(out)),
                     1);
    assert_string_equal(out, "total");
    /* A name that is no column of the table (a function, a type) is never proposed. */
    assert_int_equal(rules_pg_plan_column("(lower(o.name) = $1)", "o", cols, out, sizeof(out)), 0);
    assert_int_equal(rules_pg_plan_column("", "o", cols, out, sizeof(out)), 0);
}

static void test_pg_hit_ratio_and_replication(void **state)
{
    (void)state;
    struct pg_facts pg = pg_base();
    pg.blks_hit = 800;
    pg.blks_read = 200; // 80% but only 1000 blocks: too few to judge
    struct finding_list l;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-cache-hit-ratio"), FINDING_OK);
    finding_list_deinit(&l);
    pg.blks_hit = 80000;
    pg.blks_read = 20000;
    pg.n_replicas = 1;
    pg.replicas[0].replay_lag_s = 61;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-cache-hit-ratio"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "pg-replication-lag"), FINDING_CRITICAL);
    finding_list_deinit(&l);
    /* Bytes behind count even when replay_lag is small (replay stalled). */
    pg.replicas[0].replay_lag_s = 0.1;
    pg.replicas[0].lag_bytes = 17ll << 20;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-replication-lag"), FINDING_WARNING);
    finding_list_deinit(&l);
    pg.replicas[0].lag_bytes = 1000;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-replication-lag"), FINDING_OK);
    finding_list_deinit(&l);
    /* Probing a replica: an old last replay is not lag while nothing is pending. */
    pg.n_replicas = 0;
    pg.is_replica = true;
    pg.replica_behind_s = 3600;
    pg.replica_pending = 0;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-replication-lag"), FINDING_OK);
    finding_list_deinit(&l);
    pg.replica_pending = 1000;
    pg.replay_paused = true;
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_int_equal(sev_of(&l, "pg-replication-lag"), FINDING_CRITICAL); // 3600 s behind
    assert_non_null(strstr(finding_find(&l, "pg-replication-lag")->fix, "pg_wal_replay_resume()"));
    finding_list_deinit(&l);
}

static void test_pgbouncer(void **state)
{
    (void)state;
    struct pgb_facts b;
    memset(&b, 0, sizeof(b));
    b.n_pools = 2;
    strcpy(b.pools[0].database, "pgbouncer"); // the console's pool is ignored
    b.pools[0].cl_waiting = 5;
    strcpy(b.pools[1].database, "app");
    strcpy(b.pools[1].mode, "transaction");
    b.pools[1].cl_active = 1;
    b.pools[1].sv_active = 1;
    b.pools[1].pool_size = 1;
    struct finding_list l;
    finding_list_init(&l);
    rules_pgbouncer(&b, &l);
    assert_int_equal(sev_of(&l, "pgb-pool-starvation"), FINDING_OK);
    finding_list_deinit(&l);
    b.pools[1].cl_waiting = 3;
    b.pools[1].maxwait_s = 0.5;
    finding_list_init(&l);
    rules_pgbouncer(&b, &l);
    const struct finding *f = finding_find(&l, "pgb-pool-starvation");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->fix, "default_pool_size = 4")); // 1 active + 3 waiting
    finding_list_deinit(&l);
    b.pools[1].maxwait_s = 2;
    b.pools[1].pool_size = 300;
    b.server_max_connections = 100;
    finding_list_init(&l);
    rules_pgbouncer(&b, &l);
    assert_int_equal(sev_of(&l, "pgb-pool-starvation"), FINDING_CRITICAL);
    assert_int_equal(sev_of(&l, "pgb-pool-oversize"), FINDING_CRITICAL);
    finding_list_deinit(&l);
}

static void test_redis(void **state)
{
    (void)state;
    struct redis_facts r;
    memset(&r, 0, sizeof(r));
    strcpy(r.policy, "allkeys-lru");
    r.maxclients = 10000;
    r.connected_clients = 1;
    struct finding_list l;
    static const struct {
        long long hits, misses;
        enum finding_sev sev;
    } cases[] = {{5, 95, FINDING_CRITICAL},
                 {10, 90, FINDING_WARNING},
                 {79, 21, FINDING_WARNING},
                 {80, 20, FINDING_OK},
                 {0, 50, FINDING_INFO}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r.hits = cases[i].hits;
        r.misses = cases[i].misses;
        finding_list_init(&l);
        rules_redis(&r, &l);
        assert_int_equal(sev_of(&l, "redis-hit-ratio"), cases[i].sev);
        finding_list_deinit(&l);
    }
    r.evicted_keys = 500;
    r.maxmemory = 2 * 1024 * 1024;
    r.used_memory = 2 * 1024 * 1024 - 10;
    r.used_memory_peak = 3 * 1024 * 1024;
    finding_list_init(&l);
    rules_redis(&r, &l);
    const struct finding *f = finding_find(&l, "redis-evictions");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->fix, "maxmemory 6mb"));
    assert_int_equal(sev_of(&l, "redis-memory"), FINDING_WARNING);
    finding_list_deinit(&l);
    strcpy(r.policy, "noeviction");
    r.n_slow = 1;
    r.slow[0].duration_us = 20000;
    strcpy(r.slow[0].command, "KEYS *");
    r.ping_ms = 11;
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-memory"), FINDING_CRITICAL);
    assert_int_equal(sev_of(&l, "redis-slowlog"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "redis-latency"), FINDING_WARNING);
    finding_list_deinit(&l);
}

static struct gw_facts gw_base(void)
{
    struct gw_facts g = {"http://x/stats", 1000, 0, 20, 900, 100, 0, 1, 0, 10, 0, 2};
    return g;
}

static void test_gateway(void **state)
{
    (void)state;
    struct gw_facts g = gw_base();
    struct finding_list l;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(finding_list_worst(&l), FINDING_OK);
    finding_list_deinit(&l);
    g.responses_5xx = 51; // 5.1%
    g.latency_p95_ms = 501;
    g.cache_hits = 5;
    g.shed_total = 20;
    g.pool_wait_p95_ms = 150;
    g.breakers_open = 1;
    g.upstream_connects_total = 900;
    g.worker_restarts = 2;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(sev_of(&l, "gw-5xx-rate"), FINDING_CRITICAL);
    assert_int_equal(sev_of(&l, "gw-latency"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "gw-cache-hit-ratio"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "gw-shed"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "gw-pool-wait"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "gw-breakers-open"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "gw-connection-churn"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "gw-worker-restarts"), FINDING_WARNING);
    finding_list_deinit(&l);
    g = gw_base();
    g.responses_5xx = 20;  // 2%
    g.latency_p95_ms = -1; // missing from /stats: rule skipped
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(sev_of(&l, "gw-5xx-rate"), FINDING_WARNING);
    assert_null(finding_find(&l, "gw-latency"));
    finding_list_deinit(&l);
}

static void test_host(void **state)
{
    (void)state;
    struct host_facts h;
    memset(&h, 0, sizeof(h));
    h.port_lo = 40000;
    h.port_hi = 40999; // 1000 ports
    h.n_dests = 1;
    strcpy(h.dests[0].addr, "10.0.0.5:5432");
    h.listen_overflows = 0;
    h.somaxconn = 4096;
    h.cpus = 2;
    static const struct {
        int total;
        enum finding_sev sev;
    } cases[] = {{499, FINDING_OK}, {500, FINDING_WARNING}, {800, FINDING_CRITICAL}};
    struct finding_list l;
    for (size_t i = 0; i < 3; i++) {
        h.dests[0].total = cases[i].total;
        finding_list_init(&l);
        rules_host(&h, &l);
        assert_int_equal(sev_of(&l, "host-ephemeral-ports"), cases[i].sev);
        finding_list_deinit(&l);
    }
    h.listen_overflows = 3;
    h.somaxconn = 128;
    h.nofile_soft = 1024;
    h.fd_allocated = 900;
    h.fd_max = 1000;
    h.gateway_threads = 8;
    finding_list_init(&l);
    rules_host(&h, &l);
    assert_int_equal(sev_of(&l, "host-listen-overflows"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "host-somaxconn"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "host-nofile"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "host-file-descriptors"), FINDING_WARNING);
    assert_int_equal(sev_of(&l, "host-cpus"), FINDING_INFO);
    assert_non_null(strstr(finding_find(&l, "host-cpus")->fix, "threads: 2"));
    finding_list_deinit(&l);
}

static void test_target(void **state)
{
    (void)state;
    double v[] = {5, 1, 4, 2, 3, 10, 9, 8, 7, 6};
    assert_float_equal(rules_percentile(v, 10, 50), 5, 1e-9);
    assert_float_equal(rules_percentile(v, 10, 95), 10, 1e-9);
    assert_float_equal(rules_percentile(v, 10, 90), 9, 1e-9);
    assert_float_equal(rules_percentile(v, 1, 95), 5, 1e-9);
    assert_float_equal(rules_percentile(v, 0, 95), 0, 1e-9);
    struct target_sample s[4];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 4; i++) {
        s[i].ok = true;
        s[i].status = 200;
        s[i].total_ms = 10 + i;
        s[i].ttfb_ms = 9 + i;
    }
    struct target_facts t = {"http://x/", 4, s};
    struct finding_list l;
    finding_list_init(&l);
    rules_target(&t, &l);
    assert_int_equal(sev_of(&l, "target-latency"), FINDING_OK);
    finding_list_deinit(&l);
    s[3].total_ms = 900; // p95 of 4 = the max
    finding_list_init(&l);
    rules_target(&t, &l);
    assert_int_equal(sev_of(&l, "target-latency"), FINDING_WARNING);
    finding_list_deinit(&l);
    for (int i = 0; i < 4; i++) {
        s[i].ok = false;
        strcpy(s[i].error, "cannot connect to x:80: Connection refused");
    }
    finding_list_init(&l);
    rules_target(&t, &l);
    assert_int_equal(sev_of(&l, "target-unreachable"), FINDING_CRITICAL);
    finding_list_deinit(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_connections),
        cmocka_unit_test(test_pg_pool_size),
        cmocka_unit_test(test_pg_idle),
        cmocka_unit_test(test_pg_idle_in_tx_and_blocked),
        cmocka_unit_test(test_pg_long_queries),
        cmocka_unit_test(test_pg_statements),
        cmocka_unit_test(test_pg_seqscan),
        cmocka_unit_test(test_pg_plan_column),
        cmocka_unit_test(test_pg_limits),
        cmocka_unit_test(test_pg_hit_ratio_and_replication),
        cmocka_unit_test(test_pgbouncer),
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_gateway),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
