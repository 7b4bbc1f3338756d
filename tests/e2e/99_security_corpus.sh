#!/usr/bin/env bash
# The request-side security corpus (issue 17): tests/security/requests/*.tsv (request smuggling:
# CL.TE, TE.CL, TE obfuscation, Content-Length forms, bare LF/CR, obs-fold, chunk extensions and
# sizes, request lines and path tricks, each with its expected verdict) and
# tests/security/poisoning/*.tsv (unkeyed headers on a cached route), run by
# tests/security/run_requests.py against a real gateway. Each case is sent whole and in pieces of
# 1-5 bytes; an origin in the runner records the exact bytes it receives and parses them strictly,
# and a check request follows each case. Add a case by adding a line to a family's file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3

read -r oport gport aport <<<"$(free_ports 3)"
start_gateway gw "$gport" "$aport" <<YAML
listen: 127.0.0.1:$gport
admin: 127.0.0.1:$aport
workers: {threads: 2}
server: {client_header_timeout: 2s, client_body_timeout: 2s}
upstreams:
  o: {servers: [127.0.0.1:$oport], pool: {max_idle: 4}}
routes:
  - match: /api/
    upstream: o
  - match: /api/c/
    upstream: o
    cache: {ttl: 1m}
YAML
mkdir -p "$T/raw"
if ! python3 "$AG_SRC/tests/security/run_requests.py" "$gport" "$oport" "$T/raw" \
    "$AG_SRC"/tests/security/requests/*.tsv "$AG_SRC"/tests/security/poisoning/*.tsv \
    >"$T/corpus.out" 2>&1; then
    grep -A4 '^FAIL' "$T/corpus.out" | head -60 >&2
    fail "$(tail -1 "$T/corpus.out"); raw bytes in $T/raw"
fi
grep '(safe)' "$T/corpus.out" | sed 's/^ok   /safe case: /' >&2 # what the gateway chose
log "$(tail -1 "$T/corpus.out")"
log "ok"
