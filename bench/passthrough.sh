#!/usr/bin/env bash
# Pass-through benchmark: apigate vs nginx (proxy_pass with an upstream keepalive pool) vs HAProxy
# (http-reuse always) in front of the same origin (nginx serving a 1 KB JSON file).
#
# Pinned mode (the ANCHORS.md method): each proxy with one worker/thread pinned to CPU 1, wrk and
# the origin pinned to CPU 0, 64 keep-alive connections, RUNS alternating runs, medians. For each
# run the proxy's CPU time (utime+stime from /proc/PID/stat, all its processes) is divided by the
# requests wrk completed; for apigate, the time its loops spent busy polling (workers.busy_poll,
# apigate_loop_busy_poll_seconds_total, wall clock: pinned, it is part of that CPU time; unpinned,
# wrk and the origin ran within it) is shown beside it. Then an unpinned mode with two
# threads/workers per proxy.
#
# Not a test: prints a Markdown table (and the raw lines) to stdout. Usage:
#   bench/passthrough.sh [APIGATE_BINARY]        env: DURATION=10s RUNS=3 CONNS=64 MODES="pinned unpinned"
# A/B of two builds in one run: APIGATE_BASE=/path/to/old/apigate PROXIES="apigate apigate_base"
# (PROXIES: which of apigate, apigate_base, nginx, haproxy run, alternated in that order).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
MODES=${MODES:-pinned unpinned}
PROXIES=${PROXIES:-apigate nginx haproxy}
tools="wrk nginx taskset python3"
case " $PROXIES " in *" haproxy "*) tools="$tools haproxy" ;; esac
for c in $tools; do
    command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 2; }
done
[ -x "$APIGATE" ] || { echo "no apigate binary at $APIGATE" >&2; exit 2; }

W=$(mktemp -d /tmp/apigate-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT


# ---- origin: nginx, 1 KB JSON ----
OPORT=$(port)
mkdir -p "$W/www" "$W/origin"
python3 -c 'import json; s = json.dumps({"id": 1, "name": "bench", "pad": ""}); print(json.dumps({"id": 1, "name": "bench", "pad": "x" * (1024 - len(s) - 1)}), end="")' >"$W/www/item.json"
nginx_common() { # nginx_common DIR
    cat <<EOF
daemon off;
master_process off;
user root;
error_log $1/error.log error;
pid $1/nginx.pid;
EOF
}
nginx_http_common() { # nginx_http_common DIR
    cat <<EOF
    access_log off;
    client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fcgi;
    uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
EOF
}
{
    nginx_common "$W/origin"
    echo "worker_processes 1;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    nginx_http_common "$W/origin"
    echo "    types { application/json json; }"
    echo "    server { listen 127.0.0.1:$OPORT; root $W/www; etag off; }"
    echo "}"
} >"$W/origin/nginx.conf"
taskset -c 0 nginx -p "$W/origin" -c "$W/origin/nginx.conf" &
PIDS+=($!)
wait_port "$OPORT"

# ---- proxies ----
start_apigate() { # start_apigate THREADS CPUS [BINARY] -> sets PX_PID PX_PORT
    PX_PORT=$(port)
    local a
    a=$(port)
    PX_ADMIN=$a
    cat >"$W/apigate.yaml" <<EOF
listen: 127.0.0.1:$PX_PORT
admin: 127.0.0.1:$a
workers: {threads: $1}
logging: {level: warn}
upstreams:
  origin:
    servers: [127.0.0.1:$OPORT]
    pool: {max_connections: 128, max_idle: 128}
routes:
  - match: /
    upstream: origin
EOF
    taskset -c "$2" "${3:-$APIGATE}" serve -c "$W/apigate.yaml" 2>"$W/apigate.log" &
    PX_PID=$!
    PIDS+=($PX_PID)
    wait_port "$PX_PORT"
    sleep 0.3
}
start_nginx_proxy() { # THREADS CPUS
    PX_PORT=$(port)
    mkdir -p "$W/px"
    {
        nginx_common "$W/px"
        echo "worker_processes $1;"
        echo "events { worker_connections 4096; }"
        echo "http {"
        nginx_http_common "$W/px"
        echo "    upstream origin { server 127.0.0.1:$OPORT; keepalive 128; }"
        echo "    server { listen 127.0.0.1:$PX_PORT; location / { proxy_pass http://origin;"
        echo "        proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering on; } }"
        echo "}"
    } >"$W/px/nginx.conf"
    [ "$1" -gt 1 ] && sed -i 's/^master_process off;/master_process on;/' "$W/px/nginx.conf"
    taskset -c "$2" nginx -p "$W/px" -c "$W/px/nginx.conf" &
    PX_PID=$!
    PIDS+=($PX_PID)
    wait_port "$PX_PORT"
    sleep 0.3
}
start_haproxy() { # THREADS CPUS
    PX_PORT=$(port)
    cat >"$W/haproxy.cfg" <<EOF
global
    nbthread $1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
    option http-keep-alive
frontend fe
    bind 127.0.0.1:$PX_PORT
    default_backend be
backend be
    server o1 127.0.0.1:$OPORT
EOF
    taskset -c "$2" haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 &
    PX_PID=$!
    PIDS+=($PX_PID)
    wait_port "$PX_PORT"
    sleep 0.3
}
stop_proxy() {
    kill -TERM "$PX_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PX_PID" 2>/dev/null || true
    wait "$PX_PID" 2>/dev/null || true
}

# poll_seconds: the time apigate's loops spent busy polling (workers.busy_poll), 0 for others
poll_seconds() {
    [ -n "$PX_ADMIN" ] || { echo 0; return; }
    curl -s --max-time 5 "http://127.0.0.1:$PX_ADMIN/metrics" |
        awk '$1 == "apigate_loop_busy_poll_seconds_total" { print $2; f = 1 } END { if (!f) print 0 }'
}

# run_one NAME MODE RUN -> appends "name mode rps p99_ms cpu_us_per_req run poll_us_per_req" to
# $W/results
run_one() {
    local name=$1 mode=$2 run=$3 threads cpus wrkcpu wthreads
    PX_ADMIN=""
    if [ "$mode" = pinned ]; then threads=1; cpus=1; wrkcpu="taskset -c 0"; wthreads=1
    else threads=2; cpus=0,1; wrkcpu=""; wthreads=2; fi
    case $name in
    apigate) start_apigate "$threads" "$cpus" ;;
    apigate_base) start_apigate "$threads" "$cpus" "${APIGATE_BASE:?APIGATE_BASE: the binary to compare with}" ;;
    nginx) start_nginx_proxy "$threads" "$cpus" ;;
    haproxy) start_haproxy "$threads" "$cpus" ;;
    esac
    local url="http://127.0.0.1:$PX_PORT/item.json"
    # warm-up: fills the upstream pools, faults in the pages
    $wrkcpu wrk -t"$wthreads" -c"$CONNS" -d2s "$url" >/dev/null
    local c0 c1 s0 s1
    s0=$(poll_seconds)
    c0=$(cpu_ticks "$PX_PID")
    $wrkcpu wrk -t"$wthreads" -c"$CONNS" -d"$DURATION" --latency "$url" >"$W/wrk.out"
    c1=$(cpu_ticks "$PX_PID")
    sleep 0.3 # the worker publishes its counters every 250 ms
    s1=$(poll_seconds)
    stop_proxy
    local reqs rps p99 errs
    reqs=$(awk '/requests in/ { print $1 }' "$W/wrk.out")
    rps=$(awk '/Requests\/sec/ { print $2 }' "$W/wrk.out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }' "$W/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ { print }' "$W/wrk.out" | tr '\n' ' ')
    local cpu_us
    cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
    poll_us=$(awk -v a="$s0" -v b="$s1" -v r="$reqs" 'BEGIN { printf "%.2f", (b - a) * 1e6 / r }')
    echo "$name $mode $rps $p99 $cpu_us $run $poll_us" >>"$W/results"
    echo "  $mode run: $name $rps req/s, p99 ${p99} ms, ${cpu_us} µs CPU/req (${poll_us} polling) ${errs}" >&2
}


