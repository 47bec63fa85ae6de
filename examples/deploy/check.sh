#!/usr/bin/env bash
# Checks the deployment examples without a cluster or a container engine:
#   - every Kubernetes manifest parses as YAML; the workloads probe /readyz and /healthz on the
#     admin port, run non-root with a read-only root, mount the key Secret 0400; the ConfigMap's
#     TOML parses and matches the ports and data dir; kustomization lists files that exist;
#   - ikkuna.service passes `systemd-analyze verify` with no warning (if systemd-analyze exists);
#   - nginx-front.conf passes `nginx -t` with throwaway certificates (if nginx exists) and keeps
#     the no-buffering directives;
#   - the repository's Dockerfile (when run from a checkout) is multi-stage, ends non-root as the
#     manifests' runAsUser, declares the data directory a VOLUME, exposes the manifests' ports,
#     copies no key material and ADDs nothing; .dockerignore keeps target/, .git and keys out;
#   - the probe and scrape paths the manifests name are routes of the admin listener
#     (src/admin.rs, when run from a checkout).
# Fast (about a second) and offline: CI runs it as is (.ci/run).
# With --live GATEWAY_BIN (a build with the sandbox feature, e.g. target/release/ikkuna) it also
# runs the sandbox behind nginx-front.conf, reads a message through it, and streams the 1 GiB
# attachment to a throttled client while checking that nginx holds no temporary file (minting the
# citizen assertion with the ikkuna-sandbox binary next to GATEWAY_BIN, or $IKKUNA_SANDBOX_BIN).
# Needs python3 with PyYAML (pip install pyyaml). Exit status 0 when everything checked passed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
    if [[ -f "$work/ngx/nginx.pid" ]]; then kill "$(cat "$work/ngx/nginx.pid")" 2>/dev/null || true; fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "== kubernetes manifests"
