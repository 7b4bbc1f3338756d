#!/usr/bin/env bash
# HTTP/2 bounds and checks (docs/http2.md), each with a raw-socket client so the bytes are exactly
# the attack's: the request head checks of the field-by-field builder (a Host that differs from
# :authority, a Content-Length promising a body on a request that ends with its head) answered
# 400 on their stream; response trailers of a chunked origin forwarded as a HEADERS frame (the
# fields that must not be trailers dropped, as over HTTP/1.1); a client that never opens its
# flow-control window gets GOAWAY ENHANCE_YOUR_CALM after server.send_timeout; an idle session is
# closed after server.keepalive_timeout; a request body that never comes gets 408 after
# server.client_body_timeout; an HPACK bomb, a SETTINGS frame of 40 entries, a
# CONTINUATION flood, a PING flood and streams over SETTINGS_MAX_CONCURRENT_STREAMS are bounded; each is counted in /metrics
# (apigate_http2_refused_total{reason}, apigate_http2_timeouts_total{kind}) and the gateway
# still serves afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 nghttp

read -r mport gport aport tport <<<"$(free_ports 4)"
start_mock mock "$mport"
# an origin answering chunked with a trailer section (one legal trailer, one that must not be)
start_tcp_server trailers "$tport" <<'PY'
import time
def answer(conn, head, _):
    if head.startswith(b"GET /slow"):
        time.sleep(2)  # holds the stream open
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                 b"Trailer: X-Checksum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n"
                 b"X-Checksum: abc123\r\nContent-Length: 99\r\n\r\n")
def serve(conn):
    each_request(conn, answer)
PY
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
server: {send_timeout: 1s, keepalive_timeout: 2s, client_body_timeout: 1s}
http2: {max_concurrent_streams: 20, max_header_list_size: 16KB}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
  tr: {servers: [127.0.0.1:$tport]}
routes:
  - {match: /trailers, upstream: tr}
  - {match: /slow, upstream: tr}
  - {match: /api/big/, upstream: api}
  - {match: /, upstream: api, cache: {ttl: 60s, override: true}}
YAML
G=http://127.0.0.1:$gport
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
refused() { v=$(metric "apigate_http2_refused_total{reason=\"$1\"}"); echo "${v:-0}"; }
timeouts() { v=$(metric "apigate_http2_timeouts_total{kind=\"$1\"}"); echo "${v:-0}"; }
h2() { curl -sS --http2-prior-knowledge --max-time 10 "$@"; }
# waits (bounded) for a counter to reach a value
wait_metric() { # FUNC ARG MIN WHAT
    local v
    for _ in $(seq 1 100); do v=$($1 "$2"); [ "$v" -ge "$3" ] && return 0; sleep 0.1; done
    fail "$4: counter $1{$2} is $v, want >= $3"
}

cat >"$T/h2x.py" <<'PY'
import socket, struct, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
def frame(t, f, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, f]) + struct.pack(">I", sid) + payload
def lit(name, value):  # literal without indexing, new name (lengths < 127)
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
def hpint(prefix_bits, first, n):  # HPACK integer with a <prefix_bits>-bit prefix
    mx = (1 << prefix_bits) - 1
    if n < mx:
        return bytes([first | n])
    out = bytearray([first | mx]); n -= mx
    while n >= 128:
        out.append((n % 128) + 128); n //= 128
    out.append(n)
    return bytes(out)
auth = ("127.0.0.1:%d" % port).encode()
def req(path, extra=b""):
    # :method GET (2), :scheme http (6), :path and :authority literal without indexing
    return b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(auth)]) + auth + extra
s = socket.create_connection(("127.0.0.1", port), timeout=15)
settings = b""
if mode == "stall":  # SETTINGS_INITIAL_WINDOW_SIZE 0: no DATA may come, and no WINDOW_UPDATE ever
    settings = struct.pack(">HI", 4, 0)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, settings))
out = b""
if mode == "hostdiff":
    out = frame(1, 0x5, 1, req(b"/api/users/1", lit(b"host", b"other.example")))
