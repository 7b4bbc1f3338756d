/* The doctor's rules as pure functions: thresholds → severities, and the computed fixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "doctor/internal.h"
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
    } cases[] = {{77, FINDING_OK},       // of 97 usable (100 - 3 reserved): 79%
                 {78, FINDING_WARNING},  // 80.4%
                 {92, FINDING_WARNING},  // 94.8%
                 {93, FINDING_CRITICAL}, // 95.9%
                 {97, FINDING_CRITICAL}, // full
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
    assert_string_equal(f->title,
                        "a statement takes 150.0 ms on average over 40 calls (6000 ms in all)");
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
    strcpy(pg.stmts[0].query,
           "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id = $1");
    finding_list_init(&l);
    rules_pg(&pg, &l);
    assert_null(finding_find(&l, "pg-missing-index")); // no seq scan in the plans
    finding_list_deinit(&l);
    pg.n_planscans = 2;
    pg.planscans[0] = (struct pg_planscan){.table = "public.orders",
                                           .column = "user_id",
                                           .cond = "(o.user_id = $1)",
                                           .est_rows = 5,
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

/* apigate's L2 reads two keys per lookup: 200 L2 hits and 200 misses are 200 keyspace hits and
 * 600 misses (25%), which is a 50% L2, not a warning; an application cache at 25% still is. */
static void test_redis_l2(void **state)
{
    (void)state;
    struct redis_facts r;
    memset(&r, 0, sizeof(r));
    r.hits = 200;
    r.misses = 600;
    r.maxmemory = 100 << 20;
    r.maxclients = 10000;
    r.gw_l2_hits = r.gw_l2_misses = -1;
    struct finding_list l;
    finding_list_init(&l);
    rules_redis(&r, &l);
    const struct finding *f = finding_find(&l, "redis-hit-ratio");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->title, "25.0%"));
    assert_non_null(strstr(f->fix, "let the gateway cache"));
    finding_list_deinit(&l);
    r.gateway_caches = true; // the gateway already caches: not advised again
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_null(strstr(finding_find(&l, "redis-hit-ratio")->fix, "gateway"));
    finding_list_deinit(&l);
    r.apigate_keys = 12;
    finding_list_init(&l);
    rules_redis(&r, &l);
    f = finding_find(&l, "redis-hit-ratio");
    assert_int_equal(f->sev, FINDING_INFO);
    assert_string_equal(f->title, "apigate L2 hit ratio 50.0% (400 lookups)");
    assert_null(strstr(f->fix, "let the gateway cache"));
    finding_list_deinit(&l);
    r.hits = 400; // every lookup hits: the L2 can pass
    r.misses = 400;
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-hit-ratio"), FINDING_OK);
    finding_list_deinit(&l);
    /* With the gateway probe, its own L2 counters are exact. */
    r.apigate_keys = 0;
    r.gateway_l2 = true;
    r.gw_l2_hits = 90;
    r.gw_l2_misses = 10;
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_string_equal(finding_find(&l, "redis-hit-ratio")->title,
                        "apigate L2 hit ratio 90.0% (100 lookups)");
    finding_list_deinit(&l);
}

/* A cluster: all slots served (ok), a replaced primary (warning), a failed primary with slots
 * (critical, its ranges named), a primary without replica (warning). */
