#!/usr/bin/env bash
# HTTP/2 downstream (docs/http2.md) with real clients: curl --http2-prior-knowledge (h2c) for a
# cache MISS then HIT, per-user entries on a vary: [Authorization] route, a POST body, an unrouted
# path, a 1 MB download compared byte for byte, and the access log's
# protocol; nghttp for the protocol itself and a 1 MB download through 4 KB windows; h2load -c4 -m10 -n2000 all 2xx (cache hits) and with
# request bodies; a rapid-reset attack (CVE-2023-44487) from a raw-socket client answered with
# GOAWAY ENHANCE_YOUR_CALM after http2.max_resets, with bounded work, and the gateway still
# serving; GOAWAY on reload (SIGHUP) to a connection opened before it; http2.enabled: false.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 h2load nghttp

read -r mport gport aport wport <<<"$(free_ports 4)"
start_mock mock "$mport"
mkdir -p "$T/www" && head -c 1048576 /dev/urandom >"$T/www/big.bin"
head -c 12000 /dev/urandom >"$T/www/mid.bin"
start_bg www python3 -m http.server "$wport" --bind 127.0.0.1 --directory "$T/www"
wait_port "$wport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2, drain_timeout: 5s}
logging: {access_log: $T/access.log, access_format: json, access_flush: 10ms}
http2: {max_concurrent_streams: 50, max_resets: 100}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
  www: {servers: [127.0.0.1:$wport]}
routes:
  - {match: /big.bin, upstream: www}
  - {match: /mid.bin, upstream: www, cache: {ttl: 60s, override: true}}
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true}
  - match: /api/auth/me
    upstream: api
    cache: {ttl: 5m, override: true, vary: [Authorization]}
  - match: /echo
    upstream: api
  - match: /api/slow/
    upstream: api
YAML
G=http://127.0.0.1:$gport
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
h2() { curl -sS --http2-prior-knowledge --max-time 10 "$@"; }

log "h2c by prior knowledge: MISS then HIT, HTTP/2 on the wire"
assert_eq "$(h2 -o /dev/null -w '%{http_version} %{http_code} %header{x-cache}' "$G/api/users/7")" \
    "2 200 MISS" "first h2c GET"
assert_eq "$(h2 -o /dev/null -w '%{http_version} %{http_code} %header{x-cache}' "$G/api/users/7")" \
    "2 200 HIT" "second h2c GET"
a=$(h2 "$G/api/users/7")
b=$(curl -sS "$G/api/users/7")
assert_eq "$a" "$b" "the same entry over HTTP/2 and HTTP/1.1"

log "per-user entries on a vary: [Authorization] route stay apart over HTTP/2"
for u in alice bob alice bob; do
    out=$(h2 -H "Authorization: Bearer $u" "$G/api/auth/me")
    assert_contains "$out" "\"user\":\"$u\"" "$u gets its own entry"
done
assert_eq "$(h2 -o /dev/null -w '%header{x-cache}' -H 'Authorization: Bearer alice' "$G/api/auth/me")" \
    HIT "alice's entry is a hit"

log "POST body forwarded, unrouted path 404, cookies joined"
out=$(h2 --data 'hello=world' "$G/echo")
assert_contains "$out" '"body":"hello=world"' "POST body seen by the origin"
out=$(h2 -H 'Cookie: a=1' -H 'Cookie: b=2' "$G/echo")
assert_contains "$out" '"cookie":"a=1; b=2"' "cookie fields joined for HTTP/1.1"
assert_eq "$(h2 -o /dev/null -w '%{http_version} %{http_code}' "$G/not/routed")" "2 404" "unrouted path"
# answered before the body is read (unrouted): the 404 arrives, then RST_STREAM NO_ERROR
assert_eq "$(h2 -o /dev/null -w '%{http_version} %{http_code}' --data-binary @"$T/www/big.bin" \
    "$G/not/routed")" "2 404" "an early answer to a 1 MB upload"
# a body without Content-Length (chunked towards the origin)
out=$(printf 'streamed-body' | h2 -H 'Content-Length:' -H 'Transfer-Encoding:' --data-binary @- "$G/echo")
assert_contains "$out" '"body":"streamed-body"' "a body without length"

