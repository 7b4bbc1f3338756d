#!/usr/bin/env bash
# Cache-hit benchmark: apigate (cache route) vs nginx proxy_cache vs Varnish (malloc storage) vs
# nginx returning the same 1 KB body as a static `return 200` (the practical limit of one core).
# Every proxy answers from its cache: the origin (nginx, 1 KB JSON, Cache-Control max-age=3600)
# is asked once per proxy during the warm-up.
#
# Method (ANCHORS.md): the server under test pinned to CPU 1 with one worker/thread, wrk -t1 on
# CPU 0, 64 keep-alive connections, RUNS alternating runs, medians. CPU per request = utime+stime
# of the server's processes over the measured run / requests (the number least disturbed by other
# load on a shared machine). Not a test: prints a Markdown table to stdout (progress on stderr).
# Usage:
#   bench/cache_hit.sh [APIGATE_BINARY]     env: DURATION=10s RUNS=3 CONNS=64 SERVERS="..."
# The rate limit filter's cost on hits: SERVERS="apigate apigate_rl apigate_rls" (apigate_rl: the
# same route with a rate_limit that admits everything; apigate_rls: the same limit shared through
# a redis-server started here on CPU 0); WRK_SCRIPT=file.lua is handed to wrk (-s), e.g. to send
# many API keys (bench/ratelimit.sh does both).
# A/B of two builds in one run: APIGATE_BASE=/path/to/old/apigate SERVERS="apigate apigate_base".
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
SERVERS=${SERVERS:-apigate nginx_cache varnish nginx_static}
tools="wrk nginx taskset python3 curl"
case " $SERVERS " in *" varnish "*) tools="$tools varnishd" ;; esac
case " $SERVERS " in *" apigate_rls "*) tools="$tools redis-server" ;; esac
WRK_S=()
[ -n "${WRK_SCRIPT:-}" ] && WRK_S=(-s "$WRK_SCRIPT")
for c in $tools; do
    command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 2; }
done
[ -x "$APIGATE" ] || { echo "no apigate binary at $APIGATE" >&2; exit 2; }

W=$(mktemp -d /tmp/apigate-cachebench.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT



# ---- origin ----
OPORT=$(port)
mkdir -p "$W/www" "$W/origin"
python3 -c 'import json; s = json.dumps({"id": 1, "name": "bench", "pad": ""}); print(json.dumps({"id": 1, "name": "bench", "pad": "x" * (1024 - len(s) - 1)}), end="")' >"$W/www/item.json"
BODY=$(cat "$W/www/item.json")
nginx_head() { # DIR WORKERS
    printf '%s\n' "daemon off;" "master_process off;" "user root;" "worker_processes $2;" \
        "error_log $1/error.log error;" "pid $1/nginx.pid;" "events { worker_connections 4096; }"
}
nginx_http() { # DIR
    printf '%s\n' "    access_log off;" \
        "    client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fcgi;" \
        "    uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;" "    keepalive_requests 1000000;"
}
{
    nginx_head "$W/origin" 1
    echo "http {"
    nginx_http "$W/origin"
    echo "    types { application/json json; }"
    echo "    server { listen 127.0.0.1:$OPORT; root $W/www; etag off;"
    echo "        add_header Cache-Control \"public, max-age=3600\"; }"
    echo "}"
} >"$W/origin/nginx.conf"
taskset -c 0 nginx -p "$W/origin" -c "$W/origin/nginx.conf" &
PIDS+=($!)
wait_port "$OPORT"

# ---- Redis, for the shared rate limit (on the load generator's CPU: not the server's CPU) ----
RPORT=""
case " $SERVERS " in
*" apigate_rls "*)
    RPORT=$(port)
    taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$W" >"$W/redis.log" 2>&1 &
    PIDS+=($!)
    wait_port "$RPORT"
    ;;
esac

