#!/usr/bin/env bash
# Cluster nodes and primaries named by host name (Redis 7's cluster-preferred-endpoint-type
# hostname, Sentinel's announce-hostnames): the gateway never hands a name to hiredis, which would
# resolve it with a blocking getaddrinfo on a loop thread (seconds when DNS is slow: every
# client request of that thread waits). Fake RESP servers started here, "localhost" as the name
# (so the old behaviour, resolving it, shows as a connection to the fake node):
#   meta:     CLUSTER SLOTS names the node "localhost" with its "ip" in the entry's metadata
#             (what Redis 7 sends): the gateway uses the ip, lookups reach the node
#   name:     CLUSTER SLOTS names it by host name only: its slots stay unserved, logged, counted
#   moved:    the seed serves every slot and answers MOVED to localhost:PORT: not followed
#   sentinel: the sentinel names the primary localhost:PORT: not used, logged
# In every case client requests are answered (0 failed) and no node is ever called "localhost".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

read -r mport fport nport <<<"$(free_ports 3)"
start_mock mock "$mport"

# The fake (one script, two processes: the seed/sentinel on fport, the node on nport); the mode is
# read from $T/mode at each connection; each command's name is appended to $T/cmds-PORT.
cat >"$T/fake.py" <<PY
import socket, sys, threading
port, nport = int(sys.argv[1]), int(sys.argv[2])
logf = open("$T/cmds-%d" % port, "a", buffering=1)
def bulk(s):
    s = s.encode() if isinstance(s, str) else s
    return b"\$%d\r\n%s\r\n" % (len(s), s)
def answer(argv, mode):
    name = argv[0].upper()
    sub = argv[1].upper() if len(argv) > 1 else b""
    logf.write(name.decode(errors="replace") + "\n")
    if name == b"PING":
        return b"+PONG\r\n"
    if name == b"SUBSCRIBE":
        return b"*3\r\n" + bulk("subscribe") + bulk(argv[1]) + b":1\r\n"
    if name == b"SENTINEL" and sub == b"GET-MASTER-ADDR-BY-NAME":
        return b"*2\r\n" + bulk("localhost") + bulk(str(nport))
    if name == b"CLUSTER" and sub == b"SLOTS":
        if mode == "moved":
            node = b"*3\r\n" + bulk("127.0.0.1") + b":%d\r\n" % port + bulk("a" * 40)
        elif mode == "meta":
            node = (b"*4\r\n" + bulk("localhost") + b":%d\r\n" % nport + bulk("b" * 40) +
                    b"*4\r\n" + bulk("ip") + bulk("127.0.0.1") + bulk("hostname") + bulk("localhost"))
        else:
            node = b"*3\r\n" + bulk("localhost") + b":%d\r\n" % nport + bulk("b" * 40)
        return b"*1\r\n*3\r\n:0\r\n:16383\r\n" + node
    if mode == "moved" and port != nport:
        return b"-MOVED 1 localhost:%d\r\n" % nport
    if name == b"MGET":
        return b"*%d\r\n" % (len(argv) - 1) + b"\$-1\r\n" * (len(argv) - 1)
    if name == b"SET":
        return b"+OK\r\n"
    if name == b"GET":
        return b"\$-1\r\n"
    return b"-ERR not in this fake\r\n"
def parse(buf):
    out = []
    while buf.startswith(b"*"):
        end = buf.find(b"\r\n")
        if end < 0:
            break
        n, pos, argv = int(buf[1:end]), end + 2, []
        for _ in range(n):
            e = buf.find(b"\r\n", pos)
            if e < 0 or buf[pos:pos + 1] != b"\$":
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
    mode = open("$T/mode").read().strip()
    buf = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            cmds, buf = parse(buf + d)
            c.sendall(b"".join(answer(a, mode) for a in cmds))
    except (OSError, ValueError):
        pass
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
echo meta >"$T/mode"
start_bg fake-seed python3 "$T/fake.py" "$fport" "$nport"
start_bg fake-node python3 "$T/fake.py" "$nport" "$nport"
wait_port "$fport"
wait_port "$nport"

# run_case NAME REDIS: a gateway on the fakes, 40 requests; sets CASE_AP and CASE_LOG.
run_case() {
    local name=$1 redis=$2 gp ap i code bad=0
    read -r gp ap <<<"$(free_ports 2)"
    : >"$T/cmds-$fport"
    : >"$T/cmds-$nport"
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
    sleep 0.5
    for i in $(seq 1 40); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: api.test' \
            "http://127.0.0.1:$gp/api/users/$i")
        [ "$code" = 200 ] || bad=$((bad + 1))
    done
    assert_eq "$bad" 0 "$name: requests not answered 200"
    CASE_AP=$ap CASE_LOG=$T/gw-$name.log
    local nodes
    nodes=$(curl -s "http://127.0.0.1:$ap/cache/stats" | jq -c '[.l2.nodes[] | {addr, slots}]')
    log "  $name: nodes $nodes; the node fake got $(wc -l <"$T/cmds-$nport") commands"
    assert_not_contains "$nodes" localhost "$name: a node named by host name"
}
stat() { curl -s "http://127.0.0.1:$CASE_AP/cache/stats" | jq -r ".l2.$1"; }
mgets() { grep -c '^MGET' "$T/cmds-$1" || true; }

log "CLUSTER SLOTS names the node by host name and gives its ip: the ip is used"
run_case meta "{cluster: [127.0.0.1:$fport]}"
assert_contains "$(curl -s "http://127.0.0.1:$CASE_AP/cache/stats" | jq -c '.l2.nodes')" \
    "\"addr\":\"127.0.0.1:$nport\"" "the node by its ip"
assert_eq "$(stat slots_covered)" 16384 "slots served"
[ "$(mgets "$nport")" -ge 40 ] || fail "lookups did not reach the node ($(mgets "$nport") MGETs)"
stop_bg gw-meta

log "CLUSTER SLOTS names the node by host name only: not used, logged, counted"
echo name >"$T/mode"
run_case name "{cluster: [127.0.0.1:$fport]}"
assert_eq "$(wc -l <"$T/cmds-$nport")" 0 "commands that reached the named node"
assert_eq "$(stat slots_covered)" 0 "slots served"
[ "$(stat errors)" -gt 0 ] || fail "no L2 error counted"
n=$(grep -c 'names a node by host name only' "$CASE_LOG" || true)
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "$n log lines about the host name"
stop_bg gw-name

log "MOVED to a host name: not followed"
echo moved >"$T/mode"
run_case moved "{cluster: [127.0.0.1:$fport]}"
assert_eq "$(wc -l <"$T/cmds-$nport")" 0 "commands that reached the named node"
[ "$(mgets "$fport")" -ge 40 ] || fail "lookups did not reach the seed"
[ "$(stat errors)" -gt 0 ] || fail "no L2 error counted"
assert_eq "$(stat redirects)" 0 "redirects followed"
grep -q 'redirected to a host name, not followed' "$CASE_LOG" || fail "not logged"
stop_bg gw-moved

log "a sentinel names the primary by host name: not used"
echo sentinel >"$T/mode"
run_case sentinel "{sentinels: [127.0.0.1:$fport], master: mymaster}"
assert_eq "$(wc -l <"$T/cmds-$nport")" 0 "commands that reached the named primary"
[ "$(stat errors)" -gt 0 ] || fail "no L2 error counted"
n=$(grep -c "names the primary of 'mymaster' by host name 'localhost'" "$CASE_LOG" || true)
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "$n log lines about the host name"
log "ok"
