#!/usr/bin/env bash
# Client-side limits of `apigate serve`: slowloris (408 after client_header_timeout), oversize
# head (431), long URI (414), oversize body (413, Content-Length and chunked), malformed and
# smuggling-style requests (400/501, never forwarded), load shedding (503 + Retry-After + JSON,
# counted), max_connections (accepted then closed, counted).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
m2port=$(free_port)
gport=$(free_port)
aport=$(free_port)

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: ANY, path: /echo, handler: echo}
  - {method: GET, path: /slow, latency: {dist: fixed, ms: 400}}
  - {method: GET, path: /lag, latency: {dist: fixed, ms: 400}}
  - {method: POST, path: /slowpost, latency: {dist: fixed, ms: 1500}}
EOF
# An origin that refuses a body over 100 KB from its head alone: it answers 413 and closes
# without reading the body (the kernel then resets the connection, so the gateway's next write
# fails). `apigate mock` drains the body first, which would not exercise that path.
cat >"$T/refuser.py" <<'EOF'
import socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(16)
while True:
    c, _ = ls.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d:
            break
        head += d
    head, _, body = head.partition(b"\r\n\r\n")
    cl = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            cl = int(v)
    if cl > 100000:
        c.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    else:
        while len(body) < cl:
            d = c.recv(65536)
            if not d:
                break
            body += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    c.close()
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg refuser python3 "$T/refuser.py" "$m2port"
wait_port "$m2port"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
server:
  client_header_timeout: 1s
  client_body_timeout: 1s
  max_head_size: 16KB
  max_body_size: 1MB
  max_connections: 30
  concurrency: 5
upstreams:
  api:
    servers: [127.0.0.1:$mport]
  small:
    servers: [127.0.0.1:$m2port]
routes:
  - match: /small-origin/
    upstream: small
  - match: /slow
    upstream: api
    limit: {concurrency: 2, retry_after: 3s}
  - match: /
    upstream: api
EOF
G=http://127.0.0.1:$gport
metric() { # metric NAME_WITH_LABELS: value summed from /metrics (0 when absent)
    curl -s --max-time 5 "http://127.0.0.1:$aport/metrics" |
        awk -v k="$1" 'index($0, k) == 1 { s += $NF } END { print s + 0 }'
}

log "slowloris: a head that never completes gets 408 and a close"
start=$(date +%s.%N)
out=$(printf 'GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: ' | raw_http "$gport" 5)
elapsed=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { print a - b }')
assert_contains "$out" "HTTP/1.1 408" "slowloris status"
assert_eq "$(cat "$T/raw_http.state")" closed "slowloris connection closed"
assert_range "$elapsed" 0.8 3 "408 after client_header_timeout (s)"
# trickling one byte at a time does not re-arm the timer
out=$(python3 - "$gport" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.2)
req = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: " + b"b" * 100
out = b""
t0 = time.time()
for ch in req:
    try:
        s.send(bytes([ch]))
    except OSError:
        break
    try:
        d = s.recv(4096)
        if not d:
            break
        out += d
    except socket.timeout:
        pass
    except OSError:
        break
    if time.time() - t0 > 4:
        break
print(out.decode(errors="replace").split("\r\n")[0], round(time.time() - t0, 1))
EOF
)
assert_contains "$out" "HTTP/1.1 408" "trickling client gets 408"
assert_range "${out##* }" 0.8 3 "trickle cut off after the header timeout (s)"

log "body timeout: a body that stops arriving gets 408"
start=$(date +%s.%N)
out=$(printf 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc' | raw_http "$gport" 5)
elapsed=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { print a - b }')
assert_contains "$out" "HTTP/1.1 408" "stalled body"
assert_range "$elapsed" 0.8 3 "408 after client_body_timeout (s)"

# a body that completed does not time out while the upstream takes longer than the body timeout
out=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST --data-binary 'abc' "$G/slowpost")
assert_eq "$out" 200 "slow upstream after a complete body"

log "oversize head: 431, long URI: 414, oversize body: 413"
before=$(mock_stat "$mport" total)
assert_eq "$(http_status "$G/echo" -H "X-Big: $(head -c 17000 /dev/zero | tr "\0" a)")" 431 "head over max_head_size"
assert_eq "$(http_status "$G/echo?q=$(head -c 9000 /dev/zero | tr '\0' a)")" 414 "URI over the request line limit"
head -c 2000000 /dev/zero >"$T/big.bin"
assert_eq "$(http_status "$G/echo" --data-binary @"$T/big.bin")" 413 "Content-Length over max_body_size"
assert_eq "$(http_status "$G/echo" -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.bin")" 413 "chunked over max_body_size"
assert_eq "$(http_status "$G/echo" --data-binary @<(head -c 500000 /dev/zero))" 200 "body under the limit passes"

