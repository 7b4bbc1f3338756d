/* Static files the binary carries for its web pages, embedded at build time (CMakeLists.txt
 * ag_embed, cmake/embed.cmake) from the distribution's package, so no page ever loads a script
 * from the network:
 *   web_chartjs   Chart.js (minified, MIT: THIRD_PARTY.md), Debian's libjs-chart.js. The
 *                 dashboard gets it from /dashboard/chart.js (gateway/admin.c); the load reports
 *                 inline it (load/report_html.c).
 * Each array holds the file's bytes followed by a NUL; <name>_len excludes the NUL; <name>_etag is
 * a quoted HTTP entity tag of the content. */
#ifndef AG_WEB_WEB_H
#define AG_WEB_WEB_H

#include <stddef.h>

extern const unsigned char web_chartjs[];
extern const size_t web_chartjs_len;
extern const char web_chartjs_etag[];

#endif
