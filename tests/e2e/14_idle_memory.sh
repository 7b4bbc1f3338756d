#!/usr/bin/env bash
# Idle keep-alive client connections of `apigate serve` hold no buffers: 2000 clients each send a
# pass-through request, read the answer and stay open; the gateway's RSS may grow by at most 4 KB
# per connection (it grew ~16 KB each while the read buffer, header arrays and arena chunk stayed
# with idle connections; ~1.3 KB now). Then every idle connection is used again (the buffers come
# back on demand) and must get a complete 200, with a POST body and a pipelined pair on some.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

N=2000
LIMIT=4096
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((N + 200)) ] || skip "ulimit -n $(ulimit -n) is below $((N + 200))"

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: ANY, path: /echo, handler: echo}
  - {method: GET, path: /item, handler: static, body: '{"ok":true}', body_size: 1KB}
EOF
start_mock mock "$mport" --threads 1 --profile "$T/mock.yaml"
cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
logging: {level: warn}
server: {keepalive_timeout: 120s, max_connections: $((N + 100))}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
EOF
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
gw=$LAST_PID
wait_port "$gport"
wait_port "$aport"
assert_eq "$(http_status "http://127.0.0.1:$gport/item")" 200 "warm-up request"

# kB of VmRSS of the gateway: supervisor and worker processes.
rss_kb() {
    local total=0 p v
    for p in $gw $(pgrep -P "$gw" 2>/dev/null || true); do
        v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

cat >"$T/idle.py" <<'PY'
import os, socket, sys, time
port, n, state = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def response(s, buf=b""):
    """Reads one response with a Content-Length; returns (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise SystemExit("connection closed before a response head")
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    need = int(cl[0].split(b":")[1]) if cl else 0
    while len(buf) < need:
        d = s.recv(65536)
        if not d:
            raise SystemExit("connection closed in a response body")
        buf += d
    return status, buf[:need], buf[need:]

get = b"GET /item HTTP/1.1\r\nHost: x\r\n\r\n"
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(get)
    st, body, _ = response(s)
    if st != 200 or len(body) != 1024:
        raise SystemExit("first request on connection %d: %d, %d bytes" % (i, st, len(body)))
    socks.append(s)
open(state + ".idle", "w").write("%d\n" % len(socks))
while not os.path.exists(state + ".go"):
    time.sleep(0.05)
# Every idle connection again: GETs, a POST body echoed back on every 7th, a pipelined pair on
# every 11th.
for i, s in enumerate(socks):
    if i % 7 == 0:
        payload = b"x" * 3000 + str(i).encode()
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        st, body, _ = response(s)
        if st != 200 or payload not in body:
            raise SystemExit("POST on idle connection %d: %d, %d bytes" % (i, st, len(body)))
    elif i % 11 == 0:
        s.sendall(get + get)
        st, body, rest = response(s)
        st2, body2, _ = response(s, rest)
        if (st, st2, len(body), len(body2)) != (200, 200, 1024, 1024):
            raise SystemExit("pipelined pair on idle connection %d: %d %d" % (i, st, st2))
    else:
        s.sendall(get)
        st, body, _ = response(s)
        if st != 200 or len(body) != 1024:
            raise SystemExit("GET on idle connection %d: %d, %d bytes" % (i, st, len(body)))
open(state + ".done", "w").write("ok\n")
PY

sleep 0.3
before=$(rss_kb)
start_bg idle python3 "$T/idle.py" "$gport" "$N" "$T/state"
idle=$LAST_PID
for _ in $(seq 1 600); do
    [ -s "$T/state.idle" ] && break
    kill -0 "$idle" 2>/dev/null || fail "idle client failed: $(cat "$T/idle.log")"
    sleep 0.1
done
[ -s "$T/state.idle" ] || fail "idle client did not open $N connections in time"
sleep 1
after=$(rss_kb)
per=$(( (after - before) * 1024 / N ))
log "RSS $before kB -> $after kB with $N idle keep-alive connections: $per bytes each"
[ "$per" -le "$LIMIT" ] || fail "idle keep-alive connection costs $per bytes (limit $LIMIT)"

touch "$T/state.go"
for _ in $(seq 1 600); do
    [ -s "$T/state.done" ] && break
    kill -0 "$idle" 2>/dev/null || fail "reusing the idle connections failed: $(cat "$T/idle.log")"
    sleep 0.1
done
[ -s "$T/state.done" ] || fail "reusing the idle connections did not finish in time"
stop_bg idle || true
log "every idle connection served again"
