#!/usr/bin/env bash
# apigate load compare: the before/after table marks a faster run better and a slower one worse;
# --fail-on 'p95>+10%' exits 1 when the last run got worse than the first beyond the limit; three
# runs give one column per run with the change from the first, as text, --json and --html.
# apigate load merge: reports of several generators add up (requests, histogram counts, statuses),
# the merged percentiles come from the merged histogram, and thresholds are evaluated again on
# the whole (exit 99 when the merged run fails one).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq chromium

cat >"$T/p.yaml" <<'YAML'
routes:
  - {method: GET, path: /slow, latency: 30ms}
  - {method: GET, path: /fast, latency: 2ms}
YAML
port=$(free_port)
start_mock mock "$port" --profile "$T/p.yaml"

"$APIGATE" load -q -c 8 -d 2s --json "$T/before.json" "http://127.0.0.1:$port/slow" >/dev/null
"$APIGATE" load -q -c 8 -d 2s --json "$T/after.json" "http://127.0.0.1:$port/fast" >/dev/null

log "compare before → after"
out=$("$APIGATE" load compare "$T/before.json" "$T/after.json")
echo "$out" >"$T/compare.out"
grep -Eq '^ +requests/s .* better$' <<<"$out" || fail "requests/s not better: $out"
grep -Eq '^ +latency p95 .* better$' <<<"$out" || fail "p95 not better: $out"
grep -Eq '^ +latency p50 .*-[0-9.]+% +better$' <<<"$out" || fail "p50 delta not negative: $out"
grep -Eq '^ +error rate .* same$' <<<"$out" || fail "error rate not same: $out"
assert_contains "$out" "requests under 500ms"
log "compare after → before"
out=$("$APIGATE" load compare "$T/after.json" "$T/before.json")
grep -Eq '^ +latency p99 .* worse$' <<<"$out" || fail "p99 not worse: $out"
grep -Eq '^ +requests/s .* worse$' <<<"$out" || fail "requests/s not worse: $out"

log "compare --fail-on: exit 1 when the last run got worse than the first beyond the limit"
rc=0
"$APIGATE" load compare "$T/after.json" "$T/before.json" --fail-on 'p95>+10%' >"$T/f.out" 2>"$T/f.err" || rc=$?
assert_eq "$rc" 1 "p95 got worse (2 ms -> 30 ms) with --fail-on p95>+10%"
grep -Eq '✗ p95>\+10%: \+[0-9.]+%' "$T/f.out" || fail "no ✗ line: $(cat "$T/f.out")"
assert_contains "$(cat "$T/f.err")" "FAILED: a --fail-on rule was broken"
rc=0
"$APIGATE" load compare "$T/before.json" "$T/after.json" --fail-on 'p95>+10%' --fail-on 'rps<-5%' \
    --fail-on 'error_rate>+0.5pp' >"$T/f.out" 2>&1 || rc=$?
assert_eq "$rc" 0 "everything better: no rule broken"
rc=0
"$APIGATE" load compare "$T/after.json" "$T/before.json" --fail-on 'rps<-5%' >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 1 "requests/s fell with --fail-on rps<-5%"
for bad in 'p95' 'p95>10' 'p95>+10pp' 'latency>+10%'; do
    rc=0
    "$APIGATE" load compare "$T/after.json" "$T/before.json" --fail-on "$bad" >/dev/null 2>"$T/bad.err" || rc=$?
    assert_eq "$rc" 2 "--fail-on '$bad' is bad usage ($(cat "$T/bad.err"))"
done
assert_contains "$(cat "$T/bad.err")" "no metric 'latency' in these runs; known: rps,"

log "compare of three runs: one column per run, the change from the first; --json and --html"
"$APIGATE" load -q -c 8 -d 1s --json "$T/mid.json" "http://127.0.0.1:$port/slow" >/dev/null
out=$("$APIGATE" load compare "$T/before.json" "$T/mid.json" "$T/after.json" --json "$T/c3.json" --html "$T/c3.html")
echo "$out" >"$T/compare3.out"
assert_contains "$out" "#3: $T/after.json"
grep -Eq '^ +latency p95 +[0-9.]+ ms +[0-9.]+ ms \([-+][0-9.]+%\) +[0-9.]+ ms \(-[0-9.]+%\) +better$' <<<"$out" ||
    fail "no 3-column p95 row: $out"
