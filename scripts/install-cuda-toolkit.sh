#!/usr/bin/env bash
# Assemble a CUDA 13.0 toolkit (nvcc + the headers/libraries candle's `cuda` feature builds and
# links against) from NVIDIA's PyPI wheels, with no driver and no GPU on this machine.
#
#   scripts/install-cuda-toolkit.sh [PREFIX]      (or CUDA_TOOLKIT_PREFIX=...; default below)
#
# Why these pieces (candle-core 0.11.1, feature `cuda`):
#   - candle-kernels' build.rs (cudaforge) runs nvcc: .cu -> PTX, and the MoE/GGUF kernels -> libmoe.a;
#     nvcc needs bin/ (nvcc, ptxas, fatbinary, cudafe++, nvlink), nvvm/ (cicc, libdevice),
#     include/crt (nvidia-cuda-crt), cuda_runtime.h/cuda_fp16.h/cuda_bf16.h (nvidia-cuda-runtime),
#     CUB/libcu++ headers (nvidia-cuda-cccl).
#   - cudarc 0.19 is built with `dynamic-linking` by candle, so the final link needs libcuda, libnvrtc,
#     libcurand, libcublas, libcublasLt (+ libcudart from candle-kernels) as linkable .so files.
#     The wheels ship only versioned sonames (libcublas.so.13 ...), so unversioned symlinks are added.
#   - The driver library libcuda is not on PyPI: a link-time stub (lib/stubs/libcuda.so, soname
#     libcuda.so.1, every entry point returns CUDA_ERROR_STUB_LIBRARY=34) is generated from cuda.h
#     with the host C compiler. At run time the driver's real libcuda.so.1 is used. On a machine with
#     no driver, add lib/stubs/run to LD_LIBRARY_PATH (it holds libcuda.so.1 -> stub) so a cuda build
#     still starts and Device::new_cuda fails with an error; never do that on a GPU machine.
# Versions: the CUDA 13.0 Update 2 set (the pins of PyPI's cuda-toolkit==13.0.2), for driver >= 580.
# Idempotent: a complete prefix has a marker file naming the versions; it is then left untouched.
set -euo pipefail

PREFIX="${1:-${CUDA_TOOLKIT_PREFIX:-/var/cache/scopedex/cuda-13.0}}"
PKGS=(
  nvidia-cuda-nvcc==13.0.88     # nvcc, ptxas, fatbinary, nvlink, cudafe++
  nvidia-cuda-crt==13.0.88      # include/crt/*.h (nvcc's host/device glue headers)
  nvidia-nvvm==13.0.88          # nvvm/bin/cicc, nvvm/libdevice (nvcc's device compiler)
  nvidia-cuda-runtime==13.0.96  # cuda.h, cuda_runtime.h, cuda_fp16/bf16.h, libcudart
  nvidia-cuda-cccl==13.0.85     # CUB / Thrust / libcu++ headers (include/cccl)
  nvidia-cuda-nvrtc==13.0.88    # libnvrtc (cudarc passes -lnvrtc to the linker; unused symbols, so not NEEDED)
  nvidia-cublas==13.1.0.3       # libcublas, libcublasLt (matmul)
  nvidia-curand==10.4.0.35      # libcurand (random tensors)
)
MARKER="$PREFIX/.scopedex-cuda-toolkit"
WANT="${PKGS[*]} stub-v2"

print_env() {
  cat <<EOF
# CUDA 13.0 toolkit in $PREFIX. For a build with --features cuda:
export CUDA_ROOT="$PREFIX" CUDA_PATH="$PREFIX" CUDA_HOME="$PREFIX"
export PATH="$PREFIX/bin:\$PATH"
export CUDA_COMPUTE_CAP=90        # sm_90 (H100); 80 for A100, 89 for L4/L40; no GPU here to detect it
export CUDARC_CUDA_VERSION=13000  # optional: cudarc otherwise parses \`nvcc --version\`
# candle-kernels' nvcc jobs run on half the cores by default (~14 min cold on 1 core); CUDAFORGE_THREADS=N overrides
# To run: the toolkit libraries (libcublas.so.13, libcudart.so.13, ...) are not on the loader path:
export LD_LIBRARY_PATH="$PREFIX/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# Only on a machine WITHOUT an NVIDIA driver (so the binary starts; CUDA calls then fail cleanly):
#   export LD_LIBRARY_PATH="$PREFIX/lib/stubs/run:\$LD_LIBRARY_PATH"
EOF
}

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ] && [ -x "$PREFIX/bin/nvcc" ]; then
  echo "install-cuda-toolkit: $PREFIX is complete" >&2
  print_env
  exit 0
fi

# A python with pip: $PYTHON, else python3, else the project's reference venv.
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3 /var/cache/scopedex/venv-ref/bin/python; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -m pip --version >/dev/null 2>&1; then PY="$c"; break; fi
  done
fi
[ -n "$PY" ] || { echo "install-cuda-toolkit: no python with pip found (set PYTHON=...)" >&2; exit 1; }
CC_BIN="${CC:-cc}"
command -v "$CC_BIN" >/dev/null 2>&1 || { echo "install-cuda-toolkit: a C compiler ($CC_BIN) is needed for the libcuda stub" >&2; exit 1; }

