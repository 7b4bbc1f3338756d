// The charts of apigate's HTML load reports (src/load/report_html.c inlines this file after
// Chart.js, both embedded in the binary at build time): the run report (`apigate load --html`,
// `load merge --html`) and the compare page (`load compare --html`, the runs overlaid). The data
// is the JSON in the page's <script type=application/json> element. After drawing, every canvas
// carries what a headless browser test reads (tests/e2e/47_load_html.sh, 46, 122):
//   data-drawn   the points drawn, over all its series
//   data-xticks  data-yticks   the tick labels, "|"-separated
//   data-xtitle  data-ytitle   the axis titles
//   data-series  the series' names, "|"-separated
// and <body data-charts="done"> once every chart is drawn.
"use strict";
(function () {
  // ---- formats and ticks ----

  // latency in its unit; 0 is "0", never "0 µs"
  function fmtMs(v) {
    if (!v) return "0";
    if (v >= 1000) return +(v / 1000).toFixed(2) + " s";
    if (v >= 1) return +v.toFixed(v < 10 ? 2 : 1) + " ms";
    return +(v * 1000).toFixed(0) + " \u00b5s";
  }
  // seconds since the start: "1.5s", "2m05s"
  function fsec(v) {
    v = Math.round(v * 100) / 100;
    if (v < 60) return v + "s";
    const s = Math.round(v % 60);
    return Math.floor(v / 60) + "m" + (s ? String(s).padStart(2, "0") + "s" : "");
  }
  function fcount(v) { return v >= 1000 ? +(v / 1000).toFixed(1) + "k" : String(+v.toFixed(2)); }
  // a time step of 1, 2 or 5 times a power of ten giving about five ticks over <span>
  function tstep(span) {
    const r = span / 5, p = Math.pow(10, Math.floor(Math.log10(r))), m = r / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function timeTicks(min, max) {
    if (!(max > min)) return [min];
    const st = tstep(max - min), out = [];
    for (let v = Math.ceil(min / st) * st; v <= max + st * 1e-6; v += st) out.push(+v.toFixed(6));
    return out;
  }

  function logLabel(v, min, max) {
    const m = Math.round(v / Math.pow(10, Math.floor(Math.log10(v)) ));
    const keep = Math.log10(max / min) > 2 ? [1] : [1, 2, 5];
    return keep.includes(m) && Math.abs(v / (m * Math.pow(10, Math.floor(Math.log10(v)))) - 1) < 1e-6 ? fmtMs(v) : "";
  }

  // ---- one chart ----

  // series: [{name, color, pts: [[x, y], ...], dash}]; o: {ytitle, fy (y tick format), logx,
  // ymax, xtitle, int (whole y ticks)}. x is seconds since the start unless o.logx (the latency distribution).
  function chart(id, series, o) {
    const cv = document.getElementById(id);
    if (!cv) return;
    const fy = o.fy || fcount;
    let n = 0, xmin = Infinity, xmax = -Infinity;
    for (const s of series) for (const p of s.pts) { n++; xmin = Math.min(xmin, p[0]); xmax = Math.max(xmax, p[0]); }
    if (!isFinite(xmin)) { xmin = o.logx ? 0.001 : 0; xmax = o.logx ? 1 : 1; }
    if (xmax === xmin) xmax = o.logx ? xmin * 10 : xmin + 1;
    const xtitle = o.xtitle || (o.logx ? "latency (log scale)" : "time since start");
    const ch = new Chart(cv, {
      type: "line",
      data: {datasets: series.map((s) => ({
        label: s.name, data: s.pts.map((p) => ({x: p[0], y: p[1]})),
        borderColor: s.color, backgroundColor: s.color, borderWidth: 1.8,
        borderDash: s.dash ? [5, 4] : [], pointRadius: s.pts.length < 30 ? 2.5 : 0, parsing: false,
      }))},
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: {mode: "nearest", axis: "x", intersect: false},
        plugins: {
          legend: {labels: {boxWidth: 12}},
          tooltip: {callbacks: {
            title: (it) => it.length ? (o.logx ? fmtMs(it[0].parsed.x) : fsec(it[0].parsed.x)) : "",
            label: (it) => `${it.dataset.label}: ${fy(it.parsed.y)}`,
          }},
        },
        scales: {
          x: o.logx
            ? {type: "logarithmic", min: xmin, max: xmax, title: {display: true, text: xtitle},
               // 1, 2 and 5 of each decade over two decades at most, else the powers of ten
               ticks: {maxRotation: 0, autoSkip: false, callback: (v) => logLabel(v, xmin, xmax)}}
            : {type: "linear", min: xmin, max: xmax, title: {display: true, text: xtitle},
               // whole steps (1s, 1.5s, 2s...), the first and the last inside the plot
               afterBuildTicks: (sc) => { sc.ticks = timeTicks(sc.min, sc.max).map((v) => ({value: v})); },
               ticks: {autoSkip: false, maxRotation: 0, callback: (v) => fsec(v)}},
          y: {type: "linear", min: 0, max: o.ymax, title: {display: true, text: o.ytitle},
              // counts (errors, VUs) tick at whole numbers
              ticks: {maxTicksLimit: 6, precision: o.int ? 0 : undefined, callback: (v) => fy(v)}},
        },
      },
    });
    const lab = (sc) => sc.ticks.map((t) => Array.isArray(t.label) ? t.label.join(" ") : String(t.label)).filter((l) => l !== "");
    cv.setAttribute("data-drawn", String(n));
    cv.setAttribute("data-xticks", lab(ch.scales.x).join("|"));
    cv.setAttribute("data-yticks", lab(ch.scales.y).join("|"));
    cv.setAttribute("data-xtitle", xtitle);
    cv.setAttribute("data-ytitle", o.ytitle);
    cv.setAttribute("data-series", series.map((s) => s.name).join("|"));
  }

  const COLORS = ["#2f6fde", "#c4320a", "#18794e", "#f5a623", "#7a4fd6", "#0f8b8d", "#d6336c",
                  "#7a7f8a", "#5c940d", "#1864ab"];

  // ---- the run report ----

  function runReport(D) {
    // the charts over time stop at the planned end: the last partial second of in-flight
    // responses would read as a drop; a point is drawn at the end of its second
    const P = Math.ceil(D.planned_s || 0);
    const inPlan = (s) => !P || s.t < P;
    const S = (D.series || []).filter(inPlan);
    const pts = (k) => S.map((s) => [s.t + 1, s[k]]);
    const RS = [{name: "requests/s", color: "#2f6fde", pts: pts("rps")}];
    // the open model's requested rate, second by second (a ramp is drawn as one); a report
    // without it per second (older) draws the peak
    if (D.requested_rate > 0) {
      const per = S.some((s) => s.requested > 0);
      RS.push({name: (per ? "requested (peak " : "requested ") + D.requested_rate + "/s" + (per ? ")" : ""),
               color: "#7a7f8a", dash: true,
               pts: S.map((s) => [s.t + 1, per ? (s.requested || 0) : D.requested_rate])});
    }
    chart("chart-rps", RS, {ytitle: "requests/s"});
    chart("chart-latency", [
      {name: "p50", color: "#18794e", pts: pts("p50_ms")},
      {name: "p95", color: "#f5a623", pts: pts("p95_ms")},
      {name: "p99", color: "#c4320a", pts: pts("p99_ms")}], {ytitle: "latency", fy: fmtMs});
    chart("chart-errors", [
      {name: "errors/s", color: "#c4320a", pts: pts("errors")},
      {name: "dropped/s", color: "#7a7f8a", pts: pts("dropped")}], {ytitle: "per second", int: true});
    chart("chart-vus", [{name: "active VUs / busy connections", color: "#7a4fd6", pts: pts("vus")}],
          {ytitle: "VUs", int: true});
    // per endpoint (or flow step, under its flow's name): its own requests/s and p95, second by
    // second; the method tells apart two endpoints of the same name
    const E = (D.endpoints || []).filter((e) => (e.series || []).length);
    const full = (e) => (e.group ? e.group + " \u203a " : "") + e.name;
    const label = (e) => E.filter((x) => full(x) === full(e)).length > 1 ? e.method + " " + full(e) : full(e);
    const eser = (k) => E.map((e, i) => ({name: label(e), color: COLORS[i % COLORS.length],
                                          pts: e.series.filter(inPlan).map((s) => [s.t + 1, s[k]])}));
    chart("chart-ep-rps", eser("rps"), {ytitle: "requests/s"});
    chart("chart-ep-p95", eser("p95_ms"), {ytitle: "p95 latency", fy: fmtMs});
    let tot = 0, acc = 0;
    const dist = D.dist || [];
    for (const d of dist) tot += d[1];
    chart("chart-dist", [{name: "% of requests at or under", color: "#2f6fde",
                          pts: dist.map((d) => { acc += d[1]; return [d[0] / 1000, tot ? acc * 100 / tot : 0]; })}],
          {logx: true, ymax: 100, ytitle: "% of requests", fy: (v) => v + "%"});
    const G = S.filter((s) => s.gw_hit_ratio !== undefined);
    const gp = (k, f) => G.filter((s) => s[k] !== null).map((s) => [s.t + 1, f(s[k])]);
    chart("chart-gw", [
      {name: "hit ratio %", color: "#18794e", pts: gp("gw_hit_ratio", (v) => v * 100)},
      {name: "origin requests/s", color: "#c4320a", pts: gp("gw_origin", (v) => v)}],
      {ytitle: "% / requests per second"});
    chart("chart-gwcpu", [{name: "CPU ms per 1k requests", color: "#7a4fd6",
                           pts: gp("gw_cpu_ms_per_1k", (v) => v)}], {ytitle: "CPU ms per 1k requests"});
  }

  // ---- the compare page: one series per run on each chart ----

  function comparePage(D) {
    const ser = (k) => D.series.map((S, i) => {
      const P = Math.ceil(D.planned[i] || 0);
      return {name: "#" + (i + 1) + " " + D.names[i], color: ["#7a7f8a"].concat(COLORS)[i % (COLORS.length + 1)],
              pts: S.filter((s) => !P || s.t < P).map((s) => [s.t + 1, s[k]])};
    });
    chart("chart-rps", ser("rps"), {ytitle: "requests/s"});
    chart("chart-p95", ser("p95_ms"), {ytitle: "p95 latency", fy: fmtMs});
    chart("chart-errors", ser("errors"), {ytitle: "errors/s", int: true});
    compareTables(D.cmp);
  }

  // the history table (one column per run, each later value with its change from the first)
  // and the --fail-on rules, from the JSON `load compare --json` writes
  function compareTables(C) {
    const esc = (x) => String(x).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
    const val = (v, u) => v === null ? "-" : u === "ms" ? v.toFixed(2) + " ms"
      : u === "ratio" ? (v * 100).toFixed(2) + "%" : u === "per_s" ? v.toFixed(1) + "/s"
      : String(Math.round(v));
    let h = "<tr><th class=l>metric</th>" + C.runs.map((r, i) => "<th>#" + (i + 1) + "</th>").join("") +
            "<th class=l>last vs #1</th></tr>";
    for (const m of C.metrics) {
      h += '<tr data-key="' + esc(m.key) + '"><td class=l>' + esc(m.label) + "</td>";
      m.values.forEach((v, i) => {
        const c = m.change[i], pp = m.change_unit === "pp";
        const chg = i && c !== null ? " (" + (c >= 0 ? "+" : "") + c.toFixed(pp ? 2 : 1) + (pp ? " pp" : "%") + ")" : "";
        h += "<td>" + val(v, m.unit) + chg + "</td>";
      });
      const v = m.verdict[m.verdict.length - 1] || "";
      h += '<td class="l ' + (v === "worse" ? "bad" : v === "better" ? "ok" : "") + '">' + v + "</td></tr>";
    }
    document.getElementById("metrics").innerHTML = h;
    let r = "";
    for (const x of C.fail_on)
      r += '<tr><td class="l ' + (x.failed ? "bad" : "ok") + '">' + (x.failed ? "\u2717" : "\u2713") +
           "</td><td class=l>" + esc(x.rule) + "</td><td>" + (x.observed === null ? "-" : x.observed.toFixed(2)) + "</td></tr>";
    document.getElementById("rules").innerHTML = r;
  }

  Chart.defaults.font.family = "system-ui, sans-serif";
  Chart.defaults.font.size = 11;
  const run = document.getElementById("report-data");
  const cmp = document.getElementById("compare-data");
  if (run) runReport(JSON.parse(run.textContent));
  if (cmp) comparePage(JSON.parse(cmp.textContent));
  document.body.setAttribute("data-charts", "done");
})();
