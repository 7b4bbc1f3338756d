#!/usr/bin/env bash
# Exit codes a CI job can trust: `apigate load` exits 1 when the run failed (no response at all, or
# more failed requests than --max-failed / max_failed: allows, 1% by default), 99 when a threshold
# failed (k6), 0 otherwise; an http_req_failed threshold replaces the default rule (k6 judges
# failures only by thresholds). `load compare --fail-on` exits 1 when a chosen metric got worse
# beyond its limit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq

cat >"$T/p.yaml" <<'YAML'
routes:
  - {method: GET, path: /ok, latency: 1ms}
  - {method: GET, path: /broken, status: 500}
  - {method: GET, path: /flaky, latency: 1ms, error_rate: 20%, error_status: 503}
  - {method: GET, path: /slow, latency: 20ms}
YAML
port=$(free_port)
start_mock mock "$port" --profile "$T/p.yaml"
dead=$(free_port)
base="http://127.0.0.1:$port"

run_rc() { # run_rc EXPECTED WHAT ARGS...: runs apigate load ARGS, checks its exit code
    local want=$1 what=$2
    shift 2
    local rc=0
    "$APIGATE" load "$@" >"$T/out" 2>"$T/err" || rc=$?
    assert_eq "$rc" "$want" "$what (stderr: $(tail -3 "$T/err"))"
}

log "a clean run exits 0"
run_rc 0 "all 200" -q -c 2 -d 1s "$base/ok"
log "every request refused: exit 1, with the reason"
run_rc 1 "unreachable target" -q -c 2 -d 1s "http://127.0.0.1:$dead/"
assert_contains "$(cat "$T/err")" "FAILED: 100.00% of the requests failed"
log "every answer a 500: exit 1"
run_rc 1 "all 500" -q -c 2 -d 1s "$base/broken"
log "20% failed: exit 1 by default (1%), 0 with --max-failed 30%, 1 with --max-failed 10%"
run_rc 1 "20% failed, default" -q -c 2 -d 1s "$base/flaky"
run_rc 0 "20% failed, --max-failed 30%" -q -c 2 -d 1s --max-failed 30% "$base/flaky"
run_rc 1 "20% failed, --max-failed 0.1" -q -c 2 -d 1s --max-failed 0.1 "$base/flaky"
run_rc 0 "all failed, --max-failed 100%" -q -c 2 -d 1s --max-failed 100% "$base/broken"
run_rc 2 "a bad --max-failed" -q -c 2 -d 1s --max-failed 150% "$base/ok"
assert_contains "$(cat "$T/err")" "--max-failed '150%': expected a rate"

log "k6: an http_req_failed threshold replaces the default rule (99 when it fails, 0 when it passes)"
run_rc 0 "threshold allows 100%" -q -c 2 -d 1s --threshold 'http_req_failed: rate<=1' "$base/broken"
run_rc 99 "threshold rate<0.5 on all 500" -q -c 2 -d 1s --threshold 'http_req_failed: rate<0.5' "$base/broken"
log "a failed threshold is 99 even when the failure rule also fails"
run_rc 99 "latency threshold + all failed" -q -c 2 -d 1s --threshold 'http_req_duration: p(95)<0.001' "$base/broken"

log "scenario files: max_failed:"
cat >"$T/s.yaml" <<YAML
base_url: $base
vus: 2
duration: 1s
max_failed: 30%
requests: [{path: /flaky}]
YAML
run_rc 0 "scenario max_failed 30%" run "$T/s.yaml" -q
run_rc 1 "--max-failed overrides the file" run "$T/s.yaml" -q --max-failed 5%
sed -i 's/max_failed: 30%/max_failed: lots/' "$T/s.yaml"
run_rc 2 "a bad max_failed" run "$T/s.yaml" -q
assert_contains "$(cat "$T/err")" "s.yaml:4:13: max_failed: 'lots' is not a rate"
log "abortOnFail (k6's threshold object): the run ends once it fails, exit 99"
cat >"$T/a.yaml" <<YAML
base_url: $base
vus: 4
duration: 20s
requests: [{path: /slow}]
thresholds:
  http_req_duration:
    - {threshold: 'p(95)<5', abortOnFail: true, delayAbortEval: 1s}
  http_reqs: ['count>0']
YAML
start=$SECONDS
run_rc 99 "abortOnFail threshold" run "$T/a.yaml" -q --json "$T/a.json"
[ $((SECONDS - start)) -le 8 ] || fail "an aborted 20 s run took $((SECONDS - start)) s"
assert_eq "$(jq -r '.aborted_by' "$T/a.json")" "http_req_duration: p(95)<5" "aborted_by"
assert_contains "$(cat "$T/out")" "ABORTED at"
assert_contains "$(jq -r '.verdict.text' "$T/a.json")" "ABORTED at"
sed -i 's/p(95)<5/p(95)<5000/' "$T/a.yaml"
sed -i 's/duration: 20s/duration: 2s/' "$T/a.yaml"
run_rc 0 "abortOnFail threshold that holds" run "$T/a.yaml" -q --json "$T/a2.json"
assert_eq "$(jq -r '.aborted_by' "$T/a2.json")" null "not aborted"
cat >"$T/a3.yaml" <<YAML
base_url: $base
vus: 1
duration: 1s
requests: [{path: /ok, checks: [{status: 200}]}]
thresholds:
  checks: [{threshold: 'rate>0.9', abortOnFail: true}]
  http_reqs: [{abortOnFail: true}]
YAML
run_rc 2 "abortOnFail on checks" run "$T/a3.yaml" --check
assert_contains "$(cat "$T/err")" "a3.yaml:6:24: thresholds: checks: abortOnFail is evaluated while the run goes"
assert_contains "$(cat "$T/err")" "a3.yaml:7:15: thresholds: http_reqs: the map needs 'threshold: EXPR'"
log "ok"
