#!/usr/bin/env bash
# The process model of `apigate serve` under load, with `apigate mock` as the upstream:
#   kill -9 of the worker   -> back within 1 s, only requests in flight fail, restart logged;
#   SIGSTOP of the worker   -> the watchdog (worker_timeout) kills and replaces it;
#   SIGHUP                  -> new worker on the same sockets, zero failed requests;
#   SIGHUP with a bad file  -> every error logged, the running worker keeps serving;
#   max_requests            -> graceful recycling, zero failed requests;
#   SIGTERM                 -> an in-flight slow request completes, then exit 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3 pgrep

mock_port=$(free_port)
gw_port=$(free_port)
admin_port=$(free_port)

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /slow, handler: health, latency: {dist: fixed, ms: 3000}}
  - {method: GET, path: /fast, handler: health}
EOF
start_mock mock "$mock_port" --profile "$T/mock.yaml"

# gw_config MAX_REQUESTS: writes the gateway config.
gw_config() {
    cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$gw_port
admin: 127.0.0.1:$admin_port
workers: {threads: 2, worker_timeout: 2s, drain_timeout: 10s, max_requests: $1}
upstreams:
  mock: {servers: [127.0.0.1:$mock_port]}
routes:
  - {match: /, upstream: mock}
EOF
}
gw_config 0

start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$gw_port"

# The newest child of the supervisor: the worker that serves.
worker_pid() { pgrep -n -P "$SV" || true; }
# load_bg SECONDS CONNS FILE [LOAD ARGS...]: `apigate load` against /fast in the background;
# PID in $LOAD_PID.
load_bg() {
    local d=$1 c=$2 f=$3
    shift 3
    "$APIGATE" load -q -c "$c" -d "$d" --timeout 5s --json "$f" "$@" \
        "http://127.0.0.1:$gw_port/fast" >"$f.out" 2>&1 &
    LOAD_PID=$!
}
# total FILE FIELD: a field of the load report's totals.
total() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals'][sys.argv[2]])" "$1" "$2"; }
# errors FILE: the load report's failures by kind, for messages.
errors() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['errors'], d['status'])" "$1"; }
# wait_log PATTERN TIMEOUT_S: waits for PATTERN in the gateway's log.
wait_log() {
    local deadline=$((SECONDS + $2))
    until grep -q -- "$1" "$T/gw.log"; do
        [ $SECONDS -lt $deadline ] || fail "no '$1' in the gateway log after $2 s"
        sleep 0.05
    done
}
count_log() { grep -c -- "$1" "$T/gw.log" || true; }
# wait_count PATTERN N TIMEOUT_S: waits until PATTERN occurs at least N times in the log.
wait_count() {
    local deadline=$((SECONDS + $3))
    until [ "$(count_log "$1")" -ge "$2" ]; do
        [ $SECONDS -lt $deadline ] || fail "'$1' not seen $2 times in the gateway log after $3 s"
        sleep 0.05
    done
}

assert_eq "$(http_status "http://127.0.0.1:$gw_port/fast")" 200 "first request through the gateway"
W1=$(worker_pid)
[ -n "$W1" ] || fail "no worker process under supervisor $SV"
log "supervisor $SV, worker $W1"

# ---- kill -9 under load: back within 1 s, only in-flight requests fail ----
CONNS=8
load_bg 3s $CONNS "$T/kill.json"
sleep 1
kill -9 "$W1"
t0=$(date +%s%N)
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$gw_port/fast")" = 200 ]; do
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 3000 ] || fail "gateway not back 3 s after kill -9"
    sleep 0.01
done
back_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
log "service back $back_ms ms after kill -9 of the worker"
[ "$back_ms" -le 1000 ] || fail "service took $back_ms ms to come back (limit 1000 ms)"
wait "$LOAD_PID" || true
failed=$(total "$T/kill.json" failed)
reqs=$(total "$T/kill.json" requests)
log "kill -9 under load: $reqs requests, $failed failed"
[ "$reqs" -gt 1000 ] || fail "too few requests under load ($reqs)"
[ "$failed" -le "$CONNS" ] ||
    fail "$failed requests failed after kill -9; only the $CONNS in flight may ($(errors "$T/kill.json"))"
wait_log "killed by signal 9" 2
assert_contains "$(cat "$T/gw.log")" "restart #1" "restart counted"
W2=$(worker_pid)
assert_ne "$W2" "$W1" "worker replaced"

