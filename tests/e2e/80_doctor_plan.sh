#!/usr/bin/env bash
# apigate doctor plan: the seed's capacity arithmetic from flags and from YAML, verdicts and exit
# codes, and file:line:col errors for a bad YAML file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq

SEED=(--pods 20 --pool-size 20 --max-overflow 10 --db-max-connections 200 --conns-per-pod 300
      --nat-ips 1 --ports-per-ip 55000 --cpu-limit 2)

"$APIGATE" doctor plan --help | grep -q -- "--db-max-connections" || fail "plan --help"
"$APIGATE" doctor --help | grep -q -- "--pgbouncer" || fail "doctor --help"

set +e
out=$("$APIGATE" doctor plan "${SEED[@]}" --json)
code=$?
set -e
assert_eq "$code" 1 "600 > 200 connections is critical"
jq -e . >/dev/null <<<"$out" || fail "not JSON: $out"
db=$(jq -c '.findings[] | select(.id == "capacity-db-connections")' <<<"$out")
assert_eq "$(jq -r .severity <<<"$db")" critical "db verdict"
assert_contains "$(jq -r .evidence <<<"$db")" "20 pods x (pool_size 20 + max_overflow 10) = 600" "arithmetic shown"
assert_contains "$(jq -r .fix <<<"$db")" "pool_mode = transaction, default_pool_size = 157" "PgBouncer advice"
assert_eq "$(jq -r '.findings[] | select(.id == "capacity-ports") | .severity' <<<"$out")" ok "6000 of 55000 ports"

# The seed's 200 pods x 300 connections = 60000 > 55000 ports.
set +e
out=$("$APIGATE" doctor plan "${SEED[@]}" --pods 200 --json)
set -e
p=$(jq -c '.findings[] | select(.id == "capacity-ports")' <<<"$out")
assert_eq "$(jq -r .severity <<<"$p")" critical "ports verdict"
assert_contains "$(jq -r .evidence <<<"$p")" "200 pods x 300 connections = 60000" "ports arithmetic"
assert_contains "$(jq -r .fix <<<"$p")" "more NAT IPs: 2" "NAT IPs needed"

# Healthy plan: exit 0 even with --fail-on warning.
"$APIGATE" doctor plan --pods 4 --pool-size 10 --max-overflow 5 --db-max-connections 200 \
    --conns-per-pod 100 --ports-per-ip 28000 --cpu-limit 2 --workers-per-pod 4 --fail-on warning >"$T/ok.txt" ||
    fail "healthy plan failed: $(cat "$T/ok.txt")"
assert_contains "$(cat "$T/ok.txt")" "0 critical, 0 warning" "summary line"

# YAML input gives the same numbers; flags override the file.
set +e
out=$("$APIGATE" doctor plan -f "$AG_SRC/examples/doctor-plan.yaml" --json)
code=$?
set -e
assert_eq "$code" 1 "YAML seed exit code"
assert_contains "$(jq -r '.findings[] | select(.id == "capacity-db-connections") | .evidence' <<<"$out")" "200 pods x (pool_size 20 + max_overflow 10) = 6000" "YAML arithmetic"
# The example is the seed's SNAT incident: 200 pods x 300 connections through one NAT IP.
p=$(jq -c '.findings[] | select(.id == "capacity-ports")' <<<"$out")
assert_eq "$(jq -r .severity <<<"$p")" critical "example: ports verdict"
assert_contains "$(jq -r .evidence <<<"$p")" "200 pods x 300 connections = 60000; 1 NAT IP(s) x 55000 ports = 55000" "example: ports arithmetic"
assert_eq "$(jq -r '.findings[] | select(.id == "capacity-workers") | .severity' <<<"$out")" warning "1 worker on 2 CPUs"
out=$("$APIGATE" doctor plan -f "$AG_SRC/examples/doctor-plan.yaml" --pods 4 --pool-size 5 --max-overflow 0 --json) ||
    true
assert_contains "$(jq -r '.findings[] | select(.id == "capacity-db-connections") | .evidence' <<<"$out")" "4 pods x (pool_size 5 + max_overflow 0) = 20" "flags override YAML"

# The fixed deployment (PgBouncers in front, connection reuse, enough workers): nothing to warn.
out=$("$APIGATE" doctor plan -f "$AG_SRC/examples/doctor-plan-pgbouncer.yaml" --json --fail-on warning) ||
    fail "the fixed plan still warns: $out"
