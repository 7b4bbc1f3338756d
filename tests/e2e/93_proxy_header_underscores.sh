#!/usr/bin/env bash
# Request header names with '_' (Transfer_Encoding, Content_Length, X_User): an origin with a
# CGI-style mapping reads them as the real header (CONTENT_LENGTH), so by default they are dropped
# (nginx's default), neither forwarded nor seen by the cache; `headers: {underscores: reject}`
# answers 400, `allow` forwards them; a route's own `headers:` overrides the top-level one. The
# origin echoes the head it received.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl python3

read -r oport gport aport <<<"$(free_ports 3)"
start_tcp_server origin "$oport" <<'EOF'
def serve(c):
    try:
        head, _ = read_head(c)
        if head is None:
            return
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(head), head))
    except OSError:
        pass
    finally:
        c.close()
EOF
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  o: {servers: [127.0.0.1:$oport]}
routes:
  - {match: /reject/, upstream: o, headers: {underscores: reject}}
  - {match: /allow/, upstream: o, headers: {underscores: allow}}
  - {match: /, upstream: o}
YAML
G=http://127.0.0.1:$gport
H=(-H 'Content_Length: 5' -H 'Transfer_Encoding: chunked' -H 'X_User: admin' -H 'X-Ok: 1')

log "default: dropped"
out=$(curl -s "${H[@]}" "$G/a")
assert_contains "$out" "X-Ok: 1" "a header without '_' passes"
assert_not_contains "$out" "Content_Length" "Content_Length dropped"
assert_not_contains "$out" "Transfer_Encoding" "Transfer_Encoding dropped"
assert_not_contains "$out" "X_User" "X_User dropped"

log "reject: 400"
assert_eq "$(http_status "$G/reject/a" -H 'X_User: admin')" 400 "reject"
assert_eq "$(http_status "$G/reject/a" -H 'X-User: admin')" 200 "no '_': served"

log "allow: forwarded"
out=$(curl -s "${H[@]}" "$G/allow/a")
assert_contains "$out" "X_User: admin" "X_User forwarded"

log "top level reject"
sed -i 's|^upstreams:|headers: {underscores: reject}\nupstreams:|' "$T/gw.yaml"
"$APIGATE" check -c "$T/gw.yaml" >/dev/null || fail "config with headers.underscores rejected"
kill -HUP "$(cat "$T/gw.pid")"
for _ in $(seq 1 50); do
    [ "$(http_status "$G/a" -H 'X_User: admin')" = 400 ] && break
    sleep 0.1
done
assert_eq "$(http_status "$G/a" -H 'X_User: admin')" 400 "top-level reject after reload"
out=$(curl -s "${H[@]}" "$G/allow/a")
assert_contains "$out" "X_User: admin" "the route's allow wins"
log "ok"
