/* Parsers behind the doctor's probes (/proc/net/tcp, /proc/net/netstat, Redis INFO, gateway
 * /stats) and the finding list (sort order, JSON report), fed fixed texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/buf.h"
#include "doctor/internal.h"

/* Two connections from ephemeral ports to 127.0.0.1:5432 (one in TIME_WAIT), one to
 * 10.0.0.7:6379, a listener on 8080 and one on 40000 (inside the ephemeral range), and two
 * accepted connections on those listeners. */
static const char tcp4[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n"
    "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 1 1\n"
    "   1: 0100007F:9C41 0100007F:1538 01 00000000:00000000 00:00000000 00000000  0 0 2 1\n"
    "   2: 0100007F:9C42 0100007F:1538 06 00000000:00000000 00:00000000 00000000  0 0 0 1\n"
    "   3: 0100007F:9C43 0700000A:18EB 01 00000000:00000000 00:00000000 00000000  0 0 3 1\n"
    "   4: 0100007F:1F90 0100007F:9C44 01 00000000:00000000 00:00000000 00000000  0 0 4 1\n"
    "   5: 00000000:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 1 1\n"
    "   6: 0100007F:9C40 0100007F:9C47 01 00000000:00000000 00:00000000 00000000  0 0 4 1\n";

/* ::ffff:127.0.0.1 port 40005 -> ::ffff:127.0.0.1:5432, and ::1 40006 -> ::1:80. */
static const char tcp6[] =
    "  sl  local_address                         remote_address                        st\n"
    "   0: 0000000000000000FFFF00000100007F:9C45 0000000000000000FFFF00000100007F:1538 01 0\n"
    "   1: 00000000000000000000000001000000:9C46 00000000000000000000000001000000:0050 01 0\n";

static void test_parse_tcp(void **state)
{
    (void)state;
    struct host_facts h;
    memset(&h, 0, sizeof(h));
    h.port_lo = 32768;
    h.port_hi = 60999;
    rules_host_db_port(&h, 0, "");
    probe_host__parse_listeners(tcp4, &h);
    probe_host__parse_listeners(tcp6, &h);
    probe_host__parse_tcp(tcp4, &h);
    /* the database ports are counted apart: PostgreSQL (1 TIME_WAIT) and Redis */
    assert_int_equal(h.n_db_dests, 2);
    assert_string_equal(h.db_dests[0].addr, "127.0.0.1:5432");
    assert_string_equal(h.db_dests[0].service, "PostgreSQL");
    assert_int_equal(h.db_dests[0].time_wait, 1);
    assert_string_equal(h.db_dests[1].service, "Redis");
    assert_int_equal(h.sockets, 5); // the listeners are not counted
    assert_int_equal(h.time_wait, 1);
    assert_int_equal(h.n_dests, 2); // the accepted conns (local ports 8080, 40000) are left out
    assert_string_equal(h.dests[0].addr, "127.0.0.1:5432");
    assert_int_equal(h.dests[0].total, 2);
    assert_int_equal(h.dests[0].time_wait, 1);
    assert_string_equal(h.dests[1].addr, "10.0.0.7:6379");
    probe_host__parse_tcp(tcp6, &h);
    assert_int_equal(h.sockets, 7);
    assert_string_equal(h.dests[0].addr, "127.0.0.1:5432"); // v4-mapped joins the v4 count
    assert_int_equal(h.dests[0].total, 3);
    assert_int_equal(h.n_dests, 3);
    assert_string_equal(h.dests[2].addr, "[::1]:80");
    assert_int_equal(h.n_db_dests, 2); // [::1]:80 is no database
    assert_int_equal(h.db_dests[0].total, 3);
}

/* A busy host: 20000 TIME_WAIT sockets left by a closed listener (local port 40000, each to a
 * different client port), then 150 sockets to 127.0.0.1:5432. The table must grow rather than
 * stop counting, so the real destination still comes out on top. */
static void test_parse_tcp_many_peers(void **state)
{
    (void)state;
    struct host_facts h;
    memset(&h, 0, sizeof(h));
    h.port_lo = 32768;
    h.port_hi = 60999;
    struct buf b = BUF_INIT;
    buf_append_str(&b, "  sl  local_address rem_address   st\n");
    for (int i = 0; i < 20000; i++)
        buf_printf(&b, "%5d: 0100007F:9C40 0100007F:%04X 06 0\n", i,
                   1024 + i + (1024 + i >= 0x1538));
    for (int i = 0; i < 150; i++)
        buf_printf(&b, "%5d: 0100007F:%04X 0100007F:1538 01 0\n", 20000 + i, 33000 + i);
    buf_append(&b, "", 1);
    probe_host__parse_tcp(b.data, &h);
    assert_int_equal(h.sockets, 20150);
    assert_string_equal(h.dests[0].addr, "127.0.0.1:5432");
    assert_int_equal(h.dests[0].total, 150);
    buf_deinit(&b);
}

static void test_parse_netstat(void **state)
{
    (void)state;
    static const char ns[] =
        "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPTimeouts\n"
        "TcpExt: 0 0 17 19 4\n"
        "IpExt: InNoRoutes\nIpExt: 0\n";
    long long o, d;
    probe_host__parse_netstat(ns, &o, &d);
    assert_int_equal(o, 17);
    assert_int_equal(d, 19);
    probe_host__parse_netstat("IpExt: A\nIpExt: 1\n", &o, &d);
    assert_int_equal(o, -1);
}

static void test_parse_redis_info(void **state)
{
    (void)state;
    static const char info[] =
        "# Clients\r\nconnected_clients:7\r\nblocked_clients:1\r\nmaxclients:10000\r\n"
        "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nused_memory_peak:2097152\r\n"
        "maxmemory:2000000\r\nmaxmemory_policy:allkeys-lru\r\n"
        "# Stats\r\nrejected_connections:2\r\nevicted_keys:33\r\nkeyspace_hits:10\r\n"
        "keyspace_misses:90\r\n";
    struct redis_facts r;
    memset(&r, 0, sizeof(r));
    probe_redis__parse_info(info, &r);
    assert_int_equal(r.connected_clients, 7);
    assert_int_equal(r.blocked_clients, 1);
    assert_int_equal(r.maxclients, 10000);
    assert_int_equal(r.used_memory, 1048576); // not confused with used_memory_human/peak
    assert_int_equal(r.used_memory_peak, 2097152);
    assert_int_equal(r.maxmemory, 2000000);
    assert_string_equal(r.policy, "allkeys-lru");
    assert_int_equal(r.rejected_connections, 2);
    assert_int_equal(r.evicted_keys, 33);
    assert_int_equal(r.hits, 10);
    assert_int_equal(r.misses, 90);
}

/* CLUSTER NODES of Redis 7 after a failover: the old primary failed (no slots), its replica
 * promoted; one primary without replica, one with a replica suspected (fail?); an importing slot
 * entry and a host name after the address. */
static void test_parse_cluster_nodes(void **state)
{
    (void)state;
    static const char nodes[] =
        "aaaa0000000000000000000000000000000000aa 127.0.0.1:7000@17000 myself,master - 0 0 1 "
        "connected 0-5460\n"
        "bbbb0000000000000000000000000000000000bb 127.0.0.1:7001@17001,host-b master - 0 1 2 "
        "connected 5461-10921 10922 [10923->-cccc]\n"
        "cccc0000000000000000000000000000000000cc 127.0.0.1:7002@17002 master,fail - 1 1 3 "
        "disconnected\n"
        "dddd0000000000000000000000000000000000dd 127.0.0.1:7003@17003 master - 0 1 4 connected "
        "10923-16383\n"
        "eeee0000000000000000000000000000000000ee 127.0.0.1:7004@17004 slave "
        "aaaa0000000000000000000000000000000000aa 0 1 1 connected\n"
        "ffff0000000000000000000000000000000000ff 127.0.0.1:7005@17005 slave,fail? "
        "bbbb0000000000000000000000000000000000bb 0 1 2 connected\n"
        "garbage\n";
    struct redis_facts r;
    memset(&r, 0, sizeof(r));
    probe_redis__parse_nodes(nodes, &r);
    assert_int_equal(r.n_nodes, 6);
    assert_string_equal(r.nodes[0].addr, "127.0.0.1:7000");
    assert_true(r.nodes[0].myself && r.nodes[0].primary);
    assert_int_equal(r.nodes[0].slots, 5461);
    assert_int_equal(r.nodes[0].replicas, 1);
    assert_string_equal(r.nodes[1].addr, "127.0.0.1:7001"); // bus port and host name gone
    assert_int_equal(r.nodes[1].slots, 5462);               // the importing entry is not served
    assert_string_equal(r.nodes[1].ranges, "5461-10921 10922");
    assert_int_equal(r.nodes[1].replicas, 0); // its replica is suspected
    assert_true(r.nodes[2].fail && !r.nodes[2].pfail && !r.nodes[2].linked);
    assert_int_equal(r.nodes[2].slots, 0);
    assert_false(r.nodes[4].primary);
    assert_string_equal(r.nodes[4].primary_id, "aaaa0000000000000000000000000000000000aa");
    assert_true(r.nodes[5].pfail && !r.nodes[5].fail);

    static const char info[] = "cluster_enabled:1\r\ncluster_state:fail\r\n"
                               "cluster_slots_assigned:16384\r\ncluster_slots_ok:10923\r\n"
                               "cluster_slots_pfail:0\r\ncluster_slots_fail:5461\r\n"
                               "cluster_known_nodes:6\r\n";
    probe_redis__parse_cluster_info(info, &r);
    assert_string_equal(r.cluster_state, "fail");
    assert_int_equal(r.slots_assigned, 16384);
    assert_int_equal(r.slots_ok, 10923);
    assert_int_equal(r.slots_fail, 5461);
    assert_int_equal(r.known_nodes, 6);

    /* sums over the nodes read; memory and clients from the fullest */
    struct redis_node a = {.addr = "a:1",
                           .primary = true,
                           .hits = 10,
                           .misses = 5,
                           .evicted_keys = 1,
                           .apigate_keys = 7,
                           .used_memory = 50,
                           .maxmemory = 100,
                           .connected_clients = 5,
                           .maxclients = 100};
    struct redis_node b = {.addr = "b:1",
                           .hits = 3,
                           .misses = 4,
                           .apigate_keys = 7,
                           .used_memory = 90,
                           .maxmemory = 100,
                           .connected_clients = 1,
                           .maxclients = 100};
    r.nodes_reached = 0;
    probe_redis__add_node(&r, &a);
    probe_redis__add_node(&r, &b);
    assert_int_equal(r.hits, 13);
    assert_int_equal(r.misses, 9);
    assert_int_equal(r.evicted_keys, 1);
    assert_int_equal(r.apigate_keys, 7); // replicas hold copies: primaries only
    assert_int_equal(r.used_memory, 90);
    assert_string_equal(r.mem_node, "b:1");
    assert_string_equal(r.clients_node, "a:1");
    assert_int_equal(r.nodes_reached, 2);
}

static void test_parse_gateway(void **state)
{
    (void)state;
    struct gw_facts g;
    assert_int_equal(probe_gateway__parse("{\"requests_total\": 1000, \"responses_5xx\": 60, "
                                          "\"summary\": {\"latency_p95_ms\": 12.5}, "
                                          "\"cache_hits\": \"x\"}",
                                          &g),
                     0);
    assert_float_equal(g.requests_total, 1000, 1e-9);
    assert_float_equal(g.responses_5xx, 60, 1e-9);
    assert_float_equal(g.latency_p95_ms, 12.5, 1e-9);
    assert_float_equal(g.cache_hits, -1, 1e-9); // not a number: absent
    assert_float_equal(g.worker_restarts, -1, 1e-9);
    /* The nested shape of `apigate serve`'s /stats. */
    assert_int_equal(probe_gateway__parse("{\"version\":1,\"worker_restarts\":2,\"requests\":{"
                                          "\"total\":500,\"5xx\":7},\"latency_ms\":{\"p95\":"
                                          "41.5},\"shed\":3,\"cache\":{\"hits\":9,\"misses\":1},"
                                          "\"breakers_open\":0,\"pool\":{\"connects\":4,"
                                          "\"wait_p95_ms\":0.5}}",
                                          &g),
                     0);
    assert_float_equal(g.requests_total, 500, 1e-9);
    assert_float_equal(g.responses_5xx, 7, 1e-9);
    assert_float_equal(g.latency_p95_ms, 41.5, 1e-9);
    assert_float_equal(g.shed_total, 3, 1e-9);
    assert_float_equal(g.cache_hits, 9, 1e-9);
    assert_float_equal(g.cache_misses, 1, 1e-9);
    assert_float_equal(g.breakers_open, 0, 1e-9);
    assert_float_equal(g.upstream_connects_total, 4, 1e-9);
    assert_float_equal(g.pool_wait_p95_ms, 0.5, 1e-9);
    assert_float_equal(g.worker_restarts, 2, 1e-9);
    assert_float_equal(g.threads, -1, 1e-9);
    /* /metrics/cache's shape: bare hits and misses. */
    assert_int_equal(
        probe_gateway__parse("{\"hits\":100,\"misses\":300,\"hitRate\":\"25.00%\"}", &g), 0);
    assert_float_equal(g.cache_hits, 100, 1e-9);
    assert_float_equal(g.cache_misses, 300, 1e-9);
    assert_int_equal(probe_gateway__parse("[1,2]", &g), -1);
    assert_int_equal(probe_gateway__parse("not json", &g), -1);
}

/* Two samples of apigate's /stats 3 s apart: the window is their difference; a recycle in
 * between (counters down) makes the second sample the window; p95 from the histograms. */
static void test_gateway_window(void **state)
{
    (void)state;
    struct gw_facts a, b, w;
    assert_int_equal(
        probe_gateway__parse("{\"worker_restarts\":5,\"worker_crashes\":1,\"worker_recycles\":4,"
                             "\"requests\":{\"total\":1000,\"5xx\":856},\"pool\":{\"connects\":10},"
                             "\"upstreams\":[{\"reuses\":100},{\"reuses\":50}],"
                             "\"latency_window\":{\"le_ms\":[1,10,100],\"counts\":[500,900,1000],"
                             "\"count\":1000},\"cache\":{\"hits\":10,\"misses\":5,"
                             "\"l2\":{\"enabled\":true,\"hits\":2,\"misses\":3}}}",
                             &a),
        0);
    assert_float_equal(a.upstream_reuses, 150, 1e-9);
    assert_true(a.l2_enabled);
    assert_int_equal(a.n_le, 3);
    assert_int_equal(
        probe_gateway__parse("{\"worker_restarts\":6,\"worker_crashes\":1,\"worker_recycles\":5,"
                             "\"requests\":{\"total\":1200,\"5xx\":858},\"pool\":{\"connects\":12},"
                             "\"upstreams\":[{\"reuses\":150},{\"reuses\":50}],"
                             "\"latency_window\":{\"le_ms\":[1,10,100],\"counts\":[500,1000,1200],"
                             "\"count\":1200},\"cache\":{\"hits\":110,\"misses\":25,"
                             "\"l2\":{\"enabled\":true,\"hits\":2,\"misses\":3}}}",
                             &b),
        0);
    probe_gateway__parse_metrics(
        "# TYPE apigate_pool_closed_total counter\n"
        "apigate_pool_closed_total{upstream=\"a\",reason=\"not_reusable\"} 7\n"
        "apigate_pool_closed_total{upstream=\"b\",reason=\"not_reusable\"} 3\n"
        "apigate_pool_closed_total{upstream=\"a\",reason=\"upstream_closed\"} 2\n",
        &b);
    assert_float_equal(b.closed_not_reusable, 10, 1e-9);
    assert_float_equal(b.closed_upstream_closed, 2, 1e-9);
    probe_gateway__window(&a, &b, 3.0, &w);
    assert_false(w.reset);
    assert_float_equal(w.window_s, 3.0, 1e-9);
    assert_float_equal(w.requests_total, 200, 1e-9);
    assert_float_equal(w.responses_5xx, 2, 1e-9);
    assert_float_equal(w.life_requests, 1200, 1e-9);
    assert_float_equal(w.life_5xx, 858, 1e-9);
    assert_float_equal(w.upstream_connects_total, 2, 1e-9);
    assert_float_equal(w.upstream_reuses, 50, 1e-9);
    assert_float_equal(w.worker_crashes, 0, 1e-9);
    assert_float_equal(w.worker_recycles, 1, 1e-9);
    assert_float_equal(w.cache_hits, 100, 1e-9);
    assert_float_equal(w.cache_misses, 20, 1e-9);
    assert_float_equal(w.closed_not_reusable, -1, 1e-9); // a had no /metrics
    /* 200 requests in the window: 0 under 1 ms, 100 in (1, 10], 100 in (10, 100]: p95 = 10 +
     * 90 × (190 - 100) / 100 = 91 ms. */
    assert_true(w.latency_windowed);
    assert_float_equal(w.latency_p95_ms, 91, 1e-6);
    /* A new worker between the samples: its counters started again. */
    b.requests_total = 40;
    b.responses_5xx = 1;
    b.le_total = 40;
    b.le_count[0] = 40;
    b.le_count[1] = 40;
    b.le_count[2] = 40;
    probe_gateway__window(&a, &b, 3.0, &w);
    assert_true(w.reset);
    assert_float_equal(w.requests_total, 40, 1e-9);
    assert_float_equal(w.responses_5xx, 1, 1e-9);
    assert_float_equal(w.worker_recycles, 1, 1e-9); // the supervisor's counter goes on
    assert_true(w.latency_p95_ms <= 1.0);
}

static void test_finding_sort_and_json(void **state)
{
    (void)state;
    struct finding_list l;
    finding_list_init(&l);
    finding_add(&l, "redis", "redis-a", FINDING_OK, "a");
    finding_add(&l, "postgres", "pg-b", FINDING_INFO, "b");
    struct finding *f = finding_add(&l, "redis", "redis-c", FINDING_WARNING, "c %d", 3);
    finding_evidence(f, "line %d", 1);
    finding_evidence(f, "line %d", 2);
    finding_fix(f, "do \"this\"");
    finding_add(&l, "postgres", "pg-d", FINDING_CRITICAL, "d");
    finding_add(&l, "postgres", "pg-e", FINDING_CRITICAL, "e");
    finding_list_sort(&l);
    /* postgres (worst: critical) first, its findings worst first and stable; then redis. */
    static const char *const order[] = {"pg-d", "pg-e", "pg-b", "redis-c", "redis-a"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(l.v[i].id, order[i]);
    assert_string_equal(l.v[3].title, "c 3");
    assert_string_equal(l.v[3].evidence, "line 1\nline 2");
    struct buf b = BUF_INIT;
    finding_report_json(&l, &b);
    buf_append(&b, "", 1);
    cJSON *root = cJSON_Parse(buf_head(&b));
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "worst")->valuestring, "critical");
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "critical")->valueint, 2);
    cJSON *comps = cJSON_GetObjectItem(root, "components");
    assert_int_equal(cJSON_GetArraySize(comps), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(comps, 0), "component")->valuestring,
                        "postgres");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(comps, 0), "worst")->valuestring,
                        "critical");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(comps, 1), "findings")->valueint, 2);
    cJSON *arr = cJSON_GetObjectItem(root, "findings");
    assert_int_equal(cJSON_GetArraySize(arr), 5);
    cJSON *c = cJSON_GetArrayItem(arr, 3);
    assert_string_equal(cJSON_GetObjectItem(c, "fix")->valuestring, "do \"this\"");
    assert_string_equal(cJSON_GetObjectItem(c, "doc")->valuestring, "docs/doctor.md#redis-c");
    assert_string_equal(cJSON_GetObjectItem(c, "severity")->valuestring, "warning");
    cJSON_Delete(root);
    buf_deinit(&b);
    struct finding_list m;
    finding_list_init(&m);
    finding_add(&m, "host", "h", FINDING_INFO, "h");
    finding_list_move(&l, &m);
    assert_int_equal(l.n, 6);
    assert_int_equal(m.n, 0);
    assert_int_equal(finding_list_count(&l, FINDING_INFO), 2);
    enum finding_sev s;
    assert_int_equal(finding_sev_parse("warning", &s), 0);
    assert_int_equal(s, FINDING_WARNING);
    assert_int_equal(finding_sev_parse("bad", &s), -1);
    finding_list_deinit(&l);
    finding_list_deinit(&m);
}

