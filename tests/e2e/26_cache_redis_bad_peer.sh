#!/usr/bin/env bash
# cache.redis pointed at a port that is not a sane Redis: it greets with replies nobody asked for
# (plain and pub/sub-shaped junk: hiredis's async layer asserted on those and the worker aborted),
# answers every command twice, streams a bulk string without end (the loop thread read it forever
# and the watchdog killed the worker), announces a two-billion-element array, or accepts and never
# answers. In every case each client request is answered from the origin in bounded time, the
# worker never restarts, and the L2 errors are counted and logged.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

read -r mport rport gport aport < <(echo "$(free_port) $(free_port) $(free_port) $(free_port)")
start_mock mock "$mport"

# The hostile peer: its behaviour is the mode in $T/mode, read at each accept; changing the mode
# drops every open connection, so the gateway reconnects into the new one. Accepts are logged.
cat >"$T/peer.py" <<'PY'
import os, socket, sys, threading, time
port, modef, logf = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conns, lock = [], threading.Lock()
def mode():
    with open(modef) as f:
        return f.read().strip()
def serve(c, m):
    try:
        if m == "junk":  # replies to nothing, some shaped like pub/sub pushes
            c.sendall(b"+OK\r\n*0\r\n*1\r\n:1\r\n*2\r\n:1\r\n:2\r\n")
        while True:
            d = c.recv(65536)
            if not d:
                break
            if m == "twice":
                n = d.count(b"*")  # a command per array header, close enough for MGET/SET
                c.sendall(b"*2\r\n$-1\r\n$-1\r\n" * (2 * n))
            elif m == "stream":
                c.sendall(b"*2\r\n$1000000000\r\n")
                while True:
                    c.sendall(b"x" * 65536)
            elif m == "bigarray":
                c.sendall(b"*2000000000\r\n")
    except OSError:
        pass
    finally:
        c.close()
def watch():
    last = mode()
    while True:
        time.sleep(0.05)
        m = mode()
        if m != last:
            last = m
            with lock:
                for c in conns:
                    try: c.shutdown(socket.SHUT_RDWR)
                    except OSError: pass
                conns.clear()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
threading.Thread(target=watch, daemon=True).start()
while True:
    c, _ = s.accept()
    m = mode()
    with open(logf, "a") as f:
        f.write(m + "\n")
    with lock:
        conns.append(c)
    threading.Thread(target=serve, args=(c, m), daemon=True).start()
PY
echo silent >"$T/mode"
start_bg peer python3 "$T/peer.py" "$rport" "$T/mode" "$T/accepts"
wait_port "$rport"

start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
cache: {redis: "redis://127.0.0.1:$rport/0", redis_timeout: 50ms, redis_reconnect: 50ms}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true}
YAML
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport

# accepts MODE: how many connections the peer accepted in MODE so far.
accepts() { grep -cx "$1" "$T/accepts" 2>/dev/null || true; }
# set_mode MODE: switches the peer and waits until the gateway has connected to it in MODE.
set_mode() {
    local n
    n=$(accepts "$1")
    echo "$1" >"$T/mode"
    for _ in $(seq 100); do
        [ "$(accepts "$1")" -gt "$n" ] && { sleep 0.3; return; }
        sleep 0.05
    done
    fail "the gateway did not reconnect to the peer in mode $1"
}

# serve_ok WHAT N: N fresh keys (L1 misses, so each asks L2 first), each must be a 200 within 2 s.
key=0
serve_ok() {
    local i code
    for i in $(seq "$2"); do
        key=$((key + 1))
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: api.test' \
            "$G/api/users/$key") || true
        assert_eq "$code" 200 "$1: request $i"
    done
}
l2_count() { curl -s --max-time 5 "$A/cache/stats" | jq -r ".l2.$1"; }

log "a peer that accepts and never answers: lookups give up after redis_timeout"
serve_ok silent 5

# settle MODE: waits until every connection of the gateway (a command connection per thread, and
# thread 0's subscriber) has come back in MODE: no new accept for 0.5 s (at most 5 s).
settle() {
    local n i
    for i in $(seq 10); do
        n=$(accepts "$1")
        sleep 0.5
        [ "$(accepts "$1")" = "$n" ] && return
    done
}

for m in junk twice stream bigarray; do
    log "a peer in mode '$m'"
    set_mode "$m"
    if [ "$m" = twice ]; then settle twice; fi
    # counted from here: switching modes dropped the old connection, itself an error
    e0=$(l2_count errors) m0=$(l2_count misses) a0=$(accepts "$m")
    serve_ok "$m" 10
    sleep 0.3
    serve_ok "$m (later)" 5
    e1=$(l2_count errors) m1=$(l2_count misses) a1=$(accepts "$m")
    if [ "$m" = twice ]; then
        # Every lookup gets the first of its two answers (a miss); the second answers no command,
        # so it drops the connection and the gateway reconnects after redis_reconnect. Lookups
        # count as errors only if one arrives in that 50 ms gap (never when each request takes
        # longer, as on a slow machine: 20 -> 20), so the drop is seen by the peer's accepts.
        [ "$m1" -gt "$m0" ] || fail "$m: no L2 misses counted ($m0 -> $m1)"
        [ "$a1" -gt "$a0" ] || fail "$m: the reply to no command did not drop the connection" \
            "(accepts in mode $m: $a0 -> $a1)"
    else
        [ "$e1" -gt "$e0" ] || fail "$m: no L2 errors counted ($e0 -> $e1)"
    fi
done

log "the worker never restarted, and the loss was logged"
if grep -E "killed by|watchdog|Assertion" "$T/gw.log"; then
    fail "the worker died on a bad redis peer"
fi
grep -q "warn: cache l2: redis 127.0.0.1:$rport" "$T/gw.log" || fail "no cache l2 warning logged"
log "ok"
