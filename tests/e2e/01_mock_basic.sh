#!/usr/bin/env bash
# apigate mock, default (seed) profile: every route answers with a body that depends on the
# request, keep-alive connections are reused, pipelined requests are answered in order, request
# bodies (Content-Length and chunked) are consumed, malformed requests get 400 and a close, and
# /_mock/stats counts exactly what was served.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

log "command line: --help, --check of the examples, a bad profile exits 2 with its position"
assert_contains "$("$APIGATE" mock --help)" "usage: apigate mock" "--help"
for f in "$AG_SRC"/examples/mock-*.yaml; do
    "$APIGATE" mock --check --profile "$f" >/dev/null || fail "example $f does not validate"
done
printf 'routes:\n  - {path: /a, latency: {dist: gamma, ms: 1}}\n' >"$T/bad.yaml"
set +e
err=$("$APIGATE" mock --listen 127.0.0.1:1 --profile "$T/bad.yaml" 2>&1)
rc=$?
set -e
assert_eq "$rc" 2 "exit code of a bad profile"
assert_contains "$err" "$T/bad.yaml:2:32: dist: unknown distribution 'gamma'" "bad profile message"
# The framing headers are the mock's to write: one in headers: made every answer ambiguous
# (Content-Length twice, or with Transfer-Encoding).
printf 'routes:\n  - {path: /a, headers: {Content-Length: "5"}}\n' >"$T/cl.yaml"
set +e
err=$("$APIGATE" mock --check --profile "$T/cl.yaml" 2>&1)
rc=$?
set -e
assert_eq "$rc" 2 "exit code of a Content-Length header in a profile"
assert_contains "$err" "$T/cl.yaml:2:26: headers: Content-Length is written by the mock" "framing header message"
# A path that is no profile file fails at once: /dev/zero used to be read until memory ran out.
for f in /dev/zero "$T"; do
    set +e
    err=$(timeout 20 "$APIGATE" mock --check --profile "$f" 2>&1)
    rc=$?
    set -e
    assert_eq "$rc" 2 "exit code of --profile $f"
done
assert_contains "$err" "$T: is a directory" "directory as a profile"

port=$(free_port)
start_mock mock "$port"
base="http://127.0.0.1:$port"

log "a second mock on the same port fails instead of sharing it (SO_REUSEPORT)"
set +e
err=$(timeout 10 "$APIGATE" mock --listen "127.0.0.1:$port" 2>&1)
rc=$?
set -e
assert_eq "$rc" 1 "exit code of a mock on a port in use"
assert_contains "$err" "cannot listen on 127.0.0.1:$port: Address already in use" "port in use message"

log "routes of the default profile"
u1=$(http_body "$base/api/users/1")
u2=$(http_body "$base/api/users/2")
assert_eq "$(jq -r .id <<<"$u1")" 1 "user 1 id"
assert_eq "$(jq -r .id <<<"$u2")" 2 "user 2 id"
assert_ne "$u1" "$u2" "bodies of two users"
assert_eq "${#u1}" 1024 "user body padded to body_size 1KB"

o1=$(http_body "$base/api/orders?user_id=1")
o2=$(http_body "$base/api/orders?user_id=2")
assert_eq "$(jq -r .user_id <<<"$o1")" 1 "orders user_id"
assert_ne "$(jq -c .orders <<<"$o1")" "$(jq -c .orders <<<"$o2")" "orders differ by user"
assert_eq "$(http_status "$base/api/orders")" 400 "orders without user_id"

