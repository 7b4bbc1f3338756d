#!/usr/bin/env bash
# apigate doctor --gateway (a static /stats JSON served by python3 -m http.server, in the shape
# docs/doctor.md#gateway documents) and --target (timed sample requests against a fast and a slow
# server), run together in one invocation: healthy counters give no warning; a 10% 5xx rate is
# critical, p95 800 ms a warning, churn and restarts warnings; a slow target's p95 is a warning.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq python3

mkdir -p "$T/www"
GW=$(free_port)
start_bg stats python3 -m http.server "$GW" --bind 127.0.0.1 --directory "$T/www"
wait_port "$GW" 10
cat >"$T/slow.py" <<'PY'
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/stats-chunked":
            # the counters in three chunks, as a streaming server would send them
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for part in (b'{"requests_total": 400, ', b'"responses_5xx": 40, ', b'"latency_p95_ms": 12}'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            return
        time.sleep(0.6)
        body = b'{"slow": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
SLOW=$(free_port)
start_bg slow python3 "$T/slow.py" "$SLOW"
wait_port "$SLOW" 10
echo '{"hello": "world"}' >"$T/www/hello.json"
sev() { jq -r --arg id "$1" '[.findings[] | select(.id == $id)][0].severity' <<<"$out"; }

# --- healthy gateway counters + a fast target ---------------------------------------------------
cat >"$T/www/stats" <<'JSON'
{"requests_total": 10000, "responses_5xx": 12, "latency_p95_ms": 35.5,
 "cache_hits": 9000, "cache_misses": 1000, "shed_total": 0, "pool_wait_p95_ms": 0.4,
 "breakers_open": 0, "upstream_connects_total": 40, "upstream_reuses": 960, "worker_restarts": 0, "threads": 2,
 "routes": {"ignored": "other sections are allowed"}}
JSON
out=$("$APIGATE" doctor --window 0 --gateway "http://127.0.0.1:$GW" --target "http://127.0.0.1:$GW/hello.json" \
    --samples 5 --json --fail-on warning) || fail "warnings on healthy counters: $out"
assert_eq "$(sev gw-5xx-rate)" ok "0.12% 5xx"
assert_eq "$(sev gw-latency)" ok "p95 35 ms"
assert_eq "$(sev gw-cache-hit-ratio)" ok "90% hits"
assert_eq "$(sev gw-connection-churn)" ok "0.04 connects per upstream request"
assert_contains "$(jq -r '.findings[] | select(.id == "gw-cache-hit-ratio") | .title' <<<"$out")" "90.0%" "hit ratio"
t=$(jq -c '.findings[] | select(.id == "target-latency")' <<<"$out")
assert_eq "$(jq -r .severity <<<"$t")" ok "fast target"
assert_contains "$(jq -r .title <<<"$t")" "over 5 requests (0 failed)" "sample count"
assert_eq "$(jq -r .evidence <<<"$t" | grep -cE '^ +[0-9]+ +200 ')" 5 "one timing row per sample"

# --- unhealthy counters (inside "summary") + a slow target, in one parallel run ---------------
cat >"$T/www/stats" <<'JSON'
{"summary": {"requests_total": 2000, "responses_5xx": 200, "latency_p95_ms": 800,
 "cache_hits": 50, "cache_misses": 1950, "shed_total": 100, "pool_wait_p95_ms": 250,
 "breakers_open": 1, "upstream_connects_total": 1900, "upstream_reuses": 100, "worker_restarts": 3, "threads": 2}}
JSON
t0=$(date +%s%N)
set +e
out=$("$APIGATE" doctor --window 0 --gateway "http://127.0.0.1:$GW" --target "http://127.0.0.1:$SLOW/api" \
    --samples 3 --json)
code=$?
set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
assert_eq "$code" 1 "critical 5xx rate"
assert_eq "$(sev gw-5xx-rate)" critical "10% 5xx"
assert_eq "$(sev gw-latency)" warning "p95 800 ms"
assert_eq "$(sev gw-cache-hit-ratio)" warning "2.5% hits"
assert_eq "$(sev gw-shed)" warning "5% shed"
assert_eq "$(sev gw-pool-wait)" warning "pool wait 250 ms"
assert_eq "$(sev gw-breakers-open)" warning "open breaker"
assert_eq "$(sev gw-connection-churn)" warning "0.95 connects per upstream request"
assert_eq "$(sev gw-worker-restarts)" warning "restarts"
assert_eq "$(sev target-latency)" warning "slow target p95 > 500 ms"
p95=$(jq -r '.findings[] | select(.id == "target-latency") | .title' <<<"$out" | sed -E 's/.*p95 ([0-9.]+) ms.*/\1/')
assert_range "$p95" 590 2000 "target p95 (ms)"
assert_range "$ms" 1700 6000 "3 slow samples, gateway in parallel (ms)"
# worst component first: gateway (critical) before target (warning)
assert_eq "$(jq -r '.findings[0].component' <<<"$out")" gateway "sorted worst first"
"$APIGATE" doctor --window 0 --gateway "http://127.0.0.1:$GW" >"$T/text.out" || true
assert_contains "$(cat "$T/text.out")" "docs/doctor.md#gw-5xx-rate" "text report links the doc"

# --- /stats sent with chunked transfer coding ----------------------------------------------------
set +e
out=$("$APIGATE" doctor --window 0 --gateway "http://127.0.0.1:$SLOW/stats-chunked" --json)
set -e
assert_eq "$(sev gw-5xx-rate)" critical "chunked body decoded: 40 of 400"
assert_contains "$(jq -r '.findings[] | select(.id == "gw-5xx-rate") | .title' <<<"$out")" "(40 of 400 requests)" "counts"

# --- /stats that is not JSON, and a target that refuses -----------------------------------------
echo "not json" >"$T/www/stats"
DEAD=$(free_port)
set +e
out=$("$APIGATE" doctor --window 0 --gateway "http://127.0.0.1:$GW" --target "http://127.0.0.1:$DEAD/" --samples 2 --json)
code=$?
set -e
assert_eq "$code" 1 "unusable stats and dead target are critical"
assert_contains "$(jq -r '.findings[] | select(.id == "gw-unreachable") | .title' <<<"$out")" "did not return a JSON object" "bad stats"
assert_contains "$(jq -r '.findings[] | select(.id == "target-unreachable") | .evidence' <<<"$out")" "Connection refused" "refused target"
# --- https target: verified against the trust store (SSL_CERT_FILE), refused when untrusted ----
if command -v openssl >/dev/null 2>&1; then
    test_cert "$T" cert /CN=localhost DNS:localhost,IP:127.0.0.1 "" -newkey rsa:2048 -nodes
    cat >"$T/tls.py" <<'PY'
import http.server, ssl, sys
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
    TLS=$(free_port)
    (cd "$T/www" && exec python3 "$T/tls.py" "$TLS" "$T/cert.pem" "$T/cert.key") >"$T/tls.log" 2>&1 &
    E2E_PIDS+=($!)
    E2E_NAMES+=(tls)
    wait_port "$TLS" 10
    set +e
    out=$("$APIGATE" doctor --target "https://127.0.0.1:$TLS/hello.json" --samples 2 --json)
    set -e
    assert_contains "$(jq -r '.findings[] | select(.id == "target-unreachable") | .evidence' <<<"$out")" \
        "certificate verify failed: self-signed certificate" "untrusted certificate refused"
    for host in 127.0.0.1 localhost; do
        out=$(SSL_CERT_FILE="$T/cert.pem" "$APIGATE" doctor --target "https://$host:$TLS/hello.json" \
            --samples 2 --json) || fail "trusted https target: $out"
        t=$(jq -c '.findings[] | select(.id == "target-latency")' <<<"$out")
        assert_eq "$(jq -r .severity <<<"$t")" ok "https via $host"
        # the tls column is at or after connect in every row
        jq -r .evidence <<<"$t" | awk '$2 == 200 { if ($5 < $4) exit 1; n++ } END { exit n != 2 }' ||
            fail "tls timing column: $(jq -r .evidence <<<"$t")"
    done
fi

# --- a server flooding 1xx responses: each request gives up (net/h1cli bounds the 1xx heads it
# reads before a final one; before that bound, the request's deadline did), not the probe's guard ---
FLOOD=$(free_port)
start_tcp_server flood "$FLOOD" <<'PY'
def serve(c):
    try:
        c.recv(65536)
        b = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" * 20000
        while True:
            c.sendall(b)
    except OSError:
        pass
    finally:
        c.close()
PY
t0=$(date +%s%N)
set +e
out=$("$APIGATE" doctor --gateway "http://127.0.0.1:$FLOOD" --target "http://127.0.0.1:$FLOOD/" \
    --samples 2 --timeout 1s --json)
set -e
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 6000 ] || fail "doctor against a 1xx flood took $ms ms with --timeout 1s"
assert_eq "$(jq '[.findings[] | select(.id == "probe-timeout")] | length' <<<"$out")" 0 \
    "each request timed out, not the probe: $out"
assert_contains "$(jq -r '.findings[] | select(.id == "gw-unreachable") | .title' <<<"$out")" \
    "bytes of 1xx heads" "gateway probe"
assert_contains "$(jq -r '.findings[] | select(.id == "target-unreachable") | .evidence' <<<"$out")" \
    "bytes of 1xx heads" "target probe"
log "ok"
