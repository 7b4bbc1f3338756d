#!/usr/bin/env bash
# Credential safety of the cache under concurrency: 24 keep-alive clients (alice, bob and
# anonymous) hammer the same URIs at once, on a shared route (cached with override: a request
# with Authorization or Cookie must bypass it) and on a per-user route (vary: [Authorization]).
# Every body must belong to the client that asked: the echo origin reflects the Authorization
# header, /api/auth/me answers with the user of the token. Also: per-user hits really happen, and
# no target is answered with the entry of another (repeated query parameters); a path not in
# normal form shares the entry of its normal form, the only path the origin is sent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

read -r mport gport aport <<<"$(free_ports 3)"
start_mock mock "$mport"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/auth/me
    upstream: api
    cache: {ttl: 5m, override: true, vary: [Authorization]}
  - match: /echo/
    upstream: api
    cache: {ttl: 5m, override: true}
YAML

log "24 concurrent clients, 3 identities, 2 routes"
python3 - "$gport" >"$T/sec.out" <<'PY'
import http.client, json, sys, threading
port = int(sys.argv[1])
users = ["alice", "bob", None]
errors, counts = [], {"ok": 0, "hit": 0}
lock = threading.Lock()
def client(user, idx):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(60):
        hdrs = {}
        if user:
            hdrs["Authorization"] = "Bearer " + user
        if i % 2 == 0:
            path = "/echo/page/%d" % (i % 6)
        else:
            if not user:
                continue
            path = "/api/auth/me"
        conn.request("GET", path, headers=hdrs)
        r = conn.getresponse()
        body = r.read().decode()
        xc = r.getheader("X-Cache")
        with lock:
            if r.status != 200:
                errors.append("%s %s -> %d" % (user, path, r.status))
                continue
            if path.startswith("/echo/"):
                seen = json.loads(body)["headers"].get("authorization")
                want = "Bearer " + user if user else None
                if seen != want:
                    errors.append("%s got %s's body on %s (X-Cache %s)" % (user, seen, path, xc))
                if user and xc != "BYPASS":
                    errors.append("%s on %s: X-Cache %s" % (user, path, xc))
            else:
                got = json.loads(body)["user"]
                if got != user:
                    errors.append("%s got %s's /api/auth/me (X-Cache %s)" % (user, got, xc))
                if xc == "HIT":
                    counts["hit"] += 1
            counts["ok"] += 1
    conn.close()
ts = [threading.Thread(target=client, args=(users[k % 3], k)) for k in range(24)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps({"errors": errors[:20], "nerrors": len(errors), **counts}))
PY
out=$(cat "$T/sec.out")
log "$out"
assert_eq "$(jq -r .nerrors <<<"$out")" 0 "cross-user answers: $out"
[ "$(jq -r .ok <<<"$out")" -ge 1100 ] || fail "too few answers: $out"
[ "$(jq -r .hit <<<"$out")" -ge 400 ] || fail "per-user entries were not hit: $out"
# the anonymous entries were filled by anonymous requests only and serve no token
for i in 0 1 2 3 4 5; do
    body=$(http_body "http://127.0.0.1:$gport/echo/page/$i")
    assert_eq "$(jq -r '.headers.authorization // "none"' <<<"$body")" none "anonymous entry $i"
done

# Key confusion: two targets share an entry only when the origin is asked for the same thing.
# key_check TARGET [SENT]: the body served for TARGET is the origin's answer to SENT (default
# TARGET: the echo origin reflects the target it received), asked twice (the second may be a hit).
# A path is routed, keyed and forwarded in canonical form (dot segments removed, unreserved %XX
# decoded: issue 17), so SENT is that form.
key_check() {
    local body i
    for i in 1 2; do
        body=$(curl -s --max-time 5 --path-as-is "http://127.0.0.1:$gport$1")
        assert_eq "$(jq -r .target <<<"$body")" "${2:-$1}" "body served for $1 (try $i)"
    done
}
log "repeated query parameters: their order is part of the key"
key_check '/echo/q?id=1&id=2'
key_check '/echo/q?id=2&id=1'
key_check '/echo/q?b=1&id=2&id=1'
log "a path not in normal form is the resource of its normal form: forwarded and keyed so"
key_check '/echo/n/x'
key_check '/echo/n/%2E%2E/x' '/echo/x'
key_check '/echo/n/../x' '/echo/x'
key_check '/echo/n/./x' '/echo/n/x'
key_check '/echo/%6E/x' '/echo/n/x'
key_check '/echo/m/%2E%2E/y' '/echo/y'
key_check '/echo/y'
assert_eq "$(curl -s -o /dev/null -D - --path-as-is "http://127.0.0.1:$gport/echo/n/./x" |
    tr -d '\r' | awk -F': ' '$1 == "X-Cache" { print $2 }')" HIT "the normal form's entry: X-Cache"
log "ok"
