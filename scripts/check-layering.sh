#!/bin/sh
# Checks that every #include "module/file.h" under src/ goes the allowed way (STYLE.md §1:
# core <- http <- net <- {gateway, load, mock, doctor, demo, top}; cache, metrics on core+http;
# config on core). The allowed modules are not listed twice: they are read from the include views
# CMakeLists.txt's ag_module() makes (BUILD/include-view/<module>/ links to each module it may
# use), the same views the compiler gets, so this says in words what the build's "No such file"
# error means, and also catches what the views cannot: a "../" path.
# Usage: scripts/check-layering.sh [BUILD_DIR]   (default: build). Exit 1 on a wrong-way include.
set -eu
cd "$(dirname "$0")/.."
views=${1:-build}/include-view
[ -d "$views" ] || { echo "check-layering: no $views (run cmake first)" >&2; exit 2; }
bad=0
for dir in src/*/; do
    m=$(basename "$dir")
    if [ ! -d "$views/$m" ]; then
        echo "src/$m: a folder that is no ag_module() in CMakeLists.txt" >&2
        bad=1
        continue
    fi
    allowed=$(ls "$views/$m" | tr '\n' ' ')
    for f in "$dir"*.[ch]; do
        [ -e "$f" ] || continue
        # file:line:target for each quoted include
        out=$(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
            sed 's/^\([0-9]*\):.*"\([^"]*\)".*/\1 \2/') || true
        [ -n "$out" ] || continue
        echo "$out" | while read -r line target; do
            case "$target" in
            ../* | */../* | /*)
                echo "$f:$line: #include \"$target\": include by module path (\"module/file.h\"), never a relative or absolute path" >&2
                echo bad
                continue
                ;;
            */*) dep=${target%%/*} ;;
            *) continue ;; # version.h and other generated headers
            esac
            if [ ! -e "$views/$m/$dep" ]; then
                echo "$f:$line: #include \"$target\": module $m may not use $dep; it may include: $allowed(the USES of ag_module($m) in CMakeLists.txt)" >&2
                echo bad
            fi
        done | grep bad >/dev/null && bad=1
    done
done
[ $bad -eq 0 ] && echo "check-layering: every include goes the allowed way"
exit $bad