: >"$W/results"
for mode in $MODES; do
    for r in $(seq 1 "$RUNS"); do
        for name in $PROXIES; do
            run_one "$name" "$mode" "$r"
        done
    done
done

echo
echo "origin: nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 KB JSON; wrk -c$CONNS -d$DURATION, $RUNS alternating runs, medians; $(nproc) CPUs; $(date -u +%F)"
echo
# The ratios are medians of per-run ratios to the last proxy of PROXIES, each run against the one
# next to it in time: a machine whose speed drifts between runs moves both sides of a ratio.
ref=${PROXIES##* }
echo "| mode | proxy | req/s | p99 ms | CPU µs/req | busy poll µs/req (wall) | req/s ÷ $ref | p99 ÷ $ref | CPU ÷ $ref |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
ratio() { # ratio NAME MODE COLUMN: median over runs of NAME's COLUMN / ref's COLUMN
    awk -v n="$1" -v m="$2" -v c="$3" -v ref="$ref" '$2 == m && $1 == n { a[$6] = $c }
        $2 == m && $1 == ref { b[$6] = $c }
        END { for (r in a) if (r in b && b[r] > 0) print a[r] / b[r] }' "$W/results" | median
}
for mode in $MODES; do
    for name in $PROXIES; do
        rps=$(awk -v n="$name" -v m="$mode" '$1 == n && $2 == m { print $3 }' "$W/results" | median)
        p99=$(awk -v n="$name" -v m="$mode" '$1 == n && $2 == m { print $4 }' "$W/results" | median)
        cpu=$(awk -v n="$name" -v m="$mode" '$1 == n && $2 == m { print $5 }' "$W/results" | median)
        poll=$(awk -v n="$name" -v m="$mode" '$1 == n && $2 == m { print $7 }' "$W/results" | median)
        printf '| %s | %s | %.0f | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f |\n' "$mode" "$name" \
            "$rps" "$p99" "$cpu" "$poll" "$(ratio "$name" "$mode" 3)" "$(ratio "$name" "$mode" 4)" \
            "$(ratio "$name" "$mode" 5)"
    done
done