# Never delete a directory this script did not make (a stale or partial install of ours has the marker
# or is empty).
if [ -d "$PREFIX" ] && [ ! -f "$MARKER" ] && [ -n "$(ls -A "$PREFIX")" ]; then
  echo "install-cuda-toolkit: $PREFIX exists, is not empty and was not made by this script; choose another prefix" >&2
  exit 1
fi

t0=$(date +%s)
mkdir -p "$(dirname "$PREFIX")"
STAGE="$(mktemp -d "$(dirname "$PREFIX")/.cuda-stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

# All the wheels unpack into nvidia/cu13/{bin,include,lib,nvvm}: `pip install --target` merges them
# and keeps the executables' mode bits. --no-deps: each wheel is self-contained; the set is pinned.
echo "install-cuda-toolkit: downloading ${#PKGS[@]} wheels (~680 MB) with $PY" >&2
if ! "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile \
      --only-binary=:all: --target "$STAGE/site" "${PKGS[@]}"; then
  echo "install-cuda-toolkit: pip failed to download/install the CUDA wheels (is PyPI reachable?):" >&2
  printf '  %s\n' "${PKGS[@]}" >&2
  exit 1
fi
ROOT="$STAGE/site/nvidia/cu13"
[ -x "$ROOT/bin/nvcc" ] && [ -x "$ROOT/nvvm/bin/cicc" ] && [ -f "$ROOT/include/cuda_bf16.h" ] \
  || { echo "install-cuda-toolkit: unexpected wheel layout under $ROOT (no bin/nvcc, nvvm/bin/cicc or include/cuda_bf16.h)" >&2; exit 1; }

# nvcc.profile looks for targets under lib64 as well as lib; the build scripts probe both.
ln -s lib "$ROOT/lib64"
# Linkable names for the versioned sonames shipped in the wheels (ld -lcublas wants libcublas.so).
( cd "$ROOT/lib"
  for so in lib*.so.*; do
    base="${so%%.so.*}.so"
    case "$so" in *.alt.so.*|*-builtins*) continue ;; esac
    [ -e "$base" ] || ln -s "$so" "$base"
  done )

# libcuda link stub: one function per driver entry point declared in cuda.h, including the
# versioned names its #defines map to (cuMemAlloc -> cuMemAlloc_v2): cudarc binds the mapped names.
mkdir -p "$ROOT/lib/stubs/run"
{
  echo "/* generated by install-cuda-toolkit.sh: libcuda link stub; every call returns 34 (CUDA_ERROR_STUB_LIBRARY) */"
  { grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' "$ROOT/include/cuda.h" | tr -d '( \t'
    grep -oE '^[[:space:]]*#[[:space:]]*define[[:space:]]+cu[A-Z][A-Za-z0-9_]*[[:space:]]+cu[A-Z][A-Za-z0-9_]*[[:space:]]*$' "$ROOT/include/cuda.h" \
      | awk '{print $NF}'
  } | sort -u | grep -vxE 'cuGetError(Name|String)' | awk '{printf "int %s(void) { return 34; }\n", $1}'
  # Error texts, so that callers' messages say what happened instead of failing to describe it.
  echo 'int cuGetErrorName(int e, const char **s) { *s = e == 34 ? "CUDA_ERROR_STUB_LIBRARY" : "CUDA_ERROR_UNKNOWN"; return 0; }'
  echo 'int cuGetErrorString(int e, const char **s) { *s = e == 34 ? "CUDA driver is a stub library (no NVIDIA driver on this machine)" : "unknown error (libcuda stub)"; return 0; }'
} > "$STAGE/cuda_stub.c"
"$CC_BIN" -shared -fPIC -O0 -w -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" "$STAGE/cuda_stub.c" \
  || { echo "install-cuda-toolkit: compiling the libcuda stub failed" >&2; exit 1; }
ln -s ../libcuda.so "$ROOT/lib/stubs/run/libcuda.so.1"

# Smoke test: nvcc finds its pieces and compiles a bf16 kernel to PTX (no GPU needed).
printf '#include <cuda_bf16.h>\n#include <cub/block/block_reduce.cuh>\n__global__ void k(__nv_bfloat16 *x){ x[threadIdx.x] = __float2bfloat16(__bfloat162float(x[threadIdx.x]) * 2.f); }\n' > "$STAGE/t.cu"
if ! "$ROOT/bin/nvcc" --ptx -arch=sm_90 -std=c++17 -o "$STAGE/t.ptx" "$STAGE/t.cu"; then
  echo "install-cuda-toolkit: the assembled nvcc failed to compile a test kernel (host compiler: $(c++ --version | head -1))" >&2
  exit 1
fi

rm -rf "$PREFIX"
mv "$ROOT" "$PREFIX"
echo "$WANT" > "$MARKER"
echo "install-cuda-toolkit: installed $("$PREFIX/bin/nvcc" --version | grep -o 'release [0-9.]*') into $PREFIX ($(du -sh "$PREFIX" | cut -f1), $(( $(date +%s) - t0 ))s)" >&2
print_env
