#!/usr/bin/env bash
# A malicious or broken origin behind `apigate serve`: bad status lines, negative/huge/duplicate
# Content-Length, header bombs, 1xx floods, premature closes answer 502 (or the honest close when
# the head already went out) and the gateway keeps serving; invalid chunked framing right after
# the head closes the client connection at once instead of leaving it hanging (regression: the
# head stayed unwritten in the output buffer and the connection waited forever).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

oport=$(free_port)
gport=$(free_port)
aport=$(free_port)

start_tcp_server origin "$oport" <<'EOF'
import socket, time
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
R = {
    "badstatus": b"HTTP/1.1 abc Nope\r\nContent-Length: 0\r\n\r\n",
    "garbage": b"\x00\xff\xfe garbage\r\n\r\n",
    "negcl": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
    "hugecl": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
    "twocl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    "clte": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "headerbomb": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 100) for i in range(5000)) + OK[17:],
    "longhdr": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200000 + b"\r\n" + OK[17:],
    "headonly": b"HTTP/1.1 200 OK\r\nContent-Le",
    "nothing": b"",
    "switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nraw",
    "flood1xx": b"HTTP/1.1 100 Continue\r\n\r\n" * 20000 + OK,
    "premature": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello",
    "badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "hugechunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nhello\r\n",
    "chunkext": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;" + b"e" * 100000 + b"\r\nok\r\n0\r\n\r\n",
    "status600": b"HTTP/1.1 600 Custom\r\nContent-Length: 2\r\n\r\nok",
    "status999": b"HTTP/1.1 999 Custom\r\nContent-Length: 2\r\n\r\nok",
    "manyhdrs": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + OK[17:],
    "trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                b"Content-Length: 99\r\nX-Sum: 1\r\nHost: evil\r\nTransfer-Encoding: chunked\r\n\r\n",
}
def serve(c):
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(65536)
            if not d:
                return
            head += d
        key = head.split(b" ")[1].decode().strip("/")
        if key == "cut":
            # the head, then the last bytes and the FIN together: one edge for both, so the
            # gateway must read on to the EOF after a short read (it once waited for the total
            # timeout with the client hanging)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            time.sleep(0.3)
            c.sendall(b"hello")
            c.shutdown(socket.SHUT_WR)
        else:
            c.sendall(R.get(key, OK))
        time.sleep(0.2)  # the gateway judges the bytes, not an early close
    except OSError:
        pass
    finally:
        c.close()
EOF
cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  evil:
    servers: [127.0.0.1:$oport]
routes:
  - match: /
    upstream: evil
EOF
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
wait_port "$gport"
wait_port "$aport"
G=http://127.0.0.1:$gport

log "a bad response head is a 502, and the next request is served"
for k in badstatus garbage negcl hugecl twocl clte headerbomb longhdr headonly nothing switch \
    status600 status999; do
    assert_eq "$(http_status "$G/$k")" 502 "$k"
    assert_eq "$(http_body "$G/ok")" ok "served after $k"
done
assert_eq "$(http_body "$G/flood1xx")" ok "1xx interim responses dropped"
log "150 response header fields pass (server.max_response_headers 256; a 502 at 100 before)"
assert_eq "$(http_body "$G/manyhdrs")" ok "150 response headers"

log "trailers: framing, Host and the like are dropped, the others pass"
out=$(printf 'GET /trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | raw_http "$gport" 3)
assert_contains "$out" "X-Sum: 1" "an ordinary trailer passes"
assert_not_contains "$out" "Content-Length: 99" "no Content-Length trailer"
assert_not_contains "$out" "Host: evil" "no Host trailer"
assert_eq "$(grep -ci '^transfer-encoding' <<<"$out")" 1 "Transfer-Encoding only in the head"

log "a body that breaks after the head: the client connection closes at once"
for k in premature cut badchunk hugechunk chunkext; do
    rc=0
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 "$G/$k") || rc=$?
    assert_eq "$rc" 18 "$k: curl sees a truncated body (28 = the gateway left it hanging)"
    assert_eq "${out% *}" 200 "$k: status of the head that went out"
    assert_eq "$(http_body "$G/ok")" ok "served after $k"
done

m=$(curl -s "http://127.0.0.1:$aport/metrics")
assert_contains "$m" 'apigate_worker_restarts_total 0' "no worker crashed"
n=$(awk '/^apigate_upstream_errors_total\{route="\/",reason="protocol"\}/ {print $2}' <<<"$m")
assert_range "${n:-0}" 16 100 "protocol errors counted"
log "ok"
