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
cargo test --workspace --all-targets --locked
bash scripts/test-web.sh
