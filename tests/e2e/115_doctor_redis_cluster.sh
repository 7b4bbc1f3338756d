#!/usr/bin/env bash
# apigate doctor --redis against a Redis Cluster (issue 15), started here on free ports: 3
# primaries with a replica each. Given one seed it discovers the other nodes and reports the
# slots served, failing nodes and primaries without a replica, and sums the nodes' keyspace
# numbers instead of judging the seed alone. Healthy: ok findings naming all 16384 slots. A primary
# killed with kill -9: its replica takes over (slots served: ok), the dead node is a failing node
# and the new primary has no replica (warnings). That primary killed too: its slots are not
# served (critical, cluster_state:fail, its ranges named). A plain redis-server gets no cluster
# finding at all.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_redis_cluster.sh"
require_cmd jq redis-server redis-cli

sev() { jq -r --arg id "$1" '[.findings[] | select(.id == $id)][0].severity' <<<"$out"; }
field() { jq -r --arg id "$1" --arg f "$2" '[.findings[] | select(.id == $id)][0][$f]' <<<"$out"; }

log "a single redis-server: no cluster findings"
SP=$(free_port)
start_bg single redis-server --port "$SP" --bind 127.0.0.1 --save '' --appendonly no
wait_port "$SP"
out=$("$APIGATE" doctor --redis "redis://127.0.0.1:$SP" --json) || fail "single: $out"
assert_eq "$(jq '[.findings[] | select(.id | startswith("redis-cluster"))] | length' <<<"$out")" 0 "cluster findings for one redis-server"
stop_bg single

log "healthy cluster: 3 primaries, 3 replicas"
start_redis_cluster 3 1
P=("${CLUSTER_PORTS[@]}")
# this test judges the cluster's shape, not the machine's speed: on a loaded machine an INFO or a
# PSYNC passes Redis's 10 ms slowlog threshold (a redis-slowlog warning seen), so the slowlog is
# off and empty, and the PING median (redis-latency) is left out of the "no warning" check
for p in "${P[@]}"; do
    redis-cli -p "$p" config set slowlog-log-slower-than 10000000 >/dev/null
    redis-cli -p "$p" slowlog reset >/dev/null
done
# keys over every primary (redis-cli -c follows MOVED): 60 keys read twice, 30 absent
for i in $(seq 1 60); do redis-cli -c -p "${P[0]}" set "user:$i" "v$i" >/dev/null; done
for r in 1 2; do for i in $(seq 1 60); do redis-cli -c -p "${P[0]}" get "user:$i" >/dev/null; done; done
for i in $(seq 1 30); do redis-cli -c -p "${P[0]}" get "nope:$i" >/dev/null; done
seed=${P[1]}
doctor() { "$APIGATE" doctor --redis "redis://127.0.0.1:$seed" --json "$@"; }
out=$(doctor) || fail "critical on a healthy cluster: $(jq -c "[.findings[] | select(.severity == \"critical\")]" <<<"$out")"
bad=$(jq -c '[.findings[] | select(.id != "redis-latency" and (.severity == "warning" or .severity == "critical"))]' <<<"$out")
assert_eq "$bad" "[]" "warnings on a healthy cluster"
assert_eq "$(sev redis-cluster-slots)" ok "slots"
assert_eq "$(field redis-cluster-slots title)" "all 16384 slots served by 3 primaries (cluster_state:ok)" "slots title"
assert_eq "$(sev redis-cluster-nodes)" ok "nodes"
assert_eq "$(field redis-cluster-nodes title)" "6 nodes (3 primaries, 3 replicas), none failing, all read" "nodes title"
assert_eq "$(sev redis-cluster-replicas)" ok "replicas"
# the keyspace numbers are the cluster's, not the seed's third of them
assert_eq "$(field redis-hit-ratio title)" "keyspace hit ratio 80.0%" "hit ratio over all nodes"
ev=$(field redis-hit-ratio evidence)
assert_contains "$ev" "keyspace_hits 120, keyspace_misses 30" "summed counters"
assert_contains "$ev" "summed over the 6 of 6 cluster nodes read" "summed over"

# the primary serving user:1, and its replica
slot=$(redis-cli -p "$seed" cluster keyslot user:1)
nodes() { redis-cli -p "$seed" cluster nodes; }
owner() { # the port of the primary serving $slot
    nodes | awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ { for (i = 9; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1]; if (s >= r[1] && s <= r[2]) { split($2, a, "[:@]"); print a[2] } } }'
}
p1=$(owner)
[ -n "$p1" ] || fail "no primary for slot $slot: $(nodes)"
if [ "$p1" = "$seed" ]; then # keep the seed alive: ask another node
    seed=${P[2]}
    [ "$(owner)" = "$p1" ] || fail "owner changed"
    [ "$p1" != "$seed" ] || seed=${P[0]}
