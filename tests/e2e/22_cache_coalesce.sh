#!/usr/bin/env bash
# Request coalescing across loop threads: 200 concurrent requests for a cold key (the origin
# takes 400 ms) reach the origin exactly once, every client gets the same 200 body, one MISS and
# the rest HIT. A leader whose response cannot be stored releases its waiters (each fetches);
# a waiter gives up after coalesce_timeout and fetches by itself.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

read -r mport gport aport <<<"$(free_ports 3)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/slow, latency: {dist: fixed, ms: 400}, body_size: 1KB}
  - {method: GET, path: /api/private, latency: {dist: fixed, ms: 400}, body_size: 256,
     cache_control: 'no-store'}
  - {method: GET, path: /api/glacial, latency: {dist: fixed, ms: 1500}, body_size: 256}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml" --threads 2
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 4}
cache: {coalesce_timeout: 5s}
upstreams:
  api: {servers: [127.0.0.1:$mport], pool: {max_connections: 256}}
routes:
  - match: /api/glacial
    upstream: api
    cache: {ttl: 60s, override: true}
  - match: /api/slow
    upstream: api
    cache: {ttl: 60s, override: true}
  - match: /api/private
    upstream: api
    cache: {}
YAML

# burst PATH N: N clients at once (each on its own connection), prints a JSON summary
burst() {
    python3 - "$gport" "$1" "$2" <<'PY'
import http.client, json, sys, threading, collections
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
res = []
lock = threading.Lock()
go = threading.Event()
def one():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.connect()
    go.wait()
    try:
        c.request("GET", path)
        r = c.getresponse()
        b = r.read()
        out = (r.status, r.getheader("X-Cache"), hash(b))
    except Exception as e:
        out = (0, str(e), 0)
    with lock:
        res.append(out)
ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts: t.start()
go.set()
for t in ts: t.join()
print(json.dumps({"status": collections.Counter(str(r[0]) for r in res),
                  "xcache": collections.Counter(str(r[1]) for r in res),
                  "bodies": len(set(r[2] for r in res))}))
PY
}

log "200 concurrent requests for a cold key"
out=$(burst /api/slow 200)
log "$out"
assert_eq "$(mock_stat "$mport" "GET /api/slow")" 1 "origin requests for the cold key"
assert_eq "$(jq -r '.status["200"]' <<<"$out")" 200 "all answered 200: $out"
assert_eq "$(jq -r .bodies <<<"$out")" 1 "one body for all"
assert_eq "$(jq -r '.xcache.MISS' <<<"$out")" 1 "one MISS"
assert_eq "$(jq -r '.xcache.HIT' <<<"$out")" 199 "the rest HIT"
st=$(curl -s "http://127.0.0.1:$aport/cache/stats")
[ "$(jq -r .coalesced <<<"$st")" -ge 100 ] || fail "coalesced waits: $st"

log "a leader whose response is not storable releases its waiters"
out=$(burst /api/private 20)
log "$out"
assert_eq "$(jq -r '.status["200"]' <<<"$out")" 20 "all answered: $out"
served=$(mock_stat "$mport" "GET /api/private")
[ "$served" -ge 2 ] || fail "waiters should fetch themselves after a no-store leader ($served)"

log "coalesce_timeout: waiters give up and fetch"
sed -i 's/coalesce_timeout: 5s/coalesce_timeout: 300ms/' "$T/gw.yaml"
kill -HUP "$(cat "$T/gw.pid")"
sleep 1.5
out=$(burst /api/glacial 5)
log "$out"
assert_eq "$(jq -r '.status["200"]' <<<"$out")" 5 "all answered: $out"
[ "$(mock_stat "$mport" "GET /api/glacial")" -ge 2 ] || fail "timed-out waiters did not fetch"
prom=$(curl -s "http://127.0.0.1:$aport/metrics")
n=$(awk '/^apigate_cache_coalesce_timeouts_total /{print $2}' <<<"$prom")
[ "${n:-0}" -ge 1 ] || fail "coalesce timeouts not counted: ${n:-none}"
log "ok"
