#!/usr/bin/env bash
# apigate demo leaves nothing behind: SIGINT in the middle of the "after" run stops the load, the
# gateway (supervisor and worker) and the mock and exits 130 (also when, as on a terminal, the
# whole process group gets it); a demo killed with SIGKILL still
# takes its children with it (PR_SET_PDEATHSIG); --keep-running keeps the gateway serving cached
# answers after the table until SIGINT, then stops everything and exits with the verdict.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd pgrep curl setsid

# Processes whose command line mentions a demo temp dir under $T (mock, serve, load all do).
children() { pgrep -f "$T/apigate-demo" || true; }

# wait_log FILE PATTERN TIMEOUT_S: waits for a line in a log.
wait_log() {
    local deadline=$((SECONDS + $3))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "no '$2' in $1 after $3 s: $(tail -n 5 "$1")"
        sleep 0.1
    done
}

# wait_gone TIMEOUT_S: waits until no demo child is left.
wait_gone() {
    local deadline=$((SECONDS + $1))
    while [ -n "$(children)" ]; do
        [ $SECONDS -lt $deadline ] || fail "left behind after $1 s: $(pgrep -af "$T/apigate-demo")"
        sleep 0.1
    done
}

# 1. SIGINT during the "after" run.
log "SIGINT during the after run"
"$APIGATE" demo --duration 4s --users 20 --report-dir "$T/r1" >"$T/d1.out" 2>"$T/d1.err" &
demo=$!
wait_log "$T/d1.err" '\[4/5\] after' 30
sleep 1
n=$(children | wc -l)
# mock, serve supervisor, serve worker, load
[ "$n" -ge 4 ] || fail "expected mock, gateway (2 processes) and load running, found $n: $(pgrep -af "$T/apigate-demo")"
kill -INT "$demo"
rc=0
wait "$demo" || rc=$?
assert_eq "$rc" 130 "exit code after SIGINT"
grep -q 'interrupted' "$T/d1.err" || fail "no 'interrupted' message: $(tail -n 3 "$T/d1.err")"
[ -z "$(children)" ] || fail "left after SIGINT: $(pgrep -af "$T/apigate-demo")"
ls -d "$T"/apigate-demo.* >/dev/null 2>&1 && fail "temp dir left after SIGINT"

# 1b. Ctrl-C on a terminal: SIGINT to the whole foreground process group (the demo and the load
# generator it runs in its group), during the "before" run. setsid makes the demo a group leader.
log "SIGINT to the process group during the before run"
setsid "$APIGATE" demo --duration 6s --users 20 --report-dir "$T/r1b" >"$T/d1b.out" 2>"$T/d1b.err" &
demo=$!
wait_log "$T/d1b.err" '\[2/5\] before' 30
sleep 1.5
[ "$(children | wc -l)" -ge 2 ] || fail "expected mock and load running: $(pgrep -af "$T/apigate-demo")"
kill -INT -- "-$demo"
rc=0
wait "$demo" || rc=$?
assert_eq "$rc" 130 "exit code after a group SIGINT"
[ -z "$(children)" ] || fail "left after a group SIGINT: $(pgrep -af "$T/apigate-demo")"

# 2. SIGKILL: the demo cannot clean up, the kernel tells its children.
log "SIGKILL of the demo"
"$APIGATE" demo --duration 4s --users 20 --report-dir "$T/r2" >"$T/d2.out" 2>"$T/d2.err" &
demo=$!
wait_log "$T/d2.err" '\[4/5\] after' 30
kill -KILL "$demo"
wait "$demo" 2>/dev/null || true
wait_gone 10
rm -rf "$T"/apigate-demo.*

# 3. --keep-running: after the table the gateway still answers from its cache; SIGINT ends it.
log "--keep-running"
"$APIGATE" demo --duration 3s --users 20 --keep-running --report-dir "$T/r3" \
    >"$T/d3.out" 2>"$T/d3.err" &
demo=$!
wait_log "$T/d3.out" 'Still running' 30
url=$(grep -o 'http://127.0.0.1:[0-9]*/api/users/1' "$T/d3.out" | head -n1)
[ -n "$url" ] || fail "no gateway URL printed: $(cat "$T/d3.out")"
hdrs=$(curl -s -D - -o /dev/null --max-time 5 "$url")
assert_contains "$hdrs" "200" "gateway answer after the table"
hdrs=$(curl -s -D - -o /dev/null --max-time 5 "$url")
assert_contains "$(tr 'A-Z' 'a-z' <<<"$hdrs")" "x-cache: hit" "second request is a cache hit"
sleep 1
kill -0 "$demo" 2>/dev/null || fail "demo exited although --keep-running"
kill -INT "$demo"
rc=0
wait "$demo" || rc=$?
assert_eq "$rc" 0 "exit code of a kept-running better demo"
[ -z "$(children)" ] || fail "left after --keep-running: $(pgrep -af "$T/apigate-demo")"
log "ok"