(cd "$here/kubernetes" && python3 - <<'PY'
import glob, os, re, tomllib, yaml
docs = {f: [d for d in yaml.safe_load_all(open(f)) if d is not None] for f in sorted(glob.glob("*.yaml"))}
for f, ds in docs.items():
    print(f"  {f}: " + ", ".join(f"{d['kind']}/{d.get('metadata', {}).get('name', '-')}" for d in ds))
for f in ("statefulset.yaml", "deployment.yaml"):
    (w,) = docs[f]
    spec = w["spec"]["template"]["spec"]
    c = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin", "scheme": "HTTP"}, f
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["livenessProbe"]["httpGet"]["port"] == "admin", f
    assert ports == {"api": 8443, "admin": 9090}, f
    for k in [c] + spec["initContainers"]:
        sc = k["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], (f, k["name"])
        assert sc["capabilities"]["drop"] == ["ALL"], (f, k["name"])
    assert spec["securityContext"]["runAsNonRoot"], f
    assert spec["terminationGracePeriodSeconds"] >= 35, f  # 30 s stop grace + preStop
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["keys-secret"]["secret"]["defaultMode"] == 0o400, f
    assert vols["private"]["emptyDir"]["medium"] == "Memory", f
    assert w["spec"]["selector"]["matchLabels"].items() <= w["spec"]["template"]["metadata"]["labels"].items(), f
(sts,) = docs["statefulset.yaml"]
assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
cfg = tomllib.loads(docs["configmap.yaml"][0]["data"]["ikkuna.toml"])
assert cfg["admin"]["listen"].endswith(":9090") and cfg["server"]["listen"].endswith(":8443")
assert cfg["store"]["data_dir"] == "/var/lib/ikkuna"
headless = [d for d in docs["service.yaml"] if d["metadata"]["name"] == sts["spec"]["serviceName"]][0]
sm = docs["servicemonitor.yaml"][0]
assert sm["spec"]["selector"]["matchLabels"].items() <= headless["metadata"]["labels"].items()
k = docs["kustomization.yaml"][0]
assert all(os.path.exists(r) for r in k["resources"])
assert "deployment.yaml" not in k["resources"]
# One gateway image everywhere (main container and check-config), the one kustomize renames.
images = set()
for f in ("statefulset.yaml", "deployment.yaml"):
    spec = docs[f][0]["spec"]["template"]["spec"]
    images |= {c["image"] for c in spec["containers"] + spec["initContainers"] if c["name"] != "private-keys"}
    assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsGroup"] == 10001, f
assert len(images) == 1, images
(image,) = images
assert [i["name"] for i in k.get("images", [])] == [image.rsplit(":", 1)[0]], (k.get("images"), image)
# The paths probed and scraped must be routes of the admin listener.
probed = {sm["spec"]["endpoints"][0]["path"]}
for f in ("statefulset.yaml", "deployment.yaml"):
    c = docs[f][0]["spec"]["template"]["spec"]["containers"][0]
    probed |= {c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe") if p in c}
admin_rs = os.path.join("..", "..", "..", "src", "admin.rs")
if os.path.exists(admin_rs):
    routes = set(re.findall(r'\.route\(\s*"([^"]+)"', open(admin_rs).read()))
    assert probed <= routes, f"probed {sorted(probed)} but the admin listener serves {sorted(routes)}"
    print(f"  probe/scrape paths {sorted(probed)} are admin routes")
print("  ok")
PY
)

echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$work/unit"
    # The binary is not installed here; verify the unit with a stand-in executable.
    sed 's#/usr/local/bin/ikkuna#/bin/true#' "$here/ikkuna.service" > "$work/unit/ikkuna.service"
    out="$(systemd-analyze verify "$work/unit/ikkuna.service" 2>&1)" || { echo "$out"; exit 1; }
    if [[ -n "$out" ]]; then echo "$out"; echo "  systemd-analyze printed warnings"; exit 1; fi
    echo "  ok"
else
    echo "  skipped: systemd-analyze not installed"
fi

echo "== nginx front"
for d in "proxy_buffering off;" "proxy_request_buffering off;" "proxy_max_temp_file_size 0;" "proxy_cache off;"; do
    grep -qF "$d" "$here/nginx-front.conf" || { echo "  missing: $d"; exit 1; }
done
nginx_conf() { # $1 upstream, $2 listen, $3 CA for the upstream, $4 client cert, $5 client key
    local n="$work/ngx"
    mkdir -p "$n/logs"
    sed -e "s#server 127.0.0.1:8443#server $1#" -e "s#listen 443 ssl http2;#listen $2 ssl http2;#" \
        -e '/listen \[::\]:443/d' \
        -e "s#/etc/nginx/tls/front.pem#$work/front.pem#" -e "s#/etc/nginx/tls/front.key#$work/front.key#" \
        -e "s#/etc/nginx/tls/ikkuna-ca.pem#$3#" -e "s#proxy_ssl_name ikkuna.internal#proxy_ssl_name localhost#" \
        -e "s#/etc/nginx/tls/front-client.pem#$4#" -e "s#/etc/nginx/tls/front-client.key#$5#" \
        -e "s#/var/log/nginx/#$n/logs/#" "$here/nginx-front.conf" > "$n/ikkuna.conf"
    cat > "$n/nginx.conf" <<NGX
pid $n/nginx.pid;
error_log $n/logs/error.log;
worker_processes 1;
events {}
http {
    client_body_temp_path $n/ct; proxy_temp_path $n/pt; fastcgi_temp_path $n/ft;
    uwsgi_temp_path $n/ut; scgi_temp_path $n/st;
    include $n/ikkuna.conf;
}
NGX
}
if command -v nginx >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
        -keyout "$work/front.key" -out "$work/front.pem" 2>/dev/null
    nginx_conf 127.0.0.1:8443 127.0.0.1:18443 "$work/front.pem" "$work/front.pem" "$work/front.key"
    nginx -q -t -c "$work/ngx/nginx.conf" -p "$work/ngx"
    echo "  ok (nginx -t)"
else
    echo "  skipped: nginx not installed"
fi

echo "== Dockerfile"
root="$(cd "$here/../.." && pwd)"
if [[ -f "$root/Dockerfile" ]]; then
    python3 - "$root" "$here/kubernetes" <<'PY'
import glob, os, re, shlex, sys, tomllib, yaml
root, kube = sys.argv[1], sys.argv[2]
text = open(os.path.join(root, "Dockerfile")).read()
# Instructions with their line continuations joined, comments and parser directives dropped.
lines = []
for raw in re.sub(r"\\\n", " ", text).splitlines():
    raw = raw.strip()
    if raw and not raw.startswith("#"):
        word, _, rest = raw.partition(" ")
        lines.append((word.upper(), rest.strip()))
stages = [i for i, (w, _) in enumerate(lines) if w == "FROM"]
assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
# Global ARG defaults resolve the base images named in FROM.
args = dict(r.partition("=")[::2] for w, r in lines[: stages[0]] if w == "ARG")
base = lambda i: re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), lines[i][1].split()[0])
assert base(stages[0]).startswith("rust:"), f"builder stage from the Rust image: {base(stages[0])}"
runtime = base(stages[-1])
assert "distroless" in runtime or "slim" in runtime, f"minimal runtime image: {runtime}"
final = lines[stages[-1]:]
ins = lambda w, part=final: [r for x, r in part if x == w]
# Secrets and remote content never enter the image.
assert not ins("ADD", lines), "use COPY, not ADD (no remote URLs or auto-extracted archives)"
for w, r in lines:
    if w in ("COPY", "ADD"):
        assert not re.search(r"\.(key|pem|secret|p12)\b|/private/", r), f"{w} of key material: {r}"
    if w in ("ENV", "ARG"):
        assert not re.search(r"(SECRET|PASSWORD|TOKEN|PRIVATE)", r, re.I), f"{w} that looks like a secret: {r}"