elif mode == "clnobody":
    out = frame(1, 0x5, 1, req(b"/api/users/1", lit(b"content-length", b"5")))
elif mode == "stall":
    out = frame(1, 0x5, 1, req(b"/api/big/1"))
elif mode == "bodystall":  # PUT with content-length: 10, then no DATA ever
    path = b"/api/users/1"
    block = b"\x02\x03PUT\x86\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(auth)]) + auth
    out = frame(1, 0x4, 1, block + lit(b"content-length", b"10"))
elif mode == "bomb":  # one 3000-byte entry in the dynamic table, then 40 one-byte references to it
    name, val = b"x-bomb", b"b" * 3000
    block = req(b"/api/users/1") + b"\x40" + bytes([len(name)]) + name + hpint(7, 0, len(val)) + val
    block += b"\xbe" * 40
    out = frame(1, 0x5, 1, block)
elif mode == "settings":  # 40 entries in one SETTINGS frame
    out = frame(4, 0, 0, struct.pack(">HI", 3, 100) * 40)
elif mode == "continuation":  # a header block in a HEADERS frame and 100 empty CONTINUATIONs
    out = frame(1, 0x1, 1, req(b"/api/users/1")) + b"".join(frame(9, 0, 1) for _ in range(100))
elif mode == "streams":  # 30 streams at once on a connection that allows 20
    out = b"".join(frame(1, 0x5, 2 * i + 1, req(b"/slow")) for i in range(30))
elif mode == "ping":  # 3000 PINGs sent at once, none of the answers read until the end
    out = b"".join(frame(6, 0, 0, struct.pack(">Q", i)) for i in range(3000))
try:
    s.sendall(out)
except OSError:
    pass
buf, start = b"", time.time()
res = []
while time.time() - start < 12:
    try:
        d = s.recv(65536)
    except (socket.timeout, ConnectionResetError):
        break
    if not d:
        res.append("closed")
        break
    buf += d
    while len(buf) >= 9:
        ln = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + ln:
            break
        t, fl, sid, payload = buf[3], buf[4], int.from_bytes(buf[5:9], "big"), buf[9:9 + ln]
        buf = buf[9 + ln:]
        if t == 1 and sid == 1:
            # :status 400 is entry 12 of the static table (0x8c), 200 is entry 8 (0x88)
            st = {0x8c: "status-400", 0x88: "status-200"}.get(payload[0], "status-other")
            if payload[:2] == b"\x48\x03":  # a literal :status (408: Huffman would not be shorter)
                st = "status-" + payload[2:5].decode()
            res.append(st)
        elif t == 0 and sid == 1:
            res.append("data")
        elif t == 3 and sid == 1:
            res.append("rst=%d" % struct.unpack(">I", payload[:4])[0])
        elif t == 3 and mode == "streams":
            res.append("rst=%d" % struct.unpack(">I", payload[:4])[0])
        elif t == 7:
            res.append("goaway=%d" % struct.unpack(">I", payload[4:8])[0])
    if mode == "streams" and res.count("rst=7") >= 10:
        time.sleep(0.3)  # (more refusals than 10 would be read here and fail the count)
        s.settimeout(0.3)
        try:
            buf += s.recv(65536)
        except OSError:
            pass
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            ln = int.from_bytes(buf[:3], "big")
            if buf[3] == 3 and struct.unpack(">I", buf[9:13])[0] == 7:
                res.append("rst=7")
            buf = buf[9 + ln:]
        break
    if mode in ("hostdiff", "clnobody", "bomb", "bodystall") and any(r.startswith(("status", "rst")) for r in res):
        break
print(" ".join(res))
PY
raw() { timeout 20 python3 "$T/h2x.py" "$gport" "$@"; }

