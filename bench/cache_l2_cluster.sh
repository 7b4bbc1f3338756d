#!/usr/bin/env bash
# L2 hit path: one Redis vs a 3-primary Redis Cluster (issue 15: req/s ratio >= 0.9). Gateway A
# fills N distinct keys (/b/1..N, 1 KB, from apigate mock) into Redis; a fresh gateway B (empty L1,
# one loop thread) then asks for the same keys once each, so every request is an L1 miss answered
# from L2 (MGET, insert in L1, write). Reported per backend: B's requests/s, its L2 hits and misses
# (a miss would go to the origin and spoil the figure), the gateway's CPU per hit (utime+stime of
# its processes: the figure least disturbed by other load on a shared machine), and the ratio.
# Not a test: prints a Markdown table to stdout. Usage:
#   bench/cache_l2_cluster.sh [APIGATE_BINARY]      env: FILL=12s MEASURE=2s VUS=32 (MEASURE short enough that B never outruns the fill)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
FILL=${FILL:-12s}
MEASURE=${MEASURE:-2s}
VUS=${VUS:-32}
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
"$APIGATE" mock --listen "127.0.0.1:$MPORT" --profile "$W/mock.yaml" >"$W/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MPORT"

# one Redis
SPORT=$(port)
redis-server --port "$SPORT" --bind 127.0.0.1 --save '' --appendonly no >"$W/single.log" 2>&1 &
PIDS+=($!)
wait_port "$SPORT"
# a 3-primary cluster
CP=() BP=()
for i in 0 1 2; do
    CP+=("$(port)")
    BP+=("$(port)")
    mkdir -p "$W/n$i"
    redis-server --port "${CP[$i]}" --cluster-port "${BP[$i]}" --cluster-enabled yes \
        --cluster-config-file "$W/n$i/nodes.conf" --dir "$W/n$i" --bind 127.0.0.1 --save '' \
        --appendonly no >"$W/n$i.log" 2>&1 &
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
    "$APIGATE" serve -c "$W/$1.yaml" >"$W/$1.log" 2>&1 &
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

declare -A RPS HITS MISSES CPU
for backend in single cluster; do
    if [ "$backend" = single ]; then R="redis://127.0.0.1:$SPORT/0"
    else R="{cluster: [127.0.0.1:${CP[0]}, 127.0.0.1:${CP[1]}]}"; fi
    read -r apid agp aap <<<"$(gateway "fill-$backend" 2 "$R")"
    PIDS+=("$apid")
    wait_port "$agp"
    sleep 0.5
    scenario "$agp" "$FILL" "$W/fill.yaml"
    "$APIGATE" load run "$W/fill.yaml" -q --json "$W/fill-$backend.json" >/dev/null 2>&1 || true
    filled=$(jq '.totals.requests' "$W/fill-$backend.json")
    kill -TERM "$apid"
    read -r bpid bgp bap <<<"$(gateway "hit-$backend" 1 "$R")"
    PIDS+=("$bpid")
    wait_port "$bgp"
    sleep 0.5
    scenario "$bgp" "$MEASURE" "$W/hit.yaml"
    t0=$(cpu_ticks "$bpid")
    "$APIGATE" load run "$W/hit.yaml" -q --json "$W/hit-$backend.json" >/dev/null 2>&1 || true
    t1=$(cpu_ticks "$bpid")
    st=$(curl -s "http://127.0.0.1:$bap/cache/stats")
    RPS[$backend]=$(jq '.totals.rate_requests / .totals.rate_s' "$W/hit-$backend.json")
    HITS[$backend]=$(jq '.l2.hits' <<<"$st")
    MISSES[$backend]=$(jq '.l2.misses + .l2.errors' <<<"$st")
    CPU[$backend]=$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v n="${HITS[$backend]}" \
        'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')
    kill -TERM "$bpid"
    echo "$backend: filled $filled keys, B: ${RPS[$backend]} req/s, L2 hits ${HITS[$backend]}, misses+errors ${MISSES[$backend]}" >&2
    [ "${MISSES[$backend]}" = 0 ] ||
        echo "warning: $backend: B outran the fill (misses went to the origin): raise FILL or lower MEASURE" >&2
    # the next backend starts from empty Redis contents of its own
done

echo "| L2 backend | requests/s (L2 hits) | gateway CPU µs per hit | L2 hits | L2 misses+errors |"
echo "|---|---|---|---|---|"
for b in single cluster; do
    printf '| %s | %.0f | %s | %s | %s |\n' "$b" "${RPS[$b]}" "${CPU[$b]}" "${HITS[$b]}" "${MISSES[$b]}"
done
awk -v c="${RPS[cluster]}" -v s="${RPS[single]}" -v cc="${CPU[cluster]}" -v cs="${CPU[single]}" \
    'BEGIN { printf "\nreq/s ratio cluster / single: %.2f (goal >= 0.9); CPU per hit cluster / single: %.2f\n", c / s, cc / cs }'
