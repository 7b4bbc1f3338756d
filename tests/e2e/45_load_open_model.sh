#!/usr/bin/env bash
# The open model does not hide a stalling server. The mock stalls for 1 s every 5 s: the closed
# model (few VUs, each waiting for its response) records only a handful of slow requests and its
# p99 stays low, while the open model keeps sending at the intended rate and measures from the
# intended send time, so its p99 shows the stall (coordinated omission corrected, like wrk2).
# And when the rate cannot be met (too few connections), the report says so: dropped and late
# iterations, a warning, never silence.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq

cat >"$T/stall.yaml" <<'YAML'
global:
  stall: {every: 5s, for: 1s}
routes:
  - {method: GET, path: /s}
YAML
port=$(free_port)
start_mock mock "$port" --profile "$T/stall.yaml"
url="http://127.0.0.1:$port/s"

# Each 6 s run covers at least one whole stall window, whatever the phase.
log "closed model, 8 VUs, 6 s"
"$APIGATE" load -q -c 8 -d 6s --json "$T/closed.json" "$url" >/dev/null
closed_p99=$(jq '.latency_ms.p99' "$T/closed.json")
closed_max=$(jq '.latency_ms.max' "$T/closed.json")
log "closed: p99 ${closed_p99} ms, max ${closed_max} ms"
assert_range "$closed_max" 500 1100 "closed max (the stall is there, at least once)"
assert_range "$closed_p99" 0 100 "closed p99 (hides the stall)"

log "open model, 200/s, 6 s"
"$APIGATE" load -q -c 250 --rate 200/s -d 6s --json "$T/open.json" "$url" >"$T/open.out"
open_p99=$(jq '.latency_ms.p99' "$T/open.json")
open_p90=$(jq '.latency_ms.p90' "$T/open.json")
log "open: p90 ${open_p90} ms, p99 ${open_p99} ms"
assert_range "$open_p99" 500 1100 "open p99 (shows the stall)"
assert_range "$(jq '.totals.requests' "$T/open.json")" 1180 1200 "open: the rate was kept during the stall"
assert_eq "$(jq '.totals.dropped' "$T/open.json")" 0 "open: dropped"
# the per-second series shows the stall too: one second with a p99 near the stall length
worst=$(jq '[.series[].p99_ms] | max' "$T/open.json")
assert_range "$worst" 500 1100 "worst per-second p99"

log "a rate the connections cannot carry is reported, not hidden"
cat >"$T/slow.yaml" <<'YAML'
routes:
  - {method: GET, path: /slow, latency: 50ms}
YAML
sport=$(free_port)
start_mock slow "$sport" --profile "$T/slow.yaml"
# 4 connections × 20 req/s each = 80/s possible, 400/s asked
"$APIGATE" load -q -c 4 --rate 400/s -d 2s --json "$T/short.json" "http://127.0.0.1:$sport/slow" >"$T/short.out"
dropped=$(jq '.totals.dropped' "$T/short.json")
late=$(jq '.totals.late' "$T/short.json")
[ "$dropped" -gt 300 ] || fail "dropped iterations: $dropped"
[ "$late" -gt 0 ] || fail "late iterations: $late"
# the series says when: every dropped iteration is in one of its seconds
assert_eq "$(jq '[.series[].dropped] | add' "$T/short.json")" "$dropped" "dropped in the series"
out=$(cat "$T/short.out")
assert_contains "$out" "dropped_iterations"
assert_contains "$out" "WARNING: the requested rate was not met"
# the requests that were sent waited for a connection, and their latency says so
assert_range "$(jq '.latency_ms.med' "$T/short.json")" 60 5000 "open p50 includes the wait"
log "ok"
