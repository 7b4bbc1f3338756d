#!/usr/bin/env bash
# Tracing headers through `apigate serve`: a client's W3C traceparent reaches the upstream with the
# same trace id and a new parent span id; one is generated when absent or invalid (a different
# trace per request); the trace id is in the JSON access log line; Server-Timing is on the
# response when server.server_timing is true and absent when it is false.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

mport=$(free_port)
gport=$(free_port)
aport=$(free_port)
g2port=$(free_port)
a2port=$(free_port)

cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: ANY, path: '/echo/*', handler: echo}
  - {method: GET, path: /slow, body_size: 100, latency: 30ms}
  - {method: GET, path: /cached, body_size: 100, headers: {Cache-Control: 'max-age=60'}}
EOF
gwconf() { # LISTEN ADMIN SERVER_TIMING
    cat <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
workers: {threads: 1}
server: {server_timing: $3}
logging: {access_log: $T/access-$1.log, access_format: json, access_flush: 10ms}
upstreams:
  api:
    servers: [127.0.0.1:$mport]
routes:
  - match: /echo/
    upstream: api
  - match: /slow
    upstream: api
  - match: /cached
    upstream: api
    cache: {}
cache: {memory: 4MB}
EOF
}
gwconf "$gport" "$aport" true >"$T/gw.yaml"
gwconf "$g2port" "$a2port" false >"$T/gw2.yaml"
start_mock mock "$mport" --profile "$T/mock.yaml"
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
wait_port "$gport"
start_bg gw2 "$APIGATE" serve -c "$T/gw2.yaml"
wait_port "$g2port"
G=http://127.0.0.1:$gport
hexre='^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'

log "a valid traceparent is continued: same trace id, new parent id, sampled flag kept"
tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
body=$(http_body "$G/echo/a" -H "traceparent: $tp" -H 'X-Request-Id: rid-61-a')
up=$(jq -r '.headers.traceparent' <<<"$body")
[[ $up =~ $hexre ]] || fail "upstream traceparent malformed: '$up'"
assert_eq "${up:3:32}" 4bf92f3577b34da6a3ce929d0e0e4736 "trace id propagated"
assert_ne "${up:36:16}" 00f067aa0ba902b7 "parent id replaced by the gateway's span"
assert_eq "${up:53:2}" 01 "flags kept"
# exactly one traceparent reaches the upstream (the client's is replaced, not duplicated)
n=$(curl -s --max-time 10 "$G/echo/a" -H "traceparent: $tp" | grep -o 4bf92f3577b34da6a3ce929d0e0e4736 | wc -l)
assert_eq "$n" 1 "one traceparent upstream"

log "tracestate goes on with a continued trace, is dropped with an invalid traceparent"
b=$(http_body "$G/echo/ts" -H "traceparent: $tp" -H 'tracestate: congo=t61rcWkgMzE')
assert_eq "$(jq -r '.headers.tracestate' <<<"$b")" congo=t61rcWkgMzE "tracestate kept"
b=$(http_body "$G/echo/ts" -H "traceparent: 00-zz" -H 'tracestate: congo=t61rcWkgMzE')
assert_eq "$(jq -r '.headers.tracestate' <<<"$b")" null "tracestate dropped with an invalid traceparent"
b=$(http_body "$G/echo/ts" -H 'tracestate: congo=t61rcWkgMzE')
assert_eq "$(jq -r '.headers.tracestate' <<<"$b")" null "tracestate dropped without traceparent"

log "absent: generated, and a different trace per request"
b1=$(http_body "$G/echo/b" -H 'X-Request-Id: rid-61-b')
b2=$(http_body "$G/echo/b")
t1=$(jq -r '.headers.traceparent' <<<"$b1")
t2=$(jq -r '.headers.traceparent' <<<"$b2")
[[ $t1 =~ $hexre ]] || fail "generated traceparent malformed: '$t1'"
[[ $t2 =~ $hexre ]] || fail "generated traceparent malformed: '$t2'"
assert_ne "${t1:3:32}" "${t2:3:32}" "new trace per request"
assert_ne "${t1:3:32}" 00000000000000000000000000000000 "non-zero trace id"

