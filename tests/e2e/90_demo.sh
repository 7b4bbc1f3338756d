#!/usr/bin/env bash
# apigate demo, the short version: the before/after table has every row, the gateway run has the
# lower p95 and a cache hit ratio above 80%, the reports exist, the exit code says "better", and
# nothing the demo started is left running (its children all carry its temp dir in their command
# line: the profile, the gateway config, the scenario). Bad usage exits 2.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq pgrep

# Usage: --help is 0, bad values are 2 with a message naming the option.
"$APIGATE" demo --help | grep -q -- '--keep-running' || fail "demo --help lacks --keep-running"
for bad in "--users 0" "--users x" "--duration soon" "--duration 1s" "--bogus" "--users"; do
    rc=0
    # shellcheck disable=SC2086
    err=$("$APIGATE" demo $bad 2>&1 >/dev/null) || rc=$?
    assert_eq "$rc" 2 "exit code of 'demo $bad'"
    assert_contains "$err" "${bad%% *}" "message of 'demo $bad'"
done

# A --report-dir that is a file is refused before anything starts (it used to pass mkdir's EEXIST,
# and the demo then failed pointing at "$file/before.txt"), and no temp dir is left behind.
echo x >"$T/afile"
rc=0
err=$(TMPDIR="$T" timeout 20 "$APIGATE" demo --report-dir "$T/afile" --duration 2s 2>&1 >/dev/null) || rc=$?
assert_eq "$rc" 1 "exit code of --report-dir on a file"
assert_contains "$err" "--report-dir $T/afile: Not a directory" "message of --report-dir on a file"
[ -z "$(ls -d "$T"/apigate-demo.* 2>/dev/null)" ] || fail "a temp dir was left behind"

rep="$T/report"
log "running apigate demo --duration 10s --users 50"
rc=0
"$APIGATE" demo --duration 10s --users 50 --report-dir "$rep" >"$T/demo.out" 2>"$T/demo.err" || rc=$?
out=$(cat "$T/demo.out")
if [ "$rc" != 0 ]; then
    cat "$T/demo.err" >&2
    fail "demo exit code $rc (0 = better): $out"
fi

# The table: every row the issue asks for, with both columns.
for row in "requests/s" "latency p50" "latency p95" "latency p99" "error rate" \
    "requests under 500 ms" "cache hit ratio" "origin requests served" "verdict: better"; do
    assert_contains "$out" "$row" "table row"
done
grep -q 'before (direct) *after (apigate)' "$T/demo.out" || fail "table header missing: $out"
# Live progress went to stderr: the steps and the load generator's per-second lines.
grep -q '\[4/5\] after' "$T/demo.err" || fail "no progress on stderr"
grep -q 'req/s' "$T/demo.err" || fail "no load progress lines on stderr"

# The numbers, from summary.json; they must agree with the load reports.
s="$rep/summary.json"
[ -s "$s" ] || fail "no $s"
bp95=$(jq -r .before.p95_ms "$s")
ap95=$(jq -r .after.p95_ms "$s")
hit=$(jq -r .after.cache_hit_ratio "$s")
log "p95 before $bp95 ms, after $ap95 ms, hit ratio $hit"
awk -v a="$ap95" -v b="$bp95" 'BEGIN { exit !(a < b) }' || fail "after p95 $ap95 not below before $bp95"
assert_range "$hit" 0.8 1 "cache hit ratio of the after run"
assert_eq "$(jq -r .before.cache_hit_ratio "$s")" null "no cache before"
assert_eq "$(jq -r .better "$s")" true "summary verdict"
assert_eq "$(jq -r .latency_ms.p95 "$rep/before.json")" "$(jq -r '.before.p95_ms' "$s" | awk '{printf "%.3f", $1}')" \
    "before p95 in the summary is the load report's"
# The origin served fewer requests than the clients got answers: the cache saved origin work.
breq=$(jq -r .before.requests "$s")
bor=$(jq -r .before.origin_served "$s")
areq=$(jq -r .after.requests "$s")
aor=$(jq -r .after.origin_served "$s")
assert_range "$bor" "$((breq * 9 / 10))" "$((breq + 50))" "before: the mock served what the load counted"
awk -v o="$aor" -v r="$areq" 'BEGIN { exit !(o > 0 && o < r / 4) }' ||
    fail "after: origin served $aor of $areq requests"

# Reports: HTML, JSON and the text summaries of both runs.
for f in before.html after.html before.json after.json before.txt after.txt; do
    [ -s "$rep/$f" ] || fail "report $rep/$f missing or empty"
done
grep -q '<canvas' "$rep/after.html" || fail "after.html is not the load HTML report"

# Nothing left: no process mentions the demo's temp dir, and the temp dir is gone.
left=$(pgrep -af "$T/apigate-demo" || true)
[ -z "$left" ] || fail "processes left after the demo: $left"
ls -d "$T"/apigate-demo.* >/dev/null 2>&1 && fail "temp dir left: $(ls -d "$T"/apigate-demo.*)"
log "ok"
