#!/usr/bin/env bash
# A/B of two apigate binaries (a change against the commit before it), measured in the same run:
# pass-through (a pooled keep-alive upstream, nginx serving 1 KB of JSON) and cache hits (the same
# URI from memory), each binary pinned to CPU 1 with wrk and the origin on CPU 0, the binaries
# alternating run by run so that whatever else loads the machine loads both alike. Prints the
# median req/s, p99 and CPU µs per request of each, and the ratio new/old.
#
# Not a test. Usage: bench/ab.sh OLD_APIGATE NEW_APIGATE   env: RUNS=5 DURATION=5s CONNS=64
#                                                               SECTIONS="passthrough cache"
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OLD=${1:?usage: bench/ab.sh OLD_APIGATE NEW_APIGATE}
NEW=${2:?usage: bench/ab.sh OLD_APIGATE NEW_APIGATE}
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
SECTIONS=${SECTIONS:-passthrough cache}
for c in wrk nginx taskset python3; do
    command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 2; }
done
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "no apigate binary at $b" >&2; exit 2; }; done

W=$(mktemp -d /tmp/apigate-ab.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

OPORT=$(port)
mkdir -p "$W/www" "$W/origin"
python3 -c 'import json; s = json.dumps({"id": 1, "name": "bench", "pad": ""}); print(json.dumps({"id": 1, "name": "bench", "pad": "x" * (1024 - len(s) - 1)}), end="")' >"$W/www/item.json"
cat >"$W/origin/nginx.conf" <<EOF
daemon off;
master_process off;
user root;
error_log $W/origin/error.log error;
pid $W/origin/nginx.pid;
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $W/origin/body; proxy_temp_path $W/origin/proxy;
    fastcgi_temp_path $W/origin/fcgi; uwsgi_temp_path $W/origin/uwsgi; scgi_temp_path $W/origin/scgi;
    keepalive_requests 1000000;
    types { application/json json; }
    server { listen 127.0.0.1:$OPORT; root $W/www; etag off; }
}
EOF
taskset -c 0 nginx -p "$W/origin" -c "$W/origin/nginx.conf" &
PIDS+=($!)
wait_port "$OPORT"
mkdir -p "$W/www/c" && cp "$W/www/item.json" "$W/www/c/item.json"

run_one() { # run_one BINARY LABEL SECTION
    local port admin
    port=$(port)
    admin=$(port)
    cat >"$W/apigate.yaml" <<EOF
listen: 127.0.0.1:$port
admin: 127.0.0.1:$admin
workers: {threads: 1}
logging: {level: warn}
cache: {memory: 64MB}
upstreams:
  origin:
    servers: [127.0.0.1:$OPORT]
    pool: {max_connections: 128, max_idle: 128}
routes:
  - match: /c/
    upstream: origin
    cache: {ttl: 600s, override: true}
  - match: /
    upstream: origin
EOF
    taskset -c 1 "$1" serve -c "$W/apigate.yaml" 2>"$W/apigate.log" &
    local pid=$!
    wait_port "$port"
    sleep 0.3
    local path=/item.json
    [ "$3" = cache ] && path=/c/item.json
    local url="http://127.0.0.1:$port$path"
    taskset -c 0 wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null
    local c0 c1
    c0=$(cpu_ticks "$pid")
    taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url" >"$W/wrk.out"
    c1=$(cpu_ticks "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local reqs rps p99 cpu_us
    reqs=$(awk '/requests in/ { print $1 }' "$W/wrk.out")
    rps=$(awk '/Requests\/sec/ { print $2 }' "$W/wrk.out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }' "$W/wrk.out")
    cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
    echo "$3 $2 $rps $p99 $cpu_us" >>"$W/results"
    echo "  $3 $2: $rps req/s, p99 $p99 ms, $cpu_us µs CPU/req" >&2
}

: >"$W/results"
for s in $SECTIONS; do
    for r in $(seq 1 "$RUNS"); do
        if [ $((r % 2)) = 1 ]; then run_one "$OLD" old "$s"; run_one "$NEW" new "$s"
        else run_one "$NEW" new "$s"; run_one "$OLD" old "$s"; fi
    done
done
echo "| section | binary | req/s | p99 ms | CPU µs/req |"
echo "|---|---|---|---|---|"
for s in $SECTIONS; do
    for b in old new; do
        rps=$(awk -v s="$s" -v b="$b" '$1 == s && $2 == b { print $3 }' "$W/results" | median)
        p99=$(awk -v s="$s" -v b="$b" '$1 == s && $2 == b { print $4 }' "$W/results" | median)
        cpu=$(awk -v s="$s" -v b="$b" '$1 == s && $2 == b { print $5 }' "$W/results" | median)
        echo "| $s | $b | $rps | $p99 | $cpu |"
        eval "R_$b=$rps C_$b=$cpu"
    done
    awk -v a="$R_old" -v b="$R_new" -v c="$C_old" -v d="$C_new" -v s="$s" \
        'BEGIN { printf "| %s | new/old | %.3f | | %.3f |\n", s, b / a, d / c }'
done
