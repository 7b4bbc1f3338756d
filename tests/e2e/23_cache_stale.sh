#!/usr/bin/env bash
# Stale serving and revalidation: stale-while-revalidate answers at once with X-Cache: STALE and
# refreshes once in the background; stale-if-error answers a stale copy when the origin returns
# 5xx or is down (with Age, X-Cache: STALE), and only within the window; a stale entry with an
# ETag is revalidated with If-None-Match and a 304 refreshes it without a body transfer;
# If-None-Match / If-Modified-Since from clients are answered 304 by the cache.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

read -r mport m2port gport aport <<<"$(free_ports 4)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/swr, latency: {dist: fixed, ms: 800}, body_size: 512,
     cache_control: 'max-age=4, stale-while-revalidate=30'}
  - {method: GET, path: /api/reval, body_size: 2KB, cache_control: 'max-age=3', etag: true,
     last_modified: true}
  - {method: GET, path: '/api/sie/{id}', body_size: 256, cache_control: 'max-age=1, stale-if-error=60'}
  - {method: GET, path: '/api/nosie/{id}', body_size: 256, cache_control: 'max-age=1'}
  - {method: GET, path: '/down/{x}', body_size: 128}
  - {method: GET, path: '/echo/*', handler: echo, cache_control: 'max-age=2, stale-while-revalidate=30'}
YAML
cat >"$T/mock-5xx.yaml" <<'YAML'
routes:
  - {method: GET, path: '/api/sie/{id}', error_rate: 100%, error_status: 503}
  - {method: GET, path: '/api/nosie/{id}', error_rate: 100%, error_status: 503}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_mock mock2 "$m2port" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
  down: {servers: [127.0.0.1:$m2port], connect_timeout: 300ms, max_fails: 0}
routes:
  - match: /api/sie/
    upstream: api
    cache: {}
  - match: /api/nosie/
    upstream: api
    cache: {}
  - match: /down/
    upstream: down
    cache: {ttl: 1s, override: true, stale_if_error: 30s}
  - match: /
    upstream: api
    cache: {}
YAML
G=http://127.0.0.1:$gport

hdrs() { curl -s -o /dev/null -D - --max-time 10 "$@" | tr -d '\r'; }
hval() { awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1) == n { print $2; exit }'; }

log "stale-while-revalidate: STALE at once, one background refresh, then HIT"
fill_s=$(date +%s)
assert_eq "$(hdrs "$G/api/swr" | hval X-Cache)" MISS "first"
# past max-age=4 (a longer wait on a busy machine is fine: the swr window is 30 s). max-age 4, not
# less: the refreshed entry must stay fresh while the test polls for it and reads it
sleep 4.3
t0=$(date +%s%N)
h=$(hdrs "$G/api/swr")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
assert_eq "$(hval X-Cache <<<"$h")" STALE "within the window"
# An answer that waited for the origin takes at least its 800 ms; anything faster did not wait.
# (The bound is the origin's latency itself, not a guess of the machine's speed.)
[ "$ms" -lt 800 ] || fail "stale answer took ${ms} ms (the origin takes 800)"
# at least max-age, at most the seconds since the fill started (+1 for whole-second rounding)
assert_range "$(hval Age <<<"$h")" 4 $(($(date +%s) - fill_s + 1)) "Age of the stale answer"
# more stale requests during the refresh do not start more refreshes: poll (each poll is one more
# stale request while the 800 ms refresh runs) until the refreshed entry is served, then count
swr_hit() {
    h=$(hdrs "$G/api/swr")
    [ "$(hval X-Cache <<<"$h")" = HIT ]
}
wait_until 15 "the background refresh of /api/swr stored (X-Cache: HIT)" swr_hit
assert_eq "$(mock_stat "$mport" "GET /api/swr")" 2 "origin: fill + one refresh"
assert_range "$(hval Age <<<"$h")" 0 1 "Age after the refresh"

log "the background refresh forwards like the proxy: the client's claims about this hop never reach the origin"
assert_eq "$(hdrs "$G/echo/swr" | hval X-Cache)" MISS "echo: first"
sleep 2.3 # past max-age=2; 2, not 1, so the refreshed entry stays fresh while the test polls for it
h=$(hdrs "$G/echo/swr" -H 'X-Forwarded-Host: evil.example' -H 'X-Forwarded-Proto: https' \
    -H 'Forwarded: host=evil.example' -H 'X-Request-Id: attacker' -H 'Proxy-Authorization: Basic eA==' \
    -H 'X-Forwarded-For: 10.9.9.9')
