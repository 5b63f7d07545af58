#!/usr/bin/env bash
# The GPU check: one command for a machine with one NVIDIA GPU, python3 with torch,
# transformers and safetensors, no network and no Rust toolchain. It uses binaries built
# elsewhere by scripts/build-gpu-binaries.sh (`--features cuda`, a portable x86-64-v3 CPU
# target), unpacked from dist/scopedex-gpu.tar.zst.
#
#  1. fabricates, with transformers on the GPU, a Llama-3.1-8B-shaped bf16 checkpoint (its first
#     16 blocks) and Llama-Scope-layout SAEs L15{R,A,M,TC}-8x (4,096 → 32,768, TopK k = 50);
#  2. hidden states at R, A, M and TC-in of layers 0, 7, 15 against transformers on the same GPU
#     and tokens (rel. L2 ≤ 1e-4 in f32, ≤ 2e-2 in bf16), and SAE codes against a torch encode
#     (active sets ≥ 99 % equal, bf16 activations), also of a JumpReLU copy of L15R-8x, and their
#     explained variance and MSE (reduced on the device, as an index does) against torch's;
#  3. tokens/s on the same 256 × 1,024 tokens: transformers' forward to layer 15 (bf16, sdpa)
#     against ours (the forward bench), transformers + a torch top-20 loop (the SAELens way)
#     against `scopedex index` with 1 and with 4 SAEs, peak GPU memory, MFU;
#  4. prints one table and writes it as JSON to $OUT (or ./gpu-check-out).
# GPU_CHECK_SHAPE=tiny and GPU_CHECK_DEVICE=cpu dry-run every step on a CPU at toy sizes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/gpu-check-out}"
mkdir -p "$out"
shape="${GPU_CHECK_SHAPE:-llama8b}"
device="${GPU_CHECK_DEVICE:-cuda}"
contexts="${GPU_CHECK_CONTEXTS:-256}"
seq="${GPU_CHECK_SEQ:-1024}"
py="${PYTHON:-python3}"
work="${GPU_CHECK_WORK:-$(mktemp -d /tmp/scopedex-gpu.XXXXXX)}"
started=$(date +%s)
log() { echo "gpu-check [$(( $(date +%s) - started )) s]: $*" >&2; }

bin_dir="${SCOPEDEX_GPU_BIN:-$work/bin}"
if [ ! -x "$bin_dir/scopedex" ]; then
  [ -f dist/scopedex-gpu.tar.zst ] || { echo "gpu-check: dist/scopedex-gpu.tar.zst is missing; build it with scripts/build-gpu-binaries.sh" >&2; exit 2; }
  mkdir -p "$bin_dir"
  if command -v zstd >/dev/null; then zstd -dc dist/scopedex-gpu.tar.zst | tar -x -C "$bin_dir"
  else "$py" -c "import sys,tarfile,zstandard as z; tarfile.open(fileobj=z.ZstdDecompressor().stream_reader(open(sys.argv[1],'rb')),mode='r|').extractall(sys.argv[2])" dist/scopedex-gpu.tar.zst "$bin_dir"; fi
