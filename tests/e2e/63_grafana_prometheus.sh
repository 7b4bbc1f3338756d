#!/usr/bin/env bash
# deploy/grafana/apigate.json is valid JSON with the panels the issue asks for, every metric its
# queries name exists in a live scrape of the gateway after load, and a real Prometheus scraping
# that gateway (with deploy/prometheus/alerts.yml loaded) returns data for every panel query and
# evaluates every alert rule without error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3 prometheus

D="$AG_SRC/deploy/grafana/apigate.json"
log "valid JSON, panels for p95, error rate, hit rate, RPS by route, pools"
jq -e . "$D" >/dev/null || fail "not valid JSON"
titles=$(jq -r '.panels[].title' "$D")
for want in "p95 latency by route" "5xx error rate" "Cache hit ratio" "Requests/s by route" "Upstream pool connections"; do
    grep -qxF "$want" <<<"$titles" || fail "no panel '$want' (have: $titles)"
done
assert_eq "$(jq -r '[.panels[].id] | length == (unique | length)' "$D")" true "unique panel ids"
assert_eq "$(jq -r '[.panels[] | select(.targets | length == 0)] | length' "$D")" 0 "every panel has a query"
jq -r '.panels[].targets[].expr' "$D" >"$T/exprs.txt"

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
pport=$(free_port)
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: GET, path: /api/users, body_size: 300}
  - {method: GET, path: /api/cached, body_size: 200, headers: {Cache-Control: 'max-age=60'}}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
cache: {memory: 8MB}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /api/users
    upstream: api
    breaker: {}
  - match: /api/cached
    upstream: api
    cache: {ttl: 60s}
EOF

log "every metric a panel queries is in a live scrape"
"$APIGATE" load -q -c 2 -d 500ms "http://127.0.0.1:$gport/api/users" >/dev/null
curl -s -o /dev/null "http://127.0.0.1:$gport/api/cached"
curl -s -o /dev/null "http://127.0.0.1:$gport/api/cached"
curl -s "http://127.0.0.1:$aport/metrics" >"$T/scrape.txt"
# a metric name is what precedes a selector's '{' (label names precede ',' ')' '=' instead)
names=$(grep -oE '\b[a-z_:][a-z0-9_:]*\{' "$T/exprs.txt" | tr -d '{' | sort -u)
[ -n "$names" ] || fail "no metric names found in the queries"
for n in $names; do
    grep -qE "^$n(\{| )" "$T/scrape.txt" || fail "panel queries $n, absent from /metrics"
done
log "checked $(wc -w <<<"$names") metric names"

log "a real Prometheus scrapes the gateway every 1s with the alert rules loaded"
cp "$AG_SRC/deploy/prometheus/alerts.yml" "$T/alerts.yml"
cat >"$T/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: apigate
    static_configs: [{targets: ['127.0.0.1:$aport']}]
EOF
start_bg prometheus prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$pport" --log.level=warn
wait_port "$pport" 20
"$APIGATE" load -q -c 2 -d 6s "http://127.0.0.1:$gport/api/users" >/dev/null &
lp=$!
for _ in $(seq 1 20); do curl -s -o /dev/null "http://127.0.0.1:$gport/api/cached"; sleep 0.2; done
wait "$lp"
P="http://127.0.0.1:$pport/api/v1"
up=$(curl -s "$P/query" --data-urlencode 'query=up{job="apigate"}' | jq -r '.data.result[0].value[1]')
assert_eq "$up" 1 "Prometheus scrapes the gateway"

log "every panel query returns data"
# a scrape of a busy 2-core box can land late: give each query a few seconds of fresh samples
while IFS= read -r e; do
    q=${e//\$job/.*}
    deadline=$((SECONDS + 10))
    while :; do
        r=$(curl -s "$P/query" --data-urlencode "query=$q")
        [ "$(jq -r .status <<<"$r")" = success ] || fail "query failed: $q -> $r"
        [ "$(jq -r '.data.result | length' <<<"$r")" -ge 1 ] && break
        [ $SECONDS -lt $deadline ] || fail "no data for: $q"
        sleep 0.5
    done
done <"$T/exprs.txt"
hr=$(curl -s "$P/query" --data-urlencode \
    'query=sum(rate(apigate_cache_requests_total{status=~"hit|stale"}[1m])) / sum(rate(apigate_cache_requests_total{status=~"hit|stale|miss|expired"}[1m]))' |
    jq -r '.data.result[0].value[1]')
awk -v h="$hr" 'BEGIN { exit !(h > 0.8) }' || fail "hit ratio from Prometheus $hr (expected > 0.8: one miss, then hits)"

log "the alert rules evaluate against the real series without error"
rules=$(curl -s "$P/rules")
assert_eq "$(jq -r '[.data.groups[].rules[]] | length' <<<"$rules")" 8 "rules loaded"
bad=$(jq -r '.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.lastError)"' <<<"$rules")
[ -z "$bad" ] || fail "rules in error: $bad"
log "grafana and prometheus ok"
