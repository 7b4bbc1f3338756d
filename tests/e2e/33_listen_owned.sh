#!/usr/bin/env bash
# A listening address belongs to one supervisor. Every socket of the gateway is SO_REUSEPORT (one
# per loop thread), which would let a second `apigate serve` (or a serve on the mock's port) join
# the first silently and take part of its traffic. A new address is probed by a bind without
# SO_REUSEPORT first: a second serve, a serve --listen on the mock's port, a second admin on a
# used port and --no-supervisor fail with 'Address already in use' and exit 1; a reload onto a
# port another server holds is refused and the old sockets keep serving; a reload that keeps or
# adds addresses still works (our own sockets are not "another process").
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl ss

read -r mport gport aport p2 p3 a3 < <(free_ports 6)
start_mock mock "$mport"

# gw_config LISTEN... : the gateway's file, listening on every given port, admin on $aport
gw_config() {
    local l="" p
    for p in "$@"; do l="$l${l:+, }127.0.0.1:$p"; done
    cat >"$T/gw.yaml" <<EOF
listen: [$l]
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  mock: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: mock}
EOF
}
listeners() { ss -Hltn "sport = :$1" | wc -l; }
reloads() { grep -c "reload done" "$T/gw.log" || true; }
failed_reloads() { grep -c "reload failed" "$T/gw.log" || true; }

gw_config "$gport"
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$gport"
wait_port "$aport"
assert_eq "$(listeners "$gport")" 2 "one socket per loop thread"

# second NAME EXPECTED_ADDR ARGS...: runs a second server (bounded) that must exit 1 at once,
# naming EXPECTED_ADDR as in use.
second() {
    local name=$1 addr=$2 rc=0
    shift 2
    timeout 10 "$@" >"$T/$name.out" 2>&1 || rc=$?
    [ "$rc" -ne 124 ] || fail "$name: started next to the gateway on $addr (still running after 10 s)"
    assert_eq "$rc" 1 "$name: exit code"
    assert_contains "$(cat "$T/$name.out")" "$addr: Address already in use" "$name: message"
}

log "a second serve with the same file"
second same "127.0.0.1:$gport" "$APIGATE" serve -c "$T/gw.yaml"
log "a second serve on another port, with the same admin address"
second admin "127.0.0.1:$aport" "$APIGATE" serve -c "$T/gw.yaml" --listen "127.0.0.1:$p3"
assert_eq "$(listeners "$p3")" 0 "nothing left listening on the second one's free port"
log "serve --listen on the mock's port"
second onmock "127.0.0.1:$mport" "$APIGATE" serve -c "$T/gw.yaml" --listen "127.0.0.1:$mport" \
    --admin off
log "serve --no-supervisor on the gateway's port"
second single "127.0.0.1:$gport" "$APIGATE" serve -c "$T/gw.yaml" --no-supervisor --admin off
log "a mock on the gateway's port"
second mock2 "127.0.0.1:$gport" "$APIGATE" mock --listen "127.0.0.1:$gport"

assert_eq "$(listeners "$gport")" 2 "the gateway's sockets only"
assert_eq "$(listeners "$mport")" 1 "the mock's socket only"
assert_eq "$(http_status "http://127.0.0.1:$gport/api/health")" 200 "the first gateway serves"

log "a reload onto the mock's port is refused; the old sockets keep serving"
gw_config "$mport"
kill -HUP "$SV"
deadline=$((SECONDS + 10))
until [ "$(failed_reloads)" -ge 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "a reload onto the mock's port was not refused"
    sleep 0.05
done
assert_contains "$(cat "$T/gw.log")" "127.0.0.1:$mport: Address already in use" "reload message"
assert_eq "$(listeners "$mport")" 1 "the mock's port is still the mock's alone"
assert_eq "$(listeners "$gport")" 2 "old sockets kept"
assert_eq "$(http_status "http://127.0.0.1:$gport/api/health")" 200 "still serving"

log "a reload that keeps the port and adds one works (our own sockets are no conflict)"
gw_config "$gport" "$p2"
kill -HUP "$SV"
deadline=$((SECONDS + 10))
until [ "$(reloads)" -ge 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "reload with an added address not done"
    sleep 0.05
done
wait_port "$p2"
assert_eq "$(http_status "http://127.0.0.1:$p2/api/health")" 200 "served on the added port"
assert_eq "$(http_status "http://127.0.0.1:$gport/api/health")" 200 "served on the kept port"
deadline=$((SECONDS + 5))
until [ "$(listeners "$gport")" = 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "the kept port has $(listeners "$gport") sockets, not 2"
    sleep 0.05
done

log "a reload that moves the admin listener to a new port works"
aport_old=$aport
aport=$a3
gw_config "$gport" "$p2"
kill -HUP "$SV"
deadline=$((SECONDS + 10))
until [ "$(reloads)" -ge 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "reload moving the admin listener not done"
    sleep 0.05
done
wait_port "$a3"
assert_eq "$(http_status "http://127.0.0.1:$a3/healthz")" 200 "admin on its new port"
deadline=$((SECONDS + 5))
until [ "$(listeners "$aport_old")" = 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "the old admin port still listens"
    sleep 0.05
done
stop_bg gw || fail "the gateway did not exit 0 on SIGTERM"
log "ok"
