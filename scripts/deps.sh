#!/bin/sh
# Installs the Debian packages that apigate's build, tests and benchmarks need, when missing.
# Idempotent and quiet when everything is present; runs apt-get update only when it must install.
# Usage: scripts/deps.sh [build|test|bench]   (default: test, which includes build)
set -eu

BUILD_PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev libssl-dev libyaml-dev \
libhiredis-dev libpq-dev libxxhash-dev libcjson-dev libcmocka-dev"
TEST_PKGS="curl jq python3 valgrind nginx-light redis-server postgresql postgresql-contrib pgbouncer \
apache2-utils wrk prometheus chromium procps iproute2 python3-yaml openssl"
BENCH_PKGS="nginx-light haproxy varnish wrk util-linux"

what="${1:-test}"
case "$what" in
    build) want="$BUILD_PKGS" ;;
    test) want="$BUILD_PKGS $TEST_PKGS" ;;
    bench) want="$BUILD_PKGS $TEST_PKGS $BENCH_PKGS" ;;
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

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/apigate-deps.XXXXXX)
# Quiet on success; the whole apt log on failure, so the cause is visible.
# shellcheck disable=SC2086
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps: apt-get failed (log above); install the packages listed by hand, then retry" >&2
    exit 1
fi
rm -f "$log"
# Services from packages must not keep running: tests start their own on free ports.
for svc in nginx redis-server postgresql pgbouncer haproxy varnish prometheus prometheus-node-exporter; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
        $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
done
exit 0
