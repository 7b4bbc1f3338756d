#!/usr/bin/env bash
# Active health checks: two mock servers behind one upstream. Both take traffic; when one dies the
# checks mark it down (apigate_upstream_healthy 0, ejection counted) and every request goes to the
# other without errors; /readyz?strict=1 (the upstreams' readiness) stays ready while one server
# is healthy, turns 503 when none is (plain /readyz stays 200: e2e/69), and a server that comes
# back is used again after healthy_threshold successes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

p1=$(free_port)
p2=$(free_port)
gport=$(free_port)
aport=$(free_port)

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /api/health, handler: health}
  - {method: GET, path: '/api/items/{id}', body_size: 200}
EOF
start_mock m1 "$p1" --profile "$T/mock.yaml"
start_mock m2 "$p2" --profile "$T/mock.yaml"

start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api:
    servers: [127.0.0.1:$p1, 127.0.0.1:$p2]
    balance: round_robin
    health: {path: /api/health, interval: 100ms, timeout: 80ms, healthy_threshold: 2,
             unhealthy_threshold: 2}
routes:
  - match: /api/
    upstream: api
EOF
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport

metric() { # metric SERIES: value of the exact series in /metrics (0 when absent)
    curl -s "$A/metrics" | awk -v p="$1" '!f && index($0, p " ") == 1 { print $NF; f = 1 } END { if (!f) print 0 }'
}
wait_metric() { # wait_metric SERIES VALUE [TIMEOUT_S=10]
    local deadline=$((SECONDS + ${3:-10}))
    while [ "$(metric "$1")" != "$2" ]; do
        [ $SECONDS -lt "$deadline" ] || fail "$1 did not reach $2 (now $(metric "$1"))"
        sleep 0.1
    done
}
h1="apigate_upstream_healthy{upstream=\"api\",server=\"127.0.0.1:$p1\"}"
h2="apigate_upstream_healthy{upstream=\"api\",server=\"127.0.0.1:$p2\"}"

log "both servers healthy and used"
assert_eq "$(http_status "$A/readyz?strict=1")" 200 "/readyz?strict=1 with two healthy servers"
for i in $(seq 1 20); do assert_eq "$(http_status "$G/api/items/$i")" 200 "request $i"; done
s1=$(mock_stat "$p1" 'GET /api/items/{id}')
s2=$(mock_stat "$p2" 'GET /api/items/{id}')
assert_range "$s1" 8 12 "round robin share of server 1"
assert_range "$s2" 8 12 "round robin share of server 2"
assert_range "$(metric "apigate_upstream_health_checks_total{upstream=\"api\",server=\"127.0.0.1:$p2\",result=\"ok\"}")" 1 1000000 \
    "health checks ran against server 2"

log "server 2 dies: marked down by the checks"
stop_bg m2 || true
wait_metric "$h2" 0 10
assert_eq "$(metric "$h1")" 1 "server 1 still healthy"
assert_range "$(metric "apigate_upstream_ejections_total{upstream=\"api\",server=\"127.0.0.1:$p2\"}")" 1 100 "ejection counted"
grep -q "marked down by health checks" "$T/gw.log" || fail "no log line for the ejection"
assert_eq "$(http_status "$A/readyz?strict=1")" 200 "/readyz?strict=1 with one healthy server"
before=$(mock_stat "$p1" 'GET /api/items/{id}')
for i in $(seq 1 20); do assert_eq "$(http_status "$G/api/items/$i")" 200 "request $i with server 2 down"; done
after=$(mock_stat "$p1" 'GET /api/items/{id}')
assert_eq "$((after - before))" 20 "every request went to server 1"

log "server 1 dies too: not ready"
stop_bg m1 || true
wait_metric "$h1" 0 10
assert_eq "$(http_status "$A/readyz?strict=1")" 503 "/readyz?strict=1 with no healthy server"
st=$(http_status "$G/api/items/1")
[ "$st" = 502 ] || [ "$st" = 503 ] || fail "request with no healthy server: expected 502/503, got $st"

log "server 2 comes back on its port: healthy again after 2 checks"
start_mock m2b "$p2" --profile "$T/mock.yaml"
wait_metric "$h2" 1 10
assert_eq "$(http_status "$A/readyz?strict=1")" 200 "/readyz?strict=1 after recovery"
for i in $(seq 1 5); do assert_eq "$(http_status "$G/api/items/$i")" 200 "request $i after recovery"; done
assert_eq "$(mock_stat "$p2" 'GET /api/items/{id}')" 5 "recovered server takes the traffic"
grep -q "is healthy again" "$T/gw.log" || fail "no log line for the recovery"
status=$(curl -s "$A/upstreams")
assert_eq "$(jq -r '.. | objects | select(.server? == "127.0.0.1:'"$p2"'") | .healthy' <<<"$status" | head -1)" true "/upstreams shows server 2 healthy"
log "ok"
