#!/usr/bin/env bash
# apigate doctor --redis given a Redis Sentinel (issue 15's other shape of shared Redis): a
# primary, a replica and three sentinels started here. A Sentinel holds no keys, so it is judged on
# what it monitors: each primary up, a replica in service to promote, enough sentinels for a
# failover (SENTINEL MASTERS, REPLICAS, CKQUORUM), never on a keyspace ratio or a maxmemory it
# does not have. Healthy: ok. The replica killed with kill -9: warning (nothing to promote). The
# primary killed too: critical (down, no replica in service).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq redis-server redis-cli redis-sentinel

read -r p0 p1 s0 s1 s2 <<<"$(free_ports 5)"
start_bg primary redis-server --port "$p0" --bind 127.0.0.1 --save '' --appendonly no
start_bg replica redis-server --port "$p1" --bind 127.0.0.1 --save '' --appendonly no \
    --replicaof 127.0.0.1 "$p0"
wait_port "$p0"
wait_port "$p1"
for s in "$s0" "$s1" "$s2"; do
    cat >"$T/sentinel-$s.conf" <<CONF
port $s
bind 127.0.0.1
dir $T
sentinel monitor mymaster 127.0.0.1 $p0 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 60000
CONF
    start_bg "sentinel-$s" redis-sentinel "$T/sentinel-$s.conf"
done
for s in "$s0" "$s1" "$s2"; do wait_port "$s"; done
sc() { redis-cli -p "$s0" "$@"; }
wait_for() { # TIMEOUT WHAT CMD...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "waited for $what"
        sleep 0.1
    done
}
healthy() {
    sc sentinel ckquorum mymaster 2>/dev/null | grep -q '^OK' &&
        [ "$(sc sentinel master mymaster | awk 'p { print; exit } $0 == "num-other-sentinels" { p = 1 }')" = 2 ] &&
        sc sentinel replicas mymaster | grep -q "$p1" &&
        [ "$(redis-cli -p "$p1" info replication | tr -d '\r' | awk -F: '$1 == "master_link_status" { print $2 }')" = up ]
}
wait_for 30 "the sentinels to see the primary, the replica and each other" healthy
doctor() { "$APIGATE" doctor --redis "redis://127.0.0.1:$s0" --json "$@"; }
sev() { jq -r '[.findings[] | select(.id == "redis-sentinel")][0].severity' <<<"$out"; }
field() { jq -r --arg f "$1" '[.findings[] | select(.id == "redis-sentinel")][0][$f]' <<<"$out"; }

log "healthy"
out=$(doctor --fail-on warning) || fail "warnings: $(jq -c '[.findings[] | select(.severity != "ok")]' <<<"$out")"
assert_eq "$(sev)" ok "sentinel"
assert_eq "$(field title)" "mymaster: primary 127.0.0.1:$p0, 1 of 1 replicas in service, 3 sentinels (quorum 2)" "title"
assert_contains "$(field evidence)" "apigate doctor --redis redis://127.0.0.1:$p0" "points at the primary for the keyspace"
for id in redis-hit-ratio redis-memory redis-evictions redis-slowlog; do
    assert_eq "$(jq --arg id "$id" '[.findings[] | select(.id == $id)] | length' <<<"$out")" 0 "no $id for a Sentinel"
done

log "kill -9 the replica: nothing to promote"
kill -KILL "$(cat "$T/replica.pid")"
wait_for 30 "the sentinel to mark the replica down" bash -c "redis-cli -p $s0 sentinel replicas mymaster | grep -q s_down"
out=$(doctor) || fail "$out"
assert_eq "$(sev)" warning "no replica in service"
assert_eq "$(field title)" "mymaster: primary 127.0.0.1:$p0, 0 of 1 replicas in service, 3 sentinels (quorum 2)" "title"
assert_contains "$(field fix)" "no replica in service" "fix"

log "kill -9 the primary too: down, nothing to promote"
kill -KILL "$(cat "$T/primary.pid")"
wait_for 30 "the sentinels to agree the primary is down" bash -c "redis-cli -p $s0 sentinel master mymaster | grep -q o_down"
set +e
out=$(doctor)
code=$?
set -e
assert_eq "$code" 1 "critical: exit 1"
assert_eq "$(sev)" critical "primary down"
assert_contains "$(field title)" "mymaster: primary 127.0.0.1:$p0 is down (" "title"
assert_contains "$(field fix)" "no replica in service to promote" "fix"
log "ok"