static void test_redis_cluster(void **state)
{
    (void)state;
    struct redis_facts r;
    memset(&r, 0, sizeof(r));
    r.maxmemory = 100 << 20;
    r.maxclients = 10000;
    r.gw_l2_hits = r.gw_l2_misses = -1;
    r.cluster = true;
    strcpy(r.cluster_state, "ok");
    r.slots_assigned = r.slots_ok = 16384;
    r.n_nodes = r.nodes_reached = 4;
    static const int slots[] = {8192, 8192, 0, 0};
    for (int i = 0; i < 4; i++) {
        struct redis_node *n = &r.nodes[i];
        snprintf(n->addr, sizeof(n->addr), "127.0.0.1:700%d", i);
        snprintf(n->id, sizeof(n->id), "id%d", i);
        n->primary = i < 2;
        n->slots = slots[i];
        snprintf(n->ranges, sizeof(n->ranges), "%s", i == 0 ? "0-8191" : "8192-16383");
        n->replicas = i < 2;
        n->reached = n->linked = true;
        if (i >= 2)
            snprintf(n->primary_id, sizeof(n->primary_id), "id%d", i - 2);
    }
    struct finding_list l;
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-cluster-slots"), FINDING_OK);
    assert_string_equal(finding_find(&l, "redis-cluster-slots")->title,
                        "all 16384 slots served by 2 primaries (cluster_state:ok)");
    assert_int_equal(sev_of(&l, "redis-cluster-nodes"), FINDING_OK);
    assert_int_equal(sev_of(&l, "redis-cluster-replicas"), FINDING_OK);
    finding_list_deinit(&l);

    /* node 0 failed over to node 2; node 2 has no replica */
    r.nodes[0].fail = true;
    r.nodes[0].slots = 0;
    r.nodes[0].reached = false;
    r.nodes[2].primary = true;
    r.nodes[2].slots = 8192;
    strcpy(r.nodes[2].ranges, "0-8191");
    r.nodes[2].replicas = 0;
    r.nodes[2].primary_id[0] = '\0';
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-cluster-slots"), FINDING_OK);
    assert_int_equal(sev_of(&l, "redis-cluster-nodes"), FINDING_WARNING);
    assert_non_null(strstr(finding_find(&l, "redis-cluster-nodes")->evidence,
                           "primary 127.0.0.1:7000 (id0) failed: serves no slot (replaced)"));
    assert_int_equal(sev_of(&l, "redis-cluster-replicas"), FINDING_WARNING);
    assert_string_equal(finding_find(&l, "redis-cluster-replicas")->title,
                        "1 of 2 primaries have no replica");
    finding_list_deinit(&l);

    /* node 2 fails too, before a failover: its slots are not served */
    r.nodes[2].pfail = true;
    strcpy(r.cluster_state, "fail");
    finding_list_init(&l);
    rules_redis(&r, &l);
    const struct finding *f = finding_find(&l, "redis-cluster-slots");
    assert_int_equal(f->sev, FINDING_CRITICAL);
    assert_string_equal(f->title, "8192 of 16384 slots not served (cluster_state:fail)");
    assert_non_null(strstr(f->evidence, "slots 0-8191 (8192) not served, no replica to take over"));
    assert_int_equal(sev_of(&l, "redis-cluster-nodes"), FINDING_CRITICAL);
    finding_list_deinit(&l);

    /* a plain Redis: none of them */
    r.cluster = false;
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_null(finding_find(&l, "redis-cluster-slots"));
    assert_null(finding_find(&l, "redis-cluster-nodes"));
    finding_list_deinit(&l);
}

