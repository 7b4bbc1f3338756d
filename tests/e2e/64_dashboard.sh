#!/usr/bin/env bash
# The /dashboard page in a real browser: the gateway serves it from the admin listener (with
# Chart.js and the page's script, embedded in the binary, cached by ETag), load goes
# through two routes (one with 5xx, one cached), then headless Chromium runs the page's JS for a
# few (virtual) seconds and we read back the DOM: the route table shows the request counts and
# errors of /stats, the tiles show its totals, the charts drew points. A screenshot is left in
# $AG_BUILD/dashboard.png for a person to look at.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || fail "chromium not installed (scripts/deps.sh installs it)"

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /api/users, body_size: 512}
  - {method: GET, path: /api/fail, status: 500}
  - {method: GET, path: /api/cached, body_size: 256, headers: {Cache-Control: 'max-age=60'}}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
cache: {memory: 16MB}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /api/users
    upstream: api
  - match: /api/fail
    upstream: api
    breaker: {min_requests: 5, error_threshold: 50%, open_for: 1h}
  - match: /api/cached
    upstream: api
    cache: {ttl: 60s}
EOF
A=http://127.0.0.1:$aport

log "the page is served, self-contained (no external URL)"
page=$(curl -s --max-time 10 -D "$T/dash.h" "$A/dashboard")
assert_contains "$(cat "$T/dash.h")" "text/html" "content type"
assert_contains "$page" "<canvas" "canvas charts"
if grep -Eq '(src|href)="(https?:)?//' <<<"$page"; then fail "dashboard references an external URL"; fi

