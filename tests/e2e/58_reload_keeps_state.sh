#!/usr/bin/env bash
# A reload keeps the cache and the statistics (issue 14 item 3). The old worker hands its cache
# entries and counter totals to its replacement (src/gateway/handoff.c):
#   HIT before a SIGHUP is a HIT after it (the origin is not asked again);
#   an entry whose route's cache policy changed is dropped (MISS), the others are kept;
#   counters never go down across reloads and max_requests recycles;
#   apigate_uptime_seconds counts from the supervisor's start, process_start_time_seconds from the
#   worker's (so a series that did reset is a legal reset).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

read -r mport gport aport < <(free_ports 3)
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: GET, path: '/api/users/{id}', body_size: 200}
  - {method: GET, path: '/api/items/{id}', body_size: 200}
  - {method: GET, path: '/api/v/{id}', body_size: 200}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
SECRET=0123456789abcdef0123456789abcdef
gw_config() { # gw_config USERS_TTL MAX_REQUESTS
    cat >"$T/gw.yaml" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2, max_requests: $2, drain_timeout: 5s}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /api/users/, upstream: api, cache: {ttl: $1, override: true}}
  - {match: /api/items/, upstream: api, cache: {ttl: 60s, override: true}}
  - {match: /api/v/, upstream: api, cache: {ttl: 60s, override: true, vary: [Accept-Language]}}
  - {match: /api/, upstream: api}
cache: {key_secret: "$SECRET"}
YAML
}
gw_config 60s 0
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$gport"
wait_port "$aport"
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport
t_start=$(date +%s)

xcache() { local p=$1; shift; curl -s -o /dev/null -D - --max-time 10 "$@" "$G$p" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }'; }
metric() { curl -s --max-time 5 "$A/metrics" | awk -v k="$1" 'index($0, k " ") == 1 { print $2; f = 1 } END { if (!f) print 0 }'; }
served() { mock_stat "$mport" total; }
# reload_and_wait N: SIGHUP, then wait until the Nth "reload done" line is logged
reload_and_wait() {
    kill -HUP "$SV"
    local deadline=$((SECONDS + 15))
    until [ "$(grep -c 'reload done' "$T/gw.log" || true)" -ge "$1" ]; do
        [ $SECONDS -lt $deadline ] || fail "reload $1 not done: $(tail -5 "$T/gw.log")"
        sleep 0.05
    done
}
req_users='apigate_requests_total{route="/api/users/",status_class="2xx"}'
hist_count='apigate_route_request_duration_seconds_count{route="/api/users/"}'
accepted='apigate_connections_accepted_total'
# snap NAME: the counters now, one per line, into $T/NAME
snap() {
    for k in "$req_users" "$hist_count" "$accepted"; do metric "$k"; done >"$T/$1"
    curl -s --max-time 5 "$A/stats" | jq -r '.requests.total, .cache.hits' >>"$T/$1" # /stats, dashboard, top
}
# monotonic A B WHAT: every counter of snapshot B >= its value in A
monotonic() {
    paste "$T/$1" "$T/$2" | while read -r a b; do
        [ "${b%.*}" -ge "${a%.*}" ] || fail "$3: a counter went down: $a -> $b ($(paste -d' ' "$T/$1" "$T/$2" | tr '\n' ';'))"
    done
}

log "MISS then HIT, for two cached routes"
assert_eq "$(xcache /api/users/1)" MISS "first users request"
assert_eq "$(xcache /api/users/1)" HIT "second users request"
assert_eq "$(xcache /api/items/1)" MISS "first items request"
assert_eq "$(xcache /api/v/1 -H 'Accept-Language: fr')" MISS "first request of a vary: route"
for i in $(seq 1 20); do curl -s -o /dev/null "$G/api/users/1"; done
snap before
origin=$(served)
[ "$(metric "$req_users")" -ge 22 ] || fail "requests counter before the reload: $(metric "$req_users")"

