#!/usr/bin/env bash
# apigate doctor against a real PostgreSQL 15 (and PgBouncer in front of it), each finding caused
# for real: a quiet server has no warnings; a table read by sequential scans gets an index hint
# with the column from the statement's EXPLAIN plan; 14 of the 17 usable connections (20, 3 reserved)
# held open (12 idle, one idle in transaction holding a row lock, one blocked on it) give the connection, idle-pool,
# idle-in-transaction and blocked-query findings; a PgBouncer pool of size 1 with a long query in
# it makes clients wait (pool starvation). PostgreSQL starts once; everything stops on exit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq psql pgbouncer setpriv
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/postgres" ] || fail "PostgreSQL 15 binaries not found in $PGBIN"
chmod 755 "$T" # the postgres user must reach its data dir

as_pg() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }

PGPORT=$(free_port)
PGBPORT=$(free_port)
PGDATA=$T/pgdata
mkdir -p "$PGDATA" "$T/sock"
chown postgres: "$PGDATA" "$T/sock"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-sync >"$T/initdb.log" 2>&1 ||
    { cat "$T/initdb.log" >&2; fail "initdb failed"; }
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

# Fast shutdown (SIGINT) before lib.sh's cleanup, which would send SIGTERM (a "smart" shutdown that
# waits for clients) and then SIGKILL (which leaves backends behind).
PG_PID=
REP_PID=
HOLD_PIDS=() # psql sessions held open by the test
release_holders() {
    local p
    for p in "${HOLD_PIDS[@]:-}"; do
        [ -n "$p" ] && { kill -KILL "$p" && wait "$p"; } 2>/dev/null || true
    done
    HOLD_PIDS=()
}
stop_pg() { # fast shutdown of one postmaster, waited for
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill -INT "$1" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
}
stop_all() {
    local rc=$?
    set +e # "(exit $rc)" below must not end the trap before cleanup runs
    release_holders
    stop_pg "$REP_PID"
    stop_pg "$PG_PID"
    (exit $rc)
    cleanup
}
trap stop_all EXIT

start_bg postgres setpriv --reuid=postgres --regid=postgres --clear-groups -- "$PGBIN/postgres" -D "$PGDATA"
PG_PID=$LAST_PID
wait_port "$PGPORT" 30

PGURL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$PGURL" "$@"; }
# Stats become visible to other sessions after the backend reports them (at most ~1 s idle).
settle() { sleep 1.2; }
wait_sql() { # wait_sql QUERY WHAT [URL]: until QUERY prints t
    local deadline=$((SECONDS + 20))
    until [ "$(psql -X -q -At "${3:-$PGURL}" -c "$1" 2>/dev/null)" = t ]; do
        [ $SECONDS -lt $deadline ] || fail "timed out waiting for $2"
        sleep 0.1
    done
}

sql -c "CREATE EXTENSION pg_stat_statements" \
    -c "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, note text)" \
    -c "INSERT INTO orders (customer_id, status, note) SELECT g % 5000, 'new', repeat('x', 40) FROM generate_series(1, 60000) g" \
    -c "ANALYZE orders" -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset()" >/dev/null
settle

# --- 1. a quiet server: no warning, exit 0 even with --fail-on warning -------------------------
log "healthy PostgreSQL"
out=$("$APIGATE" doctor --postgres "$PGURL" --json --fail-on warning) || fail "doctor exited $? on a quiet server: $out"
jq -e . >/dev/null <<<"$out" || fail "not JSON: $out"
assert_eq "$(jq -r '.summary.warning + .summary.critical' <<<"$out")" 0 "warnings on a quiet server"
assert_eq "$(jq -r '[.findings[] | select(.id == "pg-connections")][0].severity' <<<"$out")" ok "pg-connections"
assert_eq "$(jq -r '[.findings[] | select(.id == "pg-stat-statements")] | length' <<<"$out")" 0 \
    "pg_stat_statements is loaded: no advice to enable it"

