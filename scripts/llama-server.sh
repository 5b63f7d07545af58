#!/usr/bin/env bash
# Serve a GGUF through llama.cpp's OpenAI-compatible server (the `llama-cpp-python[server]`
# package from PyPI, built from source once into a venv cached under /var/cache/scopedex).
#
#   scripts/llama-server.sh install              build the venv (skipped when present)
#   scripts/llama-server.sh cached               exit 0 when the venv is built
#   scripts/llama-server.sh start [PORT] [GGUF]  start in the background; prints the base URL,
#                                                writes the pid to $SCOPEDEX_LLAMA_PID_FILE
#   scripts/llama-server.sh stop                 stop the server started by `start`
#
# Defaults: port 8089, assets/models/SmolLM2-135M-Instruct.Q4_1.gguf, nproc - 1 threads (at least
# 1; SCOPEDEX_LLAMA_THREADS), an 8192-token context (SCOPEDEX_LLAMA_CTX).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=0.3.36
venv="${SCOPEDEX_LLAMA_VENV:-/var/cache/scopedex/llama-cpp-python-$version}"
pid_file="${SCOPEDEX_LLAMA_PID_FILE:-${TMPDIR:-/tmp}/scopedex-llama-server.pid}"
log_file="${SCOPEDEX_LLAMA_LOG:-${TMPDIR:-/tmp}/scopedex-llama-server.log}"
die() { echo "llama-server: $*" >&2; exit 1; }

install() {
  if cached; then
    echo "llama-server: $venv (cached)"
    return
  fi
  command -v python3 >/dev/null || die "python3 is needed"
  rm -rf "$venv.part"
  python3 -m venv "$venv.part"
  "$venv.part/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  echo "llama-server: building llama-cpp-python==$version from source (once; several minutes on 2 cores)..."
  # CPU only, no BLAS: the build stays self-contained. AVX2 + FMA rather than -march=native:
  # the cached build may be reused on another machine of the kind (AVX2 or AVX-512).
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  FORCE_CMAKE=1 \
    "$venv.part/bin/pip" install --disable-pip-version-check --no-cache-dir \
      "llama-cpp-python[server]==$version" \
    || die "could not build llama-cpp-python[server]==$version (pip's message above)"
  mv "$venv.part" "$venv"
  # The venv's scripts name the .part path; scopedex runs the server through `python -m`.
  echo "llama-server: $venv (built)"
}

start() {
  local port="${1:-8089}"
  local gguf="${2:-$root/assets/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
  [ -f "$gguf" ] || die "$gguf not found (run scripts/fetch-assets.sh)"
  install >/dev/null
  # One core left to everything else: llama.cpp's threads spin-wait on each other, and on a
  # busy 2-core machine two of them run ~10x slower than one.
  local threads=$(( $(nproc) > 2 ? $(nproc) - 1 : 1 ))
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    die "a server is already running (pid $(cat "$pid_file")); run: $0 stop"
  fi
  "$venv/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
    --n_ctx "${SCOPEDEX_LLAMA_CTX:-8192}" --n_threads "${SCOPEDEX_LLAMA_THREADS:-$threads}" \
    --model_alias "$(basename "$gguf" .gguf)" >"$log_file" 2>&1 &
  echo $! >"$pid_file"
  for _ in $(seq 1 240); do
    if curl -fsS "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port/v1"
      return
    fi
    kill -0 "$(cat "$pid_file")" 2>/dev/null || { tail -20 "$log_file" >&2; die "the server exited"; }
    sleep 0.5
  done
  tail -20 "$log_file" >&2
  die "the server did not answer on port $port within 120 s"
}

stop() {
  [ -f "$pid_file" ] || return 0
  kill "$(cat "$pid_file")" 2>/dev/null || true
  rm -f "$pid_file"
}

cached() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null
}

case "${1:-}" in
  install) install ;;
  cached) cached ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  *) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
