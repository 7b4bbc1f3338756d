#!/usr/bin/env bash
# A tunnel peer that never reads (docs/proxy.md, Upgrade tunnels): the gateway stops reading the
# other side once tunnel.buffer is held for that direction, so the sender is held back by TCP
# and the gateway's memory stays bounded: an upstream flooding a client that never reads stalls
# after what the kernel's socket buffers hold (not the 1 GB it wants to send), the tunnel holds
# at most tunnel.buffer (apigate_tunnel_buffered_bytes), the worker's RSS barely moves; the same
# the other way (a client flooding an upstream that never reads). Both tunnels still close cleanly.
# A quiet tunnel holds no buffer at all (300 of them: about 1 KB each in the worker's RSS).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3
PEERS="$(dirname "$0")/tunnel_peers.py"

read -r uport gport aport <<<"$(free_ports 3)"
start_bg up python3 "$PEERS" raw-up "$uport" "$T/up.requests"
wait_port "$uport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  raw: {servers: [127.0.0.1:$uport]}
routes:
  - {match: /, upstream: raw, tunnel: {buffer: 64KB}}
YAML
gw_pid=$LAST_PID
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
worker_rss_kb() { # the worker is the supervisor's child
    local w
    w=$(pgrep -P "$gw_pid" | head -n1)
    awk '/^VmRSS:/ {print $2}' "/proc/$w/status"
}
# stalled FILE: waits until the number in FILE stops growing for 1.5 s (bounded: 60 s)
stalled() {
    local last=-1 same=0 now deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        now=$(cat "$1" 2>/dev/null || echo 0)
        if [ "$now" = "$last" ]; then
            same=$((same + 1))
            [ $same -ge 15 ] && { echo "$now"; return 0; }
        else
            same=0
            last=$now
        fi
        sleep 0.1
    done
    fail "$1 kept growing: $(cat "$1")"
}
curl -s -o /dev/null "http://127.0.0.1:$gport/warm" # the worker's steady state before measuring
rss0=$(worker_rss_kb)

log "quiet tunnels hold no buffer: 300 of them cost the worker little"
python3 - "$gport" 300 "$T/quiet.ready" "$T/quiet.done" <<'PY' &
import os, socket, sys, time
port, n, ready, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /ws/quiet HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    s.sendall(b"hello")  # echoed: each direction carried bytes once, then went quiet
    got = b""
    while len(got) < 5:
        got += s.recv(5)
    socks.append(s)
open(ready, "w").close()
while not os.path.exists(done):
    time.sleep(0.1)
PY
qpid=$!
deadline=$((SECONDS + 60))
until [ -f "$T/quiet.ready" ]; do
    [ $SECONDS -lt $deadline ] || fail "quiet tunnels not open"
    kill -0 "$qpid" 2>/dev/null || fail "quiet client died"
    sleep 0.1
done
assert_eq "$(metric apigate_tunnels_open)" 300 "quiet tunnels open"
assert_eq "$(metric apigate_tunnel_buffered_bytes)" 0 "quiet tunnels hold no byte"
rssq=$(worker_rss_kb)
log "worker RSS ${rss0} kB -> ${rssq} kB with 300 quiet tunnels"
# a 16 KB block kept per direction would be 9+ KB each (measured); without, about 1 KB
assert_range $(( (rssq - rss0) * 1024 / 300 )) -100000 4096 "bytes per quiet tunnel"
touch "$T/quiet.done"
wait "$qpid" || true
deadline=$((SECONDS + 20))
until [ "$(metric apigate_tunnels_open)" = 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "quiet tunnels not closed"
    sleep 0.1
done
rss0=$(worker_rss_kb)

log "an upstream floods a client that never reads"
python3 - "$gport" "$T/client.done" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /flood HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
head = s.recv(200)
assert head.startswith(b"HTTP/1.1 101"), head
while not __import__("os").path.exists(sys.argv[2]):
    time.sleep(0.1)  # never reads
s.close()  # unread bytes: the kernel resets the connection
PY
cpid=$!
sent=$(stalled "$T/up.requests.flood")
log "the upstream's flood stalled at $sent bytes"
assert_range "$sent" 65536 $((64 * 1048576)) "bytes the upstream could send (1 GB wanted)"
held=$(metric apigate_tunnel_buffered_bytes)
assert_range "$held" 0 $((65536 + 4096)) "bytes the gateway holds for the tunnel"
rss1=$(worker_rss_kb)
log "worker RSS ${rss0} kB -> ${rss1} kB"
assert_range $((rss1 - rss0)) -100000 16384 "worker RSS growth (kB)"

log "a client floods an upstream that never reads"
python3 - "$gport" "$T/client.sent" <<'PY' &
import signal, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
def bye(*_):
    s.close()  # SO_LINGER 0: a reset, not a half-close (which would keep the tunnel open)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
s.sendall(b"GET /sink HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
head = s.recv(200)
assert head.startswith(b"HTTP/1.1 101"), head
s.settimeout(1.0)
sent, chunk = 0, b"c" * 65536
while sent < (1 << 30):
    try:
        sent += s.send(chunk)
    except socket.timeout:
        pass
    except OSError:
        break
    with open(sys.argv[2], "w") as f:
        f.write("%d\n" % sent)
PY
fpid=$!
csent=$(stalled "$T/client.sent")
log "the client's flood stalled at $csent bytes"
assert_range "$csent" 65536 $((64 * 1048576)) "bytes the client could send (1 GB wanted)"
held=$(metric apigate_tunnel_buffered_bytes)
assert_range "$held" 0 $((2 * 65536 + 8192)) "bytes the gateway holds for both tunnels"
assert_eq "$(metric apigate_tunnels_open)" 2 "both tunnels open"

log "both tunnels close when their client resets"
touch "$T/client.done"
wait "$cpid" || true
kill "$fpid" 2>/dev/null || true
wait "$fpid" 2>/dev/null || true
deadline=$((SECONDS + 20))
until [ "$(metric apigate_tunnels_open)" = 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "tunnels still open: $(curl -s "http://127.0.0.1:$aport/metrics" | grep tunnel)"
    sleep 0.1
done
assert_eq "$(metric apigate_tunnel_buffered_bytes)" 0 "nothing held after the end"
assert_eq "$(http_status "http://127.0.0.1:$gport/plain")" 200 "the gateway serves on"
log "ok"
