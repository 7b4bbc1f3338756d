#!/usr/bin/env bash
# Retries (issue 7): a GET that fails with a listed status is retried on another server and the
# client sees the good answer; a POST is never retried; with a 100%-failing upstream under load the
# retries stay within the budget (retries <= 20% of requests, not 3 per request), the refusals are
# counted, and apigate_retries_total matches what the origin saw.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

bad=$(free_port)
good=$(free_port)
dead=$(free_port) # nothing listens there: connections are refused
gport=$(free_port)
aport=$(free_port)
cat >"$T/bad.yaml" <<'YAML'
routes:
  - {name: pair, method: ANY, path: '/pair/{x}', error_rate: 100%, error_status: 503}
  - {name: down, method: GET, path: '/down/{x}', error_rate: 100%, error_status: 503}
  - {name: slow, method: GET, path: '/slow/{x}', hang: true}
YAML
cat >"$T/good.yaml" <<'YAML'
routes:
  - {name: pair, method: ANY, path: '/pair/{x}'}
  - {name: slow, method: GET, path: '/slow/{x}'}
YAML
start_mock bad "$bad" --profile "$T/bad.yaml"
start_mock good "$good" --profile "$T/good.yaml"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  # the failing server weighs 10: round robin alone would send most retries back to it
  pair: {servers: [{address: 127.0.0.1:$bad, weight: 10}, 127.0.0.1:$good], max_fails: 0}
  down: {servers: [127.0.0.1:$bad], max_fails: 0}
  half: {servers: [127.0.0.1:$dead, 127.0.0.1:$good], max_fails: 0}
routes:
  - match: /pair/post
    upstream: pair
    retry: {attempts: 2, budget: 100%, on: [503], backoff: 5ms, non_idempotent: true}
  - match: /pair/
    upstream: pair
    retry: {attempts: 2, budget: 100%, on: [503], backoff: 5ms}
  - match: /pair/half
    upstream: half
    retry: {attempts: 1, budget: 100%, backoff: 1ms}
  - match: /slow/
    upstream: pair
    timeout: {first_byte: 300ms}
    retry: {attempts: 1, budget: 100%, on: [timeout], backoff: 1ms}
  - match: /down/
    upstream: down
    retry: {attempts: 3, budget: 20%, on: [502, 503, 504], backoff: 1ms}
YAML
G=http://127.0.0.1:$gport
metric() { curl -s --max-time 5 "http://127.0.0.1:$aport/metrics" | awk -v k="$1" 'index($0, k) == 1 { print $2; f = 1 } END { if (!f) print 0 }'; }

log "a 503 from one server is retried on the other (not on the same one again)"
for i in $(seq 1 20); do
    assert_eq "$(http_status "$G/pair/$i")" 200 "GET $i"
done
b=$(mock_stat "$bad" pair)
g=$(mock_stat "$good" pair)
log "bad server saw $b, good server $g"
assert_eq "$g" 20 "every GET answered by the good server"
[ "$b" -ge 1 ] || fail "the failing server was never tried"
assert_eq "$(metric 'apigate_retries_total{route="/pair/"}')" "$b" "retries counted"

log "a refused connection is retried on the other server (default retry.on: connect_error, reset)"
mock_reset "$good"
for i in $(seq 1 10); do assert_eq "$(http_status "$G/pair/half")" 200 "GET half $i"; done
assert_eq "$(mock_stat "$good" pair)" 10 "all answered by the live server"
[ "$(metric 'apigate_retries_total{route="/pair/half"}')" -ge 4 ] || fail "connect errors were not retried"

log "no answer before first_byte: retried on the other server"
for i in $(seq 1 4); do
    ms=$(http_time "$G/slow/$i")
    assert_range "$ms" 0 1500 "slow $i answered after one timeout (ms)"
done
assert_eq "$(mock_stat "$good" slow)" 4 "every timed-out request answered by the other server"
[ "$(metric 'apigate_retries_total{route="/slow/"}')" -ge 2 ] || fail "timeouts were not retried"

log "POST is not retried"
mock_reset "$bad"
mock_reset "$good"
codes=""
for i in $(seq 1 10); do codes+="$(http_status "$G/pair/p$i" -X POST -d x) "; done
assert_eq "$(( $(mock_stat "$bad" pair) + $(mock_stat "$good" pair) ))" 10 "one origin request per POST"
assert_contains "$codes" 503 "POSTs that hit the failing server fail"

log "POST is retried on a route that opts in (non_idempotent)"
mock_reset "$bad"
mock_reset "$good"
for i in $(seq 1 10); do assert_eq "$(http_status "$G/pair/post" -X POST)" 200 "opted-in POST $i"; done
assert_eq "$(mock_stat "$good" pair)" 10 "every opted-in POST answered by the good server"

log "100%-failing upstream under load: retries bounded by the budget"
"$APIGATE" load -q -c 8 -d 3s --max-failed 100% --json "$T/down.json" "$G/down/1" >"$T/down.txt" 2>&1 ||
    fail "load failed: $(cat "$T/down.txt")"
requests=$(jq '[.status[]] | add' "$T/down.json")
assert_eq "$(jq '.status["503"]' "$T/down.json")" "$requests" "clients see the 503"
origin=$(mock_stat "$bad" down)
retries=$((origin - requests))
counted=$(metric 'apigate_retries_total{route="/down/"}')
exhausted=$(metric 'apigate_retry_budget_exhausted_total{route="/down/"}')
log "$requests requests, origin saw $origin: $retries retries (counter $counted), budget refusals $exhausted"
[ "$requests" -gt 200 ] || fail "too few requests: $requests"
assert_eq "$counted" "$retries" "apigate_retries_total equals the extra origin requests"
limit=$(awk -v r="$requests" 'BEGIN { printf "%d", r * 0.2 + 2 }')
assert_range "$retries" 1 "$limit" "retries within 20% of requests"
# without a budget every request would retry 3 times; here most of them are refused
[ "$exhausted" -gt $((requests / 2)) ] || fail "budget refusals ($exhausted) for $requests requests"
log "a retry.on word that means nothing is a config error with its position"
cat >"$T/typo.yaml" <<YAML
listen: 127.0.0.1:$gport
upstreams:
  api: {servers: [127.0.0.1:$good]}
routes:
  - match: /
    upstream: api
    retry: {attempts: 1, on: [connect_error, 404]}
YAML
set +e
out=$("$APIGATE" check -c "$T/typo.yaml" 2>&1)
rc=$?
set -e
assert_eq "$rc" 2 "apigate check exit code"
assert_contains "$out" "typo.yaml:7:" "position"
assert_contains "$out" "routes[0].retry.on: '404' is not a failure kind" "message"
log "ok"
