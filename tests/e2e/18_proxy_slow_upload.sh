#!/usr/bin/env bash
# timeout.first_byte is the origin's time to answer, counted from the last request byte: an upload
# that takes longer than first_byte at the client's pace is answered, and an origin that then says
# nothing still gets its 504 after first_byte. (The deadline once started with the request head,
# so any upload slower than first_byte got a 504 in the middle of its body.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd curl jq

mport=$(free_port)
gport=$(free_port)
aport=$(free_port) # the default admin address (127.0.0.1:9901) belongs to one gateway
cat >"$T/mock.yaml" <<'YAML'
routes:
  - {method: ANY, path: '/echo/*', handler: echo}
  - {method: ANY, path: '/hang/*', hang: true}
YAML
start_mock mock "$mport" --profile "$T/mock.yaml"
start_gateway gw "$gport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 1}
upstreams:
  api: {servers: [127.0.0.1:$mport]}
routes:
  - match: /
    upstream: api
    timeout: {first_byte: 700ms, total: 20s}
YAML
G=http://127.0.0.1:$gport
head -c 120000 /dev/zero | tr '\0' 'a' >"$T/body.txt"

for framing in length chunked; do
    args=(--data-binary @"$T/body.txt" --limit-rate 60k)
    [ "$framing" = chunked ] && args+=(-H 'Transfer-Encoding: chunked')
    out=$(curl -s --max-time 15 -w '\n%{http_code} %{time_total}' "${args[@]}" "$G/echo/$framing")
    read -r code secs <<<"$(tail -n 1 <<<"$out")"
    assert_eq "$code" 200 "$framing upload at 60 KB/s (about 2 s, first_byte 700 ms)"
    assert_range "$secs" 1.2 15 "$framing upload took longer than first_byte"
    assert_eq "$(head -n 1 <<<"$out" | jq -r .body_len)" 120000 "$framing body forwarded whole"
done

log "a silent origin still times out first_byte after the last request byte"
out=$(curl -s -o /dev/null --max-time 15 -w '%{http_code} %{time_total}' --data-binary @"$T/body.txt" \
    --limit-rate 60k "$G/hang/x")
assert_eq "${out% *}" 504 "silent origin after a slow upload"
assert_range "${out#* }" 1.3 6 "504 comes first_byte (0.7 s) after the upload ends (at 0.7 s: cut mid-body)"
log "slow uploads are answered; first_byte counts from the last request byte"