log "its scripts come from the admin listener: Chart.js (embedded at build time) and the page's"
for js in /dashboard/chart.js /dashboard/app.js; do
    assert_contains "$page" "<script src=\"$js\"></script>" "page loads $js"
    code=$(curl -s --max-time 10 -D "$T/js.h" -o "$T/js.body" -w '%{http_code}' "$A$js")
    assert_eq "$code" 200 "GET $js"
    h=$(tr -d '\r' <"$T/js.h")
    assert_contains "$h" "Content-Type: text/javascript" "$js content type"
    assert_contains "$h" "Cache-Control: no-cache" "$js revalidated, not refetched"
    etag=$(awk -F': ' 'tolower($1) == "etag" { print $2 }' <<<"$h")
    [[ "$etag" =~ ^\"[0-9a-f]{16}\"$ ]] || fail "$js ETag '$etag'"
    assert_eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$A$js")" 304 "$js with its ETag"
    assert_eq "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'If-None-Match: "0000000000000000"' "$A$js")" 200 "$js with another ETag"
done
head -c 200 "$T/js.body" | grep -q 'apigate dashboard' || fail "app.js is not the dashboard script"
curl -s --max-time 10 -o "$T/chart.js" "$A/dashboard/chart.js"
head -c 300 "$T/chart.js" | grep -q 'Chart.js v[0-9]' || fail "/dashboard/chart.js is not Chart.js: $(head -c 200 "$T/chart.js")"
head -c 300 "$T/chart.js" | grep -q 'MIT' || fail "Chart.js without its licence banner"

log "load: users (200), fail (500), cached (hits)"
"$APIGATE" load -q -c 4 -d 1s "http://127.0.0.1:$gport/api/users" >/dev/null
for _ in $(seq 1 17); do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$gport/api/fail"; done
for _ in $(seq 1 30); do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$gport/api/cached"; done

stats=$(curl -s --max-time 10 "$A/stats")
count_of() { jq -r --arg r "$1" '.routes[] | select(.route == $r) | .count' <<<"$stats"; }
users=$(count_of /api/users)
fails=$(count_of /api/fail)
cached=$(count_of /api/cached)
[ "$users" -gt 10 ] || fail "too little load on /api/users: $users"
assert_eq "$fails" 17 "/api/fail count in /stats"
assert_eq "$cached" 30 "/api/cached count in /stats"

# The history gets a point each second for the requests completed since the last one: wait for
# the tick that closes the second of the last requests above, so that the history the page reads
# when it loads is the one read after it (no request comes in between).
lat_points() { curl -s --max-time 10 "$A/stats/history" | jq '[.points[] | select(.p50 != null)] | length'; }
prev=$(lat_points)
for _ in $(seq 1 10); do
    sleep 1.2
    cur=$(lat_points)
    [ "$cur" = "$prev" ] && break
    prev=$cur
done

log "headless Chromium: run the page's polling for 6 s of virtual time"
chrome() {
    timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --disable-extensions \
        --user-data-dir="$(mktemp -d "$T/chrome.XXXX")" "$@" 2>>"$T/chrome.log"
}
chrome --virtual-time-budget=6000 --dump-dom "$A/dashboard" >"$T/dom.html" ||
    fail "chromium failed: $(tail -5 "$T/chrome.log")"
[ -s "$T/dom.html" ] || fail "empty DOM dump: $(tail -5 "$T/chrome.log")"

# Reads the rendered DOM: attributes of the elements the page's JS filled in.
python3 - "$T/dom.html" >"$T/dom.json" <<'PY'
import json, sys
from html.parser import HTMLParser
out = {"rows": {}, "pools": {}, "ids": {}, "cells": {}}
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.row = None
        self.col = 0
        self.td = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            out["ids"][a["id"]] = a
        if tag == "tr" and "data-route" in a:
            self.row = a["data-route"]
            out["rows"][self.row] = dict(a)
            out["cells"][self.row] = []
        if tag == "tr" and "data-upstream" in a:
            out["pools"][a["data-upstream"]] = dict(a)
        if tag == "td" and self.row is not None:
            self.td = True
            out["cells"][self.row].append("")
    def handle_endtag(self, tag):
        if tag == "td":
            self.td = False
        if tag == "tr":
            self.row = None
    def handle_data(self, d):
        if self.td and self.row is not None:
            out["cells"][self.row][-1] += d
P().feed(open(sys.argv[1]).read())
print(json.dumps(out))
PY
dom=$(cat "$T/dom.json")
polls=$(jq -r '.ids.state["data-polls"]' <<<"$dom")
[ "$polls" -ge 2 ] || fail "the page polled /stats $polls times (want ≥ 2); DOM: $(head -c 600 "$T/dom.html")"
assert_eq "$(jq -r '.ids.state["data-errors"]' <<<"$dom")" 0 "poll errors"

log "route table = /stats (calls in the cell text and data-count, errors)"
for r in /api/users /api/fail /api/cached; do
    want=$(count_of "$r")
    assert_eq "$(jq -r --arg r "$r" '.rows[$r]["data-count"]' <<<"$dom")" "$want" "data-count of $r"
    assert_eq "$(jq -r --arg r "$r" '.cells[$r][2]' <<<"$dom")" "$want" "calls cell of $r"
done
assert_eq "$(jq -r '.cells["/api/fail"][6]' <<<"$dom")" 17 "errors cell of /api/fail"
assert_eq "$(jq -r '.cells["/api/users"][6]' <<<"$dom")" 0 "errors cell of /api/users"
p95_stats=$(jq -r '.routes[] | select(.route == "/api/users") | .p95_ms' <<<"$stats")
p95_cell=$(jq -r '.cells["/api/users"][4]' <<<"$dom")
awk -v a="$p95_stats" -v b="$p95_cell" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.01) }' ||
    fail "p95 cell $p95_cell != /stats $p95_stats"

log "tiles = /stats totals; error rate and hit ratio as computed from /stats"
total=$(jq -r .requests.total <<<"$stats")
assert_eq "$(jq -r '.ids["t-total"]["data-value"]' <<<"$dom")" "$total" "total tile"
err_want=$(jq -r '100 * .requests["5xx"] / .requests.total' <<<"$stats")
err_got=$(jq -r '.ids["t-err"]["data-value"]' <<<"$dom")
awk -v a="$err_want" -v b="$err_got" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.001 && b > 0) }' ||
    fail "error rate tile $err_got != $err_want"
hits=$(jq -r .cache.hits <<<"$stats")
misses=$(jq -r .cache.misses <<<"$stats")
[ "$hits" -ge 28 ] || fail "expected cache hits on /api/cached, got $hits"
hit_got=$(jq -r '.ids["t-hit"]["data-value"]' <<<"$dom")
awk -v h="$hits" -v m="$misses" -v b="$hit_got" 'BEGIN { a = 100 * h / (h + m); d = a - b; if (d < 0) d = -d; exit !(d < 0.001) }' ||
    fail "hit ratio tile $hit_got != 100*$hits/($hits+$misses)"
assert_eq "$(jq -r '.ids["t-lat"]["data-p95"]' <<<"$dom")" "$(jq -r .latency_ms.p95 <<<"$stats")" "p95 tile"

