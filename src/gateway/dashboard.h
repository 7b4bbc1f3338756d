/* The live dashboard served by the admin listener (admin.c): the page (assets/dashboard.html),
 * its script (assets/dashboard.js, as /dashboard/app.js) and Chart.js (/dashboard/chart.js),
 * all embedded in the binary at build time. */
#ifndef AG_GATEWAY_DASHBOARD_H
#define AG_GATEWAY_DASHBOARD_H

#include <stddef.h>

struct dashboard_file {
    const char *data;
    size_t len;
    const char *ctype;
    const char *etag; /* quoted entity tag of the content */
};

/* Fills <out> with the file served at <path> (/dashboard, /dashboard/app.js, /dashboard/chart.js)
 * and returns 0, or returns -1 when there is none. */
int dashboard_find(const char *path, size_t path_len, struct dashboard_file *out);

#endif
