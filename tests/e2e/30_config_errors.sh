#!/usr/bin/env bash
# `apigate check` / `apigate serve` on bad configs: each mistake is reported as
# file:line:col: key: problem, every error of a file in one run, exit 2; the shipped examples pass.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -x "$APIGATE" ] || fail "no binary at $APIGATE"

# bad NAME LINE NEEDLE: checks $T/NAME.yaml (written by the caller) and expects exit 2 and a
# message "NAME.yaml:LINE:COL: ...NEEDLE...".
bad() {
    local name=$1 line=$2 needle=$3 out rc=0
    out=$("$APIGATE" check -c "$T/$name.yaml" 2>&1) || rc=$?
    assert_eq "$rc" 2 "exit code of check on $name"
    grep -qE "^$T/$name\.yaml:$line:[0-9]+: " <<<"$out" ||
        fail "$name: no error at line $line; got: $out"
    grep -E "^$T/$name\.yaml:$line:[0-9]+: " <<<"$out" | grep -qF -- "$needle" ||
        fail "$name: the line $line error does not say '$needle'; got: $out"
    log "ok: $name -> $(grep -E "^$T/$name\.yaml:$line:" <<<"$out" | head -n1 | sed "s|^$T/||")"
}

UPS='upstreams:
  api: {servers: [127.0.0.1:9000]}'
RT='routes:
  - {match: /, upstream: api}'

printf 'lisen: 127.0.0.1:8080\n%s\n%s\n' "$UPS" "$RT" >"$T/unknown_key.yaml"
bad unknown_key 1 "lisen: unknown key"

printf 'http2:\n  max_concurrent_streams: 0\n%s\n%s\n' "$UPS" "$RT" >"$T/h2_streams.yaml"
bad h2_streams 2 "http2.max_concurrent_streams"

printf 'workers: {drain_timeout: 10 seconds}\n%s\n%s\n' "$UPS" "$RT" >"$T/bad_duration.yaml"
bad bad_duration 1 "workers.drain_timeout"

printf '%s\nroutes:\n  - match: /api/\n    upstream: users\n' "$UPS" >"$T/unknown_upstream.yaml"
bad unknown_upstream 5 "unknown upstream 'users'; defined: api"

printf 'listen: 127.0.0.1:99999\n%s\n%s\n' "$UPS" "$RT" >"$T/bad_listen.yaml"
bad bad_listen 1 "listen: bad address"

printf 'admin: localhost\n%s\n%s\n' "$UPS" "$RT" >"$T/bad_admin.yaml"
bad bad_admin 1 "admin: bad address"

printf 'upstreams:\n  api:\n    servers: [127.0.0.1:9000]\n    pool: {max_connections: -1}\n%s\n' \
    "$RT" >"$T/negative_pool.yaml"
bad negative_pool 4 "upstreams.api.pool.max_connections"

printf 'upstreams:\n  api:\n    servers: [127.0.0.1:9000]\n    balance: random\n%s\n' \
    "$RT" >"$T/bad_enum.yaml"
bad bad_enum 4 "round_robin, least_request, ewma"

printf 'listen: [127.0.0.1:8080\n%s\n%s\n' "$UPS" "$RT" >"$T/yaml_syntax.yaml"
bad yaml_syntax 2 ""

printf 'upstreams:\n  api:\n    servers: []\n%s\n' "$RT" >"$T/empty_servers.yaml"
bad empty_servers 3 "upstreams.api.servers: empty"

printf 'upstreams:\n  api: {servers: ["ftp://10.0.0.1:21"]}\n%s\n' "$RT" >"$T/bad_scheme.yaml"
bad bad_scheme 2 "unsupported scheme"

printf '%s\nroutes:\n  - {upstream: api}\n' "$UPS" >"$T/missing_match.yaml"
bad missing_match 4 "routes[0].match: missing"

# cache.redis as a cluster or sentinels map (issue 15): numeric addresses, one of the two forms
printf 'cache:\n  redis: {cluster: [localhost:7000]}\n%s\n%s\n' "$UPS" "$RT" >"$T/redis_cluster_name.yaml"
bad redis_cluster_name 2 "cache.redis.cluster: 'localhost' is not a numeric address"
printf 'cache:\n  redis: {sentinels: [127.0.0.1:26379]}\n%s\n%s\n' "$UPS" "$RT" >"$T/redis_no_master.yaml"
bad redis_no_master 2 "cache.redis.master: the name the sentinels monitor is required"
printf 'cache:\n  redis: {cluster: [127.0.0.1:7000], sentinels: [127.0.0.1:1]}\n%s\n%s\n' "$UPS" \
    "$RT" >"$T/redis_both.yaml"
bad redis_both 2 "cluster and sentinels together"
printf 'cache:\n  redis: {cluster: [127.0.0.1:7000], seeds: 1}\n%s\n%s\n' "$UPS" "$RT" >"$T/redis_key.yaml"
bad redis_key 2 "cache.redis.seeds: unknown key"
printf 'cache:\n  redis: "redis+cluster://redis.local:7000"\n%s\n%s\n' "$UPS" "$RT" >"$T/redis_url_name.yaml"
bad redis_url_name 2 "'redis.local' is not a numeric address"
printf 'cache:\n  redis: {cluster: [127.0.0.1:7000]}\n  redis_prefix: "{x}:"\n%s\n%s\n' "$UPS" \
    "$RT" >"$T/redis_brace.yaml"
