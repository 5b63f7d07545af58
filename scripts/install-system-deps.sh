#!/usr/bin/env bash
# Install the Debian packages the build and tests need, only those missing.
#   libclang-dev: RocksDB's bindgen;  clang: its C++ build;  pkg-config, cmake: -sys crates.
#   libopenblas0-pthread: the BLAS sgemm scopedex-linalg loads at run time (optional, ~2x faster).
# Extra package names may be passed as arguments (e.g. chromium for the browser tests).
set -euo pipefail
want=(libclang-dev clang pkg-config unzip libopenblas0-pthread "$@")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-system-deps: installing ${missing[*]}"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
$sudo_cmd apt-get update -qq || { echo "install-system-deps: apt-get update failed: is the Debian mirror reachable?" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
