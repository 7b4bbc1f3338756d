/* The live dashboard page served at /dashboard by the admin listener (admin.c). */
#ifndef AG_GATEWAY_DASHBOARD_H
#define AG_GATEWAY_DASHBOARD_H

#include <stddef.h>

/* Returns the static HTML document (text/html; charset=utf-8) and its length in <len>. */
const char *dashboard_html(size_t *len);

#endif
