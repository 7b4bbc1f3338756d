#!/usr/bin/env bash
# L2 hit path: one Redis vs a 3-primary Redis Cluster (issue 15: req/s ratio >= 0.9). Gateway A
# fills N distinct keys (/b/1..N, 1 KB, from apigate mock) into each backend once; then RUNS
# times, alternating the order (single then cluster, cluster then single, ...), a fresh gateway B
# (empty L1, one loop thread) asks for /b/1, /b/2, ... once each for MEASURE, so every request is
# an L1 miss answered from L2 (MGET, insert in L1, write). Per run and backend: B's requests/s,
# its L2 hits and misses+errors (a miss would go to the origin and spoil the figure), B's CPU per
# hit (run time of all its threads from /proc/PID/task/*/schedstat, nanoseconds: the figure least
# disturbed by other load on a shared machine) and the Redis servers' CPU per hit (the single
# redis-server, or the three cluster nodes together: on this machine they share the cores with
# the gateway and the load generator). The ratios cluster / single are taken within each run
# (the two sides ran seconds apart, so under the same background load) and their median is
# reported against the goal.
# Not a test: prints a Markdown table to stdout (progress on stderr). Usage:
#   bench/cache_l2_cluster.sh [APIGATE_BINARY]
#   env: RUNS=7 FILL=15s MEASURE=2s VUS=32 (MEASURE short enough that B never outruns the fill;
#        each run reads the same keys through a fresh gateway)
#   PIN=1: the measured gateway on CPU 1, everything else (mock, Redis servers, load generator,
#   the fill) on CPU 0, so that the gateway's core is the one that limits req/s.
#   A/B of two builds in one run: APIGATE_BASE=/path/to/old/apigate: each run measures both
#   builds on both backends (the fill and the load generator are the new build's); a table per
#   build, and the medians of the per-run ratios new / base.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
RUNS=${RUNS:-7}
FILL=${FILL:-15s}
MEASURE=${MEASURE:-2s}
VUS=${VUS:-32}
ON_GW=() ON_REST=()
if [ "${PIN:-0}" = 1 ]; then
    command -v taskset >/dev/null || { echo "missing: taskset" >&2; exit 2; }
    ON_GW=(taskset -c 1) ON_REST=(taskset -c 0)
fi
for c in redis-server redis-cli jq curl; do
    command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 2; }
done
W=$(mktemp -d /tmp/apigate-l2bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

MPORT=$(port)
"$APIGATE" mock --print-default >"$W/mock.yaml"
echo "  - {method: GET, path: '/b/{id}', body_size: 1KB}" >>"$W/mock.yaml"
"${ON_REST[@]}" "$APIGATE" mock --listen "127.0.0.1:$MPORT" --profile "$W/mock.yaml" >"$W/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MPORT"

# one Redis
SPORT=$(port)
"${ON_REST[@]}" redis-server --port "$SPORT" --bind 127.0.0.1 --save '' --appendonly no >"$W/single.log" 2>&1 &
SINGLE_PID=$!
PIDS+=($!)
wait_port "$SPORT"
# a 3-primary cluster
CP=() BP=() CLUSTER_PIDS=()
for i in 0 1 2; do
    CP+=("$(port)")
    BP+=("$(port)")
    mkdir -p "$W/n$i"
    "${ON_REST[@]}" redis-server --port "${CP[$i]}" --cluster-port "${BP[$i]}" --cluster-enabled yes \
        --cluster-config-file "$W/n$i/nodes.conf" --dir "$W/n$i" --bind 127.0.0.1 --save '' \
        --appendonly no >"$W/n$i.log" 2>&1 &
    CLUSTER_PIDS+=($!)
    PIDS+=($!)
done
for i in 0 1 2; do wait_port "${CP[$i]}"; done
redis-cli --cluster create "127.0.0.1:${CP[0]}" "127.0.0.1:${CP[1]}" "127.0.0.1:${CP[2]}" \
    --cluster-yes >"$W/create.log" 2>&1
for _ in $(seq 100); do
    redis-cli -p "${CP[0]}" cluster info | grep -q cluster_state:ok && break
    sleep 0.1
done

gateway() { # NAME THREADS REDIS -> prints "PID PORT ADMIN"
    local gp ap
    gp=$(port)
    ap=$(port)
    cat >"$W/$1.yaml" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: $2}
cache: {redis: $3, redis_timeout: 200ms}
upstreams:
  api: {servers: [127.0.0.1:$MPORT]}
routes:
  - match: /b/
    upstream: api
    cache: {ttl: 10m, override: true}
YAML
    ${GW_ON:-} "${GW_BIN:-$APIGATE}" serve -c "$W/$1.yaml" >"$W/$1.log" 2>&1 &
    echo "$! $gp $ap"
}
scenario() { # PORT DURATION FILE
    cat >"$3" <<YAML
base_url: http://127.0.0.1:$1
vus: $VUS
duration: $2
requests:
  - {name: b, path: '/b/{{seq}}', headers: {Host: bench.test}}
YAML
}

