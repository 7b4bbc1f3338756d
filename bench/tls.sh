#!/usr/bin/env bash
# HTTPS benchmark: apigate terminating TLS and answering from its cache vs nginx `return 200` over
# TLS (the static anchor of ANCHORS.md), both with an ECDSA P-256 certificate and TLS 1.3:
#   - keep-alive: wrk -t1 -c64 over HTTPS/1.1 (one handshake per connection, then records);
#   - new handshakes: wrk -t1 -c16 with 'Connection: close', so every request is a new TCP
#     connection and a full TLS handshake (wrk does not resume sessions): OpenSSL-bound.
# Method as bench/cache_hit.sh: server pinned to CPU 1 with one worker/thread, wrk on CPU 0,
# RUNS alternating runs, medians; CPU per request = utime+stime of the server's processes over
# the run / requests. Not a test: prints a Markdown table to stdout (progress on stderr).
# Usage:
#   bench/tls.sh [APIGATE_BINARY]     env: DURATION=10s RUNS=3 CONNS=64 HS_CONNS=16
#                                     MODES="keepalive handshake"
# A/B of two builds in one run: APIGATE_BASE=/path/to/old/apigate adds a server "apigate_base"
# (SERVERS="apigate apigate_base nginx_tls"), run in the same rotation, with its own rows and
# the ratios new / base.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
HS_CONNS=${HS_CONNS:-16}
MODES=${MODES:-keepalive handshake}
SERVERS="apigate nginx_tls"
[ -n "${APIGATE_BASE:-}" ] && SERVERS="apigate apigate_base nginx_tls"
for c in wrk nginx taskset python3 curl openssl; do
    command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 2; }
done
[ -x "$APIGATE" ] || { echo "no apigate binary at $APIGATE" >&2; exit 2; }

W=$(mktemp -d /tmp/apigate-tlsbench.XXXXXX)
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
        "error_log $1/error.log error;" "pid $1/nginx.pid;" "events { worker_connections 4096; }"
}
nginx_http() { # DIR
    printf '%s\n' "    access_log off;" \
        "    client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fcgi;" \
        "    uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;" "    keepalive_requests 1000000;"
}

# ---- origin (plain HTTP, asked once by apigate during the warm-up) ----
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
    apigate | apigate_base)
        [ "$1" = apigate_base ] && bin=$APIGATE_BASE
        printf '%s\n' "listen:" \
            "  - {address: 127.0.0.1:$PX_PORT, tls: {cert: $W/cert.pem, key: $W/key.pem}}" \
            "admin: 127.0.0.1:$(port)" "workers: {threads: 1}" "logging: {level: warn}" \
            "cache: {memory: 256MB}" "upstreams:" "  origin: {servers: [127.0.0.1:$OPORT]}" \
            "routes:" "  - {match: /, upstream: origin, cache: {}}" >"$W/apigate.yaml"
        taskset -c 1 "$bin" serve -c "$W/apigate.yaml" 2>"$W/apigate.log" &
        ;;
    nginx_tls)
        mkdir -p "$W/nginx_tls"
        {
            nginx_head "$W/nginx_tls"
            echo "http {"
            nginx_http "$W/nginx_tls"
            echo "    ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem;"
            echo "    ssl_protocols TLSv1.2 TLSv1.3;"
            echo "    server { listen 127.0.0.1:$PX_PORT ssl; location / {"
            echo "        default_type application/json; return 200 '$BODY'; } }"
            echo "}"
        } >"$W/nginx_tls/nginx.conf"
        taskset -c 1 nginx -p "$W/nginx_tls" -c "$W/nginx_tls/nginx.conf" &
        ;;
    esac
    PX_PID=$!
    PIDS+=("$PX_PID")
    wait_port "$PX_PORT"
    sleep 0.3
}
stop_server() {
    kill -TERM "$PX_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PX_PID" 2>/dev/null || true
    wait "$PX_PID" 2>/dev/null || true
}

