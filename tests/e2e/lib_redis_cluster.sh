# A Redis Cluster for e2e tests, on free ports, its nodes started with start_bg (stopped by the
# EXIT trap; kill one by its PID with cluster_pid). Source after lib.sh:
#
#   . "$(dirname "$0")/lib_redis_cluster.sh"
#   start_redis_cluster 3 1      # 3 primaries, 1 replica each: CLUSTER_PORTS=(p0 p1 ...)
#   redis-cli -p "${CLUSTER_PORTS[0]}" cluster nodes
#
# Nodes are named rnode0..rnodeN-1 (logs $T/rnodeI.log); cluster-node-timeout is 1000 ms, so a
# killed primary is failed over (or marked fail) within a few seconds.

CLUSTER_PORTS=()

# start_redis_cluster PRIMARIES REPLICAS_PER_PRIMARY: starts the nodes, creates the cluster and
# waits until every node says cluster_state:ok and every replica's link to its primary is up.
start_redis_cluster() {
    local primaries=$1 replicas=$2 n i
    n=$((primaries * (1 + replicas)))
    local ports
    read -r -a ports <<<"$(free_ports $((n * 2)))" # client ports, then bus ports
    CLUSTER_PORTS=("${ports[@]:0:$n}")
    for ((i = 0; i < n; i++)); do
        mkdir -p "$T/rnode$i"
        start_bg "rnode$i" redis-server --port "${ports[$i]}" --cluster-port "${ports[$((i + n))]}" \
            --cluster-enabled yes --cluster-config-file "$T/rnode$i/nodes.conf" --dir "$T/rnode$i" \
            --cluster-node-timeout 1000 --bind 127.0.0.1 --save '' --appendonly no \
            --repl-diskless-sync-delay 0
    done
    for ((i = 0; i < n; i++)); do wait_port "${ports[$i]}"; done
    redis-cli --cluster create $(for ((i = 0; i < n; i++)); do printf '127.0.0.1:%s ' "${ports[$i]}"; done) \
        --cluster-replicas "$replicas" --cluster-yes >"$T/cluster-create.log" 2>&1 ||
        fail "cluster create: $(cat "$T/cluster-create.log")"
    local ok
    for _ in $(seq 200); do
        ok=0
        for ((i = 0; i < n; i++)); do
            # ok, and a replica in sync with its primary (a replica never synced cannot fail over)
            redis-cli -p "${ports[$i]}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' &&
                ! redis-cli -p "${ports[$i]}" info replication 2>/dev/null | grep -q 'master_link_status:down' &&
                ok=$((ok + 1))
        done
        [ "$ok" = "$n" ] && return 0
        sleep 0.1
    done
    fail "the cluster did not come up ($ok of $n nodes ok)"
}

# cluster_pid PORT: the PID of the node listening on PORT.
cluster_pid() {
    local i
    for i in "${!CLUSTER_PORTS[@]}"; do
        [ "${CLUSTER_PORTS[$i]}" = "$1" ] || continue
        cat "$T/rnode$i.pid"
        return 0
    done
    fail "no cluster node on port $1"
}

# cluster_wait TIMEOUT_S WHAT CMD...: runs CMD every 0.1 s until it succeeds; fails the test
# ("waited ... for WHAT") after TIMEOUT_S.
cluster_wait() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "waited ${timeout}s for $what"
        sleep 0.1
    done
}
