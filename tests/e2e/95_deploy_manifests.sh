#!/usr/bin/env bash
# deploy/ is checked, not just written: every Kubernetes manifest parses as YAML and has the kinds
# and fields a cluster needs (selectors that match the pod labels, probes on the admin port,
# resources, anti-affinity, an HPA on CPU and RPS that targets the Deployment, a PDB, Services
# whose target ports exist, a ConfigMap whose config `apigate check` accepts and that the pod
# mounts, Redis for L2); the kustomization lists every file (the systemd unit: e2e/94); the
# Dockerfile is multi-stage, slim, non-root, with a HEALTHCHECK on /healthz; deploy/apigate.yaml
# passes `apigate check`. An admin listener off loopback has a token_file, and the pod mounts a
# Secret where it points.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3
python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml is missing (Debian package python3-yaml)"
D="$AG_SRC/deploy"

# check_with_token FILE OUT: `apigate check` of FILE with its admin.token_file pointed at a
# throw-away token (the real one is mounted at run time).
openssl rand -hex 32 >"$T/admin-token"
check_with_token() {
    grep -q '^ *token_file: ' "$1" || fail "$1: admin has no token_file"
    sed -E "s#^( *token_file: )[^ ]+#\1$T/admin-token#" "$1" >"$2"
    "$APIGATE" check -c "$2" >"$2.log" 2>&1 || fail "$1: $(cat "$2.log")"
    ! grep -q warning "$2.log" || fail "$1: $(cat "$2.log")"
}
check_with_token "$D/apigate.yaml" "$T/apigate-default.yaml"

python3 - "$D" "$T" <<'PY' || fail "Kubernetes manifests (above)"
import os, sys, yaml

d, t = sys.argv[1], sys.argv[2]
k8s = os.path.join(d, "k8s")
errors = []
def err(msg): errors.append(msg)

docs = []          # (file, doc)
files = sorted(f for f in os.listdir(k8s) if f.endswith((".yaml", ".yml")))
for f in files:
    with open(os.path.join(k8s, f)) as fh:
        try:
            for doc in yaml.safe_load_all(fh):
                if doc is not None:
                    docs.append((f, doc))
        except yaml.YAMLError as e:
            err(f"{f}: not YAML: {e}")

def get(o, *path):
    for p in path:
        if isinstance(o, dict) and p in o:
            o = o[p]
        elif isinstance(o, list) and isinstance(p, int) and p < len(o):
            o = o[p]
        else:
            return None
    return o

by_kind = {}
for f, doc in docs:
    for key in ("apiVersion", "kind", "metadata"):
        if key not in doc and not (key == "metadata" and doc.get("kind") == "Kustomization"):
            err(f"{f}: a document without {key}")
    if doc.get("kind") == "Kustomization":
        listed = set(doc.get("resources") or [])
        missing = set(files) - listed - {f}
        if missing:
            err(f"{f}: resources do not list {sorted(missing)}")
        for r in listed:
            if not os.path.exists(os.path.join(k8s, r)):
                err(f"{f}: lists {r}, which does not exist")
        continue
    if not get(doc, "metadata", "name"):
        err(f"{f}: {doc.get('kind')} without metadata.name")
    by_kind.setdefault(doc.get("kind"), []).append((f, doc))

want = {"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1"}
for kind, api in want.items():
    if kind not in by_kind:
        err(f"no {kind} in deploy/k8s")
    for f, doc in by_kind.get(kind, []):
        if doc.get("apiVersion") != api:
            err(f"{f}: {kind} apiVersion {doc.get('apiVersion')}, expected {api}")

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

deployments = {get(doc, "metadata", "name"): (f, doc) for f, doc in by_kind.get("Deployment", [])}
gw = deployments.get("apigate")
if not gw:
    err("no Deployment named apigate")
