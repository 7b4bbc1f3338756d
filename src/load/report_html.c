/* The HTML report (`--html report.html`): one self-contained page, no network. The tables are
 * written here as plain HTML (readable without JavaScript); the charts over time (RPS,
 * p50/p95/p99, errors, active VUs) and the latency distribution are drawn on <canvas> by the
 * page's own inline script from the JSON report embedded in the page (the charts over time stop at
 * the planned end: the last partial second of in-flight responses would read as a drop). After
 * drawing, the script sets data-drawn="N" (points drawn) on each canvas so a headless browser test
 * can tell. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "load/internal.h"

/* Appends <s> with the five HTML specials escaped. */
static void rh__esc(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            buf_append_str(b, "&lt;");
            break;
        case '>':
            buf_append_str(b, "&gt;");
            break;
        case '&':
            buf_append_str(b, "&amp;");
            break;
        case '"':
            buf_append_str(b, "&quot;");
            break;
        case '\'':
            buf_append_str(b, "&#39;");
            break;
        default:
            buf_append(b, s, 1);
        }
    }
}

static const char rh_css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}"
    ".sub{color:#5b6475;margin-bottom:16px}"
    "table{border-collapse:collapse;background:#fff;margin-bottom:8px}"
    "td,th{border:1px solid #dde1e8;padding:4px 10px;text-align:right}"
    "th{background:#eef1f5}td.l,th.l{text-align:left}"
    ".ok{color:#18794e;font-weight:600}.bad{color:#c4320a;font-weight:600}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}"
    ".card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px}"
    ".card h3{margin:0 0 6px;font-size:14px}canvas{width:100%;height:240px;display:block}"
    ".warn{background:#fff4e5;border:1px solid #f5a623;padding:8px;margin:8px 0}"
    ".banner{padding:10px 14px;border-radius:6px;font-weight:600;margin:8px 0 12px}"
    ".banner.fail{background:#fde8e4;border:1px solid #c4320a;color:#8c2307}"
    ".banner.pass{background:#e6f4ec;border:1px solid #18794e;color:#0f5132}";

/* The chart helpers, shared by the run report and the compare page: a small line-chart function
 * with axes (time ticks at 1/2/5 steps, kept inside the plot), ticks and legend; the tick labels
 * go to data-xticks/data-yticks so a headless browser test can read them. */