prod=$(curl -s -i "$base/api/catalog/products")
assert_contains "$prod" "HTTP/1.1 200" "products status"
assert_contains "$prod" "Cache-Control: public, max-age=60" "products Cache-Control"
etag=$(printf '%s' "$prod" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" { print $2 }')
[ -n "$etag" ] || fail "products has no ETag"
assert_eq "$(http_status "$base/api/catalog/products" -H "If-None-Match: $etag")" 304 "If-None-Match"
assert_eq "$(http_status "$base/api/catalog/products" -H 'If-None-Match: "other"')" 200 "other ETag"

s1=$(http_body "$base/api/catalog/search?q=shoes")
s2=$(http_body "$base/api/catalog/search?q=hats")
assert_eq "$(jq -r .q <<<"$s1")" shoes "search q"
assert_ne "$(jq -c .results <<<"$s1")" "$(jq -c .results <<<"$s2")" "search results differ by q"

token=$(http_body "$base/api/auth/login" -X POST -H 'Content-Type: application/json' \
    -d '{"user":"alice","password":"x"}' | jq -r .token)
assert_eq "$token" "tok-alice" "login token"
assert_eq "$(http_status "$base/api/auth/me")" 401 "me without Authorization"
assert_eq "$(http_body "$base/api/auth/me" -H "Authorization: Bearer $token" | jq -r .user)" alice "me alice"
assert_eq "$(http_body "$base/api/auth/me" -H "Authorization: Bearer tok-bob" | jq -r .user)" bob "me bob"

assert_eq "$(http_body "$base/api/users/5" -X PUT -d '{"name":"x"}' | jq -r .updated)" true "PUT user"
assert_eq "$(http_body "$base/api/users/5" -X DELETE | jq -r .deleted)" true "DELETE user"
assert_eq "$(http_status "$base/api/users/5" -X PATCH)" 405 "PATCH is not routed"
assert_eq "$(http_body "$base/api/health" | jq -r .status)" ok "health"
assert_eq "$(http_status "$base/nope")" 404 "unknown route"
head=$(curl -s -I "$base/api/users/3")
assert_contains "$head" "Content-Length: 1024" "HEAD keeps the length"

log "echo: forwarded headers and bodies (Content-Length and chunked)"
echo_cl=$(http_body "$base/echo/a/b?x=1" -X POST -H 'X-Trace: t1' -d 'hello body')
assert_eq "$(jq -r .method <<<"$echo_cl")" POST "echo method"
assert_eq "$(jq -r .path <<<"$echo_cl")" /echo/a/b "echo path"
assert_eq "$(jq -r .query <<<"$echo_cl")" x=1 "echo query"
assert_eq "$(jq -r '.headers["x-trace"]' <<<"$echo_cl")" t1 "echo header"
assert_eq "$(jq -r .body <<<"$echo_cl")" "hello body" "echo body"
echo_ch=$(printf 'chunked data here' | curl -s --max-time 10 "$base/echo" -X PUT \
    -H 'Transfer-Encoding: chunked' --data-binary @-)
assert_eq "$(jq -r .body <<<"$echo_ch")" "chunked data here" "chunked request body"
assert_eq "$(jq -r '.headers["transfer-encoding"]' <<<"$echo_ch")" chunked "echo sees chunked"
head -c 600000 /dev/urandom | base64 -w0 >"$T/up.txt" # 800 000 bytes, under the 1 MB max_body
for framing in length chunked; do
    args=(--data-binary @"$T/up.txt")
    [ "$framing" = chunked ] && args+=(-H 'Transfer-Encoding: chunked')
    curl -s --max-time 20 "${args[@]}" "$base/echo" >"$T/echo.json"
    assert_eq "$(jq -r .body_len "$T/echo.json")" 800000 "$framing upload length"
    assert_eq "$(jq -j .body "$T/echo.json" | md5sum)" "$(md5sum <"$T/up.txt")" "$framing upload bytes"
done
head -c 1100000 /dev/zero | tr '\0' a >"$T/big.txt"
assert_eq "$(http_status "$base/echo" --data-binary @"$T/big.txt")" 413 "body over max_body (length)"
assert_eq "$(http_status "$base/echo" --data-binary @"$T/big.txt" -H 'Transfer-Encoding: chunked')" 413 \
    "body over max_body (chunked)"

log "keep-alive: curl reuses one connection"
verbose=$(curl -s -v -o /dev/null -o /dev/null "$base/api/health" "$base/api/health" 2>&1)
assert_contains "$verbose" "Re-using existing connection" "keep-alive reuse"

log "pipelining: three requests in one write, answers in order"
resp=$(printf 'GET /api/users/11 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/second HTTP/1.1\r\nHost: x\r\n\r\nGET /api/users/33 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    raw_http "$port" 10)
n=$(grep -ao 'HTTP/1.1 200' <<<"$resp" | wc -l)
assert_eq "$n" 3 "three answers"
order=$(grep -ao '"id":"[0-9]*"\|"path":"/echo/second"' <<<"$resp" | tr '\n' ' ')
assert_eq "$order" '"id":"11" "path":"/echo/second" "id":"33" ' "answer order"
assert_eq "$(cat "$T/raw_http.state")" closed "closed after Connection: close"

log "a long pipeline read late: every answer goes out (past the 4 MB output limit), then the 400"
out=$(python3 - "$port" <<'PY'
import socket, sys, threading, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
req = b"GET /echo/p?q=" + b"a" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
data = req * 1500 + b"GET /echo/bad HTTP/1.1\r\nBad Header : x\r\n\r\n"
threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
time.sleep(1) # the answers pile up past the output limit meanwhile
s.settimeout(8)
out, state = b"", "open"
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            state = "closed"
            break
        out += d
except socket.timeout:
    pass
print(out.count(b"HTTP/1.1 200"), out.count(b"HTTP/1.1 400"), state)
PY
)
assert_eq "$out" "1500 1 closed" "1500 pipelined echoes (~14 MB of answers) then a bad head"

log "malformed requests: 400 and close"
bad=$(printf 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc' |
    raw_http "$port" 5)
assert_contains "$bad" "HTTP/1.1 400" "CL+TE"
assert_eq "$(cat "$T/raw_http.state")" closed "closed after CL+TE"
bad=$(printf 'GET /api/health HTTP/1.1\r\nHost: x\r\nBad Header : x\r\n\r\nGET /api/health HTTP/1.1\r\nHost: x\r\n\r\n' |
    raw_http "$port" 5)
assert_contains "$bad" "HTTP/1.1 400" "space before colon"
assert_not_contains "$bad" "HTTP/1.1 200" "nothing after a 400"
assert_eq "$(cat "$T/raw_http.state")" closed "closed after a bad header"
# a good request first, then garbage: the good one is answered, then 400, then close
bad=$(printf 'GET /api/health HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n' | raw_http "$port" 5)
assert_contains "$bad" "HTTP/1.1 200" "good request before garbage"
assert_contains "$bad" "HTTP/1.1 400" "garbage"
assert_eq "$(cat "$T/raw_http.state")" closed "closed after garbage"

log "stats count exactly"
mock_reset "$port"
for i in 1 2 3 4 5; do http_body "$base/api/users/$i" >/dev/null; done
http_status "$base/api/auth/me" >/dev/null
http_status "$base/nope" >/dev/null
assert_eq "$(mock_stat "$port" 'GET /api/users/{id}')" 5 "users served"
assert_eq "$(mock_stat "$port" 'GET /api/users/{id}' 200)" 5 "users 200"
assert_eq "$(mock_stat "$port" 'GET /api/auth/me' 401)" 1 "me 401"
assert_eq "$(mock_stat "$port" total)" 7 "total served (404 included)"
assert_eq "$(curl -s "$base/_mock/stats" | jq -r .unmatched.served)" 1 "unmatched"
assert_eq "$(curl -s "$base/_mock/stats" | jq -r .inflight)" 0 "nothing in flight"

log "ok"
