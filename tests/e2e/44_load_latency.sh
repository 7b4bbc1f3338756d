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