static void test_redact(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"postgres://app:s3cret@db:5432/x", "postgres://app:***@db:5432/x"},
        {"redis://:pw@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"},
        {"postgres://app@db/x", "postgres://app@db/x"},
        {"http://a:b@h/x@y", "http://a:***@h/x@y"}, // '@' in the path is not userinfo
        {"host=x password=abc user=y", "host=x password=*** user=y"},
        {"postgres://u@h/db?password=zz&sslmode=require",
         "postgres://u@h/db?password=**&sslmode=require"},
        {"password=longersecret", "password=***"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        doctor__redact(cases[i][0], out, sizeof(out));
        assert_string_equal(out, cases[i][1]);
    }
    char tiny[12];
    doctor__redact("postgres://app:s3cret@db/x", tiny, sizeof(tiny));
    assert_null(strstr(tiny, "s3cret"));
}

/* EXPLAIN (VERBOSE, FORMAT JSON) of users LEFT JOIN orders ON o.user_id = u.id with a hash join:
 * the seq scan of orders has no filter of its own; its key is in the Hash Cond two levels up. */
static const char plan_hash[] =
    "[{\"Plan\": {\"Node Type\": \"Hash Join\", \"Join Type\": \"Right\", \"Plan Rows\": 5,"
    " \"Hash Cond\": \"(o.user_id = u.id)\", \"Plans\": ["
    "  {\"Node Type\": \"Seq Scan\", \"Parent Relationship\": \"Outer\", \"Relation Name\": "
    "\"orders\", \"Schema\": \"public\", \"Alias\": \"o\", \"Plan Rows\": 50000},"
    "  {\"Node Type\": \"Hash\", \"Plan Rows\": 1, \"Plans\": ["
    "    {\"Node Type\": \"Index Scan\", \"Relation Name\": \"users\", \"Schema\": \"public\","
    " \"Alias\": \"u\", \"Index Cond\": \"(u.id = $1)\", \"Plan Rows\": 1}]}]}}]";

