#!/usr/bin/env bash
# apigate doctor against a real PostgreSQL 15, the problems of issue 16 planted one by one, each
# also checked absent:
# - per-role and per-database CONNECTION LIMITs (a role with CONNECTION LIMIT 3 fully used refuses
#   psql with "too many connections for role"), and superuser_reserved_connections in the
#   percentage (17 of 20 with 3 reserved is full);
# - with PgBouncer in front (its probe ran too) the advice is about its pools, never "put
#   PgBouncer in front";
# - slow statements ranked by total time with mean and calls, one-offs (a setup INSERT, a manual
#   pg_sleep) not judged, EXPLAIN of the top statements (never ANALYZE unless --explain-analyze:
#   pg_stat_user_tables proves the statement did not run);
# - the missing index read from the plan: users LEFT JOIN orders ON o.user_id = u.id WHERE u.id =
#   $1 with orders.user_id unindexed gives orders (user_id), never (id); gone once the index
#   exists, with the lifetime counters untouched;
# - connection churn to the PostgreSQL port (a connection per request, closed by the client: its
#   TIME_WAITs) flagged by --host, a handful of connections not.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq psql pgbouncer setpriv python3
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/postgres" ] || skip "PostgreSQL 15 binaries not found in $PGBIN"
chmod 755 "$T"

ports=($(free_ports 2))
PGPORT=${ports[0]} PGBPORT=${ports[1]}
PGDATA=$T/pgdata
mkdir -p "$PGDATA" "$T/sock"
chown postgres: "$PGDATA" "$T/sock"
setpriv --reuid=postgres --regid=postgres --clear-groups -- "$PGBIN/initdb" -D "$PGDATA" -U postgres \
    --auth=trust -E UTF8 --no-sync >"$T/initdb.log" 2>&1 || { cat "$T/initdb.log" >&2; fail "initdb failed"; }
cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$T/sock'
max_connections = 20
superuser_reserved_connections = 3
shared_preload_libraries = 'pg_stat_statements'
fsync = off
synchronous_commit = off
full_page_writes = off
CONF

PG_PID=
HOLD_PIDS=()
release_holders() {
    local p
    for p in "${HOLD_PIDS[@]:-}"; do
        [ -n "$p" ] && { kill -KILL "$p" && wait "$p"; } 2>/dev/null || true
    done
    HOLD_PIDS=()
}
stop_all() {
    local rc=$?
    set +e
    release_holders
    if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
        kill -INT "$PG_PID"
        local deadline=$((SECONDS + 10))
        while kill -0 "$PG_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    fi
    (exit $rc)
    cleanup
}
trap stop_all EXIT

start_bg postgres setpriv --reuid=postgres --regid=postgres --clear-groups -- "$PGBIN/postgres" -D "$PGDATA"
PG_PID=$LAST_PID
wait_port "$PGPORT" 30

PGURL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
APPURL="postgres://app@127.0.0.1:$PGPORT/postgres"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$PGURL" "$@"; }
wait_sql() {
    local deadline=$((SECONDS + 20))
    until [ "$(psql -X -q -At "$PGURL" -c "$1" 2>/dev/null)" = t ]; do
        [ $SECONDS -lt $deadline ] || fail "timed out waiting for $2"
        sleep 0.1
    done
}
# hold N URL: N sessions kept open (idle, reading a fifo nobody writes) until release_holders
mkfifo "$T/hold.fifo"
exec 7<>"$T/hold.fifo"
hold() {
    local i
    for i in $(seq 1 "$1"); do
        psql -X -q "$2" <"$T/hold.fifo" >/dev/null 2>&1 &
        HOLD_PIDS+=($!)
    done
}
doctor() { "$APIGATE" doctor --postgres "$PGURL" --json "$@" || true; }
sev() { jq -r --arg id "$1" '[.findings[] | select(.id == $id)][0].severity' <<<"$out"; }
field() { jq -r --arg id "$1" --arg f "$2" '[.findings[] | select(.id == $id)][0][$f]' <<<"$out"; }

sql -c "CREATE EXTENSION pg_stat_statements" \
    -c "CREATE ROLE app LOGIN CONNECTION LIMIT 3" \
    -c "CREATE DATABASE shop CONNECTION LIMIT 2" \
    -c "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL)" \
    -c "CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL, total numeric NOT NULL)" \
    -c "CREATE TABLE audit (id serial PRIMARY KEY, what text)" \
    -c "GRANT SELECT ON users, orders TO app" \
    -c "INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 2000) g" \
    -c "INSERT INTO audit (what) SELECT 'a' FROM generate_series(1, 500) g" \
    -c "SELECT pg_stat_statements_reset()" >/dev/null
# One-offs: a setup INSERT and a manual pg_sleep, each slow and run once.
sql -c "INSERT INTO orders (user_id, total) SELECT g % 2000 + 1, g FROM generate_series(1, 60000) g" \
    -c "ANALYZE" -c "SELECT pg_sleep(1.2), 'by hand'" >/dev/null