log "SIGHUP with the same file: still HIT, the origin not asked, counters kept"
reload_and_wait 1
assert_eq "$(xcache /api/users/1)" HIT "users after the reload"
assert_eq "$(xcache /api/items/1)" HIT "items after the reload"
assert_eq "$(xcache /api/v/1 -H 'Accept-Language: fr')" HIT "vary: route (keys keyed by cache.key_secret) after the reload"
assert_eq "$(xcache /api/v/1 -H 'Accept-Language: de')" MISS "another variant of the vary: route"
assert_eq "$(served)" "$((origin + 1))" "origin requests after the reload (the de variant only)"
snap after1
monotonic before after1 "reload"
grep -q "hand-over from the previous worker: .* [1-9][0-9]* cache entries" "$T/gw.log" ||
    fail "no hand-over logged: $(grep -i hand-over "$T/gw.log" | tail -3)"

log "SIGHUP changing the users route's ttl: its entry is dropped, the items entry kept"
gw_config 30s 0
reload_and_wait 2
assert_eq "$(xcache /api/users/1)" MISS "users after its cache policy changed"
assert_eq "$(xcache /api/items/1)" HIT "items (unchanged route) after the reload"
snap after2
monotonic after1 after2 "reload with a changed route"

log "every request counted across a reload under load (the old worker's final totals are carried)"
cnt_items() { metric 'apigate_requests_total{route="/api/items/",status_class="2xx"}'; }
before_items=$(cnt_items)
"$APIGATE" load -q -c 4 -d 3s --timeout 5s --json "$T/hup.json" "$G/api/items/1" >"$T/hup.out" 2>&1 &
LOAD_PID=$!
sleep 1
reload_and_wait 3
wait "$LOAD_PID" || true
sent=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['requests'])" "$T/hup.json")
[ "$sent" -ge 100 ] || fail "the load sent only $sent requests: $(cat "$T/hup.out")"
deadline=$((SECONDS + 5))
until [ "$(($(cnt_items) - before_items))" -ge "$sent" ]; do
    [ $SECONDS -lt $deadline ] || fail "requests counted across the reload: $(($(cnt_items) - before_items)) of $sent"
    sleep 0.2
done
assert_eq "$(($(cnt_items) - before_items))" "$sent" "requests counted across the reload"
grep -q "final counters carried" "$T/gw.log" || fail "no final counters carried"

log "max_requests recycles: counters keep growing, the cache stays"
gw_config 30s 40
reload_and_wait 4
before_recycles=$(grep -c 'recycling' "$T/gw.log" || true)
snap before_recycle
for i in $(seq 1 120); do curl -s -o /dev/null "$G/api/items/1"; done
deadline=$((SECONDS + 10))
until [ "$(grep -c 'recycling' "$T/gw.log" || true)" -gt "$before_recycles" ]; do
    [ $SECONDS -lt $deadline ] || fail "no recycle after 120 requests with max_requests 40"
    sleep 0.1
done
sleep 1
assert_eq "$(xcache /api/items/1)" HIT "items after a recycle"
snap after_recycle
monotonic before_recycle after_recycle "recycle"
items='apigate_requests_total{route="/api/items/",status_class="2xx"}'
[ "$(metric "$items")" -ge 120 ] || fail "items requests counted across the recycle: $(metric "$items") < 120"

log "uptime from the supervisor's start; process_start_time_seconds from the worker's"
up=$(metric apigate_uptime_seconds)
elapsed=$(($(date +%s) - t_start))
awk -v u="$up" -v e="$elapsed" 'BEGIN { exit !(u + 1 >= e) }' || fail "apigate_uptime_seconds $up < $elapsed s since the start"
pst=$(metric process_start_time_seconds)
awk -v p="$pst" -v t="$t_start" 'BEGIN { exit !(p > t) }' || fail "process_start_time_seconds $pst is not the worker's start (after $t_start)"
log "ok"
