#!/usr/bin/env bash
# The API against its spec with real tools: schemas/openapi.yaml must pass openapi-spec-validator,
# and a bounded schemathesis run against a live `scopedex serve` (on a small real index with its
# model) must find no failure: no 5xx, every response (status, headers, body) as the spec says.
# Called by scripts/test.sh after the cargo tests; runnable on its own.
# Environment: CARGO_TARGET_DIR, API_TEST_EXAMPLES (examples per operation, default 50).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python3 -m pip install --quiet --disable-pip-version-check \
  "openapi-spec-validator==0.7.1" "schemathesis==3.39.16" "hypothesis==6.124.7"

echo "test-api: openapi-spec-validator schemas/openapi.yaml"
python3 -m openapi_spec_validator schemas/openapi.yaml

cargo build -p scopedex-cli --locked
bin="$CARGO_TARGET_DIR/debug/scopedex"
index="$CARGO_TARGET_DIR/api-test-index"
if [ ! -f "$index/manifest.json" ] || [ "$bin" -nt "$index/manifest.json" ]; then
  rm -rf "$index" "$index.src"
  SCOPEDEX_BIN="$bin" bash scripts/make-test-index.sh "$index"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$bin" serve "$index" --addr "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log" "${spec:-}"' EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/api/health" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done

# The spec as served by this index: SAE ids, feature and context ids drawn from the ones it has,
# so the generated requests reach the handlers' success paths, not only their 404s.
spec=$(mktemp --suffix=.yaml)
python3 - "http://127.0.0.1:$port" schemas/openapi.yaml "$spec" <<'PY'
import json, sys, urllib.request, yaml
base, src, dst = sys.argv[1:]
get = lambda p: json.load(urllib.request.urlopen(base + p))
saes = get("/api/saes")["saes"]
n_contexts = get("/api/index")["n_contexts"]
doc = yaml.safe_load(open(src))
params = doc["components"]["parameters"]
params["Sae"]["schema"]["enum"] = [s["sae_id"] for s in saes]
params["Feature"]["schema"]["maximum"] = min(s["d_sae"] for s in saes) - 1
for op in doc["paths"]["/api/contexts/{id}/similar"].values():
    for p in op["parameters"]:
        if p.get("name") == "id":
            p["schema"]["maximum"] = n_contexts - 1
yaml.safe_dump(doc, open(dst, "w"), sort_keys=False)
PY

echo "test-api: schemathesis against http://127.0.0.1:$port"
# Derandomized: the same cases every run, so a failure reproduces.
python3 -m schemathesis.cli run "$spec" \
  --base-url "http://127.0.0.1:$port" \
  --checks all \
  --hypothesis-max-examples "${API_TEST_EXAMPLES:-50}" \
  --hypothesis-derandomize \
  --hypothesis-suppress-health-check all \
  --request-timeout 60000 \
  --no-color