# The application's frequent statements: the join of the issue, and a count without parameters.
for i in $(seq 1 30); do
    echo "SELECT u.name, o.total FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id = $i;"
done | sql >/dev/null
for i in $(seq 1 10); do echo "SELECT count(*) FROM audit;"; done | sql >/dev/null
sleep 1.2 # statistics reach other sessions within a second

# --- 0. the host probe: a few connections to the PostgreSQL port are no churn ----------------
churn() { # the host-db-connection-churn finding for our PostgreSQL port
    jq -c --arg a "127.0.0.1:$PGPORT" '[.findings[] | select(.id == "host-db-connection-churn" and (.title | contains($a)))][0]' <<<"$out"
}
out=$("$APIGATE" doctor --host --postgres "$PGURL" --json || true)
c=$(churn)
[ "$c" = null ] || assert_eq "$(jq -r .severity <<<"$c")" ok "a handful of connections to PostgreSQL: $c"

# --- 1. quiet: limits not reached, no slow statement judged on one-offs ------------------------
log "quiet: one app session, one-offs, fast frequent statements"
hold 1 "$APPURL"
wait_sql "SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = 'app'" "one app session"
out=$(doctor)
assert_eq "$(sev pg-connections)" ok "2 of 17 usable"
assert_eq "$(jq -r '[.findings[] | select(.id == "pg-role-connections" or .id == "pg-database-connections") | select(.severity != "ok")] | length' <<<"$out")" 0 "no limit reported"
assert_contains "$(field pg-role-connections title)" 'role "app": 1 of CONNECTION LIMIT 3 in use' "role limit read"
assert_eq "$(sev pg-slow-statements)" info "one-offs are not judged"
ev=$(field pg-slow-statements evidence)
assert_contains "$ev" "[one-off, not judged] SELECT pg_sleep(\$1), \$2" "the manual pg_sleep is listed as a one-off"
assert_contains "$ev" "[one-off, not judged] INSERT INTO orders" "the setup INSERT is listed as a one-off"
# ranked by total time: the 1.2 s pg_sleep before the join (30 calls of a few ms)
[ "$(grep -n 'pg_sleep' <<<"$ev" | cut -d: -f1)" -lt "$(grep -n 'LEFT JOIN' <<<"$ev" | head -1 | cut -d: -f1)" ] ||
    fail "not ranked by total time: $ev"
assert_contains "$ev" "EXPLAIN: Seq Scan on public.orders o" "the join's plan shows its seq scan"
assert_contains "$ev" "EXPLAIN: Seq Scan on public.audit (estimated 500 rows)" "the count's plan, estimates only"
if grep -q "actual" <<<"$ev"; then fail "ANALYZE ran without --explain-analyze: $ev"; fi

# --- 2. EXPLAIN runs nothing; --explain-analyze runs the statement without parameters once ----
log "EXPLAIN vs --explain-analyze"
scans() { sql -c "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'audit'"; }
before=$(scans)
out=$(doctor)
sleep 1.2
assert_eq "$(scans)" "$before" "EXPLAIN without ANALYZE did not run SELECT count(*) FROM audit"
out=$(doctor --explain-analyze)
sleep 1.2
assert_eq "$(scans)" "$((before + 1))" "--explain-analyze ran it once"
ev=$(field pg-slow-statements evidence)
assert_contains "$ev" "EXPLAIN ANALYZE: Seq Scan on public.audit (estimated 500 / actual 500 rows)" "estimated vs actual rows"
assert_contains "$ev" "(generic plan: its parameters are not known, so it was not run)" "the join keeps its generic plan"

# --- 3. the missing index from the plan: orders (user_id), never the primary key -------------
log "missing index on the join key"
f=$(jq -c '[.findings[] | select(.id == "pg-missing-index")]' <<<"$out")
assert_eq "$(jq length <<<"$f")" 1 "one missing-index finding: $f"
assert_eq "$(jq -r '.[0].fix' <<<"$f")" "CREATE INDEX CONCURRENTLY ON public.orders (user_id);" "index on the join key"
assert_contains "$(jq -r '.[0].evidence' <<<"$f")" "LEFT JOIN orders o ON o.user_id = u.id" "the statement whose plan it is"
if grep -q "(id)" <<<"$out"; then fail "an index on (id) was proposed: $out"; fi
sql -c "CREATE INDEX ON orders (user_id)" >/dev/null # no pg_stat_reset: lifetime counters stay
out=$(doctor)
assert_eq "$(jq '[.findings[] | select(.id == "pg-missing-index")] | length' <<<"$out")" 0 "the hint is gone once the index exists"
[ "$(sql -c "SELECT seq_scan >= 30 FROM pg_stat_user_tables WHERE relname = 'orders'")" = t ] ||
    fail "the lifetime counters were reset: the test proves nothing"

