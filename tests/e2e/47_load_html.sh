#!/usr/bin/env bash
# The HTML report is a self-contained page (no external URL at all) whose script draws every
# chart: rendered in headless Chromium, the dumped DOM shows data-drawn="N" on each canvas with N
# matching the run (one point per second for the time charts, one per histogram bucket for the
# distribution), the tables are there, a failed run has its verdict banner on top, the time axis
# has whole ticks, the open model shows the requested rate, each endpoint has its own series of
# requests/s and p95 over time, every axis has a title, and a screenshot is kept. The charts are
# Chart.js, inlined from the binary (embedded at build time).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd chromium jq

port=$(free_port)
start_mock mock "$port"
cat >"$T/s.yaml" <<YAML
base_url: http://127.0.0.1:$port/api
stages:
  - {duration: 2s, target: 6}
  - {duration: 1s, target: 6}
requests:
  - name: products
    path: /catalog/products
    checks: [{status: 200}]
  - name: health
    path: /health
thresholds:
  http_req_duration: ['p(95)<500']
  'http_req_duration{name:products}': ['p(95)<1']
YAML
rc=0
"$APIGATE" load run "$T/s.yaml" -q --html "$T/report.html" --json "$T/report.json" >/dev/null || rc=$?
assert_eq "$rc" 99 "exit code (the products threshold of 1 ms is meant to fail)"
[ -s "$T/report.html" ] || fail "no HTML written"
html=$(cat "$T/report.html")
# self-contained: no http(s) reference except the target URL shown in the text and data
if grep -Eo '(src|href)=["'"'"']?[a-z]+://' "$T/report.html" | grep -q .; then
    fail "the page loads something from the network"
fi
assert_contains "$html" "<canvas id=chart-rps>"
assert_contains "$html" "products"

chrome() {
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$T/chrome" \
        --virtual-time-budget=5000 "$@" 2>>"$T/chromium.log"
}
chrome --dump-dom "file://$T/report.html" >"$T/dom.html" || fail "chromium --dump-dom failed: $(tail -5 "$T/chromium.log")"
dom=$(cat "$T/dom.html")
assert_contains "$dom" 'data-charts="done"' "the script ran to the end"
drawn() { grep -o "id=\"$1\"[^>]*data-drawn=\"[0-9]*\"" "$T/dom.html" | grep -o 'data-drawn="[0-9]*"' | grep -o '[0-9]*'; }
secs=$(jq '[.series[] | select(.t < 3)] | length' "$T/report.json")
assert_eq "$(drawn chart-rps)" "$secs" "points on the RPS chart"
assert_eq "$(drawn chart-latency)" $((3 * secs)) "points on the latency chart (p50, p95, p99)"
assert_eq "$(drawn chart-errors)" $((2 * secs)) "points on the errors chart (errors, dropped)"
assert_eq "$(drawn chart-vus)" "$secs" "points on the VUs chart"
buckets=$(jq '.hist.buckets | length' "$T/report.json")
assert_eq "$(drawn chart-dist)" "$buckets" "points on the distribution chart"
# per endpoint: each its own series of requests/s and p95, second by second, from the JSON
attr() { grep -o "id=\"$1\"[^>]*data-$2=\"[^\"]*\"" "$T/dom.html" | sed "s/.*data-$2=\"//; s/\"\$//"; }
for ep in products health; do
    n=$(jq --arg e "$ep" '[.endpoints[] | select(.name == $e) | .series[] | select(.t < 3)] | length' "$T/report.json")
    [ "$n" -ge 2 ] || fail "endpoint $ep has $n seconds in the JSON series: $(jq -c '.endpoints' "$T/report.json" | head -c 300)"
    tot=$(jq --arg e "$ep" '[.endpoints[] | select(.name == $e) | .series[].rps] | add' "$T/report.json")
    assert_eq "$tot" "$(jq --arg e "$ep" '.endpoints[] | select(.name == $e) | .requests' "$T/report.json")" "$ep: its seconds add up to its requests"
