#!/usr/bin/env bash
# The load examples users copy stay valid and do what their comments say: each passes --check,
# the seed's k6 test (shrunk with --duration/--vus, same shape) passes its thresholds against the
# mock, and the endpoint mix reaches all five endpoints of the mock with its checks passing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq

export LOAD_PASSWORD=secret
for f in "$AG_SRC"/examples/load-*.yaml; do
    "$APIGATE" load run --check "$f" >"$T/check.out" 2>&1 || fail "$f: $(cat "$T/check.out")"
    assert_contains "$(cat "$T/check.out")" ": ok ("
done

port=$(free_port)
start_mock mock "$port"
base="http://127.0.0.1:$port/api"

log "seed k6 test, 16 min shrunk to 4 s, 200 VUs scaled to 20"
rc=0
"$APIGATE" load run "$AG_SRC/examples/load-k6-seed.yaml" --base-url "$base" --duration 4s --vus 20 \
    -q --json "$T/seed.json" >"$T/seed.out" || rc=$?
assert_eq "$rc" 0 "seed thresholds (p95<500, failed<10%): $(tail -5 "$T/seed.out")"
assert_contains "$(cat "$T/seed.out")" "✓ http_req_duration: p(95)<500"
assert_eq "$(jq '.vus_max' "$T/seed.json")" 20 "peak VUs"
# the shape: more VUs in the middle than in the first second
first=$(jq '.series[0].vus' "$T/seed.json")
peak=$(jq '[.series[].vus] | max' "$T/seed.json")
[ "$peak" -gt "$first" ] || fail "no ramp: first second $first VUs, peak $peak"

log "endpoint mix"
rc=0
"$APIGATE" load run "$AG_SRC/examples/load-endpoint-mix.yaml" --base-url "$base" --duration 3s \
    --vus 30 -q --json "$T/mix.json" >"$T/mix.out" || rc=$?
assert_eq "$rc" 0 "mix thresholds: $(tail -12 "$T/mix.out")"
for route in "GET /api/catalog/products" "GET /api/catalog/search" "GET /api/health" \
    "POST /api/auth/login" "GET /api/auth/me"; do
    n=$(mock_stat "$port" "$route")
    [ "$n" -gt 0 ] || fail "the mock saw no request on $route"
done
assert_eq "$(jq '.endpoints | length' "$T/mix.json")" 5 "endpoints in the report"
assert_eq "$(jq '.totals.checks_failed' "$T/mix.json")" 0 "failed checks"
log "ok"
