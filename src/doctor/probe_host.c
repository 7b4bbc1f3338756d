/* Host probe: reads /proc for TCP sockets per destination (tcp and tcp6) against the ephemeral
 * port range, TIME_WAIT, file handles, listen queue overflows, somaxconn and the CPU count. Linux
 * only. The root directory is a parameter so a snapshot of another machine's /proc files can be
 * judged too. */
#include <arpa/inet.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/xmalloc.h"
#include "doctor/internal.h"

#define TCP_TIME_WAIT_STATE 0x06
#define TCP_LISTEN_STATE 0x0A

/* Reads a whole small file; NULL when it cannot. The caller frees. */
static char *slurp(const char *root, const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return NULL;
    size_t cap = 65536, len = 0;
    char *s = xmalloc(cap);
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            s = xrealloc(s, cap);
        }
    }
    s[len] = '\0';
    fclose(fp);
    return s;
}

/* Kernel hex "0100007F:1F90" (v4, host byte order words) or 32 hex digits (v6) into text. */
static int format_addr(const char *hex, char *out, size_t outlen, int *port)
{
    const char *colon = strchr(hex, ':');
    if (colon == NULL)
        return -1;
    size_t hl = (size_t)(colon - hex);
    *port = (int)strtol(colon + 1, NULL, 16);
    char text[INET6_ADDRSTRLEN];
    if (hl == 8) {
        struct in_addr a;
        a.s_addr = (uint32_t)strtoul(hex, NULL, 16); // the kernel prints the raw word
        inet_ntop(AF_INET, &a, text, sizeof(text));
        snprintf(out, outlen, "%s:%d", text, *port);
    } else if (hl == 32) {
        struct in6_addr a;
        for (int w = 0; w < 4; w++) {
            char word[9];
            memcpy(word, hex + w * 8, 8);
            word[8] = '\0';
            uint32_t v = (uint32_t)strtoul(word, NULL, 16);
            memcpy(&a.s6_addr[w * 4], &v, 4);
        }
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            struct in_addr v4;
            memcpy(&v4, &a.s6_addr[12], 4);
            inet_ntop(AF_INET, &v4, text, sizeof(text));
            snprintf(out, outlen, "%s:%d", text, *port);
        } else {
            inet_ntop(AF_INET6, &a, text, sizeof(text));
            snprintf(out, outlen, "[%s]:%d", text, *port);
        }
    } else {
        return -1;
    }
    return 0;
}

/* Copies the line at <line> (up to its newline) into <out>: sscanf() on the whole file text
 * would measure the rest of the file at every call (glibc's sscanf runs strlen first), which made
 * a /proc/net/tcp of 40 000 sockets take 15 s instead of milliseconds. */
static void copy_line(const char *line, char *out, size_t outlen)
{
    size_t n = strcspn(line, "\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, line, n);
    out[n] = '\0';
}

/* Destinations are counted in a scratch hash table (open addressing) during one parse; the facts
 * keep only the busiest PG_FACTS_MAX. The table grows: a busy host (a CI box after a test suite)
 * has tens of thousands of TIME_WAIT sockets whose "destination" is a closed listener's client
 * port, and a fixed cap would crowd out the one destination that matters. */
#define DEST_INIT_CAP 1024

struct dest_count {
    char addr[64];
    int total;
    int time_wait;
};

struct dest_table {
    struct dest_count *v;
    size_t cap; /* power of two */
    size_t n;
};

static void add_dest(struct dest_table *t, const char *addr, int total, int tw);

static void dest_grow(struct dest_table *t)
{
    struct dest_table old = *t;
    t->cap = old.cap * 2;
    t->v = xcalloc(t->cap, sizeof(*t->v));
    t->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.v[i].addr[0] != '\0')
            add_dest(t, old.v[i].addr, old.v[i].total, old.v[i].time_wait);
    free(old.v);
}

static void add_dest(struct dest_table *t, const char *addr, int total, int tw)
{
    if (t->n >= t->cap * 3 / 4)
        dest_grow(t);
    uint32_t h = 2166136261u; // FNV-1a
    for (const char *p = addr; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        struct dest_count *d = &t->v[i];
        if (d->addr[0] == '\0') {
            snprintf(d->addr, sizeof(d->addr), "%s", addr);
            t->n++;
        } else if (strcmp(d->addr, addr) != 0) {
            continue;
        }
        d->total += total;
        d->time_wait += tw;
        return;
    }
}

static int cmp_dest(const void *a, const void *b)
{
    const struct dest_count *x = a, *y = b;
    if (x->total != y->total)
        return y->total - x->total;
    return strcmp(x->addr, y->addr); // stable output for equal counts
}

void probe_host__parse_listeners(const char *text, struct host_facts *f)
{
    const char *line = strchr(text, '\n'); // skip the header
    while (line && *++line) {
        char local[64];
        unsigned st;
        int port;
        char addr[80];
        char one[256];
        copy_line(line, one, sizeof(one));
        if (sscanf(one, " %*d: %63s %*s %x", local, &st) == 2 && st == TCP_LISTEN_STATE &&
            format_addr(local, addr, sizeof(addr), &port) == 0)
            f->listen_ports[port / 8] |= (uint8_t)(1u << (port % 8));
        line = strchr(line, '\n');
    }
}

static const char *db_service(const struct host_facts *f, int port)
{
    for (int i = 0; i < f->n_db_ports; i++)
        if (f->db_ports[i].port == port)
            return f->db_ports[i].service;
    return NULL;
}

