#!/usr/bin/env bash
# apigate doctor --gateway against a real `apigate serve` in front of `apigate mock`: the counters
# of its /stats since start (--window 0) are read (request count, p95, connects per upstream
# request) and judged healthy; then a route whose upstream is down turns the 5xx rate critical.
# The windowed judgement (the default) is e2e/88.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq curl

MOCK=$(free_port)
LISTEN=$(free_port)
ADMIN=$(free_port)
DEAD=$(free_port)
start_mock mock "$MOCK"
cat >"$T/gw.yaml" <<YAML
listen: 127.0.0.1:$LISTEN
admin: 127.0.0.1:$ADMIN
workers: {threads: 1}
upstreams:
  api:
    servers: [127.0.0.1:$MOCK]
  down:
    servers: [127.0.0.1:$DEAD]
    connect_timeout: 200ms
routes:
  - match: /dead/
    upstream: down
  - match: /
    upstream: api
YAML
start_bg serve "$APIGATE" serve -c "$T/gw.yaml"
wait_port "$ADMIN" 10
wait_port "$LISTEN" 10
sev() { jq -r --arg id "$1" '[.findings[] | select(.id == $id)][0].severity' <<<"$out"; }

for i in $(seq 1 120); do echo "url = \"http://127.0.0.1:$LISTEN/api/health\""; done >"$T/ok.curl"
curl -s -K "$T/ok.curl" -o /dev/null --max-time 30 || true
out=$("$APIGATE" doctor --window 0 --gateway "http://127.0.0.1:$ADMIN" --json --fail-on warning) ||
    fail "warnings on a healthy gateway: $out"
assert_contains "$(jq -r '.findings[] | select(.id == "gw-5xx-rate") | .title' <<<"$out")" "(0 of 120 requests)" "request count from /stats"
assert_eq "$(sev gw-latency)" ok "p95"
assert_eq "$(sev gw-connection-churn)" ok "keep-alive upstream pool: few connects per request"

for i in $(seq 1 30); do echo "url = \"http://127.0.0.1:$LISTEN/dead/x\""; done >"$T/dead.curl"
curl -s -K "$T/dead.curl" -o /dev/null --max-time 30 || true
set +e
out=$("$APIGATE" doctor --window 0 --gateway "http://127.0.0.1:$ADMIN" --json)
code=$?
set -e
assert_eq "$code" 1 "critical 5xx rate"
assert_eq "$(sev gw-5xx-rate)" critical "30 of 150 failed (20%)"
assert_contains "$(jq -r '.findings[] | select(.id == "gw-5xx-rate") | .title' <<<"$out")" "(30 of 150 requests)" "5xx count"
log "ok"
