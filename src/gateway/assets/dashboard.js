"use strict";
// The apigate dashboard (served as /dashboard/app.js with the page, dashboard.html; both are
// embedded in the binary at build time). It first reads /stats/history (the gateway's last 10
// minutes, one point per second, kept across config reloads), then polls /stats once a second
// and keeps KEEP seconds of history in memory: rates and percentiles per interval come from the
// differences of the cumulative counters and histogram buckets. The charts are Chart.js
// (/dashboard/chart.js, from Debian's libjs-chart.js): a time axis with wall-clock labels,
// tooltips, scales that adapt to the data. Every number drawn is also written into a data-*
// attribute so a headless browser can check it (tests/e2e/64_dashboard.sh).
// Polls /stats once a second and keeps KEEP seconds of history in memory: rates and percentiles
// per interval come from the differences of the cumulative counters and histogram buckets.
// Every number drawn is also written into a data-* attribute so a headless browser can check it.
const KEEP = 600;
const hist = [];        // {t, rps, p50, p95, p99, err, hit}
const snaps = [];       // {up, s}: the last 61 /stats, for the last-minute tiles
let prev = null;        // previous /stats and its time
let polls = 0, errors = 0;

const $ = (id) => document.getElementById(id);
const fmt = (v, d) => (v === null || v === undefined || !isFinite(v)) ? "-" : v.toFixed(d);
function text(el, s) { if (el.textContent !== s) el.textContent = s; }

function quantile(q, le, counts) {
  // counts are per-bucket (not cumulative) for one interval; linear inside a bucket, as
  // Prometheus' histogram_quantile does
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (seen + counts[i] >= rank && counts[i] > 0) {
      const lo = i === 0 ? 0 : le[i - 1];
      const hi = i < le.length ? le[i] : le[le.length - 1];
      return lo + (hi - lo) * (rank - seen) / counts[i];
    }
    seen += counts[i];
  }
  return le[le.length - 1];
}

function windowed(s, p) {
  const w = s.latency_window, pw = p && p.latency_window;
  if (!w || !pw || w.le_ms.length !== pw.le_ms.length) return [null, null, null];
  // cumulative "le" counts -> per-bucket deltas; the last slot is +Inf
  const cum = w.counts.map((c, i) => c - pw.counts[i]);
  cum.push(w.count - pw.count);
  const per = cum.map((c, i) => i === 0 ? c : c - cum[i - 1]);
  return [0.5, 0.95, 0.99].map((q) => quantile(q, w.le_ms, per));
}

function cacheTotals(c) {
  if (!c || !c.enabled) return null;
  return {hits: c.hits || 0, misses: c.misses || 0};
}

function sample(s, now) {
  const p = prev ? prev.s : null;
  // rates over the gateway's own clock (uptime_s), not the browser's timer
  const dt = prev ? (p.uptime_s > 0 && s.uptime_s > p.uptime_s ? s.uptime_s - p.uptime_s : (now - prev.t) / 1000) : 0;
  const pt = {t: now, rps: null, p50: null, p95: null, p99: null, err: null, hit: null};
  if (p && dt > 0) {
    const dn = s.requests.total - p.requests.total;
    pt.rps = Math.max(0, dn / dt);
    if (dn > 0) pt.err = 100 * (s.requests["5xx"] - p.requests["5xx"]) / dn;
    [pt.p50, pt.p95, pt.p99] = windowed(s, p);
    const c = cacheTotals(s.cache), pc = cacheTotals(p.cache);
    if (c && pc) {
      const dh = c.hits - pc.hits, dm = c.misses - pc.misses;
      if (dh + dm > 0) pt.hit = 100 * dh / (dh + dm);
    }
  }
  prev = {s, t: now};
  snaps.push(s);
  while (snaps.length > 61) snaps.shift();
  hist.push(pt);
  while (hist.length > KEEP) hist.shift();
  return pt;
}

// ---- charts ----

const COLORS = {rps: "#4fc3f7", p50: "#4fc3f7", p95: "#ffb74d", p99: "#e57373", err: "#e57373", hit: "#81c784"};
const GRID = "#2a3440", DIM = "#8a96a3";
// time ticks at steps people read: 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10 min (at most ~6 labels)
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600].map((s) => s * 1000);
const charts = {};

