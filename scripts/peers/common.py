"""Shared helpers of the peer benchmarks (scripts/bench-peers.sh).

Both sides see the same tokens: the peer scripts read the context windows that `scopedex index`
cut (`contexts.parquet`: token ids with the BOS first), so tokenization, context slicing and BOS
handling are scopedex's by construction. Batches are `batch_size` consecutive contexts,
right-padded with an attention mask, as scopedex batches them.
"""
import json
import os
import resource
import time

import torch

def set_threads(n):
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


def peak_rss_mb():
    """Peak RSS of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_contexts(index_dir):
    """Returns (context_ids, token lists) of an index's contexts.parquet, in context_id order."""
    import pyarrow.parquet as pq

    t = pq.read_table(os.path.join(index_dir, "contexts.parquet"), columns=["context_id", "tokens"])
    ids = t.column("context_id").to_pylist()
    toks = t.column("tokens").to_pylist()
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    return [ids[i] for i in order], [toks[i] for i in order]


def load_hf_model(path, max_layer=None):
    """SmolLM2 via transformers, f32, eval mode: from a GGUF file (`gguf_file=`, dequantized by
    transformers) or from a directory written by `export_hf_model` (the same weights, saved once as
    safetensors so that every benchmark process does not pay the GGUF dequantization).

    With `max_layer`, blocks after it are dropped so the forward stops there (the final norm,
    one RMSNorm, still runs); the LM head is never run (callers use `model.model`)."""
    from transformers import AutoModelForCausalLM

    if os.path.isdir(path):
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(path)),
            gguf_file=os.path.basename(path),
            torch_dtype=torch.float32,
        )
    model = model.eval()
    if max_layer is not None:
        model.model.layers = model.model.layers[: max_layer + 1]
        model.config.num_hidden_layers = max_layer + 1
    return model


def export_hf_model(gguf_path, out_dir):
    """Dequantizes the GGUF with transformers once and saves it as f32 safetensors (idempotent:
    skipped when out_dir is newer than the GGUF)."""
    stamp = os.path.join(out_dir, "config.json")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(gguf_path):
        return
    model = load_hf_model(gguf_path)
    model.save_pretrained(out_dir, safe_serialization=True)


def padded_batch(token_lists):
    """Right-padded [B, T] ids (pad 0) and [B, T] attention mask."""
    t = max(len(x) for x in token_lists)
    ids = torch.zeros((len(token_lists), t), dtype=torch.long)
    mask = torch.zeros((len(token_lists), t), dtype=torch.long)
    for i, x in enumerate(token_lists):
        ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return ids, mask


def parse_hook(name):
    """`blocks.6.hook_resid_post` -> (6, "hook_resid_post")."""
    parts = name.split(".")
    assert parts[0] == "blocks", name
    return int(parts[1]), ".".join(parts[2:])


def install_hooks(model, hook_names, store):
    """Forward hooks on HF Llama modules with TransformerLens / Llama Scope semantics (as in
    scripts/make-reference-fixtures.py): resid_post = block output, attn_out = self_attn output
    (after o_proj), mlp_out = mlp output, ln2.hook_normalized = the post-attention RMSNorm's
    input divided by its RMS (before the gain). Captured tensors are [B, T, d] f32."""
    handles = []

    def first(out):
        return out[0] if isinstance(out, (tuple, list)) else out

    for name in hook_names:
        layer_idx, kind = parse_hook(name)
        layer = model.model.layers[layer_idx]
        if kind == "ln2.hook_normalized":
            def fn(m, inp, _out, name=name):
                h = inp[0]
                store[name] = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + m.variance_epsilon)

            handles.append(layer.post_attention_layernorm.register_forward_hook(fn))
            continue
        mod = {
            "hook_resid_post": layer,
            "hook_attn_out": layer.self_attn,
            "hook_mlp_out": layer.mlp,
        }[kind]

        def fn(_m, _i, out, name=name):
            store[name] = first(out)

        handles.append(mod.register_forward_hook(fn))
    return handles


def sae_hook(sae_dir):
    """(hook_in, max layer needed) of a Llama Scope SAE folder."""
    hp = json.load(open(os.path.join(sae_dir, "hyperparams.json")))
    layers = [parse_hook(hp["hook_point_in"])[0], parse_hook(hp["hook_point_out"])[0]]
    return hp["hook_point_in"], max(layers)


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    import sys

    # common.py export GGUF OUT_DIR
    assert sys.argv[1] == "export", sys.argv
    export_hf_model(sys.argv[2], sys.argv[3])
