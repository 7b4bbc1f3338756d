# Shared helpers for tests/e2e/NN_*.sh. Source it first thing:
#
#   set -euo pipefail
#   . "$(dirname "$0")/lib.sh"
#   require_cmd curl jq
#   port=$(free_port)
#   start_bg mock "$APIGATE" mock --listen "127.0.0.1:$port"
#   wait_port "$port"
#   assert_eq "$(http_status "http://127.0.0.1:$port/api/health")" 200 "health"
#
# Never use a bare `wait` in a test: the servers started with start_bg are background jobs too, so
# it would wait for them forever. Collect the PIDs of your own jobs and `wait "${pids[@]}"`.
#
# Every process started with start_bg is killed by the EXIT trap (TERM, then KILL after a grace),
# so a failing assertion never leaves a server behind. Logs of started processes go to $T/NAME.log
# and are printed by fail() to make a CI failure readable. Not for benchmarks (bench/ has its own).

# Paths given by ctest; sensible defaults when a test is run by hand from the repository.
AG_SRC=${AG_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
AG_BUILD=${AG_BUILD:-$AG_SRC/build}
APIGATE=${APIGATE:-$AG_SRC/build/apigate}
export AG_SRC AG_BUILD APIGATE

# Per-test temp dir: ${AG_BUILD}/e2e-tmp/<test>.XXXX (removed on success, kept on failure).
E2E_NAME=$(basename "${0%.sh}")
mkdir -p "${AG_BUILD:-/tmp}/e2e-tmp"
T=$(mktemp -d "${AG_BUILD:-/tmp}/e2e-tmp/${E2E_NAME}.XXXXXX")
TMPDIR=$T
export T TMPDIR

E2E_PIDS=()   # every PID start_bg started, in order
E2E_NAMES=()  # the matching names (log files are $T/NAME.log)
E2E_FAILED=0

# Prints a message to stderr with the elapsed seconds since the test started.
E2E_T0=$(date +%s.%N)
log() {
    local now
    now=$(date +%s.%N)
    printf '[%s +%.1fs] %s\n' "$E2E_NAME" "$(awk -v a="$now" -v b="$E2E_T0" 'BEGIN { print a - b }')" "$*" >&2
}

# Fails the test: prints the message and the tail of every started process's log, then exits 1.
fail() {
    E2E_FAILED=1
    echo "FAIL [$E2E_NAME]: $*" >&2
    local i
    for i in "${!E2E_NAMES[@]}"; do
        local f="$T/${E2E_NAMES[$i]}.log"
        if [ -s "$f" ]; then
            echo "---- last lines of ${E2E_NAMES[$i]} (pid ${E2E_PIDS[$i]}) log $f ----" >&2
            tail -n 20 "$f" >&2
        fi
    done
    exit 1
}

# Skips the test: prints why and exits 77, which ctest reports as "Not Run" (SKIP_RETURN_CODE in
# CMakeLists.txt), never as passed. Only for a test that cannot run here at all (a tool or limit
# this machine lacks); a missing tool the test suite depends on is require_cmd's failure instead.
E2E_SKIP=77
skip() {
    echo "SKIP [$E2E_NAME]: $*" >&2
    exit $E2E_SKIP
}

# Fails the test with a clear message when a tool it needs is missing.
require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || fail "required command not found: $c"
    done
}