# --- 2. sequential scans over many rows: missing index with the column ------------------------
log "sequential scans"
for i in $(seq 1 15); do echo "SELECT count(*) FROM orders WHERE customer_id = $i;"; done | sql >/dev/null
settle
out=$("$APIGATE" doctor --postgres "$PGURL" --json) || true
f=$(jq -c '[.findings[] | select(.id == "pg-missing-index")][0]' <<<"$out")
assert_ne "$f" null "pg-missing-index finding"
assert_eq "$(jq -r .severity <<<"$f")" warning "pg-missing-index severity"
assert_contains "$(jq -r .fix <<<"$f")" "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);" "index fix"
assert_contains "$(jq -r .title <<<"$f")" "public.orders" "table named"
s=$(jq -c '[.findings[] | select(.id == "pg-slow-statements")][0]' <<<"$out")
assert_contains "$(jq -r .evidence <<<"$s")" "FROM orders WHERE customer_id = \$1" "top statements from pg_stat_statements"
assert_eq "$(jq -r '.findings[0].doc' <<<"$out" | grep -c '^docs/doctor.md#')" 1 "doc link"
# With the index, the hint goes away at once: the plan uses it, whatever the lifetime counters of
# pg_stat_user_tables still say (no pg_stat_reset).
sql -c "CREATE INDEX ON orders (customer_id)" >/dev/null
settle
out=$("$APIGATE" doctor --postgres "$PGURL" --json) || true
assert_eq "$(jq '[.findings[] | select(.id == "pg-missing-index")] | length' <<<"$out")" 0 "index hint after CREATE INDEX"

# --- 2b. a streaming replica: in sync, then replay paused while the primary writes 25 MB ------
log "replica"
RPORT=$(free_port)
mkdir -p "$T/replica" && chown postgres: "$T/replica" && chmod 700 "$T/replica"
as_pg pg_basebackup -h 127.0.0.1 -p "$PGPORT" -U postgres -D "$T/replica" -R -X stream -c fast \
    --no-sync >"$T/basebackup.log" 2>&1 || { cat "$T/basebackup.log" >&2; fail "pg_basebackup"; }
start_bg replica setpriv --reuid=postgres --regid=postgres --clear-groups -- "$PGBIN/postgres" \
    -D "$T/replica" -c port="$RPORT" -c cluster_name=replica1 -c hot_standby=on
REP_PID=$LAST_PID
wait_port "$RPORT" 30
REPURL="postgres://postgres@127.0.0.1:$RPORT/postgres"
wait_sql "SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming'" "the replica to stream"
out=$("$APIGATE" doctor --postgres "$PGURL" --json) || true
sev() { jq -r --arg id "$1" '[.findings[] | select(.id == $id)][0].severity' <<<"$out"; }
assert_eq "$(sev pg-replication-lag)" ok "replica in sync"
assert_contains "$(jq -r '[.findings[] | select(.id == "pg-replication-lag")][0].title' <<<"$out")" "replica replica1 (127.0.0.1)" "replica named"
psql -X -q -At "$REPURL" -c "SELECT pg_wal_replay_pause()" >/dev/null
sql -c "CREATE TABLE filler AS SELECT g AS id, repeat('y', 200) AS pad FROM generate_series(1, 100000) g" >/dev/null
wait_sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 16 * 1024 * 1024 FROM pg_stat_replication" "WAL to pile up on the replica"
out=$("$APIGATE" doctor --postgres "$PGURL" --json) || true
assert_eq "$(sev pg-replication-lag)" warning "16 MB of WAL not replayed"
set +e
out=$("$APIGATE" doctor --postgres "$REPURL" --json)
set -e
f=$(jq -r '[.findings[] | select(.id == "pg-replication-lag")][0] | .severity + " " + .title + " " + .fix' <<<"$out")
case "$f" in warning* | critical*) ;; *) fail "replica's own lag: $f" ;; esac
assert_contains "$f" "this server is a replica" "replica's view"
assert_contains "$f" "(replay paused)" "paused replay"
assert_contains "$f" "pg_wal_replay_resume()" "fix"
psql -X -q -At "$REPURL" -c "SELECT pg_wal_replay_resume()" >/dev/null
stop_pg "$REP_PID"
sql -c "DROP TABLE filler" -c "SELECT pg_stat_statements_reset()" >/dev/null

# --- 3. connections near max, idle pools, idle in transaction, a blocked query ----------------
log "14 of 17 usable connections: 12 idle, 1 idle in transaction holding a lock, 1 blocked"
mkfifo "$T/idle.fifo" "$T/lock.fifo" "$T/blocked.fifo"
exec 7<>"$T/idle.fifo" 8<>"$T/lock.fifo" 9<>"$T/blocked.fifo"
for i in $(seq 1 12); do
    psql -X -q "$PGURL" <"$T/idle.fifo" >/dev/null 2>&1 &
    HOLD_PIDS+=($!)