assert_contains "$(jq -r '.findings[] | select(.id == "capacity-db-connections") | .evidence' <<<"$out")" \
    "2 PgBouncer(s) x default_pool_size 40 = 80 server connections" "through PgBouncer"
assert_eq "$(jq -r '.findings[] | select(.id == "capacity-pgbouncer-clients") | .severity' <<<"$out")" ok "client slots"
# ... but PgBouncer's default max_client_conn (100) would refuse most of the 6000 connections.
set +e
out=$("$APIGATE" doctor plan -f "$AG_SRC/examples/doctor-plan-pgbouncer.yaml" --pgbouncer-max-client 100 --json)
code=$?
set -e
assert_eq "$code" 1 "6000 connections into 200 client slots"
assert_contains "$(jq -r '.findings[] | select(.id == "capacity-pgbouncer-clients") | .fix' <<<"$out")" \
    "max_client_conn = 3750 per PgBouncer instance" "client slots fix"

# Bad input: exit 2 with file:line:col.
printf 'pods: 20\npool_size: twenty\nnat_ipz: 2\n' >"$T/bad.yaml"
set +e
"$APIGATE" doctor plan -f "$T/bad.yaml" 2>"$T/err.txt"
code=$?
set -e
assert_eq "$code" 2 "bad YAML exit code"
assert_contains "$(cat "$T/err.txt")" "$T/bad.yaml:2:12: pool_size: 'twenty': expected a whole number" "value error position"
assert_contains "$(cat "$T/err.txt")" "$T/bad.yaml:3:1: nat_ipz: unknown key" "unknown key position"
set +e
"$APIGATE" doctor plan --pods x 2>/dev/null
c1=$?
"$APIGATE" doctor plan --pool-size 3 2>/dev/null
c2=$?
"$APIGATE" doctor --bogus 2>/dev/null
c3=$?
"$APIGATE" doctor 2>/dev/null
c4=$?
"$APIGATE" doctor --target ftp://x --json 2>/dev/null
c5=$?
# a malformed Redis URL is bad usage like any other (it was a "critical" finding, exit 1), and
# the message does not echo the URL, which may hold a password
out=$("$APIGATE" doctor --redis 'redis://:hunter2@h:abc' 2>&1)
c6=$?
set -e
assert_eq "$c1$c2$c3$c4$c5$c6" 222222 "bad usage exits 2"
assert_contains "$out" "expected redis://" "--redis message"
[[ "$out" != *hunter2* ]] || fail "--redis message shows the password: $out"
# NaN parses as a number but is none: it used to pass the range check ("3 workers on nan CPUs").
for v in nan -nan inf 1e7 -0.5; do
    set +e
    err=$("$APIGATE" doctor plan --pods 2 --workers-per-pod 3 --cpu-limit "$v" 2>&1)
    code=$?
    set -e
    assert_eq "$code" 2 "--cpu-limit $v"
    assert_contains "$err" "--cpu-limit '$v': expected a number from 0 to 1000000" "--cpu-limit $v message"
done
printf 'pods: 2\nworkers_per_pod: 3\ncpu_limit: nan\n' >"$T/nan.yaml"
set +e
err=$("$APIGATE" doctor plan -f "$T/nan.yaml" 2>&1)
code=$?
set -e
assert_eq "$code" 2 "cpu_limit: nan in YAML"
assert_contains "$err" "$T/nan.yaml:3:12: cpu_limit: 'nan'" "cpu_limit: nan position"
set +e
err=$("$APIGATE" doctor plan --pods 200000000 2>&1)
set -e
assert_contains "$err" "--pods '200000000': expected a whole number from 0 to 100000000" "the bound is said"
# Every finding id the code can emit has its section in docs/doctor.md (the "doc" link target).
ids=$(grep -ohE '"(pg|pgb|redis|gw|host|target|capacity|probe)-[a-z0-9-]+"' "$AG_SRC"/src/doctor/*.c | tr -d '"' | sort -u)
[ "$(wc -l <<<"$ids")" -ge 40 ] || fail "finding ids not found in src/doctor"
for id in $ids; do
    grep -qx "### $id" "$AG_SRC/docs/doctor.md" || fail "docs/doctor.md has no section for $id"
done
log "ok"
