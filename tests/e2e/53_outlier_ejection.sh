#!/usr/bin/env bash
# Passive outlier ejection (issue 7): two servers, one answers every request with a 500. After a
# few failures it is ejected and all traffic goes to the healthy one (the mocks' counters prove
# it); the ejection is counted; when the ejection time is over the server is tried again, and is
# ejected again while it keeps failing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

bad=$(free_port)
good=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/bad.yaml" <<'YAML'
routes:
  - {name: api, method: GET, path: '/api/{x}', error_rate: 100%, error_status: 500}
YAML
cat >"$T/good.yaml" <<'YAML'
routes:
  - {name: api, method: GET, path: '/api/{x}'}
YAML
start_mock bad "$bad" --profile "$T/bad.yaml"
start_mock good "$good" --profile "$T/good.yaml"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  api: {servers: [127.0.0.1:$bad, 127.0.0.1:$good], max_fails: 3, fail_timeout: 3s}
routes:
  - {match: /api/, upstream: api}
YAML
G=http://127.0.0.1:$gport
metric() { curl -s --max-time 5 "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '
    index($0, k) == 1 { s += $2; f = 1 } END { print f ? s : 0 }'; }

log "the failing server is ejected after 3 failures"
codes=""
for i in $(seq 1 20); do codes+="$(http_status "$G/api/$i") "; done
b=$(mock_stat "$bad" api)
assert_range "$b" 3 4 "requests the failing server got before its ejection"
ej=$(metric "apigate_upstream_ejections_total{upstream=\"api\",server=\"127.0.0.1:$bad\"")
assert_eq "$ej" 1 "ejections counted"

log "while ejected, all traffic goes to the healthy server"
mock_reset "$bad"
mock_reset "$good"
"$APIGATE" load -q -c 4 -d 1s --json "$T/l.json" "$G/api/x" >"$T/l.txt" 2>&1 || fail "load: $(cat "$T/l.txt")"
n=$(jq '[.status[]] | add' "$T/l.json")
assert_eq "$(jq '.status["200"]' "$T/l.json")" "$n" "only 200s while ejected"
assert_eq "$(mock_stat "$bad" api)" 0 "the ejected server got nothing"
assert_eq "$(mock_stat "$good" api)" "$n" "the healthy server got everything"

log "after the ejection time it is tried again, and ejected again"
sleep 2.2
for i in $(seq 1 20); do http_status "$G/api/r$i" >/dev/null; done
b=$(mock_stat "$bad" api)
assert_range "$b" 3 4 "requests to the failing server after its ejection ended"
assert_eq "$(metric "apigate_upstream_ejections_total{upstream=\"api\",server=\"127.0.0.1:$bad\"")" 2 "second ejection"
log "ok"
