#!/usr/bin/env bash
# Side-by-side benchmark of scopedex against the Python stack users would otherwise use (issue 11),
# in one run, on this machine, same model / SAE / tokens / threads:
#   1. forward only: HF transformers (all 30 blocks, no LM head) vs `scopedex dump-activations`
#      at blocks.29 (same contexts, same batch size 16, 2 threads);
#   2. top-20 contexts for every feature of the L6R demo SAE: `scopedex index` vs the
#      transformers + SAELens + torch top-k loop (scripts/peers/topk_loop.py), tokens/s and peak
#      RSS; SAEDashboard (SaeVisRunner defaults) on one 256-feature batch, scaled to all features;
#      delphi's LatentCache (whole model, every nonzero kept) on the same contexts;
#   3. agreement of the top-20 context ids for 100 random live features (exact / tie-tolerant);
#   4. SAEs per pass: the torch loop with N SAEs vs `scopedex index` with N SAEs, N = 1, 4, 8.
# Same tokens: scopedex indexes first; the peers read its contexts.parquet (token ids, BOS
# first), so tokenization, context slicing and BOS handling are identical; both exclude BOS from
# the statistics (scopedex's default) and rank by max activation per context, ties by lower id.
# Writes out/bench-peers/results.json and out/bench-peers/results.md.
#
# Usage: scripts/bench-peers.sh [TOKENS=65536]
# Env: SCOPEDEX_BIN (prebuilt binary; default: cargo build --release), PEERS_VENV
#      (default /var/cache/scopedex/venv-peers), THREADS (2), SKIP_SAEDASHBOARD=1, SKIP_DELPHI=1,
#      SKIP_SCALING=1.
# Network is needed only for the first venv set-up (pip); later runs are offline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tokens="${1:-65536}"
threads="${THREADS:-2}"
venv="${PEERS_VENV:-/var/cache/scopedex/venv-peers}"
out="$root/out/bench-peers"
work="$out/work"
model=assets/models/SmolLM2-135M-Instruct.Q4_1.gguf
ctx_len=128
batch=16
top_k=20

# Rough wall time on an idle 2-core machine, from the per-token rates of the reference notes
# (HF forward ~1,100 tok/s, layer-6 jobs 3,000-4,500 tok/s, SAEDashboard batch ~2,800 tok/s)
# plus ~15 s of model loading per process; a busy machine takes 3-5x as long.
est=$(python3 -c "t=$tokens; s=t*(1/1100+1/1000+1/3000+1/4000+1/2800+1/1000+2/2000+2/1500+2/2500)+17*15; print(f'{s/60:.0f}')")
echo "bench-peers: $tokens tokens, $threads threads; expected ≈ $est min on an idle 2-core machine (+ first-time venv set-up)"

export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TQDM_DISABLE=1 PYTHONWARNINGS=ignore WANDB_MODE=disabled

