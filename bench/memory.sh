#!/usr/bin/env bash
# Memory: the peak RSS of every apigate process in a typical run (mock ← serve with a cache ←
# load, 64 connections for DURATION), and the gateway's memory per idle keep-alive client
# connection: CONNS_IDLE connections each send one request (a cache hit), then stay open and idle;
# the worker's RSS before and after, divided by the count. nginx (one process, proxy_pass to the
# same mock, keep-alive to clients) is measured the same way as the anchor.
#
#   bench/memory.sh [APIGATE]      env: DURATION=5s CONNS_IDLE=5000
#
# Not a test. The last lines are machine-readable for bench/run.sh:
#   mem: peak_rss_kb <process> <kB>
#   mem: idle_conn_bytes <server> <bytes>
set -euo pipefail
AG_SRC=$(cd "$(dirname "$0")/.." && pwd)
APIGATE=${1:-${APIGATE:-$AG_SRC/build/apigate}}
DURATION=${DURATION:-5s}
CONNS_IDLE=${CONNS_IDLE:-5000}
for c in python3 curl; do command -v "$c" >/dev/null || { echo "memory: $c not found" >&2; exit 2; }; done
[ -x "$APIGATE" ] || { echo "memory: $APIGATE is not executable" >&2; exit 2; }
# Room for the idle connections (client and server ends are both in processes we start).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

W=$(mktemp -d /tmp/apigate-mem.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
    for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "memory: nothing answers $1" >&2; exit 1
}
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

MP=$(port) GP=$(port) AP=$(port) NP=$(port)
"$APIGATE" mock --listen "127.0.0.1:$MP" --threads 1 --profile "$AG_SRC/examples/mock-bench.yaml" \
    >"$W/mock.log" 2>&1 &
MOCK=$!; PIDS+=("$MOCK")
cat >"$W/gw.yaml" <<CONF
listen: 127.0.0.1:$GP
admin: 127.0.0.1:$AP
workers: {threads: 1}
server: {keepalive_timeout: 300s, max_connections: 100000}
cache: {memory: 64MB}
upstreams:
  api: {servers: [127.0.0.1:$MP], pool: {max_connections: 64, max_idle: 64}}
routes:
  - {match: /, upstream: api, cache: {ttl: 60s, override: true}}
CONF
"$APIGATE" serve -c "$W/gw.yaml" >"$W/gw.log" 2>&1 &
SUP=$!; PIDS+=("$SUP")
wait_http "http://127.0.0.1:$MP/x"
wait_http "http://127.0.0.1:$AP/readyz"
WORKER=$(pgrep -P "$SUP" | head -n1)
[ -n "$WORKER" ] || { echo "memory: no gateway worker under pid $SUP" >&2; exit 1; }

# 1. A loaded run: 64 connections, a few hundred distinct cached paths.
"$APIGATE" load -c 64 -d "$DURATION" -q "http://127.0.0.1:$GP/item" >"$W/load.out" 2>&1 &
LOAD=$!; PIDS+=("$LOAD")
load_peak=0
while kill -0 "$LOAD" 2>/dev/null; do
    v=$(kb "$LOAD" VmHWM); [ -n "$v" ] && [ "$v" -gt "$load_peak" ] && load_peak=$v
    sleep 0.2
done
wait "$LOAD" || true
rps=$(awk '/http_reqs/ { print $0; exit }' "$W/load.out")

# 2. Idle keep-alive connections: each sends one request, reads the answer, stays open.
cat >"$W/idle.py" <<'PY'
import socket, sys, time, os
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
# measure SERVER_PID PORT: prints bytes per idle connection (RSS growth / connections).
measure() {
    local pid=$1 p=$2 name=$3
    sleep 0.5
    local before after
    before=$(kb "$pid" VmRSS)
    rm -f "$W/ready"
    python3 "$W/idle.py" "$p" "$CONNS_IDLE" "$W/ready" &
    local cl=$!; PIDS+=("$cl")
    for _ in $(seq 1 600); do [ -s "$W/ready" ] && break; kill -0 "$cl" 2>/dev/null || break; sleep 0.1; done
    [ -s "$W/ready" ] || { echo "memory: idle client against $name failed" >&2; exit 1; }
    sleep 1
    after=$(kb "$pid" VmRSS)
    kill "$cl" 2>/dev/null; wait "$cl" 2>/dev/null || true
    awk -v a="$after" -v b="$before" -v n="$CONNS_IDLE" -v name="$name" \
        'BEGIN { printf "%s %d %d %.0f\n", name, b, a, (a - b) * 1024 / n }' >>"$W/idle"
}
measure "$WORKER" "$GP" apigate

# The anchor: nginx, one process, proxy_pass with a keep-alive pool to the same mock.
if command -v nginx >/dev/null; then
    mkdir -p "$W/nginx"
    cat >"$W/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $W/nginx.pid; error_log $W/nginx/error.log;
events { worker_connections 100000; }
http {
    access_log off;
    client_body_temp_path $W/nginx; proxy_temp_path $W/nginx; fastcgi_temp_path $W/nginx;
    uwsgi_temp_path $W/nginx; scgi_temp_path $W/nginx;
    keepalive_timeout 300s; keepalive_requests 100000;
    upstream mock { server 127.0.0.1:$MP; keepalive 64; }
    server { listen 127.0.0.1:$NP;
             location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
    nginx -c "$W/nginx.conf" -e "$W/nginx/error.log" >"$W/nginx.log" 2>&1 &
    NGX=$!; PIDS+=("$NGX")
    wait_http "http://127.0.0.1:$NP/item"
    measure "$NGX" "$NP" nginx
    ngx_peak=$(kb "$NGX" VmHWM)
fi

echo
echo "Peak RSS (VmHWM) after a ${DURATION} run of apigate load -c 64 through the gateway (cache hits) to the mock:"
echo
echo "| process | peak RSS |"
echo "|---|---:|"
printf '| apigate mock --threads 1 | %s kB |\n' "$(kb "$MOCK" VmHWM)"
printf '| apigate serve: supervisor | %s kB |\n' "$(kb "$SUP" VmHWM)"
printf '| apigate serve: worker (1 thread, cache 64MB limit) | %s kB |\n' "$(kb "$WORKER" VmHWM)"
printf '| apigate load -c 64 | %s kB |\n' "$load_peak"
[ -n "${ngx_peak:-}" ] && printf '| nginx (1 process, after the idle test) | %s kB |\n' "$ngx_peak"
echo
echo "Memory per idle keep-alive client connection ($CONNS_IDLE connections, each after one request):"
echo
echo "| server | RSS before | RSS with the connections | bytes per connection |"
echo "|---|---:|---:|---:|"
while read -r name b a per; do printf '| %s | %s kB | %s kB | %s |\n' "$name" "$b" "$a" "$per"; done <"$W/idle"
echo
echo "load: $rps"
printf 'mem: peak_rss_kb mock %s\nmem: peak_rss_kb supervisor %s\nmem: peak_rss_kb worker %s\nmem: peak_rss_kb load %s\n' \
    "$(kb "$MOCK" VmHWM)" "$(kb "$SUP" VmHWM)" "$(kb "$WORKER" VmHWM)" "$load_peak"
while read -r name b a per; do echo "mem: idle_conn_bytes $name $per"; done <"$W/idle"
