#!/usr/bin/env bash
# `apigate top`: one frame (--once) shows the route table with the calls /stats counts, the rate
# over the interval while load runs, the pools; the refresh loop prints a frame per interval and
# stops on SIGTERM; bad usage exits 2 and an unreachable admin listener exits 1 with a message.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /api/users, body_size: 100}
  - {method: GET, path: /api/orders, status: 503}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /api/users
    upstream: api
  - match: /api/orders
    upstream: api
    breaker: {min_requests: 5, error_threshold: 50%, open_for: 1h}
EOF

log "usage errors exit 2; --help exits 0"
rc=0; "$APIGATE" top --interval 10ms --once >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" 2 "--interval below 100ms"
rc=0; "$APIGATE" top --interval soon --once >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "--interval not a duration"
assert_contains "$(cat "$T/err")" "--interval" "message names the option"
rc=0; "$APIGATE" top --admin nohost --once >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "bad --admin"
rc=0; "$APIGATE" top --admin https://127.0.0.1:9901 --once >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" 2 "top --admin https://"
assert_contains "$(cat "$T/err")" "expected host:port or http://host:port" "top --admin https:// message"
rc=0; "$APIGATE" top --frobnicate >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "unknown option"
"$APIGATE" top --help | grep -q -- "--admin" || fail "--help lacks --admin"

log "unreachable admin: exit 1 with the address in the message"
dead=$(free_port)
rc=0; "$APIGATE" top --once --admin "127.0.0.1:$dead" --interval 100ms >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" 1 "unreachable"
assert_contains "$(cat "$T/err")" "127.0.0.1:$dead" "message"

log "one frame: route calls and errors match /stats"
for _ in $(seq 1 37); do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$gport/api/users"; done
for _ in $(seq 1 5); do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$gport/api/orders"; done
"$APIGATE" top --once --admin "127.0.0.1:$aport" --interval 200ms >"$T/frame.txt"
cat "$T/frame.txt" >&2
row=$(grep -E '^/api/users ' "$T/frame.txt") || fail "no /api/users row"
assert_eq "$(awk '{print $3}' <<<"$row")" 37 "calls of /api/users"
assert_eq "$(awk '{print $4}' <<<"$row")" 0.0 "rate while idle"
row=$(grep -E '^/api/orders +api ' "$T/frame.txt") || fail "no /api/orders row"
assert_eq "$(awk '{print $3, $7}' <<<"$row")" "5 5" "calls and errors of /api/orders"
assert_eq "$(jq -r '.routes[] | select(.route == "/api/users") | .count' < <(curl -s "http://127.0.0.1:$aport/stats"))" 37 "/stats agrees"
grep -qE '^api +[0-9]+ +[0-9]+ ' "$T/frame.txt" || fail "no pool row for upstream api"
assert_contains "$(cat "$T/frame.txt")" "requests 42" "total requests"
grep -qE '^/api/orders +open ' "$T/frame.txt" || fail "breaker of /api/orders not shown open"
assert_eq "$(curl -s "http://127.0.0.1:$aport/stats" | jq -r '.breakers[0].state')" open "/stats breaker"

log "under load: the interval rate and percentiles are there"
"$APIGATE" load -q -c 2 -d 3s "http://127.0.0.1:$gport/api/users" >/dev/null &
lp=$!
sleep 0.5
"$APIGATE" top --once --admin "http://127.0.0.1:$aport" --interval 1s >"$T/frame2.txt"
wait "$lp"
rate=$(grep -E '^/api/users ' "$T/frame2.txt" | awk '{print $4}')
awk -v r="$rate" 'BEGIN { exit !(r > 50) }' || fail "rate under load: $rate ($(cat "$T/frame2.txt"))"
grep -qE 'interval p50 [0-9.]+ p95 [0-9.]+ p99 [0-9.]+' "$T/frame2.txt" ||
    fail "no interval percentiles under load: $(head -3 "$T/frame2.txt")"

log "refresh loop: a frame per interval, stops on SIGTERM with status 0"
"$APIGATE" top --admin "127.0.0.1:$aport" --interval 200ms >"$T/loop.txt" 2>&1 &
tp=$!
sleep 1.3
kill -TERM "$tp"
rc=0; wait "$tp" || rc=$?
assert_eq "$rc" 0 "exit after SIGTERM"
frames=$(grep -c '^apigate top' "$T/loop.txt")
[ "$frames" -ge 4 ] || fail "expected ≥ 4 frames in 1.3 s at 200ms, got $frames"
log "top ok"
