#!/usr/bin/env bash
# Upgrade tunnels across a reload and over TLS (docs/proxy.md, Upgrade tunnels): a WebSocket over
# a TLS listener (wss://), to an https:// upstream, or both, echoes like a plaintext one; on SIGHUP the old worker keeps its tunnels
# open until workers.drain_timeout and then closes them (the client sees the close), while the
# new worker serves new WebSockets and plain requests at once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 openssl
PY=/usr/bin/python3
"$PY" -c 'import websockets' 2>/dev/null || skip "python3-websockets missing (scripts/deps.sh test installs it)"
PEERS="$(dirname "$0")/tunnel_peers.py"

read -r wport wsport mport gport sport aport <<<"$(free_ports 6)"
test_cert "$T" cert /CN=localhost
start_bg echo "$PY" "$PEERS" ws-echo "$wport"
wait_port "$wport"
start_bg echo_tls "$PY" "$PEERS" ws-echo "$wsport" "$T/cert.pem" "$T/cert.key"
wait_port "$wsport"
start_mock mock "$mport"
start_gateway gw "$gport" "$sport" "$aport" <<YAML
listen:
  - 127.0.0.1:$gport
  - {address: 127.0.0.1:$sport, tls: {cert: $T/cert.pem, key: $T/cert.key}}
admin: 127.0.0.1:$aport
workers: {threads: 2, drain_timeout: 3s}
upstreams:
  ws: {servers: [127.0.0.1:$wport]}
  wss: {servers: ["https://127.0.0.1:$wsport"], tls: {verify: false}}
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /ws/, upstream: ws}
  - {match: /wss/, upstream: wss}
  - {match: /, upstream: api}
YAML
gw_pid=$LAST_PID
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

log "wss:// through a TLS listener"
out=$("$PY" "$PEERS" ws-client "wss://127.0.0.1:$sport/ws/tls" echo 2>&1) || fail "wss client: $out"
assert_contains "$out" "1MB ok" "1 MB echo over TLS"
log "to an https:// upstream, from both listeners"
out=$("$PY" "$PEERS" ws-client "ws://127.0.0.1:$gport/wss/up" echo 2>&1) || fail "client to wss upstream: $out"
assert_contains "$out" "1MB ok" "1 MB echo to a TLS upstream"
out=$("$PY" "$PEERS" ws-client "wss://127.0.0.1:$sport/wss/both" echo 2>&1) || fail "TLS both sides: $out"
assert_contains "$out" "1MB ok" "1 MB echo with TLS on both sides"

log "a WebSocket open across a reload is closed after drain_timeout"
"$PY" "$PEERS" ws-client "ws://127.0.0.1:$gport/ws/long" wait-close 40 >"$T/long.out" 2>&1 &
lpid=$!
"$PY" "$PEERS" ws-client "wss://127.0.0.1:$sport/ws/long" wait-close 40 >"$T/long_tls.out" 2>&1 &
tpid=$!
deadline=$((SECONDS + 15))
until [ "$(metric apigate_tunnels_open)" = 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "tunnels not open: $(cat "$T/long.out" "$T/long_tls.out")"
    sleep 0.1
done
t0=$(date +%s.%N)
kill -HUP "$gw_pid"
sleep 0.5
log "the new worker serves at once, while the old one drains"
out=$("$PY" "$PEERS" ws-client "ws://127.0.0.1:$gport/ws/new" echo 2>&1) || fail "client after reload: $out"
assert_contains "$out" "20 round trips ok" "a new WebSocket after the reload"
assert_eq "$(http_status "http://127.0.0.1:$gport/api/users/1")" 200 "plain request after the reload"
wait "$lpid" || fail "long client: $(cat "$T/long.out")"
wait "$tpid" || fail "long TLS client: $(cat "$T/long_tls.out")"
t1=$(date +%s.%N)
assert_contains "$(cat "$T/long.out")" "closed after" "the old worker closed the tunnel"
assert_contains "$(cat "$T/long_tls.out")" "closed after" "and the TLS one"
assert_range "$(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }')" 2.5 30 "closed at the drain deadline, not before"
assert_contains "$(cat "$T/gw.log")" "drain timeout: closing" "the old worker says why (per loop thread)"
assert_eq "$(http_status "http://127.0.0.1:$gport/api/users/2")" 200 "healthy after the drain"
curl -sf "http://127.0.0.1:$aport/readyz" >/dev/null || fail "readyz after the drain"
log "ok"