else:
    f, dep = gw
    sel = get(dep, "spec", "selector", "matchLabels") or {}
    labels = get(dep, "spec", "template", "metadata", "labels") or {}
    if not matches(sel, labels):
        err(f"{f}: selector {sel} does not match the pod labels {labels}")
    pod = get(dep, "spec", "template", "spec") or {}
    c = get(pod, "containers", 0) or {}
    if not c.get("image"):
        err(f"{f}: container without image")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    if ports.get("http") != 8080 or ports.get("admin") != 9901:
        err(f"{f}: expected ports http 8080 and admin 9901, got {ports}")
    for kind in ("requests", "limits"):
        if not get(c, "resources", kind, "memory"):
            err(f"{f}: resources.{kind}.memory missing")
    if not get(c, "resources", "requests", "cpu"):
        err(f"{f}: resources.requests.cpu missing")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        hg = get(c, probe, "httpGet") or {}
        if hg.get("path") != path or hg.get("port") not in ("admin", 9901):
            err(f"{f}: {probe} should GET {path} on the admin port, got {hg}")
    pref = get(pod, "affinity", "podAntiAffinity",
               "preferredDuringSchedulingIgnoredDuringExecution") or []
    if not any(get(p, "podAffinityTerm", "topologyKey") == "kubernetes.io/hostname"
               and matches(get(p, "podAffinityTerm", "labelSelector", "matchLabels"), labels)
               for p in pref):
        err(f"{f}: no preferred pod anti-affinity across nodes for the gateway's own pods")
    if get(pod, "securityContext", "runAsNonRoot") is not True:
        err(f"{f}: pod does not require runAsNonRoot")
    # The config the pod mounts is the ConfigMap's, and apigate accepts it.
    cfg, text = None, None
    cm_names = [get(v, "configMap", "name") for v in pod.get("volumes") or []]
    cms = {get(doc, "metadata", "name"): doc for _, doc in by_kind.get("ConfigMap", [])}
    mounted = [n for n in cm_names if n in cms]
    if not mounted:
        err(f"{f}: mounts no ConfigMap of deploy/k8s (volumes: {cm_names})")
    else:
        cm = cms[mounted[0]]
        text = get(cm, "data", "apigate.yaml")
        if not text:
            err(f"ConfigMap {mounted[0]}: no data apigate.yaml")
        else:
            with open(os.path.join(t, "configmap-apigate.yaml"), "w") as out:
                out.write(text)
            cfg = yaml.safe_load(text)
            drain = str(get(cfg, "workers", "drain_timeout") or "10s")
            secs = float(drain[:-1]) if drain.endswith("s") and not drain.endswith("ms") else 10
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if grace <= secs:
                err(f"{f}: terminationGracePeriodSeconds {grace} <= drain_timeout {drain}")
            if not str(get(cfg, "cache", "redis") or "").startswith("redis://"):
                err("ConfigMap: cache.redis (the L2) is not set")
    mount = [m.get("mountPath") for m in c.get("volumeMounts") or []]
    # The admin listener is reachable in the pod network: its token comes from a Secret mounted
    # where admin.token_file points.
    adm = get(cfg, "admin")
    tf = get(adm, "token_file") if isinstance(adm, dict) else None
    if not tf:
        err(f"ConfigMap: admin has no token_file (admin: {adm})")
    else:
        secret_vols = {v.get("name") for v in pod.get("volumes") or [] if get(v, "secret", "secretName")}
        tdir = os.path.dirname(tf)
        if not any(m.get("mountPath") == tdir and m.get("name") in secret_vols
                   for m in c.get("volumeMounts") or []):
            err(f"{f}: no Secret volume mounted at {tdir} (admin.token_file {tf})")
    if "/etc/apigate" not in mount:
        err(f"{f}: the config is not mounted at /etc/apigate ({mount})")
    if "/etc/apigate/apigate.yaml" not in (c.get("args") or []):
        err(f"{f}: args do not read /etc/apigate/apigate.yaml")

    # Services: select the gateway pods, target ports the container has.
    svc_ports = set()
    for sf, svc in by_kind.get("Service", []):
        s = get(svc, "spec", "selector") or {}
        if matches(s, labels):
            for p in get(svc, "spec", "ports") or []:
                tp = p.get("targetPort")
                if tp not in ports and tp not in ports.values():
                    err(f"{sf}: targetPort {tp} is not a container port of the gateway")
                svc_ports.add(tp)
    if "http" not in svc_ports and 8080 not in svc_ports:
        err("no Service routes to the gateway's http port")

    # HPA: targets this Deployment, scales on CPU and on a custom RPS metric.
    for hf, hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = get(hpa, "spec", "scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("name") != "apigate":
            err(f"{hf}: scaleTargetRef {ref} is not Deployment apigate")
        mn, mx = get(hpa, "spec", "minReplicas") or 1, get(hpa, "spec", "maxReplicas") or 0
        if not (1 <= mn <= mx):
            err(f"{hf}: minReplicas {mn} / maxReplicas {mx}")
        metrics = get(hpa, "spec", "metrics") or []
        if not any(m.get("type") == "Resource" and get(m, "resource", "name") == "cpu" for m in metrics):
            err(f"{hf}: no CPU metric")
        if not any(m.get("type") in ("Pods", "Object", "External") and
                   "request" in str(get(m, m.get("type", "").lower(), "metric", "name")) for m in metrics):
            err(f"{hf}: no custom requests-per-second metric")
    # PDB: selects the gateway pods and leaves room for a drain.
    for pf, pdb in by_kind.get("PodDisruptionBudget", []):
        if not matches(get(pdb, "spec", "selector", "matchLabels"), labels):
            err(f"{pf}: selector does not match the gateway pods")
        if get(pdb, "spec", "maxUnavailable") is None and get(pdb, "spec", "minAvailable") is None:
            err(f"{pf}: neither maxUnavailable nor minAvailable")

# Redis for L2: a Deployment (or StatefulSet) running redis and a Service in front of it.
redis = [(f, x) for k in ("Deployment", "StatefulSet") for f, x in by_kind.get(k, [])
         if "redis" in str(get(x, "spec", "template", "spec", "containers", 0, "image"))]
if not redis:
    err("no Redis workload for the L2 cache")
else:
    rl = get(redis[0][1], "spec", "template", "metadata", "labels") or {}
    if not any(matches(get(s, "spec", "selector"), rl) for _, s in by_kind.get("Service", [])):
        err("no Service selects the Redis pods")
    if not get(redis[0][1], "spec", "template", "spec", "containers", 0, "resources", "limits", "memory"):
        err(f"{redis[0][0]}: Redis without a memory limit")

for e in errors:
    print("deploy/k8s: " + e, file=sys.stderr)
print(f"deploy/k8s: {len(docs)} documents, kinds {sorted(by_kind)}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# The ConfigMap's config, extracted above, is a config apigate accepts.
check_with_token "$T/configmap-apigate.yaml" "$T/configmap-checked.yaml"

# kustomize builds offline (kubectl apply --dry-run needs a cluster; kubeconform is not packaged).
if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize "$D/k8s" >"$T/kustomize.out" 2>"$T/kustomize.err" ||
        fail "kubectl kustomize deploy/k8s: $(cat "$T/kustomize.err")"
    n=$(grep -c '^kind:' "$T/kustomize.out")
    [ "$n" -ge 8 ] || fail "kustomize produced $n objects, expected at least 8"
else
    log "kubectl not installed: kustomize build skipped"
fi

# Dockerfile: multi-stage, slim runtime, non-root, HEALTHCHECK on /healthz, the config checked.
df="$D/Dockerfile"
[ "$(grep -c '^FROM ' "$df")" -ge 2 ] || fail "Dockerfile is not multi-stage"
grep '^FROM ' "$df" | tail -n1 | grep -q -- '-slim' || fail "Dockerfile runtime stage is not Debian slim"
user=$(grep '^USER ' "$df" | tail -n1 | awk '{print $2}')
[ -n "$user" ] && [ "${user%%:*}" != root ] && [ "${user%%:*}" != 0 ] || fail "Dockerfile does not run as a non-root user ($user)"
# (instructions joined across their backslash-continued lines)
sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$df" | grep -q '^HEALTHCHECK .*CMD.*/healthz' || fail "Dockerfile HEALTHCHECK does not probe /healthz"
grep -q 'COPY deploy/apigate.yaml' "$df" || fail "Dockerfile does not ship deploy/apigate.yaml"
# Every file the Dockerfile COPYs from the context exists and is not excluded by its .dockerignore.
for src in $(awk '/^COPY / && !/--from/ { for (i = 2; i < NF; i++) print $i }' "$df"); do
    [ -e "$AG_SRC/$src" ] || fail "Dockerfile copies $src, which does not exist"
    grep -qx "!${src%/}/\?" "$df.dockerignore" || grep -qx "!$src" "$df.dockerignore" ||
        fail "Dockerfile copies $src but $df.dockerignore excludes it"
done
# The image builds with what a build here needs: every library package of scripts/deps.sh's build
# list is installed in the build stage (the compiler and CMake may come as other packages).
joined=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$df")
build_stage=$(awk '/^FROM .* AS build/ { on = 1 } /^FROM .*-slim/ { on = 0 } on' <<<"$joined")
runtime_stage=$(awk '/^FROM .*-slim/ { on = 1 } on' <<<"$joined")
build_pkgs=$(sed -n 's/^BUILD_PKGS="//; T; :a; /"$/!{N; ba}; s/"$//; s/\\\n/ /g; p' "$AG_SRC/scripts/deps.sh")
[ -n "$build_pkgs" ] || fail "could not read BUILD_PKGS from scripts/deps.sh"
for p in $build_pkgs; do
    case "$p" in build-essential | cmake | pkg-config) continue ;; esac
    grep -qw -- "$p" <<<"$build_stage" || fail "Dockerfile's build stage does not install $p (scripts/deps.sh build needs it)"
done
# ... and its runtime stage installs the package of every shared library the binary links, but
# for those of Debian's essential set, which debian:12-slim has.
if command -v ldd >/dev/null && command -v dpkg-query >/dev/null; then
    for lib in $(ldd "$APIGATE" | awk '$3 ~ /^\// { print $3 }'); do
        pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -n1 | cut -d: -f1) || continue
        [ -n "$pkg" ] || continue
        [ "$(dpkg-query -W -f='${Essential}${Priority}' "$pkg" 2>/dev/null)" = yesrequired ] && continue
        # only what apigate asks for by name: a dependency of a dependency comes with it
        needed=$(objdump -p "$APIGATE" 2>/dev/null | awk '$1 == "NEEDED" { print $2 }')
        grep -qx "$(basename "$lib")" <<<"$needed" || continue
        grep -qw -- "$pkg" <<<"$runtime_stage" || fail "Dockerfile's runtime stage does not install $pkg ($(basename "$lib"), linked by apigate)"
    done
fi
log "ok"
