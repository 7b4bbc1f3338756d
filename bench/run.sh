#!/usr/bin/env bash
# The one-command benchmark (`make bench`): installs the anchors from Debian (nginx, HAProxy,
# Varnish, wrk), runs every section against them on loopback, prints the ratios apigate / anchor
# (each a median of RUNS runs, from one run of this script) and writes them into
# docs/BENCHMARKS.md between the markers <!-- bench:run:begin --> and <!-- bench:run:end -->
# (replaced on every run; the hand-written sections around them are kept).
#
# Each section is a script of its own that can be run alone; this file only wraps them:
#   passthrough  bench/passthrough.sh    apigate vs nginx vs HAProxy, pooled keep-alive upstream
#   cache        bench/cache_hit.sh      cache hits: apigate vs nginx proxy_cache vs Varnish vs
#                                        nginx return 200 (skipped while the script is missing)
#   load         bench/load_vs_wrk.sh    apigate load vs wrk against nginx return 200
#   mock         bench/mock_vs_nginx.sh  apigate mock vs nginx return 200
#   seed         bench/seed_story.sh     the seed's API direct vs through apigate (apigate demo)
#   memory       bench/memory.sh         peak RSS of each process, bytes per idle connection
#
#   bench/run.sh [APIGATE]   env: RUNS=3 DURATION=5 (seconds per throughput run) SEED_DURATION=10s
#                                 SECTIONS="passthrough cache load mock seed memory"
#                                 DOC=docs/BENCHMARKS.md (WRITE_DOC=0: print only) NO_DEPS=1
# Not a test: the numbers depend on the machine and on what else runs on it.
set -euo pipefail
AG_SRC=$(cd "$(dirname "$0")/.." && pwd)
APIGATE=${1:-${APIGATE:-$AG_SRC/build/apigate}}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
SEED_DURATION=${SEED_DURATION:-10s}
SECTIONS=${SECTIONS:-passthrough cache load mock seed memory}
DOC=${DOC:-$AG_SRC/docs/BENCHMARKS.md}
WRITE_DOC=${WRITE_DOC:-1}
SECTION_TIMEOUT=${SECTION_TIMEOUT:-1200}

if [ "${NO_DEPS:-0}" != 1 ]; then
    "$AG_SRC/scripts/deps.sh" bench
fi
if [ ! -x "$APIGATE" ]; then
    echo "bench: building a release binary into $AG_SRC/build" >&2
    cmake -S "$AG_SRC" -B "$AG_SRC/build" -DCMAKE_BUILD_TYPE=release >/dev/null
    cmake --build "$AG_SRC/build" -j2 --target apigate >/dev/null
    APIGATE=$AG_SRC/build/apigate
fi
APIGATE=$(cd "$(dirname "$APIGATE")" && pwd)/$(basename "$APIGATE")
build_type=$("$APIGATE" --version)
case $build_type in *release*) ;; *) echo "bench: warning: $build_type is not a release build" >&2 ;; esac

