#!/usr/bin/env bash
# TLS termination on `listen` entries with real clients. Certificates are made here by the
# openssl CLI (an ECDSA CA; ECDSA and RSA leaves for localhost/a.test, an ECDSA leaf for b.test,
# client certificates) and named by paths relative to the config file. Checks: curl over HTTPS
# (MISS then HIT, per-user entries kept apart, X-Forwarded-Proto https, an entry apart from the
# plain listener's that the same purge removes), openssl s_client (SNI picks the certificate, the
# client's signature algorithms pick ECDSA or RSA, ALPN http/1.1, TLS 1.2 and 1.3, resumption
# with -sess_out/-sess_in says "Reused"), a plain HTTP request on the TLS port (400, logged once
# for a burst), malformed records and a stalled handshake (closed, the gateway keeps serving),
# client certificates required and refused, and a SIGHUP with a new certificate while a keep-alive
# TLS connection opened before it stays usable.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl openssl python3

C="$T/certs"
test_cert "$C" ca /CN=e2e-ca
test_cert "$C" a /CN=a.test DNS:a.test,DNS:localhost,IP:127.0.0.1 ca
test_cert "$C" rsa /CN=a.test DNS:a.test,DNS:localhost,IP:127.0.0.1 ca -newkey rsa:2048 -nodes
test_cert "$C" b /CN=b.test DNS:b.test ca
test_cert "$C" new /CN=renewed.test DNS:a.test,DNS:localhost,IP:127.0.0.1 ca
test_cert "$C" client /CN=client DNS:client ca
test_cert "$C" stranger /CN=stranger

read -r mport hport sport mtport aport wport <<<"$(free_ports 6)"
start_mock mock "$mport"
head -c 3145728 /dev/urandom >"$T/big.bin"
mkdir -p "$T/www" && cp "$T/big.bin" "$T/www/big.bin"
start_bg www python3 -m http.server "$wport" --bind 127.0.0.1 --directory "$T/www"
wait_port "$wport"
start_gateway gw "$hport" "$sport" "$mtport" "$aport" <<YAML
listen:
  - 127.0.0.1:$hport
  - address: 127.0.0.1:$sport
    tls:
      cert: certs/a.pem
      key: certs/a.key
      certs: [{cert: certs/rsa.pem, key: certs/rsa.key}, {cert: certs/b.pem, key: certs/b.key}]
  - {address: 127.0.0.1:$mtport, tls: {cert: certs/a.pem, key: certs/a.key, client_ca: certs/ca.pem}}
admin: 127.0.0.1:$aport
workers: {threads: 2, drain_timeout: 10s}
server: {client_header_timeout: 2s}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
  www: {servers: [127.0.0.1:$wport]}
routes:
  - {match: /big.bin, upstream: www}
  - match: /api/auth/me
    upstream: api
    cache: {ttl: 5m, override: true, vary: [Authorization]}
  - match: /echo
    upstream: api
  - match: /api/
    upstream: api
    cache: {ttl: 5m, override: true}
