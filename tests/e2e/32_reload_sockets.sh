#!/usr/bin/env bash
# Sockets across reloads and command-line overrides of `apigate serve`:
#   --listen/--admin/--threads replace the file's values, and still do after SIGHUP;
#   a reload that changes the listen address or the thread count opens new sockets and closes the
#   old ones (the old port refuses), one listening socket per loop thread (SO_REUSEPORT);
#   no zombie children; a supervisor killed with -9 takes its worker down (no orphan keeps the port).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl ss pgrep

mock_port=$(free_port)
p1=$(free_port)
p2=$(free_port)
p3=$(free_port)
a1=$(free_port)
a2=$(free_port)

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /fast, handler: health}
EOF
start_mock mock "$mock_port" --profile "$T/mock.yaml"

# gw_config LISTEN_PORT ADMIN_PORT THREADS
gw_config() {
    cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
workers: {threads: $3}
upstreams:
  mock: {servers: [127.0.0.1:$mock_port]}
routes:
  - {match: /, upstream: mock}
EOF
}
# listeners PORT: how many listening sockets are bound to 127.0.0.1:PORT.
listeners() { ss -Hltn "sport = :$1" | wc -l; }
reloads() { grep -c "reload done" "$T/gw.log" || true; }
wait_reloads() {
    local deadline=$((SECONDS + 5))
    until [ "$(reloads)" -ge "$1" ]; do
        [ $SECONDS -lt $deadline ] || fail "reload $1 not done after 5 s"
        sleep 0.05
    done
}

# ---- the file's values ----
gw_config "$p1" "$a1" 2
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$p1"
assert_eq "$(http_status "http://127.0.0.1:$p1/fast")" 200 "served on the file's port"
assert_eq "$(http_status "http://127.0.0.1:$a1/healthz")" 200 "admin on the file's port"
assert_eq "$(listeners "$p1")" 2 "one listening socket per loop thread"

