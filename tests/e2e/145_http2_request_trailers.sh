#!/usr/bin/env bash
# Request trailers reach the upstream (docs/http2.md, docs/proxy.md): an HTTP/2 client's trailing
# HEADERS after its DATA (python3-h2) become the trailer section of the chunked HTTP/1.1 body the
# upstream gets, less the fields that must not be trailers (Host, Authorization, ...: the filter
# of a response's trailers); a body with content-length is sent chunked when a Trailer field
# announces them, and keeps its Content-Length (trailers dropped) when none does. An HTTP/1.1
# client's chunked trailers go through the same filter. A raw upstream records the bytes it got.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3
PY=/usr/bin/python3
"$PY" -c 'import h2' 2>/dev/null || skip "python3-h2 missing (scripts/deps.sh test installs it)"
H2P="$(dirname "$0")/h2_peers.py"

read -r uport gport aport <<<"$(free_ports 3)"
start_bg up "$PY" "$H2P" up "$uport" "$T/up.log"
wait_port "$uport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  raw: {servers: [127.0.0.1:$uport]}
routes:
  - {match: /, upstream: raw}
YAML
# got PATH: what the upstream recorded of the POST to PATH: its head (repr) and its body (CR, LF
# as \r, \n), two lines
got() {
    wait_until 10 "the upstream got the body of $1" sh -c "grep -A1 \"^head 'POST $1 \" '$T/up.log' | grep -q '^body '"
    grep -A1 "^head 'POST $1 " "$T/up.log"
}
TRAILERS='0\r\nx-checksum: abc123\r\nx-two: 2\r\n\r\n'

log "HTTP/2, no content-length: DATA as chunks, the trailing HEADERS as the trailer section"
out=$(timeout 30 "$PY" "$H2P" trailers "$gport" /h2-chunked chunked 2>&1) || fail "client: $out"
assert_contains "$out" "status 200"
assert_contains "$out" "body ok"
seen=$(got /h2-chunked)
assert_contains "$seen" 'Transfer-Encoding: chunked'
assert_contains "$seen" 'body 6\r\nhello \r\n5\r\nworld\r\n'"$TRAILERS"
assert_not_contains "$seen" "evil.example" "a Host trailer is dropped"
assert_not_contains "$seen" "Bearer" "an Authorization trailer is dropped"

log "HTTP/2, content-length and a Trailer field: sent chunked, so the trailers can follow"
out=$(timeout 30 "$PY" "$H2P" trailers "$gport" /h2-announce announce 2>&1) || fail "client: $out"
assert_contains "$out" "status 200"
seen=$(got /h2-announce)
assert_contains "$seen" 'Transfer-Encoding: chunked'
assert_not_contains "$seen" 'Content-Length' "no Content-Length beside the chunked framing"
assert_contains "$seen" "$TRAILERS"

log "HTTP/2, content-length without a Trailer field: the length frames the body, trailers dropped"
out=$(timeout 30 "$PY" "$H2P" trailers "$gport" /h2-cl cl 2>&1) || fail "client: $out"
assert_contains "$out" "status 200"
seen=$(got /h2-cl)
assert_contains "$seen" 'Content-Length: 11'
assert_contains "$seen" "body hello world"

log "HTTP/1.1, chunked with trailers: the same filter"
printf 'POST /h1-chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\nX-Checksum: abc123\r\nHost: evil.example\r\nAuthorization: Bearer t\r\nX-Two: 2\r\n\r\n' |
    raw_http "$gport" >"$T/h1.out"
assert_contains "$(head -1 "$T/h1.out")" "200"
seen=$(got /h1-chunked)
assert_contains "$seen" 'body 6\r\nhello \r\n5\r\nworld\r\n0\r\nX-Checksum: abc123\r\nX-Two: 2\r\n\r\n'
assert_not_contains "$seen" "evil.example" "a Host trailer is dropped"
log "ok"
