#!/usr/bin/env python3
"""Tiny random checkpoints of every model family, with reference activations from HF transformers.

Writes (committed, so tests need no torch) tests/fixtures/families/{name}/:
  config.json, model.safetensors   the checkpoint as `save_pretrained` writes it (f32; tied
                                   models carry no lm_head.weight)
  reference.safetensors            for each sequence i: `s{i}.tokens` I64 [T], `s{i}.logits`
                                   F32 [T, vocab], and `s{i}.{hook}` F32 [T, width] for every
                                   hook below at every layer

Weights are drawn so that every branch matters: norm gains away from identity, non-zero biases,
soft-caps that bind, a sliding window shorter than the sequences, head_dim != d_model / heads.

Hooks follow TransformerLens' names, computed on the HF modules (f32, eager attention):
  blocks.L.hook_resid_pre / hook_resid_post   input / output of decoder layer L
  blocks.L.attn.hook_z                        input of the attention output projection
  blocks.L.hook_attn_out                      what attention adds to the residual stream
                                              (Gemma: after post_attention_layernorm)
  blocks.L.hook_mlp_out                       what the MLP adds (Gemma: after
                                              post_feedforward_layernorm)
  blocks.L.ln2.hook_normalized                the pre-MLP norm's input normalized, before its
                                              gain (and bias): x/rms(x), or (x-mean)/std for
                                              LayerNorm
  blocks.L.mlp.hook_in                        the MLP's input (the pre-MLP norm's output)

Also model.gguf for qwen2, qwen3, gemma2 and gpt2: the same weights as llama.cpp's converter writes them
(`--gguf` writes only those).

With `--gemma3-270m GGUF`, instead writes tests/fixtures/model/gemma3_270m_reference.safetensors:
the real Gemma 3 270M GGUF as transformers loads it (dequantized to f32): for text i `t{i}.tokens`
(BOS + transformers' tokenizer built from the GGUF), every hook above at layers 0, 8 and 17 (the
first four texts; the others only `blocks.17.hook_resid_post`), and
the full last-position logits `t{i}.logits` of the first two texts (`t{i}.top_ids` /
`t{i}.top_logits`, the 10 largest, of every text). Metadata `texts`.

Usage (a venv with torch, transformers 5.x and gguf):
  /var/cache/scopedex/venv-ref/bin/python scripts/make-family-fixtures.py
  /var/cache/scopedex/venv-ref/bin/python scripts/make-family-fixtures.py \
      --gemma3-270m assets/models/gemma-3-270m-Q4_K_M.gguf
"""
import json
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "families")
VOCAB = 128
# Two sequences longer than the sliding window (4), of unequal lengths.
SEQUENCES = [
    [2, 17, 99, 5, 64, 3, 127, 41, 41, 8, 77, 12, 90],
    [2, 120, 6, 33, 58, 1, 19],
]


def families():
    from transformers import (Gemma2Config, Gemma3TextConfig, GPT2Config, Qwen2Config,
                              Qwen3Config)

    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    yield "qwen2", Qwen2Config(**common, tie_word_embeddings=True, rope_theta=1e6)
    yield "qwen3", Qwen3Config(**common, head_dim=24, tie_word_embeddings=False,
                               rope_theta=1e6, rms_norm_eps=1e-6)
    yield "gemma2", Gemma2Config(**common, head_dim=24, query_pre_attn_scalar=20,
                                 sliding_window=4, attn_logit_softcapping=2.0,
                                 final_logit_softcapping=3.0, rms_norm_eps=1e-6)
    yield "gemma3", Gemma3TextConfig(
        **{**common, "num_hidden_layers": 4}, head_dim=24, query_pre_attn_scalar=20,
        sliding_window=4, rms_norm_eps=1e-6,
        layer_types=["sliding_attention", "full_attention", "sliding_attention",
                     "full_attention"],
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
        })
    yield "gpt2", GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=32,
                             bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)


def randomize(model, name):
    torch.manual_seed(0)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            p.normal_(0, 0.2)
            if "norm" in pname or "ln_" in pname:
                # Gains near 1 (Gemma: near 0, it adds 1) but clearly away from identity.
                if pname.endswith("weight"):
                    base = 0.0 if name.startswith("gemma") else 1.0
                    p.copy_(base + 0.3 * torch.randn_like(p))
        if name.startswith("gemma"):
            # Scale q and k so the attention soft-cap binds.
            for layer in model.model.layers:
                layer.self_attn.q_proj.weight.mul_(3.0)
                layer.self_attn.k_proj.weight.mul_(3.0)