#define RH_JS_LIB                                                                                  \
    "function fmtMs(v){if(!v)return '0';return v>=1000?+(v/1000).toFixed(2)+' s':v>=1?"            \
    "+v.toFixed(v<10?2:1)+' ms':+(v*1000).toFixed(0)+' \\u00b5s';}\n"                              \
    "function tstep(span){var r=span/5,p=Math.pow(10,Math.floor(Math.log10(r))),m=r/p;"            \
    "return (m<=1?1:m<=2?2:m<=5?5:10)*p;}\n"                                                       \
    "function fsec(v){v=Math.round(v*100)/100;return v<60?v+'s':Math.floor(v/60)+'m'+"             \
    "(v%60?('0'+Math.round(v%60)).slice(-2)+'s':'');}\n"                                           \
    "function nice(max){if(!(max>0))return 1;var p=Math.pow(10,Math.floor(Math.log10(max)));"      \
    "var m=max/p;return (m<=1?1:m<=2?2:m<=5?5:10)*p;}\n"                                           \
    "function chart(id,series,o){var c=document.getElementById(id);if(!c)return;"                  \
    "var w=c.clientWidth||600,h=c.clientHeight||240,r=window.devicePixelRatio||1;"                 \
    "c.width=w*r;c.height=h*r;var g=c.getContext('2d');g.scale(r,r);"                              \
    "var L=58,R=12,T=22,B=30,pw=w-L-R,ph=h-T-B,n=0,xmin=Infinity,xmax=-Infinity,ymax=0;"           \
    "series.forEach(function(s){s.pts.forEach(function(p){var "                                    \
    "x=o.logx?Math.log10(Math.max(p[0],1e-3)):p[0];"                                               \
    "xmin=Math.min(xmin,x);xmax=Math.max(xmax,x);ymax=Math.max(ymax,p[1]);});});"                  \
    "if(!isFinite(xmin)){xmin=0;xmax=1;}if(xmax==xmin)xmax=xmin+1;var ytop=o.ymax||nice(ymax);"    \
    "function X(v){var x=o.logx?Math.log10(Math.max(v,1e-3)):v;return L+(x-xmin)/(xmax-xmin)*pw;}" \
    "function Y(v){return T+ph-(v/ytop)*ph;}"                                                      \
    "g.fillStyle='#fff';g.fillRect(0,0,w,h);g.strokeStyle='#dde1e8';g.fillStyle='#5b6475';"        \
    "g.font='11px sans-serif';g.lineWidth=1;"                                                      \
    "for(var i=0;i<=4;i++){var "                                                                   \
    "yv=ytop*i/4,yy=Y(yv);g.beginPath();g.moveTo(L,yy);g.lineTo(L+pw,yy);"                         \
    "g.stroke();g.textAlign='right';g.fillText(o.fy?o.fy(yv):String(Math.round(yv*100)/"           \
    "100),L-4,yy+4);}"                                                                             \
    "if(o.logx){for(var i=0;i<=5;i++){var xv=xmin+(xmax-xmin)*i/5,xx=L+pw*i/5;"                    \
    "g.textAlign=i==0?'left':i==5?'right':'center';g.fillText(fmtMs(Math.pow(10,xv)),xx,T+ph+16);" \
    "}}"                                                                                           \
    "else{var st=tstep(xmax-xmin);for(var xv=Math.ceil(xmin/st)*st;xv<=xmax+st*1e-6;xv+=st){"      \
    "var xx=X(xv);g.textAlign=xx>L+pw-18?'right':'center';"                                        \
    "g.fillText(o.fx?o.fx(xv):fsec(xv),xx,T+ph+16);}}"                                             \
    "var lx=L;series.forEach(function(s){g.strokeStyle=s.color;g.lineWidth=1.8;"                   \
    "g.setLineDash(s.dash?[5,4]:[]);g.beginPath();"                                                \
    "s.pts.forEach(function(p,k){var x=X(p[0]),y=Y(p[1]);if(k)g.lineTo(x,y);else "                 \
    "g.moveTo(x,y);n++;});"                                                                        \
    "if(s.pts.length==1){g.arc(X(s.pts[0][0]),Y(s.pts[0][1]),2,0,7);}g.stroke();"                  \
    "g.fillStyle=s.color;g.fillRect(lx,6,10,10);g.fillStyle='#1d2330';g.textAlign='left';"         \
    "g.fillText(s.name,lx+14,15);lx+=g.measureText(s.name).width+34;});"                           \
    "var yt=[],xt=[];for(var i=0;i<=4;i++){var yv=ytop*i/4;"                                       \
    "yt.push(o.fy?o.fy(yv):String(Math.round(yv*100)/100));}"                                      \
    "if(!o.logx){var st=tstep(xmax-xmin);for(var xv=Math.ceil(xmin/st)*st;xv<=xmax+st*1e-6;"       \
    "xv+=st)xt.push(o.fx?o.fx(xv):fsec(xv));}"                                                     \
    "c.setAttribute('data-yticks',yt.join('|'));c.setAttribute('data-xticks',xt.join('|'));"       \
    "c.setAttribute('data-drawn',String(n));}\n"

