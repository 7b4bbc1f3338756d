#!/usr/bin/env bash
# Reloads and recycles under load lose no request (issue 14 item 2): `wrk -c64` through the gateway
# to a fast origin (nginx) while the gateway gets 10 SIGHUPs, then again while max_requests
# recycles the worker: 0 socket errors and 0 non-2xx answers. The race this guards against is the
# keep-alive one: an old worker that closed an idle kept-alive connection just as the client sent
# its next request on it (wrk: "Socket errors: read"). The old worker now reads each idle
# connection until the next request arrives (answered with Connection: close) or a grace passes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl wrk nginx pgrep

read -r nport gport aport < <(free_ports 3)
mkdir -p "$T/www"
printf '{"ok":true}\n' >"$T/www/item.json"
nginx_conf "$T/nginx" <<EOF
    types { application/json json; }
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        root $T/www;
    }
EOF
start_nginx nginx "$T/nginx" "$nport"

gw_config() { # gw_config MAX_REQUESTS
    cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1, drain_timeout: 10s, max_requests: $1}
upstreams:
  web: {servers: [127.0.0.1:$nport]}
routes:
  - {match: /, upstream: web}
EOF
}
gw_config 0
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$gport"
wait_port "$aport"
assert_eq "$(http_status "http://127.0.0.1:$gport/item.json")" 200 "origin through the gateway"

# run_wrk SECONDS NAME: wrk -c64 in the background, output in $T/NAME.wrk; PID in WRK_PID.
run_wrk() {
    wrk -t1 -c64 -d"$1"s --timeout 5s "http://127.0.0.1:$gport/item.json" >"$T/$2.wrk" 2>&1 &
    WRK_PID=$!
}
# check_wrk NAME: no socket error, no non-2xx, and requests really flowed.
check_wrk() {
    local out
    out=$(cat "$T/$1.wrk")
    log "$1: $(grep -E 'requests in|Socket errors|Non-2xx' <<<"$out" | tr '\n' ' ')"
    grep -q 'requests in' <<<"$out" || fail "$1: wrk did not finish: $out"
    ! grep -q 'Socket errors' <<<"$out" || fail "$1: socket errors under reload: $(grep 'Socket errors' <<<"$out")"
    ! grep -q 'Non-2xx' <<<"$out" || fail "$1: non-2xx answers under reload: $(grep 'Non-2xx' <<<"$out")"
    local n
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    [ "$n" -ge 1000 ] || fail "$1: only $n requests: the load did not run"
}

log "10 SIGHUPs under wrk -c64"
run_wrk 7 reload
sleep 1
for i in $(seq 1 10); do
    kill -HUP "$SV"
    sleep 0.45
done
wait "$WRK_PID" || true
check_wrk reload
[ "$(grep -c 'reload' "$T/gw.log")" -ge 10 ] || fail "fewer than 10 reloads logged: $(grep -c reload "$T/gw.log")"

log "max_requests recycles under wrk -c64"
gw_config 20000
kill -HUP "$SV"
sleep 1
before=$(grep -c 'asking for a recycle' "$T/gw.log" || true)
run_wrk 6 recycle
wait "$WRK_PID" || true
check_wrk recycle
after=$(grep -c 'asking for a recycle' "$T/gw.log" || true)
[ "$after" -gt "$before" ] || fail "no max_requests recycle happened during the load"
log "$((after - before)) recycles"
log "ok"
