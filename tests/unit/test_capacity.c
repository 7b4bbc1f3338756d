/* Capacity arithmetic of `apigate doctor plan`: the seed's numbers and the verdicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "doctor/capacity.h"

static struct capacity_in seed(void)
{
    struct capacity_in in = {0};
    in.pods = 20;
    in.pool_size = 20;
    in.max_overflow = 10;
    in.db_max_connections = 200;
    in.conns_per_pod = 300;
    in.nat_ips = 1;
    in.ports_per_ip = 55000;
    in.cpu_limit = 2;
    capacity_defaults(&in);
    return in;
}

static void test_seed_db_connections(void **state)
{
    (void)state;
    struct capacity_in in = seed();
    struct capacity_out o;
    char err[128];
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), 0);
    assert_int_equal(o.db_possible, 600);   // 20 × (20 + 10)
    assert_int_equal(o.db_usable, 197);     // 200 − 3 reserved
    assert_int_equal(o.pgb_pool_size, 157); // 80% of 197
    assert_int_equal(o.app_conns, 600);
    assert_int_equal(o.pgb_max_client, 750); // 600 + 25% for deploys
    assert_int_equal(o.fit_per_pool, 7);     // floor(157.6 / 20)
    struct finding_list l;
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    const struct finding *f = finding_find(&l, "capacity-db-connections");
    assert_non_null(f);
    assert_int_equal(f->sev, FINDING_CRITICAL);
    assert_non_null(strstr(f->fix, "pool_mode = transaction"));
    assert_non_null(strstr(f->fix, "default_pool_size = 157"));
    finding_list_deinit(&l);
    /* Knowing the database has 8 cores: 2 × 8 + 1 = 17 server connections, split over 2
     * PgBouncers. */
    in.db_cpus = 8;
    in.pgbouncers = 2;
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), 0);
    assert_int_equal(o.pgb_pool_size, 9);
}

static void test_behind_pgbouncer(void **state)
{
    (void)state;
    /* The seed after the fix: the same pods, through 2 PgBouncers of 40 server connections. */
    struct capacity_in in = seed();
    in.pgbouncers = 2;
    in.pgbouncer_pool_size = 40;
    in.pgbouncer_max_client = 400;
    capacity_defaults(&in);
    struct capacity_out o;
    char err[128];
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), 0);
    assert_int_equal(o.app_conns, 600);
    assert_int_equal(o.db_possible, 80);
    assert_int_equal(o.pgb_clients, 800);
    struct finding_list l;
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    assert_int_equal(finding_find(&l, "capacity-db-connections")->sev, FINDING_OK);
    assert_int_equal(finding_find(&l, "capacity-pgbouncer-clients")->sev, FINDING_OK); // 75%
    finding_list_deinit(&l);
    /* PgBouncer's default max_client_conn (100) refuses most of the pods. */
    in.pgbouncer_max_client = 0;
    in.pgbouncer_pool_size = 90; // 180 server connections > 80% of 197
    capacity_defaults(&in);
    assert_int_equal(in.pgbouncer_max_client, 100);
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), 0);
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    const struct finding *f = finding_find(&l, "capacity-pgbouncer-clients");
    assert_int_equal(f->sev, FINDING_CRITICAL);
    assert_non_null(strstr(f->fix, "max_client_conn = 375 per PgBouncer instance"));
    f = finding_find(&l, "capacity-db-connections");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->fix, "default_pool_size = 79 per PgBouncer instance"));
    finding_list_deinit(&l);
}

static void test_seed_ports(void **state)
{
    (void)state;
    struct capacity_in in = seed();
    in.pods = 200; // the seed's 200 pods × 300 connections
    struct capacity_out o;
    char err[128];
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), 0);
    assert_int_equal(o.ports_needed, 60000);
    assert_int_equal(o.ports_available, 55000);
    assert_int_equal(o.nat_ips_needed, 2);      // 60000 / (55000 × 0.8) = 1.36 → 2
    assert_int_equal(o.conns_per_pod_fit, 220); // 44000 / 200
    struct finding_list l;
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    const struct finding *f = finding_find(&l, "capacity-ports");
    assert_non_null(f);
    assert_int_equal(f->sev, FINDING_CRITICAL);
    assert_non_null(strstr(f->fix, "more NAT IPs: 2"));
    assert_non_null(strstr(f->fix, "at most 220 connections per pod"));
    finding_list_deinit(&l);

    /* 20 pods: 6000 of 55000 is fine. */
    in.pods = 20;
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), 0);
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    assert_int_equal(finding_find(&l, "capacity-ports")->sev, FINDING_OK);
    finding_list_deinit(&l);
}

static void test_thresholds(void **state)
{
    (void)state;
    struct capacity_in in = seed();
    struct capacity_out o;
    char err[128];
    struct finding_list l;
    /* 5 × (20+10) = 150 of 197 = 76%: ok. 6 × 30 = 180 = 91%: warning. */
    in.pods = 5;
    capacity_compute(&in, &o, err, sizeof(err));
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    assert_int_equal(finding_find(&l, "capacity-db-connections")->sev, FINDING_OK);
    finding_list_deinit(&l);
    in.pods = 6;
    capacity_compute(&in, &o, err, sizeof(err));
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    assert_int_equal(finding_find(&l, "capacity-db-connections")->sev, FINDING_WARNING);
    finding_list_deinit(&l);
}

static void test_pool_per_worker(void **state)
{
    (void)state;
    struct capacity_in in = seed();
    in.pods = 2;
    in.workers_per_pod = 4;
    in.pool_per_worker = true;
    struct capacity_out o;
    char err[128];
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), 0);
    assert_int_equal(o.pools, 8);
    assert_int_equal(o.db_possible, 240);
    assert_float_equal(o.workers_per_cpu, 2.0, 1e-9);
}

static void test_workers(void **state)
{
    (void)state;
    struct capacity_in in = seed();
    struct capacity_out o;
    char err[128];
    struct finding_list l;
    in.workers_per_pod = 1; // one GIL process on 2 CPUs
    capacity_compute(&in, &o, err, sizeof(err));
    assert_int_equal(o.workers_suggested, 5);
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    const struct finding *f = finding_find(&l, "capacity-workers");
    assert_int_equal(f->sev, FINDING_WARNING);
    assert_non_null(strstr(f->fix, "-w 5"));
    finding_list_deinit(&l);
    in.workers_per_pod = 5;
    capacity_compute(&in, &o, err, sizeof(err));
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    assert_int_equal(finding_find(&l, "capacity-workers")->sev, FINDING_OK);
    finding_list_deinit(&l);
    in.workers_per_pod = 9; // 4.5 per CPU
    capacity_compute(&in, &o, err, sizeof(err));
    finding_list_init(&l);
    capacity_findings(&in, &o, &l);
    assert_int_equal(finding_find(&l, "capacity-workers")->sev, FINDING_WARNING);
    finding_list_deinit(&l);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct capacity_in in = seed();
    struct capacity_out o;
    char err[128];
    in.pods = 0;
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), -1);
    in = seed();
    in.db_reserved = 200;
    assert_int_equal(capacity_compute(&in, &o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "db-reserved"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_db_connections),
        cmocka_unit_test(test_behind_pgbouncer),
        cmocka_unit_test(test_seed_ports),
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_pool_per_worker),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
