#!/usr/bin/env bash
# Resilience never lengthens an outage (issue 14 item 11). A single-server upstream with health
# checks and a breaker: the origin goes away for 5 s, the checks mark it down and the breaker
# opens; once the origin is back the very first request succeeds (panic mode tries the server that
# is marked down, the half-open probe is a real request, a success marks the server up at once),
# long before healthy_threshold checks would have. A storm of the gateway's own pool queue
# timeouts never opens a breaker. Gateway-made answers of a cached route carry X-Cache.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

read -r mport gport aport < <(free_ports 3)
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/health, handler: health}
  - {method: GET, path: '/api/items/{id}', body_size: 100}
  - {name: slow, method: GET, path: '/slow/{id}', latency: 400ms, body_size: 10}
  - {name: slowl, method: GET, path: '/slow/l/{id}', latency: 400ms, body_size: 10}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
    max_fails: 0
    health: {path: /api/health, interval: 1s, timeout: 300ms, healthy_threshold: 5,
             unhealthy_threshold: 1}
  narrow:
    servers: [127.0.0.1:$mport]
    max_fails: 0
    pool: {max_connections: 1, queue_timeout: 50ms}
routes:
  - match: /api/
    upstream: api
    breaker: {window: 10s, min_requests: 3, error_threshold: 50%, open_for: 1s,
              half_open_requests: 1}
  - match: /slow/l/
    upstream: api
    cache: {ttl: 60s, override: true}
    limit: {concurrency: 1}
  - match: /slow/
    upstream: narrow
    cache: {ttl: 60s, override: true}
    breaker: {window: 10s, min_requests: 5, error_threshold: 50%, open_for: 30s}
YAML
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport
metric() { curl -s --max-time 5 "$A/metrics" | awk -v k="$1" 'index($0, k " ") == 1 { print $2; f = 1 } END { if (!f) print 0 }'; }
healthy="apigate_upstream_healthy{upstream=\"api\",server=\"127.0.0.1:$mport\"}"
bstate() { curl -s --max-time 5 "$A/stats" | jq -r --arg r "$1" '.breakers[] | select(.route == $r) | .state'; }

log "origin up: requests pass"
assert_eq "$(http_status "$G/api/items/1")" 200 "before the outage"

log "origin down 5 s: checks mark it down, the breaker opens"
stop_bg mock || true
down_at=$SECONDS
for i in $(seq 1 6); do http_status "$G/api/items/$i" >/dev/null; done
deadline=$((SECONDS + 5))
while [ "$(metric "$healthy")" != 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "the health checks never marked the server down"
    sleep 0.1
done
assert_eq "$(bstate /api/)" open "breaker state during the outage"
while [ $((SECONDS - down_at)) -lt 5 ]; do sleep 0.2; done

log "origin back: the first request succeeds"
start_mock mock2 "$mport" --profile "$T/mock.yaml"
# open_for (1 s) has passed long ago: this request is the half-open probe, sent to the server that
# the checks still mark down (healthy_threshold 5 x 1 s would take 5 s)
st=$(http_status "$G/api/items/1")
assert_eq "$st" 200 "first request after the origin came back"
assert_eq "$(metric "$healthy")" 1 "a proxied success marks the server up at once"
assert_eq "$(bstate /api/)" closed "the successful probe closed the breaker"
for i in $(seq 2 5); do assert_eq "$(http_status "$G/api/items/$i")" 200 "request $i after recovery"; done
grep -q "panic mode" "$T/gw.log" || fail "no log line for panic mode"
if grep -q "half-open: probing" "$T/gw.log" && grep -A1 "half-open: probing" "$T/gw.log" | grep -q "opened (window: 1 requests"; then
    fail "the half-open probe failed without reaching the origin"
fi

log "a storm of pool queue timeouts (max_connections 1, queue_timeout 50 ms) never opens the breaker"
pids=()
for i in $(seq 1 30); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "$G/slow/$i" >"$T/storm.$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
n503=$(cat "$T"/storm.* | grep -c '^503$' || true)
[ "$n503" -ge 10 ] || fail "expected a storm of 503 pool timeouts, got $n503 (statuses: $(sort "$T"/storm.* | uniq -c | tr '\n' ' '))"
log "$n503 of 30 answered 503 by the pool queue"
assert_eq "$(bstate /slow/)" closed "breaker after the storm"
failures=$(curl -s "$A/stats" | jq -r '.breakers[] | select(.route == "/slow/") | .failures')
assert_eq "$failures" 0 "queue timeouts counted as breaker failures"
assert_range "$(metric 'apigate_pool_errors_total{upstream="narrow",reason="queue_timeout"}')" 10 30 "queue timeouts counted by the pool"

log "the gateway's own 503 on a cached route carries X-Cache"
h=$( (curl -s -D - -o /dev/null --max-time 10 "$G/slow/a" & curl -s -D - -o /dev/null --max-time 10 "$G/slow/b"; wait) | tr -d '\r')
grep -q '^HTTP/1.1 503' <<<"$h" || fail "no 503 among two concurrent requests to a one-connection pool: $h"
n_status=$(grep -c '^HTTP/1.1 ' <<<"$h")
n_xcache=$(grep -ci '^x-cache: ' <<<"$h")
assert_eq "$n_xcache" "$n_status" "answers with X-Cache (of $n_status)"
# the route's concurrency limit refuses before the cache is asked: still X-Cache (MISS)
h=$( (curl -s -D - -o /dev/null --max-time 10 "$G/slow/l/a" & sleep 0.1; curl -s -D - -o /dev/null --max-time 10 "$G/slow/l/b"; wait) | tr -d '\r')
grep -q '^HTTP/1.1 503' <<<"$h" || fail "no 503 from a concurrency limit of 1: $h"
assert_eq "$(grep -ci '^x-cache: ' <<<"$h")" 2 "answers with X-Cache on a limited cached route"
log "ok"
