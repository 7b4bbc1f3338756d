#!/usr/bin/env bash
# Access log fields users grep for (issue 14 item 10): client address, Host, User-Agent, protocol,
# cache status and route on every line, in the JSON and the text format, through a real gateway
# with `apigate mock` as the origin (a MISS, a HIT, an uncached route, an unmatched path, an
# HTTP/1.0 request).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

read -r mport gj aj gt at < <(free_ports 5)
start_mock mock "$mport"
for fmt in json text; do
    if [ "$fmt" = json ]; then gport=$gj aport=$aj; else gport=$gt aport=$at; fi
    start_gateway "gw_$fmt" "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
logging: {access_log: $T/access.$fmt, access_format: $fmt, access_flush: 50ms}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /api/users/, upstream: api, cache: {ttl: 60s, override: true}}
  - {match: /api/, upstream: api}
YAML
    G=http://127.0.0.1:$gport
    curl -s -o /dev/null -A 'probe/1.0 (e2e "67")' -H 'Host: shop.example.com' "$G/api/users/7"
    curl -s -o /dev/null -A 'probe/1.0 (e2e "67")' -H 'Host: shop.example.com' "$G/api/users/7"
    curl -s -o /dev/null -A 'other-agent' "$G/api/orders/1"
    curl -s -o /dev/null --http1.0 -A 'old-client' "$G/nowhere"
    deadline=$((SECONDS + 5))
    until [ "$(wc -l <"$T/access.$fmt" 2>/dev/null || echo 0)" -ge 4 ]; do
        [ $SECONDS -lt $deadline ] || fail "$fmt: fewer than 4 access log lines: $(cat "$T/access.$fmt" 2>/dev/null)"
        sleep 0.1
    done
done

log "JSON lines"
J=$T/access.json
line() { sed -n "${1}p" "$J"; }
assert_eq "$(line 1 | jq -r '[.client, .host, .user_agent, .protocol, .cache, .route, .status] | join("|")')" \
    '127.0.0.1|shop.example.com|probe/1.0 (e2e "67")|HTTP/1.1|MISS|/api/users/|200' "first request (MISS)"
assert_eq "$(line 2 | jq -r '[.client, .host, .cache, .route] | join("|")')" \
    "127.0.0.1|shop.example.com|HIT|/api/users/" "second request (HIT)"
assert_eq "$(line 3 | jq -r '[.host, .user_agent, .cache, .route] | @json')" \
    "[\"127.0.0.1:$gj\",\"other-agent\",null,\"/api/\"]" "uncached route: cache null"
assert_eq "$(line 4 | jq -r '[.protocol, .user_agent, .route, .status] | @json')" \
    '["HTTP/1.0","old-client",null,404]' "HTTP/1.0, unmatched"

log "text lines: fixed positions (time method path status bytes total upstream_ms pool_wait upstream rid trace client host protocol cache route agent)"
X=$T/access.text
tl() { sed -n "${1}p" "$X" | awk '{ print $12, $13, $14, $15, $16, $17 }'; }
assert_eq "$(tl 1)" '127.0.0.1 shop.example.com HTTP/1.1 MISS /api/users/ probe/1.0_(e2e__67_)' "text MISS"
assert_eq "$(tl 2)" '127.0.0.1 shop.example.com HTTP/1.1 HIT /api/users/ probe/1.0_(e2e__67_)' "text HIT"
assert_eq "$(tl 3)" "127.0.0.1 127.0.0.1:$gt HTTP/1.1 - /api/ other-agent" "text uncached"
assert_eq "$(tl 4)" "127.0.0.1 127.0.0.1:$gt HTTP/1.0 - - old-client" "text HTTP/1.0 unmatched"
for i in 1 2 3 4; do
    assert_eq "$(sed -n "${i}p" "$X" | awk '{ print NF }')" 17 "text line $i has 17 fields"
done
log "ok"
