#!/usr/bin/env bash
# Cache tags (surrogate keys, issue 15): the origin tags its responses in Surrogate-Key; a route
# with cache: {tag_header: Surrogate-Key} keeps the tags with the entry and never shows the
# header to a client. POST /cache/purge?tag=T on one gateway purges every entry tagged T on every
# gateway (their L1 through pub/sub, the copies in the shared Redis through a mark), the others
# stay; ?tag=T&soft=1 marks them stale instead, so stale-while-revalidate answers at once while
# one refresh runs. Bad values are 400s that purge nothing. A route's invalidate_tags: ['{1}']
# purges, after a successful PUT, the tag named by the path segment after its match.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq redis-server redis-cli

read -r mport rport gpa apa gpb apb <<<"$(free_ports 6)"
"$APIGATE" mock --print-default >"$T/mock.yaml"
cat >>"$T/mock.yaml" <<'YAML'
  - {method: GET, path: '/api/ta/{id}', body_size: 64, headers: {Surrogate-Key: 'shop ta'}}
  - {method: GET, path: '/api/tb/{id}', body_size: 64, headers: {Surrogate-Key: 'shop,tb'}}
  - {method: PUT, path: '/api/ta/{id}', body_size: 2}
  - {method: PUT, path: '/api/zz/{id}', body_size: 2}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no
wait_port "$rport"
for n in a b; do
    if [ "$n" = a ]; then gp=$gpa ap=$apa; else gp=$gpb ap=$apb; fi
    start_gateway "gw-$n" "$gp" "$ap" <<YAML
listen: 127.0.0.1:$gp
admin: 127.0.0.1:$ap
workers: {threads: 2}
cache: {redis: "redis://127.0.0.1:$rport/0", redis_timeout: 200ms}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /api/
    upstream: api
    cache: {ttl: 60s, override: true, stale_while_revalidate: 30s, tag_header: Surrogate-Key,
            invalidate_tags: ['{1}']}
YAML
done
GA=http://127.0.0.1:$gpa GB=http://127.0.0.1:$gpb
AA=http://127.0.0.1:$apa AB=http://127.0.0.1:$apb
hdrs() { curl -s -o /dev/null -D - --max-time 10 -H 'Host: api.test' "$1" | tr -d '\r'; }
xc() { hdrs "$1" | awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
sleep 0.5

log "the tag header reaches no client, on a MISS or a HIT"
assert_contains "$(hdrs "http://127.0.0.1:$mport/api/ta/0")" "Surrogate-Key: shop ta" "the origin tags"
h=$(hdrs "$GA/api/ta/1")
assert_contains "$h" "X-Cache: MISS" "A fills ta/1"
assert_not_contains "$(tr 'A-Z' 'a-z' <<<"$h")" "surrogate-key" "MISS"
sleep 0.2
h=$(hdrs "$GB/api/ta/1")
assert_contains "$h" "X-Cache: HIT" "B from L2"
assert_not_contains "$(tr 'A-Z' 'a-z' <<<"$h")" "surrogate-key" "L2 HIT"
assert_not_contains "$(tr 'A-Z' 'a-z' <<<"$(hdrs "$GA/api/ta/1")")" "surrogate-key" "L1 HIT"

log "purge by tag on B: every gateway and L2, only that tag"
for p in /api/ta/2 /api/tb/1 /api/tb/2; do assert_eq "$(xc "$GA$p")" MISS "A fills $p"; done
sleep 0.2
out=$(curl -s -X POST "$AB/cache/purge?tag=ta")
assert_contains "$out" '"tag":"ta"' "purge answer"
assert_contains "$out" '"soft":false' "purge answer"
sleep 0.1
assert_eq "$(xc "$GA/api/ta/1")" MISS "A's L1 copy of ta/1"
assert_eq "$(xc "$GB/api/ta/2")" MISS "B: the L2 copy of ta/2 (never in B's L1)"
assert_eq "$(xc "$GA/api/tb/1")" HIT "A: tb/1 is not tagged ta"
assert_eq "$(xc "$GB/api/tb/1")" HIT "B: tb/1 from L2"

log "soft purge on A: stale at once on both, refreshed in the background"
m0=$(mock_stat "$mport" "GET /api/tb/{id}")
out=$(curl -s -X POST "$AA/cache/purge?tag=tb&soft=1")
assert_contains "$out" '"soft":true' "soft purge answer"
sleep 0.1
assert_eq "$(xc "$GB/api/tb/1")" STALE "B's L1 copy is stale, served at once"
assert_eq "$(xc "$GA/api/tb/2")" STALE "A's L1 copy is stale"
ok=0
for _ in $(seq 40); do
    sleep 0.05
    [ "$(xc "$GB/api/tb/1")" = HIT ] && { ok=1; break; }
done
assert_eq "$ok" 1 "B refreshed tb/1 in the background"
[ "$(mock_stat "$mport" "GET /api/tb/{id}")" -gt "$m0" ] || fail "no refresh reached the origin"
assert_eq "$(xc "$GA/api/ta/2")" HIT "ta/2 (refilled by B) is not tagged tb"

log "bad values purge nothing"
for q in 'tag=' 'tag=a%20b' 'tag=a,b' 'tag=x&soft=2'; do
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$AA/cache/purge?$q")" 400 "?$q"
done
assert_eq "$(xc "$GA/api/ta/2")" HIT "still cached after the bad purges"
log "a write purges the tags its rule names: invalidate_tags: ['{1}'], PUT /api/ta/9 -> tag ta"
for p in /api/ta/5 /api/tb/5; do assert_eq "$(xc "$GA$p")" MISS "A fills $p"; done
sleep 0.2
assert_eq "$(xc "$GB/api/ta/5")" HIT "B from L2"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: api.test' -X PUT -d '{}' "$GB/api/ta/9")
assert_eq "$code" 200 "PUT through B"
sleep 0.1
assert_eq "$(xc "$GA/api/ta/5")" MISS "A after B's PUT (tag ta)"
assert_eq "$(xc "$GA/api/tb/5")" HIT "A: tb/5 is not tagged ta"
sleep 0.2
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: api.test' -X PUT -d '{}' "$GB/api/zz/1")
assert_eq "$code" 200 "PUT /api/zz/1 (tag zz: nothing has it)"
sleep 0.1
assert_eq "$(xc "$GA/api/ta/5")" HIT "ta/5 refilled and not purged by tag zz"
log "ok"
