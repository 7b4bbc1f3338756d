#!/usr/bin/env bash
# A chunk size beyond the body limit is refused at once, from its digits: a request chunk of 2^63
# bytes gets 400 and one over server.max_body_size 413, without waiting for data that will never
# come (the gateway streamed a 2^63 chunk until the body limit or the body timeout); a response
# chunk of 2^63 bytes closes the client connection at once (502 when nothing went out yet) instead
# of streaming it. nginx and HAProxy answer 400 to the 2^63 request.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

read -r oport gport aport <<<"$(free_ports 3)"
start_tcp_server origin "$oport" <<'EOF'
import socket, time
def serve(c):
    try:
        head, _ = read_head(c)
        if head is None:
            return
        if head.startswith(b"POST"):  # never answers before the whole body
            while c.recv(65536):
                pass
            return
        if b" /huge " in head:  # the head, a 2^63 chunk size and a few bytes, then silence
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\nhello")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(5)
    except OSError:
        pass
    finally:
        c.close()
EOF
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
server: {max_body_size: 1MB, client_body_timeout: 10s}
upstreams:
  o: {servers: [127.0.0.1:$oport]}
routes:
  - {match: /, upstream: o}
YAML

# status line and seconds for a raw request whose body never comes in full
raw() {
    python3 - "$gport" "$1" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=8)
t0 = time.time()
s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + sys.argv[2].encode() + b"\r\nabc")
out = b""
try:
    while b"\r\n" not in out:
        d = s.recv(4096)
        if not d:
            break
        out += d
except socket.timeout:
    pass
print(out.split(b"\r\n")[0].decode(errors="replace"), "%.1f" % (time.time() - t0))
EOF
}

log "request chunk of 2^63: 400 at once"
out=$(raw 8000000000000000)
log "$out"
assert_contains "$out" "HTTP/1.1 400" "2^63 request chunk"
assert_range "${out##* }" 0 1.5 "answered at once"

log "request chunk over max_body_size (2 MB against 1 MB): 413 at once"
out=$(raw 200000)
log "$out"
assert_contains "$out" "HTTP/1.1 413" "chunk over the body limit"
assert_range "${out##* }" 0 1.5 "answered at once"

log "response chunk of 2^63: the client connection closes at once"
rc=0
res=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 4 "http://127.0.0.1:$gport/huge") || rc=$?
log "curl rc $rc: $res"
assert_eq "$rc" 18 "curl sees a truncated body (28: the gateway streamed the chunk until the origin went quiet)"
assert_range "${res#* }" 0 1.5 "closed at once"
assert_eq "$(http_body "http://127.0.0.1:$gport/ok")" ok "served after"
log "ok"
