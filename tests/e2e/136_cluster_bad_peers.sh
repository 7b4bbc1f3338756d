#!/usr/bin/env bash
# Issue 15's bad input for the shared cache, against fake Redis servers (Python speaking RESP,
# started here): a cluster whose node answers every keyed command -CLUSTERDOWN, a node that
# answers MOVED to itself forever, and a sentinel that names a primary nobody listens on. In each
# case, under `apigate load`: no client request fails or waits (the origin answers; the slowest
# request and the admin's /healthz stay well under a second), the L2 errors are counted
# (/cache/stats, apigate_cache_l2_errors_total), the cause is logged at most once per loop thread
# (the log limit is 10 s), and the gateway asks the fake a bounded number of times (no tight
# retry loop: counted per command by the fake).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

read -r mport fport dead <<<"$(free_ports 3)"
start_mock mock "$mport"

# The fake: answers RESP commands by the mode in $T/mode (clusterdown | movedself | sentinel, read
# at each connection), appending each command's name to $T/cmds.
echo clusterdown >"$T/mode"
start_tcp_server fake "$fport" "$dead" <<PY
import socket, sys, threading
port, dead = int(sys.argv[1]), sys.argv[2]
mode = None
logf = open("$T/cmds", "a", buffering=1)
lock = threading.Lock()
def bulk(s):
    s = s.encode() if isinstance(s, str) else s
    return b"\$%d\r\n%s\r\n" % (len(s), s)
def answer(argv):
    name = argv[0].upper()
    sub = argv[1].upper() if len(argv) > 1 else b""
    with lock:
        logf.write((name + (b" " + sub if name in (b"CLUSTER", b"SENTINEL") else b"")).decode(
            errors="replace") + "\n")
    if name == b"PING":
        return b"+PONG\r\n"
    if name == b"SUBSCRIBE":
        return b"*3\r\n" + bulk("subscribe") + bulk(argv[1]) + b":1\r\n"
    if mode == "sentinel":
        if name == b"SENTINEL" and sub == b"GET-MASTER-ADDR-BY-NAME":
            return b"*2\r\n" + bulk("127.0.0.1") + bulk(dead)
        return b"-ERR unknown command\r\n"
    if name == b"CLUSTER" and sub == b"SLOTS":
        return (b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n" + bulk("127.0.0.1") + b":%d\r\n" % port +
                bulk("f" * 40))
    if mode == "clusterdown":
        return b"-CLUSTERDOWN The cluster is down\r\n"
    return b"-MOVED 1 127.0.0.1:%d\r\n" % port
def parse(buf):
    # complete commands (arrays of bulk strings) at the head of buf, and what is left
    out = []
    while buf.startswith(b"*"):
        end = buf.find(b"\r\n")
        if end < 0:
            break
        n, pos, argv = int(buf[1:end]), end + 2, []
        for _ in range(n):
            e = buf.find(b"\r\n", pos)
            if e < 0 or buf[pos:pos + 1] != b"$":
                return out, buf
            ln = int(buf[pos + 1:e])
            if len(buf) < e + 2 + ln + 2:
                return out, buf
            argv.append(buf[e + 2:e + 2 + ln])
            pos = e + 2 + ln + 2
        if len(argv) < n:
            break
        out.append(argv)
        buf = buf[pos:]
    return out, buf
def serve(c):
    global mode
    mode = open("$T/mode").read().strip()
    buf = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            cmds, buf = parse(buf + d)
            c.sendall(b"".join(answer(a) for a in cmds))
    except (OSError, ValueError):
        pass
    finally:
        c.close()
PY

