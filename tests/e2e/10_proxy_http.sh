#!/usr/bin/env bash
# Proxying correctness through `apigate serve` in front of `apigate mock`: methods, bodies with
# Content-Length and chunked both ways, HEAD, 204/304 without body, HTTP/1.0 clients, pipelined
# requests answered in order, an upstream that closes its keep-alive connections, forwarded
# headers (X-Forwarded-*, Via, X-Request-Id) and hop-by-hop headers stripped, 404 without route.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)

cat >"$T/mock.yaml" <<'EOF'
global:
  max_body: 64MB
routes:
  - {method: ANY, path: /echo, handler: echo}
  - {method: ANY, path: '/echo/*', handler: echo}
  - {method: GET, path: /nocontent, status: 204}
  - {method: GET, path: /notmod, status: 304, headers: {ETag: '"v1"'}}
  - {method: GET, path: /chunked, body_size: 3000, chunked: true}
  - {method: GET, path: /closing, body_size: 100, close: true}
  - {method: GET, path: /json, body_size: 1KB}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
logging: {access_log: $T/access.log, access_format: json}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /echo
    upstream: api
  - match: /nocontent
    upstream: api
  - match: /notmod
    upstream: api
  - match: /chunked
    upstream: api
  - match: /closing
    upstream: api
  - match: /json
    upstream: api
EOF
G=http://127.0.0.1:$gport

log "GET through the gateway: forwarded headers added, hop-by-hop removed"
body=$(http_body "$G/echo/a?x=1&y=2" -H 'X-Forwarded-For: 10.0.0.1' -H 'Connection: X-Private, keep-alive' \
    -H 'X-Private: secret' -H 'Keep-Alive: timeout=5' -H 'TE: trailers' -H 'Proxy-Authorization: Basic eA==' \
    -H 'Upgrade: h2c' -H 'X-Custom: kept')
assert_eq "$(jq -r .method <<<"$body")" GET "method"
assert_eq "$(jq -r .target <<<"$body")" "/echo/a?x=1&y=2" "target"
assert_eq "$(jq -r '.headers["x-forwarded-for"]' <<<"$body")" "10.0.0.1, 127.0.0.1" "X-Forwarded-For appended"
assert_eq "$(jq -r '.headers["x-forwarded-proto"]' <<<"$body")" "http" "X-Forwarded-Proto"
assert_eq "$(jq -r '.headers["x-forwarded-host"]' <<<"$body")" "127.0.0.1:$gport" "X-Forwarded-Host"
assert_eq "$(jq -r '.headers.host' <<<"$body")" "127.0.0.1:$gport" "Host kept"
assert_eq "$(jq -r '.headers.via' <<<"$body")" "1.1 apigate" "Via"
assert_eq "$(jq -r '.headers["x-custom"]' <<<"$body")" "kept" "end-to-end header kept"
rid=$(jq -r '.headers["x-request-id"]' <<<"$body")
[[ "$rid" =~ ^[0-9a-f]{16}$ ]] || fail "generated X-Request-Id: '$rid'"
for h in connection x-private keep-alive te proxy-authorization upgrade; do
    assert_eq "$(jq -r --arg h "$h" '.headers[$h] // "absent"' <<<"$body")" absent "hop-by-hop $h stripped"
done
# the client's claims about this hop (host, scheme, port, prefix) never reach the origin: one that
# builds links from them would put them into answers a cache serves to everyone
body=$(http_body "$G/echo/b" -H 'Forwarded: for=1.2.3.4;host=evil.example;proto=https' \
    -H 'X-Forwarded-Host: evil.example' -H 'X-Forwarded-Proto: https' -H 'X-Forwarded-Port: 443' \
    -H 'X-Forwarded-Prefix: /evil' -H 'X-Forwarded-Ssl: on')
for h in forwarded x-forwarded-port x-forwarded-prefix x-forwarded-ssl; do
    assert_eq "$(jq -r --arg h "$h" '.headers[$h] // "absent"' <<<"$body")" absent "client's $h dropped"
done
assert_eq "$(jq -r '.headers["x-forwarded-host"]' <<<"$body")" "127.0.0.1:$gport" "client's X-Forwarded-Host replaced"
assert_eq "$(jq -r '.headers["x-forwarded-proto"]' <<<"$body")" "http" "client's X-Forwarded-Proto replaced"
body=$(http_body "$G/echo" -H 'X-Request-Id: my-id-42')
assert_eq "$(jq -r '.headers["x-request-id"]' <<<"$body")" "my-id-42" "X-Request-Id kept"

log "methods and bodies"
for m in POST PUT PATCH DELETE OPTIONS; do
    body=$(http_body "$G/echo" -X "$m" --data-binary "payload-$m")
    assert_eq "$(jq -r .method <<<"$body")" "$m" "$m method"
    assert_eq "$(jq -r .body <<<"$body")" "payload-$m" "$m body"
    assert_eq "$(jq -r '.headers["content-length"]' <<<"$body")" "$((8 + ${#m}))" "$m Content-Length"
done
head -c 300000 /dev/urandom | base64 -w0 >"$T/body.txt"
body=$(http_body "$G/echo" -H 'Transfer-Encoding: chunked' --data-binary @"$T/body.txt")
assert_eq "$(jq -r .body_len <<<"$body")" "$(stat -c %s "$T/body.txt")" "chunked request body length"
assert_eq "$(jq -j .body <<<"$body" | sha256sum)" "$(sha256sum <"$T/body.txt")" "chunked request body bytes"
assert_eq "$(jq -r '.headers["transfer-encoding"]' <<<"$body")" "chunked" "re-framed as chunked upstream"

