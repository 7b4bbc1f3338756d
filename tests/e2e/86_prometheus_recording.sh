#!/usr/bin/env bash
# deploy/prometheus/recording.yml gives apigate's series the common names
# (http_request_duration_seconds{quantile}, http_requests_total{status}, cache_hits_total,
# cache_misses_total, cache_hit_ratio, db_connections_active): `promtool check rules` accepts it,
# `promtool test rules` with recording_test.yml proves the values the usual queries read, a copy
# with a wrong selector fails those tests, and a real gateway's /metrics has every series and
# label the rules read. Skipped (77) without promtool (Debian package prometheus).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null 2>&1 || skip "promtool not installed (Debian package prometheus)"
require_cmd curl jq

R="$AG_SRC/deploy/prometheus"
log "promtool check rules"
promtool check rules "$R/recording.yml" >"$T/check.txt" 2>&1 || fail "check rules: $(cat "$T/check.txt")"
assert_contains "$(cat "$T/check.txt")" "SUCCESS: 10 rules found" "rule count"
for n in http_request_duration_seconds http_requests_total cache_hits_total cache_misses_total \
    cache_hit_ratio db_connections_active; do
    grep -q "record: $n\$" "$R/recording.yml" || fail "record $n missing"
    grep -q "$n" "$R/recording_test.yml" || fail "record $n has no unit test"
done

log "promtool test rules"
(cd "$R" && promtool test rules recording_test.yml) >"$T/test.txt" 2>&1 || fail "test rules: $(cat "$T/test.txt")"

log "the unit tests catch a wrong selector"
mkdir -p "$T/mut"
cp "$R/recording_test.yml" "$T/mut/"
sed '/record: cache_hits_total/{n;s/hit|stale/hit/}' "$R/recording.yml" >"$T/mut/recording.yml"
! cmp -s "$R/recording.yml" "$T/mut/recording.yml" || fail "mutation did not apply"
if (cd "$T/mut" && promtool test rules recording_test.yml) >"$T/mut.txt" 2>&1; then
    fail "cache_hits_total without stale passed the tests"
fi
sed 's/"status", "\$1", "http_response_status_code"/"code", "$1", "http_response_status_code"/' \
    "$R/recording.yml" >"$T/mut/recording.yml"
! cmp -s "$R/recording.yml" "$T/mut/recording.yml" || fail "mutation 2 did not apply"
if (cd "$T/mut" && promtool test rules recording_test.yml) >"$T/mut.txt" 2>&1; then
    fail "http_requests_total without a status label passed the tests"
fi

log "a real gateway exposes every series the rules read"
ports=($(free_ports 3))
mport=${ports[0]} gport=${ports[1]} aport=${ports[2]}
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /api/users, body_size: 100}
  - {method: GET, path: /api/cached, body_size: 200, headers: {Cache-Control: 'max-age=60'}}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
cache: {memory: 8MB}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /api/users
    upstream: api
  - match: /api/cached
    upstream: api
    cache: {ttl: 60s}
EOF
for _ in 1 2 3; do
    curl -s -o /dev/null "http://127.0.0.1:$gport/api/users"
    curl -s -o /dev/null "http://127.0.0.1:$gport/api/cached"
done
curl -s "http://127.0.0.1:$aport/metrics" >"$T/m.txt"
grep -Eq '^http_server_request_duration_seconds_bucket\{.*le="' "$T/m.txt" || fail "no duration buckets"
c=$(grep -E '^http_server_request_duration_seconds_count\{' "$T/m.txt" | grep 'http_route="/api/users"' || true)
assert_contains "$c" 'http_request_method="GET"' "method label the rule renames"
assert_contains "$c" 'http_response_status_code="200"' "status code label the rule renames"
grep -Eq '^apigate_cache_requests_total\{status="hit"\} [1-9]' "$T/m.txt" || fail "no cache hits series: $(grep apigate_cache_requests_total "$T/m.txt")"
grep -Eq '^apigate_cache_requests_total\{status="miss"\} [1-9]' "$T/m.txt" || fail "no cache misses series"
for s in stale expired; do
    grep -Eq "^apigate_cache_requests_total\{status=\"$s\"\} " "$T/m.txt" || fail "no $s series"
done
log "recording rules ok"
