#!/usr/bin/env bash
# The rate limit filter's cost on the hottest path (issue 15's goal: CPU per request on a cache-hit
# route at most 1.1x without the filter for a local limit, 1.3x for a shared one). Runs
# bench/cache_hit.sh with SERVERS="apigate apigate_rl apigate_rls": the same cache-hit route
# without a limit, with a local rate_limit that admits everything, and with the same limit shared
# through a redis-server (on the load generator's CPU); wrk sends X-Api-Key with one of KEYS keys
# per request (so the shared limit syncs KEYS active keys every 50 ms). Prints cache_hit.sh's
# table, then the CPU ratios. Not a test.
# Usage: bench/ratelimit.sh [APIGATE_BINARY]   env: KEYS=100 DURATION=10s RUNS=3 CONNS=64
set -euo pipefail
. "$(dirname "$0")/lib.sh"
KEYS=${KEYS:-100}
W=$(mktemp -d /tmp/apigate-rlbench.XXXXXX)
trap 'rm -rf "$W"' EXIT
cat >"$W/keys.lua" <<LUA
-- one of $KEYS API keys per request
local n = $KEYS
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", nil, {["X-Api-Key"] = "key-" .. (i % n)})
end
LUA
WRK_SCRIPT="$W/keys.lua" SERVERS="apigate apigate_rl apigate_rls" \
    "$(dirname "$0")/cache_hit.sh" "$@" | tee "$W/table.md"
cpu() { awk -F'|' -v n="$1" '$2 ~ "^ "n" $" { gsub(/ /, "", $5); print $5 }' "$W/table.md"; }
base=$(cpu apigate) loc=$(cpu apigate_rl) sh=$(cpu apigate_rls)
echo
awk -v b="$base" -v l="$loc" -v s="$sh" -v k="$KEYS" 'BEGIN {
    printf "CPU per request on a cache hit, %d API keys: no limit %.2f us, local %.2f us (%.2fx, goal <= 1.1x), shared %.2f us (%.2fx, goal <= 1.3x)\n", k, b, l, l / b, s, s / b }'
