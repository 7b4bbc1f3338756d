#!/usr/bin/env bash
# A TLS upstream that writes small records (nginx ssl_buffer_size 1k; Go, Node and Python servers
# write one record per write call). A TLS read returns one record, so a read shorter than the room
# says nothing of the socket: the proxy must read on until the transport says IO_AGAIN (or can
# tell its read(2) was short), or the records already in the socket wait for an edge that never
# comes and the response stalls until the timeout. Bodies of 3 MB and 50 KB, fetched several times
# on pooled connections, must arrive whole and well within the timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl nginx openssl cmp

nport=$(free_port)
gport=$(free_port)
aport=$(free_port)

test_cert "$T" srv /CN=localhost DNS:localhost,IP:127.0.0.1

mkdir -p "$T/www"
head -c 3000000 /dev/urandom >"$T/www/big.bin"
head -c 50000 /dev/urandom >"$T/www/mid.bin"
nginx_conf "$T/nginx" <<EOF
    server {
        listen 127.0.0.1:$nport ssl;
        ssl_certificate $T/srv.pem;
        ssl_certificate_key $T/srv.key;
        ssl_buffer_size 1k;
        root $T/www;
    }
EOF
start_nginx nginx "$T/nginx" "$nport"

start_gateway gw "$gport" "$aport" <<EOF
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  small:
    servers: [https://localhost:$nport]
    tls: {ca_file: $T/srv.pem}
    pool: {max_connections: 2, max_idle: 2}
routes:
  - match: /
    upstream: small
EOF

for i in 1 2 3; do
    for f in big.bin mid.bin; do
        out=$(curl -s -o "$T/got" -m 15 -w '%{http_code} %{size_download} %{time_total}' \
            "http://127.0.0.1:$gport/$f") || true
        log "$f #$i: $out"
        read -r code size secs <<<"$out"
        assert_eq "$code" 200 "$f #$i status"
        cmp -s "$T/got" "$T/www/$f" || fail "$f #$i: body differs ($size of $(stat -c %s "$T/www/$f") bytes)"
        # a stall lasts until a timeout (seconds); a whole body takes milliseconds
        awk -v s="$secs" 'BEGIN { exit !(s < 4) }' || fail "$f #$i took ${secs}s: a stall"
    done
done
log "ok"
