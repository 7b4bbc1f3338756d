#!/usr/bin/env bash
# apigate load against wrk on the same target, in one run: nginx `return 200 "ok"` (Debian
# package, temp config, 1 worker) pinned to CPU 1, the generator pinned to CPU 0, -c 64, one
# thread and then two threads. Three alternating runs per tool and setting; prints medians of
# requests/s and of CPU time per request (utime+stime from /proc/PID/stat, polled until the
# process exits, so both tools lose the same ≤50 ms at the end).
#
#   bench/load_vs_wrk.sh [APIGATE] [DURATION_S=10]
# A/B of two builds of the generator in one run: APIGATE_BASE=/path/to/old/apigate
# TOOLS="apigate apigate_base" (TOOLS: which of wrk, apigate, apigate_base run, alternated).
#
# On a shared machine requests/s follow whatever else runs; CPU per request (and its inverse,
# requests per CPU-second) is the steadier comparison. Not a test: numbers depend on the machine.
# Needs nginx, wrk and jq on PATH.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
AG_SRC=$(cd "$(dirname "$0")/.." && pwd)
APIGATE=${1:-${APIGATE:-$AG_SRC/build/apigate}}
DUR=${2:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
TOOLS=${TOOLS:-wrk apigate}
THREADS=${THREADS:-1 2}
command -v nginx >/dev/null || { echo "nginx not found" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found" >&2; exit 2; }
[ -x "$APIGATE" ] || { echo "apigate binary not found: $APIGATE" >&2; exit 2; }

T=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NGINX_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

cat >"$T/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $T/nginx.pid;
error_log $T/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T;
  uwsgi_temp_path $T; scgi_temp_path $T;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$PORT; location / { return 200 "ok"; } }
}
CONF
taskset -c 1 nginx -c "$T/nginx.conf" -e "$T/error.log" &
NGINX_PID=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/"
TICKS=$(getconf CLK_TCK)

# run_tool NAME THREADS: runs one pinned generator, prints "<req/s> <cpu µs per request>".
run_tool() {
    local name=$1 threads=$2 out="$T/out" pid cpu=0 st reqs rps
    if [ "$name" = wrk ]; then
        taskset -c 0 wrk -t"$threads" -c"$CONNS" -d"${DUR}s" "$URL" >"$out" 2>&1 &
    else
        local bin=$APIGATE
        [ "$name" = apigate_base ] && bin=${APIGATE_BASE:?APIGATE_BASE: the binary to compare with}
        taskset -c 0 "$bin" load -q -t "$threads" -c "$CONNS" -d "${DUR}s" --json "$T/ag.json" \
            "$URL" >"$out" 2>&1 &
    fi
    pid=$!
    while st=$(cat "/proc/$pid/stat" 2>/dev/null); do
        # fields 14 and 15 (utime, stime) after the ")" that ends the command name
        cpu=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' <<<"$st")
        sleep 0.05
    done
    wait "$pid" || true
    if [ "$name" = wrk ]; then
        reqs=$(awk '/requests in/ { print $1 }' "$out")
        rps=$(awk '/Requests\/sec/ { print $2 }' "$out")
    else
        reqs=$(jq '.totals.requests' "$T/ag.json")
        rps=$(jq '.totals.rps' "$T/ag.json")
    fi
    awk -v r="$rps" -v n="$reqs" -v c="$cpu" -v hz="$TICKS" \
        'BEGIN { printf "%.0f %.3f\n", r, (n > 0 ? c / hz * 1e6 / n : 0) }'
}


echo "target: nginx return 200 on CPU 1; generators on CPU 0; -c $CONNS; ${DUR}s x $RUNS runs"
printf '%-8s %-8s %12s %16s %18s\n' threads tool "req/s" "cpu µs/req" "req per CPU-second"
for threads in $THREADS; do
    for tool in $TOOLS; do : >"$T/$tool.rps"; : >"$T/$tool.cpu"; done
    for _ in $(seq "$RUNS"); do
        for tool in $TOOLS; do
            read -r rps cpu < <(run_tool "$tool" "$threads")
            echo "$rps" >>"$T/$tool.rps"
            echo "$cpu" >>"$T/$tool.cpu"
        done
    done
    for tool in $TOOLS; do
        cpu=$(median <"$T/$tool.cpu")
        printf '%-8s %-12s %12s %16s %18s   (req/s runs: %s)\n' "$threads" "$tool" \
            "$(median <"$T/$tool.rps")" "$cpu" \
            "$(awk -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? 1e6 / c : 0) }')" \
            "$(tr '\n' ' ' <"$T/$tool.rps")"
    done
done