bad redis_brace 3 "cache.redis_prefix: '{x}:' holds a brace"
printf '%s\nroutes:\n  - match: /api/\n    upstream: api\n    cache: {invalidate_tags: ["user-{x}"]}\n' \
    "$UPS" >"$T/bad_inv_tag.yaml"
bad bad_inv_tag 6 "invalidate_tags: 'user-{x}' is not a tag"

printf '%s\nroutes:\n  - {match: /, upstream: api, breaker: {error_threshold: 150%%}}\n' \
    "$UPS" >"$T/bad_percent.yaml"
bad bad_percent 4 "error_threshold"

printf 'logging: {level: verbose}\n%s\n%s\n' "$UPS" "$RT" >"$T/bad_level.yaml"
bad bad_level 1 "debug, info, warn, error"

printf 'workers: {threads: 1}\nworkers: {threads: 2}\n%s\n%s\n' "$UPS" "$RT" >"$T/dup_key.yaml"
bad dup_key 2 "workers"

# An access log the worker could not open: it used to pass check, and serve ran without any log.
printf 'logging: {access_log: %s}\n%s\n%s\n' "$T/no-such-dir/access.log" "$UPS" "$RT" >"$T/log_dir.yaml"
bad log_dir 1 "logging.access_log: cannot write '$T/no-such-dir/access.log': directory $T/no-such-dir"
printf 'logging: {access_log: %s}\n%s\n%s\n' "$T" "$UPS" "$RT" >"$T/log_is_dir.yaml"
bad log_is_dir 1 "it is a directory"
rc=0
out=$(timeout 10 "$APIGATE" serve -c "$T/log_dir.yaml" --listen "127.0.0.1:$(free_port)" --admin off 2>&1) || rc=$?
assert_eq "$rc" 2 "serve with an access log it cannot write"
printf 'logging: {access_log: %s}\n%s\n%s\n' "$T/access.log" "$UPS" "$RT" >"$T/log_ok.yaml"
"$APIGATE" check -q -c "$T/log_ok.yaml" >/dev/null || fail "an access log in a writable directory"
[ ! -e "$T/access.log" ] || fail "check created the access log"

# A TLS file that is readable but no PEM: check used to pass it, and the first worker then stopped.
echo "not a certificate" >"$T/notpem.crt"
printf 'upstreams:\n  api:\n    servers: ["https://127.0.0.1:9443"]\n    tls: {cert_file: %s, key_file: %s}\n%s\n' \
    "$T/notpem.crt" "$T/notpem.crt" "$RT" >"$T/tls_notpem.yaml"
bad tls_notpem 4 "upstreams.api.tls: cannot load the client certificate"

# ${NAME} from the environment; an unset one is an error at its position.
printf 'listen: 127.0.0.1:${AG_E2E_PORT}\n%s\n%s\n' "$UPS" "$RT" >"$T/env.yaml"
out=$(AG_E2E_PORT=18099 "$APIGATE" check -c "$T/env.yaml" 2>&1) || fail "env config rejected: $out"
assert_contains "$out" "listen: 127.0.0.1:18099" "env value used"
bad env 1 "\${AG_E2E_PORT}: environment variable not set"

# --resolve: a name that does not resolve fails the check (.invalid never resolves, RFC 6761).
printf 'upstreams:\n  api: {servers: [localhost:9000, "nowhere.invalid:9000"]}\n%s\n' "$RT" \
    >"$T/resolve.yaml"
