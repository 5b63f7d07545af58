#!/usr/bin/env python3
"""The Python side of scripts/gpu-check.sh: fabricate a Llama-3.1-8B-shaped checkpoint and
Llama-Scope-layout SAEs, and give transformers' and torch's side of every comparison.

Subcommands (each prints one JSON line on stdout):
  fabricate OUT [--shape llama8b|tiny] [--device cuda]
      OUT/model: LlamaForCausalLM config of Llama-3.1-8B (d 4096, 32/8 heads, d_mlp 14,336,
      vocab 128,256, llama3 RoPE scaling) with its first 16 blocks, bf16 safetensors, and a
      byte-level tokenizer.json; OUT/saes/L15{R,A,M,TC}-8x: Llama Scope folders (4,096 → 32,768,
      TopK k = 50) whose dataset norms are measured on the model. OUT/texts.txt, OUT/corpus.json.
  hooks MODEL ACTS OUT --dtype f32|bf16 [--device cuda]
      transformers' (eager attention) hooks on the token ids of our dump ACTS → OUT.
  compare OURS THEIRS --tol T
      relative L2 of every hook; exit 1 above T.
  codes SAE ACTS TENSOR CODES [--device cuda]
      torch encode of ACTS[TENSOR] with the SAE (the lm_saes math) against our CODES: active-set
      agreement.
  speed MODEL --contexts N --seq T --batch B --layers L [--saes DIR ...] [--device cuda]
      transformers' forward to layer L (bf16, sdpa) over N×T random tokens; with --saes also
      the SAELens way: each SAE's TopK encode and a running top-20 per feature.
"""
import argparse
import json
import os
import sys
import time

import torch

SHAPES = {
    "llama8b": dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
                    num_key_value_heads=8, vocab_size=128256, num_hidden_layers=16, d_sae=32768),
    # A dry run on a CPU: the same script end to end at toy sizes.
    "tiny": dict(hidden_size=64, intermediate_size=160, num_attention_heads=8,
                 num_key_value_heads=2, vocab_size=512, num_hidden_layers=16, d_sae=512),
}
K = 50
LAYER = 15
WORDS = ("the of and to in is was for on that with as by at from his her an which are were "
         "river bank account money water court law judge city music film year time people "
         "data model token layer feature sparse code paper science history war king").split()


def emit(obj):
    print(json.dumps(obj), flush=True)