assert_eq "$(jq '.runs | length' "$T/c3.json")" 3 "runs in the compare JSON"
assert_eq "$(jq -r '.metrics[] | select(.key == "p95") | .verdict[2]' "$T/c3.json")" better "p95 verdict of run 3"
assert_eq "$(jq '.metrics[] | select(.key == "p95") | .change[0]' "$T/c3.json")" null "no change for run 1"
[ "$(jq '.metrics[] | select(.key == "p95") | .change[2] < -50' "$T/c3.json")" = true ] || fail "p95 change: $(jq -c '.metrics[] | select(.key == "p95")' "$T/c3.json")"
assert_eq "$(jq '.failed' "$T/c3.json")" false "no rule, not failed"
assert_contains "$(cat "$T/c3.html")" "id=compare-data"
assert_contains "$(cat "$T/c3.html")" "class='banner pass'"
"$APIGATE" load compare "$T/after.json" "$T/before.json" --fail-on 'p95>+10%' --html "$T/cf.html" >/dev/null 2>&1 || true
assert_contains "$(cat "$T/cf.html")" "FAILED: a --fail-on rule was broken"
# chromium makes its singleton socket under $TMPDIR and a Unix socket path holds 107 bytes: under
# $T (inside the build directory) a checkout in a deep directory failed ("Socket path too long")
chrome_tmp=$(mktemp -d /tmp/ag-chromium.XXXXXX)
# the page's script fills the table and draws the runs overlaid (one series per run)
TMPDIR=$chrome_tmp timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --virtual-time-budget=5000 --dump-dom "file://$T/c3.html" >"$T/c3.dom" 2>>"$T/chromium.log" ||
    fail "chromium --dump-dom failed: $(tail -5 "$T/chromium.log")"
assert_contains "$(cat "$T/c3.dom")" 'data-charts="done"'
grep -q 'data-key="p95"><td class="l">latency p95</td><td>[0-9.]* ms</td><td>[0-9.]* ms ([-+][0-9.]*%)' "$T/c3.dom" ||
    fail "compare page: no p95 row with its change"
[ "$(grep -o 'data-drawn="[0-9]*"' "$T/c3.dom" | wc -l)" -eq 3 ] || fail "compare page: not 3 charts drawn"
# overlaid: one series per run on each chart, labelled axes with whole time ticks
grep -q 'id="chart-p95"[^>]*data-ytitle="p95 latency"[^>]*data-series="#1 before.json|#2 mid.json|#3 after.json"' "$T/c3.dom" ||
    fail "compare page: p95 chart without the three runs: $(grep -o 'id="chart-p95"[^>]*' "$T/c3.dom")"
xt=$(grep -o 'id="chart-rps"[^>]*data-xticks="[^"]*"' "$T/c3.dom" | sed 's/.*data-xticks="//; s/"$//')
[[ "$xt" =~ ^[0-9.]+s(\|[0-9.]+s)+$ ]] || fail "compare page: time ticks '$xt'"
# the before/after page with a broken rule: the FAILED banner in the DOM, and a screenshot kept
TMPDIR=$chrome_tmp timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --virtual-time-budget=5000 --dump-dom "file://$T/cf.html" >"$T/cf.dom" 2>>"$T/chromium.log" ||
    fail "chromium --dump-dom failed"
grep -q 'id="verdict" class="banner fail">FAILED' "$T/cf.dom" || fail "compare page: no FAILED banner"
grep -q '<td class="l bad">✗</td><td class="l">p95&gt;+10%</td>' "$T/cf.dom" || fail "compare page: no broken rule row"
rm -f "$AG_BUILD/load-compare.png"
TMPDIR=$chrome_tmp timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --virtual-time-budget=5000 --window-size=1280,1200 --screenshot="$AG_BUILD/load-compare.png" \
    "file://$T/c3.html" >/dev/null 2>>"$T/chromium.log" || fail "chromium --screenshot failed"