start_server() { # NAME -> PX_PID PX_PORT
    PX_PORT=$(port)
    case $1 in
    apigate | apigate_base | apigate_rl | apigate_rls)
        # apigate_rl: the same route behind a rate limit that admits everything (the filter's
        # cost on a hit: key, SipHash, one locked cell, the RateLimit fields); apigate_rls: the
        # same, shared (plus each active key's sync every 50 ms, on the same CPU)
        local rl="" cache="cache: {memory: 256MB}"
        [ "$1" = apigate_rl ] && rl="    rate_limit: {rate: 10000000/s, key: header:X-Api-Key}"
        if [ "$1" = apigate_rls ]; then
            rl="    rate_limit: {rate: 10000000/s, key: header:X-Api-Key, shared: true}"
            cache="cache: {memory: 256MB, redis: \"redis://127.0.0.1:$RPORT/0\"}"
        fi
        printf '%s\n' "listen: 127.0.0.1:$PX_PORT" "admin: 127.0.0.1:$(port)" "workers: {threads: 1}" \
            "logging: {level: warn}" "$cache" "upstreams:" \
            "  origin: {servers: [127.0.0.1:$OPORT]}" "routes:" "  - match: /" \
            "    upstream: origin" "    cache: {}" "$rl" >"$W/apigate.yaml"
        local bin=$APIGATE
        [ "$1" = apigate_base ] && bin=${APIGATE_BASE:?APIGATE_BASE: the binary to compare with}
        taskset -c 1 "$bin" serve -c "$W/apigate.yaml" 2>"$W/$1.log" &
        ;;
    nginx_cache | nginx_static)
        mkdir -p "$W/$1"
        {
            nginx_head "$W/$1" 1
            echo "http {"
            nginx_http "$W/$1"
            if [ "$1" = nginx_cache ]; then
                echo "    proxy_cache_path $W/$1/cache levels=1:2 keys_zone=c:64m max_size=256m;"
                echo "    upstream origin { server 127.0.0.1:$OPORT; keepalive 16; }"
                echo "    server { listen 127.0.0.1:$PX_PORT; location / { proxy_pass http://origin;"
                echo "        proxy_http_version 1.1; proxy_set_header Connection \"\";"
                echo "        proxy_cache c; add_header X-Cache \$upstream_cache_status; } }"
            else
                echo "    server { listen 127.0.0.1:$PX_PORT; location / {"
                echo "        default_type application/json; return 200 '$BODY'; } }"
            fi
            echo "}"
        } >"$W/$1/nginx.conf"
        taskset -c 1 nginx -p "$W/$1" -c "$W/$1/nginx.conf" &
        ;;
    varnish)
        mkdir -p "$W/varnish"
        taskset -c 1 varnishd -F -n "$W/varnish" -a "127.0.0.1:$PX_PORT" -b "127.0.0.1:$OPORT" \
            -s malloc,256m -p thread_pools=1 >"$W/varnish.log" 2>&1 &
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

run_one() { # NAME -> appends "name rps p99_ms" to $W/results
    local name=$1
    start_server "$name"
    local url="http://127.0.0.1:$PX_PORT/item.json"
    local got
    got=$(curl -s "$url")
    [ "$got" = "$BODY" ] || { echo "$name: wrong body: $(head -c 200 <<<"$got")" >&2; exit 1; }
    taskset -c 0 wrk -t1 -c"$CONNS" -d2s "${WRK_S[@]}" "$url" >/dev/null # warm-up
    local c0 c1
    c0=$(cpu_ticks "$PX_PID")
    taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${WRK_S[@]}" "$url" >"$W/wrk.out"
    c1=$(cpu_ticks "$PX_PID")
    stop_server
    local rps p99 errs reqs cpu_us
    reqs=$(awk '/requests in/ { print $1 }' "$W/wrk.out")
    cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
    rps=$(awk '/Requests\/sec/ { print $2 }' "$W/wrk.out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }' "$W/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ { print }' "$W/wrk.out" | tr '\n' ' ')
    echo "$name $rps $p99 $cpu_us" >>"$W/results"
    echo "  $name: $rps req/s, p99 $p99 ms, $cpu_us µs CPU/req $errs" >&2
}


: >"$W/results"
for r in $(seq 1 "$RUNS"); do
    echo "run $r/$RUNS" >&2
    for name in $SERVERS; do run_one "$name"; done
done

declare -A RPS P99 CPU
for name in $SERVERS; do
    RPS[$name]=$(awk -v n="$name" '$1 == n { print $2 }' "$W/results" | median)
    P99[$name]=$(awk -v n="$name" '$1 == n { print $3 }' "$W/results" | median)
    CPU[$name]=$(awk -v n="$name" '$1 == n { print $4 }' "$W/results" | median)
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "| server (1 core, pinned) | req/s (median of $RUNS) | p99 ms | CPU µs/req | req/s: apigate / this | CPU: this / apigate |"
echo "|---|---:|---:|---:|---:|---:|"
for name in $SERVERS; do
    printf '| %s | %.0f | %.2f | %.2f | %s | %s |\n' "$name" "${RPS[$name]}" "${P99[$name]}" \
        "${CPU[$name]}" "$(ratio "${RPS[apigate]:-0}" "${RPS[$name]}")" \
        "$(ratio "${CPU[$name]}" "${CPU[apigate]:-0}")"
done
echo
echo "wrk -t1 -c$CONNS -d$DURATION on CPU 0; server on CPU 1; 1 KB body; $(nproc) CPUs; $(date -u +%Y-%m-%d)"