static const char rh_js[] =
    "(function(){\n"
    "var D=JSON.parse(document.getElementById('report-data').textContent);\n" RH_JS_LIB
    "var P=Math.ceil(D.planned_s||0);var S=(D.series||[]).filter(function(s){return "
    "!P||s.t<P;});\n"
    "function pts(k){return S.map(function(s){return [s.t+1,s[k]];});}\n"
    "var RS=[{name:'requests/s',color:'#2f6fde',pts:pts('rps')}];\n"
    "if(D.requested_rate>0)RS.push({name:'requested '+D.requested_rate+'/s',color:'#7a7f8a',"
    "dash:true,pts:S.map(function(s){return [s.t+1,D.requested_rate];})});\n"
    "chart('chart-rps',RS,{});\n"
    "chart('chart-latency',[{name:'p50',color:'#18794e',pts:pts('p50_ms')},"
    "{name:'p95',color:'#f5a623',pts:pts('p95_ms')},{name:'p99',color:'#c4320a',pts:pts('p99_"
    "ms')}]"
    ","
    "{fy:fmtMs});\n"
    "chart('chart-errors',[{name:'errors/s',color:'#c4320a',pts:pts('errors')},"
    "{name:'dropped/s',color:'#7a7f8a',pts:pts('dropped')}],{});\n"
    "chart('chart-vus',[{name:'active VUs / busy "
    "connections',color:'#7a4fd6',pts:pts('vus')}],{});\n"
    "var dist=D.dist||[],tot=0,acc=0;dist.forEach(function(d){tot+=d[1];});\n"
    "chart('chart-dist',[{name:'% of requests at or "
    "under',color:'#2f6fde',pts:dist.map(function(d)"
    "{acc+=d[1];return [d[0]/1000,tot?acc*100/tot:0];})}],{logx:true,ymax:100,"
    "fy:function(v){return v+'%';}});\n"
    "var G=S.filter(function(s){return s.gw_hit_ratio!==undefined;});\n"
    "function gp(k,f){return G.filter(function(s){return s[k]!==null;}).map(function(s){"
    "return [s.t+1,f(s[k])];});}\n"
    "chart('chart-gw',[{name:'hit ratio %',color:'#18794e',pts:gp('gw_hit_ratio',"
    "function(v){return v*100;})},{name:'origin requests/s',color:'#c4320a',pts:gp('gw_origin',"
    "function(v){return v;})}],{});\n"
    "chart('chart-gwcpu',[{name:'CPU ms per 1k requests',color:'#7a4fd6',pts:gp("
    "'gw_cpu_ms_per_1k',function(v){return v;})}],{});\n"
    "document.body.setAttribute('data-charts','done');\n"
    "})();\n";

static void rh__row(struct buf *b, const char *k, const char *v)
{
    buf_append_str(b, "<tr><td class=l>");
    rh__esc(b, k);
    buf_append_str(b, "</td><td>");
    rh__esc(b, v);
    buf_append_str(b, "</td></tr>");
}