[ -s "$AG_BUILD/load-compare.png" ] || fail "no compare screenshot"
rm -rf "$chrome_tmp"
log "merge of two generators"
"$APIGATE" load -q -c 4 -d 2s --json "$T/a.json" "http://127.0.0.1:$port/fast" >/dev/null &
pa=$!
"$APIGATE" load -q -c 4 -d 2s --json "$T/b.json" "http://127.0.0.1:$port/fast" >/dev/null &
pb=$!
wait $pa
wait $pb
rc=0
"$APIGATE" load merge "$T/a.json" "$T/b.json" --json "$T/m.json" >"$T/m.out" || rc=$?
assert_eq "$rc" 0 "merge exit code"
ra=$(jq '.totals.requests' "$T/a.json")
rb=$(jq '.totals.requests' "$T/b.json")
assert_eq "$(jq '.totals.requests' "$T/m.json")" $((ra + rb)) "merged requests"
assert_eq "$(jq '.hist.count' "$T/m.json")" $((ra + rb)) "merged histogram count"
assert_eq "$(jq '.status["200"]' "$T/m.json")" $((ra + rb)) "merged 200s"
assert_eq "$(jq '.machines' "$T/m.json")" 2 "machines"
assert_contains "$(cat "$T/m.out")" "merged from 2 runs"
# the merged p50 lies between the two runs' p50s (it is the p50 of all their requests)
lo=$(jq -n --slurpfile a "$T/a.json" --slurpfile b "$T/b.json" '[$a[0].latency_ms.med, $b[0].latency_ms.med] | min')
hi=$(jq -n --slurpfile a "$T/a.json" --slurpfile b "$T/b.json" '[$a[0].latency_ms.med, $b[0].latency_ms.med] | max')
assert_range "$(jq '.latency_ms.med' "$T/m.json")" "$lo" "$hi" "merged p50"
log "runs of another target or scenario are refused, or labelled with --allow-mixed"
rc=0
"$APIGATE" load merge "$T/before.json" "$T/after.json" >"$T/mix.out" 2>"$T/mix.err" || rc=$?
assert_eq "$rc" 2 "merge of /slow and /fast"
assert_contains "$(cat "$T/mix.err")" "is not a part of the same test as $T/before.json: another target"
# merging a slow and a fast run: the merged p99 is the slow one's tail, not an average
"$APIGATE" load merge "$T/before.json" "$T/after.json" --allow-mixed --json "$T/mix.json" >/dev/null
assert_eq "$(jq -r '.target' "$T/mix.json")" "mixed: http://127.0.0.1:$port/slow + http://127.0.0.1:$port/fast" "mixed label"
# (an average of the two would be far under 30 ms; the slow run's own tail, not a fixed 40 ms, is
# the upper bound: on a loaded machine its 30 ms requests can take much longer)
assert_range "$(jq '.latency_ms.p99' "$T/mix.json")" 30 "$(jq '.latency_ms.max' "$T/before.json")" "merged p99 of slow+fast"

log "k6 habits: -u/--vus, --summary-export in k6's JSON summary shape"
"$APIGATE" load -q -u 3 -d 1s --threshold 'http_req_duration: p(95)<1000' --threshold 'http_reqs: count<1' \
    --json "$T/k.json" --summary-export "$T/k6.json" "http://127.0.0.1:$port/fast" >/dev/null 2>&1 || true
assert_eq "$(jq '.vus_max' "$T/k.json")" 3 "-u 3"
assert_eq "$(jq '.metrics.http_reqs.count' "$T/k6.json")" "$(jq '.totals.requests' "$T/k.json")" "k6 http_reqs.count"
assert_eq "$(jq '.metrics.http_req_duration["p(95)"] == $k[0].latency_ms.p95' --slurpfile k "$T/k.json" "$T/k6.json")" true "k6 p(95)"
assert_eq "$(jq '.metrics.http_req_duration.thresholds["p(95)<1000"]' "$T/k6.json")" false "passed threshold (k6: false)"
assert_eq "$(jq '.metrics.http_reqs.thresholds["count<1"]' "$T/k6.json")" true "failed threshold (k6: true)"
assert_eq "$(jq '.metrics.http_req_failed | [.passes, .value]' -c "$T/k6.json")" "[0,0]" "http_req_failed rate"
assert_eq "$(jq '.metrics.vus_max.value' "$T/k6.json")" 3 "vus_max"

log "thresholds are evaluated again on the merged run"
cat >"$T/t.yaml" <<YAML
base_url: http://127.0.0.1:$port
executor: arrival_rate
rate: 100/s
duration: 1500ms
requests: [{path: /fast}]
thresholds:
  http_reqs: ['count<250']
YAML
# 100/s for 1.5 s, open model: 150 requests each whatever the machine's speed (a closed model's
# count falls with the load): each run passes, the two together do not.
"$APIGATE" load run "$T/t.yaml" -q --json "$T/t1.json" >/dev/null || fail "run 1 failed its threshold"
"$APIGATE" load run "$T/t.yaml" -q --json "$T/t2.json" >/dev/null || fail "run 2 failed its threshold"
n1=$(jq '.totals.requests' "$T/t1.json")
n2=$(jq '.totals.requests' "$T/t2.json")
[ $((n1 + n2)) -ge 250 ] || fail "runs too small to test the merged threshold: $n1 + $n2"
rc=0
"$APIGATE" load merge "$T/t1.json" "$T/t2.json" >"$T/t.out" 2>&1 || rc=$?
assert_eq "$rc" 99 "merged threshold exit code ($n1 + $n2 requests)"
assert_contains "$(cat "$T/t.out")" "✗ http_reqs: count<250"
log "ok"
