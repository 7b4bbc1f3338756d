/* `apigate doctor plan`: the capacity calculator's command line and YAML input. The arithmetic and
 * the verdicts are in capacity.c; this file only reads numbers and reports errors as
 * "file:line:col: key: what is wrong". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml.h"
#include "doctor/capacity.h"
#include "doctor/internal.h"

/* One table drives the flags, the YAML keys and --help. */
enum plan_kind { PLAN_LONG, PLAN_DOUBLE, PLAN_BOOL };

struct plan_opt {
    const char *flag; /* "--pods"; the YAML key is the same without "--" and '-' -> '_' */
    enum plan_kind kind;
    size_t off;
    const char *help;
};

#define OFF(f) offsetof(struct capacity_in, f)
static const struct plan_opt plan_opts[] = {
    {"--pods", PLAN_LONG, OFF(pods), "application pods (replicas)"},
    {"--pool-size", PLAN_LONG, OFF(pool_size), "DB pool size per pool (SQLAlchemy pool_size)"},
    {"--max-overflow", PLAN_LONG, OFF(max_overflow), "extra connections above pool_size"},
    {"--db-max-connections", PLAN_LONG, OFF(db_max_connections), "PostgreSQL max_connections"},
    {"--db-reserved", PLAN_LONG, OFF(db_reserved), "superuser_reserved_connections (default 3)"},
    {"--conns-per-pod", PLAN_LONG, OFF(conns_per_pod),
     "outgoing connections per pod to one destination"},
    {"--nat-ips", PLAN_LONG, OFF(nat_ips), "SNAT addresses (default 1)"},
    {"--ports-per-ip", PLAN_LONG, OFF(ports_per_ip),
     "ports per NAT IP and destination (default 28232)"},
    {"--cpu-limit", PLAN_DOUBLE, OFF(cpu_limit), "CPUs per pod"},
    {"--workers-per-pod", PLAN_LONG, OFF(workers_per_pod), "worker processes per pod"},
    {"--pool-per-worker", PLAN_BOOL, OFF(pool_per_worker), "each worker process has its own pool"},
    {"--pgbouncers", PLAN_LONG, OFF(pgbouncers), "PgBouncer instances (default 1)"},
    {"--db-cpus", PLAN_LONG, OFF(db_cpus), "database server cores (sizes default_pool_size)"},
    {"--pgbouncer-pool-size", PLAN_LONG, OFF(pgbouncer_pool_size),
     "PgBouncer default_pool_size in place (the pods connect through it)"},
    {"--pgbouncer-max-client", PLAN_LONG, OFF(pgbouncer_max_client),
     "its max_client_conn per instance (default 100)"},
};
#define PLAN_NOPTS (sizeof(plan_opts) / sizeof(plan_opts[0]))

static void plan_usage(FILE *out)
{
    fprintf(out, "usage: apigate doctor plan [OPTIONS]\n"
                 "       apigate doctor plan -f plan.yaml [OPTIONS]\n\n"
                 "Capacity arithmetic with verdicts: pods x pool sizes vs max_connections,\n"
                 "pods x connections vs NAT ports, workers vs CPUs.\n\noptions:\n");
    for (size_t i = 0; i < PLAN_NOPTS; i++)
        fprintf(out, "  %-22s %s\n", plan_opts[i].flag, plan_opts[i].help);
    fprintf(out, "  %-22s %s\n", "-f FILE",
            "read the same keys from YAML (pods: 20, pool_size: 20, ...)");
    fprintf(out, "  %-22s %s\n", "--json", "JSON report");
    fprintf(out, "  %-22s %s\n", "--fail-on SEV",
            "exit 1 at or above warning|critical (default critical)");
    fprintf(out, "\nexample: apigate doctor plan --pods 20 --pool-size 20 --max-overflow 10 "
                 "--db-max-connections 200 \\\n           --conns-per-pod 300 --nat-ips 1 "
                 "--ports-per-ip 55000 --cpu-limit 2\n");
}

/* Parses <s> into the field of <o>. Returns 0 or -1 with the reason in <why>. */
static int plan_set(struct capacity_in *in, const struct plan_opt *o, const char *s,
                    const char **why)
{
    char *end;
    errno = 0;
    if (o->kind == PLAN_BOOL) {
        bool v;
        if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "1") == 0)
            v = true;
        else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "0") == 0)
            v = false;
        else {
            *why = "expected true or false";
            return -1;
        }
        *(bool *)((char *)in + o->off) = v;
        return 0;
    }
    if (o->kind == PLAN_DOUBLE) {
        double v = strtod(s, &end);
        /* Written so that NaN ("nan" parses) fails too: every comparison with it is false. */
        if (errno || end == s || *end || !(v >= 0 && v <= 1e6)) {
            *why = "expected a number from 0 to 1000000 (e.g. 2 or 0.5)";
            return -1;
        }
        *(double *)((char *)in + o->off) = v;
        return 0;
    }
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 100000000) {
        *why = "expected a whole number from 0 to 100000000";
        return -1;
    }
    *(long *)((char *)in + o->off) = v;
    return 0;
}

