#!/usr/bin/env bash
# /readyz means "this gateway can serve" (listening, worker up with its config, not draining), not
# "every upstream is healthy": with every upstream down, /readyz is 200 (Kubernetes keeps the pods,
# so stale copies and fallbacks still answer) and says which upstream is down, while /upstreams and
# /metrics show them down. /readyz?strict=1, or admin.readyz_strict: true, keeps the old meaning
# (503 with why); ?strict=0 overrides the flag.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

read -r dead1 dead2 gport aport g2 a2 < <(free_ports 6)

# gw_yaml LISTEN ADMIN_MAP: both upstreams point at ports nobody listens on; api has active
# health checks, legacy only passive ones (max_fails).
gw_yaml() {
    cat <<EOF
listen: 127.0.0.1:$1
admin: $2
workers: {threads: 1}
upstreams:
  api:
    servers: [127.0.0.1:$dead1]
    health: {path: /health, interval: 100ms, timeout: 80ms, unhealthy_threshold: 1}
  legacy:
    servers: [127.0.0.1:$dead2]
    max_fails: 1
routes:
  - {match: /api/, upstream: api}
  - {match: /legacy/, upstream: legacy}
EOF
}
start_gateway gw "$gport" "$aport" < <(gw_yaml "$gport" "127.0.0.1:$aport")
A=http://127.0.0.1:$aport
G=http://127.0.0.1:$gport

# every server down: api by its checks, legacy ejected after a failed request (max_fails: 1)
curl -s -o /dev/null --max-time 5 "$G/legacy/x" || true
deadline=$((SECONDS + 10))
until [ "$(curl -s "$A/upstreams" | jq '[.[].servers[] | select(.usable)] | length')" = 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "servers not marked down: $(curl -s "$A/upstreams")"
    sleep 0.1
done

log "every upstream down: /upstreams and /metrics say so"
ups=$(curl -s "$A/upstreams")
assert_eq "$(jq -r '[.[].servers[].usable] | unique | join(",")' <<<"$ups")" false "/upstreams usable"
assert_eq "$(jq -r '.[] | select(.name == "api") | .servers[0].healthy' <<<"$ups")" false \
    "/upstreams: api failed its health checks"
assert_eq "$(jq -r '[.[].name] | sort | join(",")' <<<"$ups")" api,legacy "/upstreams names"
assert_contains "$(curl -s "$A/metrics")" \
    "apigate_upstream_healthy{upstream=\"api\",server=\"127.0.0.1:$dead1\"} 0" "metric"

log "/readyz is 200 (the gateway serves) and names the upstream that is down"
assert_eq "$(http_status "$A/readyz")" 200 "/readyz with every upstream down"
body=$(http_body "$A/readyz")
assert_eq "$(jq -r .status <<<"$body")" ready "/readyz status"
assert_contains "$(jq -r .upstreams <<<"$body")" "no healthy server" "/readyz upstreams note"
assert_eq "$(http_status "$A/healthz")" 200 "/healthz"
st=$(http_status "$G/api/x")
[ "$st" = 502 ] || [ "$st" = 503 ] || fail "a request with its upstream down: expected 502/503, got $st"

log "/readyz?strict=1 keeps the old meaning"
assert_eq "$(http_status "$A/readyz?strict=1")" 503 "/readyz?strict=1"
assert_contains "$(http_body "$A/readyz?strict=1")" "no healthy server" "strict why"
assert_eq "$(http_status "$A/readyz?strict=0")" 200 "/readyz?strict=0"

log "admin.readyz_strict: true makes it the default; ?strict=0 overrides"
start_gateway gw2 "$g2" "$a2" < <(gw_yaml "$g2" "{address: 127.0.0.1:$a2, readyz_strict: true}")
deadline=$((SECONDS + 10))
until [ "$(http_status "http://127.0.0.1:$a2/readyz")" = 503 ]; do
    [ $SECONDS -lt $deadline ] || fail "readyz_strict: /readyz never 503"
    sleep 0.1
done
assert_eq "$(http_status "http://127.0.0.1:$a2/readyz?strict=0")" 200 "?strict=0 under readyz_strict"
log "ok"
