#!/usr/bin/env bash
# deploy/systemd/apigate.service agrees with the binary and the docs: `systemd-analyze verify`
# passes without a warning; Type=notify (NotifyAccess=main) and the supervisor really sends
# READY=1 with its MAINPID through $NOTIFY_SOCKET; every Documentation= file:// path exists after
# `cmake --install` with the prefix the unit's ExecStart= uses; LogsDirectory= makes the documented
# access log directory writable under ProtectSystem=strict; the config the unit runs (with the
# admin token from LoadCredential=) passes `apigate check`. Skipped (77) without systemd-analyze.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze is not installed"
require_cmd cmake python3 openssl
U="$AG_SRC/deploy/systemd/apigate.service"
key() { sed -n "s/^$1=//p" "$U"; }

log "systemd-analyze verify"
# verify checks that ExecStart's binary exists: point it at this build. It warns on stderr and
# still exits 0, so any output is a failure.
sed "s#/usr/local/bin/apigate#$APIGATE#g" "$U" >"$T/apigate.service"
out=$(systemd-analyze verify "$T/apigate.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"

log "Type=notify, and the binary notifies"
assert_eq "$(key Type)" notify "Type="
assert_eq "$(key NotifyAccess)" main "NotifyAccess= (the supervisor, not its workers)"
assert_contains "$(key ExecReload)" "-HUP \$MAINPID" "ExecReload="
assert_eq "$(key KillMode)" mixed "KillMode= (the supervisor drains its worker)"
cat >"$T/notify.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(15)
with open(sys.argv[2], "w") as out:
    while True:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        out.write(m.replace("\n", " ") + "\n")
        out.flush()
        if m.startswith("STOPPING=1"):
            break
EOF
start_bg notify python3 "$T/notify.py" "$T/notify.sock" "$T/notify.out"
deadline=$((SECONDS + 5))
until [ -S "$T/notify.sock" ]; do
    [ $SECONDS -lt $deadline ] || fail "the notify listener did not start"
    sleep 0.05
done
read -r mport gport < <(free_ports 2)
cat >"$T/gw.yaml" <<EOF
listen: 127.0.0.1:$gport
admin: off
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
EOF
NOTIFY_SOCKET="$T/notify.sock" start_bg gw "$APIGATE" serve -c "$T/gw.yaml"
SV=$LAST_PID
deadline=$((SECONDS + 10))
until grep -q "^READY=1 MAINPID=$SV " "$T/notify.out" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "no READY=1 MAINPID=$SV on \$NOTIFY_SOCKET"
    sleep 0.05
done
stop_bg gw || fail "the gateway did not exit 0 on SIGTERM"
deadline=$((SECONDS + 5))
until grep -q '^STOPPING=1' "$T/notify.out"; do
    [ $SECONDS -lt $deadline ] || fail "no STOPPING=1 on SIGTERM"
    sleep 0.05
done

log "Documentation= points at files that cmake --install puts there"
exec_bin=$(key ExecStart | awk '{print $1}')
prefix=${exec_bin%/bin/apigate}
[ "$prefix" != "$exec_bin" ] || fail "ExecStart= $exec_bin is not PREFIX/bin/apigate"
DESTDIR="$T/root" cmake --install "$AG_BUILD" --prefix "$prefix" >"$T/install.log" 2>&1 ||
    fail "cmake --install: $(cat "$T/install.log")"
[ -x "$T/root$exec_bin" ] || fail "cmake --install did not install $exec_bin"
docs=$(key Documentation)
[ -n "$docs" ] || fail "no Documentation="
for d in $docs; do
    case "$d" in
    file://*) [ -s "$T/root${d#file://}" ] || fail "Documentation=$d is not installed" ;;
    man:* | info:*) fail "Documentation=$d: no manual page is installed" ;;
    http://* | https://*) ;;
    *) fail "Documentation=$d: not a URI systemd knows" ;;
    esac
done

log "LogsDirectory= covers the documented access log path"
logs=$(key LogsDirectory)
[ -n "$logs" ] || fail "no LogsDirectory=: ProtectSystem=$(key ProtectSystem) leaves /var/log read-only"
documented=$(grep -o 'access_log: /var/log/[^`]*' "$AG_SRC/docs/operating.md" | head -n1)
documented=${documented#access_log: }
[ -n "$documented" ] || fail "docs/operating.md names no access log path"
[ "$(dirname "$documented")" = "/var/log/$logs" ] ||
    fail "documented log $documented is not in LogsDirectory=$logs (/var/log/$logs)"

log "the config the unit runs passes check with the token from LoadCredential="
assert_contains "$(key LoadCredential)" "admin-token:/etc/apigate/admin-token" "LoadCredential="
assert_eq "$(key Environment)" "APIGATE_ADMIN_TOKEN_FILE=%d/admin-token" "Environment="
openssl rand -hex 32 >"$T/admin-token"
out=$(APIGATE_ADMIN_TOKEN_FILE="$T/admin-token" "$APIGATE" check -q -c "$AG_SRC/deploy/apigate.yaml" 2>&1) ||
    fail "deploy/apigate.yaml with the unit's token: $out"
rc=0
out=$(APIGATE_ADMIN_TOKEN_FILE="$T/none" "$APIGATE" check -q -c "$AG_SRC/deploy/apigate.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "check without the token file"
assert_contains "$out" "admin.token_file: cannot read '$T/none'" "the token file is what it reads"
log "ok"