log "breakers: the open one is shown as /stats has it"
assert_eq "$(jq -r '.breakers_open' <<<"$stats")" 1 "/stats breakers_open"
bstate=$(jq -r '.breakers[] | select(.route == "/api/fail") | .state' <<<"$stats")
assert_eq "$bstate" open "/stats breaker state of /api/fail"
grep -q "data-breaker=\"/api/fail\" data-state=\"$bstate\"" "$T/dom.html" ||
    fail "breaker row of /api/fail with state $bstate not in the DOM"
assert_eq "$(jq -r '.ids["t-brk"]["data-value"]' <<<"$dom")" 1 "breakers tile"

log "charts drew their series (idle now: RPS 0, no latency sample, no 5xx)"
pts=$(jq -r '.ids["c-rps"]["data-points"]' <<<"$dom")
[ "$pts" -ge 1 ] || fail "RPS chart drew $pts points"
assert_eq "$(jq -r '.ids["c-rps"]["data-last"]' <<<"$dom")" 0.000 "RPS drawn while idle"
# the page's latency points come from the gateway's history (the seconds of the requests above),
# none from the idle polls since: every drawn one is a history point with a p50
bf0=$(jq -r '.ids.state["data-backfill"]' <<<"$dom")
[ "$bf0" -ge 1 ] || fail "no history read by the page (data-backfill '$bf0')"
lat_pts=$(jq -r '.ids["c-lat"]["data-points"]' <<<"$dom")
hist_lat=$(lat_points)
assert_eq "$lat_pts" "$hist_lat" "latency points = the history's seconds with requests (none while idle)"
assert_eq "$(jq -r '.pools.api["data-idle"] != null' <<<"$dom")" true "pool row of upstream api"

log "while load runs, the RPS chart and the latency chart show it (and the screenshot)"
"$APIGATE" load -q -c 2 -d 10s "http://127.0.0.1:$gport/api/users" >"$T/load2.txt" &
lp=$!
# alongside: cache hits only (the entry is fresh for 60 s) and 503s from the open breaker
( while :; do
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$gport/api/cached"
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$gport/api/fail"
done ) &
mix=$!
sleep 0.5
chrome --virtual-time-budget=4000 --dump-dom "$A/dashboard" >"$T/dom2.html" || true
rm -f "$AG_BUILD/dashboard.png"
chrome --virtual-time-budget=5000 --window-size=1400,900 --screenshot="$AG_BUILD/dashboard.png" \
    "$A/dashboard" >/dev/null || fail "screenshot failed: $(tail -5 "$T/chrome.log")"
kill "$mix" 2>/dev/null || true
wait "$mix" 2>/dev/null || true
wait "$lp" || true
python3 - "$T/dom2.html" <<'PY' >"$T/dom2.txt"
import re, sys
d = open(sys.argv[1]).read()
for cid in ("c-rps", "c-lat", "c-err", "c-hit", "t-err", "t-lat", "t-hit"):
    m = re.search(r'id="%s"[^>]*' % cid, d)
    print(cid, m.group(0) if m else "missing")
m = re.search(r'id="t-lat"[^>]*>([^<]*)<', d)
print("t-lat-text", m.group(1) if m else "missing")
PY
# The peak, not the last point: Chrome's virtual time runs ahead of the clock, so two polls may
# be milliseconds apart in real time and the last interval hold almost no requests (CI drew 0.99
# while the load ran at 16.8k req/s, after a 383 peak).
rps_peak=$(grep '^c-rps' "$T/dom2.txt" | sed -nE 's/.*data-peak="([0-9.]*)".*/\1/p')
[ -n "$rps_peak" ] || fail "RPS chart has no value under load: $(cat "$T/dom2.txt")"
awk -v v="$rps_peak" 'BEGIN { exit !(v > 10) }' || fail "RPS under load drawn at most $rps_peak"
lat_last=$(grep '^c-lat' "$T/dom2.txt" | sed -nE 's/.*data-last="([0-9.]*)".*/\1/p')
[ -n "$lat_last" ] || fail "latency chart has no windowed p50 under load: $(cat "$T/dom2.txt")"
# per-interval values: every interval with cache traffic is 100% hits; some interval saw the 503s
hit_peak=$(grep '^c-hit' "$T/dom2.txt" | sed -nE 's/.*data-peak="([0-9.]*)".*/\1/p')
assert_eq "$hit_peak" 100.000 "hit ratio chart while only hits happen ($(cat "$T/dom2.txt"))"
hit_last=$(grep '^c-hit' "$T/dom2.txt" | sed -nE 's/.*data-last="([0-9.]*)".*/\1/p')
assert_eq "$hit_last" 100.000 "last hit ratio drawn"
err_peak=$(grep '^c-err' "$T/dom2.txt" | sed -nE 's/.*data-peak="([0-9.]*)".*/\1/p')
awk -v v="$err_peak" 'BEGIN { exit !(v > 0 && v < 100) }' ||
    fail "error rate chart under mixed load peaks at '$err_peak' ($(cat "$T/dom2.txt"))"

