#!/usr/bin/env bash
# Fuzzes the operator API against its description: starts `ikkuna sandbox` (the gateway in front of
# the sandbox DVV backend) in a throwaway directory, mints a citizen assertion, and lets schemathesis
# generate requests from docs/operator-api.yaml. Fails on any 5xx and on any response (status,
# content type, headers, body) that the document does not describe. Meanwhile a small HTTPS
# receiver takes the gateway's webhooks (the fuzzer's reads and receipts cause them) and checks each
# against the document's `webhooks:` entry: body schema, headers, and the HMAC signature.
#
# Run from anywhere: `bash .ci/api-fuzz.sh`. Needs python3 with schemathesis (SCHEMATHESIS_VERSION,
# installed by .ci/run) and the debug binaries (built here when missing).
# Knobs: FUZZ_MAX_EXAMPLES (per operation, default 60), FUZZ_MAX_TIME (seconds, default 45),
# FUZZ_SEED (default random; printed so a failure can be replayed), FUZZ_KEEP_DIR=1 keeps the logs,
# FUZZ_OPERATION=<operationId> fuzzes that operation only (to replay a failure quickly),
# FUZZ_REPORT_DIR=<dir> writes a VCR cassette of every request and answer, bytes exact.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-60}"
MAX_TIME="${FUZZ_MAX_TIME:-45}"
SEED="${FUZZ_SEED:-$RANDOM$RANDOM}"
# A seeded citizen with an active consent whose inbox holds the document's example ids.
CITIZEN="150385-9046"
# A seeded citizen who never gave consent: every message call must be a 403.
CITIZEN_WITHOUT_CONSENT="010190Y936V"

if [ ! -x target/debug/ikkuna ] || [ ! -x target/debug/ikkuna-sandbox ]; then
    cargo build --workspace --bin ikkuna --bin ikkuna-sandbox
fi

DIR="$(mktemp -d)"
GATEWAY_PID=""
RECEIVER_PID=""
cleanup() {
    if [ -n "$RECEIVER_PID" ]; then kill "$RECEIVER_PID" 2>/dev/null || true; fi
    if [ -n "$GATEWAY_PID" ] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
        kill -TERM "$GATEWAY_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$GATEWAY_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$GATEWAY_PID" 2>/dev/null || true
    fi
    if [ "${FUZZ_KEEP_DIR:-0}" = 1 ]; then
        echo "api-fuzz: kept $DIR"
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT

# The webhook receiver: binds first (the gateway must know its URL), serves HTTPS with the
# sandbox's loopback certificate once the sandbox has created it, records one line per delivery.
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$DIR/webhook.secret"
chmod 600 "$DIR/webhook.secret"
cat >"$DIR/receiver.py" <<'EOF'
import hashlib, hmac, json, os, re, ssl, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
import jsonschema, yaml

spec_path, out_dir = sys.argv[1], sys.argv[2]
with open(spec_path) as f:
    spec = yaml.safe_load(f)
hook = spec["webhooks"]["ikkunaEvent"]["post"]
schema = dict(hook["requestBody"]["content"]["application/json"]["schema"])
schema["components"] = spec["components"]
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
headers_spec = {p["name"].lower(): p for p in hook["parameters"] if p["in"] == "header"}
with open(os.path.join(out_dir, "webhook.secret")) as f:
    secret = f.read().strip().encode()


def problems(headers, body):
    found = []
    if headers.get("content-type", "").split(";")[0].strip() != "application/json":
        found.append("content-type is not application/json")
    for name, p in headers_spec.items():
        value = headers.get(name)
        if value is None:
            if p.get("required"):
                found.append(f"header {name} missing")
            continue
        s = p["schema"]
        if "$ref" in s:
            s = spec["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]]
        if s.get("type") == "integer":
            if not value.isdigit() or int(value) < s.get("minimum", 0):
                found.append(f"header {name} is not an integer >= {s.get('minimum', 0)}")
        elif "pattern" in s and not re.search(s["pattern"], value):
            found.append(f"header {name} does not match {s['pattern']}")
        elif "enum" in s and value not in s["enum"]:
            found.append(f"header {name} is not one of {s['enum']}")
    try:
        event = json.loads(body)
    except ValueError:
        return found + ["body is not JSON"]
    found += [f"body: {e.message}" for e in validator.iter_errors(event)]
    if isinstance(event, dict):
        if headers.get("ikkuna-event-id") != event.get("id"):
            found.append("Ikkuna-Event-Id differs from the body's id")
        if headers.get("ikkuna-event-type") != event.get("type"):
            found.append("Ikkuna-Event-Type differs from the body's type")
    fields = dict(part.split("=", 1) for part in headers.get("ikkuna-signature", "").split(",") if "=" in part)
    t = fields.get("t", "")
    if not t.isdigit() or abs(time.time() - int(t)) > 300:
        found.append("signature timestamp missing or outside 300 s")
    else:
        expected = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("v1", "")):
            found.append("signature does not verify")
    return found


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"type": headers.get("ikkuna-event-type"), "problems": problems(headers, body)}
        with open(os.path.join(out_dir, "webhooks.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(out_dir, "receiver.port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out_dir, "receiver.port.tmp"), os.path.join(out_dir, "receiver.port"))