static void rh__tables(const struct load_result *r, struct buf *b)
{
    char v[160], x[32], y[32], z[32];
    buf_append_str(b, "<h2>Summary</h2><table>");
    snprintf(v, sizeof(v), "%" PRIu64 " (%.1f/s)", r->reqs, result_rps(r));
    rh__row(b, "http_reqs", v);
    snprintf(v, sizeof(v), "%" PRIu64 " (%.1f/s)", r->iterations, result_iter_rate(r));
    rh__row(b, "iterations", v);
    snprintf(v, sizeof(v), "%.2f%% (%" PRIu64 " of %" PRIu64 ")", 100.0 * result_failed_rate(r),
             r->failed, r->reqs);
    rh__row(b, "http_req_failed", v);
    if (r->gw.present) {
        snprintf(v, sizeof(v), isfinite(r->gw.hit_ratio) ? "%.2f%%" : "-",
                 100.0 * r->gw.hit_ratio);
        rh__row(b, "gateway cache hit ratio", v);
        snprintf(v, sizeof(v), "%.0f of %.0f", r->gw.origin, r->gw.requests);
        rh__row(b, "gateway origin requests", v);
        snprintf(v, sizeof(v), isfinite(r->gw.cpu_ms_per_1k) ? "%.1f ms" : "-",
                 r->gw.cpu_ms_per_1k);
        rh__row(b, "gateway CPU per 1k requests", v);
    }
    const struct hist *h = &r->h;
    static const struct {
        const char *k;
        double p;
    } ps[] = {{"min", 0}, {"med", 50}, {"p(90)", 90}, {"p(95)", 95}, {"p(99)", 99}, {"max", 100}};
    snprintf(v, sizeof(v), "%s", load_fmt_us(hist_mean(h), x, sizeof(x)));
    rh__row(b, "http_req_duration avg", v);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        char k[64];
        snprintf(k, sizeof(k), "http_req_duration %s", ps[i].k);
        rh__row(b, k, load_fmt_us((double)hist_percentile(h, ps[i].p), x, sizeof(x)));
    }
    snprintf(v, sizeof(v), "%.2f%%", 100.0 * result_under(r, 500000));
    rh__row(b, "requests_under_500ms", v);
    snprintf(v, sizeof(v), "%.2f%%", 100.0 * result_under(r, 1000000));
    rh__row(b, "requests_under_1s", v);
    uint64_t ck = r->checks_pass + r->checks_fail;
    if (ck) {
        snprintf(v, sizeof(v), "%.2f%% (%" PRIu64 " passed, %" PRIu64 " failed)",
                 100.0 * (double)r->checks_pass / (double)ck, r->checks_pass, r->checks_fail);
        rh__row(b, "checks", v);
    }
    rh__row(b, "data_received", load_fmt_bytes(r->bytes_in, x, sizeof(x)));
    rh__row(b, "data_sent", load_fmt_bytes(r->bytes_out, x, sizeof(x)));
    if (r->mode && strcmp(r->mode, "closed") != 0) {
        snprintf(v, sizeof(v), "%" PRIu64, r->dropped);
        rh__row(b, "dropped_iterations", v);
        snprintf(v, sizeof(v), "%" PRIu64 " (max lag %s)", r->late,
                 load_fmt_us((double)r->max_lag_us, x, sizeof(x)));
        rh__row(b, "late_iterations", v);
    }
    buf_append_str(b, "</table>");
    if (r->dropped)
        buf_printf(b,
                   "<div class=warn>The requested rate was not met: %" PRIu64
                   " iterations dropped (no free connection).</div>",
                   r->dropped);

    if (r->nth) {
        buf_append_str(b, "<h2>Thresholds</h2><table><tr><th class=l></th><th class=l>metric</th>"
                          "<th class=l>expression</th><th>observed</th></tr>");
        for (size_t i = 0; i < r->nth; i++) {
            const struct threshold *t = &r->th[i];
            threshold_format_observed(t, x, sizeof(x));
            buf_printf(b, "<tr><td class='l %s'>%s</td><td class=l>", t->ok ? "ok" : "bad",
                       t->ok ? "✓" : "✗");
            rh__esc(b, t->metric);
            if (t->tag) {
                buf_append_str(b, "{name:");
                rh__esc(b, t->tag);
                buf_append_str(b, "}");
            }
            buf_append_str(b, "</td><td class=l>");
            rh__esc(b, t->expr);
            buf_append_str(b, "</td><td>");
            rh__esc(b, x);
            buf_append_str(b, "</td></tr>");
        }
        buf_append_str(b, "</table>");
    }

    buf_append_str(b, "<h2>Endpoints</h2><table id=endpoints><tr><th class=l>name</th><th "
                      "class=l>method</th><th>calls</th><th>errors</th><th>avg</th><th>p95</th>"
                      "<th>p99</th></tr>");
    for (size_t i = 0; i < r->neps; i++) {
        const struct result_ep *e = &r->eps[i];
        buf_append_str(b, "<tr><td class=l>");
        rh__esc(b, e->name);
        buf_append_str(b, "</td><td class=l>");
        rh__esc(b, e->method);
        buf_printf(b,
                   "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s</td><td>%s</td><td>%s"
                   "</td></tr>",
                   e->reqs, e->failed, load_fmt_us(hist_mean(&e->h), x, sizeof(x)),
                   load_fmt_us((double)hist_percentile(&e->h, 95), y, sizeof(y)),
                   load_fmt_us((double)hist_percentile(&e->h, 99), z, sizeof(z)));
    }
    buf_append_str(b, "</table>");

    if (r->nchecks) {
        buf_append_str(b, "<h2>Checks</h2><table><tr><th class=l></th><th class=l>request</th>"
                          "<th class=l>check</th><th>passed</th><th>failed</th></tr>");
        for (size_t i = 0; i < r->nchecks; i++) {
            const struct result_check *k = &r->checks[i];
            buf_printf(b, "<tr><td class='l %s'>%s</td><td class=l>", k->fail ? "bad" : "ok",
                       k->fail ? "✗" : "✓");
            rh__esc(b, k->request);
            buf_append_str(b, "</td><td class=l>");
            rh__esc(b, k->label);
            buf_printf(b, "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>", k->pass, k->fail);
        }
        buf_append_str(b, "</table>");
    }

    buf_append_str(b, "<h2>Status codes and errors</h2><table><tr><th class=l>status / "
                      "error</th><th>count</th></tr>");
    for (int s = 0; s < 600; s++)
        if (r->status[s])
            buf_printf(b, "<tr><td class=l>%d</td><td>%" PRIu64 "</td></tr>", s, r->status[s]);
    for (int k = 0; k < LERR__COUNT; k++)
        if (r->errors[k])
            buf_printf(b, "<tr><td class='l bad'>%s (%s)</td><td>%" PRIu64 "</td></tr>",
                       load_err_names[k], load_err_text[k], r->errors[k]);
    buf_append_str(b, "</table>");
}

