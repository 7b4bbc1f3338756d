#!/usr/bin/env bash
# /metrics after real load passes `promtool check metrics` (Prometheus naming: base units, _total
# only on counters, HELP/TYPE), carries the families the observability issue lists with their
# OpenTelemetry-style labels, keeps label cardinality bounded (300 distinct raw paths add no
# series), agrees with /stats, and /metrics/cache has the seed's shape.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3 promtool

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: '/api/users/*', body_size: 300}
  - {method: GET, path: /api/fail, status: 502}
  - {method: GET, path: /api/cached, body_size: 200, headers: {Cache-Control: 'max-age=60'}}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
cache: {memory: 8MB}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /api/users/
    upstream: api
  - match: /api/fail
    upstream: api
  - match: /api/cached
    upstream: api
    cache: {ttl: 60s}
EOF
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport

log "load: a closed-model run, errors, cache hits, unrouted requests"
"$APIGATE" load -q -c 4 -d 1s "$G/api/users/1" >/dev/null
for _ in 1 2 3 4 5; do curl -s -o /dev/null "$G/api/fail"; curl -s -o /dev/null "$G/api/cached"; curl -s -o /dev/null "$G/nowhere"; done
curl -s "$A/metrics" >"$T/m1.txt"
series_count() { grep -vc '^#' "$1"; }
n1=$(series_count "$T/m1.txt")

log "300 distinct raw paths under one route: no new series"
urls=()
for i in $(seq 1 300); do urls+=("$G/api/users/$i?q=$RANDOM" "-o" "/dev/null"); done
curl -s "${urls[@]}"
for i in $(seq 1 50); do urls=("$G/unrouted/$i" "-o" "/dev/null"); curl -s "${urls[@]}"; done
curl -s "$A/metrics" >"$T/m2.txt"
n2=$(series_count "$T/m2.txt")
assert_eq "$n2" "$n1" "series after 350 new raw paths"
if grep -q '/api/users/17' "$T/m2.txt"; then fail "a raw path leaked into a label"; fi

log "promtool check metrics"
promtool check metrics <"$T/m2.txt" >"$T/promtool.txt" 2>&1 || fail "promtool: $(cat "$T/promtool.txt")"

log "families and labels"
need_type() { grep -q "^# TYPE $1 $2\$" "$T/m2.txt" || fail "missing '# TYPE $1 $2'"; }
need_type http_server_request_duration_seconds histogram
need_type http_client_request_duration_seconds histogram
need_type apigate_requests_total counter
need_type apigate_time_to_first_byte_seconds histogram
need_type apigate_pool_connections gauge
need_type apigate_pool_waiting gauge
need_type apigate_pool_wait_seconds histogram
need_type apigate_upstream_connects_total counter
need_type apigate_upstream_connect_errors_total counter
need_type apigate_cache_requests_total counter
need_type apigate_cache_coalesced_total counter
need_type apigate_cache_evictions_total counter
need_type apigate_cache_bytes gauge
need_type apigate_cache_objects gauge
need_type apigate_cache_l2_hits_total counter
need_type apigate_shed_requests_total counter
need_type apigate_worker_restarts_total counter
need_type apigate_uptime_seconds gauge
need_type apigate_connections_open gauge
need_type apigate_build_info gauge
need_type process_resident_memory_bytes gauge
need_type process_open_fds gauge
need_type process_max_fds gauge
need_type process_start_time_seconds gauge
# the worker has at least its listeners, epoll, the upstream connections and this scrape open
fds=$(awk '/^process_open_fds / { print $2 }' "$T/m2.txt")
[ "$fds" -ge 5 ] && [ "$fds" -lt "$(awk '/^process_max_fds / { print $2 }' "$T/m2.txt")" ] || fail "process_open_fds $fds"
rss=$(awk '/^process_resident_memory_bytes / { print $2 }' "$T/m2.txt")
[ "$rss" -gt 1000000 ] || fail "process_resident_memory_bytes $rss"
start=$(awk '/^process_start_time_seconds / { print $2 }' "$T/m2.txt")
now=$(date +%s)
[ $((now - start)) -ge 0 ] && [ $((now - start)) -lt 120 ] || fail "process_start_time_seconds $start (now $now)"
grep -q '^http_server_request_duration_seconds_count{http_route="/api/users/",http_request_method="GET",http_response_status_code="200"} ' "$T/m2.txt" ||
    fail "OTel labels (http_route, http_request_method, http_response_status_code) missing"
grep -q '^http_server_request_duration_seconds_count{http_route="/api/fail",http_request_method="GET",http_response_status_code="502"} 5$' "$T/m2.txt" ||
    fail "5 requests with status 502 on /api/fail"
grep -q '^apigate_build_info{version="[^"]*"} 1$' "$T/m2.txt" || fail "build_info"

log "/metrics and /stats agree"
stats=$(curl -s "$A/stats")
sum=$(awk '/^apigate_requests_total\{/ { s += $2 } END { print s }' "$T/m2.txt")
assert_eq "$sum" "$(jq -r .requests.total <<<"$stats")" "requests: sum of apigate_requests_total = /stats"
users_stats=$(jq -r '.routes[] | select(.route == "/api/users/") | .count' <<<"$stats")
users_prom=$(awk '/^apigate_requests_total\{route="\/api\/users\/"/ { s += $2 } END { print s }' "$T/m2.txt")
assert_eq "$users_prom" "$users_stats" "route /api/users/ count"
hits=$(awk -F' ' '/^apigate_cache_requests_total\{status="(hit|stale)"\}/ { s += $2 } END { print s }' "$T/m2.txt")

log "/metrics/cache: the seed's shape"
mc=$(curl -s "$A/metrics/cache")
assert_eq "$(jq -r '.hits' <<<"$mc")" "$hits" "/metrics/cache hits = apigate_cache_requests_total hit+stale"
assert_eq "$(jq -r '.total == .hits + .misses' <<<"$mc")" true "total"
[[ $(jq -r .hitRate <<<"$mc") =~ ^[0-9]+\.[0-9]{2}%$ ]] || fail "hitRate not like \"99.95%\": $mc"
want=$(jq -r '"\(100 * .hits / .total * 100 | round / 100)"' <<<"$mc")
got=$(jq -r '.hitRate | rtrimstr("%") | tonumber' <<<"$mc")
awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.01) }' || fail "hitRate $got != $want"
assert_eq "$(jq -r '.coalesced | type' <<<"$mc")" number "the other counters stay at the top level (demo reads coalesced)"
[[ $(jq -r .timestamp <<<"$mc") =~ ^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]] || fail "timestamp: $mc"
log "metrics ok"
