#!/usr/bin/env bash
# Build a small real index for the browser tests: two fabricated Llama-Scope-format TopK SAEs
# (L2R and L3R on SmolLM2-135M, adjacent layers so cross-SAE co-occurrence exists) indexed over
# the first 200 sentences of the nlp-corpus asset.
#
# Usage: scripts/make-test-index.sh OUT      (OUT must not exist; writes OUT.src too; needs the scopedex binary at
#        $SCOPEDEX_BIN or $CARGO_TARGET_DIR/debug/scopedex, python3 (stdlib only) and the assets)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: make-test-index.sh OUT}"
bin="${SCOPEDEX_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/scopedex}"
model="$root/assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
corpus_src="$root/assets/corpora/nlp-corpus/doc-0.json"
for f in "$bin" "$model" "$corpus_src"; do
  [ -e "$f" ] || { echo "make-test-index: missing $f (build scopedex / run scripts/fetch-assets.sh)" >&2; exit 1; }
done
# The SAE folders and the corpus stay beside the index (OUT.src): the manifest points at them, so
# `scopedex serve` can load the SAEs for /api/activate.
work="${out%/}.src"
rm -rf "$work"
mkdir -p "$work"

python3 - "$work" "$corpus_src" <<'PY'
import array, json, os, random, struct, sys

work, corpus_src = sys.argv[1], sys.argv[2]
D_MODEL = 576

def save_safetensors(path, tensors):
    """tensors: name -> (array('f'), shape); written F32 little-endian, names sorted."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr, shape = tensors[name]
        if sys.byteorder != "little":
            arr = array.array("f", arr); arr.byteswap()
        data = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

def fabricate(name, layer, d_sae, k, seed):
    rng = random.Random(seed)
    enc = array.array("f", (rng.uniform(-1.0, 1.0) for _ in range(d_sae * D_MODEL)))  # [d_sae, d_model]
    dec = array.array("f", bytes(4 * d_sae * D_MODEL))                                  # [d_model, d_sae]
    for f in range(d_sae):
        row = f * D_MODEL
        for m in range(D_MODEL):
            dec[m * d_sae + f] = enc[row + m]
    enc_b = array.array("f", (0.1 * rng.uniform(-1.0, 1.0) for _ in range(d_sae)))
    dec_b = array.array("f", bytes(4 * D_MODEL))
    d = os.path.join(work, name)
    hook = f"blocks.{layer}.hook_resid_post"
    hp = {
        "d_model": D_MODEL, "d_sae": d_sae, "expansion_factor": max(1, d_sae // D_MODEL),
        "hook_point_in": hook, "hook_point_out": hook, "act_fn": "topk", "top_k": k,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 30.0, "out": 30.0},
        "sparsity_include_decoder_norm": True, "use_decoder_bias": True,
        "apply_decoder_bias_to_pre_encoder": False,
    }
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hyperparams.json"), "w") as f:
        json.dump(hp, f, indent=2)
    save_safetensors(os.path.join(d, "checkpoints", "final.safetensors"), {
        "encoder.weight": (enc, [d_sae, D_MODEL]), "encoder.bias": (enc_b, [d_sae]),
        "decoder.weight": (dec, [D_MODEL, d_sae]), "decoder.bias": (dec_b, [D_MODEL]),
    })

fabricate("L2R", 2, 128, 8, 7)
fabricate("L3R", 3, 64, 6, 11)
with open(corpus_src) as f:
    sentences = json.load(f)[:200]
with open(os.path.join(work, "corpus.json"), "w") as f:
    json.dump(sentences, f)
PY

"$bin" index --model "$model" --sae "$work/L2R" --sae "$work/L3R" --corpus "$work/corpus.json" \
  --out "$out" --ctx-len 32 --batch-size 8 --top-k 12 --intervals 5 --samples-per-interval 4 \
  --cross-cooc all --token-counters 1024 --keep-activations
echo "make-test-index: wrote $out"