/* The JSON for the script, with "</" broken so no string can close the <script> element. */
static void rh__data(const struct load_result *r, struct buf *b)
{
    struct buf j = BUF_INIT;
    report_json(r, &j);
    /* report_json() ends with "}\n": reopen the object to add the distribution as [upper bound
     * µs, count] pairs, which the page would otherwise have to recompute from bucket indexes. */
    if (buf_pending(&j) >= 2 && j.data[j.len - 2] == '}' && j.data[j.len - 1] == '\n')
        j.len -= 2;
    buf_append_str(&j, ",\"dist\":[");
    bool first = true;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (!r->h.buckets[i])
            continue;
        buf_printf(&j, "%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", hist_bucket_upper(i),
                   r->h.buckets[i]);
        first = false;
    }
    buf_append_str(&j, "]}");
    for (size_t i = j.off; i < j.len; i++) {
        if (j.data[i] == '<' && i + 1 < j.len && j.data[i + 1] == '/')
            buf_append_str(b, "<\\");
        else
            buf_append(b, &j.data[i], 1);
    }
    buf_deinit(&j);
}

void report_html(const struct load_result *r, struct buf *out)
{
    buf_append_str(out, "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
                        "<meta name=viewport content='width=device-width,initial-scale=1'>"
                        "<title>apigate load report: ");
    rh__esc(out, r->target ? r->target : "");
    buf_printf(out, "</title><style>%s</style></head><body>\n<h1>apigate load report</h1>", rh_css);
    buf_append_str(out, "<div class=sub>");
    rh__esc(out, r->target ? r->target : "?");
    buf_printf(out, " · %s model · %.1f s · %u thread%s", r->mode ? r->mode : "?",
               r->rate_s > 0 ? r->rate_s : r->duration_s, r->threads, r->threads == 1 ? "" : "s");
    if (r->requested_rate > 0)
        buf_printf(out, " · requested %.1f/s", r->requested_rate);
    if (r->machines > 1)
        buf_printf(out, " · merged from %u runs", r->machines);
    buf_append_str(out, "</div>\n");
    if (r->verdict[0]) {
        /* On top, so a failed run never reads as a pass until scrolled. */
        buf_printf(out, "<div id=verdict class='banner %s'>", r->verdict_ok ? "pass" : "fail");
        rh__esc(out, r->verdict);
        buf_append_str(out, "</div>\n");
    }
    buf_append_str(
        out,
        "<div class=grid>"
        "<div class=card><h3>Requests per second</h3><canvas id=chart-rps></canvas></div>"
        "<div class=card><h3>Latency p50 / p95 / p99</h3><canvas id=chart-latency></canvas></div>"
        "<div class=card><h3>Errors and dropped iterations per second</h3><canvas "
        "id=chart-errors></canvas></div>"
        "<div class=card><h3>Active VUs</h3><canvas id=chart-vus></canvas></div>"
        "<div class=card><h3>Latency distribution (cumulative)</h3><canvas "
        "id=chart-dist></canvas></div>");
    if (r->gw.present)
        buf_append_str(out, "<div class=card><h3>Gateway: cache hit ratio and origin requests "
                            "per second</h3><canvas id=chart-gw></canvas></div>"
                            "<div class=card><h3>Gateway: CPU per 1k requests</h3><canvas "
                            "id=chart-gwcpu></canvas></div>");
    buf_append_str(out, "</div>\n");
    rh__tables(r, out);
    buf_append_str(out, "\n<script type=application/json id=report-data>");
    rh__data(r, out);
    buf_printf(out, "</script>\n<script>%s</script>\n</body></html>\n", rh_js);
}

