#!/usr/bin/env bash
# Admin authentication. `admin: {address, token_file}`: a mutating admin request (POST
# /cache/purge) needs 'Authorization: Bearer TOKEN' (else 401 + WWW-Authenticate, and nothing is
# purged); /healthz /readyz /metrics /stats /cache/stats stay open; a SIGHUP re-reads the token
# (rotation). An admin address off loopback without token_file is an error for check and serve
# (exit 2, at its position; also as --admin), unless `insecure: true` (check warns, serve logs).
# A token file that is missing or too short is an error at its position.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

read -r mport gport aport g2 a2 < <(free_ports 5)
start_mock mock "$mport"

TOKEN=3f1c9a0e7b2d4c6a8e0f1b3d5a7c9e1f
printf '%s\n' "$TOKEN" >"$T/token"
gw_yaml() { # gw_yaml LISTEN_PORT ADMIN_VALUE
    cat <<EOF
listen: 127.0.0.1:$1
admin: $2
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /echo/
    upstream: api
    cache: {ttl: 5m, override: true}
EOF
}

log "check and serve refuse an admin address off loopback without a token"
gw_yaml "$gport" "0.0.0.0:$aport" >"$T/open.yaml"
rc=0
out=$("$APIGATE" check -c "$T/open.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "check exit code"
assert_contains "$out" "open.yaml:2:8: admin: 0.0.0.0:$aport is not a loopback address and has no token_file" "check message"
rc=0
out=$(timeout 10 "$APIGATE" serve -c "$T/open.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "serve exit code"
assert_contains "$out" "is not a loopback address and has no token_file" "serve message"
gw_yaml "$gport" "{address: '[::]:$aport'}" >"$T/open6.yaml"
rc=0
out=$("$APIGATE" check -c "$T/open6.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "check exit code ([::])"
assert_contains "$out" "open6.yaml:2:18: admin: [::]:$aport is not a loopback address" "[::] message"
gw_yaml "$gport" "127.0.0.1:$aport" >"$T/lo.yaml"
rc=0
out=$(timeout 10 "$APIGATE" serve -c "$T/lo.yaml" --admin "0.0.0.0:$aport" 2>&1) || rc=$?
assert_eq "$rc" 2 "serve --admin 0.0.0.0 exit code"
assert_contains "$out" "command line: --admin 0.0.0.0:$aport is not a loopback address" "--admin message"

log "insecure: true is accepted, with a warning"
gw_yaml "$gport" "{address: 0.0.0.0:$aport, insecure: true}" >"$T/insecure.yaml"
out=$("$APIGATE" check -c "$T/insecure.yaml" 2>&1) || fail "check refused insecure: true: $out"
assert_contains "$out" "warning: admin 0.0.0.0:$aport is not on loopback and has no token_file" "check warning"

log "token file errors are reported at their position"
gw_yaml "$gport" "{address: 0.0.0.0:$aport, token_file: $T/missing}" >"$T/missing.yaml"
rc=0
out=$("$APIGATE" check -c "$T/missing.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "missing token file exit code"
pre="admin: {address: 0.0.0.0:$aport, token_file: "
assert_contains "$out" "missing.yaml:2:$((${#pre} + 1)): admin.token_file: cannot read '$T/missing'" \
    "missing message"
printf 'abcde\n' >"$T/short"
gw_yaml "$gport" "{address: 127.0.0.1:$aport, token_file: $T/short}" >"$T/short.yaml"
rc=0
out=$("$APIGATE" check -c "$T/short.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "short token exit code"
assert_contains "$out" "holds 5 characters" "short token message"
assert_not_contains "$out" abcde "the token itself is never printed"
gw_yaml "$gport" "{address: 0.0.0.0:$aport, token_file: $T/token}" >"$T/ok.yaml"
"$APIGATE" check -q -c "$T/ok.yaml" >/dev/null 2>&1 || fail "a token makes 0.0.0.0 valid"

log "a token on a loopback listener: mutations need it, reads stay open"
gw_yaml "$gport" "{address: 127.0.0.1:$aport, token_file: $T/token}" >"$T/gw.yaml"
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$gport"
wait_port "$aport"
A=http://127.0.0.1:$aport
G=http://127.0.0.1:$gport
for p in /healthz /readyz /metrics /stats /cache/stats /upstreams; do
    assert_eq "$(http_status "$A$p")" 200 "GET $p without a token"
done
xcache() { curl -s -o /dev/null -D - "$G/echo/a" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
purge() { curl -s -o "$T/purge.out" -w '%{http_code}' -X POST "$A/cache/purge?all=1" "$@"; }
xcache >/dev/null
assert_eq "$(xcache)" HIT "cached"
assert_eq "$(purge)" 401 "purge without a token"
assert_contains "$(cat "$T/purge.out")" unauthorized "401 body"
hdrs=$(curl -s -o /dev/null -D - -X POST "$A/cache/purge?all=1" | tr -d '\r')
assert_contains "$hdrs" 'WWW-Authenticate: Bearer realm="apigate admin"' "401 challenge"
assert_eq "$(purge -H "Authorization: Bearer ${TOKEN}x")" 401 "purge with a longer token"
assert_eq "$(purge -H "Authorization: Bearer ${TOKEN%?}")" 401 "purge with a shorter token"
assert_eq "$(purge -H "Authorization: Bearer ${TOKEN%?}0")" 401 "purge with the last byte wrong"
assert_eq "$(purge -H "Authorization: Basic $TOKEN")" 401 "purge with another scheme"
assert_eq "$(purge -H "Authorization: $TOKEN")" 401 "purge with no scheme"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$A/cache/purge?all=1")" 401 "DELETE without a token"
assert_eq "$(xcache)" HIT "still cached after the refused purges"
assert_eq "$(purge -H "Authorization: bearer $TOKEN")" 200 "purge with the token"
assert_eq "$(xcache)" MISS "purged"

log "a reload reads the token file again (rotation)"
NEW=9b8a7c6d5e4f30211203f4e5d6c7b8a9
printf '%s\n' "$NEW" >"$T/token"
kill -HUP "$SV"
deadline=$((SECONDS + 10))
until [ "$(purge -H "Authorization: Bearer $NEW")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || fail "the new token is not accepted after the reload"
    sleep 0.1
done
assert_eq "$(purge -H "Authorization: Bearer $TOKEN")" 401 "the old token after the rotation"
if grep -q -e "$TOKEN" -e "$NEW" "$T/gw.log"; then
    fail "a token appears in the log"
fi
stop_bg gw || fail "the gateway did not exit 0"

log "insecure: true serves (logging a warning); a loopback admin without a token stays open"
start_gateway gw2 "$g2" "$a2" < <(gw_yaml "$g2" "{address: 127.0.0.1:$a2}")
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$a2/cache/purge?all=1")" 200 \
    "loopback admin without a token: purge open as before"
log "ok"
