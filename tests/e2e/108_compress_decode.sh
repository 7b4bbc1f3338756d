#!/usr/bin/env bash
# An encoded origin body is decoded for a client that does not take its coding (issue 13,
# docs/compression.md "Encoded origin bodies"): gzip, br and zstd bodies (made by the gzip,
# brotli and zstd tools) reach a client without Accept-Encoding, or with another coding only, as
# the origin's plain bytes (chunked, Vary: Accept-Encoding, ETag W/"e1-identity"), streamed from
# a chunked origin too; a client that takes the coding gets the origin's bytes. On a cached route
# the stored encoded response is decoded once into a stored identity variant. A body that decodes
# past max_decoded_size (a decompression bomb) stops cleanly (a 502, or a close once part went)
# and is counted; a corrupt body gets a 502 when nothing went out yet and a close otherwise,
# counted and logged once; the gateway serves the next request.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl gzip
have_br=1 have_zstd=1
command -v brotli >/dev/null || have_br=0
command -v zstd >/dev/null || have_zstd=0

read -r oport gport aport <<<"$(free_ports 3)"

# the plain body and its encodings, made by the tools
json_items 200000 >"$T/plain"
gzip -c -n "$T/plain" >"$T/enc.gzip"
[ $have_br = 1 ] && brotli -c "$T/plain" >"$T/enc.br"
[ $have_zstd = 1 ] && zstd -q -c "$T/plain" >"$T/enc.zstd"
head -c 30000000 /dev/zero | gzip -c -n >"$T/bomb.gzip" # 30 MB of zeros in ~30 KB
{ head -c 10 "$T/enc.gzip"; head -c 5000 /dev/urandom; } >"$T/corrupt.gzip"
# a valid start (more than the gateway's first read decodes to), then garbage
{ head -c 60000 "$T/enc.gzip"; head -c 4000 /dev/urandom; } >"$T/cut.gzip"

start_tcp_server origin "$oport" "$T" <<'ORIGIN'
import socket, sys, time
D = sys.argv[2]
def answer(c, head, _):
    path = request_line(head)[1].decode()
    name = path.rsplit("/", 1)[-1]           # gzip, br, zstd, bomb, corrupt, cut
    chunked = "/chunked/" in path
    fname = "enc." + name if name in ("gzip", "br", "zstd") else name + ".gzip"
    enc = name if name in ("gzip", "br", "zstd") else "gzip"
    b = open(D + "/" + fname, "rb").read()
    cc = b"Cache-Control: max-age=300\r\n" if path[:3] in ("/c/", "/m/") else b""
    hdr = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"e1\"\r\n"
           b"Content-Encoding: %s\r\n%s" % (enc.encode(), cc))
    if chunked or name == "cut":
        c.sendall(hdr + b"Transfer-Encoding: chunked\r\n\r\n")
        step = 7000
        for i in range(0, len(b), step):
            part = b[i:i + step]
            c.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            if name == "cut" and i == 0:
                time.sleep(0.3)  # the first decoded bytes go out before the garbage
        c.sendall(b"0\r\n\r\n")
    else:
        c.sendall(hdr + b"Content-Length: %d\r\n\r\n" % len(b) + b)
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
  - {match: /c/, upstream: api, cache: {}, compress: {types: [application/json], max_decoded_size: 4MB}}
  - {match: /m/, upstream: api, cache: {max_object_size: 64KB}, compress: {types: [application/json], max_decoded_size: 4MB}}
  - {match: /, upstream: api, compress: {types: [application/json], max_decoded_size: 4MB}}
YAML
U=http://127.0.0.1:$gport

get() { # URL [curl args]: body in $T/b, lower-cased headers in $T/h; curl's exit in $rc
    local url=$1
    shift
    rc=0
    fetch "$url" --max-time 20 "$@" 2>"$T/curl.err" || rc=$?
}
status() { sed -n 1p "$T/h" | cut -d' ' -f2; }
metric() { metric_value "$aport" "$1"; }
decoded() { metric "apigate_decompressed_responses_total{encoding=\"$1\"}"; }
errors() { metric "apigate_decompress_errors_total{reason=\"$1\"}"; }

