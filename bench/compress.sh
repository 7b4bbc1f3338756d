#!/usr/bin/env bash
# Compression on cache hits (issue 13): gzip of a 100 KB JSON response served from the cache
# costs the same as an uncompressed hit of the same (compressed) size, because the gzip copy is
# encoded once and stored (a stored variant, docs/compression.md), never per hit.
#
# apigate serve (1 thread, pinned to CPU 1) in front of apigate mock and a small Python origin of
# varied JSON records (both on CPU 0, asked once each: the rows are cache hits but gzip_stream),
# wrk -t1 -c$CONNS on CPU 0, keep-alive. Rows, each RUNS alternating runs, medians:
#   gzip_hit      GET /api/big with Accept-Encoding: gzip: the stored gzip variant of 100 KB of
#                 JSON
#   same_size_hit GET /api/same, no Accept-Encoding: an identity hit whose body is as long as
#                 the gzip variant (apigate mock pads its JSON to that size)
#   identity_hit  GET /api/big, no Accept-Encoding: the stored 100 KB as it is (context)
#   gzip_stream   GET /nc/big with Accept-Encoding: gzip on a route without cache: compressed per
#                 request (what every hit would cost without stored variants; the origin's cost
#                 is in it too, the mock runs on CPU 0)
# CPU per request = utime+stime of the gateway's processes over the run / requests. Also checks
# that apigate_compress_bytes_total did not move during the gzip_hit runs.
# The machine is shared: the hit rows alternate within each run and the ratios come from one
# invocation (medians of RUNS).
# Not a test: prints a Markdown table to stdout (progress on stderr).
# Usage: bench/compress.sh [APIGATE_BINARY]    env: DURATION=10s RUNS=5 CONNS=64
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APIGATE=${1:-${APIGATE:-$(cd "$(dirname "$0")/.." && pwd)/build/apigate}}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-5}
CONNS=${CONNS:-64}
for c in wrk taskset curl python3; do
    command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 2; }
done
[ -x "$APIGATE" ] || { echo "no apigate binary at $APIGATE" >&2; exit 2; }