function clock(t) { const d = new Date(t); return [d.getHours(), d.getMinutes(), d.getSeconds()].map((v) => String(v).padStart(2, "0")).join(":"); }
// latency in its unit: sub-millisecond hits read in µs, not as 0.0
function fmtLat(v) { return v === null || v === undefined || !isFinite(v) ? "-" : v === 0 ? "0" : v < 1 ? (v * 1000).toFixed(0) + " µs" : v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s"; }
// an axis label: "2.5 ms", not "2.50 ms"
function fmtLatAxis(v) { return fmtLat(v).replace(/(\.\d*?)0+ /, "$1 ").replace(". ", " "); }
function fmtAxis(v) { return v >= 1000 ? +(v / 1000).toFixed(1) + "k" : String(+v.toFixed(v >= 10 ? 0 : v >= 1 ? 1 : 3)); }
function fmtValue(unit, v) { return unit === "ms" ? fmtLat(v) : unit === "%" ? fmt(v, 2) + " %" : fmt(v, 1); }

// One line chart per canvas: x is the wall-clock time in ms (a linear axis labelled with clock
// times: Chart.js' time axis needs a date adapter that Debian does not package), y starts at 0
// and ends where the data does (a 5 % error rate is not a flat line on a 0-100 axis; percent
// axes never go past 100).
function makeChart(id, series, unit) {
  Chart.defaults.color = DIM;
  Chart.defaults.font.size = 11;
  return new Chart(document.getElementById(id), {
    type: "line",
    data: {datasets: series.map((k) => ({
      label: k, data: [], borderColor: COLORS[k], backgroundColor: COLORS[k],
      borderWidth: 1.5, pointRadius: 0, spanGaps: false, parsing: false,
    }))},
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, normalized: true,
      interaction: {mode: "nearest", axis: "x", intersect: false},
      plugins: {
        legend: {display: series.length > 1, labels: {boxWidth: 12}},
        tooltip: {callbacks: {
          title: (items) => items.length ? clock(items[0].parsed.x) : "",
          label: (it) => `${it.dataset.label}: ${fmtValue(unit, it.parsed.y)}`,
        }},
      },
      scales: {
        // the time ticks are ours (multiples of a readable step, see draw): Chart.js' own steps
        // for epoch milliseconds fall on odd seconds
        x: {type: "linear", grid: {color: GRID},
            afterBuildTicks: (sc) => { sc.ticks = timeTicks(sc.min, sc.max).map((v) => ({value: v})); },
            ticks: {autoSkip: false, maxRotation: 0, callback: (v) => clock(v)}},
        y: {type: "linear", min: 0, grid: {color: GRID},
            ticks: {maxTicksLimit: 6, callback: (v) => unit === "ms" ? fmtLatAxis(v) : fmtAxis(v) + (unit === "%" && v ? " %" : "")}},
      },
    },
  });
}

// the ticks of a time axis from <min> to <max> (ms): the multiples of the first step that gives
// at most 5 of them
function timeTicks(min, max) {
  const step = TIME_STEPS.find((s) => (max - min) / s <= 5) || TIME_STEPS[TIME_STEPS.length - 1];
  const out = [];
  for (let t = Math.ceil(min / step) * step; t <= max; t += step) out.push(t);
  return out;
}
function niceCeil(v) { const e = Math.pow(10, Math.floor(Math.log10(v))); for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e; return 10 * e; }

function draw(id, series, unit) {
  const ch = charts[id] || (charts[id] = makeChart(id, series, unit));
  const cv = ch.canvas;
  // the x axis grows with the history up to KEEP seconds, so the first minute is not a dot
  const span = (Math.max(60, Math.min(KEEP, hist.length)) - 1) * 1000;
  const end = hist.length ? hist[hist.length - 1].t : Date.now();
  Object.assign(ch.options.scales.x, {min: end - span, max: end});
  let points = 0, max = 0;
  series.forEach((k, si) => {
    const ds = ch.data.datasets[si];
    ds.data = hist.map((pt) => ({x: pt.t, y: pt[k]}));
    const n = hist.reduce((a, pt) => a + (pt[k] !== null ? 1 : 0), 0);
    if (si === 0) points = n;
    // a lone sample (gaps around it) draws no line: mark every sample while there are few
    ds.pointRadius = n < 30 ? 2 : 0;
    for (const pt of hist) if (pt[k] !== null && pt[k] > max) max = pt[k];
  });
  // adaptive scales: a 5 % error rate is not a flat line on a 0-100 axis; percent axes stop at 100
  let top = max > 0 ? niceCeil(max * 1.1) : 1;
  if (unit === "%") top = Math.min(100, top);
  ch.options.scales.y.max = top;
  ch.update("none");
  let last = null, peak = null;
  for (const pt of hist) {
    const v = pt[series[0]];
    if (v === null) continue;
    last = v;
    if (peak === null || v > peak) peak = v;
  }
  cv.dataset.points = String(points);
  cv.dataset.peak = peak === null ? "" : peak.toFixed(3);
  cv.dataset.last = last === null ? "" : last.toFixed(3);
  cv.dataset.max = String(ch.scales.y.max);
  cv.dataset.xticks = ch.scales.x.ticks.map((t) => clock(t.value)).join("|");
  cv.dataset.yticks = ch.scales.y.ticks.map((t) => t.label).join("|");
}

