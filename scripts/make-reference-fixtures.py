#!/usr/bin/env python3
"""Reference fixtures for scopedex-model, computed with HF transformers + torch on CPU (f32).

Writes (committed, so tests need no torch):
  tests/fixtures/model/smollm2_reference.safetensors
      for text i: `t{i}.tokens` I64 [T] (BOS + tokens of the text, from transformers' tokenizer
      loaded from the GGUF), `t{i}.{hook}` F32 [T, 576] for the hooks below, `t{i}.top_ids`
      I64 [10] / `t{i}.top_logits` F32 [10]: the 10 largest last-position logits.
      Metadata `texts` (JSON list of the texts).
  tests/fixtures/tiny-llama31/        a random Llama-3.1-shaped checkpoint (GQA, llama3 rope
      scaling, untied head, bf16, sharded safetensors + index, config.json, tokenizer.json) and
      reference.safetensors with its tokens, every hook of every layer and full logits.

Hooks follow TransformerLens: hook_resid_post = decoder layer output, hook_attn_out = self_attn
output (after o_proj), hook_mlp_out = mlp output, ln2.hook_normalized = the post-attention RMSNorm's normalized input
before its gain (x / rms(x)), as TransformerLens (with its norm weights folded into the MLP) and
Llama Scope's transcoders define it (mean norm ≈ sqrt(d_model)).

Usage (any venv with torch, transformers, gguf, accelerate, safetensors, tokenizers):
  python3 -m venv /var/cache/scopedex/venv-ref
  /var/cache/scopedex/venv-ref/bin/pip install torch transformers gguf accelerate safetensors
  /var/cache/scopedex/venv-ref/bin/python scripts/make-reference-fixtures.py
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF_DIR = os.path.join(ROOT, "assets", "models")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT_MODEL = os.path.join(ROOT, "tests", "fixtures", "model")
OUT_TINY = os.path.join(ROOT, "tests", "fixtures", "tiny-llama31")

# Short and varied: digits, code, unicode, emoji, long whitespace, special tokens in text.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Call 911 or 4.2%",
    "def f(x):\n    return x ** 2",
    "naïve café, 日本 🦀",
    "a        b\t\tc\n\n\nd   ",
    "<|im_start|>user\nHi!<|im_end|>",
    "Привет, мир!",
    "SELECT * FROM t WHERE id=7;",
    "   ∑ i = n(n+1)/2",
]
# One longer text (RoPE at later positions): only resid_post of the last layer is stored.
LONG_TEXT = (
    "Sparse autoencoders decompose the residual stream of a language model into many "
    "interpretable features. Each feature fires on a small set of tokens, and a dashboard "
    "shows the contexts where it fires most strongly."
)
LAYERS = [0, 15, 29]


def capture(model, ids, layers):
    """Runs `ids` [1, T] and returns {hook name: [T, d] f32} for `layers`, and logits [T, V]."""
    store = {}
    handles = []

    def first(out):
        return out[0] if isinstance(out, (tuple, list)) else out

    for l in layers:
        layer = model.model.layers[l]
        hooks = {
            f"blocks.{l}.hook_attn_out": layer.self_attn,
            f"blocks.{l}.ln2.hook_normalized": layer.post_attention_layernorm,
            f"blocks.{l}.hook_mlp_out": layer.mlp,
            f"blocks.{l}.hook_resid_post": layer,
        }
        for name, mod in hooks.items():
            if name.endswith("ln2.hook_normalized"):
                def fn(m, inp, _out, name=name):
                    h = inp[0][0].detach().float()
                    n = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + m.variance_epsilon)
                    store[name] = n.clone().contiguous()
            else:
                def fn(_m, _i, out, name=name):
                    store[name] = first(out)[0].detach().float().clone().contiguous()

            handles.append(mod.register_forward_hook(fn))
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    for h in handles:
        h.remove()
    return store, logits


def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME, dtype=torch.float32)
    model.eval()
    bos = tok.bos_token_id
    assert bos == 1, bos

    # llama.cpp's "smollm" pre-tokenizer isolates each digit before the GPT-2 regex (as SmolLM2's
    # own tokenizer.json does with Digits); transformers' GGUF converter uses bare ByteLevel.
    # Check both agree on our texts, so the fixture ids are unambiguous.
    from tokenizers import Tokenizer

    spec = json.loads(tok.backend_tokenizer.to_str())
    spec["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, spec["pre_tokenizer"]],
    }
    llamacpp_tok = Tokenizer.from_str(json.dumps(spec))

    tensors = {}
    for i, text in enumerate(TEXTS + [LONG_TEXT]):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        alt = llamacpp_tok.encode(text, add_special_tokens=False).ids
        if ids != alt:
            print(f"warning: text {i}: transformers' GGUF tokenizer and llama.cpp's smollm "
                  f"pre-tokenizer disagree: {ids} vs {alt}", file=sys.stderr)
        ids = [bos] + ids
        x = torch.tensor([ids])
        layers = LAYERS if i < len(TEXTS) else [29]
        store, logits = capture(model, x, layers)
        tensors[f"t{i}.tokens"] = torch.tensor(ids, dtype=torch.int64)
        for name, v in store.items():
            if i < len(TEXTS) or name.endswith("hook_resid_post"):
                tensors[f"t{i}.{name}"] = v
        top = torch.topk(logits[-1], 10)
        tensors[f"t{i}.top_ids"] = top.indices.to(torch.int64).contiguous()
        tensors[f"t{i}.top_logits"] = top.values.contiguous()
        print(f"text {i}: {len(ids)} tokens, argmax {top.indices[0].item()}")
    os.makedirs(OUT_MODEL, exist_ok=True)
    path = os.path.join(OUT_MODEL, "smollm2_reference.safetensors")
    save_file(tensors, path, metadata={"texts": json.dumps(TEXTS + [LONG_TEXT]),
                                       "model": GGUF_NAME,
                                       "source": "scripts/make-reference-fixtures.py"})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


TINY_TEXTS = [
    "hello world, this is a tiny model",
    "rope scaling at position forty and beyond: " + "abc " * 20,
    "x",
]


def tiny_llama31():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    if os.path.isdir(OUT_TINY):
        shutil.rmtree(OUT_TINY)
    os.makedirs(OUT_TINY)

    # A small byte-level BPE trained deterministically on a fixed text, with Llama-3 specials.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = TINY_TEXTS + [LONG_TEXT] + TEXTS
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    tok.save(os.path.join(OUT_TINY, "tokenizer.json"))
    vocab = tok.get_vocab_size()

    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
        initializer_range=0.15,
        architectures=["LlamaForCausalLM"],
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    model = model.to(torch.bfloat16)
    model.save_pretrained(OUT_TINY, max_shard_size="60KB", safe_serialization=True)
    for junk in ("generation_config.json",):
        p = os.path.join(OUT_TINY, junk)
        if os.path.exists(p):
            os.remove(p)
    # transformers 5 writes `rope_parameters`; rewrite config.json in the layout of
    # meta-llama/Llama-3.1-8B (`rope_theta` + `rope_scaling`), which transformers still reads.
    cfg_path = os.path.join(OUT_TINY, "config.json")
    with open(cfg_path) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters", None)
    if rp is not None:
        c["rope_theta"] = rp.pop("rope_theta")
        c["rope_scaling"] = rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    with open(cfg_path, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)

    # Reference in f32 from the saved bf16 weights (exact upcast).
    ref = LlamaForCausalLM.from_pretrained(OUT_TINY, dtype=torch.float32)
    ref.eval()
    tensors = {}
    for i, text in enumerate(TINY_TEXTS):
        ids = [0] + tok.encode(text, add_special_tokens=False).ids
        store, logits = capture(ref, torch.tensor([ids]), list(range(cfg.num_hidden_layers)))
        tensors[f"t{i}.tokens"] = torch.tensor(ids, dtype=torch.int64)
        for name, v in store.items():
            tensors[f"t{i}.{name}"] = v
        tensors[f"t{i}.logits"] = logits.contiguous()
        print(f"tiny text {i}: {len(ids)} tokens")
    save_file(tensors, os.path.join(OUT_TINY, "reference.safetensors"),
              metadata={"texts": json.dumps(TINY_TEXTS)})
    shards = sorted(f for f in os.listdir(OUT_TINY))
    print(f"wrote {OUT_TINY}: {shards}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    which = sys.argv[1:] or ["smollm2", "tiny"]
    if "smollm2" in which:
        smollm2()
    if "tiny" in which:
        tiny_llama31()
