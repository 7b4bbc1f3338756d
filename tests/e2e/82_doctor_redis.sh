#!/usr/bin/env bash
# apigate doctor against a real redis-server: a warm cache has no warnings; a cache whose reads
# miss is critical (hit ratio under 10%); a tiny maxmemory with writes evicts keys (warning with a
# computed maxmemory); a slow command shows in the slowlog; a dead Redis is a finding, not a crash;
# so is a peer that answers INFO with an endless bulk string or a two-billion-element array (the
# probe read the bulk into memory, 2 GB in 2 s, instead of giving up). apigate's own L2 (two keys
# read per lookup) is judged per lookup, not by the keyspace ratio.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq redis-server redis-cli

PORT=$(free_port)
start_bg redis redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --enable-debug-command local --dir "$T"
wait_port "$PORT" 10
rc_() { redis-cli -p "$PORT" "$@"; }
URL="redis://127.0.0.1:$PORT"
doctor() { "$APIGATE" doctor --redis "$URL" --json "$@"; }
sev() { jq -r --arg id "$1" '[.findings[] | select(.id == $id)][0].severity' <<<"$out"; }

# --- 1. warm cache: 20 keys read 10 times each ---------------------------------------------------
log "warm cache"
# This section is about a warm cache, not slow commands (section 4): on a loaded machine a plain
# SET or INFO can be descheduled past the 10 ms slowlog threshold, so nothing is logged here
# (threshold 10 s, log emptied), and the default 10 ms is restored after the section.
rc_ CONFIG SET slowlog-log-slower-than 10000000 >/dev/null
rc_ SLOWLOG RESET >/dev/null
for i in $(seq 1 20); do echo "SET user:$i v$i"; done | rc_ >/dev/null
for r in $(seq 1 10); do for i in $(seq 1 20); do echo "GET user:$i"; done; done | rc_ >/dev/null
assert_eq "$(rc_ SLOWLOG LEN)" 0 "slowlog empty before judging the warm cache"
# No warnings at all. The one finding that measures this machine rather than Redis is the PING
# round trip (median of 5, warning at 10 ms): a loaded 2-core machine can push one median past
# 10 ms, so a run whose only warning is redis-latency is measured again (up to 5 runs); any other
# warning fails at once, and the last run must be clean.
for try in 1 2 3 4 5; do
    out=$(doctor --fail-on warning) && break
    others=$(jq -c '[.findings[] | select(.severity != "ok" and .severity != "info" and .id != "redis-latency")]' <<<"$out") || fail "doctor output is not JSON: $out"
    [ "$others" = "[]" ] || fail "warnings on a warm cache: $out"
    [ "$try" -lt 5 ] || fail "PING round trip over 10 ms in 5 runs: $out"
    log "run $try: $(jq -r '[.findings[] | select(.id == "redis-latency")][0].title' <<<"$out") (loaded machine), measuring again"
    sleep 0.5
done
assert_eq "$(sev redis-hit-ratio)" ok "hit ratio 100%"
assert_contains "$(jq -r '[.findings[] | select(.id == "redis-hit-ratio")][0].title' <<<"$out")" "100.0%" "ratio shown"
assert_eq "$(sev redis-latency)" ok "PING latency"
assert_eq "$(sev redis-clients)" ok "clients"
rc_ CONFIG SET slowlog-log-slower-than 10000 >/dev/null # Redis's default, for the sections below

# --- 2. reads that miss: hit ratio under 10% is critical --------------------------------------
log "cold reads"
rc_ CONFIG RESETSTAT >/dev/null
for i in $(seq 1 5); do echo "GET user:$i"; done | rc_ >/dev/null
for i in $(seq 1 200); do echo "GET session:$RANDOM:$i"; done | rc_ >/dev/null
set +e
out=$(doctor)
code=$?
set -e
assert_eq "$code" 1 "critical finding gives exit 1"
assert_eq "$(sev redis-hit-ratio)" critical "hit ratio 5 of 205"
assert_contains "$(jq -r '[.findings[] | select(.id == "redis-hit-ratio")][0].evidence' <<<"$out")" "keyspace_hits 5, keyspace_misses 200" "evidence"
# 70% hits: warning only
rc_ CONFIG RESETSTAT >/dev/null
{ for i in $(seq 1 70); do echo "GET user:$((i % 20 + 1))"; done; for i in $(seq 1 30); do echo "GET nope:$i"; done; } | rc_ >/dev/null
out=$(doctor) || fail "a warning must not fail the default --fail-on critical"
assert_eq "$(sev redis-hit-ratio)" warning "70% hit ratio"

# --- 2b. apigate's own L2: each lookup is one MGET of the entry and its inv: mark ---------------
# 200 L2 hits and 200 L2 misses are 200 keyspace hits and 600 misses (25%): a 50% L2, not the
# warning an application cache at 25% gets.
log "apigate L2 lookups"
rc_ CONFIG RESETSTAT >/dev/null
for i in $(seq 1 200); do echo "SET \"apigate:GET host/api/items/$i\" entry$i"; done | rc_ >/dev/null
{ for i in $(seq 1 200); do echo "MGET \"apigate:GET host/api/items/$i\" apigate:inv:/api/items/$i"; done
  for i in $(seq 1 200); do echo "MGET \"apigate:GET host/api/new/$i\" apigate:inv:/api/new/$i"; done; } | rc_ >/dev/null
