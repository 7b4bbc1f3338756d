#!/usr/bin/env bash
# Shared window limits (issue 15): rate_limit: {rate: 200/s, algorithm: fixed_window,
# key: header:X-Api-Key, shared: true} over three gateways and one Redis, offered ~1000/s (a third
# on each): each instance admits only within what Redis reserved for it, so the admitted rate
# summed over the gateways' own metrics, over whole windows (read mid-second: below), is 200/s within
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
metric() { route_metric_sum "$1" /api/ "${@:2}"; } # NAME ADMIN...: /api/'s, summed
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

log "three gateways sharing a 200/s fixed window: ~333/s of k1 on each for 8 s"
load l1 "$g1" 333/s k1 8
load l2 "$g2" 333/s k1 8
load l3 "$g3" 334/s k1 8
# sample: the admitted total, read in the second half of a wall-clock second (Redis's windows
# are whole seconds of the same clock, and each fills within its first ~0.2 s here), so two
# samples N seconds apart hold exactly N windows whatever the reads' latency. Sets S_SEC, S_VAL.
sample() {
    local t d i e
    for i in 1 2 3; do
        t=$(now)
        d=$(awk -v t="$t" 'BEGIN { f = t - int(t); d = 0.5 - f; if (d < 0) d += 1; printf "%.3f", d }')
        sleep "$d"
        t=$(now)
        S_VAL=$(metric apigate_rate_limit_admitted_total "$a1" "$a2" "$a3")
        e=$(now)
        S_SEC=$(awk -v t="$t" 'BEGIN { printf "%d", t }')
        # the reads stayed within the second's half after its fill: the sample is good
        awk -v t="$t" -v e="$e" -v s="$S_SEC" 'BEGIN { exit !(e < s + 0.97) }' && return 0
    done
    fail "no metrics read within half a second in 3 tries: the machine is too loaded"
}
sleep 1
sample
s0=$S_SEC c0=$S_VAL
sleep 3.2
sample
s1=$S_SEC c1=$S_VAL
keys=$(redis-cli -p "$rport" --scan --pattern '*rl:*' | sort)
wait_loads
r=$(awk -v a="$c0" -v b="$c1" -v x="$s0" -v y="$s1" 'BEGIN { printf "%.1f", (b - a) / (y - x) }')
sent=0
for f in l1 l2 l3; do sent=$((sent + $(jq '.totals.requests' "$T/$f.json"))); done
per=$(for f in l1 l2 l3; do jq -r '.status["200"] // 0' "$T/$f.json"; done | tr '\n' ' ')
log "admitted $r/s in total over the $((s1 - s0)) windows $s0..$s1 (metrics); $sent sent in 8 s (admitted per gateway: $per)"
[ "$sent" -gt 3000 ] || fail "only $sent requests offered in 8 s (machine too loaded?)"
in_range "$r" 180 220 || fail "three gateways admitted $r/s together, not 200/s +-10%"

e=$(metric apigate_rate_limit_sync_errors_total "$a1" "$a2" "$a3")
s=$(metric apigate_rate_limit_syncs_total "$a1" "$a2" "$a3")
log "syncs $s, errors $e; keys: $(tr '\n' ' ' <<<"$keys")"
assert_eq "$e" 0 "sync errors with Redis up"
[ "$s" -gt 100 ] || fail "only $s syncs in 8 s of 3 gateways"
[ -n "$keys" ] || fail "no rate limit key in Redis"
assert_not_contains "$keys" "k1" "an API key in clear in Redis"
bad=$(grep -cvE '^apigate:rl:\{[0-9a-f]{32}\}:w:[0-9]+$' <<<"$keys" || true)
assert_eq "$bad" 0 "keys not of the form apigate:rl:{<hash>}:w:<window>: $keys"
log "ok"
