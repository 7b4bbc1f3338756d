#!/usr/bin/env bash
# Hot error sites log at most one line per cause per second, with the count of the lines they
# swallowed (ag_log_limited): a gateway out of file descriptors sees accept() fail with EMFILE on
# every new connection and every retry, and wrote one line for each (351 in one burst); now a
# line a second per cause.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

read -r mport gport aport <<<"$(free_ports 3)"
start_mock mock "$mport"
cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
EOF
# few descriptors: the worker runs out after a few dozen client connections
start_bg gw bash -c "ulimit -n 64 && exec \"\$0\" serve -c \"\$1\"" "$APIGATE" "$T/gw.yaml"
wait_port "$gport"
wait_port "$aport"

log "300 connections held for 3 s against 64 descriptors"
python3 - "$gport" <<'EOF'
import socket, sys, time
socks = []
for i in range(300):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
    if i % 30 == 0:
        time.sleep(0.1)
time.sleep(3)
for s in socks:
    s.close()
EOF
sleep 0.5
n=$(grep -c 'accept: Too many open files' "$T/gw.log" || true)
log "accept error lines: $n"
assert_range "$n" 1 8 "one accept error line per second at most (about 4 s of EMFILE)"
grep -q 'accept: Too many open files (.* similar lines suppressed)' "$T/gw.log" ||
    fail "no line counts the suppressed ones: $(grep accept: "$T/gw.log" | head -5)"
assert_eq "$(http_status "http://127.0.0.1:$gport/api/health")" 200 "served once descriptors are free"
log "ok"
