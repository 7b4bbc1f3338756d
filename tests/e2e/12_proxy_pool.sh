#!/usr/bin/env bash
# Upstream side of `apigate serve`: keep-alive pool reuse (sequential requests from separate
# clients open about one upstream connection per thread), pool starvation (requests queue, none
# fail before queue_timeout; past it 503), first-byte timeout (504 in time, the hung connection is
# closed, never reused), upstream down (502 JSON), counters in /metrics and /stats.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
gport2=$(free_port)
aport=$(free_port)
dead=$(free_port) # nothing listens there

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: ANY, path: /echo, handler: echo}
  - {method: GET, path: /slow, latency: {dist: fixed, ms: 200}}
  - {method: GET, path: /slower, latency: {dist: fixed, ms: 1500}}
  - {method: GET, path: /hang, hang: true}
EOF
cat >"$T/gw.yaml" <<EOF
listen: [127.0.0.1:$gport, 127.0.0.1:$gport2]
admin: 127.0.0.1:$aport
workers: {threads: 2, worker_timeout: 1s}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
  small:
    servers: [127.0.0.1:$mport]
    pool: {max_connections: 2, max_idle: 2, queue_timeout: 5s}
  tiny:
    servers: [127.0.0.1:$mport]
    pool: {max_connections: 1, max_idle: 1, queue_timeout: 300ms}
  hangy:
    servers: [127.0.0.1:$mport]
  dead:
    servers: [127.0.0.1:$dead]
routes:
  - match: /small/
    upstream: small
  - match: /tiny/
    upstream: tiny
  - match: /hang
    upstream: hangy
    timeout: {first_byte: 500ms}
  - match: /dead
    upstream: dead
  - match: /total/
    upstream: api
    timeout: {first_byte: 400ms, total: 400ms}
  - match: /
    upstream: api
EOF
# /small/slow and /tiny/slower need the mock to see /slow and /slower: the mock matches the
# path as sent, so give it routes with those prefixes too
cat >>"$T/mock.yaml" <<'EOF'
  - {method: GET, path: /small/slow, latency: {dist: fixed, ms: 200}}
  - {method: GET, path: /tiny/slower, latency: {dist: fixed, ms: 1500}}
  - {method: GET, path: /total/slower, latency: {dist: fixed, ms: 1500}}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
wait_port "$gport"
wait_port "$aport"
G=http://127.0.0.1:$gport
metric() { # metric PREFIX: sum of the /metrics samples whose line starts with PREFIX
    curl -s --max-time 5 "http://127.0.0.1:$aport/metrics" |
        awk -v k="$1" 'index($0, k) == 1 { s += $NF } END { print s + 0 }'
}

log "pool reuse: 60 sequential requests, each on a new client connection"
for i in $(seq 1 60); do
    code=$(http_status "$G/echo")
    [ "$code" = 200 ] || fail "request $i: $code"
done
connects=$(metric 'apigate_upstream_connects_total{upstream="api"')
assert_range "$connects" 1 2 "upstream connects for 60 requests on 2 threads"
assert_eq "$(mock_stat "$mport" total)" 60 "all 60 reached the mock"
reuses=$(curl -s "http://127.0.0.1:$aport/stats" | jq '.upstreams[] | select(.name == "api") | .reuses')
assert_range "$reuses" 58 60 "pool reuses in /stats"

log "pool starvation: pool of 2 per thread, 30 concurrent clients on a 200 ms route"
pids=()
for i in $(seq 1 30); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 15 "$G/small/slow" >"$T/starve.$i" &
    pids+=($!)
done
wait "${pids[@]}"
assert_eq "$(cat "$T"/starve.* | sort | uniq -c | awk '{ print $1 "x" $2 }' | tr '\n' ' ')" "30x200 " "queued requests all succeed"
connects=$(metric 'apigate_upstream_connects_total{upstream="small"')
assert_range "$connects" 1 4 "connects stay within max_connections x threads"

