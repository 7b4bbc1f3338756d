#!/usr/bin/env bash
# apigate load run: a k6-style scenario against the mock. Thresholds that hold exit 0, a failing
# one exits 99 and is marked ✗ (also per request name), checks are counted, the weighted mix and
# templated paths reach the mock's routes, think time paces a VU, and ramping stages show in the
# time series.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq curl

port=$(free_port)
start_mock mock "$port"
base="http://127.0.0.1:$port"

cat >"$T/pass.yaml" <<YAML
base_url: $base/api
vus: 6
duration: 2s
requests:
  - name: health
    path: /health
    weight: 1
    checks:
      - status: 200
      - latency_under: 1s
  - name: products
    path: /catalog/products
    weight: 1
    checks:
      - status: [200, 304]
      - header: ETag
      - body_contains: product-1
  - name: user
    path: /users/{{rand 1 5}}
    weight: 1
thresholds:
  http_req_duration: ['p(95)<500', 'avg<300']
  'http_req_duration{name:health}': ['p(95)<30']
  http_req_failed: ['rate<0.01']
  checks: ['rate>0.99']
YAML
log "thresholds that pass"
rc=0
"$APIGATE" load run "$T/pass.yaml" -q --json "$T/pass.json" >"$T/pass.out" 2>"$T/pass.err" || rc=$?
assert_eq "$rc" 0 "exit code (passing thresholds); stderr: $(cat "$T/pass.err")"
out=$(cat "$T/pass.out")
assert_contains "$out" "✓ http_req_duration: p(95)<500"
assert_contains "$out" "✓ http_req_duration{name:health}: p(95)<30"
assert_contains "$out" "✓ checks: rate>0.99"
assert_contains "$out" "products"
grep -q '^ *✗ ' <<<"$out" && fail "a threshold or check failed: $out"
# the weighted mix: three names with roughly a third each
for n in health products user; do
    c=$(jq --arg n "$n" '.endpoints[] | select(.name == $n) | .requests' "$T/pass.json")
    t=$(jq '.totals.requests' "$T/pass.json")
    assert_range "$(awk -v c="$c" -v t="$t" 'BEGIN { print c / t }')" 0.2 0.47 "share of $n"
done
# checks: 5 per products+health iteration pair, all passing
assert_eq "$(jq '.totals.checks_failed' "$T/pass.json")" 0 "failed checks"
[ "$(jq '.totals.checks_passed' "$T/pass.json")" -gt 50 ] || fail "too few checks"
# the mock saw the templated user ids on its /api/users/{id} route
served=$(mock_stat "$port" "GET /api/users/{id}")
assert_eq "$served" "$(jq '.endpoints[] | select(.name == "user") | .requests' "$T/pass.json")" \
    "user requests seen by the mock"

log "a failing threshold exits 99"
sed -e "s/'p(95)<500', 'avg<300'/'p(95)<5'/" "$T/pass.yaml" >"$T/fail.yaml"
rc=0
"$APIGATE" load run "$T/fail.yaml" -q >"$T/fail.out" 2>"$T/fail.err" || rc=$?
assert_eq "$rc" 99 "exit code (failing threshold)"
out=$(cat "$T/fail.out")
assert_contains "$out" "✗ http_req_duration: p(95)<5"
assert_contains "$out" "✓ http_req_failed: rate<0.01"
assert_contains "$(cat "$T/fail.err")" "1 threshold failed"

log "failing checks and per-name failure"
cat >"$T/checks.yaml" <<YAML
base_url: $base
vus: 2
duration: 1s
requests:
  - name: health
    path: /api/health
    checks: [{body_contains: 'no such text'}, {status: 200}]
thresholds:
  checks: ['rate>0.99']
  'http_req_failed{name:health}': ['rate<0.5']
YAML
rc=0
"$APIGATE" load run "$T/checks.yaml" -q --json "$T/checks.json" >"$T/checks.out" || rc=$?
assert_eq "$rc" 99 "exit code (failing checks)"
assert_contains "$(cat "$T/checks.out")" "✗ checks: rate>0.99"
assert_contains "$(cat "$T/checks.out")" "✓ http_req_failed{name:health}: rate<0.5"
# exactly half the checks fail: the body one
assert_eq "$(jq '.totals.checks_passed == .totals.checks_failed' "$T/checks.json")" true "half failed"

log "think time paces VUs; stages ramp"
cat >"$T/ramp.yaml" <<YAML
base_url: $base
stages:
  - {duration: 2s, target: 4}
  - {duration: 1s, target: 4}
requests:
  - path: /api/health
    think: 100ms
YAML
"$APIGATE" load run "$T/ramp.yaml" -q --json "$T/ramp.json" >/dev/null
# at most 4 VUs × 10 iterations/s × 3 s, and a ramp: the first second has fewer VUs than the last
its=$(jq '.totals.iterations' "$T/ramp.json")
assert_range "$its" 20 125 "iterations with 100 ms think time"
v0=$(jq '.series[0].vus' "$T/ramp.json")
v2=$(jq '.series[2].vus' "$T/ramp.json")
[ "$v0" -lt "$v2" ] || fail "VUs did not ramp: $v0 then $v2"
assert_eq "$v2" 4 "VUs at the hold stage"
log "ok"