cert, key = (os.path.join(out_dir, "sandbox", n) for n in ("gateway.pem", "gateway.key"))
while not (os.path.exists(cert) and os.path.exists(key)):
    time.sleep(0.1)
time.sleep(0.5)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
python3 "$DIR/receiver.py" "$ROOT/docs/operator-api.yaml" "$DIR" 2>"$DIR/receiver.err" &
RECEIVER_PID=$!
for _ in $(seq 100); do [ -f "$DIR/receiver.port" ] && break; sleep 0.1; done
[ -f "$DIR/receiver.port" ] || { cat "$DIR/receiver.err" >&2; exit 1; }
WEBHOOK_URL="https://127.0.0.1:$(cat "$DIR/receiver.port")/hooks/ikkuna"

# The fuzzer sends far more than a citizen would: lift the rate limits so it explores the data
# path instead of 429s (429 itself is documented and checked by the gateway's own tests).
IKKUNA_LIMITS_CITIZEN_PER_MINUTE=1000000 \
IKKUNA_LIMITS_CITIZEN_BURST=100000 \
IKKUNA_LIMITS_CLIENT_PER_SECOND=100000 \
IKKUNA_LIMITS_CLIENT_BURST=100000 \
IKKUNA_EVENTS_POLL_INTERVAL_MS=200 \
IKKUNA_WEBHOOKS_ENDPOINTS="$WEBHOOK_URL" \
IKKUNA_WEBHOOKS_SECRET_FILE="$DIR/webhook.secret" \
IKKUNA_WEBHOOKS_CA_CERT="$DIR/sandbox/ca.pem" \
IKKUNA_WEBHOOKS_INITIAL_BACKOFF_MS=200 \
IKKUNA_WEBHOOKS_MAX_BACKOFF_MS=1000 \
IKKUNA_REMINDERS_CLOCK_OFFSET_SECS=691200 \
IKKUNA_REMINDERS_POLL_INTERVAL_MS=200 \
    target/debug/ikkuna sandbox --data-dir "$DIR/sandbox" >"$DIR/sandbox.out" 2>"$DIR/sandbox.err" &
GATEWAY_PID=$!

# Wait until sandbox.json names the gateway and the gateway's admin listener says ready.
read -r GATEWAY_URL CA_CERT < <(python3 - "$DIR/sandbox" "$GATEWAY_PID" <<'EOF'
import json, os, sys, time, tomllib, urllib.request
data_dir, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("api-fuzz: ikkuna sandbox exited early")
    try:
        with open(os.path.join(data_dir, "sandbox.json")) as f:
            info = json.load(f)
        with open(info["gatewayConfig"], "rb") as f:
            admin = tomllib.load(f)["admin"]["listen"]
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=2) as r:
            if r.status == 200:
                print(info["gatewayUrl"], info["caCert"])
                sys.exit(0)
    except (OSError, ValueError, KeyError):
        pass
    time.sleep(0.25)
sys.exit("api-fuzz: the gateway did not become ready within 60 s")
EOF
) || { tail -n 20 "$DIR/sandbox.err" >&2; exit 1; }
echo "api-fuzz: gateway ready at $GATEWAY_URL"

token() {
    target/debug/ikkuna-sandbox token --data-dir "$DIR/sandbox" --citizen "$1" --ttl 600
}

# Refusing invalid data includes 413 (a reply's text or files beyond DVV's limits). A reply is
# multipart/form-data, where every part is text: the fuzzer's "wrong type" for the text part
# (null, a number) arrives as the valid text "null" or "0", so that one operation is exempt from
# the negative-data check; its limits, shapes and types are tested in tests/replies.rs.
cat >"$DIR/schemathesis.toml" <<'TOML'
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

