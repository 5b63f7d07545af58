#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, fetch the assets, build, and
# run the pipeline as far as it exists today (see README "Status").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-system-deps.sh
bash scripts/fetch-assets.sh
cargo build --locked --bin scopedex
bin="${CARGO_TARGET_DIR:-$root/target}/debug/scopedex"
model=assets/models/SmolLM2-135M-Instruct.Q4_1.gguf
echo "== model =="
"$bin" info --model "$model"
