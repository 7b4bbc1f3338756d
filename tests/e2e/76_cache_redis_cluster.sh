#!/usr/bin/env bash
# The Redis L2 on a Redis Cluster (issue 15): 3 primaries + 3 replicas started here on free
# ports, two gateways given two seeds as `cache: {redis: {cluster: [...]}}`. An entry filled
# through A is an L2 hit on B (no CROSSSLOT: the entry and its path's invalidation mark share a
# hash tag, and no L2 error at all); entries spread over the primaries; a PUT through B
# invalidates on A; a prefix purge on A and a purge-all on B reach the other's L2 reads. Then `kill -9` of a primary under
# `apigate load`: no client request fails, and L2 hits for that primary's slots resume once its
# replica took over (the time is printed).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3 redis-server redis-cli

read -r -a P <<<"$(free_ports 12)" # P[0..5] client ports, P[6..11] cluster bus ports
read -r mport gpa apa gpb apb <<<"$(free_ports 5)"
start_mock mock "$mport"
for i in 0 1 2 3 4 5; do
    mkdir -p "$T/n$i"
    start_bg "node$i" redis-server --port "${P[$i]}" --cluster-port "${P[$((i + 6))]}" \
        --cluster-enabled yes --cluster-config-file "$T/n$i/nodes.conf" --dir "$T/n$i" \
        --cluster-node-timeout 1000 --bind 127.0.0.1 --save '' --appendonly no
done
for i in 0 1 2 3 4 5; do wait_port "${P[$i]}"; done
redis-cli --cluster create $(for i in 0 1 2 3 4 5; do printf '127.0.0.1:%s ' "${P[$i]}"; done) \
    --cluster-replicas 1 --cluster-yes >"$T/create.log" 2>&1 || fail "cluster create: $(cat "$T/create.log")"
ok=0
for _ in $(seq 100); do
    n=0
    for i in 0 1 2 3 4 5; do
        redis-cli -p "${P[$i]}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && n=$((n + 1))
    done
    [ "$n" = 6 ] && { ok=1; break; }
    sleep 0.1
done
assert_eq "$ok" 1 "the cluster is up"

