#!/usr/bin/env bash
# Scores `apigate serve` with the HTTP WG caching conformance suite (http-cache-tests 0.4.5, via
# ../shared/tools/cache-tests/score.sh) on a pure RFC 9111 route (`match: /`, `cache: {}`: no
# overrides) and fails below a floor. Reference scores with the same scorer, required tests of
# 165: nginx 94, HAProxy 96, Varnish 108, Squid 122, Apache Traffic Server 126.
# Without the scorer (a CI clone of the repository alone) it is skipped (exit 77, ctest: Not Run).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FLOOR=${CACHE_TESTS_FLOOR:-155}
SCORER=$AG_SRC/../shared/tools/cache-tests
[ -x "$SCORER/score.sh" ] || skip "cache-tests scorer not found at $SCORER"
require_cmd node npm ss
if [ ! -d "$SCORER/node_modules/http-cache-tests" ]; then
    log "installing the scorer's node modules (npm ci)"
    (cd "$SCORER" && npm ci >/dev/null 2>&1) || fail "npm ci in $SCORER failed"
fi

read -r gport aport oport <<<"$(free_ports 3)"
cat >"$T/gw.yaml" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
upstreams:
  origin: {servers: [127.0.0.1:$oport]}
routes:
  - match: /
    upstream: origin
    cache: {}
YAML
"$APIGATE" check -c "$T/gw.yaml" >/dev/null || fail "config rejected"
log "scoring (origin on $oport, apigate on $gport)"
OUT=$T/results NAME=apigate CLIENT_TIMEOUT=240 \
    "$SCORER/score.sh" "$gport" "$oport" -- "$APIGATE" serve -c "$T/gw.yaml" >"$T/score.out" 2>&1 ||
    true
tail -n 3 "$T/score.out" >&2
line=$(grep '^cache-tests: required' "$T/score.out" | tail -n1)
[ -n "$line" ] || fail "no score line: $(tail -n 20 "$T/score.out")"
passed=$(sed -E 's/^cache-tests: required ([0-9]+)\/.*/\1/' <<<"$line")
log "$line (floor $FLOOR)"
if [ "$passed" -lt "$FLOOR" ]; then
    echo "failed required tests:" >&2
    cat "$T/results/failed-required.txt" >&2 || true
    fail "conformance $passed below the floor $FLOOR"
fi
log "ok"
