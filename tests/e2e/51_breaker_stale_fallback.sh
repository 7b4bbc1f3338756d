#!/usr/bin/env bash
# Upstream killed mid-load (issue 7): its address then swallows connections (a dead host: connects
# hang until connect_timeout). With a warm cache the cached route keeps answering 200 (stale
# copies, X-Cache: STALE) with zero 5xx; the uncached route gets its configured fallback, and once
# the breaker is open it gets it at once (p99 under 10 ms) instead of waiting a connect timeout
# per request.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {name: items, method: GET, path: '/api/items/{id}', body_size: 256}
  - {name: live, method: GET, path: '/api/live/{id}', body_size: 64}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  api: {servers: [127.0.0.1:$mport], connect_timeout: 300ms, max_fails: 0}
routes:
  - match: /api/items/
    upstream: api
    cache: {ttl: 1s, override: true, stale_if_error: 60s}
    breaker: {window: 2s, buckets: 10, error_threshold: 50%, min_requests: 5, open_for: 30s}
  - match: /api/live/
    upstream: api
    timeout: {first_byte: 1s}
    breaker: {window: 2s, buckets: 10, error_threshold: 50%, min_requests: 5, open_for: 30s}
    fallback:
      status: 503
      body: '{"error":"temporarily unavailable","cached":false}'
YAML
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport

log "warm the cache"
for i in $(seq 1 10); do
    assert_eq "$(http_status "$G/api/items/$i")" 200 "warm $i"
done

cat >"$T/mixed.yaml" <<YAML
base_url: $G
executor: vus
vus: 4
duration: 5s
threads: 1
timeout: 5s
requests:
  - {name: items, method: GET, path: '/api/items/{{rand 1 10}}', weight: 3}
  - {name: live, method: GET, path: '/api/live/{{rand 1 10}}', weight: 1}
YAML
log "load on both routes; the upstream dies after 1.5 s"
"$APIGATE" load run "$T/mixed.yaml" -q --max-failed 100% --json "$T/mixed.json" >"$T/mixed.txt" 2>&1 &
load_pid=$!
sleep 1.5
stop_bg mock || true
# a dead host: the port accepts no connection (a full backlog, never accepted)
start_bg hole python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $mport)); s.listen(0)
extra = [socket.create_connection(('127.0.0.1', $mport)) for _ in range(2)]
time.sleep(60)"
wait "$load_pid" || fail "load run failed: $(cat "$T/mixed.txt")"

ep() { jq -r --arg n "$1" --arg f "$2" '[.endpoints[] | select(.name == $n)][0][$f]' "$T/mixed.json"; }
items_req=$(ep items requests)
items_failed=$(ep items failed)
live_req=$(ep live requests)
log "items: $items_req requests, $items_failed failed; live: $live_req requests; statuses $(jq -c .status "$T/mixed.json")"
[ "$items_req" -gt 100 ] || fail "too few requests on the cached route: $items_req"
assert_eq "$items_failed" 0 "cached route: responses with status >= 400 while the upstream was dead"
h=$(curl -s -D - -o /dev/null --max-time 5 "$G/api/items/3" | tr -d '\r')
assert_contains "$h" "HTTP/1.1 200" "cached route after the kill"
assert_contains "$h" "X-Cache: STALE" "cached route after the kill"
assert_eq "$(curl -s "$A/stats" | jq '.breakers_open')" 2 "both breakers open"

log "uncached route now: the fallback at once"
"$APIGATE" load -q -c 4 -d 2s --max-failed 100% --json "$T/live.json" "$G/api/live/1" >"$T/live.txt" 2>&1 ||
    fail "load on live failed: $(cat "$T/live.txt")"
live_all=$(jq '[.status[]] | add' "$T/live.json")
live_503=$(jq '.status["503"] // 0' "$T/live.json")
p99=$(jq '.endpoints[0].latency_ms.p99' "$T/live.json")
log "live: $live_all requests, $live_503 fallbacks, p99 $p99 ms"
[ "$live_all" -gt 200 ] || fail "too few requests: $live_all"
assert_eq "$live_503" "$live_all" "every answer is the fallback"
assert_range "$p99" 0 10 "fallback p99 (ms)"
log "cached route now: stale copies at once, no connect timeout per request"
"$APIGATE" load -q -c 4 -d 1s --json "$T/items.json" "$G/api/items/4" >"$T/items.txt" 2>&1 ||
    fail "load on items failed: $(cat "$T/items.txt")"
assert_eq "$(jq -c .status "$T/items.json" | sed 's/[0-9]*}$//')" '{"200":' "cached route: only 200s"
assert_range "$(jq '.endpoints[0].latency_ms.p99' "$T/items.json")" 0 10 "stale p99 (ms)"
assert_eq "$(http_body "$G/api/live/2")" '{"error":"temporarily unavailable","cached":false}' "fallback body"
log "ok"
