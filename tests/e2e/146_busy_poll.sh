#!/usr/bin/env bash
# workers.busy_poll: under load a loop thread takes events by polling instead of sleeping
# (apigate_loop_busy_polls_total{result="event"} and the time in apigate_loop_busy_poll_seconds_total
# grow); with busy_poll: 0us it never polls; an
# idle gateway does not spin (its worker uses next to no CPU while nothing comes).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

mport=$(free_port)
read -r g1 a1 g2 a2 < <(free_ports 4)

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /fast, body_size: 200}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
gateway_config() { # gateway_config LISTEN ADMIN WORKERS_EXTRA
    cat <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
workers: {threads: 1$3}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /fast, upstream: api}
EOF
}
start_gateway polls "$g1" "$a1" < <(gateway_config "$g1" "$a1" "")
start_gateway sleeps "$g2" "$a2" < <(gateway_config "$g2" "$a2" ", busy_poll: 0us")

events() { metric_value "$1" 'apigate_loop_busy_polls_total{result="event"}'; }
sleeps() { metric_value "$1" 'apigate_loop_busy_polls_total{result="sleep"}'; }
load() { # load PORT: 2 s of 32 closed-loop connections; fails the test if requests fail
    "$APIGATE" load -q -c 32 -d 2s --max-failed 0 "http://127.0.0.1:$1/fast" >"$T/load.out" 2>&1 ||
        fail "load against :$1 failed: $(tail -n 5 "$T/load.out")"
}
# the counters reach /metrics with the worker's 250 ms tick
counted() { [ "$(events "$1")" -gt 0 ]; }

# a machine too loaded to ever leave a gap under 50 us between two batches is unlikely; three runs
for try in 1 2 3; do
    load "$g1"
    sleep 0.6
    counted "$a1" && break
    [ "$try" -lt 3 ] || fail "no busy poll caught an event in 3 load runs (sleep: $(sleeps "$a1"))"
done
spent=$(metric_value "$a1" apigate_loop_busy_poll_seconds_total)
log "busy_poll 50us: $(events "$a1") polls caught an event, $(sleeps "$a1") ended in a sleep, ${spent} s polling"
python3 -c 'import sys; sys.exit(0 if 0 < float(sys.argv[1]) < 10 else 1)' "$spent" ||
    fail "apigate_loop_busy_poll_seconds_total: $spent, expected some time polling (and < 10 s)"

load "$g2"
sleep 0.6
assert_eq "$(events "$a2")" 0 "busy_poll 0us: polls that caught an event"
assert_eq "$(sleeps "$a2")" 0 "busy_poll 0us: polls that ended in a sleep"
assert_eq "$(metric_value "$a2" apigate_loop_busy_poll_seconds_total)" 0.000000 "busy_poll 0us: time polling"

# idle after the load: the window shut, the thread sleeps; its CPU over 2 s stays near zero
worker=$(pgrep -P "$(cat "$T/polls.pid")" | head -n1)
[ -n "$worker" ] || fail "no worker process under the supervisor"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 0.5
before=$(cpu_ticks "$worker")
sleep 2
after=$(cpu_ticks "$worker")
hz=$(getconf CLK_TCK)
log "idle worker: $((after - before)) ticks of CPU in 2 s (CLK_TCK $hz)"
# a thread that kept polling would burn ~2 s; allow 10% for the ticks, the metrics and a slow VM
[ $((after - before)) -lt $((hz / 5)) ] || fail "idle worker used $((after - before)) CPU ticks in 2 s"
log "ok"