YAML
U="https://localhost:$sport"
metric() { curl -s "http://127.0.0.1:$aport/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

log "curl over HTTPS: MISS then HIT; X-Forwarded-Proto: https, and its own entry"
xc() { curl -sS --cacert "$C/ca.pem" -o /dev/null -w '%{http_code} %header{x-cache}' "$@"; }
assert_eq "$(xc "$U/api/catalog/products")" "200 MISS" "first HTTPS request"
assert_eq "$(xc "$U/api/catalog/products")" "200 HIT" "second HTTPS request"
# The origin is told the scheme (X-Forwarded-Proto) and may build links with it: the plain
# listener's answer for the same Host and path is another entry, and a purge of the path reaches
# both.
plain() { curl -s -o /dev/null -w '%{http_code} %header{x-cache}' -H "Host: localhost:$sport" \
    "http://127.0.0.1:$hport/api/catalog/products"; }
assert_eq "$(plain)" "200 MISS" "plain listener: its own entry"
assert_eq "$(plain)" "200 HIT" "plain listener, second request"
curl -sf -X POST "http://127.0.0.1:$aport/cache/purge?path=/api/catalog/products" >/dev/null ||
    fail "purge"
assert_eq "$(plain)" "200 MISS" "plain entry purged"
assert_eq "$(xc "$U/api/catalog/products")" "200 MISS" "https entry purged by the same purge"
proto() { python3 -c 'import json,sys; print(json.load(sys.stdin)["headers"]["x-forwarded-proto"])'; }
assert_eq "$(curl -sS --cacert "$C/ca.pem" "$U/echo" | proto)" https "X-Forwarded-Proto over TLS"
assert_eq "$(curl -sS "http://127.0.0.1:$hport/echo" | proto)" http "X-Forwarded-Proto in plain"
assert_eq "$(curl -sS --http1.1 --cacert "$C/ca.pem" -o /dev/null -w '%{http_version} %{ssl_verify_result}' \
    "$U/api/catalog/products")" "1.1 0" "verified, HTTP/1.1"
assert_eq "$(curl -sS --cacert "$C/ca.pem" -o /dev/null -w '%{http_version} %{ssl_verify_result}' \
    "$U/api/catalog/products")" "2 0" "verified, HTTP/2 by ALPN (curl's default)"

log "per-user entries over TLS, keep-alive, two users at once"
python3 - "$sport" "$C/ca.pem" >"$T/users.out" <<'PY' || fail "per-user isolation: $(cat "$T/users.out")"
import http.client, json, ssl, sys, threading
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
errors, hits = [], [0]
lock = threading.Lock()
def client(user):
    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    for i in range(30):
        c.request("GET", "/api/auth/me", headers={"Authorization": "Bearer " + user})
        r = c.getresponse()
        body = r.read()
        with lock:
            if r.status != 200 or json.loads(body)["user"] != user:
                errors.append("%s got %d %r" % (user, r.status, body[:80]))
            hits[0] += r.getheader("X-Cache") == "HIT"
    c.close()
ts = [threading.Thread(target=client, args=(u,)) for u in ["alice", "bob"] * 4]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps({"errors": errors[:5], "hits": hits[0]}))
sys.exit(1 if errors or hits[0] < 200 else 0)
PY

log "large bodies both ways over TLS: a 3 MB download (many records, partial writes), a 1 MB upload"
head -c 1048576 "$T/big.bin" >"$T/up.bin" # the mock's request body limit is a little over 1 MB
for v in --http1.1 --http2; do
    rm -f "$T/big.got"
    curl -sS $v --cacert "$C/ca.pem" --limit-rate 2M -o "$T/big.got" "$U/big.bin" || fail "download $v"
    cmp -s "$T/big.bin" "$T/big.got" || fail "3 MB download differs ($v)"
    n=$(curl -sS $v --cacert "$C/ca.pem" --data-binary @"$T/up.bin" -H 'Content-Type: application/octet-stream' \
        "$U/echo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["body_len"])') || fail "upload $v"
    assert_eq "$n" 1048576 "uploaded bytes seen by the origin ($v)"
done

log "openssl s_client: SNI, key types, ALPN, versions"
# stdin stays open a moment: TLS 1.3 tickets arrive after the handshake
sc() { { sleep 0.3; echo; } | timeout 10 openssl s_client -connect "127.0.0.1:$sport" "$@" 2>&1 || true; }
out=$(sc -servername b.test)
assert_contains "$out" "subject=CN = b.test" "SNI b.test"
out=$(sc -servername a.test -alpn h2,http/1.1)
assert_contains "$out" "subject=CN = a.test" "SNI a.test"
assert_contains "$out" "ALPN protocol: h2" "ALPN prefers h2 (docs/http2.md)"
out=$(sc -servername a.test -alpn http/1.1)
assert_contains "$out" "ALPN protocol: http/1.1" "ALPN http/1.1"
assert_contains "$out" "Server public key is 256 bit" "ECDSA by default"
out=$(sc -servername unknown.test)
assert_contains "$out" "subject=CN = a.test" "no match: the default certificate"
out=$(sc -servername a.test -sigalgs rsa_pss_rsae_sha256:rsa_pkcs1_sha256)
assert_contains "$out" "Server public key is 2048 bit" "RSA for an RSA-only client"
out=$(sc -servername a.test -alpn spdy/3)
assert_contains "$out" "no application protocol" "ALPN with no protocol the gateway speaks refused"
for v in tls1_2 tls1_3; do
    out=$(sc -$v -sess_out "$T/$v.sess")
    assert_contains "$out" "New, TLSv1." "$v full handshake"
    out=$(sc -$v -sess_in "$T/$v.sess")
    assert_contains "$out" "Reused, TLSv1." "$v resumption"
done
[ "$(metric 'apigate_tls_handshakes_total{result="resumed"}')" -ge 2 ] ||
    fail "resumptions not counted: $(curl -s "http://127.0.0.1:$aport/metrics" | grep tls_hand)"

log "plain HTTP on the TLS port: 400, logged once for a burst"
for i in 1 2 3 4 5; do
    out=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$sport/api/catalog/products")
    assert_contains "$out" "speaks HTTPS" "plain answer $i"
    assert_contains "$out" " 400" "plain status $i"
done
assert_range "$(grep -c 'plain HTTP request on a TLS listener' "$T/gw.log")" 1 2 "log lines for 5 (one a second)"
assert_eq "$(metric 'apigate_tls_handshakes_total{result="plain_http"}')" 5 "counted"

log "malformed records and a stalled handshake: closed, nothing else hurt"
python3 - "$sport" <<'PY' || fail "malformed input"
import os, socket, sys, time
port = int(sys.argv[1])
def closed_after(data, wait):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    s.sendall(data)
    try:
        while s.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
cases = {
    "bad record": b"\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff",
    "huge record": b"\x16\x03\x01\xff\xff" + os.urandom(64),
    "random": os.urandom(300),
    "alert": b"\x15\x03\x03\x00\x02\x02\x28",
}
for name, data in cases.items():
    if not closed_after(data, 5):
        sys.exit("%s: not closed" % name)
t0 = time.time()
# half a ClientHello, then silence: closed by the header timeout (2s), never held open
if not closed_after(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 8):
    sys.exit("stalled handshake: not closed")
if time.time() - t0 > 6:
    sys.exit("stalled handshake closed after %.1fs" % (time.time() - t0))
PY
assert_eq "$(xc "$U/api/catalog/products")" "200 HIT" "served after bad input"
[ "$(metric 'apigate_tls_handshakes_total{result="failed"}')" -ge 4 ] || fail "failures not counted"

log "client certificates: required, refused, accepted"
M="https://localhost:$mtport/api/catalog/products"
curl -s --cacert "$C/ca.pem" -o /dev/null "$M" && fail "no client certificate: accepted"
curl -s --cacert "$C/ca.pem" --cert "$C/stranger.pem" --key "$C/stranger.key" -o /dev/null "$M" &&
    fail "a certificate from another CA: accepted"
assert_eq "$(curl -sS --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key" \
    -o /dev/null -w '%{http_code}' "$M")" 200 "client certificate from client_ca"