log "queue timeout: pool of 1, 300 ms queue, 1.5 s responses"
pids=()
for i in $(seq 1 4); do
    curl -s -o "$T/qt.$i.body" -w '%{http_code} %{time_total}\n' --max-time 15 "$G/tiny/slower" >"$T/qt.$i" &
    pids+=($!)
done
wait "${pids[@]}"
ok=$(cat "$T"/qt.[0-9] | grep -c '^200 ' || true)
rejected=$(cat "$T"/qt.[0-9] | grep -c '^503 ' || true)
# two threads: up to one request per thread gets the single connection
assert_range "$ok" 1 2 "requests that got the connection"
assert_eq "$((ok + rejected))" 4 "the others got 503"
for f in "$T"/qt.[0-9]; do
    read -r code t <"$f"
    if [ "$code" = 503 ]; then
        assert_range "$t" 0.25 1.2 "503 after queue_timeout (s)"
        assert_eq "$(jq -r .error "${f%/*}/qt.${f##*.}.body")" pool_timeout "503 body"
    fi
done

log "first-byte timeout: upstream never answers -> 504 in ~500 ms, connection closed"
out=$(curl -s -w ' %{http_code} %{time_total}' --max-time 10 "$G/hang")
read -r _ code t <<<"$(tr -d '\n' <<<"$out" | sed 's/.*}//; s/^/x /')"
assert_eq "$code" 504 "hung upstream"
assert_range "$t" 0.4 1.5 "504 after first_byte timeout (s)"
assert_contains "$out" '"error":"gateway_timeout"' "504 JSON body"
out=$(curl -s -w ' %{http_code}' --max-time 10 "$G/hang")
assert_contains "$out" " 504" "second hang also 504"
# both timed-out connections were closed, never reused: two connects for two requests
assert_eq "$(metric 'apigate_upstream_connects_total{upstream="hangy"')" 2 "timed-out connections not reused"
assert_eq "$(metric 'apigate_upstream_errors_total{route="/hang",reason="timeout"}')" 2 "timeouts counted"

log "total timeout: 400 ms on a 1.5 s answer -> 504 in time"
out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 "$G/total/slower")
assert_eq "${out% *}" 504 "total timeout status"
assert_range "${out#* }" 0.3 1.2 "504 after the total timeout (s)"

log "upstream down: 502 with a JSON body"
out=$(curl -s -w ' %{http_code}' --max-time 10 "$G/dead")
assert_contains "$out" " 502" "connection refused"
assert_contains "$out" '"error":"bad_gateway"' "502 JSON body"

log "second listen address served by the same threads; heartbeats kept the watchdog quiet"
assert_eq "$(http_status "http://127.0.0.1:$gport2/echo")" 200 "second listen address"
assert_eq "$(curl -s "http://127.0.0.1:$aport/stats" | jq .worker_restarts)" 0 "no worker restart (worker_timeout 1s)"
worker=$(pgrep -P "$(cat "$T/gw.pid")" | head -1)
# main + 2 loop threads + admin (+ logger/resolver helpers), not one loop thread per socket
assert_range "$(awk '/^Threads:/ { print $2 }' "/proc/$worker/status")" 4 6 "worker threads for 2 addresses x 2 threads"

log "/stats has the totals the doctor reads"
stats=$(curl -s "http://127.0.0.1:$aport/stats")
for k in .requests.total '.requests["5xx"]' .latency_ms.p95 .cache.hits .cache.misses .shed \
    .pool.wait_p95_ms .breakers_open .pool.connects .worker_restarts; do
    v=$(jq -r "$k" <<<"$stats")
    [[ "$v" =~ ^[0-9.]+$ ]] || fail "/stats $k is '$v'"
done
assert_range "$(jq -r '.requests["5xx"]' <<<"$stats")" 6 7 "5xx in /stats (2-3 queue timeouts, 3 timeouts, 1 refused)"
assert_range "$(jq -r '.pool.wait_p95_ms' <<<"$stats")" 0 5000 "pool wait p95"
log "ok"
