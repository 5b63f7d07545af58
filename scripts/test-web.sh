#!/usr/bin/env bash
# Browser tests of the web UI (web/): Debian's Chromium driven by playwright-core against the real
# `scopedex serve` on a small real index (scripts/make-test-index.sh, cached under the target dir).
# Called by scripts/test.sh after the cargo tests; runnable on its own.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bash scripts/install-system-deps.sh chromium
command -v node >/dev/null && command -v npm >/dev/null || { echo "test-web: node and npm are required" >&2; exit 1; }
# The binary under test (a no-op when cargo test already built it).
cargo build -p scopedex-cli --locked
cd web
npm ci --no-audit --no-fund
npm run build
npm test
