#!/usr/bin/env bash
# Purge messages over a Redis Cluster: plain PUBLISH (the cluster forwards it to every node over
# its bus) vs sharded SPUBLISH (Redis 7: the channel's shard only), issue 15's "measure and
# choose". Starts a 3-primary + 3-replica cluster on free ports and, for each case, sends N
# messages one at a time (each waits for its delivery: the latency a purge sees) from a publisher
# connection to a subscriber connection, both raw RESP from Python:
#   PUBLISH, subscriber and publisher on two nodes other than the channel's (apigate's subscriber
#            sits on any node, its publisher on whichever node the purge script's slot is on)
#   PUBLISH, both on the channel's node
#   SPUBLISH, both on the channel's primary (the only place a sharded subscriber may sit)
# Prints a Markdown table (p50, p99 of publish-to-delivery, messages/s). Not a test.
# Usage: bench/pubsub_cluster.sh      env: N=2000 CHANNEL=apigate:purge
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${N:-2000}
CHANNEL=${CHANNEL:-apigate:purge}
for c in redis-server redis-cli python3; do
    command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 2; }
done
W=$(mktemp -d /tmp/apigate-pubsub.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

CP=()
for i in 0 1 2 3 4 5; do
    CP+=("$(port)")
    mkdir -p "$W/n$i"
    redis-server --port "${CP[$i]}" --cluster-port "$(port)" --cluster-enabled yes \
        --cluster-config-file "$W/n$i/nodes.conf" --dir "$W/n$i" --bind 127.0.0.1 --save '' \
        --appendonly no >"$W/n$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 0 1 2 3 4 5; do wait_port "${CP[$i]}"; done
redis-cli --cluster create $(for p in "${CP[@]}"; do printf '127.0.0.1:%s ' "$p"; done) \
    --cluster-replicas 1 --cluster-yes >"$W/create.log" 2>&1
for _ in $(seq 200); do
    ok=0
    for p in "${CP[@]}"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && ok=$((ok + 1)); done
    [ "$ok" = 6 ] && break
    sleep 0.1
done

cat >"$W/pubsub.py" <<'PY'
import socket, sys, time
n, channel, ports = int(sys.argv[1]), sys.argv[2].encode(), [int(p) for p in sys.argv[3:]]
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
    def line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l
    def reply(self):
        l = self.line()
        t = l[:1]
        if t == b"*":
            return [self.reply() for _ in range(int(l[1:]))]
        if t == b"$":
            k = int(l[1:])
            if k < 0:
                return None
            while len(self.buf) < k + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:k], self.buf[k + 2:]
            return v
        if t == b"-":
            raise RuntimeError(l.decode())
        return l[1:]
    def call(self, *a):
        self.s.sendall(cmd(*a))
        return self.reply()
def primary_of(port):
    # the primary serving the channel's slot, by CLUSTER KEYSLOT and CLUSTER SLOTS
    c = Conn(port)
    slot = int(c.call(b"CLUSTER", b"KEYSLOT", channel))
    for r in c.call(b"CLUSTER", b"SLOTS"):
        if int(r[0]) <= slot <= int(r[1]):
            return int(r[2][1])
def run(pub_port, sub_port, sharded):
    sub, pub = Conn(sub_port), Conn(pub_port)
    sub.call(b"SSUBSCRIBE" if sharded else b"SUBSCRIBE", channel)
    lat = []
    t_start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        pub.s.sendall(cmd(b"SPUBLISH" if sharded else b"PUBLISH", channel, b"x P /api/users/%d" % i))
        m = sub.reply()
        lat.append(time.perf_counter() - t0)
        pub.reply()
    total = time.perf_counter() - t_start
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6, n / total
home = primary_of(ports[0])
others = []
for p in ports:
    c = Conn(p)
    if c.call(b"ROLE")[0] == b"master" and p != home:
        others.append(p)
print("| | p50 | p99 | messages/s |")
print("|---|---|---|---|")
for name, pub, sub, sh in [
        ("PUBLISH, subscriber and publisher on two other primaries", others[0], others[1], False),
        ("PUBLISH, both on the channel's primary", home, home, False),
        ("SPUBLISH, both on the channel's primary", home, home, True)]:
    p50, p99, rate = run(pub, sub, sh)
    print("| %s | %.0f µs | %.0f µs | %s |" % (name, p50, p99, format(int(rate), ",")))
PY
echo "N=$N messages on channel $CHANNEL, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
python3 "$W/pubsub.py" "$N" "$CHANNEL" "${CP[@]}"
