#!/usr/bin/env bash
# Upgrade tunnels (WebSocket) through apigate: memory per idle tunnel (N WebSockets opened and
# left quiet: the worker's RSS growth / N) and the echo round trip of 1 KB and 1 MB messages
# through the gateway against direct to the same server (python3-websockets echo server and
# client, /usr/bin/python3). Not a test: prints the numbers. Usage:
#   bench/tunnel.sh [APIGATE_BINARY]        env: N=1000 ROUNDS=200
set -euo pipefail
APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
PEERS="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/tunnel_peers.py"
N=${N:-1000}
ROUNDS=${ROUNDS:-200}
PY=/usr/bin/python3
"$PY" -c 'import websockets' || { echo "missing: python3-websockets" >&2; exit 2; }
[ -x "$APIGATE" ] || { echo "no apigate binary at $APIGATE" >&2; exit 2; }

W=$(mktemp -d /tmp/apigate-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; exit 1; }
wport=$(port); gport=$(port); aport=$(port)
ulimit -n 65536 2>/dev/null || true
"$PY" "$PEERS" ws-echo "$wport" >"$W/echo.log" 2>&1 &
PIDS+=($!)
cat >"$W/gw.yaml" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
server: {max_connections: 100000}
upstreams:
  ws: {servers: [127.0.0.1:$wport], pool: {max_connections: 100000}}
routes:
  - {match: /, upstream: ws}
YAML
"$APIGATE" serve -c "$W/gw.yaml" >"$W/gw.log" 2>&1 &
gw=$!
PIDS+=($gw)
wait_port "$wport"
wait_port "$gport"
worker=$(pgrep -P "$gw" | head -n1)
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$worker/status"; }
curl -s -o /dev/null "http://127.0.0.1:$gport/" || true
rss0=$(rss)
"$PY" - "$gport" "$N" "$W/idle.ready" <<'PY' &
import base64, os, socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /idle HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    socks.append(s)
open(ready, "w").close()
time.sleep(3600)
PY
PIDS+=($!)
for _ in $(seq 600); do [ -f "$W/idle.ready" ] && break; sleep 0.1; done
sleep 1
rss1=$(rss)
open=$(curl -s "http://127.0.0.1:$aport/metrics" | awk '$1 == "apigate_tunnels_open" {print $2}')
echo "idle tunnels: $open open, worker RSS ${rss0} kB -> ${rss1} kB: $(( (rss1 - rss0) * 1024 / N )) bytes per idle tunnel"
cat >"$W/rtt.py" <<'PY'
import asyncio, os, sys, time, websockets
async def main(url, rounds):
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        for size in (1024, 1 << 20):
            msg = os.urandom(size)
            n = rounds if size == 1024 else max(rounds // 20, 5)
            t0 = time.perf_counter()
            for _ in range(n):
                await ws.send(msg)
                await ws.recv()
            print("%d B: %.3f ms per round trip" % (size, (time.perf_counter() - t0) * 1000 / n))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
PY
echo "direct:";  "$PY" "$W/rtt.py" "ws://127.0.0.1:$wport/rtt" "$ROUNDS"
echo "through apigate:"; "$PY" "$W/rtt.py" "ws://127.0.0.1:$gport/rtt" "$ROUNDS"