fi
scopedex="$bin_dir/scopedex"
bench="$bin_dir/forward-bench"
if [ "$device" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2
  # The binary loads libcudart, libcublas(Lt) and libcurand of CUDA 13 when it starts: the
  # system toolkit's or those of torch's nvidia-* wheels.
  libs=$("$py" -c 'import glob, os, nvidia
print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/**/lib*.so*", recursive=True)})))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="${libs}${libs:+:}/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

log "1/4 fabricating ($shape) in $work"
"$py" scripts/gpu_check.py fabricate "$work" --shape "$shape" --device "$device" > "$out/fabricate.json"
model="$work/model"
saes="$work/saes"
hooks=""
for l in 0 7 15; do hooks="$hooks,blocks.$l.hook_resid_post,blocks.$l.hook_attn_out,blocks.$l.hook_mlp_out,blocks.$l.ln2.hook_normalized"; done
hooks="${hooks#,}"

log "2/4 hidden states and SAE codes against transformers"
for dt in f32 bf16; do
  tol=1e-4; [ "$dt" = bf16 ] && tol=2e-2
  "$scopedex" --device "$device" --dtype "$dt" dump-activations --model "$model" --hooks "$hooks" \
    --input "$work/texts.txt" --ctx-len 256 --out "$work/ours-$dt.safetensors" 2>/dev/null
  "$py" scripts/gpu_check.py hooks "$model" "$work/ours-$dt.safetensors" "$work/theirs-$dt.safetensors" --dtype "$dt" --device "$device" >/dev/null
  "$py" scripts/gpu_check.py compare "$work/ours-$dt.safetensors" "$work/theirs-$dt.safetensors" --tol "$tol" > "$out/hooks-$dt.json" \
    || { log "FAIL: $dt hidden states beyond $tol"; cat "$out/hooks-$dt.json" >&2; exit 1; }
done
for pos in R A M TC R-jumprelu; do
  case $pos in R*) t=hook_resid_post;; A) t=hook_attn_out;; M) t=hook_mlp_out;; TC) t=ln2.hook_normalized;; esac
  target=(); [ "$pos" = TC ] && target=(--target blocks.15.hook_mlp_out)
  sae="$saes/L15${pos%%-*}-8x${pos#"${pos%%-*}"}"
  # (bf16, as an index in bf16 encodes: the encoder GEMM in TF32; --metrics reduces the
  # reconstruction error on the device, as an index does)
  "$scopedex" --device "$device" --dtype bf16 encode --sae "$sae" --input "$work/ours-bf16.safetensors" \
    --tensor "blocks.15.$t" ${target[@]+"${target[@]}"} --metrics --out "$work/codes-$pos.safetensors" 2>/dev/null > "$work/metrics-$pos.json"
  "$py" scripts/gpu_check.py codes "$sae" "$work/ours-bf16.safetensors" "blocks.15.$t" "$work/codes-$pos.safetensors" \
    --metrics "$work/metrics-$pos.json" ${target[@]+"${target[@]}"} --device "$device" > "$out/codes-$pos.json" \
    || { log "FAIL: $(basename "$sae") codes"; cat "$out/codes-$pos.json" >&2; exit 1; }
done

log "3/4 throughput on $contexts x $seq tokens"
SCOPEDEX_MODEL="$model" SCOPEDEX_BENCH_DEVICE="$device" SCOPEDEX_BENCH_DTYPE=bf16 \
  SCOPEDEX_BENCH_BATCH="${GPU_CHECK_BATCH:-16}" SCOPEDEX_BENCH_SEQ="$seq" SCOPEDEX_BENCH_LAYERS=16 \
  SCOPEDEX_BENCH_JSON="$out/forward-ours.json" "$bench" > "$out/forward-bench.txt"
"$py" scripts/gpu_check.py speed "$model" --contexts "$contexts" --seq "$seq" --device "$device" \
  --saes "$saes/L15R-8x" > "$out/hf-1sae.json"
"$py" scripts/gpu_check.py speed "$model" --contexts "$contexts" --seq "$seq" --device "$device" \
  --saes "$saes"/L15{R,A,M,TC}-8x > "$out/hf-4sae.json"
tokens=$(( contexts * seq ))
for n in 1 4; do
  sae_args=(--sae "$saes/L15R-8x"); [ $n = 4 ] && sae_args=(--sae "$saes/L15R-8x" --sae "$saes/L15A-8x" --sae "$saes/L15M-8x" --sae "$saes/L15TC-8x")
  rm -rf "$work/index-$n"
  s=$(date +%s.%N)
  "$scopedex" --device "$device" --dtype bf16 index --model "$model" "${sae_args[@]}" --corpus "$work/corpus.json" \
    --ctx-len "$seq" --max-tokens "$tokens" --batch-size "${GPU_CHECK_BATCH:-16}" --out "$work/index-$n" --json > "$out/index-$n.json"
  # (python, not bc: bc prints ".76" for a second's fraction, and a GPU machine may lack it)
  "$py" -c 'import json, sys; print(json.dumps({"wall_s": float(sys.argv[1]) - float(sys.argv[2])}))' \
    "$(date +%s.%N)" "$s" > "$out/index-$n-wall.json"
