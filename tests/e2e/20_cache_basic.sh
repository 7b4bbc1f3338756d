#!/usr/bin/env bash
# Response cache basics through `apigate serve` in front of `apigate mock`: MISS then HIT with Age
# and X-Cache, the origin asked once, query normalisation and ignored parameters, HEAD and
# If-None-Match answered from the cache, RFC 9111 storability on a `cache: {}` route, credentials
# never served a shared entry, invalidation after a PUT (own URI and the route's related path),
# admin purge by key and prefix, max_object_size, /cache/stats, /metrics/cache and /metrics.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

read -r mport gport aport <<<"$(free_ports 3)"
start_mock mock "$mport"

start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true, invalidate: [/api/orders], ignore_query: [utm_*]}
  - match: /api/auth/me
    upstream: api
    cache: {ttl: 5m, override: true, vary: [Authorization]}
  - match: /missing/
    upstream: api
    cache: {ttl: 60s, override: true}
  - match: /gone/
    upstream: api
    cache: {ttl: 60s, override: true, negative_ttl: 5s}
  - match: /echo/big
    upstream: api
    cache: {ttl: 60s, override: true, max_object_size: 2KB}
  - match: /echo/
    upstream: api
    cache: {ttl: 60s, override: true, invalidate: [/echo/list]}
  - match: /
    upstream: api
    cache: {}
YAML
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport

# url_hdr URL HEADER [CURL ARGS]: value of one response header (empty when absent)
url_hdr() {
    local url=$1 name=$2
    shift 2
    curl -s -o /dev/null -D - --max-time 10 "$@" "$url" | tr -d '\r' |
        awk -v n="$(echo "$name" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1) == n { print $2; exit }'
}

log "MISS, then HIT with Age; the origin answers once"
assert_eq "$(url_hdr "$G/api/users/7" X-Cache)" MISS "first GET"
assert_eq "$(url_hdr "$G/api/users/7" X-Cache)" HIT "second GET"
age=$(url_hdr "$G/api/users/7" Age)
assert_range "$age" 0 2 "Age of a fresh hit"
sleep 1.2
age=$(url_hdr "$G/api/users/7" Age)
assert_range "$age" 1 3 "Age grows"
assert_eq "$(mock_stat "$mport" "GET /api/users/{id}")" 1 "origin requests for /api/users/7"
b1=$(http_body "$G/api/users/7")
b2=$(curl -s "http://127.0.0.1:$mport/api/users/7")
assert_eq "$(jq -r .id <<<"$b1")" 7 "cached body is the user"
assert_eq "${#b1}" "${#b2}" "cached body length"

log "HEAD and If-None-Match from the cache"
code=$(curl -s -o /dev/null -w '%{http_code}' -I "$G/api/users/7")
assert_eq "$code" 200 "HEAD status"
assert_eq "$(url_hdr "$G/api/users/7" X-Cache -I)" HIT "HEAD is a hit"
assert_eq "$(url_hdr "$G/api/users/7" Content-Length -I)" 1024 "HEAD keeps the length"

log "query: parameter order and utm_* do not split entries"
assert_eq "$(url_hdr "$G/api/users/8?b=2&a=1" X-Cache)" MISS "new key"
assert_eq "$(url_hdr "$G/api/users/8?a=1&b=2" X-Cache)" HIT "sorted query"
assert_eq "$(url_hdr "$G/api/users/8?a=1&utm_source=x&b=2" X-Cache)" HIT "ignored parameter"
assert_eq "$(url_hdr "$G/api/users/8?a=1&b=3" X-Cache)" MISS "other value"

log "credentials: Authorization and Cookie bypass a shared entry, never get it"
assert_eq "$(url_hdr "$G/echo/shared" X-Cache)" MISS "anonymous fill"
assert_eq "$(url_hdr "$G/echo/shared" X-Cache)" HIT "anonymous hit"
body=$(http_body "$G/echo/shared" -H 'Authorization: Bearer alice')
assert_contains "$body" "Bearer alice" "authorized request reaches the origin"
assert_eq "$(url_hdr "$G/echo/shared" X-Cache -H 'Authorization: Bearer alice')" BYPASS "X-Cache"
assert_eq "$(url_hdr "$G/echo/shared" X-Cache -H 'Cookie: s=1')" BYPASS "cookie"
body=$(http_body "$G/echo/shared")
assert_not_contains "$body" "alice" "anonymous entry untouched by the authorized request"
# an authorized request first: its response must not become the shared entry
http_body "$G/echo/first" -H 'Authorization: Bearer bob' >/dev/null
assert_eq "$(url_hdr "$G/echo/first" X-Cache)" MISS "authorized response was not stored"
assert_not_contains "$(http_body "$G/echo/first")" "bob" "no credentialed body for anonymous"

log "per-user entries on a route that varies on Authorization"
ba=$(http_body "$G/api/auth/me" -H 'Authorization: Bearer alice')
bb=$(http_body "$G/api/auth/me" -H 'Authorization: Bearer bob')
assert_eq "$(jq -r .user <<<"$ba")" alice "alice's body"
assert_eq "$(jq -r .user <<<"$bb")" bob "bob's body"
assert_eq "$(url_hdr "$G/api/auth/me" X-Cache -H 'Authorization: Bearer alice')" HIT "alice again"
assert_eq "$(jq -r .user <<<"$(http_body "$G/api/auth/me" -H 'Authorization: Bearer alice')")" alice "alice's cached body"
assert_eq "$(jq -r .user <<<"$(http_body "$G/api/auth/me" -H 'Authorization: Bearer bob')")" bob "bob's cached body"

