#!/usr/bin/env bash
# Compiles the `cuda` feature of the whole workspace (no GPU needed, none used), so the GPU path
# cannot rot: the CUDA 13.0 toolkit comes from PyPI (scripts/install-cuda-toolkit.sh, cached
# under /var/cache/scopedex), CUDA_COMPUTE_CAP names the H100 (sm_90). candle-kernels' nvcc
# step (~14 min of one core) runs once; the target dir keeps it. Called by scripts/test.sh.
# The crates with device code are checked: the model (candle's CUDA ops) and the SAEs. The
# others only forward the feature; checking them with it would rebuild RocksDB's C++ (the CUDA
# build's bindgen features differ), 15 more minutes for no device code.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
prefix="${CUDA_TOOLKIT_PREFIX:-/var/cache/scopedex/cuda-13.0}"
bash scripts/install-cuda-toolkit.sh "$prefix" >/dev/null
export CUDA_ROOT="$prefix" CUDA_PATH="$prefix" CUDA_HOME="$prefix" PATH="$prefix/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
cargo check --locked --all-targets -p scopedex-model -p scopedex-sae \
  --features scopedex-model/cuda,scopedex-sae/cuda
echo "check-cuda-build: ok (sm_$CUDA_COMPUTE_CAP)"