done

log "4/4 table"
"$py" - "$out" "$tokens" <<'PY'
import json, os, sys
out, tokens = sys.argv[1], int(sys.argv[2])
j = lambda f: json.load(open(os.path.join(out, f)))
ours = j("forward-ours.json"); hf1 = j("hf-1sae.json"); hf4 = j("hf-4sae.json")
idx = {n: (j(f"index-{n}.json"), j(f"index-{n}-wall.json")) for n in (1, 4)}
def index_tps(n):
    rep, wall = idx[n]
    return rep.get("positions", tokens) / rep.get("pass_seconds", wall["wall_s"])
# 7.3 GFLOP per token to layer 15 at Llama-3.1-8B shapes; H100 bf16 dense peak 989 TFLOP/s.
flops_per_token = ours["gflops"] * 1e9 / ours["tokens_per_s"]
rows = [
    ("hidden states f32, worst rel. L2", f'{j("hooks-f32.json")["worst_rel_l2"]:.2e} (≤ 1e-4)'),
    ("hidden states bf16, worst rel. L2", f'{j("hooks-bf16.json")["worst_rel_l2"]:.2e} (≤ 2e-2)'),
] + [(f"{n} codes, active-set agreement", f'{100 * j(f"codes-{p}.json")["active_set_agreement"]:.2f} %')
      for p, n in [("R", "L15R-8x"), ("A", "L15A-8x"), ("M", "L15M-8x"), ("TC", "L15TC-8x"), ("R-jumprelu", "L15R-8x as JumpReLU")]] + [
    (f"{n} explained variance, ours / torch", " / ".join(f"{v:.4f}" for v in j(f"codes-{p}.json")["explained_variance"]))
      for p, n in [("R", "L15R-8x"), ("TC", "L15TC-8x")]] + [
    ("forward to L15, transformers bf16 sdpa", f'{hf1["hf_forward_tokens_per_s"]:,.0f} tok/s'),
    ("forward to L15, scopedex bf16", f'{ours["tokens_per_s"]:,.0f} tok/s ({ours["tokens_per_s"] / hf1["hf_forward_tokens_per_s"]:.2f}x), MFU {100 * ours["gflops"] / 989e3:.1f} %'),
    ("transformers + torch top-20, 1 SAE", f'{hf1["hf_saelens_tokens_per_s"]:,.0f} tok/s'),
    ("scopedex index, 1 SAE (all statistics)", f'{index_tps(1):,.0f} tok/s ({index_tps(1) / ours["tokens_per_s"]:.2f}x our forward)'),
    ("transformers + torch top-20, 4 SAEs", f'{hf4["hf_saelens_tokens_per_s"]:,.0f} tok/s'),
    ("scopedex index, 4 SAEs (all statistics)", f'{index_tps(4):,.0f} tok/s ({index_tps(4) / ours["tokens_per_s"]:.2f}x our forward)'),
    ("peak GPU memory, transformers", f'{hf4.get("peak_gpu_memory_gib", float("nan")):.1f} GiB'),
]
width = max(len(r[0]) for r in rows)
print(f"| {'check':<{width}} | result |\n|{'-' * (width + 2)}|---|")
for k, v in rows:
    print(f"| {k:<{width}} | {v} |")
json.dump(dict(rows), open(os.path.join(out, "gpu-check.json"), "w"), indent=2)
PY
log "done in $(( $(date +%s) - started )) s; JSON in $out/gpu-check.json"
