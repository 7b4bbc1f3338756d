#!/usr/bin/env bash
# The Redis L2 behind Sentinel (issue 15): a primary, a replica and three sentinels started here
# on free ports; two gateways given `cache: {redis: {sentinels: [...], master: mymaster}}` ask
# the sentinels where the primary is (never a loop thread blocked: SENTINEL
# get-master-addr-by-name on the loop, +switch-master followed). An entry filled through A is an
# L2 hit on B; `SENTINEL failover` under `apigate load` fails no client request, both gateways
# move to the new primary, and L2 hits (written to the new primary) resume; the time is printed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli redis-sentinel

read -r mport p0 p1 s0 s1 s2 gpa apa gpb apb <<<"$(free_ports 10)"
start_mock mock "$mport"
start_bg primary redis-server --port "$p0" --bind 127.0.0.1 --save '' --appendonly no
start_bg replica redis-server --port "$p1" --bind 127.0.0.1 --save '' --appendonly no \
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
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true}
YAML
done
GA=http://127.0.0.1:$gpa GB=http://127.0.0.1:$gpb
AA=http://127.0.0.1:$apa
xc() { curl -s -o /dev/null -D - --max-time 10 -H 'Host: api.test' "$1" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
sleep 0.5

log "the sentinels name the primary: an entry filled through A is an L2 hit on B"
for i in 1 2 3; do assert_eq "$(xc "$GA/api/users/$i")" MISS "A fills $i"; done
sleep 0.2
for i in 1 2 3; do assert_eq "$(xc "$GB/api/users/$i")" HIT "B from L2: $i"; done
grep -q "cache l2: redis primary 'mymaster' is 127.0.0.1:$p0" "$T/gw-a.log" ||
    fail "the primary was not logged"
[ "$(redis-cli -p "$p0" dbsize)" -ge 3 ] || fail "no entries on the primary"

log "SENTINEL failover under load: no failed request, the gateways follow"
cat >"$T/load.yaml" <<YAML
base_url: http://127.0.0.1:$gpa
vus: 8
duration: 8s
requests:
  - name: user
    path: /api/users/{{rand 1 3000}}
    headers: {Host: api.test}
YAML
rc=0
"$APIGATE" load run "$T/load.yaml" -q --max-failed 0 --json "$T/load.json" >"$T/load.out" \
    2>"$T/load.err" &
lpid=$!
sleep 2
t0=$(date +%s%N)
redis-cli -p "$s0" sentinel failover mymaster >"$T/failover.out"
assert_contains "$(cat "$T/failover.out")" OK "SENTINEL failover"
resumed=-1 k=10000
while [ $((($(date +%s%N) - t0) / 1000000)) -lt 20000 ]; do
    k=$((k + 1))
    xc "$GA/api/users/$k" >/dev/null
    sleep 0.05
    if [ "$(redis-cli -p "$p1" role | head -1)" = master ] && [ "$(xc "$GB/api/users/$k")" = HIT ] &&
        [ "$(redis-cli -p "$p1" exists "apigate:{/api/users/$k}GET api.test/api/users/$k")" = 1 ]; then
        resumed=$((($(date +%s%N) - t0) / 1000000))
        break
    fi
    sleep 0.1
done
wait "$lpid" || rc=$?
log "load: $(jq -c '.totals | {requests, failed}' "$T/load.json" 2>/dev/null || cat "$T/load.err")"
assert_eq "$rc" 0 "apigate load exit code (--max-failed 0): $(tail -3 "$T/load.err")"
assert_eq "$(jq -r '.totals.failed' "$T/load.json")" 0 "failed client requests"
[ "$resumed" -ge 0 ] || fail "L2 hits never resumed on the new primary"
log "L2 hits through the new primary $resumed ms after SENTINEL failover"
for n in a b; do
    grep -q "cache l2: redis primary 'mymaster' moved from 127.0.0.1:$p0 to 127.0.0.1:$p1" \
        "$T/gw-$n.log" || fail "gateway $n did not follow the failover"
done
grep -q "+switch-master" "$T/gw-a.log" || fail "+switch-master was not seen"
log "ok"
