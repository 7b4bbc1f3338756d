#!/usr/bin/env bash
# /stats/history (the dashboard's last 10 minutes, src/gateway/statring.c) goes on across a config
# reload and a max_requests recycle: the old worker hands its points to the new one with the
# cache and the counters (src/gateway/handoff.c). The points from before are still served after,
# with the same timestamps and values, and the new worker's own points follow them in time order;
# the new worker's first point covers the time since the old worker's last one (no second of a
# reload under load is left out: the points account for every request).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

read -r mport gport aport < <(free_ports 3)
start_mock mock "$mport"
gw_config() { # gw_config MAX_REQUESTS
    cat >"$T/gw.yaml" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1, max_requests: $1, drain_timeout: 2s}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
YAML
}
gw_config 0
start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
wait_port "$gport"
wait_port "$aport"
G=http://127.0.0.1:$gport
A=http://127.0.0.1:$aport

history() { curl -s --max-time 5 "$A/stats/history"; }
# points with requests (rps > 0), as "t_ms rps" lines
busy() { jq -r '.points[] | select(.rps > 0) | "\(.t_ms) \(.rps)"'; }
# wait_busy N: until the history holds N seconds with requests
wait_busy() {
    local deadline=$((SECONDS + 20))
    until [ "$(history | busy | wc -l)" -ge "$1" ]; do
        [ $SECONDS -lt $deadline ] || fail "history never held $1 busy seconds: $(history)"
        curl -s -o /dev/null --max-time 5 "$G/x"
        sleep 0.3
    done
}
reload_and_wait() { # reload_and_wait N: SIGHUP, then wait for the Nth "reload done"
    kill -HUP "$SV"
    local deadline=$((SECONDS + 15))
    until [ "$(grep -c 'reload done' "$T/gw.log" || true)" -ge "$1" ]; do
        [ $SECONDS -lt $deadline ] || fail "reload $1 not done: $(tail -5 "$T/gw.log")"
        sleep 0.05
    done
}
# kept BEFORE AFTER WHAT: every busy point of BEFORE is in AFTER, same time and value
kept() {
    local missing
    missing=$(comm -23 <(sort "$T/$1") <(sort "$T/$2"))
    [ -z "$missing" ] || fail "$3: points lost: $(head -3 <<<"$missing" | tr '\n' ';') (after: $(head -c 400 "$T/$2"))"
}
ordered() { # ordered WHAT: t_ms strictly increasing
    [ "$(history | jq '[.points[].t_ms] as $t | [range(1; $t | length) | $t[.] > $t[. - 1]] | all')" = true ] ||
        fail "$1: history not in time order: $(history | jq -c '[.points[].t_ms]')"
}

log "requests over a few seconds fill the history"
wait_busy 3
history | busy >"$T/h0"
n0=$(wc -l <"$T/h0")

log "SIGHUP: a new worker serves, the points from before are still there"
reload_and_wait 1
grep -q "seconds of history carried" "$T/gw.log" || fail "no history hand-over logged: $(tail -5 "$T/gw.log")"
history | busy >"$T/h1"
kept h0 h1 "after the reload"
ordered "after the reload"

if command -v chromium >/dev/null 2>&1; then
    log "the dashboard opened after the reload starts with the points from before it"
    all=$(history | jq '.points | length')
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$T/chrome" \
        --virtual-time-budget=800 --dump-dom "$A/dashboard" >"$T/dom.html" 2>>"$T/chromium.log" ||
        fail "chromium failed: $(tail -5 "$T/chromium.log")"
    bf=$(grep -o 'data-backfill="[0-9]*"' "$T/dom.html" | grep -o '[0-9]*' || true)
    [ "${bf:-0}" -ge "$all" ] || fail "the page read ${bf:-no} history points, the gateway kept $all"
    pts=$(grep -o 'id="c-rps"[^>]*' "$T/dom.html" | sed -nE 's/.*data-points="([0-9]*)".*/\1/p')
    [ "${pts:-0}" -ge "$all" ] || fail "the page drew ${pts:-no} RPS points of the $all kept"
fi

log "and the new worker adds its own after them"
wait_busy $((n0 + 2))
history | busy >"$T/h1b"
kept h0 h1b "after the reload, later"
last_old=$(tail -1 "$T/h0" | cut -d' ' -f1)
newest=$(history | jq '.points[-1].t_ms')
[ "$newest" -gt "$last_old" ] || fail "no point after the reload ($newest <= $last_old)"
ordered "after new points"

log "a reload under load leaves no second out: the points account for every request"
# quiet_after T: waits until the two newest points are idle and newer than T; prints the newest t_ms
quiet_after() {
    local deadline=$((SECONDS + 20)) h
    while :; do
        h=$(history)
        if [ "$(jq --argjson t "$1" '.points | length >= 2 and .[-1].t_ms > $t and .[-1].rps == 0 and .[-2].rps == 0' <<<"$h")" = true ]; then
            jq '.points[-1].t_ms' <<<"$h"
            return
        fi
        [ $SECONDS -lt $deadline ] || fail "history never quiet: $(jq -c '[.points[-4:][] | .rps]' <<<"$h")"
        sleep 0.5
    done
}
t0=$(quiet_after 0)
total0=$(curl -s --max-time 5 "$A/stats" | jq .requests.total)
"$APIGATE" load -q -c 4 --rate 50/s -d 4s "$G/z" >"$T/load.out" 2>&1 &
lp=$!
sleep 2
reload_and_wait 2
wait "$lp" || true # the mock answers 404 here: requests all the same
t1=$(quiet_after "$(history | jq '.points[-1].t_ms')")
total1=$(curl -s --max-time 5 "$A/stats" | jq .requests.total)
# each point holds rps over the time it covers (dt_ms): rps x dt = its requests; a second of the
# hand-over that no point covers loses its requests
seen=$(history | jq --argjson t0 "$t0" '[.points[] | select(.t_ms > $t0) | .rps * .dt_ms / 1000] | add | round')
want=$((total1 - total0))
[ "$want" -ge 150 ] || fail "only $want requests during the reload"
awk -v s="$seen" -v w="$want" 'BEGIN { d = s - w; if (d < 0) d = -d; exit !(d <= 0.03 * w + 3) }' ||
    fail "the history accounts for $seen of the $want requests around the reload: $(history | jq -c --argjson t "$t0" '[.points[] | select(.t_ms > $t) | [.t_ms % 100000, .rps]]')"

log "a max_requests recycle carries it too"
history | busy >"$T/h2"
gw_config 30
reload_and_wait 3
for _ in $(seq 1 40); do curl -s -o /dev/null --max-time 5 "$G/y"; done
deadline=$((SECONDS + 20))
until grep -q "requests: recycling" "$T/gw.log" && [ "$(grep -c 'seconds of history carried' "$T/gw.log")" -ge 3 ]; do
    [ $SECONDS -lt $deadline ] || fail "no recycle with a hand-over: $(tail -8 "$T/gw.log")"
    curl -s -o /dev/null --max-time 5 "$G/z"
    sleep 0.2
done
wait_port "$aport"
history | busy >"$T/h3"
kept h2 h3 "after a recycle"
ordered "after a recycle"
log "history kept across reload and recycle ($(wc -l <"$T/h3") busy seconds)"
