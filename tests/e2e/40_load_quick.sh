#!/usr/bin/env bash
# apigate load, quick mode (wrk-style): against nginx `return 200`, every response is counted
# (the server's own count agrees), the JSON report holds the same totals, a mergeable histogram and
# a per-second series; -H, -m and --body reach the server (checked on the mock's echo route);
# chunked bodies are framed correctly; the progress goes to stderr, the report to stdout; and
# memory stays flat over a run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd nginx jq curl

port=$(free_port)
nginx_conf "$T/ngx" <<CONF
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    access_log $T/ngx/access.log;
    location / { return 200 "ok"; }
    location /chunked { default_type text/plain; chunked_transfer_encoding on;
                        return 200 "a chunked body"; }
  }
CONF
start_nginx nginx "$T/ngx" "$port"

log "quick mode: -c 8 -t 2 -d 2s"
"$APIGATE" load -c 8 -t 2 -d 2s --json "$T/q.json" "http://127.0.0.1:$port/" >"$T/out" 2>"$T/err" ||
    fail "load exited $?: $(cat "$T/err")"
out=$(cat "$T/out")
assert_contains "$out" "http_req_duration"
assert_contains "$out" "http_reqs"
assert_contains "$out" "status codes:  200="
reqs=$(jq '.totals.requests' "$T/q.json")
[ "$reqs" -gt 1000 ] || fail "only $reqs requests in 2 s"
assert_eq "$(jq '.status["200"]' "$T/q.json")" "$reqs" "200s == requests"
assert_eq "$(jq '.status_classes["2xx"]' "$T/q.json")" "$reqs" "2xx class == requests"
assert_contains "$out" "status classes:  2xx=$reqs (100.00%)"
assert_eq "$(jq '.totals.failed' "$T/q.json")" 0 "failed"
assert_eq "$(jq '.hist.count' "$T/q.json")" "$reqs" "histogram count"
# nginx logged exactly the requests we counted (none lost, none invented)
sleep 0.2
served=$(grep -c '"GET / HTTP/1.1" 200' "$T/ngx/access.log" || true)
assert_eq "$served" "$reqs" "nginx access log lines vs reported requests"
# one series point per second of the run, with the RPS adding up to the total
n=$(jq '.series | length' "$T/q.json")
assert_range "$n" 2 3 "series length"
assert_eq "$(jq '[.series[].rps] | add' "$T/q.json")" "$reqs" "series sum"
assert_eq "$(jq '.series[0].vus' "$T/q.json")" 8 "vus in the series"
# progress lines are on stderr (not a TTY here: one plain line per second)
grep -q 'req/s' "$T/err" || fail "no progress line on stderr: $(cat "$T/err")"
assert_not_contains "$out" "req/s  p95" "progress on stdout"
# -q silences it
"$APIGATE" load -q -c 2 -d 300ms "http://127.0.0.1:$port/" >/dev/null 2>"$T/err2"
assert_eq "$(cat "$T/err2")" "" "stderr with -q"

# on a terminal the progress line is rewritten in place (carriage return + erase line)
if command -v script >/dev/null; then
    script -qec "'$APIGATE' load -c 2 -d 2500ms 'http://127.0.0.1:$port/' 2>&1 >/dev/null" /dev/null >"$T/tty" || true
    grep -q $'\r\033\[K\[ *1s/2.5s\]' "$T/tty" || fail "no in-place progress on a TTY: $(od -c "$T/tty" | head -5)"
    grep -q $'\r\033\[K\[ *2s/2.5s\]' "$T/tty" || fail "the TTY progress line was not rewritten"
fi

log "memory stays flat: histograms, not stored samples"
"$APIGATE" load -q -c 32 -d 7s --json "$T/m.json" "http://127.0.0.1:$port/" >/dev/null &
lpid=$!
rss() { awk '/VmRSS/ { print $2 }' "/proc/$lpid/status"; }
sleep 1.5
early=$(rss)
sleep 5
late=$(rss)
wait $lpid
mreqs=$(jq '.totals.requests' "$T/m.json")
log "RSS ${early} kB after 1.5 s, ${late} kB after 6.5 s, $mreqs requests"
[ "$mreqs" -gt 20000 ] || fail "too few requests to tell: $mreqs"
# a stored 8-byte sample per request would add well over 512 kB in those 5 s
[ $((late - early)) -lt 512 ] || fail "memory grew by $((late - early)) kB over 5 s"

log "--threshold in quick mode: 0 when it holds, 99 when it fails, 2 when it does not parse"
rc=0
"$APIGATE" load -q -c 2 -d 500ms --threshold 'http_req_failed: rate<0.01' \
    --threshold 'http_req_duration{name:/}: p(95)<1000' "http://127.0.0.1:$port/" >"$T/th.out" || rc=$?
