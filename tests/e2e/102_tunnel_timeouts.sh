#!/usr/bin/env bash
# The end of an Upgrade tunnel (docs/proxy.md, Upgrade tunnels): tunnel.idle_timeout closes a
# WebSocket that is quiet (the client sees the close), tunnel.max_duration one that is busy, and a
# client's half-close (shutdown(SHUT_WR)) reaches the upstream as an EOF while the upstream's
# answer still comes back before the tunnel ends; each end counted by reason.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3
PY=/usr/bin/python3
"$PY" -c 'import websockets' 2>/dev/null || skip "python3-websockets missing (scripts/deps.sh test installs it)"
PEERS="$(dirname "$0")/tunnel_peers.py"

read -r wport uport gport aport <<<"$(free_ports 4)"
start_bg echo "$PY" "$PEERS" ws-echo "$wport"
wait_port "$wport"
start_bg up python3 "$PEERS" raw-up "$uport" "$T/up.requests"
wait_port "$uport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  ws: {servers: [127.0.0.1:$wport]}
  raw: {servers: [127.0.0.1:$uport]}
routes:
  - {match: /idle/, upstream: ws, tunnel: {idle_timeout: 1s}}
  - {match: /max/, upstream: raw, tunnel: {idle_timeout: 1m, max_duration: 1s}}
  - {match: /, upstream: raw}
YAML
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
wait_metric() { # NAME VALUE: bounded polling
    local deadline=$((SECONDS + 15))
    until [ "$(metric "$1")" = "$2" ]; do
        [ $SECONDS -lt $deadline ] || fail "$1: expected $2, got '$(metric "$1")'"
        sleep 0.1
    done
}

log "idle_timeout: a quiet WebSocket is closed by the gateway"
out=$("$PY" "$PEERS" ws-client "ws://127.0.0.1:$gport/idle/x" wait-close 20 2>&1) || fail "client: $out"
assert_contains "$out" "open ok"
assert_contains "$out" "closed after" "the client saw the close"
secs=$(sed -n 's/.*closed after \([0-9.]*\) s.*/\1/p' <<<"$out")
assert_range "$secs" 0.9 15 "closed after the idle timeout, not at once"
wait_metric 'apigate_tunnels_closed_total{reason="idle_timeout"}' 1

log "max_duration: a tunnel that keeps talking is closed all the same"
python3 - "$gport" >"$T/max.out" 2>&1 <<'PY' || fail "max_duration client: $(cat "$T/max.out")"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /max/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(4096)
assert head.startswith(b"HTTP/1.1 101"), head
t0 = time.monotonic()
closed = False
while time.monotonic() - t0 < 15:
    try:
        s.sendall(b"ping")
        d = s.recv(4096)
    except OSError:
        closed = True
        break
    if not d:
        closed = True
        break
    time.sleep(0.1)
print("closed" if closed else "open", "%.1f" % (time.monotonic() - t0))
PY
read -r state secs <"$T/max.out"
assert_eq "$state" closed "busy tunnel closed by max_duration"
assert_range "$secs" 0.8 15 "after max_duration"
wait_metric 'apigate_tunnels_closed_total{reason="max_duration"}' 1

log "half-close: the client's EOF reaches the upstream, whose answer still comes back"
python3 - "$gport" >"$T/half.out" 2>&1 <<'PY' || fail "half-close client: $(cat "$T/half.out")"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /halfclose HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
s.sendall(b"last words")
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    out += d
print(out.split(b"\r\n\r\n", 1)[1].decode())
PY
assert_eq "$(cat "$T/half.out")" "echo:last words:bye" "the upstream saw the EOF and answered after it"
assert_contains "$(cat "$T/up.requests")" "halfclose got last words" "upstream side"
wait_metric 'apigate_tunnels_closed_total{reason="closed"}' 1
wait_metric apigate_tunnels_open 0
assert_eq "$(metric apigate_tunnel_buffered_bytes)" 0 "nothing held"
log "ok"
