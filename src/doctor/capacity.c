/* Capacity arithmetic and its verdicts. The 80% targets leave room for deploys (old and new pods
 * overlap during a rolling update) and for admin connections. */
#include "doctor/capacity.h"

#include <math.h>
#include <stdio.h>

void capacity_defaults(struct capacity_in *in)
{
    if (in->db_reserved == 0)
        in->db_reserved = 3;
    if (in->nat_ips == 0)
        in->nat_ips = 1;
    if (in->ports_per_ip == 0)
        in->ports_per_ip = 28232;
    if (in->pgbouncers == 0)
        in->pgbouncers = 1;
    if (in->pgbouncer_pool_size > 0 && in->pgbouncer_max_client == 0)
        in->pgbouncer_max_client = 100;
}

/* Everything is integer arithmetic on the inputs except the 80% targets, which round down (a
 * recommendation must fit) and the NAT IPs needed, which round up. */
int capacity_compute(const struct capacity_in *in, struct capacity_out *o, char *err, size_t errlen)
{
    if (in->pods <= 0 || in->pool_size < 0 || in->max_overflow < 0 || in->db_max_connections < 0 ||
        in->conns_per_pod < 0 || in->nat_ips <= 0 || in->ports_per_ip <= 0 || in->cpu_limit < 0 ||
        in->workers_per_pod < 0 || in->pgbouncers <= 0 || in->db_cpus < 0 ||
        in->pgbouncer_pool_size < 0 || in->pgbouncer_max_client < 0) {
        snprintf(err, errlen,
                 "pods, nat-ips, ports-per-ip and pgbouncers must be > 0 and the "
                 "others >= 0");
        return -1;
    }
    if (in->db_max_connections > 0 && in->db_reserved >= in->db_max_connections) {
        snprintf(err, errlen, "db-reserved (%ld) must be below db-max-connections (%ld)",
                 in->db_reserved, in->db_max_connections);
        return -1;
    }
    o->pools = in->pods;
    if (in->pool_per_worker && in->workers_per_pod > 0)
        o->pools = in->pods * in->workers_per_pod;
    o->app_conns = o->pools * (in->pool_size + in->max_overflow);
    /* Behind PgBouncer the server sees only the poolers' server connections. */
    o->db_possible =
        in->pgbouncer_pool_size > 0 ? in->pgbouncers * in->pgbouncer_pool_size : o->app_conns;
    o->pgb_clients = in->pgbouncer_pool_size > 0 ? in->pgbouncers * in->pgbouncer_max_client : 0;
    o->db_usable = in->db_max_connections > 0 ? in->db_max_connections - in->db_reserved : 0;
    o->db_use = o->db_usable > 0 ? (double)o->db_possible / (double)o->db_usable : 0;
    o->fit_per_pool = o->db_usable > 0 ? (long)floor(o->db_usable * 0.8 / (double)o->pools) : 0;
    /* Server connections beyond what the cores can run only queue inside PostgreSQL. */
    long total = o->db_usable > 0 ? (long)floor(o->db_usable * 0.8) : 0;
    if (in->db_cpus > 0 && 2 * in->db_cpus + 1 < total)
        total = 2 * in->db_cpus + 1;
    o->pgb_pool_size = (total + in->pgbouncers - 1) / in->pgbouncers;
    if (o->pgb_pool_size < 1 && o->db_usable > 0)
        o->pgb_pool_size = 1;
    /* Every application connection must fit, with a quarter spare for deploys. */
    o->pgb_max_client = (long)ceil(o->app_conns * 1.25 / (double)in->pgbouncers);

    o->ports_needed = in->pods * in->conns_per_pod;
    o->ports_available = in->nat_ips * in->ports_per_ip;
    o->ports_use = (double)o->ports_needed / (double)o->ports_available;
    o->nat_ips_needed = (long)ceil(o->ports_needed / (in->ports_per_ip * 0.8));
    if (o->nat_ips_needed < 1)
        o->nat_ips_needed = 1;
    o->conns_per_pod_fit = (long)floor(o->ports_available * 0.8 / (double)in->pods);

    o->workers_per_cpu =
        in->workers_per_pod > 0 && in->cpu_limit > 0 ? in->workers_per_pod / in->cpu_limit : 0;
    o->workers_suggested = (long)floor(2 * in->cpu_limit + 1);
    if (o->workers_suggested < 1)
        o->workers_suggested = 1;
    return 0;
}

