# Sourced by the scripts that build the `cuda` feature: installs the CUDA 13.0 toolkit from PyPI
# when missing (scripts/install-cuda-toolkit.sh) and exports what the build reads.
prefix="${CUDA_TOOLKIT_PREFIX:-/var/cache/scopedex/cuda-13.0}"
bash "$(dirname "${BASH_SOURCE[0]}")/install-cuda-toolkit.sh" "$prefix" >/dev/null
export CUDA_ROOT="$prefix" CUDA_PATH="$prefix" CUDA_HOME="$prefix" PATH="$prefix/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
