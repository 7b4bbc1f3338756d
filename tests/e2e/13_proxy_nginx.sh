#!/usr/bin/env bash
# `apigate serve` in front of a second real origin (nginx from Debian): a 1 KB JSON file, HEAD,
# conditional 304 with ETag, a 20 MB download streamed through with bounded memory while the
# client reads slowly (backpressure), a 20 MB upload streamed to the mock in both framings, and a
# SIGTERM drain that lets an in-flight request finish.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3 nginx sha256sum

nport=$(free_port)
mport=$(free_port)
gport=$(free_port)
aport=$(free_port)

mkdir -p "$T/www"
python3 -c 'import json; print(json.dumps({"id": 1, "pad": "x" * 990}))' >"$T/www/item.json"
head -c 20971520 /dev/urandom >"$T/www/big.bin"
nginx_conf "$T/nginx" <<EOF
    types { application/json json; application/octet-stream bin; }
    keepalive_requests 100000;
    keepalive_timeout 1s;
    server {
        listen 127.0.0.1:$nport;
        root $T/www;
        etag on;
    }
EOF
cat >"$T/mock.yaml" <<'EOF'
global:
  max_body: 64MB
routes:
  - {method: ANY, path: /echo, handler: echo}
  - {method: GET, path: /slow, latency: {dist: fixed, ms: 3000}}
EOF
cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1, drain_timeout: 5s}
server: {max_body_size: 64MB, send_timeout: 3s}
upstreams:
  web:
    servers: [127.0.0.1:$nport]
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /echo
    upstream: api
  - match: /slow
    upstream: api
  - match: /
    upstream: web
EOF
start_nginx nginx "$T/nginx" "$nport"
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
gw_pid=$LAST_PID
wait_port "$gport"
wait_port "$aport"
G=http://127.0.0.1:$gport

log "1 KB JSON, HEAD, 304"
assert_eq "$(http_body "$G/item.json")" "$(cat "$T/www/item.json")" "JSON body"
hdrs=$(curl -s -I --max-time 5 "$G/item.json")
assert_contains "$hdrs" "Content-Length: $(stat -c %s "$T/www/item.json")" "HEAD length"
etag=$(sed -n 's/^ETag: *//Ip' <<<"$hdrs" | tr -d '\r')
[ -n "$etag" ] || fail "nginx sent no ETag: $hdrs"
out=$(curl -s -i --max-time 5 -H "If-None-Match: $etag" "$G/item.json")
assert_contains "$out" "HTTP/1.1 304" "conditional request"
assert_eq "$(curl -s --max-time 5 -H "If-None-Match: $etag" "$G/item.json" | wc -c)" 0 "304 without body"

log "the origin closes idle pooled connections (keepalive_timeout 1s): next requests still succeed"
for i in 1 2 3; do
    assert_eq "$(http_status "$G/item.json")" 200 "request $i before the idle close"
done
sleep 1.5
for i in 1 2 3; do
    assert_eq "$(http_status "$G/item.json")" 200 "request $i after the origin closed its idle side"
done

log "20 MB download, client reading at 8 MB/s: bytes intact, worker memory bounded"
worker=$(pgrep -P "$gw_pid" | head -1)
[ -n "$worker" ] || fail "no worker process under $gw_pid"
rss0=$(awk '/VmRSS/ { print $2 }' "/proc/$worker/status")
curl -s --max-time 30 --limit-rate 8M -o "$T/big.out" "$G/big.bin" &
cpid=$!
peak=$rss0
while kill -0 "$cpid" 2>/dev/null; do
    r=$(awk '/VmRSS/ { print $2 }' "/proc/$worker/status" 2>/dev/null || echo 0)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.1
done
wait "$cpid" || fail "download failed"
assert_eq "$(sha256sum <"$T/big.out")" "$(sha256sum <"$T/www/big.bin")" "20 MB download bytes"
log "worker RSS before ${rss0} kB, peak ${peak} kB"
assert_range "$((peak - rss0))" -100000 6144 "worker RSS growth (kB) while streaming 20 MB to a slow client"

log "a client that stops reading is cut off after send_timeout (3s), not buffered"
out=$(python3 - "$gport" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
time.sleep(6)  # read nothing: the gateway's socket buffer fills, then its writes stall
got = 0
s.settimeout(5)
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
except (ConnectionResetError, socket.timeout):
    pass
print("cut" if got < 20971520 else "complete", got)
PY
)
assert_contains "$out" "cut" "stalled client"
open=1
for _ in $(seq 1 30); do # the machine may be busy: give the gateway a moment to see the EOFs
    open=$(curl -s "http://127.0.0.1:$aport/stats" | jq .connections.open)
    [ "$open" = 0 ] && break
    sleep 0.1
