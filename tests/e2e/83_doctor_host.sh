#!/usr/bin/env bash
# apigate doctor --host: real sockets counted per destination from /proc/net/tcp{,6}. A helper
# opens 200 connections from kernel-chosen ports (50 of them closed again, left in TIME_WAIT) and
# 300 from ports it binds itself (BASE..BASE+299) to one listener. On the live /proc the
# destination shows with its count and TIME_WAITs. A snapshot of those /proc files with a small
# ip_local_port_range around BASE (--proc DIR) turns the same 300 sockets into a port exhaustion
# warning (300 of 400 ports) and a critical (300 of 300). Also: a listener that never answers
# makes the gateway, Redis and PostgreSQL probes time out (findings, bounded by --timeout).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq python3

cat >"$T/hold.py" <<'PY'
import os, selectors, socket, sys, time
out = sys.argv[1]
def seen_as_remote(p):
    # a socket elsewhere still names this port as its peer (TIME_WAIT of an earlier test's server
    # on the same port): it would count with ours in the destination's line
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                if any(l.split()[2].endswith(":%04X" % p) for l in f.readlines()[1:]):
                    return True
        except OSError:
            pass
    return False
skipped = []
for _ in range(100):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    port = lst.getsockname()[1]
    if not seen_as_remote(port):
        break
    skipped.append(lst)  # kept bound so the next bind gets another port
lst.listen(1024)
for s in skipped:
    s.close()
sel = selectors.DefaultSelector()
sel.register(lst, selectors.EVENT_READ)
def pump(t):
    # accept and close on EOF (so the client's active close ends in TIME_WAIT)
    end = time.time() + t
    while True:
        left = end - time.time()
        if left <= 0:
            return
        for key, _ in sel.select(left):
            s = key.fileobj
            if s is lst:
                c, _ = lst.accept()
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            else:
                try:
                    d = s.recv(100)
                except OSError:
                    d = b""
                if not d:
                    sel.unregister(s)
                    s.close()
held = []
for i in range(200):
    c = socket.create_connection(("127.0.0.1", port))
    held.append(c)
    pump(0)
for c in held[:50]:
    c.close()
del held[:50]
# 300 consecutive local ports below the ephemeral range, at a base nobody uses
base = None
for cand in range(20000, 31000, 500):
    socks = []
    try:
        for i in range(300):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.bind(("127.0.0.1", cand + i))
            socks.append(c)
    except OSError:
        for c in socks:
            c.close()
        continue
    base = cand
    for c in socks:
        c.connect(("127.0.0.1", port))
        held.append(c)
        pump(0)
    break
pump(1.0)
with open(out + ".tmp", "w") as f:
    f.write("%d %d\n" % (port, base))
os.rename(out + ".tmp", out)
pump(120)
PY
start_bg hold python3 "$T/hold.py" "$T/hold.ready"
deadline=$((SECONDS + 20))
until [ -s "$T/hold.ready" ]; do
    kill -0 "$LAST_PID" 2>/dev/null || fail "helper died"
    [ $SECONDS -lt $deadline ] || fail "helper not ready"
    sleep 0.1
done
read -r HPORT BASE <"$T/hold.ready"
DEST="127.0.0.1:$HPORT"
log "helper listening on $DEST, bound ports from $BASE"

# --- live /proc ---------------------------------------------------------------------------------
out=$("$APIGATE" doctor --host --json) || fail "doctor --host failed: $out"
jq -e . >/dev/null <<<"$out" || fail "not JSON: $out"
f=$(jq -r '.findings[] | select(.id == "host-ephemeral-ports") | .evidence' <<<"$out")
line=$(grep -F " to $DEST" <<<"$f" || true)
[ -n "$line" ] || fail "destination $DEST not listed: $f"
n=$(awk '{ print $1 }' <<<"$line")
tw=$(sed -E 's/.*\(([0-9]+) TIME_WAIT\).*/\1/' <<<"$line")
lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range)
# 150 open + 50 TIME_WAIT from kernel ports; the 300 bound ports count only if inside the range.
if [ "$BASE" -ge "$lo" ]; then want=500; else want=200; fi
assert_eq "$n" "$want" "sockets from ephemeral ports to $DEST"
assert_eq "$tw" 50 "TIME_WAIT to $DEST"
assert_contains "$f" "ip_local_port_range $lo-" "range in evidence"
for id in host-file-descriptors host-listen-overflows host-cpus; do
    assert_eq "$(jq -r --arg id "$id" '[.findings[] | select(.id == $id)] | length' <<<"$out")" 1 "$id present"