def byte_tokenizer(vocab_size, path):
    """A byte-level tokenizer: 256 byte tokens, then reserved specials up to vocab_size; BOS last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [f"<|reserved_special_token_{i}|>" for i in range(vocab_size - len(vocab) - 1)]
    tok.add_special_tokens(specials + ["<|begin_of_text|>"])
    tok.save(path)
    return vocab_size - 1


def fabricate(args):
    from transformers import LlamaConfig, LlamaForCausalLM
    shape = dict(SHAPES[args.shape])
    d_sae = shape.pop("d_sae")
    out_model = os.path.join(args.out, "model")
    os.makedirs(out_model, exist_ok=True)
    t0 = time.time()
    bos = byte_tokenizer(shape["vocab_size"], os.path.join(out_model, "tokenizer.json"))
    cfg = LlamaConfig(**shape, head_dim=shape["hidden_size"] // shape["num_attention_heads"],
                      rms_norm_eps=1e-5, rope_theta=500000.0,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 8192},
                      max_position_embeddings=131072, tie_word_embeddings=False,
                      bos_token_id=bos, eos_token_id=bos, architectures=["LlamaForCausalLM"])
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.uniform_(0.5, 1.5)
    model.save_pretrained(out_model, safe_serialization=True)
    c = json.load(open(os.path.join(out_model, "config.json")))
    rp = c.pop("rope_parameters", None)  # transformers 5 → the layout Llama-3.1-8B ships
    if rp is not None:
        c["rope_theta"] = rp.pop("rope_theta")
        c["rope_scaling"] = rp
    json.dump(c, open(os.path.join(out_model, "config.json"), "w"), indent=2)

    rng = torch.Generator().manual_seed(1)
    texts = [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (200,), generator=rng))
             for _ in range(8)]
    open(os.path.join(args.out, "texts.txt"), "w").write("\n".join(texts) + "\n")
    corpus = [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (1400,), generator=rng))
              for _ in range(300)]
    json.dump(corpus, open(os.path.join(args.out, "corpus.json"), "w"))

    # Dataset norms of each SAE's input/output hook, on the texts.
    ids = torch.tensor([[bos] + list(t.encode())[:1023] for t in corpus[:4]], device=args.device)
    acts = capture(model, ids, [LAYER])
    d = shape["hidden_size"]
    hooks = {"R": ("hook_resid_post", "hook_resid_post"), "A": ("hook_attn_out", "hook_attn_out"),
             "M": ("hook_mlp_out", "hook_mlp_out"), "TC": ("ln2.hook_normalized", "hook_mlp_out")}
    for pos, (hin, hout) in hooks.items():
        hi, ho = f"blocks.{LAYER}.{hin}", f"blocks.{LAYER}.{hout}"
        norm = lambda h: acts[h][:, 1:].norm(dim=-1).mean().item()  # noqa: E731 (BOS excluded)
        folder = os.path.join(args.out, "saes", f"L{LAYER}{pos}-8x")
        os.makedirs(os.path.join(folder, "checkpoints"), exist_ok=True)
        json.dump({"d_model": d, "d_sae": d_sae, "expansion_factor": d_sae // d,
                   "hook_point_in": hi, "hook_point_out": ho, "act_fn": "topk", "top_k": K,
                   "norm_activation": "dataset-wise",
                   "dataset_average_activation_norm": {"in": norm(hi), "out": norm(ho)},
                   "sparsity_include_decoder_norm": True, "use_decoder_bias": True,
                   "apply_decoder_bias_to_pre_encoder": False},
                  open(os.path.join(folder, "hyperparams.json"), "w"), indent=2)
        g = torch.Generator(device=args.device).manual_seed(hash(pos) % 1000)
        dec = torch.randn(d, d_sae, generator=g, device=args.device)
        dec = dec / dec.norm(dim=0, keepdim=True) * (0.5 + torch.rand(d_sae, generator=g, device=args.device))
        from safetensors.torch import save_file
        save_file({"encoder.weight": (dec.T.contiguous() / d ** 0.5),
                   "encoder.bias": -0.01 * torch.rand(d_sae, generator=g, device=args.device),
                   "decoder.weight": dec.contiguous(),
                   "decoder.bias": 0.01 * torch.randn(d, generator=g, device=args.device)},
                  os.path.join(folder, "checkpoints", "final.safetensors"))
    # A JumpReLU copy of L15R-8x, its threshold set for a mean L0 of K on these texts: the
    # device's threshold selection (the Gemma Scope kind) against torch.
    import shutil
    src = os.path.join(args.out, "saes", f"L{LAYER}R-8x")
    dst = src + "-jumprelu"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    x = acts[f"blocks.{LAYER}.hook_resid_post"][:, 1:].reshape(-1, d)
    gate, s_in = sae_gate(src, x)
    thr = gate.topk(K, dim=-1).values[:, -1].mean().item() / s_in
    hp = json.load(open(os.path.join(dst, "hyperparams.json")))
    hp.update(act_fn="jumprelu", jump_relu_threshold=thr)
    json.dump(hp, open(os.path.join(dst, "hyperparams.json"), "w"), indent=2)
    emit({"fabricated": args.out, "seconds": time.time() - t0, "bos": bos})


def capture(model, ids, layers):
    """{hook: [B, T, d] f32} at `layers` (TransformerLens names), as scripts/make-reference-
    fixtures.py defines them for Llama."""
    store, handles = {}, []
    first = lambda out: out[0] if isinstance(out, (tuple, list)) else out  # noqa: E731
    for l in layers:
        layer = model.model.layers[l]
        mods = {f"blocks.{l}.hook_attn_out": layer.self_attn,
                f"blocks.{l}.ln2.hook_normalized": layer.post_attention_layernorm,
                f"blocks.{l}.hook_mlp_out": layer.mlp, f"blocks.{l}.hook_resid_post": layer}
        for name, mod in mods.items():
            if name.endswith("ln2.hook_normalized"):
                def fn(m, inp, _out, name=name):
                    h = inp[0].float()
                    store[name] = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + m.variance_epsilon)
            else:
                def fn(_m, _i, out, name=name):
                    store[name] = first(out).float()
            handles.append(mod.register_forward_hook(fn))
    with torch.no_grad():
        model.model(ids)
    for h in handles:
        h.remove()
    return store


def hooks(args):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype,
                                                 attn_implementation="eager").to(args.device)
    ours = load_file(args.acts)
    tokens, text_index = ours["tokens"], ours["text_index"]
    layers = sorted({int(k.split(".")[1]) for k in ours if k.startswith("blocks.")})
    out = {}
    for t in text_index.unique().tolist():
        ids = tokens[text_index == t].to(args.device)[None]
        for name, v in capture(model, ids, layers).items():
            out.setdefault(name, []).append(v[0].cpu())
    save_file({k: torch.cat(v).contiguous() for k, v in out.items() if k in ours}, args.out)
    emit({"hooks": args.out, "dtype": args.dtype})


def compare(args):
    from safetensors.torch import load_file
    ours, theirs = load_file(args.ours), load_file(args.theirs)
    worst, rows = 0.0, {}
    for k, v in theirs.items():
        rel = ((ours[k].double() - v.double()).norm() / v.double().norm()).item()
        rows[k] = rel
        worst = max(worst, rel)
    emit({"worst_rel_l2": worst, "tolerance": args.tol, "hooks": rows})
    sys.exit(0 if worst <= args.tol else 1)


def sae_gate(folder, x):
    """(h, gate, s_in) of lm_saes' encode of the raw Llama Scope files: dataset-wise norm,
    decoder-norm gate."""
    from safetensors.torch import load_file
    hp = json.load(open(os.path.join(folder, "hyperparams.json")))
    w = load_file(os.path.join(folder, "checkpoints", "final.safetensors"), device=str(x.device))
    s_in = hp["d_model"] ** 0.5 / hp["dataset_average_activation_norm"]["in"]
    h = (x.float() * s_in) @ w["encoder.weight"].float().T + w["encoder.bias"].float()
    gate = h * w["decoder.weight"].float().norm(dim=0) if hp["sparsity_include_decoder_norm"] else h
    return gate, s_in


def sae_encode(folder, x):
    """lm_saes' encode: TopK, or JumpReLU with the gate above `jump_relu_threshold · s_in`."""
    from safetensors.torch import load_file
    hp = json.load(open(os.path.join(folder, "hyperparams.json")))
    w = load_file(os.path.join(folder, "checkpoints", "final.safetensors"), device=str(x.device))
    s_in = hp["d_model"] ** 0.5 / hp["dataset_average_activation_norm"]["in"]
    h = (x.float() * s_in) @ w["encoder.weight"].float().T + w["encoder.bias"].float()
    gate, _ = sae_gate(folder, x)
    if hp["act_fn"] == "jumprelu":
        mask = (gate > hp["jump_relu_threshold"] * s_in) & (h > 0)
    else:
        top = gate.topk(hp["top_k"], dim=-1)
        mask = torch.zeros_like(h, dtype=torch.bool).scatter_(-1, top.indices, True) & (gate > 0)
    return h * mask


