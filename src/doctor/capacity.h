/* Capacity calculator (`apigate doctor plan`): the arithmetic of pods × pool sizes against the
 * database's max_connections, pods × connections against the NAT's ports, workers against CPUs,
 * with verdicts as findings. Pure functions; plan.c does the CLI and the YAML. */
#ifndef AG_DOCTOR_CAPACITY_H
#define AG_DOCTOR_CAPACITY_H

#include <stdbool.h>

#include "doctor/finding.h"

struct capacity_in {
    long pods;
    long pool_size;            /* per pool (SQLAlchemy pool_size, HikariCP maximumPoolSize) */
    long max_overflow;         /* extra connections a pool may open above pool_size */
    long db_max_connections;   /* PostgreSQL max_connections */
    long db_reserved;          /* superuser_reserved_connections (default 3) */
    long conns_per_pod;        /* outgoing connections each pod keeps to one destination */
    long nat_ips;              /* SNAT addresses shared by the pods */
    long ports_per_ip;         /* usable ports per NAT IP and destination */
    double cpu_limit;          /* CPUs per pod (Kubernetes limit) */
    long workers_per_pod;      /* processes (gunicorn -w) per pod, 0 when unknown */
    bool pool_per_worker;      /* each worker process has its own pool (pre-fork servers) */
    long pgbouncers;           /* PgBouncer instances sharing the server, default 1 */
    long db_cpus;              /* database server cores, 0 when unknown */
    long pgbouncer_pool_size;  /* PgBouncer default_pool_size in place; 0: pods connect directly */
    long pgbouncer_max_client; /* its max_client_conn per instance (PgBouncer's default 100) */
};

struct capacity_out {
    long pools;           /* pools that connect to the database */
    long app_conns;       /* pools × (pool_size + max_overflow): what the applications may open */
    long db_possible;     /* what reaches PostgreSQL: app_conns, or pgbouncers × its pool size */
    long pgb_clients;     /* client connections the PgBouncers accept (0 without them) */
    long db_usable;       /* max_connections − reserved */
    double db_use;        /* db_possible / db_usable */
    long fit_per_pool;    /* pool_size + max_overflow that would fit in 80% of db_usable */
    long pgb_pool_size;   /* PgBouncer default_pool_size per instance: 2 × db_cpus + 1 when
                             the cores are known (PostgreSQL wiki's rule for busy
                             connections), never above 80% of db_usable */
    long pgb_max_client;  /* max_client_conn that lets every pool connect */
    long ports_needed;    /* pods × conns_per_pod */
    long ports_available; /* nat_ips × ports_per_ip */
    double ports_use;
    long nat_ips_needed;    /* to stay under 80% */
    long conns_per_pod_fit; /* per pod, to stay under 80% with the NAT IPs given */
    double workers_per_cpu; /* 0 when workers_per_pod is unknown */
    long workers_suggested; /* 2 × CPU + 1, at least 1 (gunicorn's rule for sync workers) */
};

/* Fills defaults for the zero fields that have one (db_reserved 3, nat_ips 1, ports_per_ip
 * 28232 — Linux's default range 32768-60999 —, pgbouncers 1, pgbouncer_max_client 100 when a
 * PgBouncer pool size is given). */
void capacity_defaults(struct capacity_in *in);
/* Does the arithmetic. Returns 0, or -1 with a message in <err> when an input is out of range. */
int capacity_compute(const struct capacity_in *in, struct capacity_out *out, char *err,
                     size_t errlen);
/* The verdicts: capacity-db-connections, capacity-pgbouncer-clients, capacity-ports,
 * capacity-workers. */
void capacity_findings(const struct capacity_in *in, const struct capacity_out *o,
                       struct finding_list *out);

#endif
