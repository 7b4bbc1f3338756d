#!/usr/bin/env bash
# Multi-step iterations (flows: in a scenario): a login step extracts a token (json:), a session
# header (header:) and the user (regex:) into the VU's variables; the next step sends them back
# after a sleep. The origin remembers what it issued on each connection (one VU = one keep-alive
# connection) and answers 409 when a request carries another connection's token or session: with
# 16 VUs interleaving their steps, any variable shared between VUs would show as a 409. The report
# groups the steps under the flow's name; an extract that finds nothing is a failed check and the
# next step goes out without the value; bad flows are errors at their position. Last, the
# login-then-use example against the mock's own login route.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq python3

port=$(free_port)
start_tcp_server origin "$port" <<'PY'
import json, re, socket, sys, threading

lock = threading.Lock()
stats = {"login": 0, "check": 0, "mismatch": 0, "noauth": 0}

def read_req(f):
    line = f.readline()
    if not line:
        return None
    method, path, _ = line.decode().split(" ", 2)
    hdrs = {}
    while True:
        h = f.readline().decode()
        if h in ("\r\n", "\n", ""):
            break
        k, v = h.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    body = f.read(int(hdrs.get("content-length", "0")))
    return method, path, hdrs, body

def send(conn, status, body, extra=""):
    b = body.encode()
    conn.sendall(("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                  % (status, len(b), extra)).encode() + b)

def serve(conn):
    f = conn.makefile("rb")
    issued = None  # (token, session, user) handed out on this connection
    while True:
        req = read_req(f)
        if req is None:
            return
        method, path, hdrs, body = req
        if path == "/stats":
            send(conn, "200 OK", json.dumps(stats))
        elif method == "POST" and path == "/login":
            user = json.loads(body)["user"]
            issued = ("tok-" + user, "s-" + user, user)
            with lock:
                stats["login"] += 1
            send(conn, "200 OK", json.dumps({"token": issued[0], "profile": {"name": user}}),
                 "X-Session: %s\r\n" % issued[1])
        elif path.startswith("/check/"):
            auth = hdrs.get("authorization", "")
            with lock:
                stats["check"] += 1
            if auth in ("", "Bearer"):
                with lock:
                    stats["noauth"] += 1
                send(conn, "401 Unauthorized", '{"error":"no token"}')
            elif issued is None or auth != "Bearer " + issued[0] or \
                    hdrs.get("x-session") != issued[1] or path != "/check/" + issued[2]:
                with lock:
                    stats["mismatch"] += 1
                send(conn, "409 Conflict", '{"error":"another VU\'s values"}')
            else:
                send(conn, "200 OK", '{"ok":true}')
        else:
            send(conn, "404 Not Found", "{}")
PY
base="http://127.0.0.1:$port"

cat >"$T/flow.yaml" <<YAML
base_url: $base
vus: 16
duration: 2s
flows:
  - name: login-then-check
    steps:
      - name: login
        method: POST
        path: /login
        body: '{"user":"u{{seq}}"}'
        extract:
          token: 'json:\$.token'
          session: 'header:X-Session'
          user: 'regex:"name": ?"([^"]+)"'
        checks: [{status: 200}]
        sleep: 5ms..30ms
      - name: check
        path: '/check/{{user}}'
        headers: {Authorization: 'Bearer {{token}}', X-Session: '{{session}}'}
        checks: [{status: 200}]
        sleep: 0ms..10ms
YAML
log "16 VUs, login then check, variables per VU"
rc=0
"$APIGATE" load run "$T/flow.yaml" -q --json "$T/f.json" --summary-export "$T/k6.json" >"$T/f.out" 2>"$T/f.err" || rc=$?
assert_eq "$rc" 0 "flow run: $(tail -5 "$T/f.err")"
st=$(curl -s "$base/stats")
log "origin: $st"
assert_eq "$(jq .mismatch <<<"$st")" 0 "requests carrying another VU's token, session or user"
assert_eq "$(jq .noauth <<<"$st")" 0 "requests without a token"
checks=$(jq .check <<<"$st")
[ "$checks" -gt 100 ] || fail "too few check requests: $checks"
assert_eq "$(jq '.totals.failed' "$T/f.json")" 0 "failed requests"
assert_eq "$(jq -r '[.endpoints[].group] | unique | join(",")' "$T/f.json")" login-then-check "group of the steps"
assert_eq "$(jq '.endpoints[] | select(.name == "check") | .requests' "$T/f.json")" "$checks" "check requests seen by the origin"
# an iteration is the whole flow: one per completed check step
assert_eq "$(jq '.totals.iterations' "$T/f.json")" "$checks" "iterations"
assert_eq "$(jq '[.checks[] | select(.name | startswith("extract")) | .failed] | add' "$T/f.json")" 0 "failed extracts"
assert_eq "$(jq '[.checks[] | select(.name | startswith("extract"))] | length' "$T/f.json")" 3 "extract checks"
assert_contains "$(cat "$T/f.out")" "█ login-then-check"
# k6's summary export: the flow is a group of root_group, with its checks by name
assert_eq "$(jq '.root_group.groups["login-then-check"].checks["login: extract token"].fails' "$T/k6.json")" 0 "k6 group check"
assert_eq "$(jq '.root_group.groups["login-then-check"].path' -r "$T/k6.json")" "::login-then-check" "k6 group path"

log "an extract that finds nothing: a failed check, and the next step goes without the value"
sed -e "s/json:\\\$.token/json:\$.nope/" "$T/flow.yaml" >"$T/miss.yaml"
sed -i 's/duration: 2s/duration: 1s/' "$T/miss.yaml"
rc=0
"$APIGATE" load run "$T/miss.yaml" -q --json "$T/m.json" >"$T/m.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "every check step answered 401: the run failed"
[ "$(jq '.checks[] | select(.name == "extract token") | .failed' "$T/m.json")" -gt 0 ] || fail "extract token did not fail: $(cat "$T/m.out")"
assert_eq "$(jq '.checks[] | select(.name == "extract token") | .passed' "$T/m.json")" 0 "extract token passed"
[ "$(jq '.status["401"]' "$T/m.json")" -gt 0 ] || fail "no 401: $(cat "$T/m.out")"

log "bad flows: errors at their position"
bad() { # bad WHAT EXPECTED: the scenario in $T/bad.yaml is refused with EXPECTED
    local rc=0
    "$APIGATE" load run "$T/bad.yaml" --check >"$T/bad.out" 2>&1 || rc=$?
    assert_eq "$rc" 2 "$1: exit code ($(cat "$T/bad.out"))"
    grep -qF -- "$2" "$T/bad.out" || fail "$1: no '$2' in: $(cat "$T/bad.out")"
}
cat >"$T/bad.yaml" <<YAML
base_url: $base
vus: 1
duration: 1s
flows:
  - name: f
    steps:
      - {path: /login, extract: {token: 'json:token'}}
      - {path: '/check/{{tokn}}', weight: 2}
      - {path: /x, extract: {seq: 'json:\$.a', t2: 'regex:(', t3: 'header:a b', t4: 'body:x'}}
YAML
bad "flow errors" "bad.yaml:7:41: extract: token: a JSON path starts with '\$'"
bad "flow errors" "bad.yaml:8:24: path: unknown template function 'tokn'; known: rand, seq, uuid, pick, env, or a variable that an extract: fills"
bad "flow errors" "bad.yaml:8:35: steps: unknown key 'weight'"
bad "flow errors" "bad.yaml:9:30: extract: 'seq' is not a variable name"
bad "flow errors" "extract: t2: '(' is not a valid regex"
bad "flow errors" "extract: t3: 'a b' is not a header name"
bad "flow errors" "extract: t4: 'body:x' says not where to look"

log "the example: log in to the mock, then use the token"
mport=$(free_port)
start_mock mock "$mport"
rc=0
"$APIGATE" load run "$(dirname "$0")/../../examples/load-login-flow.yaml" --base-url "http://127.0.0.1:$mport/api" \
    --duration 2s -q --json "$T/x.json" >"$T/x.out" 2>&1 || rc=$?
assert_eq "$rc" 0 "example: $(tail -20 "$T/x.out")"
[ "$(jq '.endpoints[] | select(.name == "me") | .requests' "$T/x.json")" -gt 10 ] || fail "too few /me requests"
assert_eq "$(jq '.checks_rate // .totals.checks_rate' "$T/x.json")" 1 "every check passed (status 200, the user echoed back)"
log "ok"
