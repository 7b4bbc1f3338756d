#!/usr/bin/env bash
# Shared rate limits (issue 15): rate_limit: {rate: 200/s, burst: 50, key: header:X-Api-Key,
# shared: true} counted through the Redis of cache.redis, with admission local (a request never
# waits for Redis; each gateway syncs its active keys every 50 ms). One gateway, then three
# gateways behind no balancer at all (each gets a third of the load), offered ~1000/s with one API
# key: the admitted rate summed over the gateways' own metrics, measured after the first second
# (the burst), is 200/s within 10%; a second API key at 80/s spread over the gateways is never
# limited; the keys in Redis carry no API key in clear; the sync metrics count.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli python3

read -r mport rport g1 a1 g2 a2 g3 a3 <<<"$(free_ports 8)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/x, handler: echo}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
wait_port "$rport"
gw() { # gw NAME PORT ADMIN: the issue's route as written
    start_gateway "$1" "$2" "$3" <<YAML
listen: 127.0.0.1:$2
admin: 127.0.0.1:$3
workers: {threads: 2}
cache: {redis: "redis://127.0.0.1:$rport/0"}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    rate_limit: {rate: 200/s, burst: 50, key: header:X-Api-Key, shared: true}
YAML
}
metric() { route_metric_sum "$1" /api/ "${@:2}"; } # NAME ADMIN...: /api/'s, summed
now() { date +%s.%N; }

# measure SECONDS ADMIN...: admitted/s over the gateways between 1 s after the load starts (the
# burst spent) and its end, from their metrics; the loads run in the background meanwhile
measure() {
    local dur=$1
    shift
    sleep 1
    local t0 c0 t1 c1
    t0=$(now); c0=$(metric apigate_rate_limit_admitted_total "$@")
    sleep "$dur"
    t1=$(now); c1=$(metric apigate_rate_limit_admitted_total "$@")
    awk -v a="$c0" -v b="$c1" -v x="$t0" -v y="$t1" 'BEGIN { printf "%.1f", (b - a) / (y - x) }'
}
# load NAME PORT RATE KEY SECONDS: apigate load in the background (pid in $LOADPIDS)
LOADPIDS=()
load() {
    "$APIGATE" load -q -t 1 -c 16 --rate "$3" -d "$5s" --max-failed 100% -H "X-Api-Key: $4" \
        --json "$T/$1.json" "http://127.0.0.1:$2/api/x" >"$T/$1.out" 2>&1 &
    LOADPIDS+=($!)
}
wait_loads() {
    local p
    for p in "${LOADPIDS[@]}"; do wait "$p" || fail "a load failed: $(tail -3 "$T"/*.out)"; done
    LOADPIDS=()
}
in_range() { awk -v r="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r >= lo && r <= hi) }'; }

log "check: the issue's shape loads without a warning now"
gw gw1 "$g1" "$a1"
chk=$("$APIGATE" check -c "$T/gw1.yaml" 2>&1) || fail "check: $chk"
assert_not_contains "$chk" "warning" "check of a shared limit"

log "one gateway, shared: 1000/s offered with key k1 for 5 s"
load one "$g1" 1000/s k1 5
r=$(measure 3.5 "$a1")
wait_loads
log "one gateway: $r/s admitted (metrics, after the burst); load: $(jq -c .status "$T/one.json")"
in_range "$r" 180 220 || fail "one gateway admitted $r/s, not 200/s +-10%"

gw gw2 "$g2" "$a2"
gw gw3 "$g3" "$a3"
log "three gateways sharing 200/s: ~333/s of k3 on each (1000/s in total) for 5 s"
load l1 "$g1" 333/s k3 5
load l2 "$g2" 333/s k3 5
load l3 "$g3" 334/s k3 5
s0=$(metric apigate_rate_limit_syncs_total "$a1" "$a2" "$a3")
r=$(measure 3.5 "$a1" "$a2" "$a3")
wait_loads
sent=0 ok=0
for f in l1 l2 l3; do
    sent=$((sent + $(jq '.totals.requests' "$T/$f.json")))
    ok=$((ok + $(jq '.status["200"] // 0' "$T/$f.json")))
done
per=$(for f in l1 l2 l3; do jq -r '.status["200"] // 0' "$T/$f.json"; done | tr '\n' ' ')
log "three gateways: $r/s admitted in total (metrics, after the burst); k3: $sent sent, $ok admitted in 5 s (per gateway: $per)"
[ "$sent" -gt 3000 ] || fail "k3 offered only $sent requests in 5 s (machine too loaded?)"
in_range "$r" 180 220 || fail "three gateways admitted $r/s together, not 200/s +-10%"

log "two keys apart: k5 at ~1000/s over the three, k4 at 80/s over two of them, 4 s"
load m1 "$g1" 333/s k5 4
load m2 "$g2" 333/s k5 4
load m3 "$g3" 334/s k5 4
load k4a "$g1" 40/s k4 4
load k4b "$g3" 40/s k4 4
sleep 1.5
keys=$(redis-cli -p "$rport" --scan --pattern '*rl:*' | sort)
wait_loads
lim4=0 ok4=0 ok5=0 d5=0
for f in k4a k4b; do
    lim4=$((lim4 + $(jq '.status["429"] // 0' "$T/$f.json")))
    ok4=$((ok4 + $(jq '.status["200"] // 0' "$T/$f.json")))
done
for f in m1 m2 m3; do ok5=$((ok5 + $(jq '.status["200"] // 0' "$T/$f.json"))); done
d5=$(jq '.duration_s' "$T/m1.json")
r5=$(awk -v n="$ok5" -v d="$d5" 'BEGIN { printf "%.1f", (n - 50) / d }')
log "k4: $ok4 admitted, $lim4 limited; k5: $ok5 admitted in ${d5}s = $r5/s after its burst"
[ "$lim4" = 0 ] || fail "k4 (80/s, under its own limit) got $lim4 429s: keys are not apart"
[ "$ok4" -gt 250 ] || fail "k4 got only $ok4 answers"
in_range "$r5" 170 230 || fail "k5 admitted $r5/s beside k4, not about 200/s"

log "sync metrics, Redis keys"
s1=$(metric apigate_rate_limit_syncs_total "$a1" "$a2" "$a3")
e1=$(metric apigate_rate_limit_sync_errors_total "$a1" "$a2" "$a3")
f1=$(metric apigate_rate_limit_fallback "$a1" "$a2" "$a3")
log "syncs $s0 -> $s1, errors $e1, fallback $f1"
[ "$((s1 - s0))" -gt 100 ] || fail "only $((s1 - s0)) syncs in 5 s of 3 gateways"
assert_eq "$e1" 0 "sync errors with Redis up"
assert_eq "$f1" 0 "fallback gauge with Redis up"
log "keys (during the k4/k5 load): $(tr '\n' ' ' <<<"$keys")"
[ -n "$keys" ] || fail "no rate limit key in Redis"
# one per API key: k4 and k5, and k3's until it expires (2.25 s after its last admission)
nk=$(wc -l <<<"$keys")
[ "$nk" -ge 2 ] && [ "$nk" -le 3 ] || fail "$nk keys in Redis for 2 or 3 API keys"
assert_not_contains "$keys" "k5" "an API key in clear in Redis"
assert_not_contains "$keys" "k4" "an API key in clear in Redis"
bad=$(grep -cvE '^apigate:rl:\{[0-9a-f]{32}\}$' <<<"$keys" || true)
assert_eq "$bad" 0 "keys not of the form apigate:rl:{<hash>}: $keys"
log "ok"
