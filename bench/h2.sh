#!/usr/bin/env bash
# HTTP/2 benchmark: apigate answering cache hits over h2 (TLS 1.3, ECDSA P-256, 1 KB JSON) against
# h2o 2.2 and nginx `http2` serving the same 1 KB file statically (the anchors of issue 13).
#   - throughput: h2load -t1 -c64 -m10 on CPU 0, the server pinned to CPU 1 with one worker /
#     thread; req/s, and server CPU per request = utime+stime of the server's processes over the
#     run / requests (h2load saturates its own core before h2o does: CPU/request is the figure
#     that compares servers);
#   - memory per idle connection: IDLE connections that each made one request and stay open,
#     (RSS with them - RSS before) / IDLE, once over h2 (ALPN h2) and once over HTTPS/1.1.
# Not a test: prints a Markdown table to stdout (progress on stderr). One run per server by
# default (RUNS=3 for medians); give the numbers as ratios of one run.
# Usage:
#   bench/h2.sh [APIGATE_BINARY]   env: DURATION=10 RUNS=1 CONNS=64 STREAMS=10 IDLE=2000
#                                  SERVERS="apigate h2o nginx" MEMORY=1 PROTO=h2|h2c
#                                  APIGATE_B=other/binary (adds a server "apigate_b": before/after)
# PROTO=h2c runs cleartext prior-knowledge h2 (apigate only: h2o and nginx need TLS for h2 here).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
DURATION=${DURATION:-10}
RUNS=${RUNS:-1}
CONNS=${CONNS:-64}
STREAMS=${STREAMS:-10}
IDLE=${IDLE:-2000}
SERVERS=${SERVERS:-apigate h2o nginx}
MEMORY=${MEMORY:-1}
PROTO=${PROTO:-h2}
[ -n "${APIGATE_B:-}" ] && SERVERS="$SERVERS apigate_b"
for c in h2load nginx taskset python3 curl openssl; do
    command -v "$c" >/dev/null || { echo "missing: $c (scripts/deps.sh bench)" >&2; exit 2; }