/* Pods' pools (or the PgBouncers' server pools) against what PostgreSQL accepts. The fixes give
 * the two ways out: a pooler sized from the server's side, or smaller pools per pod. */
static void db_finding(const struct capacity_in *in, const struct capacity_out *o,
                       struct finding_list *out)
{
    if (in->db_max_connections <= 0)
        return;
    enum finding_sev sev = o->db_possible > o->db_usable         ? FINDING_CRITICAL
                           : o->db_possible > o->db_usable * 0.8 ? FINDING_WARNING
                                                                 : FINDING_OK;
    struct finding *f = finding_add(out, "plan", "capacity-db-connections", sev,
                                    "%ld possible database connections vs %ld usable (%.0f%%)",
                                    o->db_possible, o->db_usable, o->db_use * 100);
    if (in->pgbouncer_pool_size > 0)
        finding_evidence(f, "%ld PgBouncer(s) x default_pool_size %ld = %ld server connections",
                         in->pgbouncers, in->pgbouncer_pool_size, o->db_possible);
    else if (in->pool_per_worker && in->workers_per_pod > 0)
        finding_evidence(f, "%ld pods x %ld workers x (pool_size %ld + max_overflow %ld) = %ld",
                         in->pods, in->workers_per_pod, in->pool_size, in->max_overflow,
                         o->app_conns);
    else
        finding_evidence(f, "%ld pods x (pool_size %ld + max_overflow %ld) = %ld", in->pods,
                         in->pool_size, in->max_overflow, o->app_conns);
    finding_evidence(f, "max_connections %ld - %ld reserved for superusers = %ld",
                     in->db_max_connections, in->db_reserved, o->db_usable);
    finding_source(f, "capacity arithmetic");
    if (sev >= FINDING_WARNING && in->pgbouncer_pool_size > 0) {
        finding_fix(f,
                    "default_pool_size = %ld%s (the PgBouncers together must stay under 80%% "
                    "of the usable connections)",
                    o->pgb_pool_size, in->pgbouncers > 1 ? " per PgBouncer instance" : "");
    } else if (sev >= FINDING_WARNING) {
        finding_fix(f,
                    "put PgBouncer in transaction mode between the pods and the database: "
                    "pool_mode = transaction, default_pool_size = %ld, max_client_conn = %ld"
                    "%s",
                    o->pgb_pool_size, o->pgb_max_client,
                    in->pgbouncers > 1 ? " (per PgBouncer instance)" : "");
        if (in->db_cpus <= 0)
            finding_fix(f, "(default_pool_size above is the ceiling; with the database's core "
                           "count, --db-cpus N gives 2 x N + 1, usually far fewer)");
        if (o->fit_per_pool >= 1)
            finding_fix(f,
                        "or, without a pooler, pool_size + max_overflow <= %ld per pool "
                        "(e.g. pool_size %ld, max_overflow %ld)",
                        o->fit_per_pool, o->fit_per_pool - o->fit_per_pool / 3,
                        o->fit_per_pool / 3);
        else
            finding_fix(f, "without a pooler not even one connection per pool fits: a pooler "
                           "is required");
    }
}

/* Behind PgBouncer the pods' connections become its clients: past max_client_conn it refuses
 * them, which the application sees as a failed connect. */
static void pgbouncer_finding(const struct capacity_in *in, const struct capacity_out *o,
                              struct finding_list *out)
{
    if (in->pgbouncer_pool_size <= 0)
        return;
    enum finding_sev sev = o->app_conns > o->pgb_clients         ? FINDING_CRITICAL
                           : o->app_conns > o->pgb_clients * 0.8 ? FINDING_WARNING
                                                                 : FINDING_OK;
    struct finding *f =
        finding_add(out, "plan", "capacity-pgbouncer-clients", sev,
                    "%ld application connections vs %ld PgBouncer client slots (%.0f%%)",
                    o->app_conns, o->pgb_clients,
                    o->pgb_clients > 0 ? 100.0 * (double)o->app_conns / (double)o->pgb_clients : 0);
    finding_evidence(f,
                     "%ld pool(s) x (pool_size %ld + max_overflow %ld) = %ld; %ld PgBouncer(s) "
                     "x max_client_conn %ld = %ld",
                     o->pools, in->pool_size, in->max_overflow, o->app_conns, in->pgbouncers,
                     in->pgbouncer_max_client, o->pgb_clients);
    finding_source(f, "capacity arithmetic");
    if (sev >= FINDING_WARNING)
        finding_fix(f,
                    "max_client_conn = %ld%s (client connections are cheap in PgBouncer; "
                    "raise the file descriptor limit to match)",
                    o->pgb_max_client, in->pgbouncers > 1 ? " per PgBouncer instance" : "");
}