W=$(mktemp -d /tmp/apigate-bench-run.XXXXXX)
trap 'rm -rf "$W"' EXIT

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
machine="$(nproc) CPUs ($model), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }'), kernel $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
commit=$(git -C "$AG_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
# (version commands exit non-zero or print to stderr; none of that may stop the run)
ver() { "$@" 2>&1 | head -n1 || true; }
versions="nginx $(ver nginx -v | sed 's/.*\///'), HAProxy $(ver haproxy -v | awk '{ print $3 }'), Varnish $(ver varnishd -V | sed 's/.*varnish-\([0-9.]*\).*/\1/'), wrk $(ver wrk -v | awk '{ print $2 }')"
echo "bench: $machine; $build_type at $commit; load average $load_start" >&2

# section NAME CMD...: runs one section with a time bound; its stdout is kept for the report.
declare -A CMDS STATUS
section() {
    local name=$1
    shift
    CMDS[$name]="$*"
    echo "bench: [$name] $*" >&2
    local t0=$SECONDS rc=0
    ( cd "$AG_SRC" && timeout "$SECTION_TIMEOUT" env "${ENVS[@]}" "$@" ) >"$W/$name.out" 2>"$W/$name.err" || rc=$?
    STATUS[$name]=$rc
    echo "bench: [$name] done in $((SECONDS - t0)) s (exit $rc)" >&2
    [ $rc -eq 0 ] || tail -n 5 "$W/$name.err" >&2
}
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if want passthrough; then
    ENVS=(DURATION="${DURATION}s" RUNS="$RUNS" CONNS=64)
    section passthrough bench/passthrough.sh "$APIGATE"
fi
if want cache; then
    if [ -x "$AG_SRC/bench/cache_hit.sh" ]; then
        ENVS=(DURATION="${DURATION}s" RUNS="$RUNS")
        section cache bench/cache_hit.sh "$APIGATE"
    else
        echo "bench: [cache] bench/cache_hit.sh not there yet: skipped" >&2
    fi
fi
if want load; then
    ENVS=(RUNS="$RUNS" CONNS=64)
    section load bench/load_vs_wrk.sh "$APIGATE" "$DURATION"
fi
if want mock; then
    ENVS=(RUNS="$RUNS" DURATION="${DURATION}s")
    section mock bench/mock_vs_nginx.sh "$APIGATE"
fi
if want seed; then
    ENVS=(RUNS="$RUNS" DURATION="$SEED_DURATION" USERS=200)
    section seed bench/seed_story.sh "$APIGATE"
fi
if want memory; then
    ENVS=(DURATION="${DURATION}s" CONNS_IDLE=5000)
    section memory bench/memory.sh "$APIGATE"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- ratios, apigate / anchor, from each section's medians ----
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
: >"$W/ratios"
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" >>"$W/ratios"; }
if [ -s "$W/passthrough.out" ]; then
    for mode in pinned unpinned; do
        # | mode | proxy | req/s | p99 ms | CPU µs/req |
        g() { awk -F'|' -v m="$mode" -v p="$1" -v c="$2" '{ gsub(/ /, "", $2); gsub(/ /, "", $3) }
              $2 == m && $3 == p { v = $c; gsub(/ /, "", v); print v; exit }' "$W/passthrough.out"; }
        a=$(g apigate 4) n=$(g nginx 4) h=$(g haproxy 4)
        [ -n "$a" ] || continue
        row "pass-through, $mode" "req/s apigate / nginx" "$(ratio "$a" "$n")" "$a vs $n"
        row "pass-through, $mode" "req/s apigate / HAProxy" "$(ratio "$a" "$h")" "$a vs $h"
        a=$(g apigate 6) n=$(g nginx 6) h=$(g haproxy 6)
        row "pass-through, $mode" "CPU µs/req apigate / nginx (lower is better)" "$(ratio "$a" "$n")" "$a vs $n"
        row "pass-through, $mode" "CPU µs/req apigate / HAProxy (lower is better)" "$(ratio "$a" "$h")" "$a vs $h"
    done
fi
if [ -s "$W/cache.out" ]; then
    # A Markdown table: | server ... | req/s (median of N) | p99 ms | ... | req/s: apigate / this | ...
    # Columns are found by their header, so added columns do not shift the ratios.
    awk -F'|' '
        { for (i = 2; i < NF; i++) { v[i] = $i; gsub(/^ +| +$/, "", v[i]) } }
        !hdr && /^\| *server/ { for (i = 2; i < NF; i++) { if (v[i] ~ /^req\/s \(median/) rc = i; if (v[i] ~ /apigate \/ this/) qc = i; if (v[i] ~ /^CPU /) cc = i } hdr = 1; next }
        hdr && rc && /^\|/ && v[rc] ~ /^[0-9.]+$/ { print v[2] "|" v[rc] "|" (qc ? v[qc] : "-") "|" (cc ? v[cc] : "") }
    ' "$W/cache.out" >"$W/cache.rows"
    ag=$(awk -F'|' '$1 == "apigate" { print $2; exit }' "$W/cache.rows")
    agc=$(awk -F'|' '$1 == "apigate" { print $4; exit }' "$W/cache.rows")
    while IFS='|' read -r name rps r cpu; do
        [ "$name" = apigate ] && continue
        row "cache hits, 1 core" "req/s apigate / $name" "$r" "$ag vs $rps"
        [ -n "$cpu" ] && row "cache hits, 1 core" "CPU µs/req apigate / $name (lower is better)" "$(ratio "$agc" "$cpu")" "$agc vs $cpu"
    done <"$W/cache.rows"
fi
if [ -s "$W/load.out" ]; then
    for th in 1 2; do
        w=$(awk -v t="$th" '$1 == t && $2 == "wrk" { print $3, $4; exit }' "$W/load.out")
        a=$(awk -v t="$th" '$1 == t && $2 == "apigate" { print $3, $4; exit }' "$W/load.out")
        [ -n "$w" ] && [ -n "$a" ] || continue
        row "load generator, $th thread(s)" "req/s apigate load / wrk" "$(ratio "${a%% *}" "${w%% *}")" "${a%% *} vs ${w%% *}"
        row "load generator, $th thread(s)" "CPU µs/req apigate load / wrk (lower is better)" "$(ratio "${a##* }" "${w##* }")" "${a##* } vs ${w##* }"
    done
fi
if [ -s "$W/mock.out" ]; then
    n=$(awk '/^nginx return 200/ { print $(NF-2); exit }' "$W/mock.out")
    m=$(awk '/^apigate mock/ { print $(NF-2); exit }' "$W/mock.out")
    row "mock server" "req/s apigate mock / nginx return 200" "$(ratio "$m" "$n")" "$m vs $n"
fi
if [ -s "$W/seed.out" ]; then
    kv() { grep '^seed:' "$W/seed.out" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
    row "seed story (200 users)" "p95 through apigate / direct (lower is better)" "$(kv ratio_p95)" "$(printf '%.1f ms vs %.1f ms' "$(kv p95_after)" "$(kv p95_before)")"
    row "seed story (200 users)" "req/s through apigate / direct" "$(kv ratio_rps)" "$(printf '%.0f vs %.0f' "$(kv rps_after)" "$(kv rps_before)")"
    row "seed story (200 users)" "cache hit ratio through apigate" "$(kv hit)" ""
    row "seed story (200 users)" "p95 of the reads through apigate (worst GET endpoint), ms" "$(kv p95_reads_after)" "target ≤ 10"
    row "seed story (200 users)" "p95 of the login POST through apigate (never cached), ms" "$(kv p95_login_after)" ""
fi
if [ -s "$W/memory.out" ]; then
    mem() { awk -v k="$1" -v n="$2" '$1 == "mem:" && $2 == k && $3 == n { print $4; exit }' "$W/memory.out"; }
    a=$(mem idle_conn_bytes apigate)
    for anchor in nginx haproxy varnish; do
        n=$(mem idle_conn_bytes "$anchor")
        [ -n "$n" ] && row "memory" "bytes per idle keep-alive connection, apigate / $anchor (lower is better)" "$(ratio "$a" "$n")" "$a B vs $n B"
    done
    a=$(mem peak_rss_kb apigate)
    for anchor in nginx haproxy varnish; do
        n=$(mem peak_rss_kb "$anchor")
        [ -n "$n" ] && row "memory" "peak RSS under load, apigate / $anchor (lower is better)" "$(ratio "$a" "$n")" "$a kB vs $n kB"
    done
    a=$(mem peak_rss_kb apigate_load) n=$(mem peak_rss_kb wrk)
    row "memory" "peak RSS, apigate load / wrk (lower is better)" "$(ratio "$a" "$n")" "$a kB vs $n kB"
fi

# ---- the report ----
{
    echo "## One-command run: bench/run.sh"
    echo
    echo "Run $started on $machine; $build_type, commit $commit; anchors: $versions."
    echo "Load average at the start $load_start, at the end $load_end."
    echo
    echo "Other work on the machine shows in the load average above (the benchmarks alone keep it"
    echo "near 1–2 on 2 CPUs); ratios are from this one run, where every contender met the same"
    echo "conditions in alternation. Read them as a snapshot, not a verdict."
    echo
    echo "Command: \`$(printf 'RUNS=%s DURATION=%s SEED_DURATION=%s bench/run.sh' "$RUNS" "$DURATION" "$SEED_DURATION")\` (\`make bench\` runs it with the defaults)."
    echo
    echo "### Ratios (apigate / anchor; throughput and latency rows are medians of $RUNS runs, memory rows one measurement)"
    echo
    echo "| section | ratio | value | medians |"
    echo "|---|---|---:|---|"
    cat "$W/ratios"
    for name in passthrough cache load mock seed memory; do
        [ -n "${CMDS[$name]:-}" ] || continue
        echo
        echo "<!-- bench:$name -->"
        case $name in
        passthrough) echo "### Pass-through with pooled keep-alive upstream" ;;
        cache) echo "### Cache hits" ;;
        load) echo "### Load generator: apigate load vs wrk" ;;
        mock) echo "### Mock server vs nginx return 200" ;;
        seed) echo "### The seed story: direct vs through apigate" ;;
        memory) echo "### Memory" ;;
        esac
        echo
        echo "\`${CMDS[$name]#"$AG_SRC/"}\` (exit ${STATUS[$name]})"
        echo
        if [ "${STATUS[$name]}" != 0 ]; then
            echo "**This section failed** (exit ${STATUS[$name]}); the last lines of its stderr:"
            echo
            echo '```'
            tail -n 15 "$W/$name.err"
            echo '```'
            echo
        fi
        if grep -q '^|' "$W/$name.out"; then
            grep -v '^mem:\|^seed:' "$W/$name.out"
        else
            echo '```'
            cat "$W/$name.out"
            echo '```'
        fi
    done
} >"$W/section.md"
sed -i "s#$AG_SRC/##g" "$W/section.md"

echo
cat "$W/section.md"

if [ "$WRITE_DOC" = 1 ]; then
    python3 - "$DOC" "$W/section.md" <<'PY'
import sys
doc, sec = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- bench:run:begin -->", "<!-- bench:run:end -->"
try:
    text = open(doc).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
block = f"{begin}\n<!-- written by bench/run.sh: edits inside these markers are replaced on the next run -->\n{sec.rstrip()}\n{end}\n"
if begin in text and end in text:
    a, b = text.index(begin), text.index(end) + len(end)
    text = text[:a] + block.rstrip("\n") + text[b:]
else:
    text = text.rstrip("\n") + "\n\n" + block
open(doc, "w").write(text)
PY
    echo "bench: wrote the run into $DOC" >&2
fi
