#!/bin/sh
# Prints the include dependencies of the gateway's request path from the #include lines (the
# listing docs/ARCHITECTURE.md shows) and fails when the headers of src/ include each other in a
# circle (tsort finds the cycle). Issue 12: "no circle of includes among the request-path files".
# Usage: scripts/request-path-deps.sh [--check]   (--check: only the circle test, no listing)
set -eu
cd "$(dirname "$0")/.."
files="gateway/filter.h gateway/upool.h gateway/proxy.h gateway/gwthread.h gateway/req.h
gateway/conn.h gateway/h2sess.h gateway/tunnel.h gateway/cachehook.h gateway/cachehook_priv.h
gateway/resil.h gateway/rlimit.h gateway/rlshare.h gateway/compvar.h net/srvconn.h net/h1cli.h http/h1body.h
gateway/filter.c gateway/gwthread.c gateway/req.c gateway/conn.c gateway/h2sess.c
gateway/proxy.c gateway/tunnel.c gateway/cachehook.c gateway/cachebg.c gateway/cachel2.c
gateway/resil.c gateway/ratelimit.c gateway/rlshare.c gateway/compress.c gateway/compvar.c
gateway/worker.c gateway/admin.c mock/mock_conn.c load/client.c net/httpc.c net/srvconn.c net/h1cli.c"
# the project includes of <file>: "module/x.h" as x.h within its own module, else module/x.h
deps() {
    m=${1%%/*}
    own=$(basename "${1%.*}").h
    grep -h '^#include "[a-z]*/' "src/$1" | sed 's/#include "\([^"]*\)".*/\1/' |
        sed "s|^$m/||" | grep -vx "$own" | tr '\n' ' '
}
if [ "${1:-}" != --check ]; then
    for f in $files; do
        [ -e "src/$f" ] || continue # a file renamed or gone: the listing goes on without it
        printf '%-26s %s\n' "$f" "$(deps "$f")"
    done
fi
# every header of src/ and what it includes: a circle makes tsort complain
edges=$(for h in src/*/*.h; do
    from=${h#src/}
    grep -h '^#include "[a-z]*/' "$h" | sed 's/#include "\([^"]*\)".*/\1/' |
        while read -r to; do echo "$from $to"; done
    echo "$from $from"
done)
if ! echo "$edges" | tsort >/dev/null 2>"${TMPDIR:-/tmp}/request-path-deps.$$"; then
    cat "${TMPDIR:-/tmp}/request-path-deps.$$" >&2
    rm -f "${TMPDIR:-/tmp}/request-path-deps.$$"
    echo "request-path-deps: the headers include each other in a circle (above)" >&2
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/request-path-deps.$$"
[ "${1:-}" = --check ] || echo "no circle among the $(ls src/*/*.h | wc -l) headers of src/"
