#!/usr/bin/env bash
# Stored variants (issue 13, docs/compression.md "With the cache"): on a route with cache and
# compress, a hit is served from a copy encoded once per stored response and coding. Real clients:
# curl with explicit Accept-Encoding (gzip decoded by python3's zlib, br by the brotli tool, zstd
# by the zstd tool), curl --compressed. Checks: the first hit of a coding derives the variant
# (compressed once: apigate_compress_variants_total and the encoder's byte counter move once), the
# next hits move no compression counter and get the same stored bytes; identity and every
# variant decode byte-exact to the origin's body; each variant has its own ETag (W/"v1-gzip"),
# the identity answer keeps the origin's and says Vary: Accept-Encoding; conditional requests
# get 304s per variant; the origin is asked once; the cache counts the variants as objects and
# bytes; a response the origin revalidates with a 304 on every request is still encoded once (a
# refresh keeps the variant's body).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

read -r oport gport aport <<<"$(free_ports 3)"

start_tcp_server origin "$oport" "$T/origin.log" <<'ORIGIN'
import socket, sys
LOG = sys.argv[2]
BIG = json_items(50000)
def answer(c, head, _):
    method, path = request_line(head)
    inm = header(head, b"if-none-match")
    with open(LOG, "ab") as f:
        f.write(b"%s %s %s\n" % (method, path, b"inm" if inm is not None else b"-"))
    if path.startswith(b"/reval"):
        # stored, but revalidated on every request: a 304 refreshes the stored head
        if inm is not None and b'"r1"' in inm:
            c.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"r1\"\r\n"
                      b"Cache-Control: no-cache\r\n\r\n")
            return
        out = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"r1\"\r\n"
               b"Cache-Control: no-cache\r\nContent-Length: %d\r\n\r\n" % len(BIG))
        c.sendall(out + BIG)
        return
    out = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"v1\"\r\n"
           b"Cache-Control: max-age=300\r\nAccept-Ranges: bytes\r\n"
           b"Content-Length: %d\r\n\r\n" % len(BIG))
    if method != b"HEAD":
        out += BIG
    c.sendall(out)
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
  - {match: /, upstream: api, cache: {}, compress: {types: [application/json], min_size: 1KB}}
YAML

U=http://127.0.0.1:$gport
curl -sS -o "$T/big.json" "http://127.0.0.1:$oport/origin"
: >"$T/origin.log"

get() { # PATH ACCEPT_ENCODING [curl args...]: body in $T/b, lower-cased headers in $T/h
    local path=$1 ae=$2
    shift 2
    if [ -n "$ae" ]; then
        fetch "$U$path" -H "Accept-Encoding: $ae" "$@"
    else
        fetch "$U$path" "$@"
    fi
}
decode() { # ENC < in > out
    case $1 in
    gzip) "$PY" -c 'import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), 47))' ;;
    br) brotli -d -c ;;
    zstd) zstd -d -c -q ;;
    esac
}
metric() { metric_value "$aport" "$1"; }
variants() { metric "apigate_compress_variants_total{variant=\"$1\"}"; }
encoded() { metric "apigate_compressed_responses_total{encoding=\"$1\"}"; }
bytes_in() { metric 'apigate_compress_bytes_total{direction="in"}'; }

log "MISS without Accept-Encoding: identity, Vary: Accept-Encoding, the origin's ETag"
get /api/list ""
assert_eq "$(hdr x-cache)" miss "first request"
assert_eq "$(hdr content-encoding)" "" "identity"
assert_eq "$(hdr vary)" "accept-encoding" "identity answer of an encodable response varies"
cmp -s "$T/b" "$T/big.json" || fail "MISS identity body differs from the origin's"

log "HIT without Accept-Encoding: the stored identity, Vary, strong ETag, Content-Length"
get /api/list ""
assert_eq "$(hdr x-cache)" hit "identity HIT"
assert_eq "$(hdr content-encoding)" "" "identity HIT not encoded"
assert_eq "$(hdr vary)" "accept-encoding" "identity HIT varies"
assert_eq "$(hdr etag)" '"v1"' "identity HIT keeps the origin's ETag"
assert_eq "$(hdr content-length)" 50000 "identity HIT length"
cmp -s "$T/b" "$T/big.json" || fail "identity HIT body differs"

log "first gzip HIT derives the variant: one compression"
v0=$(variants gzip) e0=$(encoded gzip) b0=$(bytes_in)
get /api/list gzip
assert_eq "$(hdr x-cache)" hit "gzip HIT"
assert_eq "$(hdr content-encoding)" gzip "gzip variant"
assert_eq "$(hdr etag)" 'w/"v1-gzip"' "gzip variant has its own weak ETag"
assert_eq "$(hdr vary)" "accept-encoding" "gzip variant varies"
assert_eq "$(hdr accept-ranges)" "" "no Accept-Ranges on an encoded variant"
len=$(hdr content-length)
assert_eq "$len" "$(wc -c <"$T/b")" "the stored variant has its Content-Length"
[ "$len" -lt 20000 ] || fail "gzip variant not compressed ($len bytes)"
decode gzip <"$T/b" | cmp -s - "$T/big.json" || fail "gzip variant does not decode to the origin's body"
cp "$T/b" "$T/gzip1"
assert_eq "$(variants gzip)" $((v0 + 1)) "variant derived once"
assert_eq "$(encoded gzip)" $((e0 + 1)) "one compression"
assert_eq "$(bytes_in)" $((b0 + 50000)) "the encoder read the body once"

