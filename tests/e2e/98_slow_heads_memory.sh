#!/usr/bin/env bash
# Slow partial request heads (slowloris) cost the gateway little and the memory comes back: N
# connections (8000, or as many as `ulimit -n` allows) each send part of a head and then trickle
# a few bytes, twice over; while they wait each holds about its bytes (a connection waiting for
# its head owns no 16 KB block, let alone a grown 32 KB buffer), and a few seconds after they close
# the gateway's RSS is within 20% of what it was before the attack (it was 4 MB -> 123 MB with
# 3000 and 147 MB stayed; 8000 -> 361 MB, 431 MB after). The gateway serves normally afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

N=8000
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
have=$(ulimit -n)
[ "$have" -ge 2300 ] || skip "ulimit -n $have is below 2300"
[ "$have" -ge $((N + 200)) ] || N=$((have - 200))

read -r mport gport aport <<<"$(free_ports 3)"
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /item, handler: static, body: '{"ok":true}', body_size: 1KB}
EOF
start_mock mock "$mport" --threads 1 --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
logging: {level: error}
server: {client_header_timeout: 60s, max_connections: $((N + 100))}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
EOF
gw=$(cat "$T/gw.pid" 2>/dev/null || echo "$LAST_PID")

# kB of VmRSS of the gateway: supervisor and worker processes.
rss_kb() {
    local total=0 p v
    for p in $gw $(pgrep -P "$gw" 2>/dev/null || true); do
        v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
# some ordinary traffic first: the pre-attack value includes what serving costs
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$gport/item"; done
sleep 1
before=$(rss_kb)

cat >"$T/slow.py" <<'PY'
import socket, sys, time
port, n, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for rnd in range(rounds):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(True)
        s.connect(("127.0.0.1", port))
        # a head cut short in a header value, a bit longer each connection
        s.send(b"GET /item HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (100 + i % 900))
        socks.append(s)
    for tick in range(3):  # trickle: a byte each, every 0.5 s
        time.sleep(0.5)
        for s in socks:
            try:
                s.send(b"b")
            except OSError:
                pass
    alive = 0
    for s in socks:
        try:
            s.send(b"c")
            alive += 1
        except OSError:
            pass
    print("round %d: %d connections, %d still open" % (rnd, n, alive), flush=True)
    open(sys.argv[4] + ".%d" % rnd, "w").write("x")
    time.sleep(1.0)
    for s in socks:
        s.close()
PY
start_bg slow python3 "$T/slow.py" "$gport" "$N" 2 "$T/round"
slow=$LAST_PID
peak=0
for _ in $(seq 1 1200); do
    kill -0 "$slow" 2>/dev/null || break
    r=$(rss_kb)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.1
done
kill -0 "$slow" 2>/dev/null && fail "the slow client did not finish in time"
cat "$T/slow.log" >&2
[ -f "$T/round.1" ] || fail "the slow client failed: $(cat "$T/slow.log")"
sleep 3
after=$(rss_kb)
log "RSS $before kB before, $peak kB peak with $N slow heads, $after kB 3 s after they closed"
[ $((peak - before)) -le $((N * 6)) ] || fail "a slow head costs $(( (peak - before) * 1024 / N )) bytes (limit 6 KB)"
[ "$after" -le $((before * 12 / 10)) ] || fail "RSS $after kB after the attack, above 120% of $before kB"
assert_eq "$(http_status "http://127.0.0.1:$gport/item")" 200 "served after the attack"

log "server.max_head_memory bounds what partial heads hold: over it, slow connections are closed"
read -r g2 a2 <<<"$(free_ports 2)"
start_gateway gw2 "$g2" "$a2" <<EOF
listen: 127.0.0.1:$g2
admin: 127.0.0.1:$a2
workers: {threads: 1}
logging: {level: warn}
server: {client_header_timeout: 60s, max_head_memory: 1MB}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
EOF
python3 "$T/slow.py" "$g2" 2000 1 "$T/small" >"$T/small.log" 2>&1 || fail "slow client: $(cat "$T/small.log")"
open=$(awk '/still open/ {print $5}' "$T/small.log")
log "2000 slow heads under a 1 MB budget: $open kept open"
assert_range "$open" 300 1500 "slow heads kept within the budget (1 MB at about 1.1 KB each)"
assert_eq "$(http_status "http://127.0.0.1:$g2/item")" 200 "served under the budget"
n=$(grep -c 'hold server.max_head_memory' "$T/gw2.log" || true)
assert_range "$n" 1 10 "the closes are logged, a line a second at most"
log "ok"
