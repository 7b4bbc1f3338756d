/* PgBouncer probe: SHOW POOLS, SHOW DATABASES and SHOW STATS on the admin console (the
 * "pgbouncer" database), through probe_pg.c's libpq wrapper with the simple query protocol. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor/internal.h"

static const char *str(const char *s)
{
    return s ? s : "";
}

static long long num(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

int probe_pgbouncer_run(const char *url, int timeout_ms, struct pgb_facts *f,
                        struct finding_list *out)
{
    char err[512];
    struct probe_pg_conn *c = probe_pg_connect(url, timeout_ms, true, err, sizeof(err));
    if (c == NULL) {
        struct finding *fd = finding_add(out, "pgbouncer", "pgb-unreachable", FINDING_CRITICAL,
                                         "cannot reach PgBouncer: %s", err);
        char safe[512];
        doctor__redact(url, safe, sizeof(safe));
        finding_source(fd, "libpq connect to %s", safe);
        finding_fix(fd, "connect to the admin console: postgres://USER@HOST:6432/pgbouncer with "
                        "USER in admin_users or stats_users");
        return -1;
    }
    probe_pg_where(c, f->where, sizeof(f->where));
    struct probe_pg_res r;
    if (probe_pg_exec(c, "SHOW POOLS", &r, err, sizeof(err)) < 0) {
        struct finding *fd = finding_add(out, "pgbouncer", "pgb-unreachable", FINDING_CRITICAL,
                                         "SHOW POOLS failed on %s: %s", f->where, err);
        finding_source(fd, "SHOW POOLS");
        finding_fix(fd, "the URL must name the admin database (/pgbouncer) and a user in "
                        "admin_users or stats_users");
        probe_pg_close(c);
        return -1;
    }
    for (int i = 0; i < r.rows && f->n_pools < (int)(sizeof(f->pools) / sizeof(f->pools[0])); i++) {
        struct pgb_pool *p = &f->pools[f->n_pools++];
        snprintf(p->database, sizeof(p->database), "%s", str(probe_pg_get(&r, i, "database")));
        snprintf(p->user, sizeof(p->user), "%s", str(probe_pg_get(&r, i, "user")));
        snprintf(p->mode, sizeof(p->mode), "%s", str(probe_pg_get(&r, i, "pool_mode")));
        p->cl_active = (int)num(probe_pg_get(&r, i, "cl_active"));
        p->cl_waiting = (int)num(probe_pg_get(&r, i, "cl_waiting"));
        p->sv_active = (int)num(probe_pg_get(&r, i, "sv_active"));
        p->sv_idle = (int)num(probe_pg_get(&r, i, "sv_idle"));
        p->sv_used = (int)num(probe_pg_get(&r, i, "sv_used"));
        p->maxwait_s = (double)num(probe_pg_get(&r, i, "maxwait")) +
                       (double)num(probe_pg_get(&r, i, "maxwait_us")) / 1e6;
    }
    probe_pg_res_free(&r);
    if (probe_pg_exec(c, "SHOW DATABASES", &r, err, sizeof(err)) == 0) {
        for (int i = 0; i < r.rows; i++) {
            const char *name = probe_pg_get(&r, i, "name");
            for (int k = 0; name && k < f->n_pools; k++)
                if (strcmp(f->pools[k].database, name) == 0)
                    f->pools[k].pool_size = (int)num(probe_pg_get(&r, i, "pool_size"));
        }
        probe_pg_res_free(&r);
    }
    if (probe_pg_exec(c, "SHOW STATS", &r, err, sizeof(err)) == 0) {
        for (int i = 0; i < r.rows; i++) {
            double w = (double)num(probe_pg_get(&r, i, "avg_wait_time"));
            if (w > f->avg_wait_us)
                f->avg_wait_us = w;
        }
        probe_pg_res_free(&r);
    }
    probe_pg_close(c);
    return 0;
}
