#!/usr/bin/env bash
# Accuracy: against a mock route with a fixed 20 ms latency, the reported p50 is within 20–22 ms,
# in the closed model and in the open model (where latency is counted from the intended send
# time, so generator lateness would show up here too).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq

cat >"$T/profile.yaml" <<'YAML'
routes:
  - {method: GET, path: /fixed, latency: 20ms}
YAML
port=$(free_port)
start_mock mock "$port" --profile "$T/profile.yaml"
url="http://127.0.0.1:$port/fixed"

log "closed model, 16 VUs"
"$APIGATE" load -q -c 16 -d 3s --json "$T/c.json" "$url" >/dev/null
assert_range "$(jq '.latency_ms.med' "$T/c.json")" 20 22 "closed p50 (ms)"
# (no assertion on the minimum: the mock's millisecond timers may release a request up to 1 ms
# early; nor on the tail, which a starved CI machine stretches)
[ "$(jq '.totals.requests' "$T/c.json")" -gt 1500 ] || fail "closed: too few requests"
assert_eq "$(jq '.totals.failed' "$T/c.json")" 0 "closed failures"

log "open model, 300/s"
"$APIGATE" load -q -c 100 --rate 300/s -d 3s --json "$T/o.json" "$url" >/dev/null
assert_range "$(jq '.latency_ms.med' "$T/o.json")" 20 22 "open p50 (ms)"
# every due iteration is accounted for: sent or (on a starved CI machine, a handful) dropped
assert_eq "$(jq '.totals.requests + .totals.dropped' "$T/o.json")" 900 "open: 300/s for 3 s"
assert_range "$(jq '.totals.dropped' "$T/o.json")" 0 9 "open: dropped"
log "ok"

log "rates count the planned duration's requests, not the graceful stop after it (as wrk)"
# 4 VUs against 1.5 s answers for 2 s: 4 responses by 1.5 s, the next 4 at 3 s, after the end.
# Rate = 4 / 2 s = 2.0/s; over the measured 3 s it would read 8 / 3 = 2.7/s.
cat >"$T/slow.yaml" <<'YAML'
routes:
  - {method: GET, path: /slow, latency: 1500ms}
YAML
sport=$(free_port)
start_mock slowmock "$sport" --profile "$T/slow.yaml"
"$APIGATE" load -q -c 4 -d 2s --json "$T/s.json" "http://127.0.0.1:$sport/slow" >"$T/s.out"
assert_eq "$(jq '.totals.requests' "$T/s.json")" 8 "requests, the in-flight ones included"
assert_eq "$(jq '.totals.rate_requests' "$T/s.json")" 4 "requests within the 2 s"
assert_eq "$(jq '.totals.rps' "$T/s.json")" 2 "requests/s over the planned 2 s"
assert_contains "$(cat "$T/s.out")" "http_reqs.....................: 8  2.0/s"
assert_contains "$(cat "$T/s.out")" "rates count the 2.0s"
