#!/usr/bin/env bash
# Issue 16 item 14, docs and examples say what they need and name things one way:
# - examples/load-endpoint-mix.yaml says it needs LOAD_PASSWORD, and without it the run stops at
#   once with exit 2 and "environment variable LOAD_PASSWORD is not set" (nothing is sent);
# - one parameter name for purging a path in the docs (`?path=`; `?key=` is accepted, unnamed),
#   the admin API's own 400 names it too, and `?path=` purges;
# - docs/stats.md no longer speaks of "until the cache is built".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

root=$AG_SRC

log "load-endpoint-mix.yaml needs LOAD_PASSWORD and says so"
grep -q 'LOAD_PASSWORD' <(grep '^#' "$root/examples/load-endpoint-mix.yaml") ||
    fail "examples/load-endpoint-mix.yaml's comments do not mention LOAD_PASSWORD"
read -r mport gport aport <<<"$(free_ports 3)"
start_mock mock "$mport"
sed "s#^base_url: .*#base_url: http://127.0.0.1:$mport/api#" "$root/examples/load-endpoint-mix.yaml" >"$T/mix.yaml"
rc=0
(unset LOAD_PASSWORD; timeout 60 "$APIGATE" load run "$T/mix.yaml" >"$T/mix.out" 2>&1) || rc=$?
assert_eq "$rc" 2 "exit code without LOAD_PASSWORD: $(cat "$T/mix.out")"
assert_contains "$(cat "$T/mix.out")" "environment variable LOAD_PASSWORD is not set"
assert_eq "$(mock_stat "$mport" total)" 0 "nothing sent without the password"

log "one purge parameter name across the docs"
hits=$(grep -rnE '(\?|&)key=' "$root/docs" "$root/README.md" "$root/examples" || true)
[ -z "$hits" ] || fail "docs name ?key= for purging (the docs' name is ?path=): $hits"
grep -q 'purge?path=' "$root/docs/cache.md" || fail "docs/cache.md does not document purge?path="
grep -q '?path=/' "$root/docs/operating.md" || fail "docs/operating.md does not document purge?path="

start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true}
YAML
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport
xcache() { curl -s -o /dev/null -D - "$1" | tr -d '\r' | sed -n 's/^[Xx]-[Cc]ache: //p'; }
curl -s -o /dev/null "$G/api/users/7"
assert_eq "$(xcache "$G/api/users/7")" HIT "cached before the purge"
out=$(curl -s -X POST "$A/cache/purge?path=/api/users/7")
assert_eq "$(jq -r .purged <<<"$out")" 1 "purge?path= (as documented): $out"
assert_eq "$(xcache "$G/api/users/7")" MISS "after purge?path="
out=$(curl -s -X POST "$A/cache/purge")
assert_contains "$out" '?path=/path' "the 400 names the documented parameter"
assert_not_contains "$out" '?key=' "the 400 names one parameter"
out=$(curl -s -X POST "$A/cache/purge?path=api")
assert_contains "$out" 'path must start with /' "a bad path is named as a path"

log "stats.md wording"
if grep -n 'until the cache' "$root/docs/stats.md"; then fail "docs/stats.md speaks of 'until the cache is built'"; fi
log "ok"