# the last-minute tiles (since start stays in data-value), latency with its unit (a sub-ms p50
# reads in µs, not 0.0), an adaptive scale for a small error rate, times under the axis
grep '^t-err' "$T/dom2.txt" | grep -Eq 'data-minute="[0-9.]+"' || fail "no last-minute error rate: $(grep '^t-err' "$T/dom2.txt")"
# (the cache sees a few curl requests a second: with virtual time, the polls of the minute may be
# milliseconds apart and hold no lookup, then the tile shows "-"; when it has a value, only hits)
grep '^t-hit' "$T/dom2.txt" | grep -Eq 'data-minute="(100.000)?"' || fail "last-minute hit ratio not 100% of hits: $(grep '^t-hit' "$T/dom2.txt")"
grep '^t-lat-text' "$T/dom2.txt" | grep -Eq '[0-9] (µs|ms) / ' || fail "latency tile without units: $(grep '^t-lat-text' "$T/dom2.txt")"
grep '^c-rps' "$T/dom2.txt" | grep -Eq 'data-xticks="[0-9]{2}:[0-9]{2}:[0-9]{2}' || fail "no times under the RPS chart: $(grep '^c-rps' "$T/dom2.txt")"
# time ticks fall on whole steps (a minute of history: every 15 s), y ticks carry their unit
xt=$(grep '^c-rps' "$T/dom2.txt" | sed -nE 's/.*data-xticks="([^"]*)".*/\1/p')
for t in ${xt//|/ }; do [[ "$t" =~ :[0-5][05]$ ]] || fail "time tick $t not on a 5 s step ($xt)"; done
grep '^c-err' "$T/dom2.txt" | grep -Eq 'data-yticks="0\|[0-9.]+ %' || fail "5xx axis not labelled in %: $(grep '^c-err' "$T/dom2.txt")"
grep '^c-lat' "$T/dom2.txt" | grep -Eq 'data-yticks="0\|[0-9.]+ (µs|ms|s)' || fail "latency axis without units: $(grep '^c-lat' "$T/dom2.txt")"
err_max=$(grep '^c-err' "$T/dom2.txt" | sed -nE 's/.*data-max="([0-9.]*)".*/\1/p')
awk -v m="$err_max" -v p="$err_peak" 'BEGIN { exit !(m >= p && m <= 100 && (p > 40 || m < 100)) }' ||
    fail "error rate axis not adapted: max $err_max for a peak of $err_peak"

log "history kept by the gateway: /stats/history, and a fresh page starts with it"
hist=$(curl -s --max-time 10 "$A/stats/history")
npts=$(jq '.points | length' <<<"$hist")
[ "$npts" -ge 5 ] || fail "/stats/history has $npts points: $hist"
[ "$(jq '[.points[].rps] | max > 10' <<<"$hist")" = true ] || fail "/stats/history never saw the load: $hist"
[ "$(jq '[.points[] | select(.p95 != null)] | length > 0' <<<"$hist")" = true ] || fail "no per-second p95 in the history"
[ "$(jq '[.points[].t_ms] | . == sort' <<<"$hist")" = true ] || fail "history not in time order"
chrome --virtual-time-budget=800 --dump-dom "$A/dashboard" >"$T/dom3.html" || true
bf=$(grep -o 'data-backfill="[0-9]*"' "$T/dom3.html" | grep -o '[0-9]*' || true)
[ "${bf:-0}" -ge 5 ] || fail "the page did not start from the gateway's history (data-backfill '$bf')"
pts3=$(grep -o 'id="c-rps"[^>]*' "$T/dom3.html" | sed -nE 's/.*data-points="([0-9]*)".*/\1/p')
[ "${pts3:-0}" -ge 5 ] || fail "a fresh page draws $pts3 RPS points, not the history"

[ -s "$AG_BUILD/dashboard.png" ] || fail "no screenshot written"
log "dashboard ok (screenshot: $AG_BUILD/dashboard.png)"