log "next gzip HITs: the stored bytes, no compression work"
v1=$(variants gzip) e1=$(encoded gzip) b1=$(bytes_in)
for i in 1 2 3 4 5; do
    get /api/list "gzip"
    assert_eq "$(hdr x-cache)" hit "gzip HIT $i"
    cmp -s "$T/b" "$T/gzip1" || fail "gzip HIT $i: not the stored variant's bytes"
done
get /api/list "" --compressed
assert_eq "$(hdr x-cache)" hit "curl --compressed HIT"
cmp -s "$T/b" "$T/big.json" || fail "curl --compressed: decoded body differs"
assert_eq "$(variants gzip)" "$v1" "no new gzip variant on hits"
assert_eq "$(encoded gzip)" "$e1" "no gzip compression on hits"

log "br and zstd variants, decoded by the brotli and zstd tools"
for enc in br zstd; do
    if ! command -v "$( [ $enc = br ] && echo brotli || echo zstd)" >/dev/null; then
        log "no $enc tool here: $enc checked by its headers only"
    fi
    for i in 1 2; do
        get /api/list "$enc"
        assert_eq "$(hdr content-encoding)" "$enc" "$enc variant ($i)"
        assert_eq "$(hdr etag)" "w/\"v1-$enc\"" "$enc ETag"
        if command -v "$( [ $enc = br ] && echo brotli || echo zstd)" >/dev/null; then
            decode $enc <"$T/b" | cmp -s - "$T/big.json" || fail "$enc variant does not decode"
        fi
    done
    assert_eq "$(variants $enc)" 1 "$enc derived once over two hits"
done
b2=$(bytes_in)
get /api/list "br;q=0.5, gzip;q=1"
assert_eq "$(hdr content-encoding)" gzip "q-values pick the stored gzip variant"
get /api/list "gzip;q=0, identity"
assert_eq "$(hdr content-encoding)" "" "gzip;q=0: identity"
cmp -s "$T/b" "$T/big.json" || fail "identity after variants differs"
assert_eq "$(bytes_in)" "$b2" "no encoder work for stored variants"

log "conditional requests: 304 per variant"
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: gzip' -H 'If-None-Match: W/"v1-gzip"' "$U/api/list")
assert_eq "$st" 304 "If-None-Match of the gzip variant"
curl -s -D "$T/h304" -o /dev/null -H 'Accept-Encoding: gzip' -H 'If-None-Match: W/"v1-gzip"' "$U/api/list"
assert_contains "$(tr 'A-Z' 'a-z' <"$T/h304")" 'etag: w/"v1-gzip"' "304 carries the variant's ETag"
assert_contains "$(tr 'A-Z' 'a-z' <"$T/h304")" 'vary: accept-encoding' "304 carries Vary"
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: gzip' -H 'If-None-Match: W/"v1-br"' "$U/api/list")
assert_eq "$st" 200 "the br variant's ETag does not validate the gzip one"
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "v1"' "$U/api/list")
assert_eq "$st" 304 "identity validates with the origin's ETag"
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: zstd' -H 'If-None-Match: "v1"' "$U/api/list")
assert_eq "$st" 200 "the identity ETag does not validate the zstd variant"

log "the origin was asked once; the store counts the variants"
assert_eq "$(grep -c 'GET /api/list' "$T/origin.log")" 1 "origin requests"
assert_eq "$(metric apigate_cache_objects)" 4 "identity + gzip + br + zstd objects"
[ "$(metric apigate_cache_bytes)" -gt 60000 ] || fail "cache bytes do not count the variants: $(metric apigate_cache_bytes)"

log "revalidated on every request (no-cache + ETag): each 304 refresh keeps the variant's body"
get /reval/x ""
assert_eq "$(hdr x-cache)" miss "reval: stored"
v0=$(variants gzip) b0=$(bytes_in)
for i in 1 2 3 4; do
    get /reval/x gzip
    assert_eq "$(hdr x-cache)" expired "reval $i: revalidated"
    assert_eq "$(hdr content-encoding)" gzip "reval $i: the gzip variant"
    assert_eq "$(hdr etag)" 'w/"r1-gzip"' "reval $i: its ETag"
    decode gzip <"$T/b" | cmp -s - "$T/big.json" || fail "reval $i: body differs"
done
assert_eq "$(grep -c 'GET /reval/x inm' "$T/origin.log")" 4 "four revalidations, each a 304"
assert_eq "$(variants gzip)" $((v0 + 1)) "derived once over four refreshes"
assert_eq "$(bytes_in)" $((b0 + 50000)) "compressed once over four refreshes"
log "ok"
