#!/bin/sh
# Installs the Debian packages that apigate needs, when missing. Quiet when everything is there.
# Usage: scripts/deps.sh [build|test|bench]
#   build  the compiler, CMake and the libraries: what `make build` and `make demo` need (the demo
#          runs nothing but this binary: apigate mock, serve and load); libjs-chart.js is Chart.js,
#          which the build embeds into the binary for the dashboard and the load reports
#   test   build + the servers and tools the tests run against (`make test`, CI's .ci/run)
#   bench  test + the proxies the benchmarks compare with
# Before installing it says which packages and why. Debian starts a service when its package is
# installed: a service that this run's installation started (not running before, running after)
# is stopped and disabled again, since the tests start their own on free ports; a service that
# was already running is never touched.
set -eu

BUILD_PKGS="build-essential cmake pkg-config libssl-dev libyaml-dev libhiredis-dev libpq-dev \
libxxhash-dev libcjson-dev libcmocka-dev libnghttp2-dev zlib1g-dev libzstd-dev libbrotli-dev \
libjs-chart.js"
TEST_PKGS="clang libclang-rt-14-dev curl jq python3 valgrind nginx-light redis-server redis-sentinel postgresql \
postgresql-contrib pgbouncer apache2-utils wrk prometheus chromium procps iproute2 python3-yaml nghttp2-client \
openssl brotli zstd python3-brotli python3-zstandard python3-websockets python3-h2"
BENCH_PKGS="nginx-light haproxy varnish wrk util-linux h2o"
# Services that packages of the lists above start when they are installed.
SERVICES="nginx redis-server redis-sentinel postgresql pgbouncer haproxy varnish prometheus \
prometheus-node-exporter h2o"

what="${1:-test}"
case "$what" in
    build) want="$BUILD_PKGS" why="to build apigate (make build, make demo)" ;;
    test) want="$BUILD_PKGS $TEST_PKGS" why="to build apigate and run its tests (make test)" ;;
    bench) want="$BUILD_PKGS $TEST_PKGS $BENCH_PKGS" why="to build, test and benchmark apigate" ;;
    *) echo "usage: scripts/deps.sh [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac # listed by two groups (bench adds test)
    # dpkg-query prints "install ok installed" only for a fully installed package.
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: $what: missing Debian packages, needed $why:" >&2
echo "deps:  $missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "deps: not root and no sudo: install them as root with" >&2
        echo "  apt-get install --no-install-recommends$missing" >&2
        exit 1
    fi
    SUDO=sudo
    echo "deps: installing them with sudo apt-get (it may ask for your password)" >&2
else
    SUDO=
    echo "deps: installing them with apt-get" >&2
fi

# The services running now: none of them is ever stopped by this script.
active_services() {
    command -v systemctl >/dev/null 2>&1 || return 0
    for svc in $SERVICES; do
        if systemctl is-active --quiet "$svc" 2>/dev/null; then
            echo "$svc"
        fi
    done
}
before=" $(active_services | tr '\n' ' ') "

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/apigate-deps.XXXXXX)
# Quiet on success; the whole apt log on failure, so the cause is visible.
# shellcheck disable=SC2086
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps: apt-get failed (log above); install the packages listed by hand, then retry" >&2
    rm -f "$log"
    exit 1
fi
rm -f "$log"
echo "deps: installed:$missing" >&2

for svc in $(active_services); do
    case "$before" in *" $svc "*) continue ;; esac
    echo "deps: $svc was started by its installation just now: stopping and disabling it" \
        "(the tests start their own on free ports)" >&2
    $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
    $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
done
exit 0