[[operations]]
include-operation-id = "postReply"
checks.negative_data_rejection.enabled = false
TOML

# The checks run: not_a_server_error, status_code_conformance, content_type_conformance,
# response_headers_conformance, response_schema_conformance, negative_data_rejection and
# unsupported_method. They are named by what is left out, because a `--checks` list on the command
# line would override the per-operation setting above.
EXCLUDED_CHECKS=positive_data_acceptance,missing_required_header,allow_header_conformance,use_after_free,ensure_resource_availability,ignored_auth,object_level_authorization

fuzz() { # $1: label, $2: assertion, $3: max examples, $4: max time
    echo "api-fuzz: $1 (seed $SEED, at most $3 examples per operation, $4 s)"
    # From the scratch directory: schemathesis and hypothesis leave caches in the working directory.
    (cd "$DIR" && schemathesis --no-color --config-file "$DIR/schemathesis.toml" run "$ROOT/docs/operator-api.yaml" \
        --url "$GATEWAY_URL" \
        --tls-verify "$CA_CERT" \
        --header "Authorization: Bearer $2" \
        --exclude-checks "$EXCLUDED_CHECKS" \
        --phases examples,coverage,fuzzing \
        --max-examples "$3" \
        --max-time "$4" \
        --seed "$SEED" \
        --request-timeout 10 \
        --workers 2 \
        --generation-database none \
        ${FUZZ_OPERATION:+--include-operation-id "$FUZZ_OPERATION"} \
        ${FUZZ_REPORT_DIR:+--report vcr --report-preserve-bytes --report-dir "$FUZZ_REPORT_DIR"})
}

status=0
fuzz "citizen with an active consent" "$(token "$CITIZEN")" "$MAX_EXAMPLES" "$MAX_TIME" || status=1
fuzz "citizen without consent" "$(token "$CITIZEN_WITHOUT_CONSENT")" 10 15 || status=1

# New messages with notification settings (a hidden sender with its own texts, and a default
# Verifiable one): their message.created webhooks carry notification hints, and the gateway's
# reminder clock runs 8 days ahead (allowed: DVV is on loopback), so their message.reminder
# webhooks follow at once. Both payloads are checked against the document below.
python3 - "$DIR/sandbox/sandbox.json" "$CITIZEN" <<'EOF' || status=1
import json, sys, urllib.request
info = json.load(open(sys.argv[1]))
for body in (
    {"endUserId": sys.argv[2], "title": "t", "body": "b", "senderName": "Klinikka",
     "notifications": {"senderDetailsInNotifications": "None",
                       "customisedNewMessageNotification": {
                           "title": {"fi": "Uusi viesti", "sv": "Nytt meddelande", "en": "New message"},
                           "content": {"fi": "Lue viesti.", "sv": "Läs meddelandet.", "en": "Read it."}},
                       "unreadMessageNotification": {"reminder": "Default reminder"}}},
    {"endUserId": sys.argv[2], "title": "t", "body": "b", "messageServiceType": "Verifiable"},
):
    request = urllib.request.Request(info["adminUrl"] + "/admin/messages", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 201, r.status
EOF
# The fuzzer opened messages and confirmed receipts, so DVV's feed has events: wait for their
# webhooks (the reminders included), then require every delivery to match the document.
for _ in $(seq 300); do grep -q '"message.reminder"' "$DIR/webhooks.jsonl" 2>/dev/null && break; sleep 0.1; done
sleep 2
if ! python3 - "$DIR/webhooks.jsonl" <<'EOF'
import collections, json, sys
try:
    records = [json.loads(line) for line in open(sys.argv[1])]
except FileNotFoundError:
    sys.exit("api-fuzz: no webhook arrived")
bad = [r for r in records if r["problems"]]
types = collections.Counter(r["type"] for r in records)
print("api-fuzz: webhooks received:", dict(types))
for r in bad[:10]:
    print("api-fuzz: webhook", r["type"], "does not match the document:", "; ".join(r["problems"]))
missing = [t for t in ("message.created", "message.reminder") if not types[t]]
if missing:
    print("api-fuzz: no webhook of type", ", ".join(missing), "arrived to be checked")
sys.exit(1 if bad or not records or missing else 0)
EOF
then
    status=1
fi

if [ "$status" -ne 0 ]; then
    echo "api-fuzz: FAILED (replay with FUZZ_SEED=$SEED); last gateway log lines:" >&2
    tail -n 20 "$DIR/sandbox.err" >&2
fi
exit "$status"
