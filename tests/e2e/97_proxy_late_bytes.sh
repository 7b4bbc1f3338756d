#!/usr/bin/env bash
# A misbehaving origin that sends bytes after a complete response (a body after HEAD/204/304,
# bytes beyond Content-Length or the last chunk) 1, 5 and 20 ms late: those bytes must never be
# read as the answer to the next request on that pooled connection, nor get cached. The modes are
# data: tests/security/origins/late_bytes.tsv (each late payload is a whole response "POISON").
# Every trigger request is followed at once, on the same client connection, by a check request
# to a cached route; each check answer (and its cached copy, read again) must be its own.
# nginx and HAProxy hand the late bytes to the next request (30 of 150 answers poisoned).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl

read -r oport gport aport <<<"$(free_ports 3)"
MODES=$AG_SRC/tests/security/origins/late_bytes.tsv
[ -f "$MODES" ] || fail "missing $MODES"

start_tcp_server origin "$oport" "$MODES" <<'EOF'
import socket, sys, time
MODES = {}
for line in open(sys.argv[2], encoding="utf-8"):
    if line.startswith("#") or not line.strip():
        continue
    name, method, res, late = line.rstrip("\n").split("\t")
    dec = lambda s: s.encode().decode("unicode_escape").encode("latin-1")
    MODES[name] = (dec(res), dec(late))
def answer(c, head, _):
    path = request_line(head)[1].decode()
    parts = path.strip("/").split("/")
    if parts[0] == "m":  # /m/MODE/DELAY_MS/N
        res, late = MODES[parts[1]]
        c.sendall(res)
        time.sleep(int(parts[2]) / 1000.0)
        c.sendall(late)
    else:
        body = ("own:" + path).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
def serve(c):
    each_request(c, answer)
EOF

start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  evil:
    servers: [127.0.0.1:$oport]
routes:
  - match: /c/
    upstream: evil
    cache: {}
  - match: /
    upstream: evil
YAML

cat >"$T/client.py" <<'EOF'
import http.client, sys, time
port = int(sys.argv[1])
only = sys.argv[3:]
modes = [l.split("\t")[:2] for l in open(sys.argv[2], encoding="utf-8")
         if l.strip() and not l.startswith("#")]
modes = [m for m in modes if not only or m[0] in only]
poisoned = errors = answers = 0
for name, method in modes:
    for delay in (1, 5, 20):
        for i in range(5):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request(method, "/m/%s/%d/%d" % (name, delay, i))
                c.getresponse().read()
                for n in range(2):  # the check, then its copy from the cache
                    path = "/c/%s/%d/%d" % (name, delay, i)
                    c.request("GET", path)
                    r = c.getresponse()
                    body = r.read().decode("latin-1")
                    answers += 1
                    if r.status == 200 and body != "own:" + path:
                        poisoned += 1
                        print("POISONED %s %d ms try %d: %r" % (name, delay, i, body))
                    elif r.status != 200:
                        errors += 1
                        print("ERROR %s %d ms try %d: %d" % (name, delay, i, r.status))
            except (OSError, http.client.HTTPException) as e:
                errors += 1
                print("ERROR %s %d ms try %d: %r" % (name, delay, i, e))
            finally:
                c.close()
        time.sleep(0.03)  # the last late bytes land before the next mode
print("answers %d poisoned %d errors %d" % (answers, poisoned, errors))
EOF
log "each mode at 1, 5, 20 ms, 5 tries each: trigger, then a check request at once"
python3 "$T/client.py" "$gport" "$MODES" >"$T/result.txt"
cat "$T/result.txt" >&2
summary=$(tail -1 "$T/result.txt")
assert_contains "$summary" "answers 180 " "every check was answered"
assert_contains "$summary" " poisoned 0 " "no late byte answered a request or was cached"
assert_contains "$summary" " errors 0" "no check request failed"

m=$(curl -s "http://127.0.0.1:$aport/metrics")
n=$(awk '/^apigate_pool_closed_total\{.*reason="stray_bytes"/ {s += $2} END {print s + 0}' <<<"$m")
assert_range "$n" 1 100000 "stray bytes counted"

# A fresh gateway knows nothing of the origin yet: the first bytes beyond a Content-Length or a
# chunked body that come after the next request was sent can answer it (documented), but never
# one that may be cached: a cached route's GET takes a connection idle pool.settle, or a new one.
log "bytes beyond a body, against a gateway that has seen no stray bytes: cached checks unharmed"
read -r g2 a2 <<<"$(free_ports 2)"
start_gateway gw2 "$g2" "$a2" <<YAML
listen: 127.0.0.1:$g2
admin: 127.0.0.1:$a2
workers: {threads: 1}
upstreams:
  evil:
    servers: [127.0.0.1:$oport]
routes:
  - match: /c/
    upstream: evil
    cache: {}
  - match: /
    upstream: evil
YAML
python3 "$T/client.py" "$g2" "$MODES" beyond_length beyond_chunked >"$T/fresh.txt"
cat "$T/fresh.txt" >&2
summary=$(tail -1 "$T/fresh.txt")
assert_contains "$summary" "answers 60 " "every check was answered"
assert_contains "$summary" " poisoned 0 " "no late byte answered a cached request or was cached"
log "ok"