# Kills every process started by start_bg: TERM first, KILL after a grace of 3 s.
cleanup() {
    local rc=$?
    local pid
    for pid in "${E2E_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    local deadline=$((SECONDS + 3))
    for pid in "${E2E_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if { [ $rc -eq 0 ] || [ $rc -eq $E2E_SKIP ]; } && [ $E2E_FAILED -eq 0 ]; then
        rm -rf "$T"
    else
        echo "[$E2E_NAME] kept temp dir $T" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1, chosen by the kernel (bind port 0). A tiny race remains between
# this and the server's bind; tests retry nothing, ports are plentiful.
free_port() {
    # The kernel may hand the same ephemeral port out twice in a row once the probing socket is
    # closed; remember what this test already got (in $T, since callers use a subshell) and retry.
    local port tries=0
    while :; do
        port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
        if ! grep -qx "$port" "$T/.ports" 2>/dev/null || [ $((tries += 1)) -gt 20 ]; then
            break
        fi
    done
    echo "$port" >>"$T/.ports"
    echo "$port"
}

# free_ports N: N distinct free ports on one line (read -r a b c <<<"$(free_ports 3)")
free_ports() {
    local ports=() i
    for ((i = 0; i < $1; i++)); do ports+=("$(free_port)"); done
    echo "${ports[@]}"
}

# start_bg NAME CMD [ARGS...]: starts CMD in the background with stdout+stderr in $T/NAME.log and
# records its PID for cleanup. The PID is also left in $LAST_PID and in $T/NAME.pid.
start_bg() {
    local name=$1
    shift
    "$@" >"$T/$name.log" 2>&1 &
    LAST_PID=$!
    E2E_PIDS+=("$LAST_PID")
    E2E_NAMES+=("$name")
    echo "$LAST_PID" >"$T/$name.pid"
}

# stop_bg NAME: stops one process started with start_bg (TERM, KILL after 3 s); returns its exit code.
stop_bg() {
    local name=$1 i pid rc=0
    for i in "${!E2E_NAMES[@]}"; do
        [ "${E2E_NAMES[$i]}" = "$name" ] || continue
        pid=${E2E_PIDS[$i]}
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 3))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || rc=$?
        E2E_PIDS[$i]=""
    done
    return $rc
}

# True when something accepts connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_port PORT [TIMEOUT_S=10]: waits until 127.0.0.1:PORT accepts; fails the test on timeout,
# or at once when the last started process has already died.
wait_port() {
    local port=$1 timeout=${2:-10}
    local deadline=$((SECONDS + timeout))
    while ! port_open "$port"; do
        if [ -n "${LAST_PID:-}" ] && ! kill -0 "$LAST_PID" 2>/dev/null; then
            fail "process ${E2E_NAMES[-1]:-?} (pid $LAST_PID) exited before listening on $port"
        fi
        [ $SECONDS -lt $deadline ] || fail "nothing listening on 127.0.0.1:$port after ${timeout}s"
        sleep 0.05
    done
}

# wait_until TIMEOUT_S WHAT CMD...: runs CMD every 0.05 s until it succeeds; fails the test with
# WHAT after TIMEOUT_S. For conditions that take a while on a loaded machine, instead of a sleep.
wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "still not true after ${timeout}s: $what"
        sleep 0.05
    done
}

# assert_eq ACTUAL EXPECTED [WHAT]
assert_eq() {
    [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"
}

# assert_ne ACTUAL UNEXPECTED [WHAT]
assert_ne() {
    [ "$1" != "$2" ] || fail "${3:-value}: did not expect '$2'"
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
    case "$1" in
    *"$2"*) ;;
    *) fail "${3:-output}: expected to contain '$2', got: $(printf '%s' "$1" | head -c 600)" ;;
    esac
}

# assert_not_contains HAYSTACK NEEDLE [WHAT]
assert_not_contains() {
    case "$1" in
    *"$2"*) fail "${3:-output}: did not expect '$2' in: $(printf '%s' "$1" | head -c 600)" ;;
    *) ;;
    esac
}

# assert_range VALUE MIN MAX [WHAT]: MIN <= VALUE <= MAX, numbers may be decimals.
assert_range() {
    awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v + 0 >= lo + 0 && v + 0 <= hi + 0) }' ||
        fail "${4:-value}: expected in [$2, $3], got '$1'"
}

# http_status URL [CURL ARGS...]: prints the status code (000 when the connection failed).
http_status() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" || true
}

# http_body URL [CURL ARGS...]: prints the body (empty on failure).
http_body() {
    local url=$1
    shift
    curl -s --max-time 10 "$@" "$url" || true
}

# http_time URL [CURL ARGS...]: prints the total time in milliseconds (integer).
http_time() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{time_total}' --max-time 30 "$@" "$url" |
        awk '{ printf "%d\n", $1 * 1000 }'
}

