#!/usr/bin/env bash
# Stored variants over HTTP/2 and on one keep-alive connection (issue 13): h2c clients (curl
# --http2-prior-knowledge, and nghttp when installed) get the stored gzip / br variants and the
# identity response of one cached entry, byte-exact after decoding, with no compression work on
# the hits; an encoded stored response decoded for an h2 client that does not take its coding;
# and an HTTP/1.1 client asking identity, gzip, br, identity in turn on one connection gets each
# representation right (Content-Length framing of the stored variants keeps the connection in
# step).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl gzip
curl --version | grep -qi 'http2' || skip "curl without HTTP/2"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

read -r oport gport aport <<<"$(free_ports 3)"
json_items 40000 >"$T/plain"
gzip -c -n "$T/plain" >"$T/plain.gz"

start_tcp_server origin "$oport" "$T" <<'ORIGIN'
import socket, sys
D = sys.argv[2]
def answer(c, head, _):
    path = request_line(head)[1]
    enc = path.endswith(b"/pre")
    b = open(D + ("/plain.gz" if enc else "/plain"), "rb").read()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"h1\"\r\n"
              b"Cache-Control: max-age=300\r\n%sContent-Length: %d\r\n\r\n%s"
              % (b"Content-Encoding: gzip\r\n" if enc else b"", len(b), b))
def serve(c):
    each_request(c, answer)
ORIGIN

start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  api: {servers: ["127.0.0.1:$oport"]}
routes:
  - {match: /, upstream: api, cache: {}, compress: {types: [application/json]}}
YAML
U=http://127.0.0.1:$gport

h2get() { # PATH ACCEPT_ENCODING: body in $T/b, lower-cased headers in $T/h
    local ae=()
    [ -n "$2" ] && ae=(-H "Accept-Encoding: $2")
    fetch "$U$1" --http2-prior-knowledge "${ae[@]}"
}
gunzip_py() { "$PY" -c 'import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), 47))'; }
metric() { metric_value "$aport" "$1"; }
bytes_in() { metric 'apigate_compress_bytes_total{direction="in"}'; }

log "h2c: MISS, then the gzip variant derived once and served as stored"
h2get /h2/list ""
assert_eq "$(head -1 "$T/h" | cut -d' ' -f1)" "http/2" "HTTP/2"
assert_eq "$(hdr x-cache)" miss "MISS"
h2get /h2/list gzip
assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/gzip "first gzip HIT"
if command -v brotli >/dev/null; then
    h2get /h2/list br
    assert_eq "$(hdr content-encoding)" br "br over h2"
    brotli -d -c <"$T/b" | cmp -s - "$T/plain" || fail "br over h2: body differs"
fi
b0=$(bytes_in)
for i in 1 2 3; do
    h2get /h2/list gzip
    assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/gzip "gzip HIT $i over h2"
    assert_eq "$(hdr etag)" 'w/"h1-gzip"' "ETag over h2"
    gunzip_py <"$T/b" | cmp -s - "$T/plain" || fail "gzip HIT $i over h2: body differs"
done
h2get /h2/list ""
assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/ "identity HIT over h2"
assert_eq "$(hdr vary)" accept-encoding "Vary over h2"
cmp -s "$T/b" "$T/plain" || fail "identity over h2: body differs"
if command -v nghttp >/dev/null; then
    # nghttp inflates a gzip body itself: it prints the plain bytes
    nghttp -v -H 'accept-encoding: gzip' "$U/h2/list" >"$T/ng.v" 2>&1 || fail "nghttp: $(tail -2 "$T/ng.v")"
    grep -qi 'content-encoding: gzip' "$T/ng.v" || fail "nghttp: not the gzip variant"
    nghttp -H 'accept-encoding: gzip' "$U/h2/list" >"$T/ng" 2>&1 || fail "nghttp: $(tail -2 "$T/ng")"
    cmp -s "$T/ng" "$T/plain" || fail "nghttp: the gzip variant does not decode to the plain body"
fi
assert_eq "$(bytes_in)" "$b0" "no compression on the h2 hits after the first"

log "h2c: an encoded stored response decoded for a client that does not take it"
h2get /h2/pre ""
assert_eq "$(hdr content-encoding)" "" "MISS decoded over h2"
cmp -s "$T/b" "$T/plain" || fail "decoded MISS over h2"
for i in 1 2; do
    h2get /h2/pre ""
    assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/ "decoded HIT $i over h2"
    cmp -s "$T/b" "$T/plain" || fail "decoded HIT $i over h2"
done
h2get /h2/pre "gzip"
assert_eq "$(hdr content-encoding)" gzip "the stored gzip bytes for a gzip client"
cmp -s "$T/b" "$T/plain.gz" || fail "stored gzip bytes over h2"

log "HTTP/1.1 keep-alive: identity, gzip, br, identity on one connection"
curl -sS -o "$T/k1" -H 'Accept-Encoding: identity' "$U/h2/list" \
    --next -o "$T/k2" -H 'Accept-Encoding: gzip' "$U/h2/list" \
    --next -o "$T/k3" -H 'Accept-Encoding: br' "$U/h2/list" \
    --next -o "$T/k4" "$U/h2/list" -w '%{num_connects}\n' >"$T/conns"
cmp -s "$T/k1" "$T/plain" || fail "keep-alive 1: identity"
gunzip_py <"$T/k2" | cmp -s - "$T/plain" || fail "keep-alive 2: gzip"
if command -v brotli >/dev/null; then
    brotli -d -c <"$T/k3" | cmp -s - "$T/plain" || fail "keep-alive 3: br"
fi
cmp -s "$T/k4" "$T/plain" || fail "keep-alive 4: identity"
assert_eq "$(tail -1 "$T/conns")" 0 "the last request reused the connection"
log "ok"
