#!/usr/bin/env bash
# The project's test command (README, CI): install what is missing, fetch the assets, then
# build the web UI (the server embeds it), format check, clippy with warnings as errors, every
# test of the workspace, the API against its spec with openapi-spec-validator and schemathesis
# (scripts/test-api.sh), trained SAEs read by SAELens' Llama Scope loader and by lm_saes
# (scripts/test-saelens.sh), sharded indexing as a job array on a real one-node Slurm cluster
# (scripts/test-slurm.sh), then the browser tests of the web UI (scripts/test-web.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-system-deps.sh slurm-wlm munge
bash scripts/fetch-assets.sh --model gemma-3-270m
# llama.cpp's OpenAI-compatible server for the explain/score e2e test (built once, cached).
bash scripts/llama-server.sh install
# The web UI is built first: the server embeds web/dist when it is compiled.
(cd web && npm ci --no-audit --no-fund && npm run build)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Default targets (libs, bins, tests, doc tests): benches are run by hand, not here.
cargo test --workspace --locked
# The GPU path compiles (CUDA toolkit from PyPI, no GPU): scripts/check-cuda-build.sh.
bash scripts/check-cuda-build.sh
bash scripts/test-api.sh
bash scripts/test-saelens.sh
bash scripts/test-slurm.sh
bash scripts/test-web.sh
