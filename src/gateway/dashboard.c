/* The /dashboard files (see dashboard.h). The page and its script are plain files under
 * src/gateway/assets/ (readable, checked with the rest of the tree), Chart.js comes from the
 * distribution's package (web/web.h); CMakeLists.txt ag_embed turns each into an array at build
 * time. The page loads nothing but these and /stats, /stats/history of the same listener. */
#include "gateway/dashboard.h"

#include <string.h>

#include "web/web.h"

extern const unsigned char dashboard_page_html[];
extern const size_t dashboard_page_html_len;
extern const char dashboard_page_html_etag[];
extern const unsigned char dashboard_app_js[];
extern const size_t dashboard_app_js_len;
extern const char dashboard_app_js_etag[];

int dashboard_find(const char *path, size_t path_len, struct dashboard_file *out)
{
    /* the lengths are variables of the generated files, not constants: pointed to */
    static const struct {
        const char *path;
        const unsigned char *data;
        const size_t *len;
        const char *ctype, *etag;
    } files[] = {
        {"/dashboard", dashboard_page_html, &dashboard_page_html_len, "text/html; charset=utf-8",
         dashboard_page_html_etag},
        {"/dashboard/app.js", dashboard_app_js, &dashboard_app_js_len,
         "text/javascript; charset=utf-8", dashboard_app_js_etag},
        {"/dashboard/chart.js", web_chartjs, &web_chartjs_len, "text/javascript; charset=utf-8",
         web_chartjs_etag},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (strlen(files[i].path) != path_len || memcmp(files[i].path, path, path_len) != 0)
            continue;
        out->data = (const char *)files[i].data;
        out->len = *files[i].len;
        out->ctype = files[i].ctype;
        out->etag = files[i].etag;
        return 0;
    }
    return -1;
}
