#!/usr/bin/env bash
# Shared rate limits behind Sentinel (issue 15): a primary, a replica and three sentinels on free
# ports; two gateways given cache.redis: {sentinels: [...], master: mymaster} share rate: 200/s of
# one API key under ~1000/s (200/s +-10% from their metrics); SENTINEL failover under the load:
# no request fails, the syncs move to the new primary (its keys appear there) and the two share
# 200/s again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli redis-sentinel python3

read -r mport p0 p1 s0 s1 s2 gpa apa gpb apb <<<"$(free_ports 10)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/x, handler: echo}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg primary redis-server --port "$p0" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
start_bg replica redis-server --port "$p1" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" \
    --replicaof 127.0.0.1 "$p0"
wait_port "$p0"
wait_port "$p1"
for s in "$s0" "$s1" "$s2"; do
    cat >"$T/sentinel-$s.conf" <<CONF
port $s
bind 127.0.0.1
dir $T
sentinel monitor mymaster 127.0.0.1 $p0 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
CONF
    start_bg "sentinel-$s" redis-sentinel "$T/sentinel-$s.conf"
done
for s in "$s0" "$s1" "$s2"; do wait_port "$s"; done
ok=0
for _ in $(seq 100); do
    if redis-cli -p "$s0" sentinel ckquorum mymaster 2>/dev/null | grep -q '^OK' &&
        [ "$(redis-cli -p "$s0" sentinel replicas mymaster 2>/dev/null | grep -c "$p1")" -ge 1 ] &&
        [ "$(redis-cli -p "$p1" info replication | tr -d '\r' | awk -F: '$1 == "master_link_status" { print $2 }')" = up ]; then
        ok=1
        break
    fi
    sleep 0.1
done
assert_eq "$ok" 1 "sentinels see the primary, the replica and each other"

for n in a b; do
    if [ "$n" = a ]; then gp=$gpa ap=$apa; else gp=$gpb ap=$apb; fi
    start_gateway "gw-$n" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache:
  redis: {sentinels: [127.0.0.1:$s0, 127.0.0.1:$s1, 127.0.0.1:$s2], master: mymaster}
  redis_timeout: 100ms
  redis_reconnect: 100ms
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    rate_limit: {rate: 200/s, burst: 50, key: header:X-Api-Key, shared: true}
YAML
done
A=("$apa" "$apb")
metric() { route_metric_sum "$1" /api/ "${@:2}"; } # NAME ADMIN...: /api/'s, summed
now() { date +%s.%N; }
rate() { # rate SECONDS: admitted/s over both gateways
    local t0 t1 c0 c1
    t0=$(now); c0=$(metric apigate_rate_limit_admitted_total "${A[@]}")
    sleep "$1"
    t1=$(now); c1=$(metric apigate_rate_limit_admitted_total "${A[@]}")
    awk -v a="$c0" -v b="$c1" -v x="$t0" -v y="$t1" 'BEGIN { printf "%.1f", (b - a) / (y - x) }'
}
in_range() { awk -v r="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r >= lo && r <= hi) }'; }

log "load: ~1000/s of key ks over both gateways for 14 s"
pids=()
for gp in "$gpa" "$gpb"; do
    "$APIGATE" load -q -t 1 -c 16 --rate 500/s -d 14s --max-failed 100% -H "X-Api-Key: ks" \
        --json "$T/l$gp.json" "http://127.0.0.1:$gp/api/x" >"$T/l$gp.out" 2>&1 &
    pids+=($!)
done
sleep 1
r0=$(rate 2.5)
log "before the failover: $r0/s admitted in total"
in_range "$r0" 180 220 || fail "behind Sentinel: $r0/s, not 200/s +-10%"

# EVAL calls a node ran (the syncs; a replica runs none: replication sends their effects)
evals() { redis-cli -p "$1" info commandstats | tr -d '\r' | awk -F'[=,:]' '$1 == "cmdstat_eval" { print $3 }' | grep . || echo 0; }
[ "$(evals "$p1")" = 0 ] || fail "the replica ran syncs before the failover"
log "SENTINEL failover"
t0=$(now)
redis-cli -p "$s0" sentinel failover mymaster >/dev/null
ok=0
for _ in $(seq 150); do
    if [ "$(redis-cli -p "$s0" sentinel get-master-addr-by-name mymaster | tail -1)" = "$p1" ] &&
        [ "$(redis-cli -p "$p1" info replication | tr -d '\r' | awk -F: '$1 == "role" { print $2 }')" = master ] &&
        [ "$(evals "$p1")" -gt 0 ]; then
        ok=1
        break
    fi
    sleep 0.1
done
assert_eq "$ok" 1 "the replica promoted and the syncs on it"
log "syncs on the new primary $(awk -v x="$t0" -v y="$(now)" 'BEGIN { printf "%.1f", y - x }')s after the failover command"
sleep 1
r1=$(rate 3)
log "after the failover: $r1/s admitted in total"
in_range "$r1" 180 220 || fail "after the failover: $r1/s, not 200/s +-10%"
for p in "${pids[@]}"; do wait "$p" || fail "a load failed"; done
for gp in "$gpa" "$gpb"; do
    other=$(jq '[.status | to_entries[] | select(.key != "200" and .key != "429") | .value] | add // 0' "$T/l$gp.json")
    log "gateway :$gp: $(jq -c .status "$T/l$gp.json")"
    assert_eq "$other" 0 "answers other than 200 and 429"
done
log "fallback gauge now: $(metric apigate_rate_limit_fallback "${A[@]}"), sync errors $(metric apigate_rate_limit_sync_errors_total "${A[@]}")"
assert_eq "$(metric apigate_rate_limit_fallback "${A[@]}")" 0 "fallback gauge after the failover"
log "ok"
