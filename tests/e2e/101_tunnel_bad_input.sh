#!/usr/bin/env bash
# Upgrade requests that must not become tunnels, or not the wrong way (docs/proxy.md, Upgrade
# tunnels): an upstream that refuses (403) is answered as is and the client connection closes
# after it, so bytes sent behind the Upgrade request are never read as a next request (no
# smuggling), on a route with websocket: false as well; a 101 the client never asked for, or one without an Upgrade header, is a 502;
# bytes the client sends before the 101 arrives are tunnel bytes, delivered once it comes; an
# HTTP/2 request cannot carry an HTTP/1.1 Upgrade (nghttp gets the stream reset, the session and
# the gateway go on), and a 101 to an h2 request is a 502.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 nghttp
PEERS="$(dirname "$0")/tunnel_peers.py"

read -r uport gport aport <<<"$(free_ports 3)"
start_bg up python3 "$PEERS" raw-up "$uport" "$T/up.requests"
wait_port "$uport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  raw: {servers: [127.0.0.1:$uport]}
routes:
  - {match: /, upstream: raw, retry: {attempts: 2, on: [502, 503]}}
  - {match: /off/, upstream: raw, websocket: false}
YAML
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
client() { python3 "$PEERS" raw-client "$gport" "$@"; }

log "upstream refuses the upgrade (403): proxied, then the client connection closes"
smuggle='GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n'
out=$(client /deny "$smuggle")
assert_contains "$out" "HTTP/1.1 403 Forbidden" "the refusal reaches the client"
assert_contains "$out" "denied" "with its body"
assert_contains "$out" "Connection: close" "announced close"
assert_contains "$out" "[closed]" "the gateway closed the connection"
assert_eq "$(grep -c 'HTTP/1.1 ' <<<"$out")" 1 "one response only"
sleep 0.3
assert_not_contains "$(cat "$T/up.requests")" "/smuggled" "bytes behind the Upgrade never reach the upstream as a request"
assert_contains "$(cat "$T/up.requests")" "upgrade-header yes" "the Upgrade header was forwarded"

log "websocket: false: the Upgrade is dropped, and the connection still closes after the answer"
: >"$T/up.requests"
out=$(client /off/x "$smuggle")
assert_contains "$out" "HTTP/1.1 200 OK" "a plain answer"
assert_contains "$out" "[closed]" "closed after it"
assert_eq "$(grep -c 'HTTP/1.1 ' <<<"$out")" 1 "one response only"
sleep 0.3
assert_contains "$(cat "$T/up.requests")" "upgrade-header no" "Upgrade not forwarded"
assert_not_contains "$(cat "$T/up.requests")" "/smuggled" "bytes behind it never a request"

log "101 without an Upgrade request: 502, not a tunnel, not retried"
: >"$T/up.requests"
raw=$(printf 'GET /switch HTTP/1.1\r\nHost: t\r\n\r\n' | raw_http "$gport" 3)
assert_contains "$raw" "HTTP/1.1 502" "unasked 101"
assert_eq "$(grep -c '^GET /switch' "$T/up.requests")" 1 "sent once"
assert_contains "$(cat "$T/up.requests")" "upgrade-header no" "a plain request carries no Upgrade"

log "101 without an Upgrade header: 502"
out=$(client /noupgradehdr)
assert_contains "$out" "HTTP/1.1 502" "101 without Upgrade"
assert_eq "$(metric apigate_tunnels_total)" 0 "no tunnel so far"

log "bytes sent with the Upgrade request, before the 101, are tunnel bytes"
out=$(client /slow101 'early-bytes\r\nGET /x HTTP/1.1\r\n\r\n')
assert_contains "$out" "HTTP/1.1 101 Switching Protocols" "the 101 head"
assert_contains "$out" "Upgrade: test" "its Upgrade header"
assert_contains "$out" "after-101:early-bytes" "early bytes echoed through the tunnel, in order"
assert_not_contains "$(cat "$T/up.requests")" "GET /x" "never parsed as a request"
assert_eq "$(metric apigate_tunnels_total)" 1 "one tunnel"

log "HTTP/2: an Upgrade header is a protocol error of the stream; the gateway goes on"
out=$(nghttp -v -H 'upgrade: websocket' "http://127.0.0.1:$gport/ws" 2>&1 || true)
assert_contains "$out" "RST_STREAM" "stream reset"
assert_eq "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/plain")" \
    200 "h2 still served"
assert_eq "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/switch")" \
    502 "a 101 to an h2 request"
assert_eq "$(http_status "http://127.0.0.1:$gport/plain")" 200 "h1 still served"
log "ok"
