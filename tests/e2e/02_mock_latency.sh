#!/usr/bin/env bash
# apigate mock's simulation: fixed latency, a DB pool of 2 shared by two loop threads (six
# concurrent requests finish in three waves), queue timeout → 503, error injection, cold start,
# stall, hang, live profile replacement and exact counters. Ranges are generous (a loaded 2-core
# machine), counts are exact.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

cat >"$T/profile.yaml" <<'EOF'
global:
  db_pool: {size: 2, service: {dist: fixed, ms: 100}}
routes:
  - {path: /fixed, latency: 20ms}
  - {path: /db, db: true}
  - {path: /err, error_rate: 1.0}
  - {path: /fast}
  - {path: /hang, hang: true}
  - {path: /close, close: true}
  - {path: /chunked, chunked: true, body_size: 3000}
  - {path: /counter, handler: counter, etag: true}
EOF
port=$(free_port)
start_mock mock "$port" --profile "$T/profile.yaml" --threads 2
base="http://127.0.0.1:$port"

log "fixed 20 ms"
for i in 1 2 3; do
    t=$(http_time "$base/fixed")
    assert_range "$t" 19 400 "fixed 20ms route, try $i (ms)"
done
assert_range "$(http_time "$base/fast")" 0 200 "zero-latency route (ms)"

log "DB pool of 2, 100 ms each: six concurrent requests take three waves"
# finish times are measured from one common start: curls that start late on a busy machine
# still cannot make the pool serve the third wave before 300 ms
t0=$(date +%s%N)
pids=()
for i in 1 2 3 4 5 6; do
    (curl -s -o /dev/null --max-time 10 "$base/db" && date +%s%N >"$T/db.$i") &
    pids+=($!)
done
wait "${pids[@]}" # not a bare wait: the mock is a background job too
times=$(cat "$T"/db.* | awk -v t0="$t0" '{ printf "%d\n", ($1 - t0) / 1000000 }' | sort -n | tr '\n' ' ')
log "db finish times since start (ms): $times"
read -r -a ts <<<"$times"
assert_eq "${#ts[@]}" 6 "six DB answers"
assert_range "${ts[0]}" 95 600 "first wave done (ms)"
assert_range "${ts[5]}" 295 1500 "third wave done (ms)"
assert_range "$((ts[5] - ts[0]))" 180 1200 "first to last wave (ms)"
assert_eq "$(mock_stat "$port" 'GET /db' 200)" 6 "db served"

log "error_rate 1.0: every answer is a 500"
for i in $(seq 1 10); do
    assert_eq "$(http_status "$base/err")" 500 "err $i"
done
assert_eq "$(mock_stat "$port" 'GET /err' 500)" 10 "err 500 count"
assert_eq "$(mock_stat "$port" 'GET /err')" 10 "err served"

log "stats count exactly, reset zeroes them"
mock_reset "$port"
for i in $(seq 1 7); do http_status "$base/fast" >/dev/null; done
assert_eq "$(mock_stat "$port" 'GET /fast')" 7 "fast served"
assert_eq "$(mock_stat "$port" total)" 7 "total"
mock_reset "$port"
assert_eq "$(mock_stat "$port" 'GET /fast')" 0 "after reset"

log "close: true and chunked: true"
v=$(curl -s -v "$base/close" 2>&1 >/dev/null)
assert_contains "$v" "Connection: close" "close route header"
assert_eq "$(curl -s --raw "$base/chunked" | tail -c 5 | od -An -tx1 | tr -d ' \n')" 300d0a0d0a \
    "ends with the last chunk"
assert_contains "$(curl -s -i "$base/chunked")" "Transfer-Encoding: chunked" "chunked header"
assert_eq "$(curl -s "$base/chunked" | wc -c)" 3000 "decoded chunked body"

log "counter: every answer is a new version (with its own ETag)"
c1=$(curl -s -i "$base/counter" | tr -d '\r')
c2=$(curl -s -i "$base/counter" | tr -d '\r')
assert_eq "$(tail -n1 <<<"$c1" | jq -r .n)" 1 "first version"
assert_eq "$(tail -n1 <<<"$c2" | jq -r .n)" 2 "second version"
assert_ne "$(grep -i '^etag' <<<"$c1")" "$(grep -i '^etag' <<<"$c2")" "ETag changes with the body"

log "hang: never answers"
set +e
curl -s -o /dev/null --max-time 1 "$base/hang"
rc=$?
set -e
assert_eq "$rc" 28 "curl timed out on /hang"
assert_eq "$(mock_stat "$port" 'GET /hang')" 0 "hang answered nothing"

