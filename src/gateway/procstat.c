/* process_* metrics from /proc/self (see procstat.h). Runs on the admin thread at scrape time
 * only: a few small reads, never on a loop thread. */
#include "gateway/procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static metrics_ref procstat__gauge(struct metrics *m, const char *name, const char *help)
{
    int f = metrics_family(m, METRICS_GAUGE_SET, name, help, NULL);
    return f < 0 ? METRICS_REF_NONE : metrics_series1(m, f, NULL);
}

void procstat_register(struct metrics *m, struct procstat *ps)
{
    ps->start_time = procstat__gauge(m, "process_start_time_seconds",
                                     "Start time of the worker process since the Unix epoch.");
    ps->rss = procstat__gauge(m, "process_resident_memory_bytes",
                              "Resident memory of the worker process.");
    ps->vsz = procstat__gauge(m, "process_virtual_memory_bytes",
                              "Virtual memory of the worker process.");
    ps->open_fds = procstat__gauge(m, "process_open_fds",
                                   "Open file descriptors of the worker process (sockets included).");
    ps->max_fds = procstat__gauge(m, "process_max_fds",
                                  "File descriptor limit (RLIMIT_NOFILE) of the worker process.");
}

/* Fields 22 (starttime, clock ticks after boot) and 23/24 (vsize bytes, rss pages) of
 * /proc/self/stat; the command name in parentheses may hold spaces, so parse after the last ')'. */
static int procstat__stat(uint64_t *start_ticks, uint64_t *vsize, uint64_t *rss_pages)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    /* after ")": field 3 (state) is the first; starttime is field 22 */
    unsigned long long st = 0, vs = 0, rs = 0;
    int k = sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                          "%*d %llu %llu %llu", &st, &vs, &rs);
    if (k != 3)
        return -1;
    *start_ticks = st;
    *vsize = vs;
    *rss_pages = rs;
    return 0;
}

static uint64_t procstat__boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL)
        return 0;
    char line[256];
    unsigned long long bt = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %llu", &bt) == 1)
            break;
    fclose(f);
    return bt;
}

static int64_t procstat__count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; // the directory stream's own descriptor
}

void procstat_refresh(struct metrics *m, const struct procstat *ps)
{
    uint64_t start_ticks, vsize, rss_pages;
    if (procstat__stat(&start_ticks, &vsize, &rss_pages) == 0) {
        long hz = sysconf(_SC_CLK_TCK);
        long page = sysconf(_SC_PAGESIZE);
        uint64_t boot = procstat__boot_time();
        if (hz > 0 && boot > 0)
            metrics_gauge_set(m, ps->start_time, (int64_t)(boot + start_ticks / (uint64_t)hz));
        metrics_gauge_set(m, ps->vsz, (int64_t)vsize);
        if (page > 0)
            metrics_gauge_set(m, ps->rss, (int64_t)(rss_pages * (uint64_t)page));
    }
    int64_t fds = procstat__count_fds();
    if (fds >= 0)
        metrics_gauge_set(m, ps->open_fds, fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_gauge_set(m, ps->max_fds,
                          rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : (int64_t)rl.rlim_cur);
}
