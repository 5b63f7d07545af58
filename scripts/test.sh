#!/usr/bin/env bash
# The project's test command (README, CI): install what is missing, fetch the assets, then
# format check, clippy with warnings as errors, every test of the workspace, then the browser
# tests of the web UI (scripts/test-web.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-system-deps.sh
bash scripts/fetch-assets.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Default targets (libs, bins, tests, doc tests): benches are run by hand, not here.
cargo test --workspace --locked
bash scripts/test-web.sh