/* A Sentinel: judged on what it monitors, never on a keyspace it does not have. */
static void test_redis_sentinel(void **state)
{
    (void)state;
    static struct redis_facts r;
    memset(&r, 0, sizeof(r));
    r.gw_l2_hits = r.gw_l2_misses = -1;
    r.sentinel = true;
    r.maxclients = 10000;
    struct finding_list l;
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-sentinel"), FINDING_WARNING); // monitors nothing
    assert_null(finding_find(&l, "redis-hit-ratio"));
    assert_null(finding_find(&l, "redis-memory"));
    finding_list_deinit(&l);
    r.n_masters = 1;
    struct redis_sentinel_master *m = &r.masters[0];
    strcpy(m->name, "mymaster");
    strcpy(m->addr, "10.0.0.5:6379");
    strcpy(m->flags, "master");
    m->replicas = m->replicas_ok = 1;
    m->sentinels = 3;
    m->quorum = 2;
    m->ckquorum_ok = true;
    strcpy(m->ckquorum, "OK 3 usable Sentinels. Quorum and failover authorization can be reached");
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-sentinel"), FINDING_OK);
    assert_string_equal(finding_find(&l, "redis-sentinel")->title,
                        "mymaster: primary 10.0.0.5:6379, 1 of 1 replicas in service, 3 sentinels "
                        "(quorum 2)");
    finding_list_deinit(&l);
    m->sentinels = 2; // one more lost and no failover
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-sentinel"), FINDING_WARNING);
    finding_list_deinit(&l);
    m->sentinels = 3;
    m->replicas_ok = 0;
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-sentinel"), FINDING_WARNING);
    finding_list_deinit(&l);
    strcpy(m->flags, "master,s_down,o_down");
    finding_list_init(&l);
    rules_redis(&r, &l);
    const struct finding *f = finding_find(&l, "redis-sentinel");
    assert_int_equal(f->sev, FINDING_CRITICAL);
    assert_string_equal(f->title, "mymaster: primary 10.0.0.5:6379 is down (master,s_down,o_down)");
    finding_list_deinit(&l);
    strcpy(m->flags, "master");
    m->replicas_ok = 1;
    m->ckquorum_ok = false; // too few sentinels reachable: no failover possible
    finding_list_init(&l);
    rules_redis(&r, &l);
    assert_int_equal(sev_of(&l, "redis-sentinel"), FINDING_CRITICAL);
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

/* A healthy gateway over a 3 s window; fields /stats lacks are -1. */
static struct gw_facts gw_base(void)
{
    struct gw_facts g;
    memset(&g, 0, sizeof(g));
    strcpy(g.where, "http://x/stats");
    g.window_s = 3;
    g.requests_total = 1000;
    g.responses_5xx = 0;
    g.latency_p95_ms = 20;
    g.latency_windowed = true;
    g.cache_hits = 900;
    g.cache_misses = 100;
    g.cache_stale = g.cache_expired = g.cache_bypass = g.cache_not_stored = g.cache_stores = -1;
    g.l2_hits = g.l2_misses = -1;
    g.shed_total = 0;
    g.pool_wait_p95_ms = 1;
    g.breakers_open = 0;
    g.upstream_connects_total = 10;
    g.upstream_reuses = 90;
    g.closed_not_reusable = g.closed_upstream_closed = -1;
    g.worker_restarts = 0;
    g.worker_crashes = g.worker_recycles = 0;
    g.threads = 2;
    g.life_requests = 5000;
    g.life_5xx = 0;
    g.life_crashes = g.life_recycles = 0;
    return g;
}

/* The L2's view of Redis: all connected (ok), a node lost with errors in the window (warning),
 * no L2 view at all (no finding). */
static void test_gateway_l2(void **state)
{
    (void)state;
    struct gw_facts g = gw_base();
    struct finding_list l;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_null(finding_find(&l, "gw-l2"));
    finding_list_deinit(&l);
    g.l2_enabled = true;
    strcpy(g.l2_mode, "cluster");
    g.l2_nodes_known = g.l2_nodes_connected = 3;
    g.l2_slots_covered = 16384;
    g.l2_errors = 0;
    g.l2_failovers = 0;
    g.n_l2_nodes = 1;
    g.l2_nodes[0] = (struct gw_l2_node){"127.0.0.1:7000", "primary", true, 16384, 0};
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(sev_of(&l, "gw-l2"), FINDING_OK);
    assert_string_equal(finding_find(&l, "gw-l2")->title,
                        "Redis L2 (cluster): 3 of 3 nodes connected, 16384 of 16384 slots "
                        "covered, 0 errors in the last 3.0 s");
    finding_list_deinit(&l);
    g.l2_nodes_connected = 2;
    g.l2_errors = 40;
    g.l2_nodes[0].connected = false;
    g.l2_nodes[0].errors = 40;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    const struct finding *f = finding_find(&l, "gw-l2");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(
        strstr(f->evidence, "primary 127.0.0.1:7000: NOT connected, 16384 slots, 40 errors"));
    finding_list_deinit(&l);
    g.l2_nodes_connected = 3; // all back, a failover in the window: info
    g.l2_errors = 0;
    g.l2_nodes[0].connected = true;
    g.l2_nodes[0].errors = 0;
    g.l2_failovers = 1;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(sev_of(&l, "gw-l2"), FINDING_INFO);
    finding_list_deinit(&l);
    /* after that failover the replaced primary serves no slot and stays down: its reconnect
     * errors cost the L2 nothing (info); a primary with slots down is a warning */
    g.n_l2_nodes = 2;
    g.l2_nodes[1] = (struct gw_l2_node){"127.0.0.1:7001", "node", false, 0, 12};
    g.l2_errors = 12;
    g.l2_nodes_connected = 2;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    f = finding_find(&l, "gw-l2");
    assert_int_equal(f->sev, FINDING_INFO);
    assert_non_null(strstr(f->evidence, "node 127.0.0.1:7001: NOT connected, serves no slot"));
    finding_list_deinit(&l);
    g.l2_errors = 13; // one more error than the idle node's: a lookup failed
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(sev_of(&l, "gw-l2"), FINDING_WARNING);
    finding_list_deinit(&l);
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
    g.worker_crashes = 2;
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

/* The notes' thresholds: alert below 80%, target above 90%; and the fix names what limits the
 * ratio, from the counters. */
static void test_gateway_hit_ratio(void **state)
{
    (void)state;
    struct gw_facts g = gw_base();
    static const struct {
        double hits;
        enum finding_sev sev;
    } cases[] = {{493, FINDING_WARNING}, {799, FINDING_WARNING}, {800, FINDING_INFO},
                 {899, FINDING_INFO},    {900, FINDING_OK},      {1000, FINDING_OK}};
    struct finding_list l;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        g.cache_hits = cases[i].hits;
        g.cache_misses = 1000 - cases[i].hits;
        g.requests_total = 1000;
        finding_list_init(&l);
        rules_gateway(&g, &l);
        assert_int_equal(sev_of(&l, "gw-cache-hit-ratio"), cases[i].sev);
        finding_list_deinit(&l);
    }
    /* 49.3%: half the misses not stored (no-store), a third of the requests on uncached routes,
     * a quarter of the hits STALE. */
    g.requests_total = 1500;
    g.cache_hits = 493;
    g.cache_misses = 507;
    g.cache_stale = 150;
    g.cache_expired = 20;
    g.cache_not_stored = 300;
    g.cache_stores = 150;
    g.cache_bypass = 0;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    const struct finding *f = finding_find(&l, "gw-cache-hit-ratio");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->title, "cache hit ratio 49.3% in the last 3.0 s"));
    assert_non_null(strstr(f->fix, "59% of the misses were not stored"));
    assert_non_null(strstr(f->fix, "override: true"));
    assert_non_null(strstr(f->fix, "33% of all requests go to routes without a cache"));
    assert_non_null(strstr(f->fix, "30% of the hits are STALE"));
    assert_null(strstr(f->fix, "expired entries")); // 4% of the misses: not what limits it
    assert_non_null(
        strstr(f->evidence, "500 of 1500 requests (33.3%) went to routes without a cache"));
    finding_list_deinit(&l);
    /* Most misses stored and never read again: keys vary too much. */
    g.cache_not_stored = 0;
    g.cache_stores = 480;
    g.requests_total = 1000;
    g.cache_stale = 0;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_non_null(strstr(finding_find(&l, "gw-cache-hit-ratio")->fix, "per-user keys"));
    finding_list_deinit(&l);
}

