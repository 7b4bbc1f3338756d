#!/usr/bin/env bash
# routes[].rate_limit (docs/ratelimit.md) on one instance: apigate load offering ~1000/s with one
# API key on a 200/s limit gets 200/s (+ the burst) admitted within 10% while a second key at
# 80/s is never limited (4 loop threads share the limit); 429 carries Retry-After and RateLimit-Policy / RateLimit, an admitted
# answer carries RateLimit; the 429s never open the route's breaker; a request without the key
# header is keyed by its address; jwt:sub keys by the unverified claim; a fixed window; metrics;
# config errors at file:line:col.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /api/x, handler: echo}
  - {method: GET, path: /jwt/x, handler: echo}
  - {method: GET, path: /win/x, handler: echo}
  - {method: GET, path: /cached/x, handler: echo}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
# 4 loop threads: the limit is per gateway (one table shared by the threads); a limiter per
# thread would admit up to 4 x 200/s here
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 4}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    rate_limit: {rate: 200/s, burst: 50, key: header:X-Api-Key}
    breaker: {window: 5s, min_requests: 5, error_threshold: 50%, open_for: 30s}
  - match: /jwt/
    upstream: api
    rate_limit: {rate: 2/m, burst: 2, key: jwt:sub}
  - match: /win/
    upstream: api
    rate_limit: {rate: 3/h, algorithm: fixed_window}
  - match: /cached/
    upstream: api
    cache: {ttl: 60s, override: true}
    breaker: {}
    rate_limit: {rate: 2/m, burst: 2}
EOF
base="http://127.0.0.1:$gport"

# ---- an admitted answer carries RateLimit ----
curl -s -D "$T/ok.h" -o /dev/null -H 'X-Api-Key: probe' "$base/api/x"
grep -qi '^RateLimit-Policy: "default";q=200;w=1' "$T/ok.h" || fail "no policy on a 200: $(cat "$T/ok.h")"
grep -qi '^RateLimit: "default";r=49;t=1' "$T/ok.h" || fail "no RateLimit r=49 on the first 200: $(cat "$T/ok.h")"

# ---- 1000/s offered with key k1, 80/s with key k2, at the same time ----
log "load: k1 at 1000/s, k2 at 80/s, 8 s"
"$APIGATE" load -q -c 64 --rate 1000/s -d 8s --max-failed 100% -H 'X-Api-Key: k1' \
    --json "$T/k1.json" "$base/api/x" >"$T/k1.out" 2>&1 &
p1=$!
"$APIGATE" load -q -c 8 --rate 80/s -d 8s -H 'X-Api-Key: k2' --json "$T/k2.json" "$base/api/x" \
    >"$T/k2.out" 2>&1 &
p2=$!
wait "$p1" || fail "load k1 failed: $(tail -5 "$T/k1.out")"
wait "$p2" || fail "load k2 failed: $(tail -5 "$T/k2.out")"
ok1=$(jq '.status["200"] // 0' "$T/k1.json")
lim1=$(jq '.status["429"] // 0' "$T/k1.json")
dur1=$(jq '.duration_s' "$T/k1.json")
sent1=$(jq '.totals.requests' "$T/k1.json")
rate1=$(awk -v n="$ok1" -v d="$dur1" 'BEGIN { printf "%.1f", n / d }')
log "k1: $sent1 sent in ${dur1}s ($(jq .totals.rps "$T/k1.json")/s), $ok1 admitted = $rate1/s, $lim1 limited"
[ "$sent1" -gt 4000 ] || fail "k1 offered only $sent1 requests in 8 s (machine too loaded?)"
awk -v r="$rate1" 'BEGIN { exit !(r >= 180 && r <= 220) }' || fail "k1 admitted $rate1/s, not 200/s +-10%"
ok2=$(jq '.status["200"] // 0' "$T/k2.json")
lim2=$(jq '.status["429"] // 0' "$T/k2.json")
log "k2: $ok2 admitted, $lim2 limited"
[ "$lim2" = 0 ] || fail "k2 (80/s, under its own limit) got $lim2 429s: keys not apart"
[ "$ok2" -gt 500 ] || fail "k2 got only $ok2 answers"

