#!/usr/bin/env bash
# An unreachable target is a run with 100% failed requests and a clear error summary (exit 1: the
# run failed), not a crash or a hang: a closed port (connection refused) in both models, and a server that accepts but
# never answers (request timeout), each bounded in time. A hostile server (invalid status line,
# connection reset, body shorter than its Content-Length, an endless flood of 1xx responses) gets
# each failure counted under its kind, and the run still ends on time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq python3

dead=$(free_port) # nothing listens there

log "connection refused, closed model"
start=$SECONDS
rc=0
timeout 20 "$APIGATE" load -q -c 4 -d 1s --json "$T/r.json" "http://127.0.0.1:$dead/" >"$T/r.out" || rc=$?
assert_eq "$rc" 1 "exit code (every request failed)"
[ $((SECONDS - start)) -le 5 ] || fail "took $((SECONDS - start)) s for a 1 s run"
out=$(cat "$T/r.out")
assert_contains "$out" "http_req_failed...............: 100.00%"
assert_contains "$out" "connect_refused"
assert_contains "$out" "every request failed"
[ "$(jq '.errors.connect_refused' "$T/r.json")" -gt 0 ] || fail "no connect_refused count"
assert_eq "$(jq '.totals.failed' "$T/r.json")" "$(jq '.totals.requests' "$T/r.json")" "all failed"
assert_eq "$(jq '.hist.count' "$T/r.json")" 0 "no latency recorded for failures"

log "connection refused, open model"
rc=0
timeout 20 "$APIGATE" load -q -c 4 --rate 200/s -d 1s --json "$T/o.json" "http://127.0.0.1:$dead/" >/dev/null || rc=$?
assert_eq "$rc" 1 "exit code (every request failed)"
reqs=$(jq '.totals.requests' "$T/o.json")
assert_range "$reqs" 150 210 "iterations attempted at 200/s for 1 s"
assert_eq "$(jq '.totals.failed' "$T/o.json")" "$reqs" "all failed"

log "a server that never answers: request timeout"
port=$(free_port)
start_bg silent python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)   # read nothing, answer nothing
' "$port"
wait_port "$port"
start=$SECONDS
rc=0
timeout 30 "$APIGATE" load -q -c 3 -d 1s --timeout 500ms --json "$T/t.json" "http://127.0.0.1:$port/" >"$T/t.out" || rc=$?
assert_eq "$rc" 1 "exit code (every request failed)"
[ $((SECONDS - start)) -le 6 ] || fail "took $((SECONDS - start)) s"
[ "$(jq '.errors.request_timeout' "$T/t.json")" -ge 3 ] || fail "no request_timeout: $(cat "$T/t.out")"
assert_contains "$(cat "$T/t.out")" "request timed out"
log "a listener whose accept queue is full: connects time out"
bport=$(free_port)
start_bg backlog python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(0)
time.sleep(60)   # never accepts: once the queue is full, SYNs are dropped
' "$bport"
sleep 0.3
rc=0
timeout 20 "$APIGATE" load -q -c 8 -d 1s --timeout 500ms --json "$T/b.json" "http://127.0.0.1:$bport/" >"$T/b.out" || rc=$?
assert_eq "$rc" 1 "exit code (every request failed)"
[ "$(jq '.errors.connect_timeout' "$T/b.json")" -gt 0 ] || fail "no connect_timeout: $(cat "$T/b.out")"
assert_contains "$(cat "$T/b.out")" "connect timed out"
log "…and with the default 10 s timeout the run still ends on time, saying why nothing completed"
start=$SECONDS
rc=0
timeout 20 "$APIGATE" load -q -c 4 -d 500ms "http://127.0.0.1:$bport/" >"$T/b2.out" || rc=$?
assert_eq "$rc" 1 "exit code (no request completed)"
[ $((SECONDS - start)) -le 8 ] || fail "took $((SECONDS - start)) s"
assert_contains "$(cat "$T/b2.out")" "no request completed"

log "a hostile server: each failure counted under its kind, every run on time"
hport=$(free_port)
start_tcp_server hostile "$hport" <<'PY'
import socket, struct
def serve(c):
    try:
        d = c.recv(65536)
        path = d.split(b" ")[1] if d.count(b" ") >= 2 else b"/"
        if path == b"/status":
            c.sendall(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
        elif path == b"/reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif path == b"/short":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        elif path == b"/flood":  # interim responses without end: more than net/h1cli's bound
            b = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" * 20000
            while True:
                c.sendall(b)
    except OSError:
        pass
    finally:
        c.close()
PY
for pk in status:protocol_error reset:reset short:closed flood:protocol_error; do
    path=${pk%%:*} kind=${pk#*:}
    start=$SECONDS
    rc=0
    timeout 60 "$APIGATE" load -q -c 2 -d 1s --timeout 1s --json "$T/h.json" \
        "http://127.0.0.1:$hport/$path" >"$T/h.out" 2>&1 || rc=$?
    assert_eq "$rc" 1 "/$path: exit code (every request failed)"
    [ $((SECONDS - start)) -le 5 ] || fail "/$path: took $((SECONDS - start)) s for a 1 s run"
    [ "$(jq ".errors.$kind" "$T/h.json")" -ge 1 ] || fail "/$path: no $kind: $(cat "$T/h.out")"
    assert_eq "$(jq '.totals.failed' "$T/h.json")" "$(jq '.totals.requests' "$T/h.json")" \
        "/$path: all failed"
done
log "ok"
