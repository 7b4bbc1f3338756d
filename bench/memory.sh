#!/usr/bin/env bash
# Memory of apigate and of the anchors, in front of the same origin (apigate mock, 1 KB JSON):
#  1. peak RSS (VmHWM, summed over the server's processes) after DURATION of wrk -t1 -c64 through
#     it: apigate serve (cache hits), nginx proxy_cache, Varnish (malloc), HAProxy (pass-through);
#     and of the load generators themselves (apigate load vs wrk, -c64, against the origin);
#  2. memory per idle keep-alive client connection: CONNS_IDLE connections each send one request,
#     read the answer and stay open; (RSS with them - RSS before) / CONNS_IDLE.
# One process/worker/thread per server, so the numbers compare like for like.
#
#   bench/memory.sh [APIGATE]      env: DURATION=5s CONNS_IDLE=5000 SERVERS="apigate nginx varnish haproxy"
#
# Not a test. The last lines are machine-readable for bench/run.sh:
#   mem: peak_rss_kb <process> <kB>
#   mem: idle_conn_bytes <server> <bytes>
set -euo pipefail
. "$(dirname "$0")/lib.sh"
AG_SRC=$(cd "$(dirname "$0")/.." && pwd)
APIGATE=${1:-${APIGATE:-$AG_SRC/build/apigate}}
DURATION=${DURATION:-5s}
CONNS_IDLE=${CONNS_IDLE:-5000}
SERVERS=${SERVERS:-apigate nginx varnish haproxy}
for c in python3 curl wrk; do command -v "$c" >/dev/null || { echo "memory: $c not found" >&2; exit 2; }; done
[ -x "$APIGATE" ] || { echo "memory: $APIGATE is not executable" >&2; exit 2; }
# Room for the idle connections (client and server ends are both in processes started here).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

W=$(mktemp -d /tmp/apigate-mem.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT
wait_http() {
    for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "memory: nothing answers $1" >&2
    exit 1
}
# kB of a /proc/PID/status field (VmHWM, VmRSS), summed over PID and its children.
kb() {
    local total=0 p v
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        v=$(awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
# peak_of CMD...: runs CMD, polls its VmHWM until it exits, prints the peak in kB.
peak_of() {
    "$@" >"$W/peak.out" 2>&1 &
    local pid=$! peak=0 v
    PIDS+=("$pid")
    while kill -0 "$pid" 2>/dev/null; do
        v=$(kb "$pid" VmHWM)
        [ "$v" -gt "$peak" ] && peak=$v
        sleep 0.1
    done
    wait "$pid" || true
    echo "$peak"
}

MP=$(port)
"$APIGATE" mock --listen "127.0.0.1:$MP" --threads 1 --profile "$AG_SRC/examples/mock-bench.yaml" \
    >"$W/mock.log" 2>&1 &
MOCK=$!
PIDS+=("$MOCK")
wait_http "http://127.0.0.1:$MP/item"

start_server() { # NAME -> SRV_PID SRV_PORT
    SRV_PORT=$(port)
    case $1 in
    apigate)
        cat >"$W/gw.yaml" <<CONF
listen: 127.0.0.1:$SRV_PORT
admin: 127.0.0.1:$(port)
workers: {threads: 1}
logging: {level: warn}
server: {keepalive_timeout: 300s, max_connections: 9000}
cache: {memory: 64MB}
upstreams:
  api: {servers: [127.0.0.1:$MP], pool: {max_connections: 64, max_idle: 64}}
routes:
  - {match: /, upstream: api, cache: {ttl: 60s, override: true}}
CONF
        "$APIGATE" serve -c "$W/gw.yaml" >"$W/gw.log" 2>&1 &
        ;;
    nginx)
        mkdir -p "$W/nginx"
        cat >"$W/nginx/nginx.conf" <<CONF
daemon off; master_process off; user root; worker_processes 1;
pid $W/nginx/nginx.pid; error_log $W/nginx/error.log error;
events { worker_connections 9000; }
http {
    access_log off;
    client_body_temp_path $W/nginx; proxy_temp_path $W/nginx; fastcgi_temp_path $W/nginx;
    uwsgi_temp_path $W/nginx; scgi_temp_path $W/nginx;
    keepalive_timeout 300s; keepalive_requests 1000000;
    proxy_cache_path $W/nginx/cache levels=1:2 keys_zone=c:64m max_size=256m;
    upstream mock { server 127.0.0.1:$MP; keepalive 64; }
    server { listen 127.0.0.1:$SRV_PORT;
             location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection "";
                          proxy_cache c; proxy_cache_valid 200 60s; } }
}
CONF
        nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" >"$W/nginx.log" 2>&1 &
        ;;
    varnish)
        mkdir -p "$W/varnish"
        varnishd -F -n "$W/varnish" -a "127.0.0.1:$SRV_PORT" -b "127.0.0.1:$MP" -s malloc,64m \
            -p thread_pools=1 -p timeout_idle=300 >"$W/varnish.log" 2>&1 &
        ;;
    haproxy)
        cat >"$W/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 9000