# run_case NAME YAML_REDIS LOG_RE: a gateway on the fake, load for 4 s, the checks.
run_case() {
    local name=$1 redis=$2 logre=$3 gp ap
    read -r gp ap <<<"$(free_ports 2)"
    : >"$T/cmds"
    local t_start=$SECONDS
    start_gateway "gw-$name" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache:
  redis: $redis
  redis_timeout: 100ms
  redis_reconnect: 100ms
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    cache: {ttl: 60s, override: true}
YAML
    cat >"$T/load-$name.yaml" <<YAML
base_url: http://127.0.0.1:$gp
vus: 4
duration: 4s
requests:
  - name: user
    path: /api/users/{{rand 1 100000}}
    headers: {Host: api.test}
YAML
    local rc=0 t0 t1 hz worst=0 i
    "$APIGATE" load run "$T/load-$name.yaml" -q --max-failed 0 --json "$T/load-$name.json" \
        >"$T/load-$name.out" 2>"$T/load-$name.err" &
    local lpid=$!
    # the admin answers on time while the load runs: no loop thread is held
    for i in $(seq 10); do
        sleep 0.3
        hz=$(curl -s -o /dev/null -w '%{time_total}' --max-time 5 "http://127.0.0.1:$ap/healthz")
        worst=$(awk -v a="$worst" -v b="$hz" 'BEGIN { print (b > a ? b : a) }')
    done
    wait "$lpid" || rc=$?
    local totals
    totals=$(jq -c '.totals | {requests, failed}' "$T/load-$name.json")
    local maxms
    maxms=$(jq -r '.latency_ms.max' "$T/load-$name.json")
    log "  $name: load $totals, slowest request ${maxms:-?} ms, slowest /healthz ${worst}s"
    assert_eq "$rc" 0 "$name: apigate load (--max-failed 0): $(tail -3 "$T/load-$name.err")"
    assert_eq "$(jq -r '.totals.failed' "$T/load-$name.json")" 0 "$name: failed client requests"
    [ "$(jq -r '.totals.requests' "$T/load-$name.json")" -ge 100 ] || fail "$name: too few requests"
    awk -v w="$worst" 'BEGIN { exit !(w < 1.0) }' || fail "$name: /healthz took ${worst}s"
    awk -v m="$maxms" 'BEGIN { exit !(m < 1000) }' || fail "$name: a request took $maxms ms"
    # counted
    local errs
    errs=$(curl -s "http://127.0.0.1:$ap/cache/stats" | jq -r '.l2.errors')
    [ "$errs" -gt 0 ] || fail "$name: no L2 error counted"
    local merr
    merr=$(curl -s "http://127.0.0.1:$ap/metrics" |
        awk '$1 ~ /^apigate_cache_l2_errors_total/ { s += $2 } END { print s + 0 }')
    [ "${merr%.*}" -gt 0 ] || fail "$name: apigate_cache_l2_errors_total is $merr"
    # logged at most once per loop thread per 10 s (and at least once): 2 lines for a case of
    # under 10 s, one more per thread for each further 10 s a slow machine took
    local nlog most=$((2 * (1 + (SECONDS - t_start) / 10)))
    nlog=$(grep -c -E "$logre" "$T/gw-$name.log" || true)
    log "  $name: $errs L2 errors counted, $nlog log lines matching /$logre/ (at most $most)"
    [ "$nlog" -ge 1 ] && [ "$nlog" -le "$most" ] ||
        fail "$name: $nlog log lines: $(grep -E "$logre" "$T/gw-$name.log")"
    # bounded: how often the fake was asked what
    log "  $name: the fake got $(sort "$T/cmds" | uniq -c | sort -rn | awk '{ n = $1; $1 = ""; printf "%s%s x%s", sep, n, $0; sep = ", " }')"
    CASE_GP=$gp CASE_AP=$ap
}
cmds_of() { grep -c -- "^$1" "$T/cmds" || true; }

log "a cluster that answers -CLUSTERDOWN"
run_case clusterdown "{cluster: [127.0.0.1:$fport]}" 'cache l2: redis .*CLUSTERDOWN'
lookups=$(cmds_of MGET)
# the slot map is read on a timer (5 s), not after each error
[ "$(cmds_of 'CLUSTER SLOTS')" -le 20 ] || fail "CLUSTER SLOTS asked $(cmds_of 'CLUSTER SLOTS') times"
[ "$lookups" -ge 100 ] || fail "only $lookups lookups reached the fake"
stop_bg gw-clusterdown

log "a node that answers MOVED to itself, forever"
echo movedself >"$T/mode"
run_case movedself "{cluster: [127.0.0.1:$fport]}" 'cache l2: redis .*redirected 3 times'
lookups=$(cmds_of MGET)
redirects=$(curl -s "http://127.0.0.1:$CASE_AP/cache/stats" | jq -r '.l2.redirects')
log "  movedself: $lookups MGETs reached the fake, $redirects redirects followed"
[ "$redirects" -gt 0 ] || fail "no redirect counted"
# each MOVED asks for the slot map soon: at most one CLUSTER SLOTS per 100 ms per thread
[ "$(cmds_of 'CLUSTER SLOTS')" -le 150 ] || fail "CLUSTER SLOTS asked $(cmds_of 'CLUSTER SLOTS') times"
stop_bg gw-movedself

log "a sentinel that names a primary nobody listens on"
echo sentinel >"$T/mode"
run_case sentinel "{sentinels: [127.0.0.1:$fport], master: mymaster}" \
    "cache l2: redis 127.0.0.1:$dead connect failed"
# asked every second per thread, and again after each failed connect: not in a tight loop
asks=$(cmds_of 'SENTINEL GET-MASTER-ADDR-BY-NAME')
log "  sentinel: asked for the primary $asks times"
[ "$asks" -le 200 ] || fail "the sentinel was asked $asks times"
log "ok"
