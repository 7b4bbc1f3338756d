#!/usr/bin/env bash
# Shared rate limits on a Redis Cluster (issue 15): cache.redis: {cluster: [seeds]} as the issue
# writes it, three primaries; three gateways share rate: 200/s of one API key under ~1000/s and
# admit 200/s +-10% in total (from their metrics, after the burst); keys of several API keys land
# on several primaries (each key its own hash tag), every sync answered (no error, no redirect
# loop), and a key is never in clear.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_redis_cluster.sh"
require_cmd curl jq redis-server redis-cli python3

start_redis_cluster 3 0
P=("${CLUSTER_PORTS[@]}")
read -r mport g1 a1 g2 a2 g3 a3 <<<"$(free_ports 7)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/x, handler: echo}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
GW=("$g1:$a1" "$g2:$a2" "$g3:$a3")
for i in 0 1 2; do
    gp=${GW[$i]%:*} ap=${GW[$i]#*:}
    start_gateway "gw$i" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache:
  redis: {cluster: [127.0.0.1:${P[0]}, 127.0.0.1:${P[1]}]}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    rate_limit: {rate: 200/s, burst: 50, key: header:X-Api-Key, shared: true}
YAML
done
A=("$a1" "$a2" "$a3")
metric() { route_metric_sum "$1" /api/ "${@:2}"; } # NAME ADMIN...: /api/'s, summed
now() { date +%s.%N; }
in_range() { awk -v r="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r >= lo && r <= hi) }'; }

log "three gateways, 1000/s of key kc for 5 s, and 6 more keys at 10/s each"
pids=()
for i in 0 1 2; do
    gp=${GW[$i]%:*}
    "$APIGATE" load -q -t 1 -c 16 --rate 333/s -d 5s --max-failed 100% -H "X-Api-Key: kc" \
        --json "$T/l$i.json" "http://127.0.0.1:$gp/api/x" >"$T/l$i.out" 2>&1 &
    pids+=($!)
    for k in 1 2; do
        "$APIGATE" load -q -t 1 -c 2 --rate 10/s -d 5s --max-failed 100% -H "X-Api-Key: other-$i-$k" \
            --json "$T/o$i$k.json" "http://127.0.0.1:$gp/api/x" >"$T/o$i$k.out" 2>&1 &
        pids+=($!)
    done
done
sleep 1
t0=$(now); c0=$(metric apigate_rate_limit_admitted_total "${A[@]}")
sleep 2
keys=()
for p in "${P[@]}"; do keys+=("$(redis-cli -p "$p" --scan --pattern '*rl:*' | wc -l)"); done
sleep 1.5
t1=$(now); c1=$(metric apigate_rate_limit_admitted_total "${A[@]}")
for p in "${pids[@]}"; do wait "$p" || fail "a load failed"; done
# the other keys were admitted at 60/s in total: take them out
other=0
for f in "$T"/o*.json; do other=$((other + $(jq '.status["200"] // 0' "$f"))); done
olim=0
for f in "$T"/o*.json; do olim=$((olim + $(jq '.status["429"] // 0' "$f"))); done
od=$(jq '.duration_s' "$T/o01.json")
r=$(awk -v a="$c0" -v b="$c1" -v x="$t0" -v y="$t1" -v o="$other" -v od="$od" \
    'BEGIN { printf "%.1f", (b - a) / (y - x) - o / od }')
log "kc: $r/s admitted in total (metrics minus the other keys' $other in ${od}s); rl keys per primary: ${keys[*]}"
in_range "$r" 180 220 || fail "three gateways on a cluster admitted $r/s of kc, not 200/s +-10%"
[ "$olim" = 0 ] || fail "the other keys (10/s each) got $olim 429s"
used=0
for n in "${keys[@]}"; do [ "$n" -gt 0 ] && used=$((used + 1)); done
[ "$used" -ge 2 ] || fail "the keys of 7 API keys are all on one primary: ${keys[*]}"
errs=$(metric apigate_rate_limit_sync_errors_total "${A[@]}")
syncs=$(metric apigate_rate_limit_syncs_total "${A[@]}")
log "syncs $syncs, errors $errs"
assert_eq "$errs" 0 "sync errors on a healthy cluster"
[ "$syncs" -gt 300 ] || fail "only $syncs syncs"
for p in "${P[@]}"; do
    assert_not_contains "$(redis-cli -p "$p" --scan --pattern '*')" "kc" "an API key in clear"
done
log "ok"
