#!/usr/bin/env bash
# Client-certificate verification per TLS listener (docs/tls.md): `client_ca` with
# `verify_client: required` (the default: no certificate, no handshake) and `optional` (a client
# without one is served; one it presents must chain to client_ca). The upstream learns the result
# from X-Client-Verify (SUCCESS / NONE), which a client cannot forge on such a listener; on a
# listener without client_ca the header is the client's and passes. Clients: curl --cert over
# HTTP/1.1 and HTTP/2 (ALPN), openssl s_client (the CA names the server asks for). `apigate check`
# refuses verify_client without client_ca at its file:line:col.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl openssl jq

C="$T/certs"
test_cert "$C" ca /CN=e2e-client-ca
test_cert "$C" server /CN=localhost DNS:localhost,IP:127.0.0.1 ca
test_cert "$C" client /CN=client DNS:client ca
test_cert "$C" stranger /CN=stranger

read -r mport rport oport pport aport <<<"$(free_ports 5)"
cat >"$T/mock.yaml" <<'EOF'
routes:
  - {method: ANY, path: '/echo/*', handler: echo}
EOF
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$rport" "$oport" "$pport" "$aport" <<YAML
listen:
  - {address: 127.0.0.1:$rport, tls: {cert: certs/server.pem, key: certs/server.key, client_ca: certs/ca.pem}}
  - {address: 127.0.0.1:$oport, tls: {cert: certs/server.pem, key: certs/server.key, client_ca: certs/ca.pem, verify_client: optional}}
  - {address: 127.0.0.1:$pport, tls: {cert: certs/server.pem, key: certs/server.key}}
admin: 127.0.0.1:$aport
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /echo/, upstream: api}
YAML
req() { # PORT [curl args...]: the X-Client-Verify the origin saw, or "refused"
    local port=$1
    shift
    local out
    out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" "$@" "https://localhost:$port/echo/v" 2>/dev/null) ||
        { echo refused; return 0; }
    jq -r '.headers["x-client-verify"] // "absent"' <<<"$out"
}
cert=(--cert "$C/client.pem" --key "$C/client.key")
stranger=(--cert "$C/stranger.pem" --key "$C/stranger.key")

log "verify_client: required (default): no certificate -> no handshake; a valid one -> SUCCESS"
assert_eq "$(req "$rport")" refused "required, no certificate"
assert_eq "$(req "$rport" "${cert[@]}")" SUCCESS "required, client certificate"
assert_eq "$(req "$rport" "${stranger[@]}")" refused "required, a certificate of another CA"

log "verify_client: optional: no certificate -> NONE, valid -> SUCCESS, other CA -> refused"
assert_eq "$(req "$oport")" NONE "optional, no certificate"
assert_eq "$(req "$oport" --http2)" NONE "optional, no certificate, HTTP/2"
assert_eq "$(req "$oport" "${cert[@]}")" SUCCESS "optional, client certificate"
assert_eq "$(req "$oport" --http2 "${cert[@]}")" SUCCESS "optional, client certificate, HTTP/2"
assert_eq "$(req "$oport" "${stranger[@]}")" refused "optional, a certificate of another CA"
assert_eq "$(req "$oport" -H 'X-Client-Verify: SUCCESS')" NONE "a forged X-Client-Verify is replaced"
assert_eq "$(req "$oport" --http2 -H 'x-client-verify: SUCCESS')" NONE "... over HTTP/2 too"

log "openssl s_client: the optional listener asks for certificates of client_ca"
out=$({ sleep 0.3; echo; } | timeout 10 openssl s_client -connect "127.0.0.1:$oport" \
    -servername localhost 2>&1 || true)
assert_contains "$out" "Acceptable client certificate CA names" "a CertificateRequest"
assert_contains "$out" "CN = e2e-client-ca" "naming client_ca"
out=$({ sleep 0.3; printf 'GET /echo/s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'; sleep 1; } |
    timeout 10 openssl s_client -connect "127.0.0.1:$oport" -servername localhost -quiet \
    -cert "$C/client.pem" -key "$C/client.key" 2>/dev/null || true)
assert_contains "$out" '"x-client-verify":"SUCCESS"' "s_client with -cert"

log "a listener without client_ca: no certificate asked, the client's header passes"
assert_eq "$(req "$pport")" absent "no client_ca: no X-Client-Verify added"
assert_eq "$(req "$pport" -H 'X-Client-Verify: whatever')" whatever "no client_ca: the client's own"

log "check: verify_client without client_ca is an error at its position"
cat >"$T/bad.yaml" <<YAML
listen:
  - {address: 127.0.0.1:$pport, tls: {cert: certs/server.pem, key: certs/server.key, verify_client: optional}}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - {match: /, upstream: api}
YAML
out=$("$APIGATE" check -c "$T/bad.yaml" 2>&1) && fail "check accepted verify_client without client_ca"
assert_contains "$out" "bad.yaml:2:" "the error names the line"
assert_contains "$out" "verify_client: without client_ca" "and says why"
log "ok"