done
psql -X -q "$PGURL" <"$T/lock.fifo" >/dev/null 2>&1 &
HOLD_PIDS+=($!)
echo "BEGIN; UPDATE orders SET status = 'locked' WHERE id = 1;" >&8
wait_sql "SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'idle in transaction'" "the lock holder"
psql -X -q "$PGURL" <"$T/blocked.fifo" >/dev/null 2>&1 &
HOLD_PIDS+=($!)
echo "UPDATE orders SET status = 'blocked' WHERE id = 1;" >&9
wait_sql "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'" "the blocked UPDATE"
wait_sql "SELECT count(*) = 14 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" "14 sessions"
sleep 5.5 # idle in transaction for 5 s is a warning
set +e
out=$("$APIGATE" doctor --postgres "$PGURL" --json)
rc=$?
set -e
assert_eq "$rc" 0 "exit code with warnings only (default --fail-on critical)"
assert_eq "$(sev pg-connections)" warning "14 of 17 usable = 82% (warning above 80%)"
assert_contains "$(jq -r '[.findings[] | select(.id == "pg-connections")][0].title' <<<"$out")" "14 of 17 usable connections in use (82%; max_connections 20, 3 reserved for superusers)" "connection count"
assert_eq "$(sev pg-idle-pools)" warning "idle pools"
assert_contains "$(jq -r '[.findings[] | select(.id == "pg-idle-pools")][0].fix' <<<"$out")" "default_pool_size = " "computed pool size"
assert_eq "$(sev pg-idle-in-transaction)" warning "idle in transaction"
assert_eq "$(sev pg-blocked-queries)" warning "blocked query"
b=$(jq -r '[.findings[] | select(.id == "pg-blocked-queries")][0].evidence' <<<"$out")
assert_contains "$b" "UPDATE orders SET status = 'blocked'" "blocked statement shown"
assert_contains "$b" "idle in transaction" "blocker's state shown"
set +e
"$APIGATE" doctor --postgres "$PGURL" --fail-on warning >"$T/text.out"
rc=$?
set -e
assert_eq "$rc" 1 "exit code with --fail-on warning"
assert_contains "$(cat "$T/text.out")" "== postgres ==" "text report groups by component"
assert_contains "$(cat "$T/text.out")" "pg_terminate_backend(" "text report shows the fix"

# --- 4. PgBouncer, pool_size 1: clients wait --------------------------------------------------
log "PgBouncer with a pool of 1"
release_holders
sql -c "SELECT pg_stat_statements_reset()" >/dev/null # step 3's blocked UPDATE is slow for real
mkdir -p "$T/pgb"
chown postgres: "$T/pgb"
echo '"postgres" ""' >"$T/pgb/userlist.txt"
cat >"$T/pgb/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres pool_size=1
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
start_bg pgbouncer setpriv --reuid=postgres --regid=postgres --clear-groups -- pgbouncer "$T/pgb/pgbouncer.ini"
wait_port "$PGBPORT" 10
PGBURL="postgres://postgres@127.0.0.1:$PGBPORT/pgbouncer"
APPURL="postgres://postgres@127.0.0.1:$PGBPORT/app"
psql -X -q -At "$APPURL" -c "SELECT 1" >/dev/null || fail "cannot query through PgBouncer"
out=$("$APIGATE" doctor --pgbouncer "$PGBURL" --postgres "$PGURL" --json --fail-on warning) ||
    fail "warnings on a quiet PgBouncer: $(jq -c '[.findings[] | select(.severity != "ok" and .severity != "info")]' <<<"$out")"
assert_eq "$(sev pgb-pool-starvation)" ok "no waiting clients on a quiet pool"

psql -X -q "$APPURL" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
HOLD_PIDS+=($!)
sleep 0.5
for i in 1 2 3; do
    psql -X -q "$APPURL" -c "SELECT 1" >/dev/null 2>&1 &
    HOLD_PIDS+=($!)
done
sleep 2
set +e
out=$("$APIGATE" doctor --pgbouncer "$PGBURL" --postgres "$PGURL" --json)
rc=$?
set -e
assert_eq "$rc" 1 "critical starvation fails the default --fail-on critical"
assert_eq "$(sev pgb-pool-starvation)" critical "clients waited over 1 s"
f=$(jq -r '[.findings[] | select(.id == "pgb-pool-starvation")][0] | .title + "\n" + .evidence + "\n" + .fix' <<<"$out")
assert_contains "$f" "3 client(s) waiting" "waiting count"
assert_contains "$f" "pool_size 1" "pool size in evidence"
assert_contains "$f" "default_pool_size = 4" "computed pool size (1 active + 3 waiting)"

# --- 5. unreachable: a finding, not a crash --------------------------------------------------
DEAD=$(free_port)
set +e
out=$("$APIGATE" doctor --postgres "postgres://postgres@127.0.0.1:$DEAD/postgres" --json)
rc=$?
set -e
assert_eq "$rc" 1 "unreachable PostgreSQL is critical"
assert_contains "$(jq -r '.findings[0].title' <<<"$out")" "cannot reach PostgreSQL" "unreachable title"
assert_contains "$(jq -r '.findings[0].title' <<<"$out")" "refused" "reason given"
log "ok"
