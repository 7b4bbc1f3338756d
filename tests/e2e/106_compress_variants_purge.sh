#!/usr/bin/env bash
# Stored variants and the cache's other paths (issue 13, docs/compression.md "With the cache"):
# a purge by key, by prefix and by tag, and the invalidation after a PUT remove a stored response
# with all its variants (the next gzip request is a MISS, never a stale variant); the memory gauge
# counts the variants; the Redis L2 holds the identity response only (no key is added when a
# gateway derives variants) and a second gateway that takes the entry from L2 derives its own
# variants, byte-exact after decoding.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli python3
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

read -r mport rport gpa apa gpb apb <<<"$(free_ports 6)"
"$APIGATE" mock --print-default >"$T/mock.yaml"
cat >>"$T/mock.yaml" <<'YAML'
  - {method: GET, path: '/api/tv/{id}', body_size: 20KB, etag: true, headers: {Surrogate-Key: 'shop tv'}}
  - {method: PUT, path: '/api/tv/{id}', body_size: 2}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no
wait_port "$rport"
for n in a b; do
    if [ "$n" = a ]; then gp=$gpa ap=$apa; else gp=$gpb ap=$apb; fi
    start_gateway "gw-$n" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache: {redis: "redis://127.0.0.1:$rport/0", redis_timeout: 2s}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    cache: {ttl: 60s, override: true, tag_header: Surrogate-Key}
    compress: {types: [application/json], min_size: 1KB}
YAML
done
GA=http://127.0.0.1:$gpa GB=http://127.0.0.1:$gpb
AA=http://127.0.0.1:$apa AB=http://127.0.0.1:$apb

get() { # URL ACCEPT_ENCODING: body in $T/b, lower-cased headers in $T/h
    local ae=()
    [ -n "$2" ] && ae=(-H "Accept-Encoding: $2")
    fetch "$1" --max-time 10 -H "Host: api.test" "${ae[@]}"
}
gunzip_py() { "$PY" -c 'import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), 47))'; }
objects() { curl -s "$1/cache/stats" | jq -r .objects; }
cbytes() { curl -s "$1/cache/stats" | jq -r .bytes; }
variants() { metric_value "${1##*:}" "apigate_compress_variants_total{variant=\"$2\"}"; } # ADMIN_URL ENC
wait_dbsize() { # N: Redis holds N keys (L2 writes are asynchronous)
    local i
    for i in $(seq 1 100); do
        [ "$(redis-cli -p "$rport" dbsize)" = "$1" ] && return 0
        sleep 0.05
    done
    fail "redis dbsize $(redis-cli -p "$rport" dbsize), expected $1"
}
# fill URL: identity MISS, then gzip and br HITs (two variants derived)
fill() {
    get "$1" ""
    assert_eq "$(hdr x-cache)" miss "fill $1"
    cp "$T/b" "$T/identity"
    get "$1" gzip
    assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/gzip "gzip variant of $1"
    gunzip_py <"$T/b" | cmp -s - "$T/identity" || fail "gzip variant of $1 differs"
    get "$1" br
    assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/br "br variant of $1"
}
sleep 0.3

log "L2 holds the identity response only; variants are this gateway's"
k0=$(redis-cli -p "$rport" dbsize)
o0=$(objects "$AA") by0=$(cbytes "$AA")
get "$GA/api/tv/1" ""
assert_eq "$(hdr x-cache)" miss "A fills tv/1"
cp "$T/b" "$T/tv1"
wait_dbsize $((k0 + 1))
assert_eq "$(objects "$AA")" $((o0 + 1)) "one object: identity"
by1=$(cbytes "$AA")
get "$GA/api/tv/1" gzip
assert_eq "$(hdr x-cache)/$(hdr content-encoding)" hit/gzip "A: gzip variant"
etag_gz=$(hdr etag)
case $etag_gz in w/\"*-gzip\") ;; *) fail "gzip variant ETag: $etag_gz" ;; esac
get "$GA/api/tv/1" br
assert_eq "$(hdr content-encoding)" br "A: br variant"
assert_eq "$(objects "$AA")" $((o0 + 3)) "identity + gzip + br objects"
[ "$(cbytes "$AA")" -gt "$by1" ] || fail "cache bytes do not count the variants ($by0 $by1 $(cbytes "$AA"))"
sleep 0.3
assert_eq "$(redis-cli -p "$rport" dbsize)" $((k0 + 1)) "no L2 key for a variant"

log "B takes the identity from L2 and derives its own gzip variant"
get "$GB/api/tv/1" gzip
assert_eq "$(hdr x-cache)" hit "B: L2 hit"
assert_eq "$(hdr content-encoding)" gzip "B: gzip"
assert_eq "$(hdr etag)" "$etag_gz" "the same variant ETag on both gateways"
gunzip_py <"$T/b" | cmp -s - "$T/tv1" || fail "B's gzip variant does not decode to A's identity body"
assert_eq "$(variants "$AB" gzip)" 1 "B derived gzip once"
get "$GB/api/tv/1" gzip
assert_eq "$(variants "$AB" gzip)" 1 "B's next hit is stored"

log "purge by key: the identity and every variant, on both gateways"
ob=$(objects "$AB")
out=$(curl -s -X POST "$AA/cache/purge?key=/api/tv/1")
assert_eq "$(jq -r .purged <<<"$out")" 3 "A purged identity + 2 variants"
# B learns it through Redis: wait until its lookup misses (the purge bumped the path's generation
# there), then its old identity and gzip variant are gone and the new identity is stored with
# the gzip variant its miss streamed (e2e/143)
for i in $(seq 1 100); do
    get "$GB/api/tv/1" gzip
    [ "$(hdr x-cache)" = miss ] && break
    sleep 0.05
done
assert_eq "$(hdr x-cache)" miss "after the purge, B misses"
gunzip_py <"$T/b" | cmp -s - "$T/tv1" || fail "refetched gzip body differs"
assert_eq "$(objects "$AB")" "$ob" "B dropped its old identity and gzip variant, stored the new two"

log "purge by tag: variants carry their base's tags"
fill "$GA/api/tv/2"
out=$(curl -s -X POST "$AA/cache/purge?tag=tv")
[ "$(jq -r .purged <<<"$out")" -ge 3 ] || fail "tag purge counted $(jq -r .purged <<<"$out"), expected identity + variants"
get "$GA/api/tv/2" gzip
assert_eq "$(hdr x-cache)" miss "no variant survives a tag purge"

log "purge by prefix"
fill "$GA/api/tv/3"
curl -s -X POST "$AA/cache/purge?prefix=/api/tv/" >/dev/null
get "$GA/api/tv/3" br
assert_eq "$(hdr x-cache)" miss "no variant survives a prefix purge"

log "invalidation after a PUT"
fill "$GA/api/tv/4"
st=$(curl -s -o /dev/null -w "%{http_code}" -H "Host: api.test" -X PUT -d "{}" "$GA/api/tv/4")
assert_eq "$st" 200 "PUT"
get "$GA/api/tv/4" gzip
assert_eq "$(hdr x-cache)" miss "no variant survives an invalidation"
log "ok"