def codes(args):
    from safetensors.torch import load_file
    x = load_file(args.acts)[args.tensor].to(args.device)
    theirs = sae_encode(args.sae, x).cpu()
    c = load_file(args.codes)
    rows = torch.repeat_interleave(torch.arange(x.shape[0]), c["row_ptr"][1:] - c["row_ptr"][:-1])
    ours = torch.zeros_like(theirs)
    ours[rows, c["features"]] = c["values"]
    a, b = ours != 0, theirs != 0
    agree = (a & b).sum().item() / max((a | b).sum().item(), 1)
    # Explained variance and MSE of torch's own codes, against ours (reduced on the device).
    y = (load_file(args.acts)[args.target] if args.target else x).to(args.device).float()
    hp = json.load(open(os.path.join(args.sae, "hyperparams.json")))
    w = load_file(os.path.join(args.sae, "checkpoints", "final.safetensors"), device=args.device)
    s_out = hp["d_model"] ** 0.5 / hp["dataset_average_activation_norm"]["out"]
    y_hat = (theirs.to(args.device) @ w["decoder.weight"].float().T + w["decoder.bias"].float()) / s_out
    sse = (y - y_hat).double().pow(2).sum().item()
    total = (y.double() - y.double().mean(0)).pow(2).sum().item()
    torch_metrics = {"explained_variance": 1 - sse / total, "mse": sse / y.numel()}
    ours_metrics = json.load(open(args.metrics))
    ev_ok = abs(ours_metrics["explained_variance"] - torch_metrics["explained_variance"]) \
        <= 1e-2 * max(1.0, abs(torch_metrics["explained_variance"]))
    mse_ok = abs(ours_metrics["mse"] - torch_metrics["mse"]) <= 1e-2 * torch_metrics["mse"]
    emit({"sae": args.sae, "active_set_agreement": agree, "rows": x.shape[0],
          "explained_variance": [ours_metrics["explained_variance"], torch_metrics["explained_variance"]],
          "mse": [ours_metrics["mse"], torch_metrics["mse"]]})
    sys.exit(0 if agree >= args.min_agreement and ev_ok and mse_ok else 1)


