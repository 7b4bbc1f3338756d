#!/usr/bin/env bash
# WebSockets over HTTP/2 (RFC 8441 extended CONNECT, docs/http2.md) with a real HTTP/2 client
# (python3-h2, WebSocket frames by hand) and a real WebSocket server (python3-websockets): the
# gateway announces SETTINGS_ENABLE_CONNECT_PROTOCOL, turns the stream's CONNECT into an
# HTTP/1.1 Upgrade of its own (key made and accept checked by the gateway, version, protocol and
# extensions passed), answers 200 on the 101 and carries the tunnel in DATA frames: text, binary
# and 1 MB echoed on two streams of one connection, the close handshake as END_STREAM both ways.
# Refusals keep their status (upstream 403, a 200 that is no switch: 502, a wrong accept: 502,
# websocket: false or another protocol: 501, no route: 404, a route's 2xx fallback: 502). RST_STREAM CANCEL from the client
# closes the upstream connection; the upstream's reset is RST_STREAM CANCEL, its FIN END_STREAM.
# Flow control is the backpressure both ways (bounded bytes held); idle timeout, metrics, the
# access log and the drain on reload as for an HTTP/1.1 tunnel.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 jq
PY=/usr/bin/python3
"$PY" -c 'import h2, websockets' 2>/dev/null || skip "python3-h2 or python3-websockets missing (scripts/deps.sh test installs them)"
PEERS="$(dirname "$0")/tunnel_peers.py"
H2P="$(dirname "$0")/h2_peers.py"
h2p() { timeout 60 "$PY" "$H2P" "$@"; }

read -r wport uport gport aport dport <<<"$(free_ports 5)" # dport: nothing listens
start_bg echo "$PY" "$PEERS" ws-echo "$wport"
wait_port "$wport"
start_bg up "$PY" "$H2P" up "$uport" "$T/up.log"
wait_port "$uport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1, drain_timeout: 3s}
logging: {access_log: $T/access.log, access_format: json, access_flush: 10ms}
upstreams:
  ws: {servers: [127.0.0.1:$wport]}
  raw: {servers: [127.0.0.1:$uport]}
  dead: {servers: [127.0.0.1:$dport]}
routes:
  - {match: /chat, upstream: ws, cache: {ttl: 60s, override: true}}
  - {match: /nows/, upstream: raw, websocket: false}
  - {match: /idle/, upstream: raw, tunnel: {idle_timeout: 1s}}
  - {match: /r/, upstream: raw}
  - {match: /fb/, upstream: dead, fallback: {status: 200, body: '{"fallback":true}'}}
YAML
gw_pid=$LAST_PID
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
# stalled FILE: the number in FILE once it stopped growing for 1.5 s (bounded: 60 s)
stalled() {
    local last=-1 same=0 now deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        now=$(cat "$1" 2>/dev/null || echo 0)
        if [ "$now" = "$last" ]; then
            same=$((same + 1))
            [ $same -ge 15 ] && { echo "$now"; return 0; }
        else
            same=0
            last=$now
        fi
        sleep 0.1
    done
    fail "$1 still growing after 60 s: $now"
}

log "SETTINGS_ENABLE_CONNECT_PROTOCOL, then two WebSockets on one connection to a real server"
out=$(h2p ws "$gport" /chat 2 2>&1) || fail "client: $out"
for want in "settings ok" "200 ok" "text ok" "binary ok" "1MB ok" "20 round trips ok" "closed cleanly"; do
    assert_contains "$out" "$want"
