#!/usr/bin/env bash
# deploy/prometheus/alerts.yml: `promtool check rules` accepts it, and `promtool test rules` with
# deploy/prometheus/alerts_test.yml proves each alert (HighResponseTime, HighErrorRate,
# LowCacheHitRate, UpstreamPoolSaturated, UpstreamPoolQueueErrors, CircuitBreakerOpen,
# WorkerRestarts, FileDescriptorsNearLimit) fires on synthetic series and stays quiet before its `for` and when healthy.
# A copy with a loosened threshold must fail the same unit tests (the tests can fail).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd promtool

R="$AG_SRC/deploy/prometheus"
log "promtool check rules"
promtool check rules "$R/alerts.yml" >"$T/check.txt" 2>&1 || fail "check rules: $(cat "$T/check.txt")"
assert_contains "$(cat "$T/check.txt")" "SUCCESS: 8 rules found" "rule count"
for a in HighResponseTime HighErrorRate LowCacheHitRate UpstreamPoolSaturated UpstreamPoolQueueErrors \
    CircuitBreakerOpen WorkerRestarts FileDescriptorsNearLimit; do
    grep -q "alert: $a\$" "$R/alerts.yml" || fail "alert $a missing"
    grep -q "alertname: $a\$" "$R/alerts_test.yml" || fail "alert $a has no unit test"
done

log "promtool test rules"
(cd "$R" && promtool test rules alerts_test.yml) >"$T/test.txt" 2>&1 || fail "test rules: $(cat "$T/test.txt")"

log "the unit tests catch a wrong threshold or a missing for"
mkdir -p "$T/mut"
cp "$R/alerts_test.yml" "$T/mut/"
sed 's/) > 0.5$/) > 5/' "$R/alerts.yml" >"$T/mut/alerts.yml"
! cmp -s "$R/alerts.yml" "$T/mut/alerts.yml" || fail "mutation did not apply"
if (cd "$T/mut" && promtool test rules alerts_test.yml) >"$T/mut.txt" 2>&1; then
    fail "p95 threshold 5 s passed the tests"
fi
assert_contains "$(cat "$T/mut.txt")" "HighResponseTime" "failure names the alert"
awk '/alert: HighErrorRate/ { h = 1 } h && /for: 1m/ { sub(/for: 1m/, "for: 0m"); h = 0 } { print }' \
    "$R/alerts.yml" >"$T/mut/alerts.yml"
if (cd "$T/mut" && promtool test rules alerts_test.yml) >"$T/mut.txt" 2>&1; then
    fail "HighErrorRate without its for passed the tests"
fi
log "alert rules ok"
