#!/usr/bin/env bash
# Shared sliding windows (issue 15) and their fallback: rate_limit: {rate: 200/s, algorithm:
# sliding_window, shared: true} over three gateways and one Redis, offered ~1000/s (a third on
# each): admitted in total (the gateways' metrics) about 200/s (the sliding estimate under a
# steady flood admits ~182/s per calendar window, as one instance alone does: 160..220); then
# Redis is killed: no request fails, each gateway counts its window alone (400..800/s in total:
# 600 at length, more at the switch since the local windows held less),
# the fallback gauge is 1 on each and the sync errors count. (A sync slower than the Redis timeout
# on a loaded machine counts an error with Redis up too: only the growth is checked.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli

read -r mport rport g1 a1 g2 a2 g3 a3 <<<"$(free_ports 8)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/x, handler: echo}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
wait_port "$rport"
gw() { # gw NAME PORT ADMIN
    start_gateway "$1" "$2" "$3" <<YAML
listen: 127.0.0.1:$2
admin: 127.0.0.1:$3
workers: {threads: 2}
cache: {redis: "redis://127.0.0.1:$rport/0"}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    rate_limit: {rate: 200/s, algorithm: sliding_window, key: header:X-Api-Key, shared: true}
YAML
}
metric() { route_metric_sum "$1" /api/ "${@:2}"; } # NAME ADMIN...: /api/'s, summed
now() { date +%s.%N; }
LOADPIDS=()
load() { # load NAME PORT RATE KEY SECONDS
    "$APIGATE" load -q -t 1 -c 16 --rate "$3" -d "$5s" --max-failed 100% -H "X-Api-Key: $4" \
        --json "$T/$1.json" "http://127.0.0.1:$2/api/x" >"$T/$1.out" 2>&1 &
    LOADPIDS+=($!)
}
wait_loads() {
    local p
    for p in "${LOADPIDS[@]}"; do wait "$p" || fail "a load failed: $(tail -3 "$T"/*.out)"; done
    LOADPIDS=()
}
in_range() { awk -v r="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r >= lo && r <= hi) }'; }

gw gw1 "$g1" "$a1"
gw gw2 "$g2" "$a2"
gw gw3 "$g3" "$a3"
# rate SECONDS: admitted/s in total over SECONDS, from the metrics (the loads run meanwhile)
rate() {
    local t0 c0 t1 c1
    t0=$(now); c0=$(metric apigate_rate_limit_admitted_total "$a1" "$a2" "$a3")
    sleep "$1"
    t1=$(now); c1=$(metric apigate_rate_limit_admitted_total "$a1" "$a2" "$a3")
    awk -v a="$c0" -v b="$c1" -v x="$t0" -v y="$t1" 'BEGIN { printf "%.1f", (b - a) / (y - x) }'
}

log "three gateways sharing a 200/s sliding window: ~333/s of k1 on each; Redis killed at ~5.5 s"
load l1 "$g1" 333/s k1 12
load l2 "$g2" 333/s k1 12
load l3 "$g3" 334/s k1 12
sleep 1.5
shared=$(rate 3)
e0=$(metric apigate_rate_limit_sync_errors_total "$a1" "$a2" "$a3")
log "shared: $shared/s admitted in total; Redis killed"
stop_bg redis || true
fb=0
for _ in $(seq 1 50); do
    fb=$(metric apigate_rate_limit_fallback "$a1" "$a2" "$a3")
    [ "$fb" = 3 ] && break
    sleep 0.1
done
assert_eq "$fb" 3 "the fallback gauge of the three gateways after the kill"
sleep 1.2 # the windows counted alone: the previous one's weight goes
alone=$(rate 1.5)
t_alone=$(now)
wait_loads
t_end=$(now)
e1=$(metric apigate_rate_limit_sync_errors_total "$a1" "$a2" "$a3")
bad=0
for f in l1 l2 l3; do
    bad=$((bad + $(jq '[.status | to_entries[] | select(.key != "200" and .key != "429") | .value] | add // 0' "$T/$f.json")))
done
log "alone: $alone/s admitted in total; sync errors $e0 -> $e1; requests neither 200 nor 429: $bad"
# the loads must have outlasted the measures (a loaded machine: the metrics' curls are slow)
awk -v a="$t_alone" -v b="$t_end" 'BEGIN { exit !(b - a > 0.3) }' ||
    fail "the loads ended before the measures did: the machine is too loaded"
in_range "$shared" 160 220 || fail "three gateways admitted $shared/s together, not about 200/s"
in_range "$alone" 400 800 || fail "with Redis down the three admitted $alone/s, not each its own 200/s"
[ "$e1" -gt "$e0" ] || fail "no sync error counted with Redis down"
assert_eq "$bad" 0 "requests that failed"
log "ok"
