#!/usr/bin/env bash
# Memory stays flat over a run: latencies go into histograms, not stored samples, so the resident
# size after 8 s of full-speed requests is the size after 2 s (a sample per request would add
# 8 bytes × tens of thousands of requests per second).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq

port=$(free_port)
start_mock mock "$port"
"$APIGATE" load -q -c 32 -d 9s --json "$T/m.json" "http://127.0.0.1:$port/api/health" >/dev/null &
pid=$!
rss() { awk '/VmRSS/ { print $2 }' "/proc/$pid/status"; }
sleep 2
early=$(rss)
sleep 6
late=$(rss)
wait $pid
reqs=$(jq '.totals.requests' "$T/m.json")
log "RSS ${early} kB after 2 s, ${late} kB after 8 s, $reqs requests"
[ "$reqs" -gt 20000 ] || fail "too few requests to tell: $reqs"
[ $((late - early)) -lt 512 ] || fail "memory grew by $((late - early)) kB over 6 s"
log "ok"