def speed(args):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16,
                                                 attn_implementation="sdpa").to(args.device)
    model.model.layers = model.model.layers[: args.layers]
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab - 1, (args.contexts, args.seq), generator=g)
    saes = [(f, None) for f in args.saes or []]
    hook_of = {}
    for f in args.saes or []:
        hook_of[f] = json.load(open(os.path.join(f, "hyperparams.json")))["hook_point_in"]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def run(with_saes):
        # SAELens' way: hooks, encode, and a running top-20 (value, position) per feature.
        best = {}
        for i in range(0, args.contexts, args.batch):
            batch = ids[i:i + args.batch].to(args.device)
            with torch.no_grad():
                if not with_saes:
                    model.model(batch)
                    continue
                acts = capture(model, batch, [LAYER])
                for f, _ in saes:
                    x = acts[hook_of[f]].reshape(-1, acts[hook_of[f]].shape[-1])
                    a = sae_encode(f, x)
                    top = a.topk(20, dim=0)
                    prev = best.get(f)
                    if prev is not None:
                        merged = torch.cat([prev, top.values])
                        top = merged.topk(20, dim=0)
                    best[f] = top.values
        sync()

    run(False)  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    run(False)
    forward_s = time.perf_counter() - t
    out = {"contexts": args.contexts, "seq": args.seq, "layers": args.layers,
           "hf_forward_tokens_per_s": args.contexts * args.seq / forward_s}
    if saes:
        t = time.perf_counter()
        run(True)
        out["hf_saelens_tokens_per_s"] = args.contexts * args.seq / (time.perf_counter() - t)
    if args.device.startswith("cuda"):
        out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    emit(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fabricate")
    f.add_argument("out")
    f.add_argument("--shape", default="llama8b", choices=SHAPES)
    h = sub.add_parser("hooks")
    h.add_argument("model")
    h.add_argument("acts")
    h.add_argument("out")
    h.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    c = sub.add_parser("compare")
    c.add_argument("ours")
    c.add_argument("theirs")
    c.add_argument("--tol", type=float, required=True)
    e = sub.add_parser("codes")
    e.add_argument("sae")
    e.add_argument("acts")
    e.add_argument("tensor")
    e.add_argument("codes")
    e.add_argument("--min-agreement", type=float, default=0.99)
    e.add_argument("--metrics", required=True, help="`scopedex encode --metrics` output (JSON)")
    e.add_argument("--target", help="the reconstruction target's tensor (transcoders)")
    s = sub.add_parser("speed")
    s.add_argument("model")
    s.add_argument("--contexts", type=int, default=256)
    s.add_argument("--seq", type=int, default=1024)
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--layers", type=int, default=LAYER + 1)
    s.add_argument("--saes", nargs="*")
    for q in (f, h, e, s):
        q.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    {"fabricate": fabricate, "hooks": hooks, "compare": compare, "codes": codes,
     "speed": speed}[args.cmd](args)


if __name__ == "__main__":
    main()
