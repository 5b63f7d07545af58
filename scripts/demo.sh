#!/usr/bin/env bash
# The README's first command: the whole system end to end on the embedded default.
#   1. install missing system packages, fetch the assets (model + nlp-corpus), build (dev profile);
#   2. train the demo SAEs (TopK, 8x, k=32; layer $DEMO_LAYER at R, A, M, TC plus layer
#      $DEMO_LAYER2's R) — or reuse out/demo-saes/<hash of the trainer settings>/;
#   3. index a slice of the nlp-corpus into out/demo-index — reused when its inputs are unchanged;
#   4. explain features in the background: llama.cpp's OpenAI-compatible server (llama-cpp-python,
#      built once into /var/cache/scopedex) serves the SmolLM2 GGUF, and `scopedex explain` asks
#      it about DEMO_EXPLAIN_FEATURES (200) features of the first SAE, 50 at a time, each batch
#      published into the index as it finishes (the server shows them without a restart; a 135M
#      model's explanations are weak: the machinery is what this shows); log: out/demo-explain.log;
#   5. serve the index (with the web UI, built before the binary, which embeds it) and print the
#      URL and three example queries.
# Every stage is cached, so a second run goes straight to serving. `--model gemma-3-270m` runs the
# same demo on Gemma 3 270M (fetched on request) instead of SmolLM2. Environment overrides:
# The first run trains on 80k tokens (2 passes) and indexes 60k, so the product shows within
# minutes of the build; `--full` trains on 300k tokens (3 passes) and indexes 300k (about 15 more
# minutes on 2 cores) into out/demo-index-full. Each budget has its own SAE cache and index.
#   DEMO_LAYER (6), DEMO_LAYER2 (3), DEMO_TRAIN_TOKENS, DEMO_EPOCHS, DEMO_INDEX_TOKENS (see above),
#   DEMO_ADDR (127.0.0.1:8080), DEMO_EXPLAIN_FEATURES (200; 0 skips step 4), DEMO_LLAMA_PORT
#   (8089), CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
demo_model=smollm2
full=0
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1; shift ;;
    --model) [ $# -ge 2 ] || { echo "demo: --model needs a name (gemma-3-270m)" >&2; exit 2; }
             demo_model="$2"; shift 2 ;;
    *) echo "demo: unknown argument $1 (use --model gemma-3-270m, --full)" >&2; exit 2 ;;
  esac
done
case "$demo_model" in
  smollm2) model=assets/models/SmolLM2-135M-Instruct.Q4_1.gguf; fetch_args=(); suffix="" ;;
  gemma-3-270m) model=assets/models/gemma-3-270m-Q4_K_M.gguf; fetch_args=(--model gemma-3-270m)
                suffix="-gemma-3-270m" ;;
  *) echo "demo: unknown model $demo_model (known: gemma-3-270m; default SmolLM2)" >&2; exit 2 ;;
esac
t0=$(date +%s)
stage() { echo "== [demo +$(($(date +%s) - t0))s] $* =="; }
hash16() { sha256sum | cut -c1-16; }

stage "system packages and assets"
bash scripts/install-system-deps.sh
bash scripts/fetch-assets.sh "${fetch_args[@]}"
mkdir -p out

# --- web UI (before the binary, which embeds web/dist) ------------------------------------
if [ -f web/package.json ]; then
  web_key=$( (cat web/package.json web/package-lock.json 2>/dev/null; find web/src web/index.html \
    -type f -exec sha256sum {} + 2>/dev/null | sort) | hash16)
  if [ -f web/dist/index.html ] && [ "$(cat out/demo-web.key 2>/dev/null)" = "$web_key" ]; then
    stage "web UI: reusing web/dist"
  else
    stage "building the web UI (npm ci && npm run build)"
    (cd web && npm ci --no-audit --no-fund && npm run build)
    echo "$web_key" > out/demo-web.key
  fi
fi

stage "build (cargo build --bin scopedex, dev profile)"
cargo build --locked --bin scopedex
bin="${CARGO_TARGET_DIR:-$root/target}/debug/scopedex"
corpus=assets/corpora/nlp-corpus
layer="${DEMO_LAYER:-6}"
layer2="${DEMO_LAYER2:-3}"
addr="${DEMO_ADDR:-127.0.0.1:8080}"
mkdir -p out