/* SNAT: all pods share the NAT IPs' ports towards one destination; connection churn (TIME_WAIT
 * holds a port 60 s) is what usually exhausts them, hence "reuse" as the second fix. */
static void ports_finding(const struct capacity_in *in, const struct capacity_out *o,
                          struct finding_list *out)
{
    if (in->conns_per_pod <= 0)
        return;
    enum finding_sev sev = o->ports_needed > o->ports_available         ? FINDING_CRITICAL
                           : o->ports_needed > o->ports_available * 0.8 ? FINDING_WARNING
                                                                        : FINDING_OK;
    struct finding *f = finding_add(out, "plan", "capacity-ports", sev,
                                    "%ld connections through NAT vs %ld ports (%.0f%%)",
                                    o->ports_needed, o->ports_available, o->ports_use * 100);
    finding_evidence(f, "%ld pods x %ld connections = %ld; %ld NAT IP(s) x %ld ports = %ld",
                     in->pods, in->conns_per_pod, o->ports_needed, in->nat_ips, in->ports_per_ip,
                     o->ports_available);
    finding_source(f, "capacity arithmetic (SNAT gives each NAT IP one port range per "
                      "destination ip:port)");
    if (sev >= FINDING_WARNING) {
        finding_fix(f, "more NAT IPs: %ld (to stay under 80%%)", o->nat_ips_needed);
        finding_fix(f,
                    "or connection reuse: at most %ld connections per pod (keep-alive pools "
                    "in the gateway instead of a connection per request)",
                    o->conns_per_pod_fit);
    }
}

/* Processes per CPU limit: below one, CPUs paid for sit idle (a GIL process uses one core); far
 * above, processes fight for the CFS quota and get throttled. */
static void workers_finding(const struct capacity_in *in, const struct capacity_out *o,
                            struct finding_list *out)
{
    if (in->cpu_limit <= 0)
        return;
    if (in->workers_per_pod <= 0) {
        struct finding *f = finding_add(out, "plan", "capacity-workers", FINDING_INFO,
                                        "workers per pod not given; %ld suits %.1f CPUs",
                                        o->workers_suggested, in->cpu_limit);
        finding_fix(f,
                    "sync workers (gunicorn): -w %ld (2 x CPU + 1); an event-loop server: "
                    "one per CPU",
                    o->workers_suggested);
        return;
    }
    enum finding_sev sev = o->workers_per_cpu > 4   ? FINDING_WARNING
                           : o->workers_per_cpu < 1 ? FINDING_WARNING
                                                    : FINDING_OK;
    struct finding *f =
        finding_add(out, "plan", "capacity-workers", sev, "%ld workers on %.1f CPUs (%.1f per CPU)",
                    in->workers_per_pod, in->cpu_limit, o->workers_per_cpu);
    finding_source(f, "capacity arithmetic");
    if (o->workers_per_cpu < 1)
        finding_fix(f,
                    "a single process with a GIL uses one core: run -w %ld worker processes "
                    "(or one event-loop thread per CPU)",
                    o->workers_suggested);
    else if (sev >= FINDING_WARNING)
        finding_fix(f,
                    "too many processes for the CPU limit (context switches, throttling, "
                    "memory): -w %ld",
                    o->workers_suggested);
}

void capacity_findings(const struct capacity_in *in, const struct capacity_out *o,
                       struct finding_list *out)
{
    db_finding(in, o, out);
    pgbouncer_finding(in, o, out);
    ports_finding(in, o, out);
    workers_finding(in, o, out);
}
