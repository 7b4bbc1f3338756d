#!/usr/bin/env bash
# Regression: a request sent on a pooled keep-alive connection that the origin closes without
# answering is retried on a fresh connection and answered. The whole head had already been written
# into the dead socket; the retry must send it again (it once waited, silently, for the 30 s
# first-byte timeout because the request was still marked as sent).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq python3

oport=$(free_port)
gport=$(free_port)
aport=$(free_port)

# Origin: answers the first request of every connection (keep-alive), then reads the next request
# and closes without a byte of answer, as a server whose keep-alive timer fired would.
start_tcp_server origin "$oport" <<'PY'
def serve(c):
    try:
        if read_head(c)[0] is not None:
            body = b'{"ok":true}'
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            read_head(c)  # the second request arrives ...
    finally:
        c.close()  # ... and is dropped unanswered
PY
start_gateway gw "$gport" <<EOF2
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  o:
    servers: [127.0.0.1:$oport]
routes:
  - match: /
    upstream: o
    timeout: {first_byte: 20s}
EOF2

for i in 1 2 3 4 5; do
    start=$SECONDS
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$gport/r$i" || echo timeout)
    assert_eq "$code" 200 "request $i answered through a retry on a fresh connection"
    [ $((SECONDS - start)) -lt 5 ] || fail "request $i took $((SECONDS - start)) s"
done
log "5 requests, each retried after the origin dropped the reused connection: all 200 at once"
