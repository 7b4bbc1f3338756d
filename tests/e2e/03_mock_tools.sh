#!/usr/bin/env bash
# Standard load tools against apigate mock: wrk (keep-alive, 32 connections) and ab (with and
# without -k) finish with zero errors and a sane rate, and the mock's counters agree exactly with
# what ab sent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq wrk ab

cat >"$T/profile.yaml" <<'EOF2'
routes:
  - {path: /fast, handler: static, body: '{"ok":true}', body_size: 1KB}
  - {path: '/users/{id}', handler: user, body_size: 512}
  - {path: /slow, latency: {dist: uniform, min: 1ms, max: 3ms}}
EOF2
port=$(free_port)
start_mock mock "$port" --profile "$T/profile.yaml" --threads 2
base="http://127.0.0.1:$port"

log "wrk -t1 -c32 -d2s on a zero-latency 1 KB route"
out=$(wrk -t1 -c32 -d2s "$base/fast")
log "$(grep -E 'Requests/sec|requests in' <<<"$out" | tr '\n' ' ')"
assert_not_contains "$out" "Socket errors" "wrk socket errors"
assert_not_contains "$out" "Non-2xx" "wrk non-2xx"
rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")
assert_range "$rps" 1000 100000000 "wrk req/s"
sent=$(awk '/requests in/ { print $1 }' <<<"$out")
served=$(mock_stat "$port" 'GET /fast')
# wrk stops with requests in flight: the mock may have answered a few that wrk did not count
assert_range "$served" "$sent" "$((sent + 64))" "mock served vs wrk completed"

log "wrk on a route with 1-3 ms latency (timers, many in flight)"
out=$(wrk -t1 -c32 -d2s "$base/slow")
assert_not_contains "$out" "Socket errors" "wrk socket errors (slow)"
assert_not_contains "$out" "Non-2xx" "wrk non-2xx (slow)"
rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")
assert_range "$rps" 500 100000000 "wrk req/s on a 1-3 ms route"

log "ab -k -n 2000 -c 10, then ab without keep-alive"
mock_reset "$port"
out=$(ab -q -k -n 2000 -c 10 "$base/users/7" 2>&1)
assert_contains "$out" "Complete requests:      2000" "ab -k complete"
assert_contains "$out" "Failed requests:        0" "ab -k failed"
assert_contains "$out" "Keep-Alive requests:    2000" "ab -k keep-alive"
assert_not_contains "$out" "Non-2xx" "ab -k non-2xx"
out=$(ab -q -n 500 -c 5 "$base/users/8" 2>&1)
assert_contains "$out" "Complete requests:      500" "ab complete"
assert_contains "$out" "Failed requests:        0" "ab failed"
assert_eq "$(mock_stat "$port" 'GET /users/{id}' 200)" 2500 "mock counted every ab request"
assert_eq "$(curl -s "$base/_mock/stats" | jq -r .inflight)" 0 "nothing in flight after the tools"

log "ok"