# --- 4. a frequent slow statement is judged, with mean and calls ------------------------------
log "frequent slow statement"
for i in $(seq 1 10); do echo "SELECT * FROM pg_sleep(0.12);"; done | sql >/dev/null
sleep 1.2
out=$(doctor)
assert_eq "$(sev pg-slow-statements)" warning "120 ms mean over 10 calls"
assert_contains "$(field pg-slow-statements title)" "on average over 10 calls" "mean and calls in the title"

# --- 5. a role at its CONNECTION LIMIT, a database at its limit, 17 of 20 with 3 reserved ------
log "role and database limits full, 17 of 20 connections"
hold 2 "$APPURL"
hold 2 "postgres://postgres@127.0.0.1:$PGPORT/shop"
wait_sql "SELECT count(*) = 3 FROM pg_stat_activity WHERE usename = 'app'" "three app sessions"
wait_sql "SELECT count(*) = 2 FROM pg_stat_activity WHERE datname = 'shop'" "two shop sessions"
err=$(psql -X -q -At "$APPURL" -c "SELECT 1" 2>&1 || true)
assert_contains "$err" 'too many connections for role "app"' "PostgreSQL refuses the role"
out=$(doctor)
assert_eq "$(sev pg-role-connections)" critical "role full"
assert_eq "$(field pg-role-connections title)" 'role "app": 3 of CONNECTION LIMIT 3 in use (full)' "role title"
assert_contains "$(field pg-role-connections evidence)" 'FATAL: too many connections for role "app"' "the error users see"
assert_eq "$(sev pg-database-connections)" critical "database full"
assert_contains "$(field pg-database-connections title)" 'database "shop": 2 of CONNECTION LIMIT 2 in use (full)' "database title"
assert_eq "$(sev pg-connections)" ok "5 of 17 usable"
hold 12 "$PGURL"
wait_sql "SELECT count(*) = 17 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" "17 sessions"
sql -c "ALTER ROLE app CONNECTION LIMIT -1" >/dev/null
err=$(psql -X -q -At "$APPURL" -c "SELECT 1" 2>&1 || true)
assert_contains "$err" "reserved for" "a non-superuser is refused at 17 of 20"
out=$(doctor)
assert_eq "$(sev pg-connections)" critical "17 of 20 with 3 reserved is full"
assert_contains "$(field pg-connections title)" "17 of 17 usable connections in use (100%" "usable count"
assert_contains "$(field pg-connections fix)" "put PgBouncer in front" "advice without PgBouncer"

# --- 6. the same with PgBouncer in front: its pools, not "put PgBouncer in front" -------------
log "PgBouncer in front"
mkdir -p "$T/pgb"
echo '"postgres" ""' >"$T/pgb/userlist.txt"
cat >"$T/pgb/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres pool_size=2
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBPORT
unix_socket_dir =
auth_type = trust
auth_file = $T/pgb/userlist.txt
admin_users = postgres
pool_mode = transaction
INI
chown -R postgres: "$T/pgb"
release_holders # PgBouncer needs a slot of its own
wait_sql "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" "sessions gone"
start_bg pgbouncer setpriv --reuid=postgres --regid=postgres --clear-groups -- pgbouncer "$T/pgb/pgbouncer.ini"
wait_port "$PGBPORT" 10
psql -X -q -At "postgres://postgres@127.0.0.1:$PGBPORT/app" -c "SELECT 1" >/dev/null || fail "query through PgBouncer"
hold 15 "$PGURL"
wait_sql "SELECT count(*) >= 16 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" "16 sessions"
out=$("$APIGATE" doctor --postgres "$PGURL" --pgbouncer "postgres://postgres@127.0.0.1:$PGBPORT/pgbouncer" --json || true)
case "$(sev pg-connections)" in warning | critical) ;; *) fail "pg-connections $(sev pg-connections)" ;; esac
fx=$(field pg-connections fix)
assert_contains "$fx" "PgBouncer is already in front" "advice about its pools"
if grep -q "put PgBouncer in front" <<<"$fx"; then fail "advised PgBouncer although it is in front: $fx"; fi
release_holders

# --- 7. a connection per request to PostgreSQL: TIME_WAITs to its port flagged by --host -----
log "connection churn to the PostgreSQL port"
for i in $(seq 1 150); do psql -X -q -At "$PGURL" -c "SELECT $i" >/dev/null; done
out=$("$APIGATE" doctor --host --postgres "$PGURL" --json || true)
c=$(churn)
assert_ne "$c" null "a churn finding for 127.0.0.1:$PGPORT: $(jq -c '[.findings[] | select(.component == "host")]' <<<"$out")"
assert_eq "$(jq -r .severity <<<"$c")" warning "150 connections opened and closed"
assert_contains "$(jq -r .title <<<"$c")" "TIME_WAIT sockets to PostgreSQL at 127.0.0.1:$PGPORT: a new connection per request" "title"
assert_contains "$(jq -r .fix <<<"$c")" "pool" "advice: a pool"
log "ok"