done
[ -x "$APIGATE" ] || { echo "no apigate binary at $APIGATE" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

W=$(mktemp -d /tmp/apigate-h2bench.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$W/key.pem" -out "$W/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

nginx_head() { # DIR
    printf '%s\n' "daemon off;" "master_process off;" "user root;" "worker_processes 1;" \
        "error_log $1/error.log error;" "pid $1/nginx.pid;" "events { worker_connections 9000; }"
}
nginx_http() { # DIR
    printf '%s\n' "    access_log off;" \
        "    client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fcgi;" \
        "    uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;" "    keepalive_requests 1000000;" \
        "    keepalive_timeout 300s;"
}
# kB of a /proc/PID/status field (VmRSS), summed over PID and its children.
kb() {
    local total=0 p v
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        v=$(awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ---- the 1 KB body: served statically by h2o and nginx, by the origin to apigate's cache ----
OPORT=$(port)
mkdir -p "$W/www" "$W/origin"
python3 -c 'import json; s = json.dumps({"id": 1, "name": "bench", "pad": ""}); print(json.dumps({"id": 1, "name": "bench", "pad": "x" * (1024 - len(s) - 1)}), end="")' >"$W/www/item.json"
BODY=$(cat "$W/www/item.json")
{
    nginx_head "$W/origin"
    echo "http {"
    nginx_http "$W/origin"
    echo "    types { application/json json; }"
    echo "    server { listen 127.0.0.1:$OPORT; root $W/www;"
    echo "        location / { add_header Cache-Control \"max-age=3600\"; } }"
    echo "}"
} >"$W/origin/nginx.conf"
taskset -c 0 nginx -p "$W/origin" -c "$W/origin/nginx.conf" &
PIDS+=($!)
wait_port "$OPORT"

start_server() { # NAME -> PX_PID PX_PORT
    PX_PORT=$(port)
    local bin=$APIGATE
    case $1 in
    apigate | apigate_b)
        [ "$1" = apigate_b ] && bin=$APIGATE_B
        local l="  - {address: 127.0.0.1:$PX_PORT, tls: {cert: $W/cert.pem, key: $W/key.pem}}"
        [ "$PROTO" = h2c ] && l="  - 127.0.0.1:$PX_PORT"
        printf '%s\n' "listen:" "$l" \
            "admin: 127.0.0.1:$(port)" "workers: {threads: 1}" "logging: {level: warn}" \
            "server: {keepalive_timeout: 300s, max_connections: 9000}" \
            "http2: {max_concurrent_streams: 100}" \
            "cache: {memory: 256MB}" "upstreams:" "  origin: {servers: [127.0.0.1:$OPORT]}" \
            "routes:" "  - {match: /, upstream: origin, cache: {}}" >"$W/apigate.yaml"
        taskset -c 1 "$bin" serve -c "$W/apigate.yaml" 2>"$W/apigate.log" &
        ;;
    h2o)
        mkdir -p "$W/h2o"
        cat >"$W/h2o/h2o.conf" <<CONF
num-threads: 1
max-connections: 9000
http2-idle-timeout: 300
access-log: /dev/null
error-log: $W/h2o/error.log
pid-file: $W/h2o/h2o.pid
listen:
  port: $PX_PORT
  host: 127.0.0.1
  ssl:
    certificate-file: $W/cert.pem
    key-file: $W/key.pem
    ocsp-update-interval: 0
hosts:
  "localhost":
    paths:
      /:
        file.dir: $W/www
CONF
        taskset -c 1 h2o -m master -c "$W/h2o/h2o.conf" 2>"$W/h2o/stderr" &
        ;;
    nginx)
        mkdir -p "$W/nginx"
        {
            nginx_head "$W/nginx"
            echo "http {"
            nginx_http "$W/nginx"
            echo "    types { application/json json; }"
            echo "    ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem;"
            echo "    ssl_protocols TLSv1.2 TLSv1.3;"
            echo "    server { listen 127.0.0.1:$PX_PORT ssl http2; root $W/www; }"
            echo "}"
        } >"$W/nginx/nginx.conf"
        taskset -c 1 nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" &
        ;;
    esac
    PX_PID=$!
    PIDS+=("$PX_PID")
    wait_port "$PX_PORT"
    sleep 0.5
}
stop_server() {
    kill -TERM "$PX_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PX_PID" 2>/dev/null || true
    wait "$PX_PID" 2>/dev/null || true
}
url_of() { # PORT
    if [ "$PROTO" = h2c ]; then echo "http://127.0.0.1:$1/item.json"; else echo "https://localhost:$1/item.json"; fi
}

# run_one NAME -> appends "name rps cpu_us" to results
run_one() {
    local name=$1 url got
    start_server "$name"
    url=$(url_of "$PX_PORT")
    if [ "$PROTO" = h2c ]; then
        got=$(curl -s --http2-prior-knowledge "$url")
    else
        got=$(curl -s --http2 --cacert "$W/cert.pem" "$url")
    fi
    [ "$got" = "$BODY" ] || { echo "$name: wrong body: $(head -c 200 <<<"$got")" >&2; exit 1; }
    taskset -c 0 h2load -t1 -c"$CONNS" -m"$STREAMS" -D 2 "$url" >/dev/null # warm-up (cache fill)
    local c0 c1
    c0=$(cpu_ticks "$PX_PID")
    taskset -c 0 h2load -t1 -c"$CONNS" -m"$STREAMS" -D "$DURATION" "$url" >"$W/h2load.out"
    c1=$(cpu_ticks "$PX_PID")
    stop_server
    local rps reqs cpu_us proto
    reqs=$(awk '/^requests:/ { print $8 }' "$W/h2load.out") # succeeded
    rps=$(awk '/^finished in/ { print $4 }' "$W/h2load.out")
    proto=$(awk '/^Application protocol:/ { print $3 }' "$W/h2load.out")
    [ "$proto" = h2 ] || [ "$proto" = h2c ] || { echo "$name: protocol $proto, not h2" >&2; cat "$W/h2load.out" >&2; exit 1; }
    cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
    echo "$name $rps $cpu_us" >>"$W/results"
    echo "  $name: $rps req/s, $cpu_us µs CPU/req ($reqs requests; $(grep -E '^requests:|^time for request:' "$W/h2load.out" | tr -s " " | tr "\n" " "))" >&2
}

# idle connections: one request each over h2 (ALPN h2) or HTTPS/1.1, then they stay open
cat >"$W/idle.py" <<'PY'
import socket, ssl, struct, sys, time
port, n, mode, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"] if mode == "h2" else ["http/1.1"])
def frames(s, buf):
    while len(buf) < 9:
        buf += s.recv(65536)
    ln = int.from_bytes(buf[0:3], "big")
    while len(buf) < 9 + ln:
        buf += s.recv(65536)
    return buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9 + ln:]
