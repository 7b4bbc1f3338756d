#!/usr/bin/env bash
# scripts/deps.sh and the Makefile, run against stub dpkg-query, apt-get, systemctl, sudo and id
# on PATH: nothing is really installed, stopped or disabled. `make demo` asks only for the build
# group (the demo runs nothing but the binary), `make test` for the test group; the script says
# which packages and why before apt-get runs; a service running before (redis-server) is never
# stopped or disabled, even when a package is installed; a service that the installation itself
# started is stopped and disabled again; nothing to install is silent; no root and no sudo prints
# the command instead; an apt-get failure shows its log and exits 1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
S=$T/stub
mkdir -p "$S/bin"

# dpkg-query -W -f=... PKG: installed when listed in $S/installed
cat >"$S/bin/dpkg-query" <<'EOF'
#!/bin/sh
for p; do :; done
grep -qx "$p" "$STUB/installed" 2>/dev/null && printf 'install ok installed' && exit 0
exit 1
EOF
# apt-get: logged; it must come after the announcement; install marks packages installed and,
# as Debian's postinst does, starts their service (nginx-light -> nginx, redis-server, ...)
cat >"$S/bin/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get $*" >>"$STUB/apt.log"
grep -q "^deps: installing" "$STUB/out" || { echo "apt-get before the announcement" >>"$STUB/apt.log"; exit 1; }
[ -e "$STUB/apt_fails" ] && { echo "E: Unable to locate package nginx-light"; exit 100; }
[ "$1" = install ] || exit 0
for p; do
    case "$p" in -*|install) continue ;; esac
    echo "$p" >>"$STUB/installed"
    case "$p" in
    nginx-light) echo nginx >>"$STUB/active" ;;
    redis-server|postgresql|pgbouncer|prometheus) echo "$p" >>"$STUB/active" ;;
    esac