/* ---- `load compare --html`: one page, the runs overlaid ---- */

static const char rh_cmp_js[] =
    "(function(){\n"
    "var D=JSON.parse(document.getElementById('compare-data').textContent);\n" RH_JS_LIB
    "var C=['#7a7f8a','#2f6fde','#c4320a','#18794e','#f5a623','#7a4fd6'];\n"
    "function ser(k){return D.series.map(function(S,i){var P=Math.ceil(D.planned[i]||0);"
    "return {name:'#'+(i+1)+' '+D.names[i],color:C[i%C.length],pts:S.filter(function(s){"
    "return !P||s.t<P;}).map(function(s){return [s.t+1,s[k]];})};});}\n"
    "chart('chart-rps',ser('rps'),{});\n"
    "chart('chart-p95',ser('p95_ms'),{fy:fmtMs});\n"
    "chart('chart-errors',ser('errors'),{});\n"
    "document.body.setAttribute('data-charts','done');\n"
    "})();\n";

/* Appends <j> with "</" broken, so no string can close the <script> element. */
static void rh__script_json(struct buf *b, const char *j, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (j[i] == '<' && i + 1 < n && j[i + 1] == '/')
            buf_append_str(b, "<\\");
        else
            buf_append(b, &j[i], 1);
    }
}