path = b"/item.json"
host = b"localhost"
# HPACK: :method GET, :scheme https, :path literal, :authority literal (static-table names)
hdr = b"\x82\x87\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(host)]) + host
socks = []
for i in range(n):
    raw = socket.create_connection(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    if mode == "h2":
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +
                  struct.pack(">I", len(hdr))[1:] + b"\x01\x05\x00\x00\x00\x01" + hdr)
        buf, done = b"", False
        while not done:
            t, fl, sid, buf = frames(s, buf)
            if t == 4 and not fl & 1:
                s.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            if sid == 1 and t in (0, 1) and fl & 1:
                done = True
    else:
        s.sendall(b"GET /item.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
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
# idle_bytes NAME MODE -> appends "name mode bytes_per_conn" to idle
idle_bytes() {
    local name=$1 mode=$2 before after cl
    start_server "$name"
    sleep 0.5
    before=$(kb "$PX_PID" VmRSS)
    rm -f "$W/ready"
    python3 "$W/idle.py" "$PX_PORT" "$IDLE" "$mode" "$W/ready" &
    cl=$!
    PIDS+=("$cl")
    for _ in $(seq 1 1200); do [ -s "$W/ready" ] && break; kill -0 "$cl" 2>/dev/null || break; sleep 0.1; done
    [ -s "$W/ready" ] || { echo "idle client ($mode) against $name failed" >&2; exit 1; }
    sleep 1
    after=$(kb "$PX_PID" VmRSS)
    kill "$cl" 2>/dev/null
    wait "$cl" 2>/dev/null || true
    stop_server
    awk -v a="$after" -v b="$before" -v n="$IDLE" -v name="$name" -v m="$mode" \
        'BEGIN { printf "%s %s %.0f\n", name, m, (a - b) * 1024 / n }' >>"$W/idle"
    echo "  $name idle $mode: $(tail -1 "$W/idle" | awk '{print $3}') bytes/connection" >&2
}

: >"$W/results"
: >"$W/idle"
have() { case $1 in apigate | apigate_b) return 0 ;; *) command -v "$1" >/dev/null ;; esac; }
for r in $(seq 1 "$RUNS"); do
    echo "run $r/$RUNS" >&2
    for name in $SERVERS; do
        have "$name" || { echo "  $name: not installed, skipped" >&2; continue; }
        [ "$PROTO" = h2c ] && [ "${name#apigate}" = "$name" ] && continue
        run_one "$name"
    done
done
if [ "$MEMORY" = 1 ] && [ "$PROTO" = h2 ]; then
    for name in $SERVERS; do
        have "$name" || continue
        [ "$name" = h2o ] && continue # no per-connection figure asked of it; nginx is the anchor
        idle_bytes "$name" h2
        idle_bytes "$name" http1
    done
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
med() { awk -v n="$1" -v k="$2" '$1 == n { print $k }' "$W/results" | median; }
ref=$(echo "$SERVERS" | awk '{print $1}')
echo "| $PROTO, 1 KB, 1 core, h2load -c$CONNS -m$STREAMS | req/s | CPU µs/req | req/s: $ref ÷ this | CPU/req: $ref ÷ this |"
echo "|---|---:|---:|---:|---:|"
for name in $SERVERS; do
    grep -q "^$name " "$W/results" || continue
    rr=$(med "$name" 2) cc=$(med "$name" 3)
    printf '| %s | %.0f | %.2f | %s | %s |\n' "$name" "$rr" "$cc" "$(ratio "$(med "$ref" 2)" "$rr")" \
        "$(ratio "$(med "$ref" 3)" "$cc")"
done
if [ -s "$W/idle" ]; then
    echo
    echo "| memory per idle connection (after one request), bytes | over h2 | over HTTPS/1.1 |"
    echo "|---|---:|---:|"
    for name in $SERVERS; do
        grep -q "^$name " "$W/idle" || continue
        printf '| %s | %s | %s |\n' "$name" "$(awk -v n="$name" '$1 == n && $2 == "h2" { print $3 }' "$W/idle")" \
            "$(awk -v n="$name" '$1 == n && $2 == "http1" { print $3 }' "$W/idle")"
    done
fi
echo
echo "medians of $RUNS run(s) of ${DURATION}s; h2load -t1 on CPU 0, server on CPU 1; $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine shared with other sessions: compare the ratios of one run, not the absolute figures"