log "invalid (uppercase hex, version ff): a new trace"
for bad in 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01 \
    ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 garbage; do
    t=$(http_body "$G/echo/c" -H "traceparent: $bad" | jq -r '.headers.traceparent')
    [[ $t =~ $hexre ]] || fail "traceparent for invalid '$bad' malformed: '$t'"
    assert_ne "${t:3:32}" 4bf92f3577b34da6a3ce929d0e0e4736 "invalid '$bad' not continued"
done

log "the access log JSON line carries the trace id with the request id"
deadline=$((SECONDS + 5))
until grep -q rid-61-b "$T/access-$gport.log" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "access log line for rid-61-b not written"
    sleep 0.05
done
line=$(grep rid-61-a "$T/access-$gport.log" | head -n1)
assert_eq "$(jq -r .trace_id <<<"$line")" 4bf92f3577b34da6a3ce929d0e0e4736 "trace id in access log (continued)"
line=$(grep rid-61-b "$T/access-$gport.log" | head -n1)
assert_eq "$(jq -r .trace_id <<<"$line")" "${t1:3:32}" "trace id in access log (generated) = upstream's"
[ "$(jq -r .upstream_ttfb_ms <<<"$line")" != null ] || fail "upstream_ttfb_ms missing: $line"
# the first request opened the upstream connection: its line has the connect time; later ones
# reused it and have none
line=$(grep rid-61-a "$T/access-$gport.log" | head -n1)
jq -e '.connect_ms > 0' <<<"$line" >/dev/null || fail "connect_ms missing on the first request: $line"
line=$(grep rid-61-b "$T/access-$gport.log" | head -n1)
assert_eq "$(jq -r .connect_ms <<<"$line")" null "no connect on a reused connection"

log "Server-Timing when enabled: upstream, pool and total durations"
hdrs=$(curl -s -D - -o /dev/null --max-time 10 "$G/slow")
st=$(grep -i '^server-timing:' <<<"$hdrs" | tr -d '\r' | sed 's/^[^:]*: //')
[ -n "$st" ] || fail "no Server-Timing header: $hdrs"
assert_contains "$st" "upstream;dur=" "Server-Timing upstream"
assert_contains "$st" "pool;dur=" "Server-Timing pool"
assert_contains "$st" "total;dur=" "Server-Timing total"
updur=$(sed -E 's/.*upstream;dur=([0-9.]+).*/\1/' <<<"$st")
awk -v d="$updur" 'BEGIN { exit !(d >= 25 && d < 5000) }' ||
    fail "upstream duration $updur ms does not show the mock's 30 ms latency ($st)"

log "Server-Timing on the cache path: MISS with the upstream's timings, then HIT from memory"
st_of() { curl -s -D - -o /dev/null --max-time 10 "$1" | grep -i '^server-timing:' | tr -d '\r' | sed 's/^[^:]*: //'; }
st=$(st_of "$G/cached")
assert_contains "$st" "cache;desc=MISS" "miss"
assert_contains "$st" "upstream;dur=" "miss went upstream"
st=$(st_of "$G/cached")
assert_contains "$st" "cache;desc=HIT" "hit"
assert_contains "$st" "total;dur=" "hit total"
assert_not_contains "$st" "upstream;dur=" "a hit has no upstream time"
[ "$(st_of "http://127.0.0.1:$g2port/cached")" = "" ] || fail "Server-Timing on a miss while disabled"
[ "$(st_of "http://127.0.0.1:$g2port/cached")" = "" ] || fail "Server-Timing on a hit while disabled"
deadline=$((SECONDS + 5))
until [ "$(grep -c '"route":"/cached"' "$T/access-$gport.log")" -ge 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "access log lines of /cached not written"
    sleep 0.05
done
assert_eq "$(grep '"route":"/cached"' "$T/access-$gport.log" | jq -r .cache | tr '\n' ' ')" "MISS HIT " \
    "cache outcome in the access log"

log "no Server-Timing when disabled"
hdrs=$(curl -s -D - -o /dev/null --max-time 10 "http://127.0.0.1:$g2port/slow")
assert_contains "$hdrs" "200" "status"
if grep -qi '^server-timing:' <<<"$hdrs"; then fail "Server-Timing present while disabled: $hdrs"; fi
log "trace headers passed"
