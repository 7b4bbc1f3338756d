#!/usr/bin/env bash
# TLS to an upstream: nginx with a certificate signed by a CA made here with openssl. With
# verification on and tls.ca_file set, requests pass and the pool keeps the TLS connections alive
# (few handshakes for many requests, later ones resumed); with the wrong CA every request fails
# with 502, the error is counted as reason="tls_verify" and the log says why.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl nginx openssl promtool

nport=$(free_port)
gport=$(free_port)
aport=$(free_port)

log "certificates: a CA, a server certificate for localhost/127.0.0.1, and an unrelated CA"
test_cert "$T" ca /CN=apigate-e2e-ca
test_cert "$T" other /CN=some-other-ca
test_cert "$T" srv /CN=localhost DNS:localhost,IP:127.0.0.1 ca

nginx_conf "$T/nginx" <<EOF
    keepalive_requests 10000;
    server {
        listen 127.0.0.1:$nport ssl;
        ssl_certificate $T/srv.pem;
        ssl_certificate_key $T/srv.key;
        location /api/ { default_type application/json; return 200 '{"tls":"ok"}'; }
        location / { return 200 'ok'; }
    }
EOF
start_nginx nginx "$T/nginx" "$nport"
curl -s --cacert "$T/ca.pem" "https://localhost:$nport/api/x" >/dev/null ||
    fail "nginx does not serve TLS with the test CA"

start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  good:
    servers: [https://localhost:$nport]
    tls: {ca_file: $T/ca.pem}
    pool: {max_connections: 4, max_idle: 4, idle_timeout: 60s}
  bad:
    servers: [https://localhost:$nport]
    tls: {ca_file: $T/other.pem}
  short:
    servers: [https://127.0.0.1:$nport]
    tls: {ca_file: $T/ca.pem}
    pool: {idle_timeout: 150ms}
routes:
  - match: /api/
    upstream: good
  - match: /bad/
    upstream: bad
  - match: /short/
    upstream: short
EOF
G=http://127.0.0.1:$gport

log "verified TLS upstream: 40 requests"
for i in $(seq 1 40); do
    assert_eq "$(http_status "$G/api/item/$i")" 200 "request $i through TLS"
done
assert_eq "$(http_body "$G/api/x")" '{"tls":"ok"}' "body from the TLS upstream"

metrics=$(curl -s "http://127.0.0.1:$aport/metrics")
mval() { # mval SERIES-PREFIX: value of the first line starting with it (0 when absent)
    awk -v p="$1" 'index($0, p) == 1 { print $NF; found = 1; exit } END { if (!found) print 0 }' <<<"$metrics"
}
connects=$(mval "apigate_upstream_connects_total{upstream=\"good\"")
full=$(mval 'apigate_upstream_tls_handshakes_total{upstream="good",resumed="false"}')
log "good: connects=$connects full handshakes=$full for 41 requests"
assert_range "$connects" 1 4 "TLS connections opened for 41 sequential requests (keep-alive pool)"
assert_range "$full" 1 1 "full TLS handshakes"

log "a new connection after the idle one closed resumes the TLS session"
assert_eq "$(http_status "$G/short/a")" 200 "first request on the short-idle upstream"
sleep 0.4 # > idle_timeout: the pooled connection is closed, the next request opens a new one
assert_eq "$(http_status "$G/short/b")" 200 "second request on the short-idle upstream"
metrics=$(curl -s "http://127.0.0.1:$aport/metrics")
sconn=$(mval "apigate_upstream_connects_total{upstream=\"short\"")
sres=$(mval 'apigate_upstream_tls_handshakes_total{upstream="short",resumed="true"}')
log "short: connects=$sconn resumed=$sres"
assert_eq "$sconn" 2 "connections after the idle timeout"
assert_eq "$sres" 1 "resumed handshakes"
assert_eq "$(mval 'apigate_pool_closed_total{upstream="short",reason="idle_timeout"}')" 1 "idle timeout close counted"

log "wrong CA: 502, counted as tls_verify, logged with the reason"
assert_eq "$(http_status "$G/bad/x")" 502 "upstream with an untrusted certificate"
assert_eq "$(http_status "$G/bad/y")" 502 "again"
metrics=$(curl -s "http://127.0.0.1:$aport/metrics")
verr=$(mval "apigate_upstream_connect_errors_total{upstream=\"bad\",server=\"https://localhost:$nport\",reason=\"tls_verify\"}")
assert_range "$verr" 2 2 "connect errors with reason tls_verify"
assert_eq "$(mval "apigate_upstream_connect_errors_total{upstream=\"good\",server=\"https://localhost:$nport\",reason=\"tls_verify\"}")" 0 \
    "no verify errors on the good upstream"
grep -q "certificate verify failed" "$T/gw.log" || fail "log does not say the certificate failed verification"
grep -q "tls.ca_file" "$T/gw.log" || fail "log does not point at tls.ca_file"

log "the upstream and pool families of the exposition pass promtool"
# Only the families this feature owns (the gateway's own are checked by the admin tests).
curl -s "http://127.0.0.1:$aport/metrics" |
    grep -E '^(# (HELP|TYPE) )?apigate_(upstream|pool)_' >"$T/metrics.txt"
[ -s "$T/metrics.txt" ] || fail "no upstream/pool metrics in /metrics"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.log" 2>&1 ||
    fail "promtool check metrics: $(head -20 "$T/promtool.log")"
log "ok"
