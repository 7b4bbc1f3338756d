#!/usr/bin/env bash
# WebSocket through `apigate serve` (docs/proxy.md, Upgrade tunnels) with a real client and server
# (python3-websockets): text, binary and 1 MB random frames echoed both ways; the tunnel metrics,
# /stats and the access log line (status 101, written when the tunnel ends); a route with
# `websocket: false` forwards the request without its Upgrade (the server answers 426); curl's
# `Upgrade: h2c` is never tunneled (the gateway speaks h2c itself): the route's cache still serves.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3
PY=/usr/bin/python3
"$PY" -c 'import websockets' 2>/dev/null || skip "python3-websockets missing (scripts/deps.sh test installs it)"
PEERS="$(dirname "$0")/tunnel_peers.py"

read -r wport mport gport aport <<<"$(free_ports 4)"
start_bg echo "$PY" "$PEERS" ws-echo "$wport"
wait_port "$wport"
start_mock mock "$mport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
logging: {access_log: $T/access.log, access_format: json, access_flush: 10ms}
upstreams:
  ws: {servers: [127.0.0.1:$wport]}
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /ws/, upstream: ws, cache: {ttl: 60s, override: true}}
  - {match: /nows/, upstream: ws, websocket: false}
  - {match: /api/, upstream: api, cache: {ttl: 60s, override: true}}
YAML
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

log "echo of text, binary and 1 MB frames through the gateway"
out=$("$PY" "$PEERS" ws-client "ws://127.0.0.1:$gport/ws/chat" echo 2>&1) || fail "client: $out"
assert_contains "$out" "text ok"
assert_contains "$out" "binary ok"
assert_contains "$out" "1MB ok"
assert_contains "$out" "20 round trips ok"

log "two clients at once, on a route that caches (an Upgrade is never a cache entry)"
"$PY" "$PEERS" ws-client "ws://127.0.0.1:$gport/ws/a" echo >"$T/c1.out" 2>&1 &
p1=$!
"$PY" "$PEERS" ws-client "ws://127.0.0.1:$gport/ws/a" echo >"$T/c2.out" 2>&1 &
p2=$!
wait "$p1" || fail "client 1: $(cat "$T/c1.out")"
wait "$p2" || fail "client 2: $(cat "$T/c2.out")"

log "metrics: three tunnels, all closed, bytes both ways, nothing held"
deadline=$((SECONDS + 10))
until [ "$(metric apigate_tunnels_open)" = 0 ] && [ "$(metric 'apigate_tunnels_closed_total{reason="closed"}')" = 3 ]; do
    [ $SECONDS -lt $deadline ] || fail "tunnels not closed: $(curl -s "http://127.0.0.1:$aport/metrics" | grep tunnel)"
    sleep 0.1
done
assert_eq "$(metric apigate_tunnels_total)" 3 "tunnels started"
up=$(metric 'apigate_tunnel_bytes_total{direction="upstream"}')
down=$(metric 'apigate_tunnel_bytes_total{direction="downstream"}')
assert_range "$up" $((3 * 1048576)) $((4 * 1048576)) "bytes client -> upstream"
assert_range "$down" $((3 * 1048576)) $((4 * 1048576)) "bytes upstream -> client"
assert_eq "$(metric apigate_tunnel_buffered_bytes)" 0 "bytes held after the end"
stats=$(curl -s "http://127.0.0.1:$aport/stats")
assert_eq "$(jq -r '.tunnels.total' <<<"$stats")" 3 "/stats tunnels.total"
assert_eq "$(jq -r '.tunnels.open' <<<"$stats")" 0 "/stats tunnels.open"
assert_eq "$(metric 'apigate_pool_closed_total{upstream="ws",reason="upgraded"}')" 3 \
    "upstream connections taken out of the pool"

log "access log: one line per tunnel, status 101, its bytes and duration"
deadline=$((SECONDS + 10))
until [ "$(grep -c '"status":101' "$T/access.log" 2>/dev/null)" = 3 ]; do
    [ $SECONDS -lt $deadline ] || fail "access log: $(cat "$T/access.log")"
    sleep 0.1
done
line=$(grep '"status":101' "$T/access.log" | grep '"path":"/ws/chat"')
assert_eq "$(jq -r '.method' <<<"$line")" GET "logged method"
assert_range "$(jq -r '.bytes' <<<"$line")" 1048576 $((2 * 1048576)) "logged bytes to the client"
assert_range "$(jq -r '.total_ms' <<<"$line")" 0.001 60000 "logged duration"

log "websocket: false: the Upgrade headers are dropped, the server answers a plain request"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
    "http://127.0.0.1:$gport/nows/x")
assert_ne "$code" 101 "no tunnel on websocket: false"
assert_eq "$(metric apigate_tunnels_total)" 3 "no tunnel started"

log "Upgrade: h2c (curl --http2) is served as HTTP/1.1 and cached as usual"
assert_eq "$(curl -s --http2 -o /dev/null -w '%{http_code} %{http_version}' "http://127.0.0.1:$gport/api/users/1")" \
    "200 1.1" "first h2c upgrade request"
assert_eq "$(curl -s --http2 -o /dev/null -w '%header{x-cache}' "http://127.0.0.1:$gport/api/users/1")" \
    HIT "second one from the cache"
log "ok"
