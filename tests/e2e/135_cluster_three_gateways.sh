#!/usr/bin/env bash
# Issue 15's scale-out test as written: three gateways (A, B, C) and a 3-primary/3-replica Redis
# Cluster, all started here on free ports. An entry filled through A is an L2 hit on B and C; a PUT
# through B invalidates on A and C; purge?all=1 and purge?tag= on C reach A's and B's L1 (pub/sub
# over the cluster) and L2 (C misses an entry only A had, at once). How long each took to reach
# every gateway is measured from the admin's (or the PUT's) answer and printed; the test asserts a
# loose bound (2 s: the machine is shared), the issue's goal is 100 ms on loopback. Then kill -9
# of a primary under `apigate load` through all three: 0 failed client requests, and L2 hits on
# the lost primary's slots resume once its replica took over (the time is printed).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_redis_cluster.sh"
require_cmd curl jq python3 redis-server redis-cli

read -r mport gpa apa gpb apb gpc apc <<<"$(free_ports 7)"
"$APIGATE" mock --print-default >"$T/mock.yaml"
cat >>"$T/mock.yaml" <<'YAML'
  - {method: GET, path: '/api/t/{id}', body_size: 64, headers: {Surrogate-Key: 'grp other'}}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_redis_cluster 3 1
P=("${CLUSTER_PORTS[@]}")

for n in a b c; do
    case $n in a) gp=$gpa ap=$apa ;; b) gp=$gpb ap=$apb ;; c) gp=$gpc ap=$apc ;; esac
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
  - match: /api/
    upstream: api
    cache: {ttl: 60s, override: true, tag_header: Surrogate-Key}