# run_one NAME MODE (keepalive|handshake) -> appends "name mode rps p99_ms cpu_us" to results
run_one() {
    local name=$1 mode=$2
    start_server "$name"
    local url="https://localhost:$PX_PORT/item.json"
    local got
    got=$(curl -s --cacert "$W/cert.pem" "$url")
    [ "$got" = "$BODY" ] || { echo "$name: wrong body: $(head -c 200 <<<"$got")" >&2; exit 1; }
    local args=(-t1 -c"$CONNS")
    [ "$mode" = handshake ] && args=(-t1 -c"$HS_CONNS" -H 'Connection: close')
    taskset -c 0 wrk "${args[@]}" -d2s "$url" >/dev/null # warm-up (and the cache fill)
    local c0 c1
    c0=$(cpu_ticks "$PX_PID")
    taskset -c 0 wrk "${args[@]}" -d"$DURATION" --latency "$url" >"$W/wrk.out"
    c1=$(cpu_ticks "$PX_PID")
    stop_server
    local rps p99 reqs cpu_us errs
    reqs=$(awk '/requests in/ { print $1 }' "$W/wrk.out")
    cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
    rps=$(awk '/Requests\/sec/ { print $2 }' "$W/wrk.out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }' "$W/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ { print }' "$W/wrk.out" | tr '\n' ' ')
    echo "$name $mode $rps $p99 $cpu_us" >>"$W/results"
    echo "  $name $mode: $rps req/s, p99 $p99 ms, $cpu_us µs CPU/req $errs" >&2
}

: >"$W/results"
for r in $(seq 1 "$RUNS"); do
    echo "run $r/$RUNS" >&2
    # the order rotates every run, so that a change in the machine's load hits each alike
    order=$SERVERS
    for _ in $(seq 2 "$r"); do order="$(echo "$order" | awk '{ for (i = 2; i <= NF; i++) printf "%s ", $i; print $1 }')"; done
    for mode in $MODES; do
        for name in $order; do run_one "$name" "$mode"; done
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
med() { awk -v n="$1" -v m="$2" -v k="$3" '$1 == n && $2 == m { print $k }' "$W/results" | median; }
echo "| TLS 1.3, ECDSA P-256, 1 KB, 1 core | apigate req/s | nginx req/s | req/s ratio | apigate CPU µs/req | nginx CPU µs/req | CPU ratio | p99 ms apigate / nginx |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for mode in $MODES; do
  for a in $SERVERS; do
    [ "$a" = nginx_tls ] && continue
    ar=$(med "$a" $mode 3) nr=$(med nginx_tls $mode 3)
    ac=$(med "$a" $mode 5) nc=$(med nginx_tls $mode 5)
    ap=$(med "$a" $mode 4) np=$(med nginx_tls $mode 4)
    label="HTTPS keep-alive ($a cache hit vs nginx static), wrk -c$CONNS"
    [ "$mode" = handshake ] && label="new TLS connection per request ($a), wrk -c$HS_CONNS 'Connection: close'"
    printf '| %s | %.0f | %.0f | %s | %.2f | %.2f | %s | %.2f / %.2f |\n' "$label" "$ar" "$nr" \
        "$(ratio "$ar" "$nr")" "$ac" "$nc" "$(ratio "$ac" "$nc")" "$ap" "$np"
  done
done
if [ -n "${APIGATE_BASE:-}" ]; then
    echo
    echo "| new / base, medians | req/s | CPU µs/req |"
    echo "|---|---:|---:|"
    for mode in $MODES; do
        printf '| %s | %s | %s |\n' "$mode" "$(ratio "$(med apigate $mode 3)" "$(med apigate_base $mode 3)")" \
            "$(ratio "$(med apigate $mode 5)" "$(med apigate_base $mode 5)")"
    done
fi
echo
echo "medians of $RUNS runs of $DURATION; wrk -t1 on CPU 0, server on CPU 1; $(nproc) CPUs; $(date -u +%Y-%m-%d)"