assert any("--locked" in r for r in ins("RUN", lines)), "cargo build --locked"
# The runtime stage: non-root as the manifests, the data directory a volume, the listeners.
users = ins("USER")
assert users, "the runtime stage sets USER"
uid, _, gid = users[-1].partition(":")
assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root UID (runAsNonRoot checks it): {users[-1]}"
sts = yaml.safe_load(open(os.path.join(kube, "statefulset.yaml")))
pod = sts["spec"]["template"]["spec"]
assert int(uid) == pod["securityContext"]["runAsUser"], "USER is the manifests' runAsUser"
assert not gid or int(gid) == pod["securityContext"]["runAsGroup"], "group is the manifests' runAsGroup"
cfg = tomllib.loads(yaml.safe_load(open(os.path.join(kube, "configmap.yaml")))["data"]["ikkuna.toml"])
volumes = {v for r in ins("VOLUME") for v in (yaml.safe_load(r) if r.startswith("[") else r.split())}
assert cfg["store"]["data_dir"] in volumes, f"VOLUME {cfg['store']['data_dir']}: {volumes}"
exposed = {int(p.split("/")[0]) for r in ins("EXPOSE") for p in r.split()}
ports = {p["containerPort"] for p in pod["containers"][0]["ports"]}
assert exposed == ports, f"EXPOSE {exposed} = containerPorts {ports}"
entry = ins("ENTRYPOINT")[-1]
unit = open(os.path.join(kube, "..", "ikkuna.service")).read()
binary = yaml.safe_load(entry)[0]
assert re.search(r"^ExecStart=" + re.escape(binary) + " ", unit, re.M), f"same binary path as the unit: {binary}"
assert not ins("HEALTHCHECK") or "distroless" not in runtime, "distroless has nothing to run a HEALTHCHECK with"
ignore = open(os.path.join(root, ".dockerignore")).read().split()
for needed in (".git", "target/", "*.key", "*.pem", "*.secret"):
    assert needed in ignore, f".dockerignore lacks {needed}"
print(f"  ok (builder {base(stages[0])}, runtime {runtime}, USER {users[-1]}, VOLUME {sorted(volumes)}, EXPOSE {sorted(exposed)})")
PY
    if command -v docker >/dev/null && docker info >/dev/null 2>&1 && [[ "${IKKUNA_DOCKER_BUILD:-}" == 1 ]]; then
        docker build -t ikkuna:check "$root"
        echo "  ok (docker build)"
    else
        echo "  image not built (set IKKUNA_DOCKER_BUILD=1 with a running Docker daemon to build it)"
    fi
else
    echo "  skipped: no Dockerfile at $root (not run from a checkout)"
fi

if [[ "${1:-}" == "--live" ]]; then
    bin="${2:?--live needs the gateway binary}"
    echo "== live: sandbox behind nginx-front.conf"
    sb="$work/sb"
    "$bin" sandbox --data-dir "$sb" > "$work/sandbox.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 60); do [[ -f "$sb/sandbox.json" ]] && grep -q 'Authorization: Bearer' "$work/sandbox.log" && break; sleep 0.5; done
    gw="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gatewayUrl"].split("//")[1])' "$sb/sandbox.json")"
    nginx_conf "$gw" 127.0.0.1:18443 "$sb/ca.pem" "$sb/gateway.pem" "$sb/gateway.key"
    nginx -q -c "$work/ngx/nginx.conf" -p "$work/ngx"
    sleep 0.5
    token="$(grep -o "Bearer [^']*" "$work/sandbox.log" | head -1)"
    code="$(curl -sS -k --max-time 10 -H "Authorization: $token" -o /dev/null -w '%{http_code}' https://127.0.0.1:18443/v1/messages)"
    [[ "$code" == 200 ]] || { echo "  inbox through nginx: HTTP $code"; exit 1; }
    echo "  inbox through nginx (TLS front, re-encrypted, CA-verified upstream): 200"
    # A throttled client reading the seeded 1 GiB attachment (citizen 150385-9046, message 4100004).
    sandbox_bin="${IKKUNA_SANDBOX_BIN:-$(dirname "$bin")/ikkuna-sandbox}"
    tok2="$("$sandbox_bin" token --data-dir "$sb" --citizen 150385-9046 2>/dev/null | tail -1)" || tok2=""
    if [[ -n "$tok2" ]]; then
        curl -sS -k --max-time 30 -H "Authorization: Bearer $tok2" -o /dev/null https://127.0.0.1:18443/v1/messages/4100004
        curl -sS -k --max-time 10 --limit-rate 4M -H "Authorization: Bearer $tok2" -o /dev/null \
            https://127.0.0.1:18443/v1/messages/4100004/attachments/7100004 2>/dev/null &
        pids+=($!)
        sleep 6
        worker="$(pgrep -P "$(cat "$work/ngx/nginx.pid")" | head -1)"
        files="$(ls -l "/proc/$worker/fd" | grep -F "$work/ngx/" | grep -v '\.log' || true)"
        [[ -z "$files" && -z "$(find "$work/ngx/pt" -type f 2>/dev/null)" ]] \
            || { echo "  nginx holds a temporary file: $files"; exit 1; }
        echo "  1 GiB attachment to a throttled client: nginx holds no temporary file"
    else
        echo "  attachment check skipped: no $sandbox_bin (set IKKUNA_SANDBOX_BIN)"
    fi
fi
echo "deployment examples: ok"