# --- SAEs ---------------------------------------------------------------------------------
if [ "$full" = 1 ]; then budget=(300000 3 300000); else budget=(80000 2 60000); fi
train_tokens="${DEMO_TRAIN_TOKENS:-${budget[0]}}"
epochs="${DEMO_EPOCHS:-${budget[1]}}"
index_tokens="${DEMO_INDEX_TOKENS:-${budget[2]}}"
# Layer 6 (of 30) keeps the model forward short: SAE steps, not the model, dominate training.
ids=("L${layer}R-8x" "L${layer}A-8x" "L${layer}M-8x" "L${layer}TC-8x" "L${layer2}R-8x")
train_args=(--model "$model" --corpus "$corpus" --k 32
  --tokens "$train_tokens" --epochs "$epochs" --lr 2e-3 --batch-rows 512 --buffer-rows 32768
  --eval-tokens 8192 --init data --aux-k 256 --dead-after-tokens 25000 --resample-every-tokens 50000
  --ctx-len 128 --seed 42)
for id in "${ids[@]}"; do train_args+=(--sae-id "$id"); done
model_sha=$(sha256sum "$model" | cut -d' ' -f1)
sae_key=$(printf '%s\n' "${train_args[@]}" "$model_sha" "trainer-v2" | hash16)
saes="out/demo-saes/$sae_key"
if [ -f "$saes/train-report.json" ]; then
  stage "demo SAEs: reusing $saes"
else
  stage "training ${#ids[@]} demo SAEs on $train_tokens tokens x $epochs into $saes"
  rm -rf "$saes.tmp"
  "$bin" train-sae "${train_args[@]}" --out "$saes.tmp"
  mv "$saes.tmp" "$saes"
fi

# --- index --------------------------------------------------------------------------------
# A slice of the corpus (the first DEMO_INDEX_TOKENS tokens, in corpus order) keeps the first
# run within budget; raise it for a fuller index.
index="out/demo-index$suffix"
if [ "$full" = 1 ]; then index="$index-full"; fi
index_args=(--model "$model" --corpus "$corpus" --max-tokens "$index_tokens"
  --sae "$saes:$(IFS=,; echo "${ids[*]}")")
# The index format version is part of the key: an index of an older format is rebuilt.
serving_key="serving-3"
index_key=$(printf '%s\n' "${index_args[@]}" "$sae_key" "$model_sha" "index-format-3" | hash16)
if [ -f "$index/manifest.json" ] && [ "$(cat "$index.key" 2>/dev/null)" = "$index_key" ]; then
  stage "index: reusing $index"
else
  stage "indexing the corpus slice into $index"
  rm -f "$index.key"
  "$bin" index "${index_args[@]}" --out "$index"
  echo "$index_key" > "$index.key"
  echo "$serving_key" > "$index.serving"
fi
# The serving store (RocksDB + tantivy) is derived from the Parquet files: a newer layout
# (e.g. precomputed "more like this" lists) only needs `scopedex reindex`, not a new index.
if [ "$(cat "$index.serving" 2>/dev/null)" != "$serving_key" ]; then
  stage "rebuilding the serving store of $index (scopedex reindex)"
  "$bin" reindex "$index"
  echo "$serving_key" > "$index.serving"
fi

# --- explain (background) -----------------------------------------------------------------
n_explain="${DEMO_EXPLAIN_FEATURES:-200}"
if [ "$n_explain" -gt 0 ]; then
  llama_port="${DEMO_LLAMA_PORT:-8089}"
  stage "explaining $n_explain features of ${ids[0]} in the background (log: out/demo-explain.log)"
  (
    set +e
    export SCOPEDEX_LLAMA_PID_FILE="$root/out/demo-llama.pid" SCOPEDEX_LLAMA_LOG="$root/out/demo-llama.log"
    # The explainer is the SmolLM2 instruct GGUF whatever model was indexed.
    explainer=assets/models/SmolLM2-135M-Instruct.Q4_1.gguf
    url=$(bash scripts/llama-server.sh start "$llama_port" "$explainer") || exit 1
    trap 'bash scripts/llama-server.sh stop' EXIT
    for ((start = 0; start < n_explain; start += 50)); do
      end=$((start + 49 < n_explain - 1 ? start + 49 : n_explain - 1))
      "$bin" explain "$index" --sae "${ids[0]}" --features "$start-$end" --endpoint "$url" \
        --model "$(basename "$explainer" .gguf)" --concurrency 2 || break
    done
    echo "demo: explanations done; scopedex features $index 'QUERY' searches them"
  ) >"out/demo-explain.log" 2>&1 &
fi

# --- serve --------------------------------------------------------------------------------
"$bin" demo "$index" --addr "$addr"
if "$bin" serve --help >/dev/null 2>&1; then
  stage "serving $index at http://$addr/ (Ctrl-C to stop)"
  echo "Open http://$addr/"
  exec "$bin" serve "$index" --addr "$addr"
else
  stage "done: this build has no 'scopedex serve' yet; the index is at $index"
fi