done
assert_eq "$(jq -r '.findings[] | select(.id == "host-cpus") | .title' <<<"$out")" "$(nproc) CPUs" "CPU count"

# --- the same sockets against a small port range (a snapshot judged with --proc) ---------------
snap() { # snap LO HI: copies the live files, with ip_local_port_range LO HI
    rm -rf "$T/proc"
    mkdir -p "$T/proc/net" "$T/proc/sys/net/ipv4" "$T/proc/sys/net/core" "$T/proc/sys/fs"
    cat /proc/net/tcp >"$T/proc/net/tcp"
    cat /proc/net/tcp6 >"$T/proc/net/tcp6" 2>/dev/null || true
    cat /proc/net/netstat >"$T/proc/net/netstat"
    cat /proc/sys/net/core/somaxconn >"$T/proc/sys/net/core/somaxconn"
    cat /proc/sys/fs/file-nr >"$T/proc/sys/fs/file-nr"
    echo "$1 $2" >"$T/proc/sys/net/ipv4/ip_local_port_range"
}
snap "$BASE" $((BASE + 399))
set +e
out=$("$APIGATE" doctor --host --proc "$T/proc" --json)
code=$?
set -e
assert_eq "$code" 0 "warning only"
f=$(jq -c '.findings[] | select(.id == "host-ephemeral-ports")' <<<"$out")
assert_eq "$(jq -r .severity <<<"$f")" warning "300 of 400 ports"
assert_contains "$(jq -r .title <<<"$f")" "300 sockets to $DEST use 75.0% of the 400 ephemeral ports" "title"
assert_contains "$(jq -r .fix <<<"$f")" "reuse connections to $DEST" "fix"
snap "$BASE" $((BASE + 299))
set +e
out=$("$APIGATE" doctor --host --proc "$T/proc" --json --fail-on critical)
code=$?
set -e
assert_eq "$code" 1 "critical exits 1"
assert_eq "$(jq -r '.findings[] | select(.id == "host-ephemeral-ports") | .severity' <<<"$out")" critical "300 of 300 ports"
set +e
out=$("$APIGATE" doctor --host --proc "$T/nonexistent" --json)
set -e
assert_eq "$(jq -r '.findings[0].id' <<<"$out")" host-unreadable "missing /proc files"

# --- a server that accepts but never answers: every probe times out, in parallel -------------
t0=$(date +%s%N)
set +e
out=$("$APIGATE" doctor --gateway "http://$DEST" --redis "redis://$DEST" \
    --postgres "postgres://x@$DEST/db" --timeout 500ms --json)
code=$?
set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
assert_eq "$code" 1 "unanswered services are critical"
assert_contains "$(jq -r '.findings[] | select(.id == "gw-unreachable") | .title' <<<"$out")" "timed out" "gateway timeout"
assert_contains "$(jq -r '.findings[] | select(.id == "redis-unreachable") | .title' <<<"$out")" "timed out" "redis timeout"
assert_contains "$(jq -r '.findings[] | select(.id == "pg-unreachable") | .title' <<<"$out")" "timeout" "postgres timeout"
# libpq's connect timeout is at least 2 s; the probes overlap, so the whole run stays near that.
assert_range "$ms" 400 3500 "bounded by the slowest timeout, probes in parallel (ms)"
# --- a Redis look-alike that trickles its reply: each read is quick, the reply never ends; the
# probe is abandoned at its deadline (4 x max(--timeout, 2 s)) and reported, the others are not held
TRICKLE=$(free_port)
start_tcp_server trickle "$TRICKLE" <<'PY'
import time
def serve(c):
    try:
        c.recv(4096)
        c.sendall(b"$1000000\r\n")
        while True:
            c.sendall(b"x")
            time.sleep(0.2)
    except OSError:
        pass
PY
t0=$(date +%s%N)
set +e
out=$("$APIGATE" doctor --redis "redis://127.0.0.1:$TRICKLE" --host --timeout 500ms --json)
code=$?
set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
assert_eq "$code" 1 "stuck probe is critical"
f=$(jq -c '.findings[] | select(.id == "probe-timeout")' <<<"$out")
assert_eq "$(jq -r .component <<<"$f")" redis "the stuck probe is named"
assert_contains "$(jq -r .title <<<"$f")" "did not finish within 8.0 s" "deadline"
assert_eq "$(jq -r '[.findings[] | select(.component == "host")] | length > 0' <<<"$out")" true "the host probe still reports"
assert_range "$ms" 7500 10000 "abandoned at the deadline (ms)"
log "ok"
