#!/usr/bin/env bash
# No credential leaves the gateway through the cache (issue 17 item 1). A per-user route
# (vary: [Authorization]) with a Redis L2: before, its L2 key was
# "apigate:GET host/api/auth/me\nauthorization:Bearer <token>", so anyone reading Redis
# harvested every token. Now the key carries an HMAC of the value. After per-user traffic through
# two gateways, no Redis key or value, no log line (error log at debug, access log) and no admin
# output contains a token; each user still gets their own answer; the two gateways agreed on the
# secret through Redis (SET NX), so B hits what A stored; a third gateway with its own
# cache.key_secret_file keys differently (its first request is a miss).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3 redis-server redis-cli

read -r oport rport gpa apa gpb apb gpc apc <<<"$(free_ports 8)"
# the origin answers /api/auth/me with the user of the token, never the token itself
start_tcp_server origin "$oport" <<'PY'
import json
def answer(conn, head, _):
    auth = header(head, b"authorization")  # "Bearer tok-<user>-<secret>"
    user = auth.decode().split("-")[1] if auth is not None else "anonymous"
    body = json.dumps({"user": user}).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Cache-Control: max-age=60\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
def serve(conn):
    each_request(conn, answer)
PY
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no
wait_port "$rport"
printf 'a-secret-of-the-third-gateway-0123456789\n' >"$T/secret"
for n in a b c; do
    case $n in
    a) gp=$gpa ap=$apa extra='' ;;
    b) gp=$gpb ap=$apb extra='' ;;
    c) gp=$gpc ap=$apc extra=", key_secret_file: $T/secret" ;;
    esac
    start_gateway "gw-$n" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
logging: {level: debug, access_log: $T/access-$n.log, access_flush: 10ms}
cache: {redis: "redis://127.0.0.1:$rport/0", redis_timeout: 200ms$extra}
upstreams:
  o: {servers: [127.0.0.1:$oport]}
routes:
  - match: /api/auth/me
    upstream: o
    cache: {ttl: 60s, override: true, vary: [Authorization]}
YAML
done
sleep 0.5 # connected to redis

TOK_A=tok-alice-S3CR3TALICE42 TOK_B=tok-bob-S3CR3TBOB42
# me PORT TOKEN: "<user> <X-Cache>"
me() {
    curl -s -D "$T/h" --max-time 5 -H "Authorization: Bearer $2" -H "Host: api.test" \
        "http://127.0.0.1:$1/api/auth/me" >"$T/b"
    printf '%s %s' "$(jq -r .user "$T/b")" \
        "$(tr -d '\r' <"$T/h" | awk -F': ' 'tolower($1) == "x-cache" { print $2 }')"
}
log "per-user traffic through A, then B"
assert_eq "$(me "$gpa" "$TOK_A")" "alice MISS" "alice through A"
assert_eq "$(me "$gpa" "$TOK_B")" "bob MISS" "bob through A"
assert_eq "$(me "$gpa" "$TOK_A")" "alice HIT" "alice through A again"
assert_eq "$(me "$gpa" "$TOK_B")" "bob HIT" "bob through A again"
sleep 0.3 # the L2 writes
assert_eq "$(me "$gpb" "$TOK_A")" "alice HIT" "alice through B: A's entry from L2 (one secret)"
assert_eq "$(me "$gpb" "$TOK_B")" "bob HIT" "bob through B"
assert_eq "$(me "$gpb" tok-carol-S3CR3TCAROL42)" "carol MISS" "carol through B: her own entry"
assert_eq "$(me "$gpc" "$TOK_A")" "alice MISS" "C has its own secret: another key"
sleep 0.3

log "Redis holds hashes, never tokens"
redis-cli -p "$rport" --raw keys '*' >"$T/keys"
redis-cli -p "$rport" --raw eval "local o = {}
for _, k in ipairs(redis.call('keys', '*')) do
  if redis.call('type', k).ok == 'string' then table.insert(o, redis.call('get', k)) end
end
return o" 0 >"$T/values"
grep -aq 'authorization:[0-9a-f]\{32\}' "$T/keys" || fail "no hashed per-user key in Redis: $(cat -v "$T/keys")"
[ "$(grep -ac 'key-secret' "$T/keys")" = 1 ] || fail "no agreed key secret in Redis"
curl -s "http://127.0.0.1:$apa/stats" "http://127.0.0.1:$apa/metrics" "http://127.0.0.1:$apa/cache/stats" \
    "http://127.0.0.1:$apb/stats" "http://127.0.0.1:$apc/stats" >"$T/admin"
sleep 0.2 # access logs flushed
for f in "$T/keys" "$T/values" "$T/admin" "$T"/access-*.log "$T"/gw-*.log; do
    [ -s "$f" ] || [ "${f##*/}" = admin ] || log "note: $f is empty"
    if grep -aq 'S3CR3T' "$f"; then
        fail "a token in ${f##*/}: $(grep -a 'S3CR3T' "$f" | head -3 | cat -v)"
    fi
done
[ -s "$T/access-a.log" ] || fail "no access log written: nothing was checked there"

log "a config secret is 16+ bytes, given once"
printf 'short\n' >"$T/short"
bad_config() { # YAML_CACHE_LINE EXPECTED_MESSAGE
    printf 'listen: 127.0.0.1:1\nupstreams: {o: {servers: [127.0.0.1:1]}}\nroutes: [{match: /, upstream: o}]\ncache: %s\n' "$1" >"$T/bad.yaml"
    if out=$("$APIGATE" check -c "$T/bad.yaml" 2>&1); then fail "accepted: $1"; fi
    assert_contains "$out" "$2" "message for $1"
}
bad_config "{key_secret: abc}" "cache.key_secret: 3 bytes; at least 16"
bad_config "{key_secret_file: $T/short}" "holds 5 bytes; at least 16"
bad_config "{key_secret_file: $T/none}" "cache.key_secret_file: cannot read"
bad_config "{key_secret: 0123456789abcdef0, key_secret_file: $T/secret}" "give one of them"
printf 'listen: 127.0.0.1:1\nupstreams: {o: {servers: [127.0.0.1:1]}}\nroutes: [{match: /, upstream: o}]\ncache: {key_secret: a-secret-never-printed-0123}\n' >"$T/ok.yaml"
dump=$("$APIGATE" check -c "$T/ok.yaml" --dump 2>&1) || fail "check --dump: $dump"
assert_not_contains "$dump" "never-printed" "check --dump shows no secret"
log "ok"
