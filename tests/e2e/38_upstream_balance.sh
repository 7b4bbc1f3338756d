#!/usr/bin/env bash
# Balancing policies with a fast (2 ms) and a slow (40 ms) server: round_robin splits evenly,
# least_request and ewma send most requests to the fast server once load builds up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

fast=$(free_port)
slow=$(free_port)
gport=$(free_port)
aport=$(free_port)

cat >"$T/fast.yaml" <<'EOF'
routes:
  - {method: GET, path: '/{policy}/{id}', latency: {dist: fixed, ms: 2}, body_size: 100}
EOF
cat >"$T/slow.yaml" <<'EOF'
routes:
  - {method: GET, path: '/{policy}/{id}', latency: {dist: fixed, ms: 40}, body_size: 100}
EOF
start_mock mfast "$fast" --profile "$T/fast.yaml"
start_mock mslow "$slow" --profile "$T/slow.yaml"

start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  rr:
    servers: [127.0.0.1:$fast, 127.0.0.1:$slow]
    balance: round_robin
  lr:
    servers: [127.0.0.1:$fast, 127.0.0.1:$slow]
    balance: least_request
  ewma:
    servers: [127.0.0.1:$fast, 127.0.0.1:$slow]
    balance: ewma
routes:
  - {match: /rr/, upstream: rr}
  - {match: /lr/, upstream: lr}
  - {match: /ewma/, upstream: ewma}
EOF
G=http://127.0.0.1:$gport

# run POLICY: 4 clients × 30 sequential requests (keep-alive), then the share of the fast server.
run() {
    local policy=$1 k i pids=()
    for k in 1 2 3 4; do
        local args=()
        for i in $(seq 1 30); do args+=(-o /dev/null "$G/$policy/$k-$i"); done
        curl -s --max-time 30 -w '%{http_code}\n' "${args[@]}" >"$T/$policy.$k" &
        pids+=($!)
    done
    wait "${pids[@]}"
    assert_eq "$(cat "$T"/"$policy".* | grep -c '^200$')" 120 "$policy: answers"
    local f s
    f=$(mock_stat "$fast" 'GET /{policy}/{id}')
    s=$(mock_stat "$slow" 'GET /{policy}/{id}')
    mock_reset "$fast"
    mock_reset "$slow"
    assert_eq "$((f + s))" 120 "$policy: requests that reached the servers"
    echo "$f"
}

rr=$(run rr)
log "round_robin: fast server got $rr of 120"
assert_range "$rr" 55 65 "round robin share of the fast server"
lr=$(run lr)
log "least_request: fast server got $lr of 120"
assert_range "$lr" 80 120 "least request share of the fast server"
ew=$(run ewma)
log "ewma: fast server got $ew of 120"
assert_range "$ew" 90 120 "peak EWMA share of the fast server"
log "ok"