done
wait_until 10 "both tunnels closed" test "$(metric 'apigate_tunnels_closed_total{reason="closed"}')" = 2
assert_eq "$(metric apigate_tunnels_total)" 2 "tunnels started"
assert_eq "$(metric apigate_tunnels_open)" 0 "tunnels open"
assert_range "$(metric 'apigate_tunnel_bytes_total{direction="upstream"}')" $((2 * 1048576)) $((3 * 1048576)) "bytes client -> upstream"
assert_range "$(metric 'apigate_tunnel_bytes_total{direction="downstream"}')" $((2 * 1048576)) $((3 * 1048576)) "bytes upstream -> client"
assert_eq "$(metric apigate_tunnel_buffered_bytes)" 0 "bytes held after the end"
wait_until 10 "access log lines" test "$(grep -c '"path":"/chat"' "$T/access.log" 2>/dev/null)" = 2
line=$(grep '"path":"/chat"' "$T/access.log" | head -1)
assert_eq "$(jq -r '.method' <<<"$line")" CONNECT "logged method"
assert_eq "$(jq -r '.status' <<<"$line")" 200 "logged status: what the client got"
assert_eq "$(jq -r '.protocol' <<<"$line")" HTTP/2.0 "logged protocol"
assert_range "$(jq -r '.bytes' <<<"$line")" 1048576 $((2 * 1048576)) "logged bytes to the client"

log "the HTTP/1.1 request the upstream gets: GET + Upgrade, our key, the client's fields"
out=$(h2p raw "$gport" /r/echo end 2>&1) || fail "raw: $out"
assert_contains "$out" "status 200"
assert_contains "$out" "protocol chat" "the upstream's Sec-WebSocket-Protocol reaches the client"
assert_contains "$out" "echo ok"
assert_contains "$out" "ended" "END_STREAM: passed on as a half-close, the upstream's FIN back"
head=$(grep "head 'GET /r/echo " "$T/up.log")
assert_contains "$head" 'Upgrade: websocket\r\n'
assert_contains "$head" 'Connection: upgrade'
assert_contains "$head" 'Sec-WebSocket-Key: '
assert_contains "$head" 'sec-websocket-version: 13\r\n'
assert_contains "$head" 'sec-websocket-protocol: chat, superchat\r\n'
assert_contains "$head" 'sec-websocket-extensions: x-test\r\n'
wait_until 10 "the upstream connection closed" grep -q '^/r/echo eof' "$T/up.log"

log "refusals: the upstream's status, or the gateway's"
out=$(h2p status "$gport" /r/deny 2>&1) || fail "deny: $out"
assert_contains "$out" "status 403" "an upstream that refuses the Upgrade"
assert_contains "$out" "body denied"
out=$(h2p status "$gport" /r/plain 2>&1) || fail "plain: $out"
assert_contains "$out" "status 502" "an upstream 200 is no switch: never a 2xx to the client"
out=$(h2p status "$gport" /r/badaccept 2>&1) || fail "badaccept: $out"
assert_contains "$out" "status 502" "a 101 with a wrong Sec-WebSocket-Accept"
out=$(h2p status "$gport" /nows/x 2>&1) || fail "nows: $out"
assert_contains "$out" "status 501" "a route with websocket: false"
out=$(h2p status "$gport" /r/echo x-other 2>&1) || fail "other protocol: $out"
assert_contains "$out" "status 501" "a protocol other than websocket"
out=$(h2p status "$gport" /nowhere 2>&1) || fail "no route: $out"
assert_contains "$out" "status 404" "no route"
out=$(h2p status "$gport" /fb/x 2>&1) || fail "fallback: $out"
assert_contains "$out" "status 502" "a 2xx fallback never answers an extended CONNECT (a 2xx opens the tunnel)"
assert_eq "$(curl -s "http://127.0.0.1:$gport/fb/x")" '{"fallback":true}' "the fallback still answers plain requests"
assert_eq "$(grep -c 'nows\|x-other\|nowhere' "$T/up.log" || true)" 0 "refused requests never reached the upstream"
assert_eq "$(metric apigate_tunnels_total)" 3 "no tunnel for a refusal"

