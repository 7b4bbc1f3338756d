#!/usr/bin/env bash
# Issue 15's spelling of tag invalidation on writes, as written there:
#   cache: {..., invalidate: {tags: ["user-{1}"]}}   on a route matching /api/users/
# a successful PUT /api/users/7 purges every entry tagged user-7 (the origin's Surrogate-Key), and
# nothing else. The flat form invalidate_tags: [...] stays an alias (e2e/78); both at once, an
# unknown key of the map or a tag of the wrong shape are config errors at file:line:col.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl

read -r mport gp ap <<<"$(free_ports 3)"
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: '/api/users/{id}', body_size: 64, headers: {Surrogate-Key: 'user-7 users'}}
  - {method: GET, path: '/api/other/{id}', body_size: 64, headers: {Surrogate-Key: 'other'}}
  - {method: PUT, path: '/api/users/{id}', body_size: 2}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, override: true, tag_header: Surrogate-Key, invalidate_self: false,
            invalidate: {tags: ["user-{1}"]}}
  - match: /api/other/
    upstream: api
    cache: {ttl: 60s, override: true, tag_header: Surrogate-Key}
YAML
G=http://127.0.0.1:$gp
xc() { curl -s -o /dev/null -D - --max-time 10 "$1" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
put() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT -d '{}' "$G$1"; }

log "fill: /api/users/7 and /api/users/8 (both tagged user-7 by the origin), /api/other/1"
for p in /api/users/7 /api/users/8 /api/other/1; do assert_eq "$(xc "$G$p")" MISS "fill $p"; done
for p in /api/users/7 /api/users/8 /api/other/1; do assert_eq "$(xc "$G$p")" HIT "$p cached"; done

log "PUT /api/users/9 purges tag user-9: nothing has it"
assert_eq "$(put /api/users/9)" 200 "PUT /api/users/9"
for p in /api/users/7 /api/users/8 /api/other/1; do assert_eq "$(xc "$G$p")" HIT "$p after PUT 9"; done

log "PUT /api/users/7 purges tag user-7: both user entries, not /api/other/1"
assert_eq "$(put /api/users/7)" 200 "PUT /api/users/7"
ok=0
for _ in $(seq 50); do
    [ "$(xc "$G/api/users/8")" = MISS ] && { ok=1; break; }
    sleep 0.05
done
assert_eq "$ok" 1 "/api/users/8 (tagged user-7) purged by PUT /api/users/7"
assert_eq "$(xc "$G/api/users/7")" MISS "/api/users/7 purged by its tag (invalidate_self is off)"
assert_eq "$(xc "$G/api/other/1")" HIT "/api/other/1 kept"

log "bad shapes are errors at file:line:col"
cat >"$T/bad.yaml" <<'YAML'
listen: 127.0.0.1:1
upstreams:
  api: {servers: [127.0.0.1:2]}
routes:
  - match: /api/users/
    upstream: api
    cache: {ttl: 60s, invalidate: {tag: ["user-{1}"]}}
  - match: /api/a/
    upstream: api
    cache: {ttl: 60s, invalidate_tags: [a], invalidate: {tags: [b]}}
  - match: /api/b/
    upstream: api
    cache: {ttl: 60s, invalidate: {tags: ["user {1}"], paths: [x]}}
  - match: /api/c/
    upstream: api
    cache: {ttl: 60s, invalidate: {tags: {a: 1}}}
YAML
rc=0
out=$("$APIGATE" check -c "$T/bad.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "check exit code"
assert_contains "$out" "bad.yaml:7:36: routes[0].cache.invalidate.tag: unknown key; did you mean 'tags'?" "unknown key"
assert_contains "$out" "bad.yaml:10:64: routes[1].cache.invalidate.tags: the same list is also given as invalidate_tags" "both spellings"
assert_contains "$out" "bad.yaml:13:42: routes[2].cache.invalidate.tags: 'user {1}' is not a tag" "bad tag"
assert_contains "$out" "bad.yaml:13:63: routes[2].cache.invalidate.paths: 'x' must be a path starting with '/'" "bad path"
assert_contains "$out" "bad.yaml:16:42: routes[3].cache.invalidate.tags: expected a string or a list of strings, got a map" "tags as a map"
assert_not_contains "$out" "Segmentation" "no crash"
log "ok"