log "SIGHUP with a new certificate: a keep-alive connection stays usable, new ones see it"
python3 - "$sport" "$C/ca.pem" "$T" "$(cat "$T/gw.pid")" "$C" <<'PY' || fail "reload: $(cat "$T/reload.err" 2>/dev/null)"
import http.client, os, shutil, signal, ssl, sys, time
port, ca, tdir, pid, cdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
err = open(os.path.join(tdir, "reload.err"), "w")
def die(msg):
    err.write(msg)
    err.close()
    sys.exit(1)
ctx = ssl.create_default_context(cafile=ca)
def cn(sock):
    return dict(x[0] for x in sock.getpeercert()["subject"])["commonName"]
old = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
old.request("GET", "/api/catalog/products")
r = old.getresponse(); r.read()
if r.status != 200 or cn(old.sock) != "a.test":
    die("before: %d %s" % (r.status, cn(old.sock)))
log = os.path.join(tdir, "gw.log")
ready0 = open(log).read().count("ready in")
for ext in ("pem", "key"):
    shutil.copy(os.path.join(cdir, "new." + ext), os.path.join(cdir, "a." + ext + ".tmp"))
    os.rename(os.path.join(cdir, "a." + ext + ".tmp"), os.path.join(cdir, "a." + ext))
os.kill(pid, signal.SIGHUP)
deadline = time.time() + 15
while open(log).read().count("ready in") == ready0:
    if time.time() > deadline:
        die("no new worker after SIGHUP")
    time.sleep(0.1)
old.request("GET", "/api/catalog/products")  # the connection from before the reload
r = old.getresponse(); r.read()
if r.status != 200:
    die("old connection after reload: %d" % r.status)
new = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
new.request("GET", "/api/catalog/products")
r = new.getresponse(); r.read()
if r.status != 200 or cn(new.sock) != "renewed.test":
    die("new connection: %d %s" % (r.status, cn(new.sock)))
PY
log "all TLS termination checks passed"
