#!/usr/bin/env bash
# Outlier ejection with `outlier:` (issue 7): 3 consecutive 500s eject a server for the base time
# (2 s), the next ejection lasts twice as long (growing interval), and when every server fails
# max_ejection_percent keeps half of the pool in: clients get the upstream's own answers instead of
# "no healthy server".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

bad=$(free_port)
good=$(free_port)
gport=$(free_port)
aport=$(free_port)
fail500='routes: [{name: api, method: GET, path: "/api/{x}", error_rate: 100%, error_status: 500}]'
ok200='routes: [{name: api, method: GET, path: "/api/{x}"}]'
echo "$fail500" >"$T/bad.yaml"
echo "$ok200" >"$T/good.yaml"
start_mock bad "$bad" --profile "$T/bad.yaml"
start_mock good "$good" --profile "$T/good.yaml"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api:
    servers: [127.0.0.1:$bad, 127.0.0.1:$good]
    outlier: {consecutive_failures: 3, base_ejection_time: 2s, max_ejection_time: 10s,
              max_ejection_percent: 50%}
routes:
  - {match: /api/, upstream: api}
YAML
G=http://127.0.0.1:$gport
burst() { local i; for i in $(seq 1 "$1"); do http_status "$G/api/$i"; echo; done | sort | uniq -c | tr -s ' ' | tr '\n' ';'; }

log "3 consecutive 500s: ejected for 2 s"
burst 10 >/dev/null
assert_eq "$(mock_stat "$bad" api)" 3 "requests to the failing server before the first ejection"
assert_contains "$(cat "$T/gw.log")" "ejected for 2000 ms after 3 consecutive failures (ejection 1)" "log"

log "back after 2 s, fails again: ejected for 4 s"
sleep 2.1
mock_reset "$bad"
burst 10 >/dev/null
assert_eq "$(mock_stat "$bad" api)" 3 "requests to the failing server before the second ejection"
assert_contains "$(cat "$T/gw.log")" "ejected for 4000 ms after 3 consecutive failures (ejection 2)" "log"
sleep 2.5 # longer than the first ejection, shorter than the second
mock_reset "$bad"
burst 5 >/dev/null
assert_eq "$(mock_stat "$bad" api)" 0 "still ejected 2.5 s into the 4 s ejection"

log "every server fails: max_ejection_percent keeps one in"
mock_set_profile "$good" "$fail500"
sleep 1
out=$(burst 30)
log "statuses: $out"
assert_eq "$out" " 30 500;" "the upstream's own 500s, no gateway 502/503"
log "ok"
