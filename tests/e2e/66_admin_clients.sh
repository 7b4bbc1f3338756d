#!/usr/bin/env bash
# Clients of the admin listener that are not curl: one that half-closes after its request, long
# pipelines (over the 8 KB read window, and behind answers the socket could not take at once),
# malformed requests and bodies, and /stats scraped by many clients at once while traffic flows.
# Every request gets its answer, in order; nothing hangs until the idle timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
start_mock mock "$mport"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /echo/
    upstream: api
    cache: {ttl: 5m, override: true}
EOF
A=http://127.0.0.1:$aport

# pipeline PORT N TARGET [DELAY_S]: sends N pipelined GETs at once, starts reading after DELAY_S;
# prints "<answers> <status lines 200> <state>" (state: closed / open when the client gave up
# after 8 s of silence).
pipeline() {
    python3 - "$@" <<'PY'
import socket, sys, time
port, n, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536) # answers soon wait for the socket
req = ("GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % target).encode()
s.sendall(req * (n - 1) + ("GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % target).encode())
time.sleep(delay)
s.settimeout(8)
out, state = b"", "open"
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            state = "closed"
            break
        out += d
except socket.timeout:
    pass
print(out.count(b"HTTP/1.1 "), out.count(b"HTTP/1.1 200 "), state)
PY
}

log "a client that half-closes after its request still gets the answer"
out=$(printf 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n' | RAW_HTTP_SHUT=1 raw_http "$aport" 5)
assert_contains "$out" "HTTP/1.1 200" "half-closed client answered"
assert_contains "$out" '{"status":"ok"}' "half-closed client body"
assert_eq "$(cat "$T/raw_http.state")" closed "closed after the answer"
out=$(printf 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /readyz HTTP/1.1\r\nHost: a\r\n\r\nGET /heal' |
    RAW_HTTP_SHUT=1 raw_http "$aport" 5)
assert_eq "$(grep -c '^HTTP/1.1 ' <<<"$out")" 2 "both complete requests answered before the close"
assert_eq "$(cat "$T/raw_http.state")" closed "half a head then EOF: closed"

log "pipelines: over the 8 KB read window, and behind answers that filled the socket"
assert_eq "$(pipeline "$aport" 500 /healthz)" "500 500 closed" "500 pipelined /healthz (17 KB)"
assert_eq "$(pipeline "$aport" 300 /metrics 1)" "300 300 closed" "300 pipelined /metrics read late"
assert_eq "$(pipeline "$aport" 300 /stats 1)" "300 300 closed" "300 pipelined /stats read late"

log "malformed requests, bodies, unknown methods"
check_raw() { # check_raw STATUS WHAT BYTES: answered STATUS, then closed
    local out
    out=$(printf "$3" | raw_http "$aport" 5)
    assert_contains "$out" "HTTP/1.1 $1" "$2"
    assert_eq "$(cat "$T/raw_http.state")" closed "$2: closed"
}
check_raw 400 "space before colon" 'GET /stats HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n'
check_raw 431 "head over 8 KB" "GET /stats HTTP/1.1\r\nHost: a\r\nX: $(head -c 9000 /dev/zero | tr '\0' a)\r\n\r\n"
check_raw 400 "CL + TE" 'POST /cache/purge?all=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
check_raw 405 "unknown method" 'BREW /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
check_raw 405 "GET on the purge endpoint" 'GET /cache/purge?all=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
# a body is never taken as the next request: answered, then closed
out=$(printf 'POST /cache/purge?key=/echo/a HTTP/1.1\r\nHost: a\r\nContent-Length: 41\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n{"x":' |
    raw_http "$aport" 5)
assert_eq "$(grep -c '^HTTP/1.1 ' <<<"$out")" 1 "purge with a body: one answer"
assert_eq "$(cat "$T/raw_http.state")" closed "purge with a body: closed"
head -c 3000000 /dev/urandom >"$T/big.bin"
assert_eq "$(http_status "$A/cache/purge?all=1" -X POST -H 'Content-Type: application/json' --data-binary @"$T/big.bin")" 200 "purge with a 3 MB body"

log "purge parameters that cannot mean what was asked: 400, nothing purged"
for p in a b c; do curl -s -o /dev/null "http://127.0.0.1:$gport/echo/p/$p"; done
objects() { curl -s "$A/cache/stats" | jq .objects; }
before=$(objects)
[ "$before" -ge 3 ] || fail "entries to purge: $before"
long=$(head -c 3000 /dev/zero | tr '\0' a)
for q in 'prefix=' 'prefix=echo' 'all=0' 'key=/echo/p/a%00zz' 'key=/echo/p/%zz' 'key=/echo/p/%4' \
    "prefix=/echo/p/$long" "key=/echo/p/a$long" 'key=' 'nothing=1'; do
    out=$(curl -s -w ' %{http_code}' -X POST "$A/cache/purge?$q")
    assert_eq "${out##* }" 400 "purge ?$q: $out"
    assert_eq "$(jq -r .error <<<"${out% *}")" bad_request "purge ?$q: error"
done
assert_eq "$(objects)" "$before" "no entry purged by a rejected request"
assert_eq "$(curl -s -X POST "$A/cache/purge?key=/echo/p/a" | jq .purged)" 1 "valid key purge"
assert_eq "$(curl -s -X POST "$A/cache/purge?prefix=%2Fecho%2Fp%2F" | jq .purged)" 2 "encoded prefix purge"
assert_eq "$(curl -s -X POST "$A/cache/purge?all=1" | jq -r .all)" true "purge all"

log "/stats scraped by 16 clients at once while requests flow"
python3 - "$aport" "$gport" >"$T/scrape.out" <<'PY'
import http.client, json, sys, threading
aport, gport = int(sys.argv[1]), int(sys.argv[2])
errors, n = [], [0]
lock = threading.Lock()
def scrape(i):
    c = http.client.HTTPConnection("127.0.0.1", aport, timeout=10)
    for k in range(60):
        path = ["/stats", "/metrics", "/cache/stats", "/upstreams"][(i + k) % 4]
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        try:
            if r.status != 200:
                raise ValueError("status %d" % r.status)
            if path != "/metrics":
                json.loads(body)
        except ValueError as e:
            with lock:
                errors.append("%s: %s" % (path, e))
        with lock:
            n[0] += 1
def traffic():
    c = http.client.HTTPConnection("127.0.0.1", gport, timeout=10)
    for k in range(300):
        c.request("GET", "/echo/t%d" % (k % 20))
        c.getresponse().read()
ts = [threading.Thread(target=scrape, args=(i,)) for i in range(16)] + [threading.Thread(target=traffic)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps({"answers": n[0], "errors": errors[:5]}))
PY
out=$(cat "$T/scrape.out")
assert_eq "$(jq -c .errors <<<"$out")" "[]" "scrapes: $out"
assert_eq "$(jq .answers <<<"$out")" 960 "every scrape answered"
assert_eq "$(curl -s "$A/stats" | jq .worker_restarts)" 0 "no worker crash"
log "ok"