done
ep_pts=$(jq '[.endpoints[].series[] | select(.t < 3)] | length' "$T/report.json")
assert_eq "$(drawn chart-ep-rps)" "$ep_pts" "points on the per-endpoint requests/s chart"
assert_eq "$(drawn chart-ep-p95)" "$ep_pts" "points on the per-endpoint p95 chart"
assert_eq "$(attr chart-ep-rps series)" "products|health" "one series per endpoint"
# labelled axes: every chart says what its axes are
assert_eq "$(attr chart-rps xtitle)" "time since start" "x axis title"
assert_eq "$(attr chart-rps ytitle)" "requests/s" "y axis title"
assert_eq "$(attr chart-ep-p95 ytitle)" "p95 latency" "per-endpoint p95 axis title"
assert_eq "$(attr chart-dist xtitle)" "latency (log scale)" "distribution axis title"
# the tables: thresholds with their marks, endpoints
assert_contains "$dom" "p(95)&lt;1"
grep -q "class=\"l bad\">✗" "$T/dom.html" || fail "no failed threshold mark in the DOM"
grep -q "class=\"l ok\">✓" "$T/dom.html" || fail "no passed threshold mark in the DOM"
assert_contains "$dom" "<td class=\"l\">health</td>"

# the verdict on top: a failed run reads as failed before any scrolling
grep -q "<div id=\"verdict\" class=\"banner fail\">FAILED: 1 of 2 thresholds failed (exit 99)</div>" "$T/dom.html" ||
    fail "no failed verdict banner: $(grep -o '<div id="verdict"[^<]*' "$T/dom.html")"
assert_eq "$(jq -r '.verdict.text' "$T/report.json")" "FAILED: 1 of 2 thresholds failed (exit 99)" "verdict in the JSON"
# labelled axes: whole seconds on the time axis, "0" (not "0 µs") at the bottom of the latency axis
ticks() { grep -o "id=\"$1\"[^>]*data-$2=\"[^\"]*\"" "$T/dom.html" | sed "s/.*data-$2=\"//; s/\"\$//"; }
assert_eq "$(ticks chart-rps xticks)" "1s|1.5s|2s|2.5s|3s" "time axis of the RPS chart"
yl=$(ticks chart-latency yticks)
[[ "$yl" == 0\|* ]] || fail "latency axis does not start at 0: $yl"
assert_not_contains "$yl" "µs|0 µs"

shot="$AG_BUILD/load-report.png"
chrome --window-size=1280,1600 --screenshot="$shot" "file://$T/report.html" >/dev/null ||
    fail "chromium --screenshot failed"
[ -s "$shot" ] || fail "no screenshot at $shot"
log "screenshot: $shot"

log "open model: the requested rate is on the page and on the RPS chart (dashed)"
"$APIGATE" load -q -c 20 --rate 50/s -d 2s --html "$T/open.html" "http://127.0.0.1:$port/api/health" >/dev/null
assert_contains "$(cat "$T/open.html")" "requested 50.0/s"
chrome --dump-dom "file://$T/open.html" >"$T/open.dom" || fail "chromium --dump-dom failed"
grep -q 'id="verdict" class="banner pass">PASSED' "$T/open.dom" || fail "no passed verdict: $(grep -o '<div id="verdict"[^<]*' "$T/open.dom")"
secs=$(grep -o 'id="chart-rps"[^>]*data-drawn="[0-9]*"' "$T/open.dom" | grep -o 'data-drawn="[0-9]*"' | grep -o '[0-9]*')
[ "$secs" -ge 4 ] || fail "RPS chart without the requested line: $secs points"

log "a ramp of the arrival rate: the requested line follows it second by second"
cat >"$T/ramp.yaml" <<YAML
base_url: http://127.0.0.1:$port/api
executor: arrival_rate
start_rate: 20/s
stages:
  - {duration: 2s, target: 60/s}
pre_allocated_vus: 10
max_vus: 20
requests:
  - {name: health, path: /health}
YAML
"$APIGATE" load run "$T/ramp.yaml" -q --json "$T/ramp.json" --html "$T/ramp.html" >/dev/null
# the plan asks 20 + 40 t/2 per second: 30 in the first second, 50 in the second
assert_eq "$(jq -c '[.series[] | select(.t < 2) | .requested | round]' "$T/ramp.json")" "[30,50]" "requested per second"
chrome --dump-dom "file://$T/ramp.html" >"$T/ramp.dom" || fail "chromium --dump-dom failed"
grep -q 'id="chart-rps"[^>]*data-drawn="4"[^>]*data-series="requests/s|requested (peak 60/s)"' "$T/ramp.dom" ||
    fail "RPS chart of the ramp: $(grep -o 'id="chart-rps"[^>]*' "$T/ramp.dom")"
log "ok"
