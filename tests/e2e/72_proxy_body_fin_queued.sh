#!/usr/bin/env bash
# A request whose body came whole, followed by the client's FIN (a half-close: it still reads),
# while the request waits for a pooled upstream connection: it is forwarded and answered (the
# connection was closed without an answer, as if the client had left mid-body: the security
# corpus hit it once the pool opened more connections). A body cut short by the FIN is still a
# close, at once, not a hang.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl

read -r oport gport aport <<<"$(free_ports 3)"
start_tcp_server origin "$oport" <<'EOF'
import time
def answer(c, head, buf):
    if b"chunked" in head.lower():
        _, buf = read_chunked(c, buf)
    if b"/slow" in head:
        time.sleep(0.6)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return buf
def serve(c):
    each_request(c, answer)
EOF
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  o: {servers: [127.0.0.1:$oport], pool: {max_connections: 1}}
routes:
  - {match: /, upstream: o}
YAML

# the only pooled connection is busy with /slow for 0.6 s; meanwhile BODY then a FIN
send_queued() {
    python3 - "$gport" "$1" <<'EOF'
import socket, sys, threading, time, urllib.request
port = int(sys.argv[1])
t = threading.Thread(target=lambda: urllib.request.urlopen("http://127.0.0.1:%d/slow" % port).read())
t.start()
time.sleep(0.1)
s = socket.create_connection(("127.0.0.1", port), timeout=4)
t0 = time.time()
s.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + sys.argv[2].encode().decode("unicode_escape").encode())
time.sleep(0.05)
s.shutdown(socket.SHUT_WR)
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
except socket.timeout:
    out += b"(timeout)"
print((out.split(b"\r\n")[0] or b"(closed)").decode(), "%.1f" % (time.time() - t0))
t.join()
EOF
}
log "whole body, then FIN, while queued: answered"
out=$(send_queued '5\r\nhello\r\n0\r\n\r\n')
log "$out"
assert_contains "$out" "HTTP/1.1 200" "the queued request with its whole body is answered"

log "body cut short by the FIN while queued: closed, not left hanging"
out=$(send_queued '5\r\nhel')
log "$out"
assert_not_contains "$out" "timeout" "closed"
assert_range "${out##* }" 0 2 "closed within the wait for the connection"
assert_eq "$(http_body "http://127.0.0.1:$gport/ok")" ok "served after"
log "ok"