// the last minute, from the oldest snapshot kept (up to 60 s ago) to the newest
function lastMinute(s) {
  const o = snaps.length > 1 ? snaps[0] : null;
  if (!o || o === s) return null;
  const dn = s.requests.total - o.requests.total;
  const m = {secs: s.uptime_s - o.uptime_s, err: null, hit: null, lat: windowed(s, o)};
  if (dn > 0) m.err = 100 * (s.requests["5xx"] - o.requests["5xx"]) / dn;
  const c = cacheTotals(s.cache), pc = cacheTotals(o.cache);
  if (c && pc && c.hits + c.misses - pc.hits - pc.misses > 0) m.hit = 100 * (c.hits - pc.hits) / (c.hits + c.misses - pc.hits - pc.misses);
  return m;
}

function cell(tr, v, cls) { const td = document.createElement("td"); td.textContent = v; if (cls) td.className = cls; tr.appendChild(td); return td; }

function routes(s) {
  const tb = $("routes").tBodies[0];
  const rows = [];
  for (const r of s.routes || []) {
    const tr = document.createElement("tr");
    tr.dataset.route = r.route;
    tr.dataset.count = String(r.count);
    tr.dataset.errors = String(r.errors);
    tr.dataset.p95 = String(r.p95_ms);
    cell(tr, r.route === "" ? "(no route)" : r.route);
    cell(tr, r.upstream === null ? "-" : r.upstream);
    cell(tr, String(r.count)).className = "count";
    cell(tr, fmt(r.avg_ms, 2));
    cell(tr, fmt(r.p95_ms, 2)).className = "p95";
    cell(tr, fmt(r.p99_ms, 2));
    cell(tr, String(r.errors), r.errors > 0 ? "errors bad" : "errors");
    cell(tr, String(r.inflight));
    cell(tr, String(r.shed));
    rows.push(tr);
  }
  tb.replaceChildren(...rows);
}

function pools(s) {
  const tb = $("pools").tBodies[0];
  const rows = [];
  for (const u of s.upstreams || []) {
    const tr = document.createElement("tr");
    tr.dataset.upstream = u.name;
    tr.dataset.inUse = String(u.in_use);
    tr.dataset.idle = String(u.idle);
    tr.dataset.waiting = String(u.waiting);
    cell(tr, u.name);
    cell(tr, String(u.in_use));
    cell(tr, String(u.idle));
    cell(tr, String(u.connecting));
    cell(tr, String(u.waiting), u.waiting > 0 ? "bad" : "");
    cell(tr, String(u.connects));
    cell(tr, String(u.reuses));
    cell(tr, fmt(u.pool_wait_p95_ms, 2));
    rows.push(tr);
  }
  tb.replaceChildren(...rows);
}

function breakers(s) {
  const el = $("breakers");
  el.dataset.open = String(s.breakers_open);
  if (Array.isArray(s.breakers) && s.breakers.length) {
    el.className = "";
    const t = document.createElement("table");
    t.innerHTML = "<thead><tr><th>route</th><th>upstream</th><th>state</th><th>window requests</th>" +
      "<th>window failures</th><th>opens</th></tr></thead>";
    const tb = document.createElement("tbody");
    for (const b of s.breakers) {
      const tr = document.createElement("tr");
      tr.dataset.breaker = String(b.route);
      tr.dataset.state = String(b.state);
      cell(tr, String(b.route)); cell(tr, String(b.upstream || "-"));
      cell(tr, String(b.state), b.state === "closed" ? "" : "bad");
      cell(tr, String(b.requests ?? "-")); cell(tr, String(b.failures ?? "-")); cell(tr, String(b.opens ?? "-"));
      tb.appendChild(tr);
    }
    t.appendChild(tb);
    el.replaceChildren(t);
  } else {
    el.className = "empty";
    text(el, s.breakers_open > 0 ? `${s.breakers_open} open` : "none open");
  }
}