# fetch URL [CURL ARGS...]: one request with curl -sS; the body goes to $T/b and the response head,
# lower-cased and without CRs, to $T/h (read a field of it with hdr). Returns curl's exit code.
fetch() {
    local url=$1 rc=0
    shift
    curl -sS -o "$T/b" -D "$T/h.raw" "$@" "$url" || rc=$?
    tr 'A-Z' 'a-z' <"$T/h.raw" | tr -d '\r' >"$T/h"
    return $rc
}

# hdr NAME: the value of the field NAME (lower case) in the head fetch saved; empty when absent.
hdr() { sed -n "s/^$1: //p" "$T/h" | head -1; }

# metric_value ADMIN_PORT SERIES: the value of one exact series (name with its labels, as
# /metrics prints it) of the gateway whose admin listens on ADMIN_PORT; 0 when it is absent.
metric_value() {
    curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s {print $2; f=1} END {if (!f) print 0}'
}

# route_metric_sum NAME ROUTE ADMIN_PORT...: the series NAME of the route ROUTE (its route="ROUTE"
# label) summed over the gateways whose admin ports are given; a gateway without it counts 0.
route_metric_sum() {
    local name=$1 route=$2 a sum=0 v
    shift 2
    for a in "$@"; do
        v=$(curl -s --max-time 5 "http://127.0.0.1:$a/metrics" |
            awk -v n="$name" -v r="route=\"$route\"" '$1 ~ "^"n"\\{" && index($1, r) { print $2 }')
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# mock_stat PORT ROUTE [FIELD=served]: a counter from `apigate mock`'s /_mock/stats.
# ROUTE is the route's name as in the profile (default routes are named by "METHOD pattern",
# e.g. "GET /api/users/{id}"); FIELD is "served" (requests the route really answered), or a status
# code ("200", "503"). Use ROUTE "total" for the totals. Prints 0 for an unknown route.
mock_stat() {
    local port=$1 route=$2 field=${3:-served}
    local json
    json=$(curl -s --max-time 10 "http://127.0.0.1:$port/_mock/stats") ||
        fail "mock_stat: cannot read http://127.0.0.1:$port/_mock/stats"
    if [ "$route" = total ]; then
        if [ "$field" = served ]; then
            jq -r '.total.served // 0' <<<"$json"
        else
            jq -r --arg f "$field" '.total.status[$f] // 0' <<<"$json"
        fi
    else
        if [ "$field" = served ]; then
            jq -r --arg r "$route" '(.routes[] | select(.name == $r) | .served) // 0' <<<"$json" | head -n1
        else
            jq -r --arg r "$route" --arg f "$field" \
                '(.routes[] | select(.name == $r) | .status[$f]) // 0' <<<"$json" | head -n1
        fi
    fi
}

# mock_reset PORT: zeroes the mock's counters.
mock_reset() {
    curl -s -o /dev/null --max-time 10 -X POST "http://127.0.0.1:$1/_mock/reset" ||
        fail "mock_reset: cannot reach 127.0.0.1:$1"
}

# mock_set_profile PORT TEXT: replaces the running mock's profile (YAML or JSON text); fails the
# test with the mock's error message when it is rejected.
mock_set_profile() {
    local out code
    out=$(curl -s -w '\n%{http_code}' --max-time 10 -X POST --data-binary "$2" \
        "http://127.0.0.1:$1/_mock/profile") || fail "mock_set_profile: cannot reach 127.0.0.1:$1"
    code=$(tail -n1 <<<"$out")
    [ "$code" = 200 ] || fail "mock_set_profile: HTTP $code: $(head -n -1 <<<"$out")"
}

# start_mock NAME PORT [MOCK ARGS...]: starts `apigate mock` on 127.0.0.1:PORT and waits for it.
start_mock() {
    local name=$1 port=$2
    shift 2
    start_bg "$name" "$APIGATE" mock --listen "127.0.0.1:$port" "$@"
    wait_port "$port"
}

# start_gateway NAME PORT... <<EOF ... EOF: writes the config from stdin to $T/NAME.yaml, starts
# `apigate serve -c` on it as NAME (log in $T/NAME.log) and waits until every PORT (listen, admin)
# accepts. Rewrite $T/NAME.yaml and send SIGHUP to reload.
start_gateway() {
    local name=$1 port
    shift
    cat >"$T/$name.yaml"
    start_bg "$name" "$APIGATE" serve -c "$T/$name.yaml"
    for port in "$@"; do wait_port "$port"; done
}

# raw_http PORT [TIMEOUT_S=5]: sends stdin as raw bytes to 127.0.0.1:PORT and prints everything
# the server sent back until it closes or goes quiet for TIMEOUT_S. Writes "closed" or "open" to
# $T/raw_http.state (did the server close the connection?). With RAW_HTTP_SHUT=1 it half-closes
# after sending (the server sees EOF).
raw_http() {
    python3 -c "$E2E_RAW_HTTP_PY" "$1" "${2:-5}"
}
E2E_RAW_HTTP_PY='
import os, socket, sys
port, timeout = int(sys.argv[1]), float(sys.argv[2])
data = sys.stdin.buffer.read()
s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
s.sendall(data)
if os.environ.get("RAW_HTTP_SHUT") == "1":
    s.shutdown(socket.SHUT_WR)
out = b""
state = "open"
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            state = "closed"
            break
        out += chunk
except socket.timeout:
    pass
except ConnectionResetError:
    state = "closed"
with open(os.path.join(os.environ["T"], "raw_http.state"), "w") as f:
    f.write(state)
sys.stdout.buffer.write(out)
'

# start_tcp_server NAME PORT [ARGS...] <<'PY' ... PY: a scripted (often hostile) TCP peer on
# 127.0.0.1:PORT. Stdin is Python defining serve(conn), with the imports and globals it needs.
# The helpers of E2E_TCP_HELPERS_PY are prepended (json_items, each_request, read_head, read_exact,
# read_chunked, header, request_line: for an origin that reads plain HTTP/1.1 requests, e.g.
# `def serve(c): each_request(c, answer)`; a test that reads otherwise on
# purpose, slowly, held or in pieces, keeps its own loop). The accept loop of E2E_TCP_SERVER_PY is
# appended (SO_REUSEADDR, backlog 128, one daemon thread per connection calling serve(conn),
# accepting forever). The script is written to $T/NAME.py, started as NAME with
# `python3 $T/NAME.py PORT ARGS...` (so ARGS are sys.argv[2:]) and waited for.
start_tcp_server() {
    local name=$1 port=$2
    shift 2
    { printf '%s\n' "$E2E_TCP_HELPERS_PY"; cat; printf '%s\n' "$E2E_TCP_SERVER_PY"; } >"$T/$name.py"
    start_bg "$name" python3 "$T/$name.py" "$port" "$@"
    wait_port "$port"
}
E2E_TCP_HELPERS_PY='
def read_head(c, buf=b""):
    """Reads from c until buf holds a whole head: (the head without its blank line, the bytes
    after it), or (None, buf) when the peer closes first."""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest

def each_request(c, answer):
    """serve(c) for an origin that answers request after request on one connection: calls
    answer(c, head, rest) for each request head until the peer closes, then closes c. answer
    returns what is left of rest when it read a body from it (None: rest as it was); OSError
    and EOFError end the connection quietly."""
    buf = b""
    try:
        while True:
            head, buf = read_head(c, buf)
            if head is None:
                return
            rest = answer(c, head, buf)
            if rest is not None:
                buf = rest
    except (OSError, EOFError):
        pass
    finally:
        c.close()

def json_items(n):
    """A JSON array of n bytes of small, alike objects: a body that compresses well."""
    out, i = b"[", 0
    while len(out) < n:
        out += b"{\"id\":%d,\"name\":\"item-%d\",\"tags\":[\"a\",\"b\"]}," % (i, i % 7)
        i += 1
    return out[:n - 1] + b"]"

def _fill(c, buf, n):
    while len(buf) < n:
        d = c.recv(1 << 20)
        if not d:
            raise EOFError
        buf += d
    return buf

def read_exact(c, buf, n):
    """(the first n bytes, the rest), reading from c as long as buf is shorter; EOFError when the
    peer closes first."""
    buf = _fill(c, buf, n)
    return buf[:n], buf[n:]

def read_chunked(c, buf):
    """Reads one chunked body (sizes without extensions, no trailers, as the gateway frames it):
    (the body, the bytes after it); EOFError when the peer closes first."""
    parts = []  # joined once at the end: a body of many small chunks is not copied per chunk
    while True:
        while b"\r\n" not in buf:
            buf = _fill(c, buf, len(buf) + 1)
        line, buf = buf.split(b"\r\n", 1)
        n = int(line, 16)
        data, buf = read_exact(c, buf, n + 2)
        parts.append(data[:n])
        if n == 0:
            return b"".join(parts), buf

def header(head, name):
    """The value of the first header NAME (bytes, any case) of a head, stripped; None if absent."""
    for line in head.split(b"\r\n")[1:]:
        k, colon, v = line.partition(b":")
        if colon and k.strip().lower() == name.lower():
            return v.strip()
    return None

def request_line(head):
    """(method, target) of a request head, as bytes."""
    return tuple(head.split(b"\r\n", 1)[0].split(b" ")[:2])
'

# json_items N: prints the body json_items(N) of E2E_TCP_HELPERS_PY makes (N bytes of JSON).
json_items() {
    python3 -c "$E2E_TCP_HELPERS_PY"'
import sys
sys.stdout.buffer.write(json_items(int(sys.argv[1])))' "$1"
}

E2E_TCP_SERVER_PY='
import socket, sys, threading
_lst = socket.socket()
_lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
_lst.bind(("127.0.0.1", int(sys.argv[1])))
_lst.listen(128)
while True:
    _c, _ = _lst.accept()
    threading.Thread(target=serve, args=(_c,), daemon=True).start()
'

# nginx_conf DIR <<EOF ... EOF: writes DIR/nginx.conf for an nginx origin: in the foreground and
# one process (daemon off, master_process off: the PID start_bg records is nginx itself), its
# error log, pid and every temp path in DIR, access_log off. Stdin goes inside http { }: the
# server blocks and whatever http-level directive the test needs (a server block may set its own
# access_log). Start it with start_nginx.
nginx_conf() {
    local dir=$1
    mkdir -p "$dir"
    {
        cat <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir;
    proxy_temp_path $dir;
    fastcgi_temp_path $dir;
    uwsgi_temp_path $dir;
    scgi_temp_path $dir;
CONF
        cat
        echo "}"
    } >"$dir/nginx.conf"
}

# start_nginx NAME DIR PORT...: starts nginx on DIR/nginx.conf (see nginx_conf) as NAME and waits
# until every PORT accepts.
start_nginx() {
    local name=$1 dir=$2 port
    shift 2
    start_bg "$name" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    for port in "$@"; do wait_port "$port"; done
}

# test_cert DIR NAME SUBJECT [SAN [CA [KEY OPTIONS...]]]: a key DIR/NAME.key (ECDSA P-256 unless
# KEY OPTIONS say otherwise, e.g. -newkey rsa:2048 -nodes) and a certificate DIR/NAME.pem for
# SUBJECT (/CN=localhost), valid 2 days, with subjectAltName SAN (none when ""): self-signed when
# CA is "" (a CA, or a server its clients trust as it is), else signed by DIR/CA.pem and DIR/CA.key.
# Fails the test with openssl's message ($T/openssl.log) when openssl does.
test_cert() {
    local dir=$1 name=$2 subj=$3 san=${4:-} ca=${5:-}
    shift $(($# < 5 ? $# : 5))
    local key=("$@")
    [ ${#key[@]} -gt 0 ] || key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    mkdir -p "$dir"
    (
        cd "$dir"
        if [ -z "$ca" ]; then
            openssl req -x509 "${key[@]}" -keyout "$name.key" -out "$name.pem" -days 2 -subj "$subj" \
                ${san:+-addext "subjectAltName=$san"}
        else
            openssl req "${key[@]}" -keyout "$name.key" -out "$name.csr" -subj "$subj"
            printf 'subjectAltName=%s\n' "$san" >"$name.ext"
            openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -days 2 \
                -out "$name.pem" ${san:+-extfile "$name.ext"}
        fi
    ) >>"$T/openssl.log" 2>&1 || fail "openssl ($name): $(tail -5 "$T/openssl.log")"
}