# --- venv (idempotent: re-installed only when requirements.txt changes) -----------------------
req=scripts/peers/requirements.txt
stamp="$venv/.scopedex-requirements.sha256"
want=$(cat "$req" scripts/peers/requirements-delphi.txt scripts/peers/requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $venv (pip, PyPI; ~3 GB, a few minutes) ..."
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$req" -c scripts/peers/requirements.lock
  # delphi: see requirements-delphi.txt for why --no-deps.
  "$venv/bin/pip" install -q --no-deps eai-delphi==0.1.3
  "$venv/bin/pip" install -q -r scripts/peers/requirements-delphi.txt -c scripts/peers/requirements.lock
  echo "$want" > "$stamp"
fi
py="$venv/bin/python"
"$py" -c "import torch, transformers, sae_lens, sae_dashboard, transformer_lens, pyarrow; from delphi.latents import LatentCache" \
  || { echo "venv $venv is broken; remove it and rerun" >&2; exit 1; }

# --- scopedex (release) ------------------------------------------------------------------------
bash scripts/fetch-assets.sh >/dev/null
[ -x /usr/bin/time ] || bash scripts/install-system-deps.sh time
if [ -z "${SCOPEDEX_BIN:-}" ]; then
  cargo build --locked --release -p scopedex-cli
  SCOPEDEX_BIN="${CARGO_TARGET_DIR:-$root/target}/release/scopedex"
fi
bin="$SCOPEDEX_BIN"

rm -rf "$work" && mkdir -p "$work/logs" "$work/saes" "$work/saelens" "$work/res"
# --- corpus: each nlp-corpus file as one document (one line), so contexts are full 128-token
# windows (BOS + 127), as in the reference measurement (512 prompts x 128 tokens). ------------
python3 - "$work/corpus.txt" <<'PY'
import json, os, sys
d = "assets/corpora/nlp-corpus"
files = sorted((f for f in os.listdir(d) if f.startswith("doc-") and f.endswith(".json")),
               key=lambda f: int(f[4:-5]))
with open(sys.argv[1], "w") as out:
    for f in files:
        out.write(" ".join(s.replace("\n", " ").strip() for s in json.load(open(os.path.join(d, f)))) + "\n")
PY

# --- SAEs: the 5 trained demo SAEs + 3 fabricated ones (layers 2, 4, 5) for the 8-SAE run. All
# read blocks <= 6, so every run's forward stops at block 6 and only the SAE count changes. ----
demo=$(ls -d out/demo-saes/*/SmolLM2-135M-Instruct-L6R-8x 2>/dev/null | head -1 | xargs -r dirname)
[ -n "$demo" ] || { echo "no demo SAEs in out/demo-saes (run scripts/demo.sh first)" >&2; exit 1; }
for p in L6R L6A L6M L6TC L3R; do ln -sfn "$root/$demo/SmolLM2-135M-Instruct-$p-8x" "$work/saes/$p-8x"; done
for l in 2 4 5; do
  "$bin" fabricate-sae --out "$work/saes/L${l}R-8x" --hook-in "blocks.$l.hook_resid_post" \
    --d-sae 4608 --k 32 --seed "$l" >/dev/null
done
pairs=(); for s in "$work"/saes/*; do pairs+=("$s" "$work/saelens/$(basename "$s")"); done
"$py" scripts/peers/convert_sae.py "${pairs[@]}" >/dev/null
# The HF side loads the same weights: transformers dequantizes the GGUF to f32 once (untimed) and
# saves them as safetensors, as a user of the Python stack would have them.
hf_model="$out/hf-model-f32"
"$py" scripts/peers/common.py export "$model" "$hf_model" 2>/dev/null
sets_1="L6R-8x"; sets_4="L6R-8x L6A-8x L6M-8x L6TC-8x"; sets_8="$sets_4 L3R-8x L2R-8x L4R-8x L5R-8x"

# Runs a command; records "wall_s peak_rss_mb" in $work/res/$1.time and its output in logs/.
measure() { local name="$1"; shift
  /usr/bin/time -f "%e %M" -o "$work/res/$name.time" "$@" >"$work/logs/$name.out" 2>"$work/logs/$name.err" \
    || { echo "FAILED: $name: $*" >&2; tail -20 "$work/logs/$name.err" >&2; exit 1; }
  echo "  $name: $(awk '{printf "%s s, peak RSS %.0f MB", $1, $2/1024}' "$work/res/$name.time")"; }
index_run() { local name="$1" max="$2"; shift 2; local args=()
  for s in "$@"; do args+=(--sae "$work/saes/$s"); done
  measure "$name" "$bin" index --model "$model" "${args[@]}" --corpus "$work/corpus.txt" --txt-lines \
    --out "$work/$name" --max-tokens "$max" --ctx-len $ctx_len --batch-size $batch --top-k $top_k \
    --threads "$threads" --checkpoint-every 0 --cross-cooc none; }
loop_run() { local name="$1" idx="$2"; shift 2; local args=()
  for s in "$@"; do args+=(--sae "$work/saelens/$s"); done
  measure "$name" "$py" scripts/peers/topk_loop.py --index "$idx" --model "$hf_model" "${args[@]}" \
    --out "$work/res/$name.json" --top-k $top_k --batch-size $batch --threads "$threads" --save-top "$work/top-$name"; }

echo "[1/5] scopedex index, 1 SAE (L6R-8x), $tokens tokens; and a 1-context run (fixed costs)"
index_run index1 "$tokens" $sets_1
index_run index1-tiny $ctx_len $sets_1
idx="$work/index1"

echo "[2/5] peer: transformers + SAELens + torch top-$top_k loop, 1 SAE, same contexts"
loop_run loop1 "$idx" $sets_1

echo "[3/5] agreement (100 random live features, top-$top_k)"
"$py" scripts/peers/agreement.py --index "$idx" --sae-id L6R-8x --peer "$work/top-loop1/L6R-8x.npz" \
  --out "$work/res/agreement.json" --top-k $top_k --features 100 | tail -1

echo "[4/5] forward only (30 blocks): HF transformers vs scopedex dump-activations"
"$py" - "$idx" "$work/contexts.txt" <<'PY'
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1] + "/contexts.parquet", columns=["context_id", "text"]).sort_by("context_id")
open(sys.argv[2], "w").write("".join(x.replace("\n", " ") + "\n" for x in t["text"].to_pylist()))
PY
head -1 "$work/contexts.txt" > "$work/contexts-tiny.txt"
measure hf-forward "$py" scripts/peers/hf_forward.py --index "$idx" --model "$hf_model" \
  --out "$work/res/hf-forward.json" --batch-size $batch --threads "$threads"
measure dump "$bin" dump-activations --model "$model" --hooks blocks.29.hook_resid_post \
  --input "$work/contexts.txt" --ctx-len $ctx_len --out "$work/acts.safetensors"
measure dump-tiny "$bin" dump-activations --model "$model" --hooks blocks.29.hook_resid_post \
  --input "$work/contexts-tiny.txt" --ctx-len $ctx_len --out "$work/acts-tiny.safetensors"
dump_tokens=$(python3 -c "import struct,json,sys; f=open(sys.argv[1],'rb'); h=json.loads(f.read(struct.unpack('<Q',f.read(8))[0])); print(h['tokens']['shape'][0])" "$work/acts.safetensors")
rm -f "$work/acts.safetensors" "$work/acts-tiny.safetensors"
echo "$dump_tokens" > "$work/res/dump.tokens"

if [ "${SKIP_SAEDASHBOARD:-0}" != 1 ]; then
  echo "      SAEDashboard: one 256-feature batch (default minibatch_size_features), scaled to 4608"
  measure saedashboard "$py" scripts/peers/saedashboard_run.py --index "$idx" --model "$hf_model" \
    --sae "$work/saelens/L6R-8x" --out "$work/res/saedashboard.json" --features 256 --threads "$threads"
fi

if [ "${SKIP_DELPHI:-0}" != 1 ]; then
  echo "      delphi LatentCache (whole model, all nonzeros kept), same contexts"
  measure delphi "$py" scripts/peers/delphi_cache.py --index "$idx" --model "$hf_model" \
    --sae "$work/saelens/L6R-8x" --out "$work/res/delphi.json" --save-dir "$work/delphi-cache" \
    --batch-size $batch --threads "$threads"
  rm -rf "$work/delphi-cache"
fi

if [ "${SKIP_SCALING:-0}" != 1 ]; then
  echo "[5/5] SAEs per pass: N = 4, 8 (forward to block 6 in every run)"
  for n in 4 8; do
    eval "set -- \$sets_$n"
    index_run "index$n" "$tokens" "$@"
    loop_run "loop$n" "$idx" "$@"
  done
fi

rm -rf "$work"/top-loop4 "$work"/top-loop8 "$work/index4" "$work/index8" "$work/index1-tiny"
"$py" scripts/peers/report.py --work "$work" --tokens "$tokens" --threads "$threads" \
  --out-json "$out/results.json" --out-md "$out/results.md" --cmd "scripts/bench-peers.sh $tokens" --bin "$bin"
cat "$out/results.md"
