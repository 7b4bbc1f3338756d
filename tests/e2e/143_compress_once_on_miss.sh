#!/usr/bin/env bash
# A cached response is compressed once (issue 13: "compressed once and stored per encoding"),
# including its first request: the miss streams the origin's body to the client gzip-encoded,
# and the cache stores those encoded bytes as the gzip variant when it stores the response, so
# the first gzip hit serves them instead of encoding the stored body a second time. Checks, over
# HTTP/1.1 and over h2c: after a gzip MISS and a gzip HIT apigate_compressed_responses_total
# {encoding="gzip"} moved by one and apigate_compress_variants_total (variants derived from a
# stored body) did not move; the hit's bytes are the stored variant (its Content-Length, the
# variant's weak ETag) and decode to the origin's body, as the miss's did; a coding the miss did
# not stream (br) is still derived at its first hit (the counter moves then), once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

read -r oport gport aport <<<"$(free_ports 3)"

start_tcp_server origin "$oport" "$T/origin.log" <<'ORIGIN'
import socket, sys
LOG = sys.argv[2]
BIG = json_items(30000)
def answer(c, head, _):
    method, path = request_line(head)
    with open(LOG, "ab") as f:
        f.write(b"%s %s\n" % (method, path))
    out = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"e1\"\r\n"
           b"Cache-Control: max-age=300\r\nContent-Length: %d\r\n\r\n" % len(BIG))
    c.sendall(out + BIG)
def serve(c):
    each_request(c, answer)
ORIGIN

start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
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
    fetch "$U$path" -H "Accept-Encoding: $ae" "$@"
}
gunzip_py() { "$PY" -c 'import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), 47))'; }
metric() { metric_value "$aport" "$1"; }
encoded() { metric "apigate_compressed_responses_total{encoding=\"$1\"}"; }
variants() { metric "apigate_compress_variants_total{variant=\"$1\"}"; }

check_path() { # PATH LABEL [curl args...]
    local path=$1 label=$2
    shift 2
    local e0 v0
    e0=$(encoded gzip) v0=$(variants gzip)
    log "$label: gzip MISS streams the encoded body"
    get "$path" gzip "$@"
    assert_eq "$(hdr x-cache)" miss "$label: first request"
    assert_eq "$(hdr content-encoding)" gzip "$label: MISS encoded"
    gunzip_py <"$T/b" | cmp -s - "$T/big.json" || fail "$label: MISS body does not decode to the origin's"
    cp "$T/b" "$T/miss.gz"
    assert_eq "$(encoded gzip)" $((e0 + 1)) "$label: the miss compressed once"

    log "$label: gzip HIT serves the bytes the miss encoded, no second compression"
    get "$path" gzip "$@"
    assert_eq "$(hdr x-cache)" hit "$label: second request"
    assert_eq "$(hdr content-encoding)" gzip "$label: HIT encoded"
    assert_eq "$(encoded gzip)" $((e0 + 1)) "$label: compressed once over the miss and the hit"
    assert_eq "$(variants gzip)" "$v0" "$label: no variant derived from the stored body"
    assert_eq "$(hdr etag)" 'w/"e1-gzip"' "$label: the stored variant's ETag"
    assert_eq "$(hdr content-length)" "$(wc -c <"$T/b")" "$label: the stored variant's length"
    cmp -s "$T/b" "$T/miss.gz" || fail "$label: HIT bytes are not the ones the miss streamed"
    gunzip_py <"$T/b" | cmp -s - "$T/big.json" || fail "$label: HIT body does not decode"
    get "$path" gzip "$@"
    assert_eq "$(encoded gzip)" $((e0 + 1)) "$label: a second hit compresses nothing"
}

check_path /one "HTTP/1.1"
if curl -sS --http2-prior-knowledge -o /dev/null "$U/probe" 2>/dev/null; then
    check_path /two "h2c" --http2-prior-knowledge
else
    log "curl without HTTP/2 here: h2c part skipped"
fi

log "a coding the miss did not stream is still derived at its first hit, once"
b0=$(encoded br) v0=$(variants br)
get /one br
assert_eq "$(hdr x-cache)" hit "br HIT"
assert_eq "$(hdr content-encoding)" br "br variant"
assert_eq "$(variants br)" $((v0 + 1)) "br derived at its first hit"
get /one br
assert_eq "$(encoded br)" $((b0 + 1)) "br compressed once over two hits"

assert_eq "$(grep -c 'GET /one' "$T/origin.log")" 1 "the origin was asked once for /one"
log "ok"