for n in a b; do
    if [ "$n" = a ]; then gp=$gpa ap=$apa; else gp=$gpb ap=$apb; fi
    start_gateway "gw-$n" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache:
  redis: {cluster: [127.0.0.1:${P[0]}, 127.0.0.1:${P[1]}]}
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
AA=http://127.0.0.1:$apa AB=http://127.0.0.1:$apb
xc() { curl -s -o /dev/null -D - --max-time 10 -H 'Host: api.test' "$1" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
l2() { curl -s --max-time 5 "$1/cache/stats" | jq -r ".l2.$2"; }
sleep 1 # slot maps read

log "entries filled through A are L2 hits on B, spread over the primaries, without errors"
for i in $(seq 1 30); do assert_eq "$(xc "$GA/api/users/$i")" MISS "A fills $i"; done
sleep 0.3
hits=0
for i in $(seq 1 30); do [ "$(xc "$GB/api/users/$i")" = HIT ] && hits=$((hits + 1)); done
assert_eq "$hits" 30 "L2 hits on B"
assert_eq "$(l2 "$AA" errors)" 0 "L2 errors on A (CROSSSLOT, MOVED loops, ...)"
assert_eq "$(l2 "$AB" errors)" 0 "L2 errors on B"
with_keys=0
for i in 0 1 2 3 4 5; do
    if redis-cli -p "${P[$i]}" role | head -1 | grep -q master &&
        [ "$(redis-cli -p "${P[$i]}" dbsize)" -gt 0 ]; then with_keys=$((with_keys + 1)); fi
done
[ "$with_keys" -ge 2 ] || fail "entries on $with_keys primaries only"

log "a PUT through B invalidates on A"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: api.test' -X PUT -d '{}' "$GB/api/users/3")
assert_eq "$code" 200 "PUT"
sleep 0.3
assert_eq "$(xc "$GA/api/users/3")" MISS "A after B's PUT"

log "a prefix purge on A reaches B's L2 reads"
for i in $(seq 100 109); do assert_eq "$(xc "$GA/api/users/$i")" MISS "A fills $i"; done
sleep 0.3
curl -s -X POST "$AA/cache/purge?prefix=/api/users/10" >/dev/null
sleep 0.1
for i in $(seq 100 109); do assert_eq "$(xc "$GB/api/users/$i")" MISS "B after A's purge: $i"; done
assert_eq "$(xc "$GB/api/users/5")" HIT "B outside the prefix"

log "purge-all on B reaches A's L2 reads"
for i in $(seq 200 204); do assert_eq "$(xc "$GA/api/users/$i")" MISS "A fills $i"; done
for i in $(seq 205 209); do assert_eq "$(xc "$GB/api/users/$i")" MISS "B fills $i"; done
sleep 0.3
curl -s -X POST "$AB/cache/purge?all=1" >/dev/null
sleep 0.1
for i in $(seq 205 209); do assert_eq "$(xc "$GA/api/users/$i")" MISS "A after B's purge-all: $i"; done
assert_eq "$(xc "$GA/api/users/200")" MISS "A's own L1 after B's purge-all"

log "kill -9 a primary under load: no failed request, L2 hits resume after failover"
# the victim serves the slot of /api/users/5000; keys of its slots are picked by their CRC16
cat >"$T/slots.py" <<'PY'
import subprocess, sys
def crc16(s):
    crc = 0
    for b in s.encode():
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc
port, first = sys.argv[1], int(sys.argv[2])
nodes = subprocess.run(["redis-cli", "-p", port, "cluster", "nodes"], capture_output=True,
                       text=True).stdout.splitlines()
slot = lambda n: crc16("/api/users/%d" % n) % 16384
for line in nodes:
    f = line.split()
    if "master" not in f[2] or "fail" in f[2]:
        continue
    ranges = [tuple(map(int, r.split("-"))) if "-" in r else (int(r), int(r))
              for r in f[8:] if not r.startswith("[")]
    if any(a <= slot(first) <= b for a, b in ranges):
        keys = [n for n in range(first, first + 5000) if any(a <= slot(n) <= b for a, b in ranges)]
        print(f[1].split("@")[0].split(":")[1], " ".join(map(str, keys[:80])))
PY
read -r vport vkeys <<<"$(python3 "$T/slots.py" "${P[2]}" 5000)"
vkeys=($vkeys)
[ "${#vkeys[@]}" -ge 40 ] || fail "no keys for the victim"
victim=''
for i in 0 1 2 3 4 5; do [ "${P[$i]}" = "$vport" ] && victim=node$i; done
[ -n "$victim" ] || fail "victim port $vport is not ours"
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
vpid=''
for i in "${!E2E_NAMES[@]}"; do [ "${E2E_NAMES[$i]}" = "$victim" ] && vpid=${E2E_PIDS[$i]}; done
t0=$(date +%s%N)
kill -KILL "$vpid"
log "killed $victim (port $vport, pid $vpid)"
resumed=-1
for k in "${vkeys[@]}"; do
    xc "$GA/api/users/$k" >/dev/null # filled through A: stored in L2 if its primary answers
    sleep 0.05
    if [ "$(xc "$GB/api/users/$k")" = HIT ]; then
        resumed=$((($(date +%s%N) - t0) / 1000000))
        break
    fi
    sleep 0.1
    [ $((($(date +%s%N) - t0) / 1000000)) -gt 20000 ] && break
done
wait "$lpid" || rc=$?
log "load: $(jq -c '.totals | {requests, failed}' "$T/load.json" 2>/dev/null || cat "$T/load.err")"
assert_eq "$rc" 0 "apigate load exit code (--max-failed 0): $(tail -3 "$T/load.err")"
assert_eq "$(jq -r '.totals.failed' "$T/load.json")" 0 "failed client requests"
[ "$resumed" -ge 0 ] || fail "L2 hits on the victim's slots never resumed"
log "L2 hits on the failed primary's slots resumed $resumed ms after kill -9"
[ "$(l2 "$AA" errors)" -gt 0 ] || fail "the lost primary was not counted as L2 errors"
grep -q "cache l2: redis cluster slot map" "$T/gw-a.log" || fail "the new slot map was not logged"
log "ok"