done
[ "$open" = 0 ] || { ss -tnoi "( sport = :$gport or dport = :$gport )" >&2; curl -s "http://127.0.0.1:$aport/stats" | jq -c .connections >&2; }
assert_eq "$open" 0 "the stalled client connection was closed"

log "20 MB upload to the mock: Content-Length and chunked"
head -c 15728640 "$T/www/big.bin" | base64 -w0 >"$T/up.txt" # 20 MB of text
for framing in length chunked; do
    args=(--data-binary @"$T/up.txt")
    [ "$framing" = chunked ] && args+=(-H 'Transfer-Encoding: chunked')
    curl -s --max-time 60 "${args[@]}" "$G/echo" >"$T/echo.$framing.json"
    assert_eq "$(jq -r .body_len "$T/echo.$framing.json")" 20971520 "$framing upload length"
    assert_eq "$(jq -j .body "$T/echo.$framing.json" | sha256sum)" "$(sha256sum <"$T/up.txt")" "$framing upload bytes"
done

log "an origin that answers before reading the whole body (nginx 413 over its 1 MB limit)"
head -c 5000000 /dev/zero >"$T/5m.bin"
out=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --data-binary @"$T/5m.bin" "$G/item.json")
assert_eq "$out" 413 "early answer from the origin reaches the client"
assert_eq "$(http_status "$G/item.json")" 200 "the gateway keeps serving afterwards"

assert_eq "$(curl -s "http://127.0.0.1:$aport/stats" | jq .worker_restarts)" 0 "no worker crash so far"
log "SIGTERM drains: the in-flight request finishes, then exit 0"
# Ordered by conditions, not fixed sleeps (a loaded machine can delay any process start past
# them): the slow request is at the origin (3 s to go), then the late connection is accepted,
# then SIGTERM; the late request is sent once /readyz says draining. The gateway gives a
# connection without a request 1 s from its accept (conn.c), so the late request must come within
# that second: only polls lie between its accept and its send.
curl -s -o "$T/slow.out" -w '%{http_code}' --max-time 15 "$G/slow" >"$T/slow.code" &
cpid=$!
slow_in_flight() { [ "$(curl -s --max-time 5 "http://127.0.0.1:$mport/_mock/stats" | jq -r .inflight)" -ge 1 ]; }
wait_until 10 "the slow request at the origin" slow_in_flight
accepted() { curl -s --max-time 5 "http://127.0.0.1:$aport/stats" | jq -r .connections.accepted; }
acc0=$(accepted)
# a connection accepted just before the drain, whose request comes after the drain began
python3 - "$gport" "$T/late.connected" "$T/late.go" >"$T/late.out" <<'PY' &
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
open(sys.argv[2], "w").close()
deadline = time.time() + 20
while not os.path.exists(sys.argv[3]) and time.time() < deadline:
    time.sleep(0.01)
try:
    s.sendall(b"GET /item.json HTTP/1.1\r\nHost: a\r\n\r\n")
    s.settimeout(5)
    d = s.recv(65536)
    print(d.split(b"\r\n")[0].decode() if d else "closed")
except OSError as e:
    print("error", e)
PY
lpid=$!
late_accepted() { [ -e "$T/late.connected" ] && [ "$(accepted)" -ge $((acc0 + 1)) ]; }
wait_until 10 "the gateway accepted the late connection" late_accepted
kill -TERM "$gw_pid"
draining() { [ "$(http_status "http://127.0.0.1:$aport/readyz")" = 503 ]; }
wait_until 10 "/readyz says draining" draining
touch "$T/late.go"
wait "$cpid" || true
wait "$lpid" || true
assert_eq "$(cat "$T/slow.code")" 200 "in-flight request during drain"
assert_eq "$(cat "$T/late.out")" "HTTP/1.1 200 OK" "a connection accepted before the drain is still served"
rc=0
for _ in $(seq 1 100); do
    kill -0 "$gw_pid" 2>/dev/null || break
    sleep 0.1
done
wait "$gw_pid" || rc=$?
assert_eq "$rc" 0 "gateway exit status after drain"
log "ok"