log "nghttp: the protocol (SETTINGS, one stream, status)"
out=$(timeout 10 nghttp -nv "$G/api/users/7" 2>&1) || fail "nghttp: $out"
assert_contains "$out" "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):50]" "max_concurrent_streams advertised"
assert_contains "$out" "[SETTINGS_MAX_HEADER_LIST_SIZE(0x06):32768]" "max_header_list_size advertised"
assert_contains "$out" ':status: 200' "nghttp got 200"
assert_contains "$out" "[SETTINGS_NO_RFC7540_PRIORITIES(0x09):1]" \
    "no RFC 7540 priority tree (RFC 9218 scheduling)"

log "flow control: a 1 MB download through 4 KB stream windows (nghttp fails on a window overrun)"
timeout 20 nghttp -w 12 -W 16 "$G/big.bin" >"$T/big.got" || fail "h2 download with small windows"
cmp -s "$T/www/big.bin" "$T/big.got" || fail "1 MB download over HTTP/2 differs"
h2 -o "$T/big2.got" "$G/big.bin" || fail "h2 download"
cmp -s "$T/www/big.bin" "$T/big2.got" || fail "1 MB download over HTTP/2 (curl) differs"

log "50 cache hits of 12 KB on one connection with a 1 MB window: whole, in order of their streams"
# Each hit's body is its stream's last DATA frame, written straight into the session's output
# (h2s__send_data); 50 of them at once (http2.max_concurrent_streams) pass the output's 64 KB bound, so most wait their turn.
h2 -o "$T/mid.got" "$G/mid.bin" || fail "mid.bin (the cache fill)"
cmp -s "$T/www/mid.bin" "$T/mid.got" || fail "mid.bin miss differs"
timeout 20 nghttp -W 20 -m 50 "$G/mid.bin" >"$T/mid50.got" || fail "nghttp -m 50 mid.bin"
for _ in $(seq 1 50); do cat "$T/www/mid.bin"; done >"$T/mid50.want"
cmp -s "$T/mid50.want" "$T/mid50.got" || fail "50 concurrent 12 KB cache hits over h2 differ"

log "h2load -c4 -m10 -n2000: all 2xx (cache hits), then with bodies (origin)"
out=$(timeout 60 h2load -c4 -m10 -n2000 "$G/api/users/7" 2>&1) || fail "h2load: $out"
assert_contains "$out" "2000 succeeded, 0 failed" "h2load cache hits"
assert_contains "$out" "status codes: 2000 2xx" "h2load cache hits all 2xx"
head -c 20000 /dev/urandom | base64 >"$T/post.txt"
out=$(timeout 60 h2load -c4 -m10 -n400 -d "$T/post.txt" "$G/echo" 2>&1) || fail "h2load POST: $out"
assert_contains "$out" "status codes: 400 2xx" "h2load POST bodies all 2xx"

log "access log: protocol HTTP/2.0"
sleep 0.3
grep -q '"protocol":"HTTP/2.0"' "$T/access.log" || fail "no HTTP/2 line in the access log"
n=$(grep -F '"path":"/api/users/7"' "$T/access.log" | grep -cF '"protocol":"HTTP/2.0"' || true)
assert_range "$n" 2000 2100 "h2c requests logged as HTTP/2"
n=$(grep -F '"path":"/api/users/7"' "$T/access.log" | grep -cF '"bytes":1' || true)
assert_range "$n" 2000 2100 "h2c cache hits logged with their body bytes"

# A raw HTTP/2 client: no hpack module needed, the header blocks are built from the static table.
cat >"$T/h2raw.py" <<'PY'
import socket, struct, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
def frame(t, f, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, f]) + struct.pack(">I", sid) + payload
def headers_block(path, auth):
    # :method GET (2), :scheme http (6), :path (4) and :authority (1) literal without indexing
    return b"\x82\x86" + b"\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(auth)]) + auth
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
buf = b""
auth = ("127.0.0.1:%d" % port).encode()
if mode == "reset":
    n = int(sys.argv[3])
    out = bytearray()
    for i in range(n):
        sid = 2 * i + 1
        out += frame(1, 0x5, sid, headers_block(b"/echo", auth))   # HEADERS END_STREAM|END_HEADERS
        out += frame(3, 0, sid, struct.pack(">I", 8))               # RST_STREAM CANCEL
    try:
        s.sendall(bytes(out))
    except OSError:
        pass  # the gateway stopped reading: expected once it said GOAWAY
