#!/usr/bin/env bash
# The upstream gets the same X-Request-Id as the access log: the client's when it is 1 to 64 bytes,
# else the generated one (an empty or oversize client id was once forwarded as it came while the
# log, and the gateway's own error pages, carried a generated id), and exactly one of them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

mport=$(free_port)
gport=$(free_port)
aport=$(free_port) # the default admin address (127.0.0.1:9901) belongs to one gateway
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: ANY, path: '/echo/*', handler: echo}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
server: {client_header_timeout: 1s}
logging: {access_log: $T/access.log, access_format: json, access_flush: 50ms}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /echo/
    upstream: api
YAML
G=http://127.0.0.1:$gport
# upstream_rid PATH [curl args]: the X-Request-Id the origin saw ("many" if it saw several)
upstream_rid() {
    http_body "$G$1" "${@:2}" | jq -r '.headers["x-request-id"] | if type == "array" then "many" else . end'
}

assert_eq "$(upstream_rid /echo/kept -H 'X-Request-Id: my-id-42')" my-id-42 "a usable client id is kept"
assert_eq "$(upstream_rid /echo/twice -H 'X-Request-Id: first' -H 'X-Request-Id: second')" first \
    "two client ids: the first one, once"
long=$(printf 'x%.0s' $(seq 1 100))
rid_long=$(upstream_rid /echo/long -H "X-Request-Id: $long")
[[ "$rid_long" =~ ^[0-9a-f]{16}$ ]] || fail "a 100-byte client id replaced by a generated one: '$rid_long'"
rid_empty=$(upstream_rid /echo/empty -H 'X-Request-Id;')
[[ "$rid_empty" =~ ^[0-9a-f]{16}$ ]] || fail "an empty client id replaced by a generated one: '$rid_empty'"
sleep 0.5
for p in long:$rid_long empty:$rid_empty kept:my-id-42; do
    n=$(jq -s --arg p "/echo/${p%%:*}" --arg r "${p#*:}" '[.[] | select(.path == $p and .request_id == $r)] | length' "$T/access.log")
    assert_eq "$n" 1 "access log of /echo/${p%%:*} carries the id the upstream saw"
done
log "X-Request-Id: the upstream and the access log agree (kept, oversize, empty)"

# A refused head (400) and a head that never completes (408) get an id too, in the answer's
# header, its JSON body and the access log (they once answered "request_id":"" and no header).
for what in 400 408; do
    if [ "$what" = 400 ]; then
        out=$(printf 'GET /echo/bad HTTP/1.1\r\nHost: a\r\nX-Request-Id: mine\r\nBad Name: 1\r\n\r\n' | raw_http "$gport" 5)
    else
        out=$(printf 'GET /echo/slow HTTP/1.1\r\nHost: a\r\nX-Slow: ' | raw_http "$gport" 5)
    fi
    assert_contains "$out" "HTTP/1.1 $what" "$what answer"
    hdr=$(tr -d '\r' <<<"$out" | awk -F': ' '$1 == "X-Request-Id" { print $2 }')
    [[ "$hdr" =~ ^[0-9a-f]{16}$ ]] || fail "$what: X-Request-Id header '$hdr' in: $out"
    assert_contains "$out" "\"request_id\":\"$hdr\"" "$what: the body names the same id"
    sleep 0.3
    n=$(jq -s --arg r "$hdr" '[.[] | select(.request_id == $r and .status == '"$what"')] | length' "$T/access.log")
    assert_eq "$n" 1 "$what: access log carries the id"
done
log "refused and timed-out heads carry a generated id"
