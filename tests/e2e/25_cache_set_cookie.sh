#!/usr/bin/env bash
# Responses with Set-Cookie: never stored by default (each request goes to the origin and gets its
# cookie); a route with cache.allow_set_cookie stores them WITHOUT the cookie, so the client whose
# request filled the entry gets it and no client served from the cache ever does.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl

mport=$(free_port)
gport=$(free_port)
aport=$(free_port) # the default admin address (127.0.0.1:9901) belongs to one gateway
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: '/*', body_size: 64, cache_control: 'public, max-age=60',
     headers: {Set-Cookie: 'session=s3cr3t; Path=/; HttpOnly'}}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /allowed/
    upstream: api
    cache: {allow_set_cookie: true}
  - match: /
    upstream: api
    cache: {}
YAML
G=http://127.0.0.1:$gport
# head_of URL: the response head, lower-cased names
head_of() { curl -s -D - -o /dev/null --max-time 5 "$1" | tr -d '\r' | tr 'A-Z' 'a-z'; }

log "default route: a Set-Cookie response is never stored"
for i in 1 2 3; do
    h=$(head_of "$G/default/x")
    assert_contains "$h" "x-cache: miss" "default route, request $i: not from the cache"
    assert_contains "$h" "set-cookie: session=s3cr3t" "default route, request $i: the origin's cookie"
done

log "allow_set_cookie: stored without the cookie"
h=$(head_of "$G/allowed/x")
assert_contains "$h" "x-cache: miss" "first request fills the entry"
assert_contains "$h" "set-cookie: session=s3cr3t" "the filling client gets its cookie"
for i in 1 2 3; do
    h=$(head_of "$G/allowed/x")
    assert_contains "$h" "x-cache: hit" "request $i after the fill: a hit"
    [[ "$h" != *set-cookie* ]] || fail "a cached copy carried the filling client's cookie: $h"
done

log "a bad value is refused with its position"
printf 'upstreams:\n  api: {servers: [127.0.0.1:1]}\nroutes:\n  - match: /\n    upstream: api\n    cache: {allow_set_cookie: sometimes}\n' >"$T/bad.yaml"
rc=0
out=$("$APIGATE" check -c "$T/bad.yaml" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "check accepted allow_set_cookie: sometimes"
assert_contains "$out" "bad.yaml:6:" "error names the line"
log "Set-Cookie responses: refused by default, stored cookie-free on request"