elif mode == "connect":  # CONNECT: :method literal, :authority only (no :path)
    block = b"\x02\x07CONNECT" + b"\x01" + bytes([len(auth)]) + auth
    s.sendall(frame(1, 0x4, 1, block))
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        while len(buf) >= 9:
            ln = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + ln:
                break
            t, sid, payload = buf[3], int.from_bytes(buf[5:9], "big"), buf[9:9 + ln]
            buf = buf[9 + ln:]
            if t == 1 and sid == 1:
                # :status 501: a literal with indexing on the name of entry 8 (0x48), the value
                # Huffman-coded in 2 bytes (0x82 0x6c 0x01), as nghttp2 encodes it
                print("status-501" if payload[:4] == b"\x48\x82\x6c\x01" else "status-other %r" % payload[:4])
                sys.exit(0)
    print("no HEADERS")
    sys.exit(1)
else:  # goaway: wait for the gateway to send one (the test reloads it)
    open(sys.argv[3], "w").write("ready\n")
deadline = time.time() + 10
while time.time() < deadline:
    try:
        d = s.recv(65536)
    except (socket.timeout, ConnectionResetError):
        break
    if not d:
        break
    buf += d
    while len(buf) >= 9:
        ln = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + ln:
            break
        t, payload = buf[3], buf[9:9 + ln]
        buf = buf[9 + ln:]
        if t == 7:
            print("GOAWAY last=%d code=%d" % (struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF,
                                             struct.unpack(">I", payload[4:8])[0]))
            sys.exit(0)
print("no GOAWAY")
sys.exit(1)
PY

log "CONNECT (:authority, no :path) is answered 501 as over HTTP/1.1, never routed"
out=$(timeout 10 python3 "$T/h2raw.py" "$gport" connect) || fail "CONNECT: $out"
assert_eq "$out" "status-501" "CONNECT over HTTP/2"

log "rapid reset (CVE-2023-44487): 3000 HEADERS+RST_STREAM pairs -> GOAWAY ENHANCE_YOUR_CALM"
s0=$(metric apigate_http2_streams_total)
out=$(python3 "$T/h2raw.py" "$gport" reset 3000) || fail "rapid reset: $out"
assert_contains "$out" "code=11" "GOAWAY ENHANCE_YOUR_CALM (0xb)"
s1=$(metric apigate_http2_streams_total)
started=$((s1 - s0))
log "streams the attack got started: $started of 3000"
assert_range "$started" 101 800 "streams started before the GOAWAY (max_resets 100, one read)"
c=$(curl -s "http://127.0.0.1:$aport/metrics" | awk '$1 ~ /^apigate_http2_refused_total\{reason="rapid_reset"/ {print $2}')
assert_range "${c:-0}" 1 100 "rapid resets counted"
assert_eq "$(h2 -o /dev/null -w '%{http_code} %header{x-cache}' "$G/api/users/7")" "200 HIT" \
    "the gateway still serves after the attack"

log "GOAWAY on reload: a connection opened before SIGHUP is told to go"
python3 "$T/h2raw.py" "$gport" goaway "$T/ready" >"$T/goaway.out" 2>&1 &
gpid=$!
for _ in $(seq 50); do [ -s "$T/ready" ] && break; sleep 0.1; done
sleep 0.2
kill -HUP "$(cat "$T/gw.pid")"
wait "$gpid" || fail "no GOAWAY after the reload: $(cat "$T/goaway.out")"
assert_contains "$(cat "$T/goaway.out")" "code=0" "GOAWAY NO_ERROR on drain"
sleep 0.5
assert_eq "$(h2 -o /dev/null -w '%{http_version} %{http_code}' "$G/api/users/8")" "2 200" \
    "the new worker speaks HTTP/2"

log "http2.enabled: false: a preface gets the HTTP/1.1 answer (505), curl --http2 falls back"
sed -i 's/^http2: {/http2: {enabled: false, /' "$T/gw.yaml"
kill -HUP "$(cat "$T/gw.pid")"
sleep 1.5
code=$(h2 -o /dev/null -w '%{http_code}' "$G/api/users/7" 2>/dev/null || true)
assert_ne "$code" "200" "no h2c when disabled"
assert_eq "$(curl -sS -o /dev/null -w '%{http_code}' "$G/api/users/7")" 200 "HTTP/1.1 still served"
log "ok"
