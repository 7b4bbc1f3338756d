#!/usr/bin/env bash
# Shared window limits (issue 15): rate_limit: {rate: 200/s, algorithm: fixed_window,
# key: header:X-Api-Key, shared: true} over three gateways and one Redis, offered ~1000/s (a third
# on each): each instance admits only within what Redis reserved for it, so the admitted rate
# summed over the gateways' own metrics, over a whole number of seconds (whole windows: a window
# fills within its first fifth here, so any 4 s span holds 4 windows' worth), is 200/s within
# 10%; counted alone each would admit 200/s (600/s in total). `apigate check` no longer warns;
# the keys in Redis are the hash-tagged window hashes; no sync fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli

read -r mport rport g1 a1 g2 a2 g3 a3 <<<"$(free_ports 8)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: /api/x, handler: echo}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
wait_port "$rport"
gw() { # gw NAME PORT ADMIN
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
    rate_limit: {rate: 200/s, algorithm: fixed_window, key: header:X-Api-Key, shared: true}
YAML
}
# metric NAME ADMIN...: the route's series summed over the gateways
metric() {
    local name=$1 a sum=0 v
    shift
    for a in "$@"; do
        v=$(curl -s --max-time 5 "http://127.0.0.1:$a/metrics" |
            awk -v n="$name" '$1 ~ "^"n"\\{" && $1 ~ /route="\/api\/"/ { print $2 }')
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
now() { date +%s.%N; }
LOADPIDS=()
load() { # load NAME PORT RATE KEY SECONDS
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

gw gw1 "$g1" "$a1"
gw gw2 "$g2" "$a2"
gw gw3 "$g3" "$a3"
chk=$("$APIGATE" check -c "$T/gw1.yaml" 2>&1) || fail "check: $chk"
assert_not_contains "$chk" "warning" "check of a shared window limit"

log "three gateways sharing a 200/s fixed window: ~333/s of k1 on each for 6 s"
load l1 "$g1" 333/s k1 6
load l2 "$g2" 333/s k1 6
load l3 "$g3" 334/s k1 6
sleep 1
t0=$(now); c0=$(metric apigate_rate_limit_admitted_total "$a1" "$a2" "$a3")
sleep 4
t1=$(now); c1=$(metric apigate_rate_limit_admitted_total "$a1" "$a2" "$a3")
keys=$(redis-cli -p "$rport" --scan --pattern '*rl:*' | sort)
wait_loads
r=$(awk -v a="$c0" -v b="$c1" -v x="$t0" -v y="$t1" 'BEGIN { printf "%.1f", (b - a) / (y - x) }')
sent=0
for f in l1 l2 l3; do sent=$((sent + $(jq '.totals.requests' "$T/$f.json"))); done
per=$(for f in l1 l2 l3; do jq -r '.status["200"] // 0' "$T/$f.json"; done | tr '\n' ' ')
log "admitted $r/s in total over $(awk -v x="$t0" -v y="$t1" 'BEGIN { printf "%.2f", y - x }') s (metrics); $sent sent in 6 s (admitted per gateway: $per)"
[ "$sent" -gt 3000 ] || fail "only $sent requests offered in 6 s (machine too loaded?)"
in_range "$r" 180 220 || fail "three gateways admitted $r/s together, not 200/s +-10%"

e=$(metric apigate_rate_limit_sync_errors_total "$a1" "$a2" "$a3")
s=$(metric apigate_rate_limit_syncs_total "$a1" "$a2" "$a3")
log "syncs $s, errors $e; keys: $(tr '\n' ' ' <<<"$keys")"
assert_eq "$e" 0 "sync errors with Redis up"
[ "$s" -gt 100 ] || fail "only $s syncs in 6 s of 3 gateways"
[ -n "$keys" ] || fail "no rate limit key in Redis"
assert_not_contains "$keys" "k1" "an API key in clear in Redis"
bad=$(grep -cvE '^apigate:rl:\{[0-9a-f]{32}\}:w:[0-9]+$' <<<"$keys" || true)
assert_eq "$bad" 0 "keys not of the form apigate:rl:{<hash>}:w:<window>: $keys"
log "ok"
