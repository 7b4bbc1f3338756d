#!/usr/bin/env bash
# What is never compressed (issue 13, docs/compression.md "Which responses"), on a MISS and on
# cache HITs alike: a Cache-Control: no-transform response, a request with Range or with
# Cache-Control: no-transform, a 206, an already encoded body (passed as the origin sent it to a
# client that takes its coding), a body under min_size, a type the route does not list, and HEAD.
# None of them derives a stored variant (apigate_compress_variants_total and the encoder's byte
# counter stay still), and each answer is byte-exact the origin's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl

read -r oport gport aport <<<"$(free_ports 3)"

start_tcp_server origin "$oport" <<'ORIGIN'
import gzip, socket
BIG = json_items(30000)
def answer(c, head, _):
    method, path = request_line(head)
    rng = header(head, b"range") is not None
    name = path.decode().rsplit("/", 1)[-1]
    ct, extra, b, status = b"application/json", b"", BIG, b"200 OK"
    if name == "nt":
        extra = b"Cache-Control: max-age=300, no-transform\r\n"
    elif name == "small":
        b = BIG[:300] + b"]"
    elif name == "png":
        ct = b"image/png"
    elif name == "pre":
        b = gzip.compress(BIG, mtime=0)
        extra = b"Content-Encoding: gzip\r\n"
    elif name == "partial" and rng:
        status, b = b"206 Partial Content", BIG[:100]
        extra = b"Content-Range: bytes 0-99/%d\r\n" % len(BIG)
    if b"max-age" not in extra:
        extra += b"Cache-Control: max-age=300\r\n"
    out = (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nETag: \"e1\"\r\n%sContent-Length: %d\r\n\r\n"
           % (status, ct, extra, len(b)))
    if method != b"HEAD":
        out += b
    c.sendall(out)
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
U=http://127.0.0.1:$gport O=http://127.0.0.1:$oport

metric() { metric_value "$aport" "$1"; }
work() { # every counter of compression work, as one line
    echo "$(metric 'apigate_compress_bytes_total{direction="in"}') $(metric 'apigate_compress_variants_total{variant="gzip"}') $(metric 'apigate_compressed_responses_total{encoding="gzip"}')"
}
AE=(-H 'Accept-Encoding: gzip, br, zstd')

w0=$(work)
# case PATH WHAT [curl args]: MISS then two HITs, each untouched and byte-exact the origin's
case_() {
    local path=$1 what=$2
    shift 2
    curl -sS -o "$T/origin" "$@" "$O$path"
    for want in miss hit hit; do
        fetch "$U$path" "${AE[@]}" "$@"
        assert_eq "$(hdr x-cache)" "$want" "$what: $want"
        assert_eq "$(hdr content-encoding)" "" "$what ($want): not encoded"
        cmp -s "$T/b" "$T/origin" || fail "$what ($want): the body is not the origin's"
    done
}
case_ /r/nt "Cache-Control: no-transform"
case_ /r/small "below min_size"
case_ /r/png "type not listed"
assert_eq "$(work)" "$w0" "no compression work for what is never compressed"

log "a Range request: the body as it is, on a HIT too"
fetch "$U/r/big" "${AE[@]}"
assert_eq "$(hdr x-cache)" miss "fill big"
fetch "$U/r/big" "${AE[@]}"
assert_eq "$(hdr content-encoding)" br "a plain HIT is encoded (the route works)"
w1=$(work)
fetch "$U/r/big" "${AE[@]}" -H 'Range: bytes=0-99'
assert_eq "$(hdr x-cache)" hit "Range HIT"
assert_eq "$(hdr content-encoding)" "" "Range request: not encoded"
fetch "$U/r/big" "${AE[@]}" -H 'Cache-Control: no-transform'
assert_eq "$(hdr content-encoding)" "" "no-transform request: not encoded"
fetch "$U/r/big" "${AE[@]}" -I
assert_eq "$(hdr x-cache)" hit "HEAD HIT"
assert_eq "$(hdr content-encoding)" "" "HEAD: not encoded"
assert_eq "$(work)" "$w1" "no compression work for Range, no-transform and HEAD requests"

log "a 206 passes untouched (not stored)"
fetch "$U/r/partial" "${AE[@]}" -H 'Range: bytes=0-99'
assert_eq "$(sed -n 1p "$T/h" | cut -d' ' -f2)" 206 "206"
assert_eq "$(hdr content-encoding)" "" "206: not encoded"
assert_eq "$(wc -c <"$T/b")" 100 "206 body"

log "an already encoded body: as the origin sent it to a client that takes its coding"
curl -sS -o "$T/origin" "$O/r/pre"
for want in miss hit hit; do
    fetch "$U/r/pre" -H 'Accept-Encoding: gzip'
    assert_eq "$(hdr x-cache)/$(hdr content-encoding)" "$want/gzip" "pre-encoded ($want)"
    cmp -s "$T/b" "$T/origin" || fail "pre-encoded ($want): not the origin's bytes"
    assert_eq "$(hdr etag)" '"e1"' "pre-encoded ($want): the origin's ETag"
done
assert_eq "$(metric 'apigate_compress_variants_total{variant="identity"}')" 0 "nothing decoded for it"
assert_eq "$(work)" "$w1" "never encoded twice"
log "ok"
