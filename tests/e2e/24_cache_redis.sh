#!/usr/bin/env bash
# Redis L2 with a real redis-server: two gateway instances share it. An entry fetched through A is
# a HIT in B (from L2, the origin asked once); a PUT through A makes B miss on its next GET (the
# purge is published on the channel and an invalidation mark refuses older L2 copies); an admin
# purge on B drops A's copy. Killing redis-server mid-load fails no client request (L1 and the
# origin keep serving, errors are counted), and the gateways reconnect when it is back.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3 redis-server redis-cli

read -r mport rport gpa apa gpb apb <<<"$(free_ports 6)"
"$APIGATE" mock --print-default >"$T/mock.yaml"
echo "  - {method: GET, path: /api/vary, body_size: 256, cache_control: 'max-age=60', headers: {Vary: Accept-Language}}" >>"$T/mock.yaml"
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no
wait_port "$rport"
G_a='' G_b='' A_a='' A_b=''
for n in a b; do
    # B names its Redis by host name: resolved by the gateway's resolver thread, not on a loop
    if [ "$n" = a ]; then gp=$gpa ap=$apa rhost=127.0.0.1; else gp=$gpb ap=$apb rhost=localhost; fi
    if [ "$n" = a ]; then G_a=http://127.0.0.1:$gp A_a=http://127.0.0.1:$ap
    else G_b=http://127.0.0.1:$gp A_b=http://127.0.0.1:$ap; fi
    start_gateway "gw-$n" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache: {redis: "redis://$rhost:$rport/0", redis_timeout: 50ms, redis_reconnect: 200ms}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true}
  - match: /api/vary
    upstream: api
    cache: {}
YAML
done
H=(-H 'Host: api.test')
xc() { curl -s -o /dev/null -D - --max-time 10 "${H[@]}" "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
sleep 0.5 # both connected to redis

log "fetched through A, a hit in B from L2"
assert_eq "$(xc "$G_a/api/users/5")" MISS "A first"
sleep 0.2
assert_eq "$(xc "$G_b/api/users/5")" HIT "B from L2"
assert_eq "$(xc "$G_b/api/users/5")" HIT "B from its L1 now"
assert_eq "$(mock_stat "$mport" "GET /api/users/{id}")" 1 "origin asked once for two gateways"
[ "$(jq -r .l2.hits <<<"$(curl -s "$A_b/cache/stats")")" -ge 1 ] || fail "B counted no L2 hit"
keys=$(redis-cli -p "$rport" --scan --pattern 'apigate:*')
assert_contains "$keys" "apigate:{/api/users/5}GET api.test/api/users/5" "entry in redis"

log "Vary'd entries are shared too (the marker travels with them)"
assert_eq "$(xc "$G_a/api/vary" -H 'Accept-Language: en')" MISS "A en"
sleep 0.2
assert_eq "$(xc "$G_b/api/vary" -H 'Accept-Language: en')" HIT "B en from L2"
assert_eq "$(xc "$G_b/api/vary" -H 'Accept-Language: fr')" MISS "B fr is another variant"
assert_eq "$(xc "$G_b/api/vary" -H 'Accept-Language: en')" HIT "B en from L1"
assert_eq "$(mock_stat "$mport" "GET /api/vary")" 2 "origin asked once per variant"

log "a PUT through A makes B miss"
code=$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -X PUT -d '{}' "$G_a/api/users/5")
assert_eq "$code" 200 "PUT"
sleep 0.3
assert_eq "$(xc "$G_b/api/users/5")" MISS "B after A's PUT"
assert_eq "$(mock_stat "$mport" "GET /api/users/{id}")" 2 "B went to the origin"
sleep 0.2
assert_eq "$(xc "$G_a/api/users/5")" HIT "A gets B's fresh copy from L2"
assert_eq "$(mock_stat "$mport" "GET /api/users/{id}")" 2 "A did not"
curl -s -o /dev/null "${H[@]}" -X PUT -d '{}' "$G_a/api/users/5"
sleep 0.2
assert_eq "$(xc "$G_a/api/users/5")" MISS "A after its own PUT (older L2 copy refused)"
assert_eq "$(xc "$G_a/api/users/5")" HIT "A refilled"

log "admin purge on B drops A's copy"
out=$(curl -s -X POST "$A_b/cache/purge?key=/api/users/5")
assert_contains "$out" '"purged"' "purge answer"
sleep 0.3
assert_eq "$(xc "$G_a/api/users/5")" MISS "A after B's purge"

log "redis killed mid-load: no failed client request"
python3 - "${G_a#http://127.0.0.1:}" >"$T/load.out" <<'PY' &
import http.client, json, sys, threading, time
port = int(sys.argv[1])
stop = time.time() + 4.0
res = {"ok": 0, "bad": 0, "errors": []}
lock = threading.Lock()
def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while time.time() < stop:
        i += 1
        path = "/api/users/%d" % (100 + (k * 37 + i * 7) % 3000)
        try:
            c.request("GET", path, headers={"Host": "api.test"})
            r = c.getresponse()
            r.read()
            with lock:
                if r.status == 200: res["ok"] += 1
                else:
                    res["bad"] += 1
                    res["errors"].append(r.status)
        except Exception as e:
            with lock:
                res["bad"] += 1
                res["errors"].append(str(e))
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
ts = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
for t in ts: t.start()
for t in ts: t.join()
res["errors"] = res["errors"][:10]
print(json.dumps(res))
PY
lpid=$!
sleep 1.2
stop_bg redis || true
wait "$lpid"
out=$(cat "$T/load.out")
log "$out"
assert_eq "$(jq -r .bad <<<"$out")" 0 "failed requests while redis died: $out"
[ "$(jq -r .ok <<<"$out")" -ge 100 ] || fail "too few requests: $out"
st=$(curl -s "$A_a/cache/stats")
[ "$(jq -r .l2.errors <<<"$st")" -ge 1 ] || fail "L2 errors not counted: $st"
assert_contains "$(curl -s "$A_a/metrics")" "apigate_cache_l2_errors_total" "metric"
code=$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" "$G_a/api/users/999")
assert_eq "$code" 200 "serving without redis"

log "redis back: the gateways reconnect"
start_bg redis2 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --enable-debug-command local
wait_port "$rport"
ok=0
for _ in $(seq 40); do
    sleep 0.25
    k=$((RANDOM + 2000))
    curl -s -o /dev/null "${H[@]}" "$G_a/api/users/$k"
    sleep 0.1
    if [ "$(xc "$G_b/api/users/$k")" = HIT ]; then ok=1; break; fi
done
assert_eq "$ok" 1 "L2 shared again after redis came back"
grep -q "warn: cache l2: redis .*\(connection lost\|connect failed\|timed out\)" "$T/gw-a.log" ||
    fail "redis loss not logged"

log "redis slow (DEBUG SLEEP 2): lookups give up after redis_timeout"
e0=$(jq -r .l2.errors <<<"$(curl -s "$A_a/cache/stats")")
redis-cli -p "$rport" DEBUG SLEEP 2 >/dev/null &
spid=$!
sleep 0.2
t0=$(date +%s%N)
code=$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" "$G_a/api/users/777777")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$spid" || true
assert_eq "$code" 200 "answered while redis sleeps"
[ "$ms" -lt 1000 ] || fail "a lookup waited for the sleeping redis (${ms} ms)"
e1=$(jq -r .l2.errors <<<"$(curl -s "$A_a/cache/stats")")
[ "$e1" -gt "$e0" ] || fail "the L2 timeout was not counted ($e0 -> $e1)"
log "ok"