# ---- reload: new port and thread count -> new sockets, old ones closed ----
gw_config "$p2" "$a2" 3
kill -HUP "$SV"
wait_reloads 1
wait_port "$p2"
assert_eq "$(http_status "http://127.0.0.1:$p2/fast")" 200 "served on the new port"
assert_eq "$(http_status "http://127.0.0.1:$a2/healthz")" 200 "admin on the new port"
assert_eq "$(listeners "$p2")" 3 "three sockets for three threads"
deadline=$((SECONDS + 3))
while [ "$(listeners "$p1")" != 0 ] || [ "$(listeners "$a1")" != 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "old sockets still listening after the reload"
    sleep 0.05
done
assert_eq "$(http_status "http://127.0.0.1:$p1/fast")" 000 "old port refuses"

# ---- reload to a port that another process holds: refused, the old sockets keep serving ----
p4=$(free_port)
start_bg squatter python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
time.sleep(60)' "$p4"
wait_port "$p4"
gw_config "$p4" "$a2" 3
kill -HUP "$SV"
deadline=$((SECONDS + 5))
until grep -q "reload failed: cannot open the new sockets" "$T/gw.log"; do
    [ $SECONDS -lt $deadline ] || fail "reload onto a taken port was not refused"
    sleep 0.05
done
assert_contains "$(cat "$T/gw.log")" "cannot listen on 127.0.0.1:$p4" "the taken address is named"
assert_eq "$(http_status "http://127.0.0.1:$p2/fast")" 200 "still serving on the old port"
assert_eq "$(listeners "$p2")" 3 "old sockets kept"
stop_bg squatter || true
gw_config "$p2" "$a2" 3

# ---- reload with the same addresses keeps the same sockets (no rebind, no gap) ----
before=$(ss -Hltne "sport = :$p2" | grep -o 'ino:[0-9]*' | sort | tr '\n' ' ')
kill -HUP "$SV"
wait_reloads 2
after=$(ss -Hltne "sport = :$p2" | grep -o 'ino:[0-9]*' | sort | tr '\n' ' ')
assert_eq "$after" "$before" "same listening sockets after a reload that keeps the addresses"

# no zombie children of the supervisor
sleep 0.3
zombies=$(ps -o stat= --ppid "$SV" | grep -c Z || true)
assert_eq "$zombies" 0 "zombie workers"
stop_bg gw || fail "supervisor did not exit 0 on SIGTERM"

# ---- command-line overrides win over the file, also after a reload ----
gw_config "$p1" "$a1" 2
start_bg gw2 "$APIGATE" serve -c "$T/gw.yaml" --listen "127.0.0.1:$p3" --admin off --threads 1
SV=$LAST_PID
wait_port "$p3"
assert_eq "$(http_status "http://127.0.0.1:$p3/fast")" 200 "served on --listen"
assert_eq "$(listeners "$p3")" 1 "--threads 1"
assert_eq "$(listeners "$p1")" 0 "the file's listen is overridden"
assert_eq "$(listeners "$a1")" 0 "--admin off"
gw_config "$p2" "$a2" 4
kill -HUP "$SV"
deadline=$((SECONDS + 5))
until grep -q "reload done" "$T/gw2.log"; do
    [ $SECONDS -lt $deadline ] || fail "override reload not done"
    sleep 0.05
done
assert_eq "$(listeners "$p3")" 1 "overrides survive a reload"
assert_eq "$(listeners "$p2")" 0 "file's new listen still overridden"
assert_eq "$(listeners "$a2")" 0 "admin stays off after a reload"

# ---- systemd Type=notify: READY once serving, RELOADING/READY around a reload, STOPPING ----
stop_bg gw2 || fail "supervisor did not exit 0 on SIGTERM"
cat >"$T/notify.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(15)
with open(sys.argv[2], "w") as out:
    while True:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        out.write(m.replace("\n", " ") + "\n")
        out.flush()
        if m.startswith("STOPPING=1"):
            break
EOF
start_bg notify python3 "$T/notify.py" "$T/notify.sock" "$T/notify.out"
deadline=$((SECONDS + 5))
until [ -S "$T/notify.sock" ]; do
    [ $SECONDS -lt $deadline ] || fail "notify listener did not start"
    sleep 0.05
done
gw_config "$p1" "$a1" 1
NOTIFY_SOCKET="$T/notify.sock" start_bg gw3 "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$p1"
deadline=$((SECONDS + 5))
until grep -q "^READY=1 MAINPID=$SV " "$T/notify.out" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "no READY=1 MAINPID=$SV from the supervisor"
    sleep 0.05
done
kill -HUP "$SV"
deadline=$((SECONDS + 5))
until [ "$(grep -c '^READY=1' "$T/notify.out")" -ge 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "no READY=1 after the reload"
    sleep 0.05
done
grep -q '^RELOADING=1' "$T/notify.out" || fail "no RELOADING=1 before the reload"
stop_bg gw3 || fail "supervisor did not exit 0 on SIGTERM"
deadline=$((SECONDS + 5))
until grep -q '^STOPPING=1' "$T/notify.out"; do
    [ $SECONDS -lt $deadline ] || fail "no STOPPING=1 on SIGTERM"
    sleep 0.05
done
log "sd_notify: $(tr '\n' '|' <"$T/notify.out")"

# ---- upgrade in place: a second gateway (a new binary) started with --share-ports joins the
# first on the same addresses (SO_REUSEPORT, admin included), then the first stops; the port
# never goes dark (without the flag the second one refuses to start: e2e/33) ----
gw_config "$p1" "$a1" 1
start_bg old "$APIGATE" serve -c "$T/gw.yaml"
wait_port "$p1"
start_bg new "$APIGATE" serve -c "$T/gw.yaml" --share-ports
deadline=$((SECONDS + 5))
until grep -q "ready in" "$T/new.log"; do
    kill -0 "$LAST_PID" 2>/dev/null || fail "second gateway on the same addresses did not start"
    [ $SECONDS -lt $deadline ] || fail "second gateway not ready"
    sleep 0.05
done
assert_eq "$(listeners "$p1")" 2 "both gateways listen"
stop_bg old || fail "old gateway did not exit 0"
assert_eq "$(http_status "http://127.0.0.1:$p1/fast")" 200 "the new gateway serves"
assert_eq "$(http_status "http://127.0.0.1:$a1/healthz")" 200 "the new gateway's admin answers"
stop_bg new || fail "new gateway did not exit 0"

# ---- kill -9 of the supervisor: the worker drains and exits, the port is freed ----
gw_config "$p1" "$a1" 2
start_bg gw4 "$APIGATE" serve -c "$T/gw.yaml" --listen "127.0.0.1:$p3"
SV=$LAST_PID
wait_port "$p3"
W=$(pgrep -n -P "$SV")
[ -n "$W" ] || fail "no worker"
kill -9 "$SV"
deadline=$((SECONDS + 5))
while kill -0 "$W" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "worker $W survived its supervisor"
    sleep 0.05
done
assert_eq "$(listeners "$p3")" 0 "port freed after the supervisor died"
log "all socket and override checks passed"
