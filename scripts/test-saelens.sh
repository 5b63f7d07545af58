#!/usr/bin/env bash
# Checks that SAEs `scopedex train-sae --activation jumprelu` writes load, unchanged, in SAELens'
# own Llama Scope loader (`llama_scope_sae_huggingface_loader`, SAELens 6.54) and in lm_saes' own
# loader (`SparseAutoEncoder.from_pretrained(folder)`, OpenMOSS llamascopium 2.0.0b34, which
# `lm-saes` 2.x on PyPI now installs), and that both give the codes `scopedex encode` gives on
# the same activations: a residual SAE and a transcoder, trained briefly on SmolLM2. Called by
# scripts/test.sh. SAELens (with torch) is installed once into a venv cached under
# /var/cache/scopedex and reused; llamascopium is added to that venv once, with its own marker.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
venv="${SCOPEDEX_SAELENS_VENV:-/var/cache/scopedex/venv-saelens}"
if [ ! -f "$venv/.scopedex-complete" ]; then
  echo "test-saelens: installing sae-lens 6.54.12 into $venv (once)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "sae-lens==6.54.12"
  touch "$venv/.scopedex-complete"
fi
cargo build --workspace --locked
bin="$CARGO_TARGET_DIR/debug/scopedex"
work=$(mktemp -d /tmp/scopedex-saelens.XXXXXX)
trap 'rm -rf "$work"' EXIT

model="$root/assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
corpus="$root/assets/corpora/nlp-corpus"
"$bin" train-sae --model "$model" --sae-id L3R-8x --sae-id L3TC-8x --corpus "$corpus" \
  --tokens 16384 --batch-rows 1024 --buffer-rows 4096 --eval-tokens 4096 \
  --activation jumprelu --name-prefix smollm2 --out "$work/saes" 2>&1 | grep -v INFO
# Texts the SAEs were not trained on: the end of the corpus's last document.
python3 - "$corpus" "$work/texts.txt" <<'PY'
import glob, json, sys
last = sorted(glob.glob(sys.argv[1] + "/doc-*.json"), key=lambda p: int(p.rsplit("-", 1)[1][:-5]))[-1]
texts = [" ".join(t.split()) for t in json.load(open(last))[-40:]]
open(sys.argv[2], "w").write("\n".join(t for t in texts if t) + "\n")
PY
"$bin" dump-activations --model "$model" --input "$work/texts.txt" \
  --hooks blocks.3.hook_resid_post,blocks.3.ln2.hook_normalized --out "$work/acts.safetensors" 2>/dev/null
"$bin" encode --sae "$work/saes/smollm2-L3R-8x" --input "$work/acts.safetensors" \
  --tensor blocks.3.hook_resid_post --out "$work/codes-R.safetensors" 2>/dev/null
"$bin" encode --sae "$work/saes/smollm2-L3TC-8x" --input "$work/acts.safetensors" \
  --tensor blocks.3.ln2.hook_normalized --out "$work/codes-TC.safetensors" 2>/dev/null
"$venv/bin/python" scripts/saelens-reads-trained.py "$work/saes" "$work/acts.safetensors" \
  "smollm2-L3R-8x=blocks.3.hook_resid_post=$work/codes-R.safetensors" \
  "smollm2-L3TC-8x=blocks.3.ln2.hook_normalized=$work/codes-TC.safetensors"
echo "test-saelens: SAELens ok"
if [ ! -f "$venv/.scopedex-llamascopium-2.0.0b34" ]; then
  echo "test-saelens: installing llamascopium 2.0.0b34 (lm_saes) into $venv (once)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "llamascopium==2.0.0b34"
  "$venv/bin/python" -W ignore -c "import sae_lens, llamascopium" # the install must not break SAELens
  touch "$venv/.scopedex-llamascopium-2.0.0b34"
fi
"$venv/bin/python" scripts/lmsaes-reads-trained.py "$work/saes" "$work/acts.safetensors" \
  "smollm2-L3R-8x=blocks.3.hook_resid_post=$work/codes-R.safetensors" \
  "smollm2-L3TC-8x=blocks.3.ln2.hook_normalized=$work/codes-TC.safetensors"
echo "test-saelens: lm_saes ok"
echo "test-saelens: ok"