static const struct plan_opt *plan_find_key(const char *key)
{
    for (size_t i = 0; i < PLAN_NOPTS; i++) {
        char k[48];
        snprintf(k, sizeof(k), "%s", plan_opts[i].flag + 2);
        for (char *p = k; *p; p++)
            if (*p == '-')
                *p = '_';
        if (strcmp(k, key) == 0)
            return &plan_opts[i];
    }
    return NULL;
}

/* Reads <path>; every error is printed as file:line:col, and all are reported. Returns 0/-1. */
/* Every key is checked and every error printed before giving up, so one run shows all mistakes. */
static int plan_load_yaml(const char *path, struct capacity_in *in)
{
    char err[512];
    struct ynode *root = yaml_load_file(path, err, sizeof(err));
    if (root == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    int bad = 0;
    if (root->type != YNODE_MAP) {
        fprintf(stderr, "%s:%d:%d: plan: expected a map of keys (pods: 20, ...), found a %s\n",
                root->file, root->line, root->col, ynode_type_name(root));
        yaml_tree_free(root);
        return -1;
    }
    for (size_t i = 0; i < ynode_size(root); i++) {
        const struct ynode *k = ynode_key(root, i), *v = ynode_value(root, i);
        const struct plan_opt *o = plan_find_key(k->str);
        const char *why = NULL;
        if (o == NULL) {
            fprintf(stderr,
                    "%s:%d:%d: %s: unknown key; allowed: pods, pool_size, max_overflow, "
                    "db_max_connections, db_reserved, conns_per_pod, nat_ips, "
                    "ports_per_ip, cpu_limit, workers_per_pod, pool_per_worker, "
                    "pgbouncers, db_cpus, pgbouncer_pool_size, "
                    "pgbouncer_max_client\n",
                    k->file, k->line, k->col, k->str);
            bad++;
        } else if (v->type != YNODE_SCALAR) {
            fprintf(stderr, "%s:%d:%d: %s: expected a number, found a %s\n", v->file, v->line,
                    v->col, k->str, ynode_type_name(v));
            bad++;
        } else if (plan_set(in, o, v->str, &why) < 0) {
            fprintf(stderr, "%s:%d:%d: %s: '%s': %s\n", v->file, v->line, v->col, k->str, v->str,
                    why);
            bad++;
        }
    }
    yaml_tree_free(root);
    return bad ? -1 : 0;
}

int plan_main(int argc, char **argv)
{
    struct capacity_in in = {0};
    bool json = false;
    enum finding_sev fail_on = FINDING_CRITICAL;
    const char *file = NULL;
    /* The file first, so flags given with -f override its values. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
            file = argv[i + 1];
    if (file && plan_load_yaml(file, &in) < 0)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            plan_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(a, "-f") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--fail-on") == 0) {
            if (i + 1 >= argc || finding_sev_parse(argv[i + 1], &fail_on) < 0 ||
                fail_on < FINDING_WARNING) {
                fprintf(stderr, "apigate doctor plan: --fail-on: expected warning or critical\n");
                return 2;
            }
            i++;
            continue;
        }
        const struct plan_opt *o = NULL;
        for (size_t j = 0; j < PLAN_NOPTS; j++)
            if (strcmp(a, plan_opts[j].flag) == 0)
                o = &plan_opts[j];
        if (o == NULL) {
            fprintf(stderr, "apigate doctor plan: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        const char *why = NULL;
        if (o->kind == PLAN_BOOL && (i + 1 >= argc || argv[i + 1][0] == '-')) {
            in.pool_per_worker = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "apigate doctor plan: %s needs a value\n", a);
            return 2;
        }
        if (plan_set(&in, o, argv[++i], &why) < 0) {
            fprintf(stderr, "apigate doctor plan: %s '%s': %s\n", a, argv[i], why);
            return 2;
        }
    }
    if (in.pods == 0) {
        fprintf(stderr, "apigate doctor plan: --pods is required (see --help)\n");
        return 2;
    }
    capacity_defaults(&in);
    struct capacity_out out;
    char err[256];
    if (capacity_compute(&in, &out, err, sizeof(err)) < 0) {
        fprintf(stderr, "apigate doctor plan: %s\n", err);
        return 2;
    }
    struct finding_list l;
    finding_list_init(&l);
    capacity_findings(&in, &out, &l);
    int rc = doctor__report(&l, json, fail_on);
    finding_list_deinit(&l);
    return rc;
}