# ---- the 429's fields ----
# 100 requests on one keep-alive connection (a few ms): 50 (the burst) and a few more pass
urls=()
for _ in $(seq 1 100); do urls+=("$base/api/x"); done
t0=$(date +%s%N)
curl -s -D "$T/all.h" -H 'X-Api-Key: k3' "${urls[@]}" >"$T/all.b" # heads and bodies
el_ms=$((($(date +%s%N) - t0) / 1000000))
n429=$(grep -c '^HTTP/1.1 429' "$T/all.h" || true)
n200=$(grep -c '^HTTP/1.1 200' "$T/all.h" || true)
# at most the burst, one more per 5 ms the 100 took (slow on a loaded machine), and one
hi=$((50 + el_ms / 5 + 1))
log "k3, 100 requests back to back in $el_ms ms: $n200 admitted, $n429 limited (at most $hi)"
[ "$n200" -ge 50 ] && [ "$n200" -le "$hi" ] || fail "k3: $n200 of 100 back-to-back requests admitted in $el_ms ms (burst 50, 200/s)"
awk 'BEGIN { RS = "\r\n\r\n" } /^HTTP\/1.1 429/ { print; exit }' "$T/all.h" >"$T/429.h"
[ -s "$T/429.h" ] || fail "no 429 head among the back-to-back answers"
grep -qi '^Retry-After: [1-9]' "$T/429.h" || fail "no Retry-After: $(cat "$T/429.h")"
grep -qi '^RateLimit-Policy: "default";q=200;w=1' "$T/429.h" || fail "no RateLimit-Policy on 429"
grep -qi '^RateLimit: "default";r=0;t=[1-9]' "$T/429.h" || fail "no RateLimit r=0 on 429: $(cat "$T/429.h")"
# the bodies of the same 100 answers (a second burst of requests could find the bucket refilled
# on a loaded machine: 20 requests 100 ms later all passed)
grep -q '"error":"rate_limited"' "$T/all.b" || fail "no rate_limited body among the 429s: $(head -c 600 "$T/all.b")"

# ---- thousands of 429s later the breaker is still closed: another key is served ----
assert_eq "$(http_status "$base/api/x" -H 'X-Api-Key: fresh')" 200 "a fresh key after the 429 flood (breaker)"

# ---- no key header: keyed by the client address (its own cell, limited too) ----
"$APIGATE" load -q -c 8 -d 1s --max-failed 100% --json "$T/nokey.json" "$base/api/x" >/dev/null 2>&1 || true
n429=$(jq '.status["429"] // 0' "$T/nokey.json")
nok=$(jq '.status["200"] // 0' "$T/nokey.json")
log "no key header, 1 s flood: $nok admitted, $n429 limited"
[ "$n429" -gt 0 ] || fail "a flood without X-Api-Key was never limited"
[ "$nok" -le 300 ] || fail "a flood without X-Api-Key got $nok admitted in 1 s (200/s + 50)"

# ---- jwt:sub, read without verification ----
jwt() { printf 'Bearer eyJhbGciOiJIUzI1NiJ9.%s.%s' "$(printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '=')" "$2"; }
alice=$(jwt '{"sub":"alice","iat":1}' sig1)
alice2=$(jwt '{"iat":2,"sub":"alice"}' othersig)
bob=$(jwt '{"sub":"bob"}' sig3)
s=""
for h in "$alice" "$alice" "$alice2" "$bob"; do
    s="$s $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $h" "$base/jwt/x")"
done
assert_eq "$s" " 200 200 429 200" "jwt:sub: alice x2, alice (another token, same claim), bob"

# ---- fixed window: 3 per hour ----
s=""
for _ in 1 2 3 4; do s="$s $(curl -s -o /dev/null -w '%{http_code}' "$base/win/x")"; done
assert_eq "$s" " 200 200 200 429" "fixed_window 3/h"
curl -s -D "$T/win.h" -o /dev/null "$base/win/x"
grep -qi '^RateLimit-Policy: "default";q=3;w=3600' "$T/win.h" || fail "window policy: $(cat "$T/win.h")"