/* Findings are about the window; crashes and recycles apart; churn per upstream request. */
static void test_gateway_window(void **state)
{
    (void)state;
    struct gw_facts g = gw_base();
    g.responses_5xx = 0; // the window is clean ...
    g.life_requests = 10000;
    g.life_5xx = 8560; // ... after a burst long ago
    g.worker_crashes = 0;
    g.life_crashes = 1;
    g.worker_recycles = 3;
    g.life_recycles = 10;
    g.worker_restarts = 3;
    struct finding_list l;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    const struct finding *f = finding_find(&l, "gw-5xx-rate");
    assert_int_equal(f->sev, FINDING_OK);
    assert_non_null(strstr(f->evidence, "since start: 85.60%"));
    assert_int_equal(sev_of(&l, "gw-worker-restarts"), FINDING_INFO); // an old crash
    assert_int_equal(sev_of(&l, "gw-worker-recycles"), FINDING_INFO); // planned
    assert_int_equal(finding_list_worst(&l), FINDING_INFO);
    finding_list_deinit(&l);
    g.worker_crashes = 1;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(sev_of(&l, "gw-worker-restarts"), FINDING_WARNING);
    finding_list_deinit(&l);
    /* A quiet window: rates are not judged. */
    g = gw_base();
    g.requests_total = 3;
    g.responses_5xx = 3;
    g.cache_hits = 0;
    g.cache_misses = 3;
    g.upstream_connects_total = 3;
    g.upstream_reuses = 0;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_int_equal(sev_of(&l, "gw-traffic"), FINDING_INFO);
    assert_null(finding_find(&l, "gw-5xx-rate"));
    assert_null(finding_find(&l, "gw-connection-churn"));
    finding_list_deinit(&l);
    /* Churn: 90% cache hits and every upstream request on a new connection. connects/requests
     * would say 0.10; connects/upstream requests says 1.00. */
    g = gw_base();
    g.upstream_connects_total = 100;
    g.upstream_reuses = 0;
    g.closed_not_reusable = 100;
    g.closed_upstream_closed = 0;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    f = finding_find(&l, "gw-connection-churn");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->title, "1.00 upstream connects per upstream request"));
    assert_non_null(strstr(f->fix, "Connection: close"));
    assert_non_null(strstr(f->fix, "gunicorn"));
    assert_null(strstr(f->fix, "idle_timeout"));
    finding_list_deinit(&l);
    g.closed_not_reusable = 0;
    g.closed_upstream_closed = 90;
    finding_list_init(&l);
    rules_gateway(&g, &l);
    assert_non_null(strstr(finding_find(&l, "gw-connection-churn")->fix, "idle_timeout"));
    finding_list_deinit(&l);
}