log "RST_STREAM CANCEL from the client closes the upstream connection; the session goes on"
out=$(h2p raw "$gport" /r/echo?rst rst 2>&1) || fail "rst: $out"
assert_contains "$out" "reset sent"
assert_contains "$out" "connection alive"
wait_until 10 "the upstream connection closed" test "$(grep -c '^/r/echo eof' "$T/up.log")" = 2
log "the upstream's reset is RST_STREAM CANCEL (8), its FIN END_STREAM"
out=$(h2p raw "$gport" /r/resetafter wait 2>&1) || fail "resetafter: $out"
assert_contains "$out" "reset 8"
out=$(h2p raw "$gport" /r/closeafter wait 2>&1) || fail "closeafter: $out"
assert_contains "$out" "ended"
wait_until 10 "tunnels closed" test "$(metric apigate_tunnels_open)" = 0
assert_eq "$(metric 'apigate_tunnels_closed_total{reason="error"}')" 2 "the upstream's reset (and the closeafter client's exit while half-open)"

log "backpressure: an upstream floods a client that never opens its window"
h2p noread "$gport" /r/flood "$T/noread" >"$T/noread.out" 2>&1 &
npid=$!
sent=$(stalled "$T/up.log.flood")
got=$(stalled "$T/noread")
log "the upstream's flood stalled at $sent bytes, the client got $got"
assert_range "$got" 1 65535 "bytes the client got: its stream window"
assert_range "$sent" 65536 $((64 * 1048576)) "bytes the upstream could send (1 GB wanted)"
held=$(metric apigate_tunnel_buffered_bytes)
assert_range "$held" 0 $((65536 + 4096)) "bytes the gateway holds for the tunnel (tunnel.buffer)"
log "backpressure: a client floods an upstream that never reads"
h2p flood "$gport" /r/sink "$T/flood" >"$T/flood.out" 2>&1 &
fpid=$!
csent=$(stalled "$T/flood")
log "the client's flood stalled at $csent bytes"
assert_range "$csent" 65536 $((64 * 1048576)) "bytes the client could send"
held=$(metric apigate_tunnel_buffered_bytes)
# one tunnel.buffer towards the client, at most one stream window (64 KB) towards the upstream
assert_range "$held" 0 $((2 * 65536 + 8192)) "bytes the gateway holds for both tunnels"
assert_eq "$(metric apigate_tunnels_open)" 2 "both tunnels open"
touch "$T/noread.done" "$T/flood.done"
wait "$npid" || fail "noread client: $(cat "$T/noread.out")"
wait "$fpid" || fail "flood client: $(cat "$T/flood.out")"
wait_until 10 "tunnels closed after the clients' resets" test "$(metric apigate_tunnels_open)" = 0
assert_eq "$(metric apigate_tunnel_buffered_bytes)" 0 "nothing held after the end"

log "tunnel.idle_timeout: a quiet stream is reset (CANCEL), the connection stays"
t0=$SECONDS
out=$(h2p raw "$gport" /idle/echo wait 2>&1) || fail "idle: $out"
assert_contains "$out" "reset 8"
assert_range $((SECONDS - t0)) 0 10 "seconds until the idle reset"
assert_eq "$(metric 'apigate_tunnels_closed_total{reason="idle_timeout"}')" 1 "idle timeouts"

log "a tunnel open across a reload ends at workers.drain_timeout"
h2p raw "$gport" /r/echo?long wait >"$T/long.out" 2>&1 &
lpid=$!
# its echo came back before the reload (python-h2 takes no DATA after a GOAWAY)
wait_until 15 "long tunnel echoed" grep -q "echo ok" "$T/long.out"
assert_eq "$(metric apigate_tunnels_open)" 1 "the long tunnel open"
t0=$(date +%s.%N)
kill -HUP "$gw_pid"
sleep 0.5
out=$(h2p ws "$gport" /chat 2>&1) || fail "client after reload: $out"
assert_contains "$out" "closed cleanly" "a new WebSocket over HTTP/2 after the reload"
wait "$lpid" || fail "long client: $(cat "$T/long.out")"
t1=$(date +%s.%N)
assert_contains "$(cat "$T/long.out")" "goaway 0" "GOAWAY NO_ERROR on the reload"
assert_range "$(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }')" 2.5 30 "ended at the drain deadline, not before"
wait_until 10 "the upstream connection closed" test "$(grep -c '^/r/echo eof' "$T/up.log")" = 3
log "ok"