"$APIGATE" check -q -c "$T/resolve.yaml" >/dev/null || fail "resolve.yaml should pass without --resolve"
rc=0
out=$("$APIGATE" check --resolve -c "$T/resolve.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "check --resolve with an unresolvable name"
assert_contains "$out" "'nowhere.invalid' does not resolve" "unresolvable name reported"

# Every error of a file in one run, in file order.
cat >"$T/many.yaml" <<'EOF'
listen: nowhere
workers: {threads: 2, worker_timeout: forever}
upstreams:
  api: {servers: [], balance: fastest}
routes:
  - {match: /, upstream: ghost}
EOF
rc=0
out=$("$APIGATE" check -c "$T/many.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "exit code with several errors"
n=$(grep -cE "^$T/many\.yaml:[0-9]+:[0-9]+: " <<<"$out" || true)
[ "$n" -ge 5 ] || fail "expected at least 5 errors in one run, got $n: $out"
assert_contains "$out" "5 errors in $T/many.yaml" "summary line"
lines=$(grep -oE "^$T/many\.yaml:[0-9]+" <<<"$out" | sed 's/.*://' | tr '\n' ' ')
assert_eq "$lines" "1 2 4 4 6 " "errors sorted by line"

# serve refuses the same file with the same messages and exit 2, before opening any socket.
rc=0
out=$("$APIGATE" serve -c "$T/many.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "exit code of serve on a bad config"
assert_contains "$out" "$T/many.yaml:6:" "serve reports positions"

# A missing file, and bad usage.
rc=0
out=$("$APIGATE" check -c "$T/does-not-exist.yaml" 2>&1) || rc=$?
assert_eq "$rc" 2 "exit code on a missing file"
assert_contains "$out" "does-not-exist.yaml" "missing file named"
rc=0
"$APIGATE" check >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "check without a file"
rc=0
"$APIGATE" serve --threads lots -c "$T/many.yaml" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "serve with a bad --threads"
# --listen: a trailing or doubled comma is a typo (it was dropped silently), and port 0 says why.
printf '%s\n%s\n' "$UPS" "$RT" >"$T/plain.yaml"
for l in "127.0.0.1:18081," "127.0.0.1:18081,,127.0.0.1:18082"; do
    rc=0
    out=$("$APIGATE" serve -t -c "$T/plain.yaml" --listen "$l" 2>&1) || rc=$?
    assert_eq "$rc" 2 "serve --listen '$l'"
    assert_contains "$out" "empty listen address in '$l'" "serve --listen '$l' message"
done
rc=0
out=$("$APIGATE" serve -t -c "$T/plain.yaml" --listen 127.0.0.1:0 2>&1) || rc=$?
assert_eq "$rc" 2 "serve --listen with port 0"
assert_contains "$out" "a port 1..65535" "serve --listen port 0 message"
"$APIGATE" serve -t -c "$T/plain.yaml" --listen 127.0.0.1:18081,127.0.0.1:18082 >/dev/null ||
    fail "serve --listen with two addresses"

# The shipped examples are valid, and check says so like nginx -t.
for f in "$AG_SRC"/examples/apigate.yaml "$AG_SRC"/examples/gateway-*.yaml; do
    [ -f "$f" ] || continue
    if [[ "$(basename "$f")" == gateway-tls*.yaml ]]; then
        # its certificate is made by the reader (the command in its comment), next to it
        d="$T/tlsex-$(basename "$f" .yaml)"
        mkdir -p "$d"
        cp "$f" "$d/"
        f="$d/$(basename "$f")"
        cmd=$(sed -n 's/^#   \(openssl req .*\)\\$/\1/p; s/^#     \(-.*\)\\$/\1/p; s/^#     \(-addext .*\)$/\1/p' "$f" | tr '\n' ' ')
        (cd "$d" && eval "$cmd" 2>/dev/null) || fail "the certificate command of $f: $cmd"
    fi
    out=$("$APIGATE" check -c "$f" 2>&1) || fail "example $f rejected: $out"
    assert_contains "$out" "configuration file $f test is successful" "check of $f"
done
out=$("$APIGATE" serve -t -c "$AG_SRC/examples/apigate.yaml" 2>&1) || fail "serve -t: $out"
assert_contains "$out" "test is successful" "serve -t"

# --dump prints the effective config (defaults filled in) that loads back to the same values.
"$APIGATE" check --dump -c "$AG_SRC/examples/gateway-full.yaml" >"$T/dump1.yaml" ||
    fail "check --dump failed"
assert_contains "$(cat "$T/dump1.yaml")" "max_head_size: 32KB" "dump shows defaults"
"$APIGATE" check -q -c "$T/dump1.yaml" >/dev/null || fail "the dump is not a valid config"
"$APIGATE" check --dump -c "$T/dump1.yaml" | tail -n +2 >"$T/dump2.yaml"
tail -n +2 "$T/dump1.yaml" | cmp -s - "$T/dump2.yaml" || fail "dump of the dump differs"

# threads: 0 counts the CPUs this process may use (affinity), not the host's.
if command -v taskset >/dev/null 2>&1 && [ "$(nproc --all)" -gt 1 ]; then
    printf '%s\n%s\n' "$UPS" "$RT" >"$T/auto.yaml"
    th=$(taskset -c 0 "$APIGATE" check --dump -c "$T/auto.yaml" | awk '/^  threads:/ {print $2}')
    assert_eq "$th" 1 "threads: 0 under taskset -c 0"
fi

# The reference lists every section.
ref=$("$APIGATE" check --help-config)
for k in listen admin workers.threads workers.max_requests server.max_body_size \
    logging.access_log cache.memory upstreams.NAME.servers upstreams.NAME.pool.queue_timeout \
    routes[].match routes[].cache.ttl routes[].breaker.error_threshold routes[].fallback.status; do
    assert_contains "$ref" "\`$k\`" "--help-config"
done
# docs/configuration.md carries the same reference (regenerate it when a key changes).
doc="$AG_SRC/docs/configuration.md"
if [ -f "$doc" ]; then
    missing=$(grep -oE '^\| `[^`]+`' <<<"$ref" | sed 's/^| //' | while read -r k; do
        grep -qF -- "| $k |" "$doc" || echo "$k"
    done)
    [ -z "$missing" ] || fail "docs/configuration.md lacks: $missing"
fi
log "all config error checks passed"
