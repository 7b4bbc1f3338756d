#!/usr/bin/env bash
# Gateway context in load reports: with --gateway-admin, the gateway's /stats is sampled each
# second and the reports add its cache hit ratio, the requests its origin answered and its CPU per
# 1k requests, for the run and per second, next to latency (text, JSON, HTML). A cached route
# shows a high hit ratio and few origin requests; an uncached route no hit ratio and every request
# at the origin; an address that is not an apigate admin is refused before the run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq

read -r mport gport aport <<<"$(free_ports 3)"
start_mock mock "$mport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/catalog/
    upstream: api
    cache: {ttl: 60s, override: true}
  - match: /
    upstream: api
YAML

log "a cached route through the gateway"
"$APIGATE" load -q -c 4 -d 3s --gateway-admin "http://127.0.0.1:$aport" --json "$T/c.json" \
    --html "$T/c.html" "http://127.0.0.1:$gport/api/catalog/products" >"$T/c.out"
reqs=$(jq '.totals.requests' "$T/c.json")
[ "$reqs" -gt 300 ] || fail "too few requests: $reqs"
hr=$(jq '.gateway.hit_ratio' "$T/c.json")
[ "$(jq -n "$hr > 0.95")" = true ] || fail "hit ratio $hr"
origin=$(jq '.gateway.origin_requests' "$T/c.json")
assert_range "$origin" 1 5 "origin requests for one cached URL"
[ "$(jq '.gateway.requests' "$T/c.json")" -ge "$reqs" ] || fail "the gateway counted fewer requests than were sent"
cpu=$(jq '.gateway.cpu_ms_per_1k' "$T/c.json")
[ "$(jq -n "$cpu > 0 and $cpu < 100000")" = true ] || fail "CPU per 1k requests: $cpu"
[ "$(jq '[.series[] | select(.gw_hit_ratio != null)] | length' "$T/c.json")" -ge 2 ] ||
    fail "no per-second gateway values: $(jq -c '.series' "$T/c.json")"
out=$(cat "$T/c.out")
assert_contains "$out" "gateway_cache_hit_ratio"
assert_contains "$out" "gateway_cpu_per_1k_requests"
assert_contains "$(cat "$T/c.html")" "<canvas id=chart-gw>"
assert_contains "$(cat "$T/c.html")" "gateway cache hit ratio"

log "an uncached route: no hit ratio, every request at the origin"
"$APIGATE" load -q -c 4 -d 2s --gateway-admin "http://127.0.0.1:$aport/" --json "$T/u.json" \
    "http://127.0.0.1:$gport/api/health" >/dev/null
assert_eq "$(jq '.gateway.hit_ratio' "$T/u.json")" null "hit ratio of an uncached route"
u_reqs=$(jq '.totals.requests' "$T/u.json")
u_origin=$(jq '.gateway.origin_requests' "$T/u.json")
[ "$u_origin" -ge "$u_reqs" ] || fail "origin requests $u_origin < requests $u_reqs"

log "compare shows the gateway's side of both runs"
"$APIGATE" load compare "$T/u.json" "$T/c.json" --json "$T/cmp.json" >"$T/cmp.out"
grep -Eq '^ +gateway origin requests +[0-9]+ +[0-9]+' "$T/cmp.out" || fail "no origin row: $(cat "$T/cmp.out")"
grep -Eq '^ +gateway hit ratio +- +[0-9.]+%' "$T/cmp.out" || fail "no hit ratio row (- for the uncached run): $(cat "$T/cmp.out")"
assert_eq "$(jq '.metrics[] | select(.key == "gw_hit_ratio") | .values[0]' "$T/cmp.json")" null "uncached run's hit ratio"
rc=0
"$APIGATE" load compare "$T/c.json" "$T/u.json" --fail-on 'gw_origin>+100%' >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 1 "origin requests grew (cached -> uncached route) with --fail-on gw_origin>+100%"

log "not an apigate admin: refused before the run"
rc=0
"$APIGATE" load -q -c 1 -d 1s --gateway-admin "http://127.0.0.1:$mport" "http://127.0.0.1:$gport/" \
    >/dev/null 2>"$T/bad.err" || rc=$?
assert_eq "$rc" 2 "--gateway-admin at the mock"
assert_contains "$(cat "$T/bad.err")" "no apigate /stats answered at http://127.0.0.1:$mport/stats"
log "ok"