log "POST /_mock/profile: bad profile → 400 with position, good one changes behaviour live"
bad=$(curl -s -w '\n%{http_code}' -X POST --data-binary $'routes:\n  - {path: /x, latency: soon}\n' "$base/_mock/profile")
assert_eq "$(tail -n1 <<<"$bad")" 400 "bad profile status"
assert_contains "$(head -n1 <<<"$bad" | jq -r .error)" "profile:2:25: latency: 'soon' is not a duration" "bad profile error"
assert_eq "$(http_status "$base/fast")" 200 "old profile still serving"
new=$(cat <<'EOF'
{"global": {"db_pool": {"size": 1, "service": {"ms": 2000}, "queue_timeout": "100ms"}},
 "routes": [{"path": "/fast", "status": 201, "latency": "50ms"},
            {"path": "/db", "db": true}]}
EOF
)
assert_eq "$(curl -s -X POST --data-binary "$new" "$base/_mock/profile" | jq -r .routes)" 2 "new profile"
assert_eq "$(http_status "$base/fast")" 201 "new status"
assert_range "$(http_time "$base/fast")" 48 500 "new latency (ms)"
assert_eq "$(http_status "$base/fixed")" 404 "old route gone"
assert_eq "$(curl -s "$base/_mock/profile" | jq -r '.routes[0].status')" 201 "GET /_mock/profile"

log "queue timeout: pool of 1, 2 s service, 100 ms queue timeout → 503"
# the service is long (2 s, not 300 ms) so that three curls started together are all in before
# the first is served, however late a loaded machine starts the second and third
pids=()
for i in 1 2 3; do
    http_status "$base/db" >"$T/q.$i" &
    pids+=($!)
done
wait "${pids[@]}"
codes=$(for f in "$T"/q.*; do cat "$f"; echo; done | sort | tr "\n" " ")
assert_eq "$codes" "200 503 503 " "one served, two timed out"
assert_eq "$(mock_stat "$port" 'GET /db' 503)" 2 "503 counted"
assert_eq "$(curl -s "$base/_mock/stats" | jq -r '.queue, .db_in_use, .inflight' | tr '\n' ' ')" "0 0 0 " "pool drained"

# a queue_limit answers 503 at once, with Retry-After
mock_set_profile "$port" '{"global": {"db_pool": {"size": 1, "service": "2s", "queue_limit": 1}},
                           "routes": [{"path": "/db", "db": true}, {"path": "/fast"}]}'
pids=()
for i in 1 2; do
    http_status "$base/db" >"$T/l.$i" &
    pids+=($!)
done
# both are in: one served (2 s), one queued; polled, as a loaded machine may start them late
both_in() { [ "$(curl -s --max-time 5 "$base/_mock/stats" | jq -r '"\(.db_in_use) \(.queue)"')" = "1 1" ]; }
wait_until 10 "one request served and one queued" both_in
full=$(curl -s -i --max-time 10 "$base/db")
wait "${pids[@]}"
assert_contains "$full" "HTTP/1.1 503" "third request over queue_limit 1"
assert_contains "$full" "Retry-After: 1" "Retry-After on 503"
assert_contains "$full" "queue is full" "queue full message"
assert_eq "$(cat "$T/l.1" "$T/l.2")" "200200" "the first two are served"

log "keepalive_timeout: an idle connection is closed by the mock"
mock_set_profile "$port" $'global:\n  keepalive_timeout: 300ms\nroutes:\n  - {path: /fast}\n'
t0=$(date +%s%N)
resp=$(printf 'GET /fast HTTP/1.1\r\nHost: x\r\n\r\n' | raw_http "$port" 10)
elapsed=$((($(date +%s%N) - t0) / 1000000))
assert_contains "$resp" "HTTP/1.1 200" "answer before the idle close"
# closed by the mock, not by the client's own 10 s limit (the state says which); the upper bound
# leaves room for the client's start on a loaded machine (4.3 s seen with a 3 s bound)
assert_eq "$(cat "$T/raw_http.state")" closed "idle connection closed"
assert_range "$elapsed" 250 8000 "closed after keepalive_timeout (ms)"

log "cold start and stall"
mock_set_profile "$port" $'global:\n  cold_start: {idle: 1s, extra: 400ms}\nroutes:\n  - {path: /fast}\n'
http_status "$base/fast" >/dev/null
assert_range "$(http_time "$base/fast")" 0 300 "warm request (ms)"
sleep 1.3
assert_range "$(http_time "$base/fast")" 380 2000 "first request after 1s idle (ms)"
assert_range "$(http_time "$base/fast")" 0 300 "warm again (ms)"
mock_set_profile "$port" $'global:\n  stall: {every: 1s, for: 600ms}\nroutes:\n  - {path: /fast}\n'
# Requests one after the other for 2.5 s: a held request is released at the end of its window,
# then the next ones run fast until the next window begins, 1 s after the previous one. So 2.5 s
# cross at least two windows: at least two requests are held, none longer than a window.
slow=0
max=0
end=$(($(date +%s%N) + 2500000000))
while [ "$(date +%s%N)" -lt "$end" ]; do
    t=$(http_time "$base/fast")
    [ "$t" -ge 50 ] && slow=$((slow + 1))
    [ "$t" -gt "$max" ] && max=$t
    sleep 0.05
done
assert_range "$slow" 2 100 "requests held by the stall windows"
assert_range "$max" 50 1100 "longest hold (ms): at most one 600 ms window"

log "ok"