assert_eq "$rc" 0 "passing --threshold"
assert_contains "$(cat "$T/th.out")" "✓ http_req_failed: rate<0.01"
rc=0
"$APIGATE" load -q -c 2 -d 500ms --threshold 'http_reqs: count<5' "http://127.0.0.1:$port/" >"$T/th.out" 2>&1 || rc=$?
assert_eq "$rc" 99 "failing --threshold"
assert_contains "$(cat "$T/th.out")" "✗ http_reqs: count<5"
rc=0
"$APIGATE" load -q -c 2 -d 500ms --threshold 'http_reqs count<5' "http://127.0.0.1:$port/" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "malformed --threshold"

log "Ctrl-C ends the run early with the report of what ran, exit 130"
python3 - "$APIGATE" "http://127.0.0.1:$port/" "$T/int.json" >"$T/int.py.out" <<'PY' || fail "Ctrl-C: $(cat "$T/int.py.out")"
import signal, subprocess, sys, time
# a shell's background job ignores SIGINT (and apigate load respects that): start it with the default
p = subprocess.Popen([sys.argv[1], "load", "-c", "4", "-d", "20s", "--json", sys.argv[3], sys.argv[2]],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
time.sleep(1.5)
t = time.time()
p.send_signal(signal.SIGINT)
out, err = p.communicate(timeout=15)
print("rc=%d took=%.1f" % (p.returncode, time.time() - t))
print(out.decode())
print(err.decode())
sys.exit(0 if p.returncode == 130 and time.time() - t < 6 and b"INTERRUPTED at" in out else 1)
PY
assert_contains "$(cat "$T/int.py.out")" "interrupted, finishing the requests in flight"
assert_range "$(jq '.duration_s' "$T/int.json")" 1 3 "duration of the interrupted run"
assert_eq "$(jq '.aborted' "$T/int.json")" true "aborted in the JSON report"
assert_eq "$(jq '.aborted' "$T/q.json")" false "a complete run is not aborted"

log "chunked responses"
"$APIGATE" load -q -c 4 -d 1s --json "$T/c.json" "http://127.0.0.1:$port/chunked" >/dev/null
assert_eq "$(jq '.totals.failed' "$T/c.json")" 0 "chunked failures"
[ "$(jq '.totals.requests' "$T/c.json")" -gt 100 ] || fail "chunked: too few requests"

log "headers, method and body reach the server (mock echo)"
mport=$(free_port)
start_mock mock "$mport"
echo -n '{"k":"v"}' >"$T/body.json"
"$APIGATE" load -q -c 1 -d 300ms -m PUT -H 'X-Load-Test: yes' -H 'Content-Type: application/json' \
    --body @"$T/body.json" --json "$T/e.json" "http://127.0.0.1:$mport/echo/x?q=1" >/dev/null
[ "$(jq '.totals.requests' "$T/e.json")" -gt 5 ] || fail "echo: too few requests"
assert_eq "$(jq '.totals.failed' "$T/e.json")" 0 "echo failures"
# the mock counts what it served on its echo route, by method; one more request shows the body
body=$(curl -s -X PUT -H 'X-Load-Test: yes' --data-binary @"$T/body.json" "http://127.0.0.1:$mport/echo/x")
assert_contains "$body" '"body":"{\"k\":\"v\"}"'
# the generator's request, captured by a one-shot listener, has exactly our method/headers/body
cport=$(free_port)
python3 - "$cport" "$T/cap.ready" >"$T/captured" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); s.settimeout(10)
open(sys.argv[2], "w").close()
c, _ = s.accept(); c.settimeout(3)
data = b""
while b"\r\n\r\n" not in data:
    data += c.recv(4096)
head, _, rest = data.partition(b"\r\n\r\n")
n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
while len(rest) < n:
    rest += c.recv(4096)
sys.stdout.write((head + b"\n\n" + rest).decode())
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
c.close()
PY
cap_pid=$!
for _ in $(seq 100); do [ -e "$T/cap.ready" ] && break; sleep 0.05; done
"$APIGATE" load -q -c 1 -d 300ms -m PUT -H 'X-Load-Test: yes' --body @"$T/body.json" \
    "http://127.0.0.1:$cport/items/7?x=1" >/dev/null 2>&1 || true
wait $cap_pid || true
cap=$(cat "$T/captured")
assert_contains "$cap" "PUT /items/7?x=1 HTTP/1.1"
assert_contains "$cap" "Host: 127.0.0.1:$cport"
assert_contains "$cap" "X-Load-Test: yes"
assert_contains "$cap" "Content-Length: 9"
assert_contains "$cap" '{"k":"v"}'
log "ok"