YAML
done
GA=http://127.0.0.1:$gpa GB=http://127.0.0.1:$gpb GC=http://127.0.0.1:$gpc
AA=http://127.0.0.1:$apa AB=http://127.0.0.1:$apb AC=http://127.0.0.1:$apc
xc() { curl -s -o /dev/null -D - --max-time 10 -H 'Host: api.test' "$1" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
l2() { curl -s --max-time 5 "$1/cache/stats" | jq -r ".l2.$2"; }
ready() {
    local a
    for a in "$AA" "$AB" "$AC"; do [ "$(l2 "$a" slots_covered)" = 16384 ] || return 1; done
}
cluster_wait 20 "every gateway's slot map" ready

# act_then_poll.py METHOD URL -- GW_URL...: sends METHOD URL (the purge or the write), then asks
# each GW_URL (a thread each, keep-alive, Host: api.test) until it answers X-Cache: MISS, and prints
# "<ms from the answer to the sending of the first request that missed> <url>" per GW_URL (the
# MISS itself then waits for the origin); exit 1 when one still hits after 10 s.
cat >"$T/act_then_poll.py" <<'PY'
import http.client, sys, threading, time, urllib.parse
method, url, polls = sys.argv[1], sys.argv[2], sys.argv[4:]
def conn(u):
    p = urllib.parse.urlsplit(u)
    return http.client.HTTPConnection(p.hostname, p.port, timeout=10)
p = urllib.parse.urlsplit(url)
c = conn(url)
c.request(method, p.path + ("?" + p.query if p.query else ""), body=b"{}" if method == "PUT" else None,
          headers={"Host": "api.test"})
r = c.getresponse()
r.read()
if r.status != 200:
    print("action answered", r.status); sys.exit(2)
t0 = time.monotonic()
took = {}
def poll(u):
    k, q = conn(u), urllib.parse.urlsplit(u)
    while time.monotonic() - t0 < 10:
        sent = time.monotonic()
        k.request("GET", q.path + ("?" + q.query if q.query else ""), headers={"Host": "api.test"})
        resp = k.getresponse()
        resp.read()
        if resp.getheader("X-Cache") == "MISS":
            took[u] = (sent - t0) * 1000
            return
ts = [threading.Thread(target=poll, args=(u,)) for u in polls]
for t in ts:
    t.start()
for t in ts:
    t.join()
for u in polls:
    print("%.1f %s" % (took.get(u, -1), u))
sys.exit(0 if len(took) == len(polls) else 1)
PY
# act_then_poll WHAT METHOD URL GW_URL...: runs the script, logs the times, asserts each < 2 s.
act_then_poll() {
    local what=$1 out rc=0 ms u
    shift
    out=$(python3 "$T/act_then_poll.py" "$1" "$2" -- "${@:3}") || rc=$?
    while read -r ms u; do
        log "  $what reached ${u#http://} in $ms ms"
        awk -v m="$ms" 'BEGIN { exit !(m >= 0 && m < 2000) }' || fail "$what: $u still hit (${ms} ms)"
    done <<<"$out"
    assert_eq "$rc" 0 "$what: $out"
}

log "an entry filled through A is an L2 hit on B and on C (no L2 error anywhere)"
for i in $(seq 1 20); do assert_eq "$(xc "$GA/api/users/$i")" MISS "A fills $i"; done
sleep 0.3
for i in $(seq 1 20); do
    assert_eq "$(xc "$GB/api/users/$i")" HIT "B: $i from L2"
    assert_eq "$(xc "$GC/api/users/$i")" HIT "C: $i from L2"
done
for a in "$AA" "$AB" "$AC"; do assert_eq "$(l2 "$a" errors)" 0 "L2 errors on $a"; done
[ "$(l2 "$AB" hits)" -ge 20 ] || fail "B counted $(l2 "$AB" hits) L2 hits"

log "a PUT through B invalidates on A and C (each had it in L1)"
# a path's invalidation covers every query: A and C poll their own keys of it, so the refill of
# one (a fresh L2 copy, rightly a hit everywhere) cannot hide whether the other was reached
assert_eq "$(xc "$GA/api/users/3?a")" MISS "A fills 3?a"
assert_eq "$(xc "$GA/api/users/3?c")" MISS "A fills 3?c"
sleep 0.3
assert_eq "$(xc "$GC/api/users/3?c")" HIT "C: 3?c from L2 into its L1"
assert_eq "$(xc "$GC/api/users/3?c")" HIT "C: 3?c from its L1"
assert_eq "$(xc "$GA/api/users/3?a")" HIT "A: 3?a from its L1"
act_then_poll "PUT /api/users/3 through B" PUT "$GB/api/users/3" "$GA/api/users/3?a" "$GC/api/users/3?c"

log "purge?all=1 on C reaches A's and B's L1 and L2"
for i in $(seq 30 33); do assert_eq "$(xc "$GA/api/users/$i")" MISS "A fills $i"; done
assert_eq "$(xc "$GA/api/users/40")" MISS "A fills 40 (only A)"
sleep 0.3
for i in $(seq 30 33); do
    assert_eq "$(xc "$GB/api/users/$i")" HIT "B: $i into its L1"
    assert_eq "$(xc "$GA/api/users/$i")" HIT "A: $i from its L1"
done
# A polls 30 (its L1), B polls 31 (its L1), C polls 40 (never in C's L1: only L2 can answer)
act_then_poll "purge?all=1 on C" POST "$AC/cache/purge?all=1" \
    "$GA/api/users/30" "$GB/api/users/31" "$GC/api/users/40"
assert_eq "$(xc "$GB/api/users/32")" MISS "B after the purge-all: 32"
assert_eq "$(xc "$GA/api/users/33")" MISS "A after the purge-all: 33"

log "purge?tag= on C reaches A's and B's L1 and L2, only that tag"
for i in 1 2 3 4; do assert_eq "$(xc "$GA/api/t/$i")" MISS "A fills t/$i"; done
assert_eq "$(xc "$GA/api/users/50")" MISS "A fills users/50 (untagged)"
sleep 0.3
for i in 1 2; do assert_eq "$(xc "$GB/api/t/$i")" HIT "B: t/$i into its L1"; done
assert_eq "$(xc "$GB/api/users/50")" HIT "B: users/50 into its L1"
act_then_poll "purge?tag=grp on C" POST "$AC/cache/purge?tag=grp" \
    "$GA/api/t/1" "$GB/api/t/2" "$GC/api/t/3"
assert_eq "$(xc "$GB/api/t/4")" MISS "B: t/4 (L2 only) after the tag purge"
assert_eq "$(xc "$GB/api/users/50")" HIT "B: users/50 is not tagged grp"
assert_eq "$(xc "$GC/api/users/50")" HIT "C: users/50 from L2 is not tagged grp"
for a in "$AA" "$AB" "$AC"; do assert_eq "$(l2 "$a" errors)" 0 "L2 errors on $a after the purges"; done

log "kill -9 a primary under load through A, B and C: no failed request, L2 hits resume"
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
        print(f[1].split("@")[0].split(":")[1], " ".join(map(str, keys[:150])))
PY
read -r vport vkeys <<<"$(python3 "$T/slots.py" "${P[2]}" 5000)"
vkeys=($vkeys)
[ "${#vkeys[@]}" -ge 40 ] || fail "no keys for the victim"
lpids=()
for g in "$gpa" "$gpb" "$gpc"; do
    cat >"$T/load-$g.yaml" <<YAML
base_url: http://127.0.0.1:$g
vus: 3
duration: 9s
requests:
  - name: user
    path: /api/users/{{rand 1 3000}}
    headers: {Host: api.test}
YAML
    "$APIGATE" load run "$T/load-$g.yaml" -q --max-failed 0 --json "$T/load-$g.json" \
        >"$T/load-$g.out" 2>"$T/load-$g.err" &
    lpids+=($!)
done
sleep 2
vpid=$(cluster_pid "$vport")
t0=$(date +%s%N)
kill -KILL "$vpid"
log "killed the primary on port $vport (pid $vpid)"
resumed=-1
for k in "${vkeys[@]}"; do
    xc "$GA/api/users/$k" >/dev/null # filled through A: stored in L2 once a primary takes it
    sleep 0.05
    if [ "$(xc "$GB/api/users/$k")" = HIT ]; then
        resumed=$((($(date +%s%N) - t0) / 1000000))
        break
    fi
    sleep 0.1
    [ $((($(date +%s%N) - t0) / 1000000)) -gt 25000 ] && break
done
i=0
for g in "$gpa" "$gpb" "$gpc"; do
    rc=0
    wait "${lpids[$i]}" || rc=$?
    i=$((i + 1))
    log "load through :$g: $(jq -c '.totals | {requests, failed}' "$T/load-$g.json" 2>/dev/null ||
        cat "$T/load-$g.err")"
    assert_eq "$rc" 0 "apigate load through :$g (--max-failed 0): $(tail -3 "$T/load-$g.err")"
    assert_eq "$(jq -r '.totals.failed' "$T/load-$g.json")" 0 "failed client requests through :$g"
done
[ "$resumed" -ge 0 ] || fail "L2 hits on the victim's slots never resumed"
log "L2 hits on the failed primary's slots resumed $resumed ms after kill -9"
k=${vkeys[$((${#vkeys[@]} - 1))]}
assert_eq "$(xc "$GA/api/users/$k")" MISS "A fills $k after the failover"
sleep 0.2
assert_eq "$(xc "$GC/api/users/$k")" HIT "C: $k from the promoted replica"
[ "$(l2 "$AA" errors)" -gt 0 ] || fail "the lost primary was not counted as L2 errors on A"
for n in a b c; do
    grep -q "cache l2: redis cluster slot map" "$T/gw-$n.log" || fail "gateway $n logged no slot map"
done
[ "$(l2 "$AC" failovers)" -ge 1 ] || fail "C did not count the failover"
log "ok"
