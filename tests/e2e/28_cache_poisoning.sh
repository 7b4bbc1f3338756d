#!/usr/bin/env bash
# Cache poisoning through unkeyed request headers (issue 17 item 6): on a cached route a request
# header is either in the key or not forwarded. X-Original-URL, X-Rewrite-URL,
# X-HTTP-Method-Override (and X-HTTP-Method, X-Method-Override), X-Host, X-Forwarded-Server,
# X-Forwarded-Scheme and X-Original-Host reached the origin and were not keyed, so
# "GET /echo/c/x" with "X-Original-URL: /evil" filled the entry everyone then got. The echo origin
# reflects what it received: on a cached route none of them arrives and the entry is clean; a
# route that names one in vary gets it forwarded and keyed; an uncached route forwards them.
# And ';' parameter cloaking (item 7): with ignore_query: [utm_*], "?utm_source=x;callback=evil"
# was keyed as the bare path (parameters split on '&' only), so the origin's answer to
# callback=evil was served for /echo/q/x; a query with ';' is now keyed as sent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

read -r mport gport aport <<<"$(free_ports 3)"
start_mock mock "$mport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /echo/c/
    upstream: api
    cache: {ttl: 5m, override: true}
  - match: /echo/k/
    upstream: api
    cache: {ttl: 5m, override: true, vary: [X-Original-Host]}
  - match: /echo/u/
    upstream: api
  - match: /echo/q/
    upstream: api
    cache: {ttl: 5m, override: true, ignore_query: ["utm_*"]}
YAML
G=http://127.0.0.1:$gport
HOSTILE=(-H 'X-Original-URL: /evil' -H 'X-Rewrite-URL: /evil' -H 'X-HTTP-Method-Override: DELETE'
    -H 'X-HTTP-Method: DELETE' -H 'X-Method-Override: DELETE' -H 'X-Host: evil.example'
    -H 'X-Forwarded-Server: evil.example' -H 'X-Forwarded-Scheme: nothttps'
    -H 'X-Original-Host: evil.example')
NAMES='x-original-url x-rewrite-url x-http-method-override x-http-method x-method-override x-host x-forwarded-server x-forwarded-scheme x-original-host'
# seen BODY: the listed names the origin received, space-separated
seen() { jq -r --arg n "$NAMES" '[($n | split(" "))[] as $k | select(.headers[$k] != null) | $k] | join(" ")' <<<"$1"; }
xc() { curl -s -o /dev/null -D - --max-time 5 "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }

log "cached route: the hostile headers are not forwarded, the entry is clean"
body=$(curl -s --max-time 5 "${HOSTILE[@]}" "$G/echo/c/x")
assert_eq "$(seen "$body")" "" "forwarded on a cached route"
assert_eq "$(xc "$G/echo/c/x")" HIT "the entry filled by the hostile request"
body=$(curl -s --max-time 5 "$G/echo/c/x")
assert_eq "$(seen "$body")" "" "what everyone gets"
assert_eq "$(jq -r .method <<<"$body")" GET "the method"
log "a route that names one in vary: forwarded and keyed"
body=$(curl -s --max-time 5 -H 'X-Original-Host: one.example' -H 'X-Host: evil.example' "$G/echo/k/x")
assert_eq "$(jq -r '.headers["x-original-host"]' <<<"$body")" one.example "kept by vary"
assert_eq "$(seen "$body")" "x-original-host" "only the one in the key"
assert_eq "$(xc -H 'X-Original-Host: two.example' "$G/echo/k/x")" MISS "another value, another entry"
assert_eq "$(xc -H 'X-Original-Host: one.example' "$G/echo/k/x")" HIT "same value, same entry"
log "uncached route: forwarded as before"
body=$(curl -s --max-time 5 "${HOSTILE[@]}" "$G/echo/u/x")
assert_eq "$(seen "$body")" "$NAMES" "an uncached route forwards them"
log "';' cloaking: a query with ';' is keyed as sent"
body=$(curl -s --max-time 5 "$G/echo/q/x?utm_source=x;callback=evil")
assert_eq "$(jq -r .query <<<"$body")" "utm_source=x;callback=evil" "forwarded as sent"
assert_eq "$(xc "$G/echo/q/x")" MISS "the bare path is not the cloaked query's entry"
assert_eq "$(jq -r .query <<<"$(curl -s --max-time 5 "$G/echo/q/x")")" null "the bare path's answer"
assert_eq "$(xc "$G/echo/q/x?utm_source=x;callback=evil")" HIT "the cloaked query has its own entry"
assert_eq "$(xc "$G/echo/q/x?utm_source=y")" HIT "ignore_query still works without ';'"
log "ok"