log "request head checks: Host other than :authority, Content-Length on a request without body"
assert_contains "$(raw hostdiff)" "status-400" "a Host that differs from :authority"
# nghttp2 resets this one itself (PROTOCOL_ERROR) before the head reaches the gateway's checks
out=$(raw clnobody)
[[ "$out" == *status-400* || "$out" == *rst=1* ]] || fail "content-length: 5 with END_STREAM: $out"
assert_eq "$(h2 -o /dev/null -w '%{http_code}' -H 'Host: 127.0.0.1' "$G/api/users/1")" 200 \
    "a Host equal to :authority is fine"

log "trailers of a chunked origin go out as a HEADERS frame after the DATA (as over HTTP/1.1)"
out=$(timeout 10 nghttp -v "$G/trailers" 2>&1) || fail "nghttp trailers: $out"
assert_eq "$(timeout 10 nghttp "$G/trailers")" "hello world" "the body"
assert_contains "$out" "x-checksum: abc123" "the trailer field"
assert_not_contains "$out" "content-length: 99" "a Content-Length trailer is dropped"
# the trailer comes in a HEADERS frame that ends the stream, after the DATA
tail_frames=$(grep -E 'recv (DATA|HEADERS) frame' <<<"$out" | tail -2 | awk '{print $4}' | tr '\n' ' ')
assert_eq "$tail_frames" "DATA HEADERS " "DATA then the trailers' HEADERS"
h1=$(curl -sS --raw "http://127.0.0.1:$gport/trailers")
assert_contains "$h1" "X-Checksum: abc123" "the same trailer over HTTP/1.1"

log "a window the client never opens: GOAWAY ENHANCE_YOUR_CALM after send_timeout (1s)"
w0=$(timeouts flow_control)
out=$(raw stall)
assert_contains "$out" "goaway=11" "GOAWAY ENHANCE_YOUR_CALM for a shut window"
assert_not_contains "$out" "data" "no DATA went through a zero window"
wait_metric timeouts flow_control $((w0 + 1)) "flow-control stall counted"

log "a request body that never comes: 408 after client_body_timeout (1s), as over HTTP/1.1"
r0=$(timeouts body)
out=$(raw bodystall)
assert_contains "$out" "status-408" "408 for a body that stopped"
wait_metric timeouts body $((r0 + 1)) "body timeout counted"

log "an idle session (no stream) closes after keepalive_timeout (2s)"
i0=$(timeouts idle)
out=$(raw idle)
assert_contains "$out" "closed" "idle session closed"
wait_metric timeouts idle $((i0 + 1)) "idle close counted"

log "HPACK bomb: 3 KB entry referenced 40 times (120 KB decoded) -> stream reset, counted"
b0=$(refused header_limit)
out=$(raw bomb)
assert_not_contains "$out" "status-200" "the bomb is not served"
wait_metric refused header_limit $((b0 + 1)) "HPACK bomb counted"

log "SETTINGS flood (40 entries in one frame), CONTINUATION flood (100 frames), PING flood (3000)"
s0=$(refused settings_flood)
raw settings >/dev/null || true
wait_metric refused settings_flood $((s0 + 1)) "SETTINGS flood counted"
c0=$(refused continuation_flood)
out=$(raw continuation)
assert_not_contains "$out" "status-200" "the CONTINUATION flood is not served"
wait_metric refused continuation_flood $((c0 + 1)) "CONTINUATION flood counted"
p0=$(refused control_flood)
raw ping >/dev/null || true
wait_metric refused control_flood $((p0 + 1)) "PING flood counted"

log "SETTINGS_MAX_CONCURRENT_STREAMS (http2.max_concurrent_streams: 20): 30 at once, 10 refused"
m0=$(refused max_streams)
out=$(raw streams)
n=$(grep -o 'rst=7' <<<"$out" | wc -l)
assert_eq "$n" 10 "streams over the limit reset with REFUSED_STREAM (7)"
wait_metric refused max_streams $((m0 + 10)) "refused streams counted"

log "the gateway still serves over HTTP/2"
assert_eq "$(h2 -o /dev/null -w '%{http_version} %{http_code}' "$G/api/users/2")" "2 200" "h2 after it all"
kill -0 "$(cat "$T/gw.pid")" || fail "gateway died"
log "ok"
