#!/usr/bin/env bash
# Checks the deployment examples without a cluster or a container engine:
#   - every Kubernetes manifest parses as YAML; the workloads probe /readyz and /healthz on the
#     admin port, run non-root with a read-only root, mount the key Secret 0400; the ConfigMap's
#     TOML parses and matches the ports and data dir; kustomization lists files that exist;
#   - ikkuna.service passes `systemd-analyze verify` with no warning (if systemd-analyze exists);
#   - nginx-front.conf passes `nginx -t` with throwaway certificates (if nginx exists) and keeps
#     the no-buffering directives.
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
import glob, os, tomllib, yaml
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
