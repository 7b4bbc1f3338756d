#!/usr/bin/env bash
# The keep-alive pool through `apigate serve`: 200 requests reuse one upstream connection
# (apigate_upstream_connects_total stays at 1 while the mock counts 200), keepalive_requests: 1
# shows the churn it prevents (one connect per request), and a pool of 2 connections in front of a
# slow route queues the rest and turns waits beyond queue_timeout into 503s that are counted.
# An upstream whose SYNs go unanswered ends in 504 after connect_timeout, or after the route's
# shorter timeout.connect.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: '/fast/{id}', body_size: 100}
  - {method: GET, path: '/slow/{id}', latency: {dist: fixed, ms: 3000}, body_size: 100}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"

# A listener that never accepts, with its accept queue full: the kernel drops further SYNs, so a
# connect to it hangs until the caller gives up (a black hole on loopback).
hport=$(free_port)
cat >"$T/blackhole.py" <<'EOF'
import os, socket, sys, time
ls = socket.socket()
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(0)
held = []
for _ in range(4):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", int(sys.argv[1])))
    held.append(s)
time.sleep(0.2)
open(os.path.join(os.environ["T"], "blackhole.ready"), "w").close()
time.sleep(3600)
EOF
start_bg blackhole python3 "$T/blackhole.py" "$hport"
for _ in $(seq 1 100); do [ -e "$T/blackhole.ready" ] && break; sleep 0.05; done
[ -e "$T/blackhole.ready" ] || fail "blackhole listener not ready"

start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  kept:
    servers: [127.0.0.1:$mport]
  churn:
    servers: [127.0.0.1:$mport]
    pool: {keepalive_requests: 1}
  small:
    servers: [127.0.0.1:$mport]
    pool: {max_connections: 2, max_idle: 2, queue_timeout: 100ms, max_queue: 100}
  hole:
    servers: [127.0.0.1:$hport]
    connect_timeout: 500ms
    max_fails: 0
routes:
  - match: /hole/
    upstream: hole
  - match: /hole-quick/
    upstream: hole
    timeout: {connect: 100ms}
  - match: /fast/
    upstream: kept
  - match: /churn/
    upstream: churn
  - match: /slow/
    upstream: small
EOF
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport
metric() {
    curl -s "$A/metrics" | awk -v p="$1" '!f && index($0, p " ") == 1 { print $NF; f = 1 } END { if (!f) print 0 }'
}

# 50 requests on one client connection (curl reuses its connection within one invocation);
# prints one status per line.
urls() {
    local p=$1 i args=()
    for i in $(seq 1 50); do args+=(-o /dev/null "$G/$p/$i"); done
    curl -s --max-time 20 -w '%{http_code}\n' "${args[@]}"
}

log "200 requests through a kept-alive pool"
for k in 1 2 3 4; do urls fast >>"$T/fast.codes"; done
assert_eq "$(grep -c "^200$" "$T/fast.codes")" 200 "200 answers"
served=$(mock_stat "$mport" 'GET /fast/{id}')
assert_eq "$served" 200 "requests that reached the mock"
kept=$(metric "apigate_upstream_connects_total{upstream=\"kept\",server=\"127.0.0.1:$mport\"}")
reuses=$(metric 'apigate_pool_reuses_total{upstream="kept"}')
log "kept: connects=$kept reuses=$reuses for 200 requests"
assert_eq "$kept" 1 "upstream connections opened for 200 requests"
assert_eq "$reuses" 199 "requests served on the kept-alive connection"
assert_eq "$(metric "http_client_request_duration_seconds_count{upstream=\"kept\",server=\"127.0.0.1:$mport\"}")" 200 \
    "upstream exchanges timed"

log "the same 50 requests with keepalive_requests: 1 (a connection per request)"
# The mock answers /churn/... with 404: still one upstream exchange per request.
urls churn >"$T/churn.codes"
churn=$(metric "apigate_upstream_connects_total{upstream=\"churn\",server=\"127.0.0.1:$mport\"}")
log "churn: connects=$churn for 50 requests"
assert_eq "$churn" 50 "one connection per request without reuse"
assert_eq "$(metric 'apigate_pool_closed_total{upstream="churn",reason="max_requests"}')" 50 "closed after one request"

# 3 s (was 300 ms): on a loaded machine the 10 curls start over more than 300 ms, and one that
# started after the first answers found a free connection (3 x 200 seen)
log "pool of 2 in front of a 3 s route: 10 parallel requests, queue_timeout 100 ms"
pids=()
for i in $(seq 1 10); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "$G/slow/$i" >"$T/slow.$i" &
    pids+=($!)
done
wait "${pids[@]}"
ok=$(cat "$T"/slow.* | grep -c '^200$' || true)
busy=$(cat "$T"/slow.* | grep -c '^503$' || true)
log "slow: $ok x 200, $busy x 503"
assert_eq "$ok" 2 "requests that got one of the 2 connections"
assert_eq "$busy" 8 "requests that waited longer than queue_timeout"
assert_eq "$(metric 'apigate_pool_errors_total{upstream="small",reason="queue_timeout"}')" 8 "queue timeouts counted"
assert_eq "$(metric 'apigate_pool_wait_seconds_count{upstream="small"}')" 8 "waits recorded"
assert_eq "$(metric "apigate_upstream_connects_total{upstream=\"small\",server=\"127.0.0.1:$mport\"}")" 2 \
    "connections of the small pool"
assert_eq "$(metric 'apigate_pool_waiting{upstream="small"}')" 0 "queue empty afterwards"
assert_eq "$(metric 'apigate_pool_connections{upstream="small",state="in_use"}')" 0 "nothing in use afterwards"
assert_eq "$(mock_stat "$mport" 'GET /slow/{id}')" 2 "the mock saw only the 2 requests that got a connection"
assert_eq "$(metric 'apigate_pool_max_connections{upstream="small"}')" 2 "capacity bound: 2 x 1 thread x 1 server"
assert_eq "$(metric 'apigate_pool_max_connections{upstream="kept"}')" 64 "capacity bound with the default pool"

log "connect timeouts: an upstream that never answers the SYN"
# (curl's -w still prints "000 ..." when it gives up, so the assertions below say what failed)
out=$(curl -s -w '\n%{http_code} %{time_total}' --max-time 5 "$G/hole/1" || true)
assert_eq "$(head -n1 <<<"$out" | jq -r .error)" connect_timeout "504 body"
read -r code secs <<<"$(tail -n1 <<<"$out")"
assert_eq "$code" 504 "status after the upstream's connect_timeout"
assert_range "$secs" 0.45 1.5 "seconds until the upstream's connect_timeout (500ms)"
read -r code secs <<<"$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 "$G/hole-quick/1" || true)"
assert_eq "$code" 504 "status after the route's timeout.connect"
assert_range "$secs" 0.08 0.4 "seconds until the route's timeout.connect (100ms) overrides 500ms"
assert_eq "$(metric 'apigate_upstream_errors_total{route="/hole/",reason="connect"}')" 1 "connect error counted"
assert_eq "$(metric 'apigate_upstream_errors_total{route="/hole-quick/",reason="connect"}')" 1 \
    "connect error counted on the quick route"
log "ok"
