#!/usr/bin/env bash
# Issue 16 item 12b, the dashboard's tooltips: hovering a chart's point shows its clock time and
# its value with the unit ("p95: 312 µs", not a raw epoch and "0.312"). Headless Chromium loads
# the real /dashboard through a small proxy that adds one script: it activates the tooltip of
# each chart's last point with a value (what a hover does, through Chart.js' API) and writes the tooltip's
# title and lines into a data-tip attribute, read from the dumped DOM.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || skip "chromium not installed (scripts/deps.sh installs it)"

read -r mport gport aport pport <<<"$(free_ports 4)"
start_mock mock "$mport"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    cache: {ttl: 60s, override: true}
EOF
A=http://127.0.0.1:$aport
"$APIGATE" load -q -c 4 -d 3s "http://127.0.0.1:$gport/api/catalog/products" >/dev/null
# wait until the gateway's history has latency points (a point per second, bounded)
for _ in $(seq 1 50); do
    n=$(curl -s --max-time 5 "$A/stats/history" | jq '[.points[] | select(.p50 != null)] | length')
    [ "${n:-0}" -ge 2 ] && break
    sleep 0.2
done
[ "${n:-0}" -ge 2 ] || fail "no latency history: $(curl -s "$A/stats/history" | head -c 300)"

cat >"$T/probe.js" <<'JS'
// hover each chart's last point with a value through Chart.js' API; write the tooltip into data-tip
const probe = setInterval(() => {
  let done = 0;
  for (const id of ["c-rps", "c-lat"]) {
    const cv = document.getElementById(id), ch = window.Chart && Chart.getChart(cv);
    if (!ch) continue;
    const d = ch.data.datasets[0].data;
    let i = d.length - 1;
    while (i >= 0 && (d[i].y === null || d[i].y === undefined || !d[i].y)) i--; // an idle second: a gap
    if (i < 0) continue;
    ch.tooltip.setActiveElements([{datasetIndex: 0, index: i}], {x: 0, y: 0});
    ch.update();
    const t = ch.tooltip;
    if (!t.title || !t.body) continue;
    cv.setAttribute("data-tip", t.title.join("|") + " # " + t.body.map((b) => b.lines.join(" ")).join("|"));
    done++;
  }
  if (done === 2) clearInterval(probe);
}, 200);
JS
# the proxy: /dashboard with the probe added, everything else from the admin listener
cat >"$T/proxy.py" <<'PY'
import sys, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, admin, probe = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/probe.js":
            body, ctype, code = probe, "application/javascript", 200
        else:
            try:
                r = urllib.request.urlopen(admin + self.path, timeout=10)
                body, ctype, code = r.read(), r.headers.get("Content-Type", ""), r.status
            except urllib.error.HTTPError as e:
                body, ctype, code = e.read(), e.headers.get("Content-Type", ""), e.code
            if self.path == "/dashboard":
                body = body.replace(b"</body>", b'<script src="/probe.js"></script></body>')
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
start_bg proxy python3 "$T/proxy.py" "$pport" "$A" "$T/probe.js"
wait_port "$pport"
grep -q 'probe.js' <(curl -s "http://127.0.0.1:$pport/dashboard") || fail "the proxy did not add the probe"

tip=""
for _ in 1 2 3; do # a loaded machine may need a longer virtual time budget
    timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --disable-extensions \
        --user-data-dir="$(mktemp -d "$T/chrome.XXXX")" --virtual-time-budget=6000 \
        --dump-dom "http://127.0.0.1:$pport/dashboard" >"$T/dom.html" 2>>"$T/chrome.log" || true
    tip=$(grep -o 'id="c-lat"[^>]*data-tip="[^"]*"' "$T/dom.html" || true)
    [ -n "$tip" ] && break
done
rps=$(grep -o 'id="c-rps"[^>]*data-tip="[^"]*"' "$T/dom.html" | sed 's/.*data-tip="//; s/"$//' || true)
lat=$(sed 's/.*data-tip="//; s/"$//' <<<"$tip")
log "tooltips: rps '$rps', latency '$lat'"
[[ "$rps" =~ ^[0-9]{2}:[0-9]{2}:[0-9]{2}\ \#\ rps:\ [0-9.,]+$ ]] || fail "RPS tooltip: '$rps' ($(tail -3 "$T/chrome.log"))"
[[ "$lat" =~ ^[0-9]{2}:[0-9]{2}:[0-9]{2}\ \#\ p50:\ [0-9.]+\ (µs|ms|s)$ ]] || fail "latency tooltip: '$lat'"
log "ok"
