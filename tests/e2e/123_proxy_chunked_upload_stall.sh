#!/usr/bin/env bash
# Issue #12: a request body re-framed for the upstream (chunked from the client over HTTP/1.1, or
# an HTTP/2 request without content-length, which the gateway sends chunked) stalled when the
# upstream had blocked and then took the whole 256 KB of re-framed output in one write: the pump
# stopped with body bytes already read from the client and nothing left to wake it (HTTP/1.1:
# 408 "request body not received in time" at client_body_timeout, seen in e2e/13 under load;
# HTTP/2: the stream's window stayed shut and the upload hung). The origin here holds its reads
# for 0.4 s after each request head, so the gateway's upstream writes stall with the client's
# bytes piling up, then reads as fast as it can. Before the fix every HTTP/2 upload without
# content-length hung (10 of 10 tries) and about one HTTP/1.1 upload in five got the 408; the
# unit test test_req/test_chunked_body_stall drives the same state step by step. Content-Length
# bodies go through the same origin as a check of the other framing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl

read -r oport gport aport <<<"$(free_ports 3)"
start_tcp_server origin "$oport" 0.4 <<'EOF'
import sys, time
HOLD = float(sys.argv[2])
def answer(c, head, buf):
    time.sleep(HOLD)  # read nothing: the gateway's writes stall
    cl = header(head, b"content-length")
    if cl is not None:
        got, buf = read_exact(c, buf, int(cl))
    else:  # chunked, as the gateway frames it (no extensions, no trailers)
        got, buf = read_chunked(c, buf)
    body = str(len(got)).encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return buf
def serve(c):
    each_request(c, answer)
EOF
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
server: {client_body_timeout: 10s, max_body_size: 64MB}
upstreams:
  api: {servers: [127.0.0.1:$oport]}
routes:
  - match: /
    upstream: api
YAML
G=http://127.0.0.1:$gport
SIZE=8000000

# HTTP/1.1, chunked: a raw client that sends the whole body (1000-byte chunks) at once, so the
# gateway's reads take as much as its buffer's room
h1_chunked() {
    python3 - "$gport" "$SIZE" <<'PY'
import socket, sys
port, total = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
body = (b"3e8\r\n" + b"b" * 1000 + b"\r\n") * (total // 1000) + b"0\r\n\r\n"
s.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
s.settimeout(30)
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
        if b"\r\n\r\n" in out:
            h, b = out.split(b"\r\n\r\n", 1)
            cl = [l for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if cl and len(b) >= int(cl[0].split(b":")[1]):
                break
except socket.timeout:
    pass
# "<status> <body>": the body is the origin's count of body bytes (or the gateway's error)
head, _, resp = out.partition(b"\r\n\r\n")
status = head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "000"
print(status, resp.decode(errors="replace")[:120])
PY
}
head -c "$SIZE" /dev/zero | tr '\0' 'b' >"$T/up.bin"
h2() {
    curl -sS --http2-prior-knowledge --max-time 20 -o "$T/h2.out" \
        -w '%{http_version} %{http_code}' "$@"
}

for i in 1 2 3; do
    log "HTTP/1.1 chunked upload $i"
    assert_eq "$(h1_chunked)" "200 $SIZE" "HTTP/1.1 chunked upload $i: every byte forwarded"
done
log "HTTP/1.1 Content-Length upload"
assert_eq "$(curl -sS --max-time 20 --data-binary @"$T/up.bin" -w ' %{http_code}' "$G/up")" \
    "$SIZE 200" "HTTP/1.1 Content-Length upload"
for i in 1 2 3; do
    log "HTTP/2 upload without content-length $i (sent chunked upstream)"
    assert_eq "$(h2 -T - "$G/up" <"$T/up.bin") $(cat "$T/h2.out" 2>/dev/null)" "2 200 $SIZE" \
        "HTTP/2 upload without content-length $i"
done
log "HTTP/2 upload with content-length"
assert_eq "$(h2 --data-binary @"$T/up.bin" "$G/up") $(cat "$T/h2.out")" "2 200 $SIZE" \
    "HTTP/2 upload with content-length"
log "ok"