static const char plan_analyze[] =
    "[{\"Plan\": {\"Node Type\": \"Aggregate\", \"Plan Rows\": 1, \"Actual Rows\": 1,"
    " \"Actual Loops\": 1, \"Plans\": [{\"Node Type\": \"Seq Scan\", \"Relation Name\": "
    "\"orders\", \"Schema\": \"public\", \"Alias\": \"orders\", \"Filter\": "
    "\"(orders.customer_id = 7)\", \"Plan Rows\": 12, \"Actual Rows\": 6, \"Actual Loops\": 2}]},"
    " \"Planning Time\": 0.1, \"Execution Time\": 4.2}]";

static void test_parse_explain(void **state)
{
    (void)state;
    struct explain_result r;
    assert_int_equal(explain_parse(plan_hash, &r), 0);
    assert_int_equal(r.n_scans, 1);
    assert_string_equal(r.scans[0].relation, "orders");
    assert_string_equal(r.scans[0].alias, "o");
    assert_string_equal(r.scans[0].filter, "");
    assert_string_equal(r.scans[0].join, "(o.user_id = u.id)");
    assert_true(r.scans[0].actual_rows < 0);
    char out[400];
    explain_summary(&r, out, sizeof(out));
    assert_string_equal(out, "Seq Scan on public.orders o (estimated 50000 rows); Hash Join at the "
                             "top, estimated 5 rows");
    assert_int_equal(explain_parse(plan_analyze, &r), 0);
    assert_int_equal(r.n_scans, 1);
    assert_string_equal(r.scans[0].filter, "(orders.customer_id = 7)");
    explain_summary(&r, out, sizeof(out));
    assert_string_equal(out, "Seq Scan on public.orders, filter (orders.customer_id = 7) "
                             "(estimated 12 / actual 12 rows); Aggregate at the top, estimated 1 "
                             "/ actual 1 rows");
    assert_int_equal(explain_parse("[]", &r), -1);
    assert_int_equal(explain_parse("not json", &r), -1);
    explain_summary(&r, out, 10); // cut, never overrun
    assert_true(strlen(out) < 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_tcp),      cmocka_unit_test(test_parse_tcp_many_peers),
        cmocka_unit_test(test_parse_netstat),  cmocka_unit_test(test_parse_redis_info),
        cmocka_unit_test(test_parse_gateway),  cmocka_unit_test(test_parse_explain),
        cmocka_unit_test(test_gateway_window), cmocka_unit_test(test_finding_sort_and_json),
        cmocka_unit_test(test_redact),         cmocka_unit_test(test_parse_cluster_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