W=$(mktemp -d /tmp/apigate-compressbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

MPORT=$(port) OPORT=$(port) GPORT=$(port) APORT=$(port)
# /api/big and /nc/big: 100 KB of JSON records with varied values (gzip takes it to about a
# fifth; the mock's padded bodies would shrink to a few hundred bytes), from a small origin
cat >"$W/origin.py" <<'PY'
import http.server, json, random, socketserver, sys
random.seed(7)
words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
items, body = [], b""
while True:
    i = len(items)
    items.append({"id": i, "sku": "SKU-%06d" % random.randrange(10**6),
                  "name": " ".join(random.choice(words) for _ in range(3)),
                  "price": round(random.uniform(1, 500), 2), "stock": random.randrange(1000),
                  "tags": random.sample(words, 2), "updated": "2026-%02d-%02dT%02d:%02d:00Z" % (
                      random.randrange(1, 13), random.randrange(1, 29), random.randrange(24),
                      random.randrange(60))})
    b = json.dumps({"items": items}).encode()
    if len(b) > 100 * 1024:
        break
    body = b
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path.startswith("/api/"):
            self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
taskset -c 0 python3 "$W/origin.py" "$OPORT" 2>"$W/origin.log" &
PIDS+=($!)
wait_port "$OPORT"
start_mock() { # SAME_SIZE: the body size of /api/same
    "$APIGATE" mock --print-default >"$W/mock.yaml"
    cat >>"$W/mock.yaml" <<YAML
  - {method: GET, path: /api/same, body_size: $1, cache_control: 'public, max-age=3600'}
YAML
    taskset -c 0 "$APIGATE" mock --listen "127.0.0.1:$MPORT" --profile "$W/mock.yaml" >"$W/mock.log" 2>&1 &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    wait_port "$MPORT"
}
start_gateway() {
    cat >"$W/gw.yaml" <<YAML
listen: 127.0.0.1:$GPORT
admin: 127.0.0.1:$APORT
workers: {threads: 1}
logging: {level: warn}
cache: {memory: 256MB}
upstreams:
  mock: {servers: [127.0.0.1:$MPORT]}
  origin: {servers: [127.0.0.1:$OPORT]}
routes:
  - {match: /nc/, upstream: origin, compress: {types: [application/json], encodings: [gzip]}}
  - {match: /api/same, upstream: mock, cache: {}, compress: {types: [application/json], encodings: [gzip]}}
  - {match: /, upstream: origin, cache: {}, compress: {types: [application/json], encodings: [gzip]}}
YAML
    taskset -c 1 "$APIGATE" serve -c "$W/gw.yaml" 2>"$W/gw.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_port "$GPORT"
    sleep 0.3
}
stop() { # PID
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
U=http://127.0.0.1:$GPORT

# the size of the gzip variant, then the mock again with /api/same padded to it
start_mock 1KB
start_gateway
curl -s -o /dev/null "$U/api/big"
size=$(curl -s -H 'Accept-Encoding: gzip' "$U/api/big" | wc -c)
stop "$GW_PID"
stop "$MOCK_PID"
echo "gzip variant of the 100 KB body: $size bytes" >&2
start_mock "$size"
start_gateway
curl -s -o /dev/null "$U/api/big"
curl -s -o /dev/null "$U/api/same"
got=$(curl -s -D - -o "$W/gz" -H 'Accept-Encoding: gzip' "$U/api/big" | tr -d '\r' | tr 'A-Z' 'a-z')
grep -q '^content-encoding: gzip' <<<"$got" || { echo "no gzip variant: $got" >&2; exit 1; }
python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.decompress(open(sys.argv[1], "rb").read(), 47))' "$W/gz" >"$W/gz.plain"
curl -s -o "$W/plain" "$U/api/big"
cmp -s "$W/gz.plain" "$W/plain" || { echo "the gzip variant does not decode to the identity body" >&2; exit 1; }
same=$(curl -s "$U/api/same" | wc -c)
streamed=$(curl -s -H 'Accept-Encoding: gzip' "$U/nc/big" | wc -c) # flushed per piece: a bit longer
echo "identity body of /api/same: $same bytes" >&2

bytes_in() { curl -s "http://127.0.0.1:$APORT/metrics" | awk '$1 == "apigate_compress_bytes_total{direction=\"in\"}" { print $2 }'; }

run_one() { # NAME PATH [wrk args] -> "name rps cpu_us" in $W/results
    local name=$1 path=$2
    shift 2
    taskset -c 0 wrk -t1 -c"$CONNS" -d1s "$@" "$U$path" >/dev/null # warm-up
    local c0 c1 b0 b1 prev
    # requests of an earlier row still in the gateway (wrk stops, they finish) settle first
    b0=$(bytes_in)
    for _ in $(seq 1 40); do
        sleep 0.25
        prev=$b0
        b0=$(bytes_in)
        [ "$b0" = "$prev" ] && break
    done
    c0=$(cpu_ticks "$GW_PID")
    taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" "$@" "$U$path" >"$W/wrk.out"
    c1=$(cpu_ticks "$GW_PID")
    b1=$(bytes_in)
    local reqs rps cpu_us errs
    reqs=$(awk '/requests in/ { print $1 }' "$W/wrk.out")
    rps=$(awk '/Requests\/sec/ { print $2 }' "$W/wrk.out")
    cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
    errs=$(awk '/Non-2xx|Socket errors/ { print }' "$W/wrk.out" | tr '\n' ' ')
    echo "$name $rps $cpu_us $((b1 - b0))" >>"$W/results"
    echo "  $name: $rps req/s, $cpu_us µs CPU/req, encoder bytes in $((b1 - b0)) $errs" >&2
}

: >"$W/results"
for r in $(seq 1 "$RUNS"); do
    echo "run $r/$RUNS" >&2
    run_one gzip_hit /api/big -H 'Accept-Encoding: gzip'
    run_one same_size_hit /api/same
    run_one identity_hit /api/big
done
# last: its slow requests may still be compressing after wrk stops, not in another row's count
for r in $(seq 1 "$RUNS"); do
    run_one gzip_stream /nc/big -H 'Accept-Encoding: gzip'
done

names="gzip_hit same_size_hit identity_hit gzip_stream"
declare -A RPS CPU ENC
for n in $names; do
    RPS[$n]=$(awk -v n="$n" '$1 == n { print $2 }' "$W/results" | median)
    CPU[$n]=$(awk -v n="$n" '$1 == n { print $3 }' "$W/results" | median)
    ENC[$n]=$(awk -v n="$n" '$1 == n { s += $4 } END { print s + 0 }' "$W/results")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "| row (gateway: 1 thread on CPU 1) | body bytes | req/s (median of $RUNS) | CPU µs/req | req/s ÷ same_size_hit | CPU ÷ same_size_hit | encoder bytes in (all runs) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for n in $names; do
    case $n in gzip_hit) b=$size ;; gzip_stream) b=$streamed ;; same_size_hit) b=$same ;; *) b=$(wc -c <"$W/plain") ;; esac
    printf '| %s | %s | %.0f | %.2f | %s | %s | %s |\n' "$n" "$b" "${RPS[$n]}" "${CPU[$n]}" \
        "$(ratio "${RPS[$n]}" "${RPS[same_size_hit]}")" "$(ratio "${CPU[$n]}" "${CPU[same_size_hit]}")" \
        "${ENC[$n]}"
done
echo
echo "wrk -t1 -c$CONNS -d$DURATION on CPU 0 (with the origins); gateway on CPU 1; $(nproc) CPUs; $(date -u +%Y-%m-%d)"