assert_eq "$(hval X-Cache <<<"$h")" STALE "echo: stale, refresh started with the client's headers"
# the refresh runs in the background: poll until its entry is served
echo_hit() {
    h=$(curl -s -D "$T/swr.hdr" --max-time 10 "$G/echo/swr")
    [ "$(tr -d '\r' <"$T/swr.hdr" | hval X-Cache)" = HIT ]
}
wait_until 15 "the background refresh of /echo/swr stored (X-Cache: HIT)" echo_hit
assert_eq "$(jq -r '.headers["x-forwarded-host"]' <<<"$h")" "127.0.0.1:$gport" "refresh: X-Forwarded-Host"
assert_eq "$(jq -r '.headers["x-forwarded-proto"]' <<<"$h")" http "refresh: X-Forwarded-Proto"
assert_eq "$(jq -r '.headers["x-forwarded-for"]' <<<"$h")" "10.9.9.9, 127.0.0.1" "refresh: X-Forwarded-For"
assert_eq "$(jq -r '.headers.via' <<<"$h")" "1.1 apigate" "refresh: Via"
for k in forwarded proxy-authorization; do
    assert_eq "$(jq -r --arg k "$k" '.headers[$k] // "absent"' <<<"$h")" absent "refresh: client's $k not forwarded"
done
assert_ne "$(jq -r '.headers["x-request-id"]' <<<"$h")" attacker "refresh: client's X-Request-Id not forwarded"

log "revalidation: If-None-Match to the origin, 304 refreshes the entry"
assert_eq "$(hdrs "$G/api/reval" | hval X-Cache)" MISS "first"
etag=$(hdrs "$G/api/reval" | hval ETag)
lm=$(hdrs "$G/api/reval" | hval Last-Modified)
sleep 3.1
h=$(hdrs "$G/api/reval")
assert_eq "$(hval X-Cache <<<"$h")" EXPIRED "stale entry revalidated"
assert_eq "$(hval Content-Length <<<"$h")" 2048 "full answer to the client"
assert_eq "$(mock_stat "$mport" "GET /api/reval" 304)" 1 "origin answered 304"
assert_eq "$(hdrs "$G/api/reval" | hval X-Cache)" HIT "fresh again after the 304"
body=$(curl -s "$G/api/reval" | wc -c)
assert_eq "$body" 2048 "body kept across the refresh"
st=$(curl -s "http://127.0.0.1:$aport/cache/stats")
[ "$(jq -r .revalidated <<<"$st")" -ge 1 ] || fail "revalidated not counted: $st"

log "client conditionals answered by the cache"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$G/api/reval")
assert_eq "$code" 304 "If-None-Match"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "other"' "$G/api/reval")
assert_eq "$code" 200 "If-None-Match mismatch"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-Modified-Since: $lm" "$G/api/reval")
assert_eq "$code" 304 "If-Modified-Since"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT' "$G/api/reval")
assert_eq "$code" 200 "If-Modified-Since before Last-Modified"

log "stale-if-error on 5xx: within the origin's window only"
b1=$(curl -s "$G/api/sie/1")
curl -s -o /dev/null "$G/api/nosie/1"
curl -s -o /dev/null -X POST --data-binary @"$T/mock-5xx.yaml" "http://127.0.0.1:$mport/_mock/profile"
sleep 1.2
h=$(curl -s -D - --max-time 10 "$G/api/sie/1" | tr -d '\r')
assert_contains "$h" "HTTP/1.1 200" "stale copy instead of the 503"
assert_eq "$(hval X-Cache <<<"$h")" STALE "X-Cache"
[ "$(hval Age <<<"$h")" -ge 1 ] || fail "Age of the stale copy"
assert_contains "$h" "$b1" "same body"
code=$(curl -s -o /dev/null -w '%{http_code}' "$G/api/nosie/1")
assert_eq "$code" 503 "no stale-if-error window: the 503 goes through"

log "stale-if-error when the origin is down (route window)"
b1=$(curl -s "$G/down/item")
assert_eq "$(hdrs "$G/down/item" | hval X-Cache)" HIT "cached"
stop_bg mock2 || true
sleep 1.2
h=$(curl -s -D - --max-time 10 "$G/down/item" | tr -d '\r')
assert_contains "$h" "HTTP/1.1 200" "stale copy while the origin is down"
assert_eq "$(hval X-Cache <<<"$h")" STALE "X-Cache when down"
code=$(curl -s -o /dev/null -w '%{http_code}' "$G/down/never-cached")
assert_eq "$code" 502 "nothing stored: the error goes through"
st=$(curl -s "http://127.0.0.1:$aport/cache/stats")
[ "$(jq -r .stale_if_error <<<"$st")" -ge 2 ] || fail "stale_if_error not counted: $st"
log "ok"
