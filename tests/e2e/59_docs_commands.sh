#!/usr/bin/env bash
# The docs' commands run as written: the shell blocks of docs/getting-started.md and
# docs/cookbook.md are extracted and run in order, in one shell each, with `set -euo pipefail`
# (a failing command or an empty grep fails the test). The only changes: the ports 8000, 8080,
# 9000, 9901 and 8443 become free ports (in the commands, in the files the docs write and in the
# copy of examples/ the docs read), load
# durations are shortened (--duration 20s -> 4s, -d 10s -> 2s), and `apigate` is this build. A
# block after `<!-- docs-test: file NAME -->` is written to NAME; one after
# `<!-- docs-test: skip (why) -->` is not run. Then the outputs the docs promise are checked:
# getting-started's step 2 caches a route the mock serves (MISS then HIT) and step 3's compare
# shows the fix (p95 better, --fail-on passes); the cookbook's bench loads recipe 1's config,
# recipe 6's HTTPS gateway answers MISS then HIT, recipe 7's speaks h2 over TLS and h2c.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd jq curl python3 openssl nghttp h2load

root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$T/bin"
ln -s "$APIGATE" "$T/bin/apigate"
read -r p8000 p8080 p9000 p9901 p8443 <<<"$(free_ports 5)"

# extract DOC DIR: writes DIR/run.sh and the files the doc names
extract() {
    python3 - "$1" "$2" "$p8000" "$p8080" "$p9000" "$p9901" "$p8443" <<'PY'
import os, re, shutil, sys
doc, out, *ports = sys.argv[1:]
pmap = dict(zip(["8000", "8080", "9000", "9901", "8443"], ports))
def sub(text):
    text = re.sub(r"(?<![0-9])(8000|8080|9000|9901|8443)(?![0-9])", lambda m: pmap[m.group(1)], text)
    text = text.replace("--duration 20s", "--duration 4s").replace("-d 10s", "-d 2s")
    return text
# the docs copy and read examples/: a copy with the same ports
src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(doc))), "examples")
shutil.copytree(src, os.path.join(out, "examples"))
for f in os.listdir(os.path.join(out, "examples")):
    if f.endswith(".yaml"):
        p = os.path.join(out, "examples", f)
        text = sub(open(p).read())
        open(p, "w").write(text)
lines = open(doc).read().split("\n")
script, marker, i, nblocks = [], None, 0, 0
while i < len(lines):
    m = re.match(r"<!-- docs-test: (file (\S+)|skip\b.*) -->", lines[i])
    if m:
        marker = m.group(2) or "skip"
        i += 1
        continue
    f = re.match(r"```(\w*)\s*$", lines[i])
    if f:
        lang, body, i = f.group(1), [], i + 1
        while not lines[i].startswith("```"):
            body.append(lines[i]); i += 1
        text = "\n".join(body) + "\n"
        if marker not in (None, "skip"):
            open(os.path.join(out, marker), "w").write(sub(text))
        elif marker is None and lang == "sh":
            nblocks += 1
            script.append("echo '### block %d'\n" % nblocks + sub(text))
        marker = None
    elif lines[i].strip():
        marker = None if not lines[i].startswith("<!--") else marker
    i += 1
open(os.path.join(out, "run.sh"), "w").write(
    "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(script))
print(nblocks)
PY
}

# rundoc NAME DOC: runs the doc's blocks in $T/NAME (with a port-substituted examples/ at hand), output in $T/NAME.out
rundoc() {
    local dir="$T/$1"
    mkdir -p "$dir"
    local n
    n=$(extract "$root/$2" "$dir")
    log "$2: $n shell blocks"
    local rc=0
    (cd "$dir" && PATH="$T/bin:$PATH" timeout 120 bash run.sh) >"$T/$1.out" 2>&1 || rc=$?
    assert_eq "$rc" 0 "$2 exit code; output: $(tail -30 "$T/$1.out")"
}

rundoc gs docs/getting-started.md
out=$(cat "$T/gs.out")
# step 2: the route the config caches is one the mock serves: a MISS, then a HIT
python3 - "$T/gs.out" <<'PY' || fail "getting-started: no MISS then HIT: $out"
import sys
t = open(sys.argv[1]).read()
m = t.find("X-Cache: MISS"); h = t.find("X-Cache: HIT")
sys.exit(0 if 0 <= m < h else 1)
PY
assert_contains "$out" "0.5"
# step 3: the scenario reads the cached route, so the compare shows the fix
grep -Eq '^ +latency p95 .* better$' <<<"$out" || fail "getting-started: p95 not better: $out"
assert_contains "$out" "✓ p95>+10%"
[ "$(jq '.totals.requests' "$T/gs/after.json")" -gt 50 ] || fail "too few requests after"

rundoc cb docs/cookbook.md
out=$(cat "$T/cb.out")
[ "$(jq '.totals.failed' "$T/cb/after.json")" = 0 ] || fail "cookbook bench: failures: $out"
[ "$(jq '.totals.requests' "$T/cb/after.json")" -gt 100 ] || fail "cookbook bench: too few requests"
assert_contains "$out" '"ok":true'   # recipe 4's profile swap was accepted
# recipe 6: HTTPS on the moved 8443, a MISS then a HIT
b6=$(sed -n '/^### block 4$/,/^### block 5$/p' "$T/cb.out" | tr -d '\r' | grep -i '^x-cache:' | head -2 | tr 'A-Z\n' 'a-z ' || true)
assert_eq "$b6" "x-cache: miss x-cache: hit " "cookbook recipe 6 over HTTPS; output: $out"
# recipe 7: h2 over TLS, h2c on the plain port, nghttp's frames, h2load's protocol
b7=$(sed -n '/^### block 6$/,$p' "$T/cb.out")
grep -Eq '^2 (MISS|HIT)$' <<<"$b7" || fail "cookbook recipe 7: no h2 over TLS: $b7"
grep -Eq '^2$' <<<"$b7" || fail "cookbook recipe 7: no h2c: $b7"
grep -q 'recv DATA' <<<"$b7" || fail "cookbook recipe 7: nghttp: $b7"
grep -q 'protocol: h2' <<<"$b7" || fail "cookbook recipe 7: h2load's protocol: $b7"
log "ok"