fi
id1=$(nodes | awk -v p="127.0.0.1:$p1@" 'index($2, p) == 1 { print $1 }')
r1=$(nodes | awk -v id="$id1" '$4 == id { split($2, a, "[:@]"); print a[2] }')
[ -n "$r1" ] || fail "no replica of $p1"
[ "$r1" != "$seed" ] || seed=$(for p in "${P[@]}"; do [ "$p" != "$p1" ] && [ "$p" != "$r1" ] && echo "$p"; done | head -1)

log "kill -9 the primary on $p1: its replica $r1 takes over"
kill -KILL "$(cluster_pid "$p1")"
cluster_wait 30 "the failover to $r1" bash -c "redis-cli -p $seed cluster nodes | grep -q '127.0.0.1:$r1@[0-9]* master' && redis-cli -p $seed cluster nodes | grep '127.0.0.1:$p1@' | grep -q 'fail ' && redis-cli -p $seed cluster info | grep -q 'cluster_state:ok'"
out=$(doctor) || fail "after a failover: $out"
assert_eq "$(sev redis-cluster-slots)" ok "slots after the failover"
assert_eq "$(sev redis-cluster-nodes)" warning "a failed node"
assert_eq "$(field redis-cluster-nodes title)" "1 of 6 nodes failing, 0 not read from here" "nodes title"
assert_contains "$(field redis-cluster-nodes evidence)" "primary 127.0.0.1:$p1 (" "the dead node named"
assert_contains "$(field redis-cluster-nodes evidence)" "failed: serves no slot (replaced)" "replaced"
assert_eq "$(sev redis-cluster-replicas)" warning "the new primary has no replica"
assert_contains "$(field redis-cluster-replicas evidence)" "primary 127.0.0.1:$r1 (" "which primary"
assert_contains "$(field redis-hit-ratio evidence)" "summed over the 5 of 6 cluster nodes read" "the dead node not read"

log "kill -9 the new primary on $r1: no replica left for its slots"
ranges=$(nodes | awk -v p="127.0.0.1:$r1@" 'index($2, p) == 1 { s = ""; for (i = 9; i <= NF; i++) s = s (s ? " " : "") $i; print s }')
count=$(for r in $ranges; do a=${r%-*} b=${r#*-}; echo $((b - a + 1)); done | awk '{ s += $1 } END { print s }')
kill -KILL "$(cluster_pid "$r1")"
cluster_wait 30 "cluster_state:fail" bash -c "redis-cli -p $seed cluster info | grep -q 'cluster_state:fail' && redis-cli -p $seed cluster nodes | grep '127.0.0.1:$r1@' | grep -q 'fail '"
set +e
out=$(doctor)
code=$?
set -e
assert_eq "$code" 1 "critical: exit 1"
assert_eq "$(sev redis-cluster-slots)" critical "slots not served"
assert_eq "$(field redis-cluster-slots title)" "$count of 16384 slots not served (cluster_state:fail)" "slots title"
assert_contains "$(field redis-cluster-slots evidence)" "primary 127.0.0.1:$r1 (" "the failed primary named"
assert_contains "$(field redis-cluster-slots evidence)" "slots $ranges ($count) not served, no replica to take over" "its ranges"
assert_contains "$(field redis-cluster-slots fix)" "start the failed primary again" "fix"
assert_eq "$(sev redis-cluster-nodes)" critical "a failed primary"
log "ok"
