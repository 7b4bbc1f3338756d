#!/usr/bin/env bash
# Chart.js is a build dependency (Debian libjs-chart.js, embedded into the binary by
# cmake/embed.cmake): without it, CMake stops with a message that names the package and
# `make deps`, and the binary carries the library byte for byte (served as /dashboard/chart.js).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd cmake curl

log "configure without Chart.js: a clear error naming make deps"
rc=0
cmake -S "$AG_SRC" -B "$T/build" -DAG_CHARTJS="$T/missing/chart.min.js" >"$T/cmake.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "cmake configured without Chart.js"
msg=$(tr -s ' \n' '  ' <"$T/cmake.out")
assert_contains "$msg" "Chart.js not found" "what is missing"
assert_contains "$msg" "libjs-chart.js" "the package"
assert_contains "$msg" "make deps" "how to get it"

log "the embedded library is the packaged one, byte for byte"
js=$(sed -n 's/^AG_CHARTJS:FILEPATH=//p' "$AG_BUILD/CMakeCache.txt")
[ -f "$js" ] || fail "the build's AG_CHARTJS '$js' is not a file"
read -r aport < <(free_ports 1)
start_gateway gw "$aport" <<YAML
admin: 127.0.0.1:$aport
listen: 127.0.0.1:$(free_port)
upstreams: {api: {servers: [127.0.0.1:9]}}
routes: [{match: /, upstream: api}]
YAML
curl -s --max-time 10 -o "$T/served.js" "http://127.0.0.1:$aport/dashboard/chart.js"
cmp -s "$js" "$T/served.js" || fail "/dashboard/chart.js ($(wc -c <"$T/served.js") bytes) differs from $js"
log "Chart.js: build dependency with a clear error, embedded as packaged"
