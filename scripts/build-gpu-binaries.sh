#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a GPU machine without a Rust toolchain: `scopedex` and
# the forward bench with `--features cuda`, for a portable CPU (x86-64-v3 + PCLMULQDQ, never `native`: the GPU
# machine's CPU differs), stripped and packed into dist/scopedex-gpu.tar.zst (carry `dist`).
# Needs the CUDA toolkit (scripts/install-cuda-toolkit.sh); CUDA_COMPUTE_CAP defaults to 90 (H100).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/scopedex/target-gpu}"
# x86-64-v3 (AVX2, FMA, BMI2) leaves out PCLMULQDQ, which RocksDB's CRC32C code needs
# ("'__builtin_ia32_pclmulqdq128' needs isa option -mpclmul"); every x86-64-v3 CPU has it.
export RUSTFLAGS="-C target-cpu=x86-64-v3 -C target-feature=+pclmulqdq"
cargo build --release --locked --features cuda --bin scopedex
bench=$(cargo bench --locked -p scopedex-benches --features cuda --bench forward --no-run --message-format=json 2>"${TMPDIR:-/tmp}/build-gpu-bench.log" \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "forward" and m.get("executable"):
        print(m["executable"])') || true
[ -n "$bench" ] || { echo "build-gpu-binaries: the forward bench did not build:" >&2; tail -20 "${TMPDIR:-/tmp}/build-gpu-bench.log" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$CARGO_TARGET_DIR/release/scopedex" "$stage/scopedex"
cp "$bench" "$stage/forward-bench"
strip "$stage/scopedex" "$stage/forward-bench"
mkdir -p dist
tar -C "$stage" -cf - scopedex forward-bench | zstd -19 -T0 -q -f -o dist/scopedex-gpu.tar.zst
ls -l dist/scopedex-gpu.tar.zst
echo "run on the GPU machine: bash scripts/gpu-check.sh   (carry: dist)"
