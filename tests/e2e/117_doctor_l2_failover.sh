#!/usr/bin/env bash
# doctor --gateway through a Redis Cluster failover (issue 15): a gateway with its L2 on 3
# primaries with a replica each, started here. Healthy: gw-l2 ok (6 nodes known: the seeds and
# the primaries the slot map names, each replica it was given as a seed). A primary killed with
# kill -9: until its replica takes over, a primary with slots is not connected (warning, the
# node named); after the failover the gateway counts it (/cache/stats l2.failovers), follows the
# new primary (all 16384 slots again) and the dead node serves no slot: gw-l2 is info (a
# failover, a node down that costs the L2 nothing), not a warning that would stay forever.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_redis_cluster.sh"
require_cmd curl jq redis-server redis-cli

start_redis_cluster 3 1
P=("${CLUSTER_PORTS[@]}")
read -r mport gp ap <<<"$(free_ports 3)"
start_mock mock "$mport"
start_gateway gw "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache:
  redis: {cluster: [127.0.0.1:${P[0]}]}
  redis_timeout: 200ms
  redis_reconnect: 100ms
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true}
YAML
A=http://127.0.0.1:$ap
l2() { curl -s --max-time 5 "$A/cache/stats" | jq -c ".l2 | $1"; }
wait_l2() { # JQ-CONDITION
    local deadline=$((SECONDS + 30))
    until [ "$(l2 "$1")" = true ]; do
        [ $SECONDS -lt $deadline ] || fail "waited 30s for l2 $1: $(l2 .)"
        sleep 0.1
    done
}
sev() { jq -r '[.findings[] | select(.id == "gw-l2")][0].severity' <<<"$out"; }
field() { jq -r --arg f "$1" '[.findings[] | select(.id == "gw-l2")][0][$f]' <<<"$out"; }
doctor() { "$APIGATE" doctor --gateway "$A" --window 0 --json; }

wait_l2 '.slots_covered == 16384 and .nodes_connected == .nodes_known'
out=$(doctor) || fail "$out"
assert_eq "$(sev)" ok "healthy: $(field title)"
assert_eq "$(l2 .failovers)" 0 "no failover yet"

# the victim: the primary serving /api/users/1's slot (the gateway's view names it)
victim=$(l2 '[.nodes[] | select(.role == "primary")][0].addr' | tr -d '"')
vport=${victim##*:}
log "kill -9 the primary $victim"
kill -KILL "$(cluster_pid "$vport")"
wait_l2 "[.nodes[] | select(.addr == \"$victim\")][0].connected == false"
out=$(doctor) || fail "$out"
if [ "$(l2 .failovers)" = 0 ]; then # before the failover (it takes a few seconds)
    assert_eq "$(sev)" warning "a primary with slots down"
    assert_contains "$(field evidence)" "primary $victim: NOT connected" "the primary named"
fi

log "its replica takes over: the gateway follows"
wait_l2 ".failovers >= 1 and .slots_covered == 16384 and ([.nodes[] | select(.addr == \"$victim\")][0].role == \"node\")"
for i in $(seq 1 30); do curl -s -o /dev/null -H 'Host: api.test' "http://127.0.0.1:$gp/api/users/$i"; done
out=$(doctor) || fail "$out"
assert_eq "$(sev)" info "after the failover: $(field title) / $(field evidence)"
assert_contains "$(field title)" "16384 of 16384 slots covered" "slots covered again"
assert_contains "$(field evidence)" "node $victim: NOT connected, serves no slot" "the dead node serves nothing"
assert_contains "$(field evidence)" "failover(s) since start" "the failover counted"
assert_contains "$(field fix)" "a node that serves nothing is down" "advice for the dead node"
log "ok"