done
EOF
cat >"$S/bin/systemctl" <<'EOF'
#!/bin/sh
echo "systemctl $*" >>"$STUB/systemctl.log"
case "$1" in
is-active) for s; do :; done; grep -qx "$s" "$STUB/active" 2>/dev/null ;;
stop) grep -vx "$2" "$STUB/active" >"$STUB/active.new" || true; mv "$STUB/active.new" "$STUB/active" ;;
*) exit 0 ;;
esac
EOF
cat >"$S/bin/sudo" <<'EOF'
#!/bin/sh
echo "sudo $*" >>"$STUB/sudo.log"
exec "$@"
EOF
cat >"$S/bin/id" <<'EOF'
#!/bin/sh
[ "$1" = -u ] && { echo "${STUB_UID:-0}"; exit 0; }
exec /usr/bin/id "$@"
EOF
chmod +x "$S/bin/"*
export STUB=$S
# The package lists, read from the script itself.
pkgs() { sed -n "/^$1=\"/,/\"\$/p" "$AG_SRC/scripts/deps.sh" | sed "s/^$1=\"//; s/[\"\\\\]//g" | tr ' ' '\n' | grep -v '^$'; }
BUILD=$(pkgs BUILD_PKGS)
TESTP=$(pkgs TEST_PKGS)
[ -n "$BUILD" ] && [ -n "$TESTP" ] || fail "cannot read the package lists of scripts/deps.sh"
# reset "INSTALLED_PKGS..." "ACTIVE_SERVICES...": a fresh stub machine
reset() {
    rm -f "$S"/*.log "$S/apt_fails"
    : >"$S/installed"
    : >"$S/active"
    : >"$S/out"
    local x
    for x in $1; do echo "$x" >>"$S/installed"; done
    for x in $2; do echo "$x" >>"$S/active"; done
}
deps() { # deps GROUP: runs the script on the stub machine; stderr in $S/out, exit code in $rc
    rc=0
    PATH="$S/bin:$PATH" sh "$AG_SRC/scripts/deps.sh" "$1" 2>"$S/out" || rc=$?
}
stops() { grep -E "systemctl (stop|disable)" "$S/systemctl.log" 2>/dev/null || true; }

log "make demo needs the build group only; make test the test group"
demo=$(make -s -n -C "$AG_SRC" demo BUILD="$T/b" 2>&1)
assert_contains "$demo" "scripts/deps.sh build" "make demo"
assert_not_contains "$demo" "scripts/deps.sh test" "make demo"
assert_contains "$(make -s -n -C "$AG_SRC" test BUILD="$T/b" 2>&1)" "scripts/deps.sh test" "make test"
for p in nginx-light redis-server postgresql pgbouncer prometheus chromium; do
    grep -qx "$p" <<<"$BUILD" && fail "$p is in the build group (make demo would install it)"
done

log "everything there: silent, nothing run"
reset "$BUILD $TESTP" "redis-server"
deps test
assert_eq "$rc" 0 "exit code"
assert_eq "$(cat "$S/out")" "" "output"
[ ! -e "$S/apt.log" ] || fail "apt-get ran: $(cat "$S/apt.log")"

log "a running redis-server is left alone while nginx-light is installed (and its nginx stopped)"
reset "$(echo "$BUILD $TESTP" | tr ' ' '\n' | grep -vx nginx-light | tr '\n' ' ')" "redis-server"
deps test
assert_eq "$rc" 0 "exit code: $(cat "$S/out")"
assert_contains "$(cat "$S/out")" "missing Debian packages, needed to build apigate and run its tests (make test)" "announcement"
assert_contains "$(cat "$S/out")" "nginx-light" "the package is named"
assert_contains "$(cat "$S/apt.log")" "apt-get install -y -qq --no-install-recommends nginx-light" "apt-get install"
assert_not_contains "$(cat "$S/apt.log")" "before the announcement" "announced first"
assert_not_contains "$(stops)" "redis-server" "redis-server (running before) stopped or disabled"
grep -qx redis-server "$S/active" || fail "redis-server no longer running"
assert_contains "$(stops)" "systemctl stop nginx" "nginx started by the install is stopped"
assert_contains "$(stops)" "systemctl disable nginx" "and disabled"
assert_contains "$(cat "$S/out")" "nginx was started by its installation just now" "the stop is explained"

log "redis-server itself missing but a redis-server running (another install): still left alone"
reset "$(echo "$BUILD $TESTP" | tr ' ' '\n' | grep -vx redis-server | tr '\n' ' ')" "redis-server postgresql"
deps test
assert_eq "$rc" 0 "exit code"
assert_eq "$(stops)" "" "stop/disable calls"
grep -qx redis-server "$S/active" || fail "redis-server no longer running"

log "the build group installs build packages only"
reset "" ""
deps build
assert_eq "$rc" 0 "exit code"
inst=$(grep "apt-get install" "$S/apt.log")
for p in $TESTP; do
    grep -qx "$p" <<<"$BUILD" && continue
    assert_not_contains " $inst " " $p " "build group installs a test package"
done
for p in $BUILD; do assert_contains "$inst " " $p " "build group installs $p"; done
assert_contains "$(cat "$S/out")" "needed to build apigate (make build, make demo)" "build announcement"
assert_eq "$(stops)" "" "stop/disable calls for the build group"

log "not root: sudo apt-get; not root and no sudo: the command to run, exit 1"
reset "$BUILD" ""
export STUB_UID=1000
deps test
assert_eq "$rc" 0 "exit code with sudo"
assert_contains "$(cat "$S/sudo.log")" "sudo apt-get install" "apt-get through sudo"
assert_contains "$(cat "$S/out")" "installing them with sudo apt-get" "sudo announced"
reset "$BUILD" ""
rm "$S/bin/sudo"
mkdir -p "$T/nosudo"
for t in dpkg-query grep sed tr sh cat mktemp rm id; do
    src=$(PATH="$S/bin:$PATH" command -v "$t")
    ln -sf "$src" "$T/nosudo/$t"
done
rc=0
PATH="$T/nosudo" "$(command -v sh)" "$AG_SRC/scripts/deps.sh" test 2>"$S/out" || rc=$?
unset STUB_UID
assert_eq "$rc" 1 "exit code without root or sudo"
assert_contains "$(cat "$S/out")" "not root and no sudo" "message"
assert_contains "$(cat "$S/out")" "apt-get install --no-install-recommends" "the command to run"
[ ! -e "$S/apt.log" ] || fail "apt-get ran without root"

log "apt-get fails: its log, exit 1"
reset "$BUILD" ""
touch "$S/apt_fails"
deps test
assert_eq "$rc" 1 "exit code"
assert_contains "$(cat "$S/out")" "Unable to locate package" "apt's own message"
assert_contains "$(cat "$S/out")" "deps: apt-get failed" "summary"
log "ok"
