/* The standard process_* metrics of Prometheus client libraries (resident and virtual memory,
 * open and max file descriptors, start time) for the worker process, read from /proc/self on
 * each scrape by the admin thread. Linux only, like the rest of apigate. */
#ifndef AG_GATEWAY_PROCSTAT_H
#define AG_GATEWAY_PROCSTAT_H

#include "metrics/metrics.h"

struct procstat {
    metrics_ref start_time; // process_start_time_seconds
    metrics_ref rss;        // process_resident_memory_bytes
    metrics_ref vsz;        // process_virtual_memory_bytes
    metrics_ref open_fds;   // process_open_fds
    metrics_ref max_fds;    // process_max_fds
};

/* Registers the families in <m> and fills <ps>. */
void procstat_register(struct metrics *m, struct procstat *ps);
/* Reads /proc/self and sets the values (a failed read leaves the previous value). */
void procstat_refresh(struct metrics *m, const struct procstat *ps);

#endif