encs="gzip"
[ $have_br = 1 ] && encs="$encs br"
[ $have_zstd = 1 ] && encs="$encs zstd"
for enc in $encs; do
    for kind in d chunked; do
        log "$enc origin body ($kind): decoded for a client without Accept-Encoding"
        d0=$(decoded $enc)
        get "$U/$kind/$enc"
        assert_eq "$rc" 0 "$enc/$kind: curl"
        assert_eq "$(hdr content-encoding)" "" "$enc/$kind: decoded"
        assert_eq "$(hdr transfer-encoding)" chunked "$enc/$kind: streamed"
        assert_eq "$(hdr vary)" accept-encoding "$enc/$kind: Vary"
        assert_eq "$(hdr etag)" 'w/"e1-identity"' "$enc/$kind: ETag of the decoded representation"
        cmp -s "$T/b" "$T/plain" || fail "$enc/$kind: decoded body differs from the plain one"
        assert_eq "$(decoded $enc)" $((d0 + 1)) "$enc/$kind: counted"
    done
    other=gzip
    [ $enc = gzip ] && other=br
    get "$U/d/$enc" -H "Accept-Encoding: $other"
    assert_eq "$(hdr content-encoding)" "" "$enc origin, a client taking $other only: decoded"
    cmp -s "$T/b" "$T/plain" || fail "$enc origin for a $other client: body differs"
    get "$U/d/$enc" -H "Accept-Encoding: $enc"
    assert_eq "$(hdr content-encoding)" "$enc" "a client taking $enc: as the origin sent it"
    cmp -s "$T/b" "$T/enc.$enc" || fail "$enc passthrough: not the origin's bytes"
done

log "python3 zlib reads the passthrough; curl --compressed reads both"
get "$U/d/gzip" -H 'Accept-Encoding: gzip'
python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.decompress(open(sys.argv[1], "rb").read(), 47))' "$T/b" |
    cmp -s - "$T/plain" || fail "python3 zlib: passthrough does not decode"
get "$U/d/gzip" --compressed
cmp -s "$T/b" "$T/plain" || fail "curl --compressed"

log "cached: the stored gzip response is decoded once into an identity variant"
v0=$(metric 'apigate_compress_variants_total{variant="identity"}')
get "$U/c/gzip"
assert_eq "$(hdr x-cache)/$(hdr content-encoding)" miss/ "cached MISS decoded on its way"
cmp -s "$T/b" "$T/plain" || fail "cached MISS body"
for i in 1 2 3; do
    get "$U/c/gzip"
    assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/ "identity HIT $i"
    assert_eq "$(hdr content-length)" 200000 "identity HIT $i: stored with its length"
    cmp -s "$T/b" "$T/plain" || fail "identity HIT $i body"
done
assert_eq "$(metric 'apigate_compress_variants_total{variant="identity"}')" $((v0 + 1)) "decoded once"
get "$U/c/gzip" -H 'Accept-Encoding: gzip'
assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/gzip "a gzip client gets the stored bytes"
cmp -s "$T/b" "$T/enc.gzip" || fail "stored gzip bytes"

log "a decoded variant over the route's max_object_size is served, not stored"
o0=$(curl -s "http://127.0.0.1:$aport/cache/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"])')
v0=$(metric 'apigate_compress_variants_total{variant="identity"}')
get "$U/m/gzip"
assert_eq "$(hdr x-cache)" miss "stored gzip (small) on /m/"
for i in 1 2; do
    get "$U/m/gzip"
    assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/ "/m/ decoded HIT $i"
    cmp -s "$T/b" "$T/plain" || fail "/m/ decoded HIT $i body"
done
assert_eq "$(metric 'apigate_compress_variants_total{variant="identity"}')" $((v0 + 2)) "decoded for each hit: not stored"
o1=$(curl -s "http://127.0.0.1:$aport/cache/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"])')
assert_eq "$o1" $((o0 + 1)) "only the gzip response is stored"

log "decompression bomb: bounded by max_decoded_size, counted"
b0=$(errors too_big)
get "$U/d/bomb"
if [ "$(status)" != 502 ]; then
    [ "$rc" -ne 0 ] || fail "bomb: neither a 502 nor a cut body (curl exit 0, $(wc -c <"$T/b") bytes)"
fi
[ "$(wc -c <"$T/b")" -le $((4 * 1024 * 1024 + 65536)) ] || fail "bomb: $(wc -c <"$T/b") bytes went out"
assert_eq "$(errors too_big)" $((b0 + 1)) "bomb counted"

log "corrupt body: a 502 before any byte went out"
c0=$(errors corrupt)
get "$U/d/corrupt"
assert_eq "$(status)" 502 "corrupt gzip: 502"
assert_eq "$(errors corrupt)" $((c0 + 1)) "corrupt counted"
n=$(grep -c 'compress: the origin.s gzip body is corrupt' "$T/gw.log" || true)
assert_eq "$n" 1 "logged once"

log "corrupt after the first bytes went out: the client is closed, never given a wrong body"
get "$U/d/cut"
assert_eq "$(status)" 200 "cut: the head went out"
[ "$rc" -ne 0 ] || fail "cut: curl saw a complete body"
cmp -s "$T/b" <(head -c "$(wc -c <"$T/b")" "$T/plain") || fail "cut: what went out is not a prefix of the plain body"
assert_eq "$(errors corrupt)" $((c0 + 2)) "cut counted"

log "the gateway goes on"
get "$U/d/gzip"
cmp -s "$T/b" "$T/plain" || fail "after the failures"
log "ok"