log "RFC 9111 on cache: {}: max-age stored, no freshness not stored, ETag -> 304"
assert_eq "$(url_hdr "$G/api/catalog/products" X-Cache)" MISS "products"
assert_eq "$(url_hdr "$G/api/catalog/products" X-Cache)" HIT "products max-age=60"
etag=$(url_hdr "$G/api/catalog/products" ETag)
[ -n "$etag" ] || fail "no ETag on products"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$G/api/catalog/products")
assert_eq "$code" 304 "If-None-Match answered from the cache"
served=$(mock_stat "$mport" "GET /api/catalog/products")
assert_eq "$served" 1 "origin asked once for products"
assert_eq "$(url_hdr "$G/api/orders" X-Cache)" MISS "orders (no Cache-Control)"
assert_eq "$(url_hdr "$G/api/orders" X-Cache)" MISS "orders not stored without freshness"

log "invalidation: PUT purges its URI (all queries) and the route's related paths"
curl -s -o /dev/null "$G/api/users/9"
curl -s -o /dev/null "$G/api/users/9?x=1"
assert_eq "$(url_hdr "$G/api/users/9" X-Cache)" HIT "cached before the PUT"
assert_eq "$(url_hdr "$G/api/users/9?x=1" X-Cache)" HIT "query variant cached before the PUT"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' -d '{"name":"n"}' "$G/api/users/9")
assert_eq "$code" 200 "PUT"
assert_eq "$(url_hdr "$G/api/users/9" X-Cache)" MISS "after PUT"
assert_eq "$(url_hdr "$G/api/users/9?x=1" X-Cache)" MISS "query variant after PUT"
assert_eq "$(url_hdr "$G/api/users/7" X-Cache)" HIT "other user untouched"
# a failed write invalidates nothing
assert_eq "$(url_hdr "$G/api/users/9" X-Cache)" HIT "refilled"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$G/api/users/9")
[ "$code" -ge 400 ] || fail "POST /api/users/9 should fail at the mock, got $code"
assert_eq "$(url_hdr "$G/api/users/9" X-Cache)" HIT "failed write keeps the entry"

curl -s -o /dev/null "$G/echo/list?page=1"
assert_eq "$(url_hdr "$G/echo/list?page=1" X-Cache)" HIT "collection cached"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d 'x=1' "$G/echo/item")
assert_eq "$code" 200 "POST /echo/item"
assert_eq "$(url_hdr "$G/echo/list?page=1" X-Cache)" MISS "route's related path invalidated"

log "admin purge by key and by prefix"
out=$(curl -s -X POST "$A/cache/purge?key=/api/users/7")
assert_eq "$(jq -r .purged <<<"$out")" 1 "purge by key: $out"
assert_eq "$(url_hdr "$G/api/users/7" X-Cache)" MISS "after purge by key"
curl -s -o /dev/null "$G/api/users/7"
out=$(curl -s -X POST "$A/cache/purge?prefix=/api/users/")
n=$(jq -r .purged <<<"$out")
[ "$n" -ge 2 ] || fail "purge by prefix removed $n: $out"
assert_eq "$(url_hdr "$G/api/users/7" X-Cache)" MISS "after purge by prefix"
assert_eq "$(url_hdr "$G/api/catalog/products" X-Cache)" HIT "other prefix untouched"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$A/cache/purge")
assert_eq "$code" 400 "purge without key"

log "max_object_size: larger responses stream through uncached"
big=$(python3 -c 'print("x" * 4000)')
curl -s -o /dev/null "$G/echo/big?p=$big"
assert_eq "$(url_hdr "$G/echo/big?p=$big" X-Cache)" MISS "over max_object_size"
curl -s -o /dev/null "$G/echo/big?p=small"
assert_eq "$(url_hdr "$G/echo/big?p=small" X-Cache)" HIT "under max_object_size"

log "404s: not stored by ttl, stored with negative_ttl"
curl -s -o /dev/null "$G/missing/x"
assert_eq "$(url_hdr "$G/missing/x" X-Cache)" MISS "404 with override ttl only"
curl -s -o /dev/null "$G/gone/x"
assert_eq "$(url_hdr "$G/gone/x" X-Cache)" HIT "404 with negative_ttl"

log "stats and metrics"
st=$(curl -s "$A/cache/stats")
hits=$(jq -r .hits <<<"$st")
misses=$(jq -r .misses <<<"$st")
[ "$hits" -ge 15 ] || fail "hits $hits: $st"
[ "$misses" -ge 10 ] || fail "misses $misses: $st"
assert_eq "$(jq -r '.total == .hits + .misses' <<<"$st")" true "total"
assert_range "$(jq -r .hitRate <<<"$st")" 0.2 0.9 "hitRate"
[ "$(jq -r .objects <<<"$st")" -ge 3 ] || fail "objects: $st"
mc=$(curl -s "$A/metrics/cache")
assert_eq "$(jq -r .hits <<<"$mc")" "$hits" "/metrics/cache hits"
assert_eq "$(jq -r .cache.enabled <<<"$(curl -s "$A/stats")")" true "/stats cache member"
prom=$(curl -s "$A/metrics")
assert_contains "$prom" 'apigate_cache_requests_total{status="hit"}' "metrics"
assert_contains "$prom" 'apigate_cache_objects ' "metrics"
assert_contains "$prom" 'apigate_cache_stores_total ' "metrics"
log "ok"