void report_html_compare(const struct load_result *const *runs, const char *const *files, size_t n,
                         const struct buf *cmp_json, struct buf *out)
{
    bool failed = memmem(buf_head(cmp_json), buf_pending(cmp_json), "\"failed\":true}\n", 15);
    buf_printf(out,
               "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
               "<meta name=viewport content='width=device-width,initial-scale=1'>"
               "<title>apigate load compare</title><style>%s"
               ".banner{padding:10px 14px;border-radius:6px;font-weight:600;margin:8px 0 12px}"
               ".banner.fail{background:#fde8e4;border:1px solid #c4320a;color:#8c2307}"
               ".banner.pass{background:#e6f4ec;border:1px solid #18794e;color:#0f5132}"
               "</style></head><body>\n<h1>apigate load compare</h1>",
               rh_css);
    buf_printf(out, "<div id=verdict class='banner %s'>%s</div>\n", failed ? "fail" : "pass",
               failed ? "FAILED: a --fail-on rule was broken (see below)"
                      : "No --fail-on rule broken");
    buf_append_str(out, "<table id=runs><tr><th>#</th><th class=l>file</th><th class=l>target"
                        "</th><th class=l>model</th><th>duration</th></tr>");
    for (size_t i = 0; i < n; i++) {
        buf_printf(out, "<tr><td>%zu</td><td class=l>", i + 1);
        rh__esc(out, files[i]);
        buf_append_str(out, "</td><td class=l>");
        rh__esc(out, runs[i]->target ? runs[i]->target : "?");
        buf_append_str(out, "</td><td class=l>");
        rh__esc(out, runs[i]->mode ? runs[i]->mode : "?");
        buf_printf(out, "</td><td>%.1f s</td></tr>", runs[i]->duration_s);
    }
    buf_append_str(
        out, "</table>\n<div class=grid>"
             "<div class=card><h3>Requests per second</h3><canvas id=chart-rps></canvas></div>"
             "<div class=card><h3>Latency p95</h3><canvas id=chart-p95></canvas></div>"
             "<div class=card><h3>Errors per second</h3><canvas id=chart-errors></canvas></div>"
             "</div>\n<h2>Metrics</h2><table id=metrics></table><table id=rules></table>\n"
             "<script type=application/json id=compare-data>{\"cmp\":");
    const char *j = buf_head(cmp_json);
    size_t jn = buf_pending(cmp_json);
    while (jn > 0 && (j[jn - 1] == '\n'))
        jn--;
    rh__script_json(out, j, jn);
    buf_append_str(out, ",\"names\":[");
    for (size_t i = 0; i < n; i++) {
        const char *base = strrchr(files[i], '/');
        base = base ? base + 1 : files[i];
        struct buf q = BUF_INIT;
        buf_append_json_str(&q, base, strlen(base));
        if (i)
            buf_append_str(out, ",");
        rh__script_json(out, buf_head(&q), buf_pending(&q));
        buf_deinit(&q);
    }
    buf_append_str(out, "],\"planned\":[");
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "%s%.3f", i ? "," : "",
                   runs[i]->rate_s > 0 ? runs[i]->rate_s : runs[i]->planned_s);
    buf_append_str(out, "],\"series\":[");
    for (size_t i = 0; i < n; i++) {
        buf_append_str(out, i ? ",[" : "[");
        for (size_t k = 0; k < runs[i]->nseries; k++) {
            const struct result_sec *s = &runs[i]->series[k];
            buf_printf(out, "%s{\"t\":%lld,\"rps\":%llu,\"errors\":%llu,\"p95_ms\":%.3f}",
                       k ? "," : "", (long long)s->t, (unsigned long long)s->reqs,
                       (unsigned long long)s->errors, (double)s->p95_us / 1000.0);
        }
        buf_append_str(out, "]");
    }
    /* The tables are filled from the same JSON the --json option writes. */
    buf_printf(
        out,
        "]}</script>\n<script>%s</script>\n<script>(function(){"
        "var D=JSON.parse(document.getElementById('compare-data').textContent).cmp;"
        "function e(s){return String(s).replace(/[&<>\"']/g,function(c){return '&#'+"
        "c.charCodeAt(0)+';';});}"
        "function f(v,u){if(v===null)return '-';if(u==='ms')return v.toFixed(2)+' ms';"
        "if(u==='ratio')return (v*100).toFixed(2)+'%%';if(u==='per_s')return "
        "v.toFixed(1)+'/s';return String(Math.round(v));}"
        "var h='<tr><th class=l>metric</th>';D.runs.forEach(function(r,i){h+='<th>#'+(i+1)"
        "+'</th>';});h+='<th class=l>last vs #1</th></tr>';"
        "D.metrics.forEach(function(m){h+='<tr data-key=\"'+e(m.key)+'\"><td class=l>'+"
        "e(m.label)+'</td>';m.values.forEach(function(v,i){var c=m.change[i];h+='<td>'+"
        "f(v,m.unit)+(i&&c!==null?' ('+(c>=0?'+':'')+c.toFixed(m.change_unit==='pp'?2:1)+"
        "(m.change_unit==='pp'?' pp':'%%')+')':'')+'</td>';});var v=m.verdict[m.verdict."
        "length-1]||'';h+='<td class=\"l '+(v==='worse'?'bad':v==='better'?'ok':'')+'\">'+"
        "v+'</td></tr>';});document.getElementById('metrics').innerHTML=h;"
        "var r='';D.fail_on.forEach(function(x){r+='<tr><td class=\"l '+(x.failed?'bad':"
        "'ok')+'\">'+(x.failed?'\\u2717':'\\u2713')+'</td><td class=l>'+e(x.rule)+'</td><td>'"
        "+(x.observed===null?'-':x.observed.toFixed(2))+'</td></tr>';});"
        "document.getElementById('rules').innerHTML=r;})();</script>\n</body></html>\n",
        rh_cmp_js);
}
