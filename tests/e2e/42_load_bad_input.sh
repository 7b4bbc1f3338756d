#!/usr/bin/env bash
# apigate load on bad input: a clear message (file:line:col for scenario files) and exit 2, never a
# run: bad URL, unknown option, unknown template function, malformed YAML, impossible stage, bad
# threshold, missing file; and compare/merge on files that are not reports.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# expect_bad WHAT NEEDLE CMD...: CMD exits 2 and its stderr contains NEEDLE.
expect_bad() {
    local what=$1 needle=$2 rc=0
    shift 2
    timeout 10 "$@" >"$T/out" 2>"$T/err" || rc=$?
    assert_eq "$rc" 2 "$what: exit code (stderr: $(head -c 300 "$T/err"))"
    assert_contains "$(cat "$T/err")" "$needle" "$what: message"
    assert_eq "$(cat "$T/out")" "" "$what: nothing on stdout"
}

expect_bad "no URL" "a URL is required" "$APIGATE" load -c 2
expect_bad "bad URL" "bad URL 'localhost:8080'" "$APIGATE" load -d 1s localhost:8080
expect_bad "ftp URL" "bad URL 'ftp://127.0.0.1/'" "$APIGATE" load ftp://127.0.0.1/
expect_bad "bad -c" "-c 'many'" "$APIGATE" load -c many http://127.0.0.1:9/
expect_bad "bad -d" "-d '10 parsecs'" "$APIGATE" load -d '10 parsecs' http://127.0.0.1:9/
expect_bad "bad rate" "--rate 'fast'" "$APIGATE" load --rate fast http://127.0.0.1:9/
expect_bad "bad header" "expected 'Name: value'" "$APIGATE" load -H nocolon http://127.0.0.1:9/
# Method and header names are tokens: a space or a line break would write a second request line
# or header of the caller's choosing (request smuggling by typo), as the scenario file refuses.
expect_bad "method with a line break" "-m 'GET / HTTP/1.1" "$APIGATE" load -m $'GET / HTTP/1.1\r\nX: y' http://127.0.0.1:9/
expect_bad "method with a space" "not a valid HTTP method" "$APIGATE" load -m 'GE T' http://127.0.0.1:9/
expect_bad "empty method" "-m ''" "$APIGATE" load -m '' http://127.0.0.1:9/
# The framing headers are load's to write: a second Content-Length or a Transfer-Encoding made
# every request malformed (the origin answered 400 to all of them).
expect_bad "Content-Length header" "Content-Length is written from --body" "$APIGATE" load -H 'Content-Length: 100' --body x http://127.0.0.1:9/
expect_bad "Transfer-Encoding header" "transfer-encoding is written from --body" "$APIGATE" load -H 'transfer-encoding: chunked' http://127.0.0.1:9/
printf 'base_url: http://127.0.0.1:9\nvus: 1\nduration: 1s\nrequests:\n  - {path: /, body: x, headers: {Content-Length: "100"}}\n' >"$T/cl.yaml"
expect_bad "scenario Content-Length header" "$T/cl.yaml:5:34: headers: Content-Length is written from the body" "$APIGATE" load run --check "$T/cl.yaml"
expect_bad "header name with a space" "'X Bad' is not a valid header name" "$APIGATE" load -H 'X Bad: v' http://127.0.0.1:9/
expect_bad "unknown option" "apigate load --help" "$APIGATE" load --frobnicate http://127.0.0.1:9/
expect_bad "missing body file" "--body @/nonexistent" "$APIGATE" load --body @/nonexistent http://127.0.0.1:9/
# A file argument that is no file (a directory) or never ends (/dev/zero) fails at once, before any
# request: a directory used to be sent as an empty body, /dev/zero read until memory ran out.
expect_bad "body from a directory" "--body @$T: is a directory" "$APIGATE" load --body @"$T" http://127.0.0.1:9/
expect_bad "endless body file" "--body @/dev/zero: larger than" "$APIGATE" load --body @/dev/zero http://127.0.0.1:9/
# A report path that cannot be written is refused before the run, not found after it (the whole
# run's report lost); an existing report is left as it was until the new one replaces it.
expect_bad "json in a missing dir" "cannot write /nonexistent/r.json" "$APIGATE" load -d 2s --json /nonexistent/r.json http://127.0.0.1:9/
expect_bad "html is a directory" "cannot write $T: Is a directory" "$APIGATE" load -d 2s --html "$T" http://127.0.0.1:9/
printf 'base_url: http://127.0.0.1:9\nvus: 1\nduration: 1s\nrequests: [{path: /}]\n' >"$T/ok.yaml"
expect_bad "run --check with an unwritable report" "cannot write /nonexistent/r.html" "$APIGATE" load run --check "$T/ok.yaml" --html /nonexistent/r.html
echo keep >"$T/old.json"
"$APIGATE" load run --check "$T/ok.yaml" --json "$T/old.json" --html "$T/new.html" >/dev/null ||
    fail "run --check with writable report paths"
assert_eq "$(cat "$T/old.json")" "keep" "existing report untouched by the check"
[ ! -e "$T/new.html" ] || fail "the check left $T/new.html behind"
# ... nor can a header value get a line break through {{env}}: it would add a header of its own.
export AG_E2E_CRLF=$'v\r\nX-Injected: 1'
expect_bad "header with a line break from env" "a value cannot contain a line break" "$APIGATE" load -H 'X-A: {{env AG_E2E_CRLF}}' http://127.0.0.1:9/
printf 'base_url: http://127.0.0.1:9\nvus: 1\nduration: 1s\nrequests:\n  - {path: /, headers: {X-A: "{{env AG_E2E_CRLF}}"}}\n' >"$T/crlf.yaml"
expect_bad "scenario header with a line break from env" "$T/crlf.yaml:5:" "$APIGATE" load run --check "$T/crlf.yaml"
unset AG_E2E_CRLF
expect_bad "unknown host" "no.such.host.invalid" "$APIGATE" load -d 1s http://no.such.host.invalid:81/

