#!/usr/bin/env bash
# Regression: the timings of a retried request describe its last attempt. A GET that got a 503
# (retried) and then no answer at all from the other server (504 at first_byte) once logged
# upstream_ttfb_ms = first byte of attempt 1 minus send time of attempt 2, an unsigned underflow
# of about 1.8e16 ms, because each retry path reset its own subset of the exchange's fields.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

bad=$(free_port)
slow=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/bad.yaml" <<'YAML'
routes:
  - {name: t, method: GET, path: '/t/{x}', error_rate: 100%, error_status: 503}
YAML
cat >"$T/slow.yaml" <<'YAML'
routes:
  - {name: t, method: GET, path: '/t/{x}', hang: true}
YAML
start_mock bad "$bad" --profile "$T/bad.yaml"
start_mock slow "$slow" --profile "$T/slow.yaml"
cat >"$T/gw.yaml" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
logging: {access_log: $T/access.log, access_format: json, access_flush: 50ms}
upstreams:
  # the 503 server weighs 10, so most first attempts get the 503 and the retry the silent one
  u: {servers: [{address: 127.0.0.1:$bad, weight: 10}, 127.0.0.1:$slow], max_fails: 0}
routes:
  - match: /t/
    upstream: u
    timeout: {first_byte: 200ms}
    retry: {attempts: 1, budget: 100%, on: [503], backoff: 1ms}
YAML
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
wait_port "$gport"
wait_port "$aport"
G=http://127.0.0.1:$gport
metric() { curl -s --max-time 5 "http://127.0.0.1:$aport/metrics" | awk -v k="$1" 'index($0, k) == 1 { print $2; f = 1 } END { if (!f) print 0 }'; }

for i in $(seq 1 6); do
    assert_eq "$(http_status "$G/t/$i")" 504 "GET $i: 503, retried, then no answer"
done
retries=$(metric 'apigate_retries_total{route="/t/"}')
[ "$retries" -ge 3 ] || fail "only $retries retries: the 503-then-silence path was not exercised"
sleep 0.5
n=$(jq -s 'length' "$T/access.log")
assert_eq "$n" 6 "one access log line per request"
# the last attempt sent its head and got no byte back: no first-byte time at all
bad_lines=$(jq -c 'select(.upstream_ttfb_ms != null)' "$T/access.log")
assert_eq "$bad_lines" "" "no upstream_ttfb_ms on a request whose last attempt got no answer"
log "$retries of 6 requests retried after a 503 then timed out: timings of the last attempt only"