/* Keeps the busiest PG_FACTS_MAX of <t> in <out>; returns how many. */
static int top_dests(struct dest_table *t, const struct host_facts *f, struct host_dest *out,
                     bool services)
{
    qsort(t->v, t->cap, sizeof(*t->v), cmp_dest); // empty slots (total 0) sort last
    int n = 0;
    for (size_t i = 0; i < t->n && t->v[i].total > 0 && n < PG_FACTS_MAX; i++) {
        struct host_dest *d = &out[n++];
        snprintf(d->addr, sizeof(d->addr), "%s", t->v[i].addr);
        d->total = t->v[i].total;
        d->time_wait = t->v[i].time_wait;
        d->service[0] = '\0';
        if (services) {
            const char *colon = strrchr(d->addr, ':');
            const char *svc = colon ? db_service(f, atoi(colon + 1)) : NULL;
            snprintf(d->service, sizeof(d->service), "%s", svc ? svc : "");
        }
    }
    return n;
}

void probe_host__parse_tcp(const char *text, struct host_facts *f)
{
    struct dest_table t = {xcalloc(DEST_INIT_CAP, sizeof(struct dest_count)), DEST_INIT_CAP, 0};
    struct dest_table db = {xcalloc(DEST_INIT_CAP, sizeof(struct dest_count)), DEST_INIT_CAP, 0};
    /* Start from what an earlier call (tcp before tcp6) found. */
    for (int i = 0; i < f->n_dests; i++)
        add_dest(&t, f->dests[i].addr, f->dests[i].total, f->dests[i].time_wait);
    for (int i = 0; i < f->n_db_dests; i++)
        add_dest(&db, f->db_dests[i].addr, f->db_dests[i].total, f->db_dests[i].time_wait);
    const char *line = strchr(text, '\n'); // skip the header
    while (line && *++line) {
        char local[64], remote[64];
        unsigned st;
        char one[256];
        copy_line(line, one, sizeof(one));
        if (sscanf(one, " %*d: %63s %63s %x", local, remote, &st) == 3 && st != TCP_LISTEN_STATE) {
            char laddr[80], raddr[80];
            int lport, rport;
            if (format_addr(local, laddr, sizeof(laddr), &lport) == 0 &&
                format_addr(remote, raddr, sizeof(raddr), &rport) == 0) {
                f->sockets++;
                bool tw = st == TCP_TIME_WAIT_STATE;
                f->time_wait += tw;
                /* Only outgoing sockets whose local port came from the ephemeral range consume
                 * it; an accepted socket has a listener's port (which may lie in the range). */
                bool accepted = f->listen_ports[lport / 8] & (1u << (lport % 8));
                if (!accepted && lport >= f->port_lo && lport <= f->port_hi) {
                    add_dest(&t, raddr, 1, tw);
                    if (db_service(f, rport) != NULL)
                        add_dest(&db, raddr, 1, tw);
                }
            }
        }
        line = strchr(line, '\n');
    }
    f->n_dests = top_dests(&t, f, f->dests, false);
    f->n_db_dests = top_dests(&db, f, f->db_dests, true);
    free(t.v);
    free(db.v);
}

void probe_host__parse_netstat(const char *text, long long *overflows, long long *drops)
{
    *overflows = *drops = -1;
    /* Two "TcpExt:" lines: the names, then the values in the same order. */
    const char *names = strstr(text, "TcpExt:");
    if (names == NULL)
        return;
    const char *values = strstr(names + 7, "TcpExt:");
    if (values == NULL)
        return;
    const char *np = names + 7, *vp = values + 7;
    while (*np && *np != '\n' && *vp && *vp != '\n') {
        while (*np == ' ')
            np++;
        while (*vp == ' ')
            vp++;
        size_t nl = strcspn(np, " \n");
        size_t vl = strcspn(vp, " \n");
        if (nl == 15 && strncmp(np, "ListenOverflows", 15) == 0)
            *overflows = strtoll(vp, NULL, 10);
        else if (nl == 11 && strncmp(np, "ListenDrops", 11) == 0)
            *drops = strtoll(vp, NULL, 10);
        np += nl;
        vp += vl;
    }
}

int probe_host_run(const char *root, struct host_facts *f, struct finding_list *out)
{
    char *s = slurp(root, "sys/net/ipv4/ip_local_port_range");
    if (s == NULL || sscanf(s, "%d %d", &f->port_lo, &f->port_hi) != 2) {
        free(s);
        struct finding *fd = finding_add(out, "host", "host-unreadable", FINDING_WARNING,
                                         "cannot read %s/sys/net/ipv4/ip_local_port_range", root);
        finding_fix(fd, "run on Linux with /proc mounted");
        return -1;
    }
    free(s);
    /* Listeners of both families first: a v6 socket listening on [::] accepts v4 too. */
    char *tcp[2] = {slurp(root, "net/tcp"), slurp(root, "net/tcp6")};
    for (int i = 0; i < 2; i++)
        if (tcp[i])
            probe_host__parse_listeners(tcp[i], f);
    for (int i = 0; i < 2; i++) {
        if (tcp[i])
            probe_host__parse_tcp(tcp[i], f);
        free(tcp[i]);
    }
    s = slurp(root, "sys/fs/file-nr");
    if (s) {
        long long unused;
        if (sscanf(s, "%lld %lld %lld", &f->fd_allocated, &unused, &f->fd_max) != 3)
            f->fd_allocated = f->fd_max = 0;
        free(s);
    }
    s = slurp(root, "net/netstat");
    f->listen_overflows = f->listen_drops = -1;
    if (s)
        probe_host__parse_netstat(s, &f->listen_overflows, &f->listen_drops);
    free(s);
    s = slurp(root, "sys/net/core/somaxconn");
    if (s)
        f->somaxconn = atoi(s);
    free(s);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        f->nofile_soft = rl.rlim_cur == RLIM_INFINITY ? 0 : (long long)rl.rlim_cur;
    cpu_set_t set;
    f->cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
    return 0;
}