log "Expect: 100-continue: the gateway answers 100, then forwards the body"
out=$(python3 - "$gport" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
first = s.recv(100)
s.sendall(b"hello")
rest = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    rest += d
print(first.decode().split("\r\n")[0])
print("expect-forwarded" if b'"expect"' in rest else "no-expect", b'"body":"hello"' in rest)
PY
)
assert_eq "$out" $'HTTP/1.1 100 Continue\nno-expect True' "100-continue handling"

log "HEAD, 204, 304: no body"
hdrs=$(curl -s -I --max-time 5 "$G/json")
assert_contains "$hdrs" "HTTP/1.1 200" "HEAD status"
assert_contains "$hdrs" "Content-Length: 1024" "HEAD keeps the length"
raw=$(printf 'HEAD /json HTTP/1.1\r\nHost: a\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: a\r\n\r\nGET /notmod HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' | raw_http "$gport" 5)
assert_eq "$(grep -c '^HTTP/1.1 ' <<<"$raw")" 4 "four responses on one connection"
assert_contains "$raw" "HTTP/1.1 204 No Content" "204"
assert_contains "$raw" "HTTP/1.1 304 Not Modified" "304"
# the last response must start right after the 304 head: no stray body bytes in between
assert_contains "$(tr -d '\r' <<<"$raw")" $'ETag: "v1"\n\nHTTP/1.1 200 OK' "304 carries no body"
assert_contains "$raw" '"path":"/echo/last"' "request after HEAD/204/304 parsed correctly"
assert_eq "$(cat "$T/raw_http.state")" closed "Connection: close honoured"

log "pipelined requests: answered in order"
raw=$(printf 'GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /echo/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' | raw_http "$gport" 5)
order=$(grep -o '"path":"/echo/[0-9]"' <<<"$raw" | tr -d '\n')
assert_eq "$order" '"path":"/echo/1""path":"/echo/2""path":"/echo/3"' "pipelined order"
assert_contains "$raw" '"body":"abc"' "pipelined body"

log "chunked response: to HTTP/1.1 as chunked, to HTTP/1.0 until close"
hdrs=$(curl -s -D - -o "$T/chunked.out" --max-time 5 "$G/chunked")
assert_contains "$hdrs" "Transfer-Encoding: chunked" "chunked to HTTP/1.1"
assert_eq "$(stat -c %s "$T/chunked.out")" 3000 "chunked body length"
hdrs=$(curl -s -0 -D - -o "$T/chunked10.out" --max-time 5 "$G/chunked")
assert_not_contains "$hdrs" "Transfer-Encoding" "no chunked to HTTP/1.0"
assert_contains "$hdrs" "Connection: close" "HTTP/1.0 gets close-delimited body"
cmp -s "$T/chunked.out" "$T/chunked10.out" || fail "HTTP/1.0 body differs from the HTTP/1.1 one"

log "upstream closing every connection: requests keep working"
codes=$(curl -s --max-time 10 -w "%{http_code} " -o /dev/null -o /dev/null -o /dev/null -o /dev/null "$G/closing" "$G/closing" "$G/closing" "$G/json")
assert_eq "$codes" "200 200 200 200 " "after upstream closes"

log "no route: 404 JSON, never reaches the upstream"
before=$(mock_stat "$mport" total)
assert_eq "$(http_status "$G/nothing-here")" 404 "404 without route"
assert_eq "$(http_body "$G/nothing-here" | jq -r .error)" no_route "404 body"
assert_eq "$(mock_stat "$mport" total)" "$before" "404 did not reach the upstream"
# a client-chosen request id is escaped in the JSON error body
body=$(http_body "$G/nothing-here" -H 'X-Request-Id: a"b\c')
assert_eq "$(jq -r .request_id <<<"$body")" 'a"b\c' "request id escaped in the error body"

assert_eq "$(curl -s "http://127.0.0.1:$aport/stats" | jq .worker_restarts)" 0 "no worker crash so far"
log "access log lines are written (batched)"
sleep 1.5
[ -s "$T/access.log" ] || fail "access log empty"
n=$(jq -s '[.[] | select(.path == "/echo/a?x=1&y=2" and .status == 200 and .upstream != null)] | length' "$T/access.log")
assert_eq "$n" 1 "access log JSON line for /echo/a"
n=$(jq -s '[.[] | select(.path == "/nothing-here" and .status == 404 and .upstream == null)] | length' "$T/access.log")
assert_eq "$n" 3 "access log lines for the 404s (no upstream)"

log "a client that half-closes after its requests: answered, then closed at once"
# The requests and the FIN arrive as one edge; the gateway once stopped at the short read and saw
# the FIN only at the keep-alive timeout (5 s), holding the connection meanwhile.
for try in 1 2 3; do
    out=$(printf 'GET /echo/h1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/h2 HTTP/1.1\r\nHost: a\r\n\r\n' |
        RAW_HTTP_SHUT=1 raw_http "$gport" 2)
    assert_eq "$(grep -o 'HTTP/1.1 200 OK' <<<"$out" | wc -l)" 2 "half-close $try: both requests answered"
    assert_eq "$(cat "$T/raw_http.state")" closed "half-close $try: connection closed within 2 s"
done
log "ok"