/* TIME_WAITs toward a database port: a connection per request. */
static void test_host_db_churn(void **state)
{
    (void)state;
    struct host_facts h;
    memset(&h, 0, sizeof(h));
    h.port_lo = 32768;
    h.port_hi = 60999;
    rules_host_db_port(&h, 55001, "PostgreSQL"); // a --postgres URL on a non-default port
    rules_host_db_port(&h, 5432, "PostgreSQL");  // already known: not twice
    assert_int_equal(h.n_db_ports, 7);
    h.n_db_dests = 2;
    h.db_dests[0] = (struct host_dest){"127.0.0.1:55001", 960, 958, "PostgreSQL"};
    h.db_dests[1] = (struct host_dest){"10.0.0.7:6379", 4, 0, "Redis"};
    struct finding_list l;
    finding_list_init(&l);
    rules_host(&h, &l);
    const struct finding *f = finding_find(&l, "host-db-connection-churn");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_string_equal(f->title, "958 TIME_WAIT sockets to PostgreSQL at 127.0.0.1:55001: a new "
                                  "connection per request");
    assert_non_null(strstr(f->fix, "pool"));
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++)
        if (strcmp(l.v[i].id, "host-db-connection-churn") == 0 && ++n == 2)
            assert_int_equal(l.v[i].sev, FINDING_OK); // 4 sockets to Redis, none closed
    assert_int_equal(n, 2);
    finding_list_deinit(&l);
    h.db_dests[0].time_wait = 99;
    finding_list_init(&l);
    rules_host(&h, &l);
    assert_int_equal(sev_of(&l, "host-db-connection-churn"), FINDING_OK);
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
    struct target_facts t = {"http://x/", 4, s, -1, -1, -1};
    struct finding_list l;
    finding_list_init(&l);
    rules_target(&t, &l);
    assert_int_equal(sev_of(&l, "target-latency"), FINDING_OK);
    assert_null(finding_find(&l, "target-cache-hit-ratio")); // not a cache-stats answer
    finding_list_deinit(&l);
    /* A /metrics/cache-shaped answer is read and judged (alert 80%, target 90%). */
    static const struct {
        const char *body;
        enum finding_sev sev;
    } cache[] = {
        {"{\"hits\": 100, \"misses\": 300, \"hitRate\": \"25.00%\", \"total\": 400}",
         FINDING_WARNING},
        {"{\"hitRate\": \"99.95%\", \"timestamp\": \"2024-01-01T00:00:00Z\"}", FINDING_OK},
        {"{\"hitRate\": 0.85}", FINDING_INFO},
        {"{\"cache\": {\"hits\": 93, \"misses\": 7}}", FINDING_OK},
        {"{\"hits\": 3, \"misses\": 2}", FINDING_INFO}, // too few to judge
    };
    for (size_t i = 0; i < sizeof(cache) / sizeof(cache[0]); i++) {
        probe_target__parse_cache(cache[i].body, &t);
        finding_list_init(&l);
        rules_target(&t, &l);
        assert_int_equal(sev_of(&l, "target-cache-hit-ratio"), cache[i].sev);
        finding_list_deinit(&l);
    }
    probe_target__parse_cache("{\"hello\": 1}", &t);
    assert_float_equal(t.cache_rate, -1, 1e-9);
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
        cmocka_unit_test(test_pg_connections),  cmocka_unit_test(test_pg_pool_size),
        cmocka_unit_test(test_pg_idle),         cmocka_unit_test(test_pg_idle_in_tx_and_blocked),
        cmocka_unit_test(test_pg_long_queries), cmocka_unit_test(test_pg_statements),
        cmocka_unit_test(test_pg_seqscan),      cmocka_unit_test(test_pg_plan_column),
        cmocka_unit_test(test_pg_limits),       cmocka_unit_test(test_pg_hit_ratio_and_replication),
        cmocka_unit_test(test_pgbouncer),       cmocka_unit_test(test_redis),
        cmocka_unit_test(test_redis_l2),        cmocka_unit_test(test_redis_cluster),
        cmocka_unit_test(test_redis_sentinel),  cmocka_unit_test(test_gateway_l2),
        cmocka_unit_test(test_gateway),         cmocka_unit_test(test_gateway_hit_ratio),
        cmocka_unit_test(test_gateway_window),  cmocka_unit_test(test_host),
        cmocka_unit_test(test_host_db_churn),   cmocka_unit_test(test_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