# ---- every filter on one route: cache hits count against the limit ----
s=""
for _ in 1 2 3; do s="$s $(curl -s -o /dev/null -w '%{http_code}/%header{x-cache}' "$base/cached/x")"; done
assert_eq "$s" " 200/MISS 200/HIT 429/MISS" "cached route with breaker and rate_limit 2/m"
# the same over HTTP/2 (h2c): one limit whatever the session
curl -s --http2-prior-knowledge -D "$T/h2.h" -o /dev/null "$base/cached/x"
grep -q '^HTTP/2 429' "$T/h2.h" || fail "h2c after the limit: $(cat "$T/h2.h")"
grep -qi '^retry-after: [1-9]' "$T/h2.h" || fail "h2c 429 without retry-after"
grep -qi '^ratelimit: "default";r=0' "$T/h2.h" || fail "h2c 429 without ratelimit"

# ---- metrics ----
curl -s "http://127.0.0.1:$aport/metrics" >"$T/metrics"
lim=$(awk '/^apigate_rate_limited_total\{route="\/api\/"\}/ { print $2 }' "$T/metrics")
adm=$(awk '/^apigate_rate_limit_admitted_total\{route="\/api\/"\}/ { print $2 }' "$T/metrics")
log "metrics /api/: limited $lim admitted $adm"
[ "${lim:-0}" -ge "$lim1" ] || fail "apigate_rate_limited_total $lim < the $lim1 429s load saw"
[ "${adm:-0}" -ge $((ok1 + ok2)) ] || fail "apigate_rate_limit_admitted_total $adm < $((ok1 + ok2))"
grep -q 'apigate_rate_limited_total{route="/jwt/"} 1' "$T/metrics" || fail "jwt route metric"

# ---- config errors at file:line:col ----
cat >"$T/bad.yaml" <<EOF
listen: 127.0.0.1:$(free_port)
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /a/
    upstream: api
    rate_limit: {rate: 200/d}
  - match: /b/
    upstream: api
    rate_limit: {rate: 10/s, key: cookie:x}
  - match: /c/
    upstream: api
    rate_limit: {rate: 10/s, algorithm: leaky}
  - match: /d/
    upstream: api
    rate_limit: {burst: 5}
  - match: /e/
    upstream: api
    rate_limit: {rate: 10/m, algorithm: fixed_window, burst: 4}
EOF
set +e
"$APIGATE" check -c "$T/bad.yaml" >"$T/check.out" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "check accepted bad rate limits"
out=$(cat "$T/check.out")
assert_contains "$out" "bad.yaml:7:" "rate line"
assert_contains "$out" "routes[0].rate_limit.rate: '200/d' is not a rate" "bad rate"
assert_contains "$out" "bad.yaml:10:" "key line"
assert_contains "$out" "routes[1].rate_limit.key: 'cookie:x' is not a key" "bad key"
assert_contains "$out" "routes[2].rate_limit.algorithm" "bad algorithm"
assert_contains "$out" "routes[3].rate_limit.rate: missing" "missing rate"
assert_contains "$out" "routes[4].rate_limit.burst: only with algorithm gcra" "burst with a window"

# shared: true (the issue's shape as written) is built now (e2e/110, 111): check loads it without
# the old "not implemented yet" warning; it needs cache.redis, the Redis the instances share
cat >"$T/shared.yaml" <<EOF
listen: 127.0.0.1:1
cache: {redis: "redis://127.0.0.1:1/0"}
upstreams:
  api: {servers: [127.0.0.1:1]}
routes:
  - match: /api/
    upstream: api
    rate_limit: {rate: 200/s, burst: 50, key: header:X-Api-Key, shared: true}
EOF
out=$("$APIGATE" check -c "$T/shared.yaml" 2>&1) || fail "check refused shared: true: $out"
assert_not_contains "$out" "not implemented" "shared warning gone"
assert_not_contains "$out" "warning" "no warning for a shared gcra limit"
sed -i '/^cache:/d' "$T/shared.yaml"
rc=0
out=$("$APIGATE" check -c "$T/shared.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "check of shared: true without cache.redis"
assert_contains "$out" "shared.yaml:7:73: routes[0].rate_limit.shared: needs cache.redis" "shared without redis"
sed -i 's/shared: true}/shared: true, algorithm: fixed_window}/; s/burst: 50, //' "$T/shared.yaml"
sed -i '1a cache: {redis: "redis://127.0.0.1:1/0"}' "$T/shared.yaml"
out=$("$APIGATE" check -c "$T/shared.yaml" 2>&1) || fail "check refused a shared window: $out"
assert_not_contains "$out" "warning" "no warning for a shared window (built: e2e/138)"
log "ok"
