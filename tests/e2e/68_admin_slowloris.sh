#!/usr/bin/env bash
# The admin listener cannot be starved. 64 connections (admin.max_connections' default) each
# trickle a request head one byte every 5 s: a liveness probe on /healthz must answer every time
# (connections over the limit may still ask /healthz and /readyz), other paths over the limit get
# 503, and the trickling heads are closed by header_timeout (10 s from the accept; the bytes do not
# restart it), after which /metrics answers again. With short timeouts: a head trickled faster
# than header_timeout is still cut at header_timeout, and a kept-alive connection that sends
# nothing more is closed after idle_timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

read -r mport gport aport g2 a2 < <(free_ports 5)
start_mock mock "$mport"
gw_yaml() { # gw_yaml LISTEN_PORT ADMIN_VALUE
    cat <<EOF
listen: 127.0.0.1:$1
admin: $2
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
EOF
}
start_gateway gw "$gport" "$aport" < <(gw_yaml "$gport" "127.0.0.1:$aport")
A=http://127.0.0.1:$aport

# trickle PORT N EVERY_S FOR_S: N connections each send one byte of a request head every EVERY_S
# seconds for FOR_S seconds; prints how many the server closed and the latest close (seconds).
cat >"$T/trickle.py" <<'PY'
import socket, sys, time, select
port, n, every, dur = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
head = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
t0 = time.time()
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    conns.append(s)
open(sys.argv[5], "w").write("connected\n")
sent = [0] * n
closed = {}
next_send = t0
while time.time() - t0 < dur:
    now = time.time()
    if now >= next_send:
        for i, s in enumerate(conns):
            if i in closed:
                continue
            try:
                s.send(head[sent[i] % len(head):][:1])
                sent[i] += 1
            except OSError:
                closed[i] = now - t0
        next_send += every
    live = [s for i, s in enumerate(conns) if i not in closed]
    r, _, _ = select.select(live, [], [], 0.1)
    for s in r:
        i = conns.index(s)
        try:
            d = s.recv(4096)
        except OSError:
            d = b""
        if not d:
            closed[i] = time.time() - t0
        # an answer would mean a full head: it never is one
print(len(closed), "%.1f" % max(closed.values(), default=0))
PY

log "64 connections trickle a head one byte every 5 s for 12 s"
python3 "$T/trickle.py" "$aport" 64 5 12 "$T/ready1" >"$T/trickle1.out" &
TP=$!
deadline=$((SECONDS + 10))
until [ -s "$T/ready1" ]; do
    [ $SECONDS -lt $deadline ] || fail "the trickling clients did not connect"
    sleep 0.05
done
sleep 0.5
probes=0 ok=0 over=""
start=$SECONDS
while [ $((SECONDS - start)) -lt 9 ]; do
    probes=$((probes + 1))
    st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$A/healthz") || true
    [ "$st" = 200 ] && ok=$((ok + 1))
    [ -n "$over" ] || over=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$A/metrics") || true
    sleep 0.5
done
assert_eq "$ok" "$probes" "/healthz probes answered 200 while 64 heads trickle"
assert_range "$probes" 10 100 "probes sent"
assert_eq "$over" 503 "/metrics over the connection limit"
assert_eq "$(http_status "$A/readyz")" 200 "/readyz over the limit"
wait "$TP"
read -r nclosed last <"$T/trickle1.out"
assert_eq "$nclosed" 64 "trickling heads closed by the gateway"
awk -v l="$last" 'BEGIN { exit !(l >= 8 && l <= 11.9) }' ||
    fail "trickling heads closed at ${last}s; expected about header_timeout (10 s)"
assert_eq "$(http_status "$A/metrics")" 200 "/metrics once the heads are gone"

log "short timeouts: a head trickled every 0.3 s is cut at header_timeout, an idle connection at idle_timeout"
start_gateway gw2 "$g2" "$a2" < <(gw_yaml "$g2" "{address: 127.0.0.1:$a2, header_timeout: 1s, idle_timeout: 2s}")
python3 "$T/trickle.py" "$a2" 3 0.3 4 "$T/ready2" >"$T/trickle2.out"
read -r nclosed last <"$T/trickle2.out"
assert_eq "$nclosed" 3 "heads trickled every 0.3 s closed"
awk -v l="$last" 'BEGIN { exit !(l >= 0.8 && l <= 2.5) }' ||
    fail "heads closed at ${last}s; expected about header_timeout (1 s)"
idle=$(python3 - "$a2" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
t0 = time.time()
s.settimeout(6)
data = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
except socket.timeout:
    pass
print(data.count(b"HTTP/1.1 200"), "%.1f" % (time.time() - t0))
PY
)
read -r answers secs <<<"$idle"
assert_eq "$answers" 1 "the kept-alive connection got its answer"
awk -v l="$secs" 'BEGIN { exit !(l >= 1.5 && l <= 4) }' ||
    fail "idle connection closed after ${secs}s; expected about idle_timeout (2 s)"
log "ok"