f="$T/s.yaml"
printf 'base_url: http://127.0.0.1:9\nvus: 1\nduration: 1s\nrequests:\n  - path: /a/{{randint 1 9}}\n' >"$f"
expect_bad "unknown template function" "$f:5:" "$APIGATE" load run "$f"
assert_contains "$(cat "$T/err")" "unknown template function 'randint'"

printf 'base_url: http://127.0.0.1:9\nrequests: [{path: /a}\nvus: 1\n' >"$f"
expect_bad "malformed YAML" "$f:" "$APIGATE" load run "$f"
grep -Eq "^$f:[0-9]+:[0-9]+: " "$T/err" || fail "malformed YAML: no file:line:col in $(cat "$T/err")"

printf 'base_url: http://127.0.0.1:9\nstages:\n  - {duration: 10s, target: 5}\n  - {duration: 0s, target: 9}\nrequests: [{path: /}]\n' >"$f"
expect_bad "impossible stage" "$f:4:" "$APIGATE" load run "$f"
assert_contains "$(cat "$T/err")" "a stage must last longer than 0"

printf 'base_url: http://127.0.0.1:9\nexecutor: arrival_rate\nstages:\n  - {duration: 10s, target: 5 per second}\nrequests: [{path: /}]\n' >"$f"
expect_bad "bad rate stage" "$f:4:" "$APIGATE" load run "$f"

printf 'base_url: http://127.0.0.1:9\nvus: 1\nduration: 1s\nrequests: [{path: /}]\nthresholds:\n  http_req_duration: [p95 < 500]\n' >"$f"
expect_bad "bad threshold" "$f:6:" "$APIGATE" load run "$f"
assert_contains "$(cat "$T/err")" "thresholds:"

printf 'base_url: http://127.0.0.1:9\nvus: 1\nduration: 1s\nrequests: [{path: /}]\nthresholds:\n  http_req_durtion: []\n' >"$f"
expect_bad "empty threshold list" "$f:6:21: thresholds: http_req_durtion: an empty list" "$APIGATE" load run "$f"

# every error of a file at once
printf 'base_url: nope\nvus: -1\nduration: 1s\nrequests: [{path: x}]\nbogus: 1\n' >"$f"
expect_bad "several errors" "$f:1:" "$APIGATE" load run "$f"
[ "$(wc -l <"$T/err")" -ge 4 ] || fail "expected every error of the file: $(cat "$T/err")"

# A base_url with a query: the request paths would be appended after it ("/api?k=1/users").
printf 'base_url: http://127.0.0.1:9/api?k=1\nvus: 1\nduration: 1s\nrequests: [{path: /users}]\n' >"$f"
expect_bad "base_url with a query" "$f:1:11: base_url: 'http://127.0.0.1:9/api?k=1' has a query" "$APIGATE" load run "$f"
printf 'base_url: http://127.0.0.1:9/api\nvus: 1\nduration: 1s\nrequests: [{path: /users}]\n' >"$f"
expect_bad "--base-url with a query" "--base-url 'http://127.0.0.1:9/?k=1': 'http://127.0.0.1:9/?k=1' has a query" "$APIGATE" load run "$f" --base-url 'http://127.0.0.1:9/?k=1'

# A bad rate or vus is reported once: not again as "the plan never starts anything", which its
# rejected value (left at 0) would otherwise make true.
printf 'base_url: http://127.0.0.1:9\nexecutor: arrival_rate\nrate: nan\nduration: 1s\nrequests: [{path: /}]\n' >"$f"
expect_bad "bad rate" "$f:3:7: rate: 'nan' is not a rate" "$APIGATE" load run "$f"
assert_eq "$(wc -l <"$T/err")" 1 "one error for a bad rate: $(cat "$T/err")"
printf 'base_url: http://127.0.0.1:9\nexecutor: arrival_rate\nrate: 0/s\nduration: 1s\nrequests: [{path: /}]\n' >"$f"
expect_bad "zero rate" "the plan never starts anything" "$APIGATE" load run "$f"

expect_bad "missing scenario" "/nonexistent.yaml" "$APIGATE" load run /nonexistent.yaml
expect_bad "run without file" "usage: apigate load run" "$APIGATE" load run

echo '{"not": "a report"}' >"$T/x.json"
expect_bad "compare non-report" "not an apigate load report" "$APIGATE" load compare "$T/x.json" "$T/x.json"
expect_bad "merge missing" "/nonexistent.json" "$APIGATE" load merge /nonexistent.json
expect_bad "compare /dev/zero" "/dev/zero: larger than" "$APIGATE" load compare /dev/zero "$T/x.json"
expect_bad "merge a directory" "$T: is a directory" "$APIGATE" load merge "$T" "$T/x.json"
expect_bad "compare arity" "usage: apigate load compare" "$APIGATE" load compare "$T/x.json"

# --help is not an error
"$APIGATE" load --help | grep -q "apigate load run SCENARIO.yaml" || fail "load --help"
"$APIGATE" load run --help | grep -q "Quick mode options" || fail "load run --help"
log "ok"
