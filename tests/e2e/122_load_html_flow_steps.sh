#!/usr/bin/env bash
# The HTML report of a multi-step flow (examples/load-login-flow.yaml against the mock): each step
# has its own requests/s and p95 series over time, named under its flow (login-then-me › login,
# login-then-me › me), as in the endpoints table; rendered in headless Chromium, the DOM shows the
# per-step charts drawn with one point per second of each step and their labelled axes, and the
# verdict banner of a run whose threshold failed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq
command -v chromium >/dev/null 2>&1 || skip "chromium not installed (scripts/deps.sh test installs it)"

mport=$(free_port)
start_mock mock "$mport"
# 3 s, and a p95 threshold of 1 µs on the second step that cannot pass: exit 99, FAILED banner
sed -e 's/^duration: .*/duration: 3s/' -e "s/'p(95)<500'/'p(95)<0.001'/" \
    "$AG_SRC/examples/load-login-flow.yaml" >"$T/flow.yaml"
rc=0
"$APIGATE" load run "$T/flow.yaml" --base-url "http://127.0.0.1:$mport/api" -q \
    --json "$T/r.json" --html "$T/r.html" >"$T/out.txt" 2>&1 || rc=$?
assert_eq "$rc" 99 "exit code with the failed step threshold ($(tail -3 "$T/out.txt"))"
for step in login me; do
    n=$(jq --arg s "$step" '[.endpoints[] | select(.name == $s and .group == "login-then-me") | .series[]] | length' "$T/r.json")
    [ "$n" -ge 2 ] || fail "step $step: $n seconds in its series ($(jq -c '.endpoints' "$T/r.json" | head -c 300))"
done
assert_contains "$(cat "$T/r.html")" "<td class=l>login-then-me › me</td>" "the step under its flow in the table"

timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$T/chrome" \
    --virtual-time-budget=5000 --dump-dom "file://$T/r.html" >"$T/dom.html" 2>>"$T/chromium.log" ||
    fail "chromium --dump-dom failed: $(tail -5 "$T/chromium.log")"
grep -q 'data-charts="done"' "$T/dom.html" || fail "the page's script did not finish"
attr() { grep -o "id=\"$1\"[^>]*data-$2=\"[^\"]*\"" "$T/dom.html" | sed "s/.*data-$2=\"//; s/\"\$//"; }
assert_eq "$(attr chart-ep-p95 series)" "login-then-me › login|login-then-me › me" "one p95 series per step"
planned=$(jq '.planned_s | ceil' "$T/r.json")
want=$(jq --argjson p "$planned" '[.endpoints[].series[] | select(.t < $p)] | length' "$T/r.json")
assert_eq "$(attr chart-ep-rps drawn)" "$want" "points of the per-step requests/s chart"
assert_eq "$(attr chart-ep-p95 ytitle)" "p95 latency" "its y axis"
assert_eq "$(attr chart-ep-p95 xtitle)" "time since start" "its x axis"
xt=$(attr chart-ep-p95 xticks)
[[ "$xt" =~ ^[0-9.]+s(\|[0-9.]+s)+$ ]] || fail "time ticks '$xt'"
grep -q '<div id="verdict" class="banner fail">FAILED: 1 of 2 thresholds failed (exit 99)</div>' "$T/dom.html" ||
    fail "no FAILED banner: $(grep -o '<div id="verdict"[^<]*' "$T/dom.html")"
log "flow steps: per-step series under the flow's name, labelled, with the verdict"