defaults
    mode http
    timeout connect 1s
    timeout client 300s
    timeout server 30s
    timeout http-keep-alive 300s
    http-reuse always
frontend f
    bind 127.0.0.1:$SRV_PORT
    default_backend b
backend b
    server s1 127.0.0.1:$MP
CONF
        haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 &
        ;;
    esac
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_http "http://127.0.0.1:$SRV_PORT/item"
    [ "$1" = apigate ] && wait_http "$(awk '/^admin:/ { print "http://" $2 "/readyz" }' "$W/gw.yaml")"
    sleep 0.3
}
stop_server() {
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
}

cat >"$W/idle.py" <<'PY'
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
req = b"GET /item HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    need = int(cl[0].split(b":")[1]) if cl else 0
    while len(body) < need:
        body += s.recv(65536)
    socks.append(s)
open(ready, "w").write("%d\n" % len(socks))
time.sleep(600)
PY
# idle_bytes NAME: RSS growth per idle connection of the running server.
idle_bytes() {
    local before after cl
    sleep 0.5
    before=$(kb "$SRV_PID" VmRSS)
    rm -f "$W/ready"
    python3 "$W/idle.py" "$SRV_PORT" "$CONNS_IDLE" "$W/ready" &
    cl=$!
    PIDS+=("$cl")
    for _ in $(seq 1 600); do [ -s "$W/ready" ] && break; kill -0 "$cl" 2>/dev/null || break; sleep 0.1; done
    [ -s "$W/ready" ] || { echo "memory: idle client against $1 failed" >&2; exit 1; }
    sleep 1
    after=$(kb "$SRV_PID" VmRSS)
    kill "$cl" 2>/dev/null
    wait "$cl" 2>/dev/null || true
    awk -v a="$after" -v b="$before" -v n="$CONNS_IDLE" -v name="$1" \
        'BEGIN { printf "%s %d %d %.0f\n", name, b, a, (a - b) * 1024 / n }' >>"$W/idle"
}

: >"$W/peak"
: >"$W/idle"
for s in $SERVERS; do
    case $s in apigate) ;; varnish) command -v varnishd >/dev/null || continue ;; *) command -v "$s" >/dev/null || continue ;; esac
    echo "memory: $s" >&2
    start_server "$s"
    wrk -t1 -c64 -d"$DURATION" "http://127.0.0.1:$SRV_PORT/item" >"$W/wrk-$s.out" 2>&1 || true
    echo "$s $(kb "$SRV_PID" VmHWM) $(awk '/Requests\/sec/ { print $2 }' "$W/wrk-$s.out")" >>"$W/peak"
    idle_bytes "$s"
    stop_server
done
ag_load=$(peak_of "$APIGATE" load -c 64 -d "$DURATION" -q "http://127.0.0.1:$MP/item")
wrk_load=$(peak_of wrk -t1 -c64 -d"$DURATION" "http://127.0.0.1:$MP/item")

what() {
    case $1 in
    apigate) echo "apigate serve, cache hits (supervisor + worker, 1 thread)" ;;
    nginx) echo "nginx proxy_cache (1 process)" ;;
    varnish) echo "Varnish malloc (manager + child, 1 pool)" ;;
    haproxy) echo "HAProxy pass-through (nbthread 1)" ;;
    esac
}
echo
echo "Peak RSS (VmHWM) after ${DURATION} of wrk -t1 -c64 through each server to apigate mock (1 KB JSON):"
echo
echo "| process | peak RSS | req/s in that run |"
echo "|---|---:|---:|"
while read -r name k r; do printf '| %s | %s kB | %.0f |\n' "$(what "$name")" "$k" "${r:-0}"; done <"$W/peak"
printf '| apigate mock --threads 1 (the origin, after everything) | %s kB | |\n' "$(kb "$MOCK" VmHWM)"
printf '| apigate load -c 64 (against the origin) | %s kB | |\n' "$ag_load"
printf '| wrk -t1 -c64 (against the origin) | %s kB | |\n' "$wrk_load"
echo
echo "Memory per idle keep-alive client connection ($CONNS_IDLE connections, each after one request):"
echo
echo "| server | RSS before | RSS with the connections | bytes per connection |"
echo "|---|---:|---:|---:|"
while read -r name b a per; do printf '| %s | %s kB | %s kB | %s |\n' "$name" "$b" "$a" "$per"; done <"$W/idle"
echo
while read -r name k r; do echo "mem: peak_rss_kb $name $k"; done <"$W/peak"
echo "mem: peak_rss_kb mock $(kb "$MOCK" VmHWM)"
echo "mem: peak_rss_kb apigate_load $ag_load"
echo "mem: peak_rss_kb wrk $wrk_load"
while read -r name b a per; do echo "mem: idle_conn_bytes $name $per"; done <"$W/idle"