# Stops PID (a gateway started by gateway(), not our child) and waits up to 5 s for it to go.
stop() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
}

# CPU time (ns) of PID, its threads and its direct children's threads.
cpu_ns() {
    local p t total=0
    for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null || true; done); do
        for t in /proc/"$p"/task/*/schedstat; do
            [ -r "$t" ] && total=$((total + $(cut -d' ' -f1 "$t" 2>/dev/null || echo 0)))
        done
    done
    echo "$total"
}

declare -A URL FILLED REDIS_PIDS
URL[single]="redis://127.0.0.1:$SPORT/0"
URL[cluster]="{cluster: [127.0.0.1:${CP[0]}, 127.0.0.1:${CP[1]}]}"
REDIS_PIDS[single]=$SINGLE_PID
REDIS_PIDS[cluster]="${CLUSTER_PIDS[*]}"
for backend in single cluster; do
    read -r apid agp aap <<<"$(GW_ON="${ON_REST[*]}" gateway "fill-$backend" 2 "${URL[$backend]}")"
    PIDS+=("$apid")
    wait_port "$agp"
    sleep 0.5
    scenario "$agp" "$FILL" "$W/fill.yaml"
    "${ON_REST[@]}" "$APIGATE" load run "$W/fill.yaml" -q --json "$W/fill-$backend.json" >/dev/null 2>&1 || true
    FILLED[$backend]=$(jq '.totals.requests' "$W/fill-$backend.json")
    stop "$apid"
    echo "$backend: filled ${FILLED[$backend]} keys" >&2
done

declare -A BIN
BIN[new]=$APIGATE
BUILDS=new
if [ -n "${APIGATE_BASE:-}" ]; then
    [ -x "$APIGATE_BASE" ] || { echo "APIGATE_BASE: no binary at $APIGATE_BASE" >&2; exit 2; }
    BIN[base]=$APIGATE_BASE
    BUILDS="new base"
fi

measure() { # RUN BUILD BACKEND -> a row in $W/rows: run build backend rps hits misses gw_us redis_us
    local run=$1 build=$2 backend=$3 bpid bgp bap g0 g1 r0 r1 st rps hits misses
    read -r bpid bgp bap <<<"$(GW_ON="${ON_GW[*]}" GW_BIN=${BIN[$build]} gateway "hit-$backend" 1 "${URL[$backend]}")"
    PIDS+=("$bpid")
    wait_port "$bgp"
    sleep 0.5
    scenario "$bgp" "$MEASURE" "$W/hit.yaml"
    g0=$(cpu_ns "$bpid")
    r0=$(cpu_ns ${REDIS_PIDS[$backend]})
    "${ON_REST[@]}" "$APIGATE" load run "$W/hit.yaml" -q --json "$W/hit.json" >/dev/null 2>&1 || true
    g1=$(cpu_ns "$bpid")
    r1=$(cpu_ns ${REDIS_PIDS[$backend]})
    st=$(curl -s "http://127.0.0.1:$bap/cache/stats")
    stop "$bpid"
    rps=$(jq '.totals.rate_requests / .totals.rate_s' "$W/hit.json")
    hits=$(jq '.l2.hits' <<<"$st")
    misses=$(jq '.l2.misses + .l2.errors' <<<"$st")
    awk -v run="$run" -v build="$build" -v b="$backend" -v rps="$rps" -v h="$hits" -v m="$misses" \
        -v g="$((g1 - g0))" -v r="$((r1 - r0))" \
        'BEGIN { printf "%d %s %s %.0f %d %d %.2f %.2f\n", run, build, b, rps, h, m, h ? g / 1e3 / h : 0, h ? r / 1e3 / h : 0 }' \
        >>"$W/rows"
    echo "run $run $build $backend: $(tail -1 "$W/rows" | cut -d' ' -f4) req/s, L2 hits $hits, misses+errors $misses, load avg $(cut -d' ' -f1 /proc/loadavg)" >&2
    [ "$misses" = 0 ] ||
        echo "warning: run $run $build $backend: B outran the fill (misses went to the origin): raise FILL or lower MEASURE" >&2
}

: >"$W/rows"
for run in $(seq 1 "$RUNS"); do
    if [ $((run % 2)) = 1 ]; then order="single cluster"; else order="cluster single"; fi
    builds=$BUILDS
    [ $((run % 4)) -ge 2 ] && builds=$(echo "$BUILDS" | tr ' ' '\n' | tac | tr '\n' ' ')
    for build in $builds; do
        for backend in $order; do measure "$run" "$build" "$backend"; done
    done
done

echo "L2 hits through a fresh gateway (1 loop thread, $VUS VUs, $MEASURE per side, $RUNS runs alternating the order; filled: single ${FILLED[single]}, cluster ${FILLED[cluster]} keys; load avg at the end $(cut -d' ' -f1-3 /proc/loadavg))"
col() { # BUILD BACKEND FIELD -> that field of the rows, one per line, by run
    awk -v w="$1" -v b="$2" -v f="$3" '$2 == w && $3 == b { print $1, $f }' "$W/rows" | sort -n | cut -d' ' -f2
}
div_median() { paste -d' ' <(col "$1" "$2" "$3") <(col "$4" "$5" "$3") | awk '{ print $1 / $2 }' | median; }
for build in $BUILDS; do
    echo
    [ "$BUILDS" = new ] || echo "build: $build (${BIN[$build]})"
    echo
    echo "| run | single req/s | cluster req/s | req/s cluster / single | gateway CPU µs/hit single | cluster | CPU/hit cluster / single | Redis CPU µs/hit single | cluster (3 nodes) | misses+errors |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -v w="$build" '$2 == w { k = $1; r[$3, k] = $4; m[k] += $6; g[$3, k] = $7; rd[$3, k] = $8; if (k > n) n = k }
         END { for (i = 1; i <= n; i++)
                 printf "| %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d |\n", i,
                   r["single", i], r["cluster", i], r["cluster", i] / r["single", i],
                   g["single", i], g["cluster", i], g["cluster", i] / g["single", i],
                   rd["single", i], rd["cluster", i], m[i] }' "$W/rows"
    RPS_RATIO=$(div_median "$build" cluster 4 "$build" single)
    CPU_RATIO=$(div_median "$build" cluster 7 "$build" single)
    printf '| median | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | |\n' \
        "$(col "$build" single 4 | median)" "$(col "$build" cluster 4 | median)" "$RPS_RATIO" \
        "$(col "$build" single 7 | median)" "$(col "$build" cluster 7 | median)" "$CPU_RATIO" \
        "$(col "$build" single 8 | median)" "$(col "$build" cluster 8 | median)"
    echo
    awk -v w="$build" -v r="$RPS_RATIO" -v c="$CPU_RATIO" 'BEGIN {
        printf "%s: median req/s ratio cluster / single: %.2f (goal >= 0.9: %s); median gateway CPU per hit cluster / single: %.2f\n",
            w, r, (r >= 0.9 ? "met" : "NOT met"), c }'
done
if [ "$BUILDS" != new ]; then
    echo
    for backend in single cluster; do
        printf 'new / base, %s: median req/s ratio %.2f, median gateway CPU per hit ratio %.2f\n' "$backend" \
            "$(div_median new "$backend" 4 base "$backend")" "$(div_median new "$backend" 7 base "$backend")"
    done
fi
