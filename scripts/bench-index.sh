#!/usr/bin/env bash
# End-to-end indexing benchmark on the embedded default (SmolLM2 + nlp-corpus), in one run:
#   model-only forward (dump-activations to the same depth) vs `scopedex index` with 1 SAE
#   (L15R) and with 4 SAEs (L15 R, A, M, TC), tokens/s and peak RSS, for N and 4N sentences;
#   index bytes per token per SAE. SAEs are fabricated (random, Llama Scope layout, 8x, k=32):
#   timing does not depend on what the features mean.
# Usage: scripts/bench-index.sh [N_SENTENCES=1000]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-1000}"
bash scripts/install-system-deps.sh time
bash scripts/fetch-assets.sh >/dev/null
cargo build --locked --bin scopedex 2>/dev/null
bin="${CARGO_TARGET_DIR:-$root/target}/debug/scopedex"
model=assets/models/SmolLM2-135M-Instruct.Q4_1.gguf
work="$(mktemp -d /tmp/scopedex-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
for pos in R:hook_resid_post A:hook_attn_out M:hook_mlp_out TC:ln2.hook_normalized; do
  p="${pos%%:*}"; hook="${pos#*:}"; out_hook="blocks.15.$hook"
  [ "$p" = TC ] && out_hook="blocks.15.hook_mlp_out"
  "$bin" fabricate-sae --out "$work/sae-$p" --hook-in "blocks.15.$hook" --hook-out "$out_hook" \
    --d-sae 4608 --k 32 --seed 1
done
python3 - "$n" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
s = json.load(open("assets/corpora/nlp-corpus/doc-0.json")) + json.load(open("assets/corpora/nlp-corpus/doc-1.json")) \
  + json.load(open("assets/corpora/nlp-corpus/doc-2.json")) + json.load(open("assets/corpora/nlp-corpus/doc-3.json"))
for k, name in ((n, "n"), (4 * n, "4n")):
    lines = [x.replace("\n", " ").strip() for x in s[:k]]
    open(f"{work}/corpus-{name}.txt", "w").write("\n".join(lines) + "\n")
PY
# Runs a command, prints "seconds peak_rss_mb".
measure() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
            awk '{printf "%s %.0f\n", $1, $2/1024}' "$work/time"; }
tokens_of() { python3 -c "import json,sys; m=json.load(open(sys.argv[1]+'/manifest.json')); print(m['contexts'])" "$1"; }
printf "%-34s %8s %10s %10s %12s\n" run sentences seconds tokens/s peak_RSS_MB
for size in n 4n; do
  corpus="$work/corpus-$size.txt"
  sentences=$(wc -l < "$corpus")
  read -r secs rss < <(measure "$bin" dump-activations --model "$model" --hooks blocks.15.hook_resid_post \
      --input "$corpus" --ctx-len 128 --out "$work/acts.safetensors")
  toks=$(python3 -c "import struct,json,sys; f=open(sys.argv[1],'rb'); h=json.loads(f.read(struct.unpack('<Q',f.read(8))[0])); print(h['tokens']['shape'][0])" "$work/acts.safetensors")
  printf "%-34s %8s %10s %10.0f %12s\n" "model only (forward to L15)" "$sentences" "$secs" "$(echo "$toks/$secs" | bc -l)" "$rss"
  for saes in "R" "R A M TC"; do
    args=(); for p in $saes; do args+=(--sae "$work/sae-$p"); done
    rm -rf "$work/index"
    read -r secs rss < <(measure "$bin" index --model "$model" "${args[@]}" --corpus "$corpus" --txt-lines \
        --ctx-len 128 --batch-size 16 --checkpoint-every 0 --out "$work/index")
    printf "%-34s %8s %10s %10.0f %12s\n" "index, $(echo $saes | wc -w) SAE(s): $saes" "$sentences" "$secs" "$(echo "$toks/$secs" | bc -l)" "$rss"
    if [ "$size" = n ]; then
      bytes=$(du -sb "$work/index" | cut -f1)
      echo "    index size: $bytes bytes = $(echo "$bytes/$toks/$(echo $saes | wc -w)" | bc -l | cut -c1-6) bytes per token per SAE"
    fi
  done
done
