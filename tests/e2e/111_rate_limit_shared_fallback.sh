#!/usr/bin/env bash
# Shared rate limits when Redis goes away (issue 15): three gateways share rate: 200/s through one
# Redis under ~1000/s of one API key; Redis is killed mid-run: no client request fails or waits,
# each gateway falls back to its own count (it admits about 200/s alone: the limit holds per
# instance), apigate_rate_limit_fallback is 1 and the sync errors are counted, logged once; Redis is
# started again on the same port: every gateway reconnects, the gauge goes back to 0, the three
# share 200/s again, and they write the key secret they agreed back into the new Redis. Redis then
# stalls (SIGSTOP, 2.5 s): the syncs time out into the fallback and no request waits for it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli python3

read -r mport rport g1 a1 g2 a2 g3 a3 <<<"$(free_ports 8)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/x, handler: echo}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
wait_port "$rport"
GW=("$g1:$a1" "$g2:$a2" "$g3:$a3")
for i in 0 1 2; do
    gp=${GW[$i]%:*} ap=${GW[$i]#*:}
    start_gateway "gw$i" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache: {redis: "redis://127.0.0.1:$rport/0", redis_timeout: 100ms}
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
# rates SECONDS: admitted/s of each gateway over SECONDS, from their metrics: "r0 r1 r2 total"
rates() {
    local t0 t1 c0=() c1=() i
    t0=$(now)
    for i in 0 1 2; do c0+=("$(metric apigate_rate_limit_admitted_total "${A[$i]}")"); done
    sleep "$1"
    t1=$(now)
    for i in 0 1 2; do c1+=("$(metric apigate_rate_limit_admitted_total "${A[$i]}")"); done
    awk -v x="$t0" -v y="$t1" -v a="${c0[*]}" -v b="${c1[*]}" 'BEGIN {
        split(a, p); split(b, q); d = y - x; s = 0
        for (i = 1; i <= 3; i++) { r = (q[i] - p[i]) / d; s += r; printf "%.1f ", r }
        printf "%.1f\n", s }'
}
# wait_gauge VALUE: until apigate_rate_limit_fallback is VALUE on every gateway (bounded); prints
# the seconds it took
wait_gauge() {
    local t0 i v ok
    t0=$(now)
    for _ in $(seq 200); do
        ok=1
        for i in 0 1 2; do
            v=$(metric apigate_rate_limit_fallback "${A[$i]}")
            [ "$v" = "$1" ] || ok=0
        done
        [ "$ok" = 1 ] && { awk -v x="$t0" -v y="$(now)" 'BEGIN { printf "%.2f", y - x }'; return 0; }
        sleep 0.05
    done
    fail "apigate_rate_limit_fallback is not $1 on every gateway after 10 s"
}
in_range() { awk -v r="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r >= lo && r <= hi) }'; }

log "load: ~1000/s of key kf over the three gateways for 18 s"
pids=()
for i in 0 1 2; do
    "$APIGATE" load -q -t 1 -c 16 --rate 333/s -d 18s --max-failed 100% -H "X-Api-Key: kf" \
        --json "$T/l$i.json" "http://127.0.0.1:${GW[$i]%:*}/api/x" >"$T/l$i.out" 2>&1 &
    pids+=($!)
done
sleep 1
read -r _ _ _ shared0 <<<"$(rates 1.5)"
log "shared, Redis up: $shared0/s admitted in total"
in_range "$shared0" 170 230 || fail "shared before the kill: $shared0/s, not about 200/s"

secret0=$(redis-cli -p "$rport" GET apigate:key-secret)
[ -n "$secret0" ] || fail "no key secret agreed in Redis"
log "Redis killed"
stop_bg redis || true
took=$(wait_gauge 1)
log "every gateway reports the fallback after ${took}s"
sleep 0.3
read -r r0 r1 r2 local0 <<<"$(rates 2.5)"
log "fallback: $r0 $r1 $r2 /s per gateway, $local0/s in total"
for r in "$r0" "$r1" "$r2"; do
    in_range "$r" 150 230 || fail "a gateway admitted $r/s on its own count, not about 200/s"
done
errs=$(metric apigate_rate_limit_sync_errors_total "${A[@]}")
[ "$errs" -gt 0 ] || fail "no sync error counted while Redis is down"

log "Redis started again on the same port"
start_bg redis2 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
wait_port "$rport"
took=$(wait_gauge 0)
log "every gateway shares again ${took}s after Redis listens"
sleep 0.5
read -r _ _ _ shared1 <<<"$(rates 2.5)"
log "shared again: $shared1/s admitted in total"
in_range "$shared1" 180 220 || fail "after Redis came back: $shared1/s, not 200/s +-10%"

log "Redis stalls (SIGSTOP) for 2.5 s: the syncs time out, nobody waits"
rpid=$(cat "$T/redis2.pid")
kill -STOP "$rpid"
took=$(wait_gauge 1)
log "fallback reported ${took}s into the stall"
sleep 2.5
kill -CONT "$rpid"
took=$(wait_gauge 0)
log "shared again ${took}s after the stall"

for p in "${pids[@]}"; do wait "$p" || fail "a load failed: $(tail -3 "$T"/l*.out)"; done
for i in 0 1 2; do
    other=$(jq '[.status | to_entries[] | select(.key != "200" and .key != "429") | .value] | add // 0' "$T/l$i.json")
    failed=$(jq '.totals.failed // 0' "$T/l$i.json")
    log "gateway $i: statuses $(jq -c .status "$T/l$i.json"), p99 $(jq '.latency_ms.p99 // .totals.p99_ms // "?"' "$T/l$i.json") ms"
    assert_eq "$other" 0 "answers other than 200 and 429 on gateway $i"
    # a request that waited for the stalled Redis would have taken 2.5 s or more
    awk -v m="$(jq '.latency_ms.max' "$T/l$i.json")" 'BEGIN { exit !(m < 2000) }' ||
        fail "gateway $i: a request took $(jq '.latency_ms.max' "$T/l$i.json") ms (waited for Redis?)"
done
# the restarted Redis lost the agreed key secret: the gateways write theirs back (SET NX, every
# 10 s), so a gateway started now would name keys as they do
ok=0
for _ in $(seq 150); do
    [ "$(redis-cli -p "$rport" GET apigate:key-secret)" = "$secret0" ] && { ok=1; break; }
    sleep 0.1
done
assert_eq "$ok" 1 "the key secret written back to the restarted Redis"
for i in 0 1 2; do
    n=$(grep -c "counted by each gateway alone" "$T/gw$i.log" || true)
    assert_eq "$n" 2 "gw$i's warnings for two Redis outages, the kill and the stall (once per spell)"
    grep -q "Redis answers again" "$T/gw$i.log" || fail "gw$i did not log the recovery"
done
log "ok"
