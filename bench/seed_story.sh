#!/usr/bin/env bash
# The seed story as a benchmark: `apigate demo` (the mock's database profile: 40 ms per request,
# a pool of 10) loaded directly and then through apigate with caching, coalescing, pooling and
# shedding, RUNS times; prints the medians of p95, error rate, req/s, cache hit ratio and origin
# requests, and the ratio after/before of p95 (lower is better) and of req/s (higher is better).
#
#   bench/seed_story.sh [APIGATE]      env: RUNS=3 DURATION=10s USERS=200
#
# Not a test: numbers depend on the machine (a shared 2-core box during development). The last
# line is machine-readable for bench/run.sh:
#   seed: p95_before=.. p95_after=.. p95_reads_after=.. p95_login_after=.. ratio_p95=.. rps_before=.. rps_after=.. ratio_rps=.. hit=..
set -euo pipefail
. "$(dirname "$0")/lib.sh"
AG_SRC=$(cd "$(dirname "$0")/.." && pwd)
APIGATE=${1:-${APIGATE:-$AG_SRC/build/apigate}}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
USERS=${USERS:-200}
command -v jq >/dev/null || { echo "seed_story: jq not found" >&2; exit 2; }
[ -x "$APIGATE" ] || { echo "seed_story: $APIGATE is not executable" >&2; exit 2; }

W=$(mktemp -d /tmp/apigate-seed.XXXXXX)
DEMO_PID=
cleanup() {
    # The demo stops its own children on SIGTERM (and the kernel does if it dies).
    [ -n "$DEMO_PID" ] && kill -TERM "$DEMO_PID" 2>/dev/null && wait "$DEMO_PID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT


for i in $(seq 1 "$RUNS"); do
    rc=0
    TMPDIR=$W "$APIGATE" demo --duration "$DURATION" --users "$USERS" --report-dir "$W/run$i" \
        >"$W/run$i.out" 2>"$W/run$i.err" &
    DEMO_PID=$!
    wait "$DEMO_PID" || rc=$?
    DEMO_PID=
    s="$W/run$i/summary.json"
    if [ ! -s "$s" ]; then
        echo "seed_story: run $i failed (exit $rc):" >&2
        tail -n 20 "$W/run$i.err" >&2
        exit 1
    fi
    # The reads (every GET endpoint) apart from the login POST, which no cache may answer: the
    # worst read endpoint's p95 bounds the p95 of all reads together from above.
    reads=$(jq -r '[.endpoints[] | select(.method == "GET") | .latency_ms.p95] | max' "$W/run$i/after.json")
    login=$(jq -r '[.endpoints[] | select(.method != "GET") | .latency_ms.p95] | max // 0' "$W/run$i/after.json")
    jq -r --arg reads "$reads" --arg login "$login" \
        '[.before.p95_ms, .after.p95_ms, .before.rps, .after.rps, .before.error_rate,
          .after.error_rate, .after.cache_hit_ratio, .before.origin_served, .after.origin_served,
          .after.requests, $reads, $login] | @tsv' "$s" >>"$W/rows"
    echo "run $i: $(jq -r '"p95 \(.before.p95_ms) -> \(.after.p95_ms) ms, req/s \(.before.rps|floor) -> \(.after.rps|floor), hit \(.after.cache_hit_ratio)"' "$s")" >&2
done

col() { cut -f"$1" "$W/rows" | median; }
p95b=$(col 1) p95a=$(col 2) rpsb=$(col 3) rpsa=$(col 4) errb=$(col 5) erra=$(col 6)
hit=$(col 7) orb=$(col 8) ora=$(col 9) reqa=$(col 10) p95reads=$(col 11) p95login=$(col 12)
rp95=$(awk -v a="$p95a" -v b="$p95b" 'BEGIN { printf "%.3f", a / b }')
rrps=$(awk -v a="$rpsa" -v b="$rpsb" 'BEGIN { printf "%.1f", a / b }')

echo
echo "apigate demo --duration $DURATION --users $USERS: the seed API (40 ms/request, DB pool of 10), median of $RUNS runs"
echo
echo "| | direct (before) | through apigate (after) | after / before |"
echo "|---|---:|---:|---:|"
printf '| p95 latency | %.1f ms | %.1f ms | %s |\n' "$p95b" "$p95a" "$rp95"
printf '| p95 of the reads (worst GET endpoint) | | %.1f ms | |\n' "$p95reads"
printf '| p95 of the login POST (never cached) | | %.1f ms | |\n' "$p95login"
printf '| requests/s | %.0f | %.0f | %s |\n' "$rpsb" "$rpsa" "$rrps"
printf '| error rate | %.2f %% | %.2f %% | |\n' "$(awk -v v="$errb" 'BEGIN{print v*100}')" "$(awk -v v="$erra" 'BEGIN{print v*100}')"
printf '| cache hit ratio | - | %.1f %% | |\n' "$(awk -v v="$hit" 'BEGIN{print v*100}')"
printf '| origin requests served | %.0f | %.0f (of %.0f answered) | |\n' "$orb" "$ora" "$reqa"
echo
echo "seed: p95_before=$p95b p95_after=$p95a p95_reads_after=$p95reads p95_login_after=$p95login ratio_p95=$rp95 rps_before=$rpsb rps_after=$rpsa ratio_rps=$rrps hit=$hit err_before=$errb err_after=$erra"
