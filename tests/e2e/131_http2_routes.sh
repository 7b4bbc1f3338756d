#!/usr/bin/env bash
# Route features re-run over HTTP/2 (issue 13: "every route feature works the same on h2 as on
# h1"), with curl (--http2-prior-knowledge for h2c, --http2 over TLS by ALPN), nghttp and h2load:
# a cache hit as one HEADERS + one DATA frame; per-user entries (vary: [Authorization]) that do not
# leak between streams of different users multiplexed on one connection; invalidation by a PUT
# over HTTP/2; the rate_limit filter's 429 with RateLimit headers; an open breaker's 503
# circuit_open; the access log's protocol HTTP/2.0 and the client's trace id continued to the
# origin; and headless Chromium loading a page over h2 with a self-signed certificate.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 nghttp h2load openssl jq

read -r mport gport tport aport dead EPORT <<<"$(free_ports 6)"
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: ANY, path: '/echo/*', handler: echo}
  - {method: GET, path: '/page', body_size: 2KB, headers: {Content-Type: text/html}}
EOF
start_mock mock "$mport"
start_mock echo2 "$EPORT" --profile "$T/mock.yaml"
test_cert "$T" cert /CN=localhost DNS:localhost,IP:127.0.0.1
start_gateway gw "$gport" "$tport" "$aport" <<YAML
listen:
  - 127.0.0.1:$gport
  - {address: 127.0.0.1:$tport, tls: {cert: $T/cert.pem, key: $T/cert.key}}
admin: 127.0.0.1:$aport
workers: {threads: 2}
logging: {access_log: $T/access.log, access_format: json, access_flush: 10ms}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
  echo: {servers: [127.0.0.1:$EPORT]}
  dead: {servers: [127.0.0.1:$dead]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true, invalidate: [/api/users]}
  - match: /api/auth/me
    upstream: api
    cache: {ttl: 5m, override: true, vary: [Authorization]}
  - match: /api/orders
    upstream: api
    rate_limit: {rate: 1/m, burst: 2}
  - match: /echo/
    upstream: echo
  - match: /page
    upstream: echo
    cache: {ttl: 60s, override: true}
  - match: /down
    upstream: dead
    timeout: {connect: 200ms}
    breaker: {window: 10s, min_requests: 3, error_threshold: 50%, open_for: 1m}
YAML
G=http://127.0.0.1:$gport
S=https://localhost:$tport
h2c() { curl -sS --http2-prior-knowledge --max-time 10 "$@"; }
h2s() { curl -sS --http2 --cacert "$T/cert.pem" --resolve "localhost:$tport:127.0.0.1" --max-time 10 "$@"; }

log "cache: MISS then HIT over h2c and over TLS (ALPN h2); a hit is one HEADERS + one DATA"
assert_eq "$(h2c -o /dev/null -w '%{http_version} %header{x-cache}' "$G/api/users/3")" "2 MISS" "h2c miss"
assert_eq "$(h2c -o /dev/null -w '%{http_version} %header{x-cache}' "$G/api/users/3")" "2 HIT" "h2c hit"
# the scheme is part of the cache key: https has its own entry
assert_eq "$(h2s -o /dev/null -w '%{http_version} %header{x-cache}' "$S/api/users/3")" "2 MISS" "TLS h2 miss"
assert_eq "$(h2s -o /dev/null -w '%{http_version} %header{x-cache}' "$S/api/users/3")" "2 HIT" "TLS h2 hit"
out=$(timeout 10 nghttp -v "$G/api/users/3" 2>&1) || fail "nghttp: $out"
assert_eq "$(grep -c 'recv HEADERS frame' <<<"$out")" 1 "one HEADERS frame for the hit"
assert_eq "$(grep -c 'recv DATA frame' <<<"$out")" 1 "one DATA frame for the 1 KB hit"
assert_contains "$(grep -A1 'recv DATA frame' <<<"$out")" "END_STREAM" "the DATA frame ends the stream"
out=$(timeout 60 h2load -c2 -m10 -n1000 "$S/api/users/3" 2>&1) || fail "h2load TLS: $out"
assert_contains "$out" "Application protocol: h2" "h2load over TLS speaks h2"
assert_contains "$out" "status codes: 1000 2xx" "h2load: 1000 hits"