# ---- SIGSTOP: every loop thread stops ticking; the watchdog kills and replaces it ----
kill -STOP "$W2"
wait_log "has not ticked" 6
t0=$SECONDS
until [ "$(http_status "http://127.0.0.1:$gw_port/fast" --max-time 1)" = 200 ]; do
    [ $((SECONDS - t0)) -lt 5 ] || fail "gateway not back after the watchdog fired"
    sleep 0.05
done
W3=$(worker_pid)
assert_ne "$W3" "$W2" "hung worker replaced"
kill -0 "$W2" 2>/dev/null && fail "hung worker $W2 still exists"
log "watchdog replaced the stopped worker $W2 with $W3"

# ---- SIGHUP under load: zero failed requests ----
load_bg 4s $CONNS "$T/hup.json"
sleep 1
kill -HUP "$SV"
wait_count "reload done" 1 5
sleep 1
kill -HUP "$SV"
wait "$LOAD_PID" || true
failed=$(total "$T/hup.json" failed)
reqs=$(total "$T/hup.json" requests)
log "two reloads under load: $reqs requests, $failed failed"
[ "$reqs" -gt 1000 ] || fail "too few requests under load ($reqs)"
assert_eq "$failed" 0 "failed requests across reloads ($(errors "$T/hup.json"))"
[ "$(count_log "reload done")" -ge 2 ] || fail "expected two completed reloads"
# Same with a new connection per request: connections that reach the old worker just before it
# drains must still be served.
n=$(count_log "reload done")
load_bg 3s $CONNS "$T/hup_churn.json" -H 'Connection: close'
for _ in 1 2 3 4; do
    sleep 0.5
    kill -HUP "$SV"
    n=$((n + 1))
    wait_count "reload done" "$n" 5
done
wait "$LOAD_PID" || true
failed=$(total "$T/hup_churn.json" failed)
reqs=$(total "$T/hup_churn.json" requests)
log "four reloads under connection churn: $reqs requests, $failed failed"
[ "$reqs" -gt 1000 ] || fail "too few requests under churn ($reqs)"
assert_eq "$failed" 0 "failed requests across reloads with connection churn ($(errors "$T/hup_churn.json"))"
W4=$(worker_pid)
assert_ne "$W4" "$W3" "reload started a new worker"

# ---- SIGHUP with an invalid file: errors logged, the running worker keeps serving ----
cp "$T/gw.yaml" "$T/gw.good"
printf 'logging: {level: loud}\nbogus: 1\n' >>"$T/gw.yaml"
kill -HUP "$SV"
wait_log "reload failed" 5
assert_contains "$(cat "$T/gw.log")" "gw.yaml:" "reload errors carry file positions"
assert_contains "$(cat "$T/gw.log")" "bogus: unknown key" "every reload error is logged"
assert_contains "$(cat "$T/gw.log")" "logging.level" "every reload error is logged"
assert_eq "$(http_status "http://127.0.0.1:$gw_port/fast")" 200 "still serving after a bad reload"
assert_eq "$(worker_pid)" "$W4" "same worker after a bad reload"

# ---- max_requests: recycled gracefully, zero failed requests ----
gw_config 200
kill -HUP "$SV"
wait_log "recycle after" 5
before=$(count_log ": recycling")
load_bg 3s 4 "$T/recycle.json"
wait "$LOAD_PID" || true
failed=$(total "$T/recycle.json" failed)
reqs=$(total "$T/recycle.json" requests)
recycles=$(( $(count_log ": recycling") - before ))
log "max_requests 200: $reqs requests, $failed failed, $recycles recycles"
[ "$reqs" -ge 1000 ] || fail "too few requests ($reqs) to see recycling"
[ "$recycles" -ge 3 ] || fail "expected at least 3 recycles for $reqs requests, got $recycles"
assert_eq "$failed" 0 "failed requests across recycling ($(errors "$T/recycle.json"))"
if metrics=$(curl -s --max-time 2 "http://127.0.0.1:$admin_port/metrics") && [ -n "$metrics" ]; then
    r=$(grep -E '^apigate_worker_restarts(_total)? ' <<<"$metrics" | awk '{print $2}' | head -n1)
    if [ -n "$r" ]; then
        log "restarts metric: $r"
        [ "${r%.*}" -ge 3 ] || fail "restarts metric $r does not count the recycles"
    fi
fi

# ---- SIGTERM: stop accepting, let the in-flight slow request finish, exit 0 ----
gw_config 0
n=$(count_log "reload done")
kill -HUP "$SV"
wait_count "reload done" $((n + 1)) 5
curl -s -o "$T/slow.body" -w '%{http_code}' --max-time 15 "http://127.0.0.1:$gw_port/slow" \
    >"$T/slow.code" 2>/dev/null &
SLOW=$!
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$SV"
rc=0
wait "$SV" || rc=$?
took=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$SLOW" || true
assert_eq "$rc" 0 "supervisor exit code after SIGTERM"
assert_eq "$(cat "$T/slow.code")" 200 "in-flight slow request completed during the drain"
[ "$took" -ge 1500 ] || fail "supervisor exited after $took ms: it did not wait for the slow request"
log "SIGTERM: slow request completed, supervisor exited 0 after $took ms"
pgrep -P "$SV" >/dev/null && fail "workers left behind"
port_open "$gw_port" && fail "port $gw_port still open after exit"
log "all supervisor checks passed"
