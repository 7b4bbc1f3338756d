#!/usr/bin/env bash
# https targets: against nginx with a self-signed certificate, the certificate is verified by
# default (every request fails as tls_error, with the reason), trusted with --cacert or a
# scenario's tls.ca_file, skipped with -k; responses over TLS are counted like plain ones.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd nginx openssl jq

test_cert "$T" cert /CN=localhost DNS:localhost,IP:127.0.0.1 "" -newkey rsa:2048 -nodes
port=$(free_port)
nginx_conf "$T/nginx" <<CONF
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $T/cert.pem;
    ssl_certificate_key $T/cert.key;
    location / { return 200 "secure"; }
  }
CONF
start_nginx nginx "$T/nginx" "$port"
url="https://127.0.0.1:$port/"

log "verification on by default: an untrusted certificate fails every request"
rc=0
"$APIGATE" load -q -c 2 -d 500ms --json "$T/v.json" "$url" >"$T/v.out" 2>"$T/v.err" || rc=$?
assert_eq "$rc" 1 "exit code (every request failed)"
assert_eq "$(jq '.totals.failed == .totals.requests and .totals.requests > 0' "$T/v.json")" true "all failed"
[ "$(jq '.errors.tls_error' "$T/v.json")" -gt 0 ] || fail "no tls_error: $(cat "$T/v.out")"
assert_contains "$(cat "$T/v.out")" "certificate verify failed"

log "--cacert trusts it"
"$APIGATE" load -q -c 4 -d 1s --cacert "$T/cert.pem" --json "$T/c.json" "$url" >/dev/null
assert_eq "$(jq '.totals.failed' "$T/c.json")" 0 "failures with --cacert"
reqs=$(jq '.totals.requests' "$T/c.json")
[ "$reqs" -gt 200 ] || fail "too few requests over TLS: $reqs"
assert_eq "$(jq '.status["200"]' "$T/c.json")" "$reqs" "200s over TLS"

log "-k skips verification"
"$APIGATE" load -q -k -c 2 -d 500ms --json "$T/k.json" "https://localhost:$port/" >/dev/null
assert_eq "$(jq '.totals.failed' "$T/k.json")" 0 "failures with -k"

log "scenario tls.ca_file, and a check on the body"
cat >"$T/s.yaml" <<YAML
base_url: $url
vus: 2
duration: 1s
tls: {ca_file: $T/cert.pem}
requests:
  - path: /
    checks: [{status: 200}, {body_contains: secure}]
thresholds:
  checks: ['rate==1']
YAML
rc=0
"$APIGATE" load run "$T/s.yaml" -q >"$T/s.out" || rc=$?
assert_eq "$rc" 0 "scenario over TLS: $(tail -5 "$T/s.out")"
log "ok"