log "per-user entries: alice and bob multiplexed on one connection never see each other's"
for round in 1 2 3; do
    curl -sS --http2-prior-knowledge --max-time 10 -Z --parallel-immediate \
        -H 'Authorization: Bearer alice' -o "$T/a$round" "$G/api/auth/me" --next \
        --http2-prior-knowledge -H 'Authorization: Bearer bob' -o "$T/b$round" "$G/api/auth/me" \
        --next --http2-prior-knowledge -o "$T/n$round" -w '%{num_connects}\n' "$G/api/auth/me" \
        >"$T/conns$round"
    assert_contains "$(cat "$T/a$round")" '"user":"alice"' "round $round: alice's stream"
    assert_contains "$(cat "$T/b$round")" '"user":"bob"' "round $round: bob's stream"
    assert_not_contains "$(cat "$T/n$round")" '"user":"alice"' "round $round: no Authorization"
    assert_not_contains "$(cat "$T/n$round")" '"user":"bob"' "round $round: no Authorization"
done
assert_eq "$(h2c -o /dev/null -w '%header{x-cache}' -H 'Authorization: Bearer bob' "$G/api/auth/me")" \
    HIT "bob's entry is a hit"

log "invalidation: a PUT over HTTP/2 purges the entry"
assert_eq "$(h2c -o /dev/null -w '%header{x-cache}' "$G/api/users/3")" HIT "cached before the PUT"
assert_eq "$(h2c -o /dev/null -w '%{http_code}' -X PUT --data '{"name":"x"}' "$G/api/users/3")" 200 "PUT"
assert_eq "$(h2c -o /dev/null -w '%header{x-cache}' "$G/api/users/3")" MISS "purged by the PUT"

log "rate limit: the third request in the burst gets 429 with Retry-After and RateLimit headers"
for i in 1 2; do
    assert_eq "$(h2c -o /dev/null -w '%{http_code}' "$G/api/orders?user_id=1")" 200 "request $i admitted"
done
h2c -D "$T/rl.head" -o "$T/rl.body" "$G/api/orders?user_id=1"
assert_contains "$(head -1 "$T/rl.head")" "HTTP/2 429" "429 over HTTP/2"
assert_contains "$(cat "$T/rl.head")" "retry-after:" "Retry-After"
assert_contains "$(cat "$T/rl.head")" "ratelimit-policy:" "RateLimit-Policy"
assert_contains "$(cat "$T/rl.body")" '"error":"rate_limited"' "the JSON error"

log "breaker: connect failures open it, then 503 circuit_open without touching the upstream"
for i in 1 2 3 4; do h2c -o /dev/null "$G/down" || true; done
h2c -D "$T/br.head" -o "$T/br.body" "$G/down"
assert_contains "$(head -1 "$T/br.head")" "HTTP/2 503" "503 over HTTP/2"
assert_contains "$(cat "$T/br.body")" '"error":"circuit_open"' "circuit_open"

log "traceparent: the client's trace id reaches the origin; the access log says HTTP/2.0"
tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
up=$(h2s -H "traceparent: $tp" "$S/echo/t" | jq -r '.headers.traceparent')
[[ $up == 00-4bf92f3577b34da6a3ce929d0e0e4736-*-01 ]] || fail "upstream traceparent '$up'"
[[ $up != "$tp" ]] || fail "no new span id for the gateway's hop"
for _ in $(seq 1 50); do grep -q '"path":"/echo/t"' "$T/access.log" 2>/dev/null && break; sleep 0.1; done
line=$(grep -F '"path":"/echo/t"' "$T/access.log" | tail -1)
assert_contains "$line" '"protocol":"HTTP/2.0"' "access log protocol"
assert_contains "$line" '4bf92f3577b34da6a3ce929d0e0e4736' "access log trace id"

log "headless Chromium loads a page over h2 (TLS, self-signed, --ignore-certificate-errors)"
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || fail "chromium not installed (scripts/deps.sh installs it)"
timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --disable-extensions \
    --ignore-certificate-errors --user-data-dir="$(mktemp -d "$T/chrome.XXXX")" \
    --dump-dom "https://127.0.0.1:$tport/page" >"$T/dom.html" 2>>"$T/chrome.log" ||
    fail "chromium failed: $(tail -5 "$T/chrome.log")"
[ -s "$T/dom.html" ] || fail "empty DOM: $(tail -5 "$T/chrome.log")"
for _ in $(seq 1 50); do grep -q '"path":"/page".*Chrome' "$T/access.log" 2>/dev/null && break; sleep 0.1; done
line=$(grep -F '"path":"/page"' "$T/access.log" | grep -F 'Chrome' | tail -1)
[ -n "$line" ] || fail "no Chromium request for /page in the access log"
assert_contains "$line" '"protocol":"HTTP/2.0"' "Chromium spoke HTTP/2"
log "ok"