log "an origin that refuses a large body at once (413) and closes: its answer reaches the client"
head -c 900000 /dev/zero >"$T/900k.bin"
for i in 1 2 3; do
    assert_eq "$(http_status "$G/small-origin/echo" --data-binary @"$T/900k.bin" -H 'Expect:')" 413 "early 413 from the origin ($i)"
done
assert_eq "$(http_status "$G/small-origin/echo" -d small)" 200 "small body still passes"

log "malformed and smuggling attempts: 400/501, never reach the upstream"
before=$(mock_stat "$mport" total)
check_raw() { # check_raw EXPECTED_STATUS WHAT BYTES
    local out
    out=$(printf "$3" | raw_http "$gport" 3)
    assert_contains "$out" "HTTP/1.1 $1" "$2"
    assert_eq "$(cat "$T/raw_http.state")" closed "$2: connection closed"
}
check_raw 400 "CL + TE" 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n'
check_raw 400 "duplicate differing CL" 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'
check_raw 501 "TE other than chunked" 'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n'
check_raw 400 "space before colon" 'GET /echo HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n'
check_raw 400 "obs-fold" 'GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n'
check_raw 400 "signed CL" 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc'
check_raw 400 "missing Host" 'GET /echo HTTP/1.1\r\n\r\n'
check_raw 400 "bad chunk size" 'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'
check_raw 505 "HTTP/2.0 request line" 'GET /echo HTTP/2.0\r\nHost: a\r\n\r\n'
assert_eq "$(mock_stat "$mport" total)" "$before" "no malformed request reached the upstream"

log "load shedding: limit.concurrency 2 on /slow, 8 concurrent clients"
pids=()
for i in $(seq 1 8); do
    curl -s -o "$T/shed.$i.body" -D "$T/shed.$i.hdr" -w '%{http_code}\n' --max-time 10 "$G/slow" >"$T/shed.$i.code" &
    pids+=($!)
done
wait "${pids[@]}"
ok=$(cat "$T"/shed.*.code | grep -c '^200$' || true)
shed=$(cat "$T"/shed.*.code | grep -c '^503$' || true)
assert_eq "$((ok + shed))" 8 "every request answered 200 or 503"
assert_range "$ok" 2 2 "admitted requests"
assert_range "$shed" 6 6 "shed requests"
f=$(grep -l '^503$' "$T"/shed.*.code | head -1)
i=${f##*shed.}
i=${i%.code}
assert_contains "$(cat "$T/shed.$i.hdr")" "Retry-After: 3" "Retry-After on the 503"
assert_eq "$(jq -r .error "$T/shed.$i.body")" overloaded "503 JSON body"
assert_eq "$(metric 'apigate_shed_requests_total{route="/slow",reason="route_limit"}')" 6 "shed counted"
assert_eq "$(curl -s "http://127.0.0.1:$aport/stats" | jq .shed)" 6 "shed in /stats"

log "global limit: server.concurrency 5, 8 concurrent clients on a route without its own limit"
pids=()
for i in $(seq 1 8); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "$G/lag" >"$T/glob.$i.code" &
    pids+=($!)
done
wait "${pids[@]}"
assert_eq "$(cat "$T"/glob.*.code | grep -c '^200$')" 5 "admitted under the global limit"
assert_eq "$(cat "$T"/glob.*.code | grep -c '^503$')" 3 "shed by the global limit"
assert_eq "$(metric 'apigate_shed_requests_total{route="",reason="global_limit"}')" 3 "global shed counted"

assert_eq "$(curl -s "http://127.0.0.1:$aport/stats" | jq .worker_restarts)" 0 "no worker crash so far"
log "max_connections 30: the 31st connection is accepted and closed"
out=$(python3 - "$gport" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
time.sleep(0.3)
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(2)
try:
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    d = s.recv(100)
    print("closed" if not d else "answered")
except (ConnectionResetError, BrokenPipeError):
    print("closed")
except socket.timeout:
    print("timeout")
for h in held:
    h.close()
EOF
)
assert_eq "$out" closed "connection over max_connections"
assert_range "$(metric 'apigate_connections_rejected_total')" 1 100 "rejected connections counted"
sleep 0.3
assert_eq "$(http_status "$G/echo")" 200 "serving again once connections closed"
log "ok"
