#!/usr/bin/env bash
# Route bypass by path tricks (issue 17 item 2). Only /api/ is routed; a real origin records every
# request line it receives. /api/../internal/x, /api/%2e%2e/internal/x, /api/..%2finternal/x and
# /api//../internal/x must never reach the origin's /internal/ (before: all four did): the path is
# routed after RFC 3986 dot-segment removal and decoding of unreserved %XX, and what is forwarded
# is what was routed. %2F/%5C/%00 and a '..' above the root get 400. A second gateway with
# path_normalization {merge_slashes: false, reject_encoded_slash: false} forwards those paths
# canonical and still under /api/. The cache keys the canonical path: /api/a/./b is /api/a/b.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

read -r oport gport aport g2port a2port <<<"$(free_ports 5)"
start_tcp_server origin "$oport" "$T/origin.paths" <<'PY'
import sys
LOG = sys.argv[2]
def answer(conn, head, _):
    target = request_line(head)[1]
    with open(LOG, "ab") as f:
        f.write(target + b"\n")
    body = b"origin saw " + target
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nCache-Control: max-age=60\r\n\r\n"
                 % len(body) + body)
def serve(conn):
    each_request(conn, answer)
PY
: >"$T/origin.paths"

start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  o: {servers: [127.0.0.1:$oport]}
routes:
  - match: /api/
    upstream: o
    cache: {ttl: 1m}
YAML
start_gateway gw2 "$g2port" "$a2port" <<YAML
listen: 127.0.0.1:$g2port
admin: 127.0.0.1:$a2port
workers: {threads: 1}
path_normalization: {merge_slashes: false, reject_encoded_slash: false}
upstreams:
  o: {servers: [127.0.0.1:$oport]}
routes:
  - match: /api/
    upstream: o
YAML

# req PORT TARGET: "STATUS BODY" of GET TARGET sent as is
req() {
    curl -s --max-time 5 --path-as-is -o "$T/body" -w '%{http_code}' "http://127.0.0.1:$1$2"
    printf ' %s' "$(cat "$T/body")"
}
status() { req "$1" "$2" | cut -d' ' -f1; }

log "the four bypasses of issue 17, default config"
assert_eq "$(status "$gport" '/api/../internal/x')" 404 "/api/../internal/x (routes as /internal/x)"
assert_eq "$(status "$gport" '/api/%2e%2e/internal/x')" 404 "/api/%2e%2e/internal/x"
assert_eq "$(status "$gport" '/api/..%2finternal/x')" 400 "/api/..%2finternal/x (encoded slash)"
assert_eq "$(status "$gport" '/api//../internal/x')" 404 "/api//../internal/x (merged: /internal/x)"
log "refused outright: %00, %5C, above the root, bad %XX, a raw backslash, Tomcat's ..;"
for t in '/api/a%00b' '/api/a%5cb' '/api/a%2Fb' '/..' '/api/../../internal/x' '/api/%zz' \
    '/api/..\internal/x' '/api/..;/internal/x' '/api/%2e%2e;/internal/x'; do
    assert_eq "$(status "$gport" "$t")" 400 "$t"
done
log "what is routed is what is forwarded"
assert_eq "$(req "$gport" '/api/a/./b/../c')" "200 origin saw /api/a/c" "dot segments removed"
assert_eq "$(req "$gport" '/api/%7euser/%41?q=%2e')" "200 origin saw /api/~user/A?q=%2e" \
    "unreserved decoded in the path only"
assert_eq "$(req "$gport" '/api//s//t')" "200 origin saw /api/s/t" "slashes merged"
assert_eq "$(req "$gport" '/x/../api/u')" "200 origin saw /api/u" "a path that lands in /api/ is routed there"
log "the cache keys the canonical path"
assert_eq "$(req "$gport" '/api/k/v')" "200 origin saw /api/k/v" "fill"
n=$(grep -c '^/api/k/v$' "$T/origin.paths")
xc=$(curl -s --max-time 5 --path-as-is -o /dev/null -D - "http://127.0.0.1:$gport/api/k/./w/../v" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }')
assert_eq "$xc" HIT "/api/k/./w/../v shares the entry of /api/k/v"
assert_eq "$(grep -c '^/api/k/v$' "$T/origin.paths")" "$n" "no second fetch"

log "merge_slashes: false, reject_encoded_slash: false"
assert_eq "$(req "$g2port" '/api//../internal/x')" "200 origin saw /api/internal/x" \
    "the '..' takes the empty segment: still under /api/"
assert_eq "$(req "$g2port" '/api/..%2finternal/x')" "200 origin saw /api/..%2Finternal/x" \
    "an encoded slash stays encoded: one segment"
assert_eq "$(status "$g2port" '/api/../internal/x')" 404 "dot segments are removed whatever the config"
assert_eq "$(status "$g2port" '/api/a%00b')" 400 "%00 is refused whatever the config"
assert_eq "$(status "$g2port" '/api/../../x')" 400 "above the root is refused whatever the config"

log "the origin never saw a path outside /api/ nor a dot segment"
bad=$(grep -v '^/api/' "$T/origin.paths" || true)
[ -z "$bad" ] || fail "the origin received: $bad"
bad=$(cut -d'?' -f1 "$T/origin.paths" | grep -E '/\.\.?(/|$)|%2[eE]' || true)
[ -z "$bad" ] || fail "the origin received dot segments: $bad"
log "ok"