ks=$(rc_ INFO stats | tr -d '\r' | awk -F: '$1 == "keyspace_hits" || $1 == "keyspace_misses" { printf "%s ", $2 }')
assert_eq "$ks" "200 600 " "keyspace counters of 200 L2 hits and 200 L2 misses"
# judged on its own finding: on a loaded machine a PING or a slowlog entry may pass 10 ms
out=$(doctor) || fail "critical findings: $(jq -c '[.findings[] | select(.severity != "ok")]' <<<"$out")"
assert_eq "$(sev redis-hit-ratio)" info "apigate's L2 at 50%: info, not the warning of a 25% cache"
f=$(jq -c '[.findings[] | select(.id == "redis-hit-ratio")][0]' <<<"$out")
assert_eq "$(jq -r .title <<<"$f")" "apigate L2 hit ratio 50.0% (400 lookups)" "L2 lookups counted once"
assert_contains "$(jq -r .evidence <<<"$f")" "keyspace_hits 200, keyspace_misses 600 (25.0%)" "keyspace numbers kept as evidence"
if jq -r .fix <<<"$f" | grep -q "let the gateway cache"; then fail "advised the gateway cache to the gateway's own L2"; fi
rc_ FLUSHALL >/dev/null

# --- 3. tiny maxmemory: evictions ---------------------------------------------------------------
log "evictions under maxmemory 2mb"
rc_ CONFIG RESETSTAT >/dev/null
rc_ CONFIG SET maxmemory 2mb >/dev/null
rc_ CONFIG SET maxmemory-policy allkeys-lru >/dev/null
val=$(head -c 2048 /dev/zero | tr '\0' x)
for i in $(seq 1 3000); do echo "SET blob:$i $val"; done | rc_ >/dev/null
evicted=$(rc_ INFO stats | tr -d '\r' | awk -F: '$1 == "evicted_keys" { print $2 }')
[ "$evicted" -gt 0 ] || fail "redis did not evict (evicted_keys=$evicted)"
out=$(doctor) || true
assert_eq "$(sev redis-evictions)" warning "evictions"
f=$(jq -r '[.findings[] | select(.id == "redis-evictions")][0] | .title + "\n" + .evidence + "\n" + .fix' <<<"$out")
assert_contains "$f" " keys evicted under maxmemory 2.0 MB (allkeys-lru)" "evicted count and policy"
# Redis may go on evicting after the writes (time-boxed eviction): at least what we saw.
n=$(jq -r '[.findings[] | select(.id == "redis-evictions")][0].title | split(" ")[0]' <<<"$out")
assert_range "$n" "$evicted" 1000000 "evicted_keys reported"
assert_contains "$f" "maxmemory " "fix names maxmemory"
assert_eq "$(sev redis-memory)" warning "memory near maxmemory"

# --- 4. a slow command in the slowlog -----------------------------------------------------------
log "slowlog"
rc_ DEBUG SLEEP 0.03 >/dev/null
out=$(doctor) || true
assert_eq "$(sev redis-slowlog)" warning "30 ms command"
assert_contains "$(jq -r '[.findings[] | select(.id == "redis-slowlog")][0].evidence' <<<"$out")" "DEBUG SLEEP 0.03" "command shown"

# --- 5. dead Redis ------------------------------------------------------------------------------
log "unreachable"
stop_bg redis || true
set +e
out=$(doctor)
code=$?
set -e
assert_eq "$code" 1 "unreachable is critical"
jq -e . >/dev/null <<<"$out" || fail "not JSON: $out"
assert_contains "$(jq -r '.findings[0].title' <<<"$out")" "cannot reach Redis at 127.0.0.1:$PORT: Connection refused" "reason"

# --- 6. a hostile peer: bounded replies ---------------------------------------------------------
for pm in "bulk:a reply over 16 MiB" "array:a reply with too many elements"; do
    mode=${pm%%:*} want=${pm#*:}
    hport=$(free_port)
    start_tcp_server "peer-$mode" "$hport" "$mode" <<'PY'
import sys
mode = sys.argv[2]
def serve(c):
    try:
        c.recv(65536)
        if mode == "bulk":  # a gigabyte announced, sent without end
            c.sendall(b"$1000000000\r\n")
            while True:
                c.sendall(b"x" * 65536)
        else:
            c.sendall(b"*2000000000\r\n")
            c.recv(1)
    except OSError:
        pass
    finally:
        c.close()
PY
    log "a peer answering with a $mode"
    t0=$(date +%s%N)
    set +e
    out=$("$APIGATE" doctor --redis "redis://127.0.0.1:$hport" --timeout 2s --json)
    set -e
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -lt 5000 ] || fail "$mode: doctor took $ms ms"
    assert_contains "$(jq -r '.findings[0].title' <<<"$out")" "$want" "$mode: reason"
done
log "ok"