function render(s, pt) {
  text($("uptime"), fmtDur(s.uptime_s));
  text($("restarts"), String(s.worker_restarts));
  const tr = $("t-rps"); tr.dataset.value = pt.rps === null ? "" : pt.rps.toFixed(3); text(tr, fmt(pt.rps, 1));
  const tt = $("t-total"); tt.dataset.value = String(s.requests.total); text(tt, String(s.requests.total));
  const tl = $("t-lat"), L = s.latency_ms;
  tl.dataset.p50 = String(L.p50); tl.dataset.p95 = String(L.p95); tl.dataset.p99 = String(L.p99);
  // each tile: the last minute large, since start beside it (data-value keeps since start)
  const M = lastMinute(s);
  const ml = M ? M.lat : [null, null, null];
  tl.dataset.minute = ml.map((v) => v === null ? "" : v.toFixed(3)).join("/");
  text(tl, ml[0] === null ? "-" : ml.map(fmtLat).join(" / "));
  text($("t-lat-all"), `since start ${fmtLat(L.p50)} / ${fmtLat(L.p95)} / ${fmtLat(L.p99)}`);
  const er = s.requests.total ? 100 * s.requests["5xx"] / s.requests.total : 0;
  const te = $("t-err"); te.dataset.value = er.toFixed(3);
  te.dataset.minute = M && M.err !== null ? M.err.toFixed(3) : "";
  text(te, M && M.err !== null ? fmt(M.err, 2) + " %" : "-");
  text($("t-err-all"), `since start ${fmt(er, 2)} %`);
  const th = $("t-hit"), c = cacheTotals(s.cache);
  th.dataset.minute = M && M.hit !== null ? M.hit.toFixed(3) : "";
  if (c && c.hits + c.misses > 0) { const h = 100 * c.hits / (c.hits + c.misses); th.dataset.value = h.toFixed(3); text(th, M && M.hit !== null ? fmt(M.hit, 2) + " %" : "-"); text($("t-hit-all"), `since start ${fmt(h, 2)} %`); }
  else { th.dataset.value = ""; text(th, c ? "-" : "cache off"); text($("t-hit-all"), ""); }
  const tc = $("t-conns"); tc.dataset.value = String(s.connections.open); text(tc, String(s.connections.open));
  const ts = $("t-shed"); ts.dataset.value = String(s.shed); text(ts, String(s.shed));
  const tb = $("t-brk"); tb.dataset.value = String(s.breakers_open); text(tb, String(s.breakers_open));
  draw("c-rps", ["rps"], "");
  draw("c-lat", ["p50", "p95", "p99"], "ms");
  draw("c-err", ["err"], "%");
  draw("c-hit", ["hit"], "%");
  routes(s);
  pools(s);
  breakers(s);
}
function fmtDur(s) { s = Math.floor(s); const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60; return h ? `${h}h${m}m` : m ? `${m}m${s % 60}s` : `${s}s`; }

// the gateway keeps the last 10 minutes (/stats/history): a reload of the page shows them at once
async function backfill() {
  try {
    const r = await fetch("/stats/history", {cache: "no-store"});
    if (!r.ok) return;
    const h = await r.json();
    for (const p of h.points || []) hist.push({t: p.t_ms, rps: p.rps, p50: p.p50, p95: p.p95, p99: p.p99, err: p.err, hit: p.hit});
    while (hist.length > KEEP) hist.shift();
    $("state").dataset.backfill = String((h.points || []).length);
  } catch (e) { /* an older gateway: start empty */ }
}

async function poll() {
  const st = $("state");
  try {
    const r = await fetch("/stats", {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    const s = await r.json();
    const pt = sample(s, Date.now());
    render(s, pt);
    polls++;
    st.className = "ok"; text(st, "live");
  } catch (e) {
    errors++;
    st.className = "err"; text(st, "cannot read /stats: " + e.message);
  }
  st.dataset.polls = String(polls);
  st.dataset.errors = String(errors);
  setTimeout(poll, 1000);
}
backfill().then(poll);