def layers_of(model, name):
    return model.transformer.h if name == "gpt2" else model.model.layers


def capture(model, name, ids):
    store = {}
    handles = []

    def out0(out):
        return out if torch.is_tensor(out) else out[0]

    def put(key, t):
        store[key] = t[0].detach().float().clone().contiguous()

    for l, layer in enumerate(layers_of(model, name)):
        b = f"blocks.{l}"
        if name == "gpt2":
            attn, o_proj, ln2, mlp = layer.attn, layer.attn.c_proj, layer.ln_2, layer.mlp
            attn_out_mod, mlp_out_mod = attn, mlp
        else:
            attn, o_proj, mlp = layer.self_attn, layer.self_attn.o_proj, layer.mlp
            if name.startswith("gemma"):
                ln2 = layer.pre_feedforward_layernorm
                attn_out_mod, mlp_out_mod = (layer.post_attention_layernorm,
                                             layer.post_feedforward_layernorm)
            else:
                ln2 = layer.post_attention_layernorm
                attn_out_mod, mlp_out_mod = attn, mlp

        handles.append(layer.register_forward_pre_hook(
            lambda m, args, kwargs, k=f"{b}.hook_resid_pre": put(k, args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True))
        handles.append(layer.register_forward_hook(
            lambda m, i, o, k=f"{b}.hook_resid_post": put(k, out0(o))))
        handles.append(o_proj.register_forward_pre_hook(
            lambda m, i, k=f"{b}.attn.hook_z": put(k, i[0])))
        handles.append(attn_out_mod.register_forward_hook(
            lambda m, i, o, k=f"{b}.hook_attn_out": put(k, out0(o))))
        handles.append(mlp_out_mod.register_forward_hook(
            lambda m, i, o, k=f"{b}.hook_mlp_out": put(k, out0(o))))

        def normalized(m, i, o, b=b):
            x = i[0].float()
            if name == "gpt2":
                mu = x.mean(-1, keepdim=True)
                var = (x - mu).pow(2).mean(-1, keepdim=True)
                n = (x - mu) / torch.sqrt(var + m.eps)
            else:
                eps = getattr(m, "variance_epsilon", getattr(m, "eps", None))
                n = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
            put(f"{b}.ln2.hook_normalized", n)
            put(f"{b}.mlp.hook_in", out0(o))

        handles.append(ln2.register_forward_hook(normalized))
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    for h in handles:
        h.remove()
    return store, logits


def main():
    from transformers import AutoModelForCausalLM

    for name, cfg in families():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        cfg._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
        randomize(model, name)
        model.save_pretrained(d)
        # Reload as a user would, so the reference is what the files hold.
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
        tensors = {}
        for i, ids in enumerate(SEQUENCES):
            store, logits = capture(model, name, ids)
            tensors[f"s{i}.tokens"] = torch.tensor(ids, dtype=torch.int64)
            tensors[f"s{i}.logits"] = logits.contiguous()
            for k, v in store.items():
                tensors[f"s{i}.{k}"] = v
        save_file(tensors, os.path.join(d, "reference.safetensors"),
                  metadata={"source": "scripts/make-family-fixtures.py",
                            "transformers": __import__("transformers").__version__})
        for f in os.listdir(d):
            if f.endswith(".json") and f != "config.json":
                os.remove(os.path.join(d, f))  # generation_config.json: not needed
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{name}: {len(tensors)} tensors, {size} bytes in {d}")


GGUF_FAMILIES = {"qwen2": "QWEN2", "qwen3": "QWEN3", "gemma2": "GEMMA2", "gpt2": "GPT2"}
CONV1D = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def write_gguf(name):
    """The tiny checkpoint of `name` as llama.cpp's converter writes it (f32): tensor names from
    gguf-py's TensorNameMap, Gemma's norm gains stored as 1 + w, the llama.cpp metadata keys.
    (Gemma 3's GGUF layer pattern is fixed at 5 local : 1 global, which the 4-layer fixture does
    not follow, so it has none; the real Gemma 3 270M GGUF is tested instead.)"""
    import gguf
    from safetensors.numpy import load_file

    d = os.path.join(OUT, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = getattr(gguf.MODEL_ARCH, GGUF_FAMILIES[name])
    arch_name = gguf.MODEL_ARCH_NAMES[arch]
    if name == "gpt2":
        # GPT2Model in llama.cpp's converter: these keys, Conv1D weights transposed to [out, in].
        names = gguf.TensorNameMap(arch, cfg["n_layer"])
        w = gguf.GGUFWriter(os.path.join(d, "model.gguf"), arch_name)
        w.add_block_count(cfg["n_layer"])
        w.add_context_length(cfg["n_positions"])
        w.add_embedding_length(cfg["n_embd"])
        w.add_feed_forward_length(4 * cfg["n_embd"])
        w.add_head_count(cfg["n_head"])
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        for hf, t in sorted(load_file(os.path.join(d, "model.safetensors")).items()):
            base, suffix = hf.rsplit(".", 1)
            if hf.endswith(CONV1D):
                t = t.T.copy()
            w.add_tensor(f"{names.get_name(base)}.{suffix}", t.astype("float32"))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        print(f"{name}: wrote model.gguf ({os.path.getsize(os.path.join(d, 'model.gguf'))} bytes)")
        return
    names = gguf.TensorNameMap(arch, cfg["num_hidden_layers"])
    w = gguf.GGUFWriter(os.path.join(d, "model.gguf"), arch_name)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    if name == "gemma2":
        w.add_float32(f"{arch_name}.attn_logit_softcapping", cfg["attn_logit_softcapping"])
        w.add_float32(f"{arch_name}.final_logit_softcapping", cfg["final_logit_softcapping"])
        w.add_sliding_window(cfg["sliding_window"])
        # llama.cpp derives the score scale from head_dim; the fixture's query_pre_attn_scalar
        # differs on purpose, so the file states it with gguf-py's attention.scale key.
        w.add_attention_scale(cfg["query_pre_attn_scalar"] ** -0.5)
    for hf, t in sorted(load_file(os.path.join(d, "model.safetensors")).items()):
        base, suffix = hf.rsplit(".", 1)
        g = names.get_name(base)
        assert g is not None, hf
        if name.startswith("gemma") and base.endswith("norm"):
            t = t + 1.0  # llama.cpp's Gemma converter stores the (1 + w) gain
        w.add_tensor(f"{g}.{suffix}", t.astype("float32"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{name}: wrote model.gguf ({os.path.getsize(os.path.join(d, 'model.gguf'))} bytes)")


GEMMA_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Call 911 or 4.2%",
    "def f(x):\n    return x ** 2",
    "naïve café, 日本 🦀",
    "a        b\t\tc\n\n\nd   ",
    "<start_of_turn>user\nHi!<end_of_turn>",
    "Привет, мир!",
    "   ∑ i = n(n+1)/2",
]
GEMMA_LAYERS = [0, 8, 17]


def gemma3_270m(gguf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    tensors = {}
    for i, text in enumerate(GEMMA_TEXTS):
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        store, logits = capture(model, "gemma3", ids)
        tensors[f"t{i}.tokens"] = torch.tensor(ids, dtype=torch.int64)
        for k, v in store.items():
            # Every hook of the chosen layers for the first texts; the rest keep the last
            # layer's residual stream (the fixture stays small).
            layer = int(k.split(".")[1])
            if layer in GEMMA_LAYERS and (i < 4 or k == f"blocks.{GEMMA_LAYERS[-1]}.hook_resid_post"):
                tensors[f"t{i}.{k}"] = v
        last = logits[-1].contiguous()
        if i < 2:
            tensors[f"t{i}.logits"] = last
        top = torch.topk(last, 10)
        tensors[f"t{i}.top_ids"] = top.indices.to(torch.int64).contiguous()
        tensors[f"t{i}.top_logits"] = top.values.contiguous()
        print(f"text {i}: {len(ids)} tokens, argmax {top.indices[0].item()}")
    out = os.path.join(ROOT, "tests", "fixtures", "model", "gemma3_270m_reference.safetensors")
    save_file(tensors, out, metadata={"texts": json.dumps(GEMMA_TEXTS), "model": name,
                                      "source": "scripts/make-family-fixtures.py --gemma3-270m"})
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--gemma3-270m":
        gemma3_270m(sys.argv[2])
    elif sys.argv[1:] == ["--gguf"]:
        for family in GGUF_FAMILIES:
            write_gguf(family)
    else:
        main()
        for family in GGUF_FAMILIES:
            write_gguf(family)
