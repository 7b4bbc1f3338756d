#!/usr/bin/env bash
# apigate mock (zero latency, 1 KB JSON, --threads 1) against nginx `return 200` with the same
# 1 KB body, 1 worker. Each server is pinned to CPU 1, wrk -t1 -c64 to CPU 0; the two servers are
# measured in alternation (RUNS times each) and the medians compared. Prints a table.
#
#   bench/mock_vs_nginx.sh [APIGATE]       env: RUNS=3 DURATION=5s CONNS=64 SERVER_CPU=1 LOAD_CPU=0
#
# Not a test: numbers depend on the machine and on what else runs on it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

AG_SRC=$(cd "$(dirname "$0")/.." && pwd)
APIGATE=${1:-${APIGATE:-$AG_SRC/build/apigate}}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

for c in nginx wrk taskset python3; do
    command -v "$c" >/dev/null || { echo "mock_vs_nginx: $c not found" >&2; exit 2; }
done
[ -x "$APIGATE" ] || { echo "mock_vs_nginx: $APIGATE is not executable" >&2; exit 2; }

W=$(mktemp -d /tmp/mock_vs_nginx.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT


# The same 1 KB JSON object for both: {"padding":"xxx…"} of exactly 1024 bytes.
BODY=$(python3 -c 'print("{\"padding\":\"" + "x" * (1024 - 14) + "\"}", end="")')
[ ${#BODY} -eq 1024 ] || { echo "body is ${#BODY} bytes" >&2; exit 1; }

NGINX_PORT=$(port)
mkdir -p "$W/nginx/logs"
cat >"$W/nginx/nginx.conf" <<NGX
daemon off;
master_process off;
worker_processes 1;
user root;
error_log $W/nginx/logs/error.log warn;
pid $W/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }
}
NGX

MOCK_PORT=$(port)
cat >"$W/mock.yaml" <<YML
routes:
  - {method: GET, path: '/*', handler: static, body: '{}', body_size: 1KB}
YML

taskset -c "$SERVER_CPU" nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" >"$W/nginx.out" 2>&1 &
NGINX_PID=$!
PIDS+=($NGINX_PID)
taskset -c "$SERVER_CPU" "$APIGATE" mock --listen "127.0.0.1:$MOCK_PORT" --threads 1 \
    --profile "$W/mock.yaml" >"$W/mock.out" 2>&1 &
MOCK_PID=$!
PIDS+=($MOCK_PID)
wait_port "$NGINX_PORT"
wait_port "$MOCK_PORT"

n_len=$(curl -s "http://127.0.0.1:$NGINX_PORT/x" | wc -c)
m_len=$(curl -s "http://127.0.0.1:$MOCK_PORT/x" | wc -c)
[ "$n_len" -eq 1024 ] && [ "$m_len" -eq 1024 ] ||
    { echo "body sizes differ: nginx $n_len, mock $m_len" >&2; exit 1; }

# CPU time (user + system) of a process in clock ticks, from /proc/PID/stat: on a shared machine
# CPU per request is steadier than req/s.

# run NAME PORT PID -> "req/s p99_ms cpu_us_per_request" (wrk --latency; p99 converted to ms)
run() {
    local out rps p99 c0 c1 n
    c0=$(cpu_ticks "$3")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$2/x")
    c1=$(cpu_ticks "$3")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
                            else if (v ~ /ms$/) { sub(/ms$/, "", v) }
                            else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
                            print v }' <<<"$out")
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        echo "warning: $1 run had errors:" >&2
        grep "Non-2xx\|Socket errors" <<<"$out" >&2
    fi
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    echo "$rps $p99 $(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
}


: >"$W/nginx.res"
: >"$W/mock.res"
for i in $(seq 1 "$RUNS"); do
    r=$(run nginx "$NGINX_PORT" "$NGINX_PID")
    echo "$r" >>"$W/nginx.res"
    echo "run $i nginx: $r" >&2
    r=$(run mock "$MOCK_PORT" "$MOCK_PID")
    echo "$r" >>"$W/mock.res"
    echo "run $i mock:  $r" >&2
done

n_rps=$(awk '{ print $1 }' "$W/nginx.res" | median)
m_rps=$(awk '{ print $1 }' "$W/mock.res" | median)
n_p99=$(awk '{ print $2 }' "$W/nginx.res" | median)
m_p99=$(awk '{ print $2 }' "$W/mock.res" | median)
n_cpu=$(awk '{ print $3 }' "$W/nginx.res" | median)
m_cpu=$(awk '{ print $3 }' "$W/mock.res" | median)

printf '\nwrk -t1 -c%s -d%s, 1 KB JSON, server on CPU %s, wrk on CPU %s, median of %s runs\n' \
    "$CONNS" "$DURATION" "$SERVER_CPU" "$LOAD_CPU" "$RUNS"
printf '%-28s %12s %10s %14s\n' "server" "req/s" "p99 ms" "CPU us/req"
printf '%-28s %12.0f %10.2f %14.2f\n' "nginx return 200 (1 worker)" "$n_rps" "$n_p99" "$n_cpu"
printf '%-28s %12.0f %10.2f %14.2f\n' "apigate mock --threads 1" "$m_rps" "$m_p99" "$m_cpu"
printf '%-28s %12.2f %10s %14.2f\n' "ratio mock/nginx" \
    "$(awk -v a="$m_rps" -v b="$n_rps" 'BEGIN { print a / b }')" "" \
    "$(awk -v a="$m_cpu" -v b="$n_cpu" 'BEGIN { print a / b }')"
echo "(req/s: higher is better; CPU us/req: lower is better. Load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
