#!/usr/bin/env python3
"""Fabricate small SAE checkpoints in the Llama Scope and SAELens layouts, plus inputs and the
numpy reference codes / reconstructions, into tests/fixtures/sae/ (crates/sae's tests read them).

Usage: python3 scripts/make-sae-fixtures.py [--with-torch]   (needs numpy; deterministic,
re-runnable; --with-torch, with torch installed, also writes the OpenAI .pt fixture)

The reference follows the authors' formulas (see crates/sae/src/llamascope.rs, saelens.rs), in
float64 on the weights exactly as stored (bf16/f16 rounded). Inputs are resampled until every
decision (threshold, top-k boundary, ReLU) has a margin, so f32 rounding cannot flip an active
set and the Rust tests can demand identical active sets.
"""
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "sae")
D_MODEL, D_SAE, N_ROWS = 32, 128, 40
MARGIN = 1e-3  # decisions must clear their boundary by this fraction of the row's gate std


# ---------------------------------------------------------------- safetensors (with bf16)
def bf16_round(a):
    """float32 -> bf16 bits (round to nearest even), and the value they represent."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    value = (bits.astype(np.uint32) << 16).view(np.float32)
    return bits, value


def stored(a, dtype):
    """(raw bytes, safetensors dtype, the float64 value the file holds)."""
    a = np.asarray(a, dtype=np.float64)
    if dtype == "F32":
        v = a.astype(np.float32)
        return v.tobytes(), dtype, v.astype(np.float64)
    if dtype == "F16":
        v = a.astype(np.float16)
        return v.tobytes(), dtype, v.astype(np.float64)
    if dtype == "BF16":
        bits, v = bf16_round(a.astype(np.float32))
        return bits.tobytes(), dtype, v.astype(np.float64)
    raise ValueError(dtype)


def save_safetensors(path, tensors):
    """tensors: name -> (bytes, dtype, shape)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        data, dtype, shape = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
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


def write_weights(path, named, dtype):
    """named: name -> float array; returns name -> float64 values as stored."""
    out, values = {}, {}
    for name, a in named.items():
        data, dt, v = stored(a, dtype)
        out[name] = (data, dt, np.shape(a))
        values[name] = v.reshape(np.shape(a))
    save_safetensors(path, out)
    return values


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- reference math
def select(h, gate, act, k=None, thr=None):
    """Active mask per the authors' semantics; values are h where active (always > 0)."""
    if act == "relu":
        return h > 0
    if act == "jumprelu":
        return (gate > thr) & (h > 0)
    if act == "topk":
        mask = np.zeros_like(h, dtype=bool)
        for r in range(h.shape[0]):
            g = gate[r]
            order = sorted(range(len(g)), key=lambda j: (-g[j], j))[:k]
            for j in order:
                if g[j] > 0 and h[r, j] > 0:
                    mask[r, j] = True
        return mask
    raise ValueError(act)


def margin_ok(h, gate, act, k=None, thr=None):
    """Per row: every decision clears its boundary by MARGIN * std(gate)."""
    ok = np.ones(h.shape[0], dtype=bool)
    for r in range(h.shape[0]):
        eps = MARGIN * max(np.std(gate[r]), 1e-6)
        epsh = MARGIN * max(np.std(h[r]), 1e-6)
        if np.min(np.abs(h[r])) < epsh:
            ok[r] = False
        if act == "jumprelu" and np.min(np.abs(gate[r] - thr)) < eps:
            ok[r] = False
        if act == "topk":
            g = np.sort(gate[r])[::-1]
            if g[k - 1] - g[k] < eps or abs(g[k - 1]) < eps:
                ok[r] = False
        if act == "relu" and np.min(np.abs(gate[r])) < eps:
            ok[r] = False
    return ok


def sample_inputs(rng, encode_pre, act, k, thr, norm_in, offset):
    """N rows in native scale (norm ≈ norm_in, plus an offset), resampled until margins hold."""
    x = np.zeros((N_ROWS, D_MODEL))
    todo = np.arange(N_ROWS)
    for _ in range(1000):
        if len(todo) == 0:
            return x
        cand = rng.standard_normal((len(todo), D_MODEL)) * norm_in / np.sqrt(D_MODEL) + offset
        cand = cand.astype(np.float32).astype(np.float64)  # inputs are stored as f32
        h, gate = encode_pre(cand)
        ok = margin_ok(h, gate, act, k, thr)
        x[todo[ok]] = cand[ok]
        todo = todo[~ok]
    sys.exit("could not sample inputs with enough margin")


def metrics(y_hat, y, acts):
    err = ((y_hat - y) ** 2).sum()
    var = ((y - y.mean(axis=0)) ** 2).sum()
    return {
        "mse": float(err / y.size),
        "explained_variance": float(1 - err / var),
        "mean_l0": float((acts > 0).sum() / acts.shape[0]),
        "dead_features": int(((acts > 0).sum(axis=0) == 0).sum()),
        "n_rows": int(acts.shape[0]),
    }


def save_expected(name, x, acts, recon, target, extra, metric_target=None):
    m = metrics(recon, target if metric_target is None else metric_target, acts)
    f32 = lambda a: (np.asarray(a, dtype=np.float32).tobytes(), "F32", np.shape(a))
    save_safetensors(
        os.path.join(ROOT, "expected", name + ".safetensors"),
        {"x": f32(x), "acts": f32(acts), "recon": f32(recon), "target": f32(target)},
    )
    write_json(os.path.join(ROOT, "expected", name + ".json"), {"metrics": m, **extra})
    print(f"{name}: mean L0 {m['mean_l0']:.2f}, EV {m['explained_variance']:.3f}")


def decoder_columns(rng, d_out, d_sae):
    """[d_out, d_sae] with column norms spread over 0.5..2 (non-unit on purpose)."""
    d = rng.standard_normal((d_out, d_sae))
    d /= np.linalg.norm(d, axis=0, keepdims=True)
    return d * rng.uniform(0.5, 2.0, size=d_sae)


# ---------------------------------------------------------------- Llama Scope
def llama_scope(rng, folder, layer, pos, act, dtype, norm_in, norm_out, k=None, thr=None,
                sparsity_include_decoder_norm=True, apply_pre=False, norm_activation="dataset-wise"):
    hooks = {
        "R": (f"blocks.{layer}.hook_resid_post",) * 2,
        "A": (f"blocks.{layer}.hook_attn_out",) * 2,
        "M": (f"blocks.{layer}.hook_mlp_out",) * 2,
        "TC": (f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"),
    }[pos]
    exp = D_SAE // D_MODEL
    name = f"Llama3_1-8B-Base-L{layer}{pos}-{exp}x"
    if norm_activation == "dataset-wise":
        s_in, s_out = np.sqrt(D_MODEL) / norm_in, np.sqrt(D_MODEL) / norm_out
    else:
        s_in = s_out = 1.0
    d = os.path.join(ROOT, folder, name)
    hp = {
        # training fields the loader must ignore
        "l1_coefficient": 1.6e-05, "lp": 1, "use_ghost_grads": False, "tp_size": 1,
        "d_model": D_MODEL, "d_sae": D_SAE, "expansion_factor": exp,
        "hook_point_in": hooks[0], "hook_point_out": hooks[1],
        # The file's threshold is in units of gate / s_in (lm_saes inference, SAELens 6);
        # `thr` below is the gate threshold itself.
        "act_fn": act, "jump_relu_threshold": thr / s_in if thr is not None else 0.0,
        "top_k": k if k is not None else 6,
        "norm_activation": norm_activation,
        "dataset_average_activation_norm": {"in": norm_in, "out": norm_out},
        "sparsity_include_decoder_norm": sparsity_include_decoder_norm,
        "use_decoder_bias": True, "apply_decoder_bias_to_pre_encoder": apply_pre,
        "decoder_exactly_fixed_norm": False, "use_glu_encoder": False,
    }
    write_json(os.path.join(d, "hyperparams.json"), hp)
    w = write_weights(os.path.join(d, "checkpoints", "final.safetensors"), {
        "encoder.weight": rng.standard_normal((D_SAE, D_MODEL)) / np.sqrt(D_MODEL),
        "encoder.bias": rng.normal(-0.3, 0.2, D_SAE),
        "decoder.weight": decoder_columns(rng, D_MODEL, D_SAE),
        "decoder.bias": rng.normal(0, 0.3, D_MODEL),
    }, dtype)
    E, b, D, bd = w["encoder.weight"], w["encoder.bias"], w["decoder.weight"], w["decoder.bias"]
    dn = np.linalg.norm(D, axis=0)

    def pre(x):
        xs = x * s_in
        if apply_pre:
            xs = xs - bd
        h = xs @ E.T + b
        return h, (h * dn if sparsity_include_decoder_norm else h)

    offset = rng.normal(0, 0.2, D_MODEL) * norm_in / np.sqrt(D_MODEL)
    x = sample_inputs(rng, pre, act, k, thr, norm_in, offset)
    h, gate = pre(x)
    acts = h * select(h, gate, act, k, thr)
    recon = (acts @ D.T + bd) / s_out
    if pos == "TC":  # the target is the MLP output, not the input
        target = recon + rng.standard_normal(recon.shape) * norm_out / np.sqrt(D_MODEL) * 0.5
    else:
        target = x
    save_expected(name, x, acts, recon, target, {"folder": f"{folder}/{name}", "id": f"L{layer}{pos}-{exp}x"})


# ---------------------------------------------------------------- SAELens
def saelens(rng, name, arch, dtype, cfg_style, k=None, apply_b_dec=False, hook="blocks.4.hook_resid_post",
            centred=False):
    """`centred`: the cfg says the SAE read TransformerLens' centred residual stream (as
    gpt2-small-res-jb does): inputs and targets are centred over d_model first."""
    d = os.path.join(ROOT, name)
    if cfg_style == "v6":
        cfg = {
            "architecture": arch, "d_in": D_MODEL, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
            "apply_b_dec_to_input": apply_b_dec, "normalize_activations": "none",
            "reshape_activations": "none",
            "metadata": {"sae_lens_version": "6.21.0", "hook_name": hook, "model_name": "tiny",
                         "hook_head_index": None, "context_size": 128, "prepend_bos": True},
        }
        if arch == "topk":
            cfg["k"] = k
    else:  # flat <= v5
        cfg = {
            "architecture": arch, "d_in": D_MODEL, "d_sae": D_SAE, "dtype": "float16", "device": "cpu",
            "model_name": "tiny", "hook_name": hook, "hook_layer": 4, "hook_head_index": None,
            "activation_fn_str": "relu", "activation_fn_kwargs": {}, "apply_b_dec_to_input": apply_b_dec,
            "finetuning_scaling_factor": False, "sae_lens_training_version": "5.3.0",
            "prepend_bos": True, "context_size": 128, "normalize_activations": "none",
            "neuronpedia_id": None,
        }
        if centred:
            cfg["model_from_pretrained_kwargs"] = {"center_writing_weights": True}
    write_json(os.path.join(d, "cfg.json"), cfg)
    named = {
        "W_enc": rng.standard_normal((D_MODEL, D_SAE)) / np.sqrt(D_MODEL),
        "b_enc": rng.normal(-0.3, 0.2, D_SAE),
        "W_dec": decoder_columns(rng, D_MODEL, D_SAE).T,
        "b_dec": rng.normal(0, 0.3, D_MODEL),
    }
    if arch == "jumprelu":
        named["threshold"] = rng.uniform(0.3, 1.2, D_SAE)
    w = write_weights(os.path.join(d, "sae_weights.safetensors"), named, dtype)
    thr = w.get("threshold")

    def centre(x):
        return x - x.mean(axis=1, keepdims=True) if centred else x

    def pre(x):
        x = centre(x)
        xs = x - w["b_dec"] if apply_b_dec else x
        h = xs @ w["W_enc"] + w["b_enc"]
        return h, h

    act = {"standard": "relu", "jumprelu": "jumprelu", "topk": "topk"}[arch]
    global MARGIN
    saved = MARGIN
    if centred:
        # Centring in f32 moves each gate by ~1e-7: keep every activation well clear of 0 so
        # the 1e-4 relative comparison measures the formula, not f32 rounding of tiny values.
        MARGIN = 3e-2
    x = sample_inputs(rng, pre, act, k, thr, np.sqrt(D_MODEL), rng.normal(0, 0.2, D_MODEL))
    MARGIN = saved
    h, gate = pre(x)
    acts = h * select(h, gate, act, k, thr)
    recon = acts @ w["W_dec"] + w["b_dec"]
    save_expected(name, x, acts, recon, x, {"folder": name}, metric_target=centre(x))


# ---------------------------------------------------------------- Gemma Scope
def gemma_scope(rng, rel, layout, transcoder=False):
    """A JumpReLU SAE in a Gemma Scope release folder: `params.npz` (Gemma Scope, arrays as
    np.savez stores them) or `params.safetensors` with lower-case names (Gemma Scope 2). Encode:
    pre = x W_enc + b_enc, f = pre * (pre > threshold); no input scaling, no b_dec subtraction."""
    d = os.path.join(ROOT, rel)
    os.makedirs(d, exist_ok=True)
    w = {
        "W_enc": (rng.standard_normal((D_MODEL, D_SAE)) / np.sqrt(D_MODEL)).astype(np.float32),
        "W_dec": decoder_columns(rng, D_MODEL, D_SAE).T.astype(np.float32),
        "b_enc": rng.normal(-0.2, 0.2, D_SAE).astype(np.float32),
        "b_dec": rng.normal(0, 0.3, D_MODEL).astype(np.float32),
        "threshold": rng.uniform(0.2, 1.0, D_SAE).astype(np.float32),
    }
    if layout == "npz":
        np.savez(os.path.join(d, "params.npz"), **w)
    else:
        save_safetensors(os.path.join(d, "params.safetensors"),
                         {k.lower(): (v.tobytes(), "F32", v.shape) for k, v in w.items()})
    w = {k: v.astype(np.float64) for k, v in w.items()}

    def pre(x):
        h = x @ w["W_enc"] + w["b_enc"]
        return h, h

    x = sample_inputs(rng, pre, "jumprelu", None, w["threshold"], np.sqrt(D_MODEL),
                      rng.normal(0, 0.2, D_MODEL))
    h, gate = pre(x)
    acts = h * select(h, gate, "jumprelu", None, w["threshold"])
    recon = acts @ w["W_dec"] + w["b_dec"]
    target = recon + rng.normal(0, 0.1, recon.shape) if transcoder else x
    name = rel.replace("/", "_")
    save_expected(name, x, acts, recon, target, {"folder": rel})


# ---------------------------------------------------------------- OpenAI TopK (sparse_autoencoder)
def openai_topk(rng, rel, k):
    """openai/sparse_autoencoder's v5 TopK autoencoder, saved as its `state_dict()` with torch
    (tensors plus "activation": "TopK" and "activation_state_dict": {"k", "postact_fn"}). Encode
    (model.py): x normalised per token (mean removed, divided by the unbiased std + 1e-5), then
    pre = (x - pre_bias) @ encoder.weight.T + latent_bias, the k largest kept, ReLU."""
    import torch  # only this fixture needs it

    d = os.path.join(ROOT, os.path.dirname(rel))
    os.makedirs(d, exist_ok=True)
    n = D_SAE
    w = {
        "pre_bias": rng.normal(0, 0.1, D_MODEL),
        "encoder.weight": rng.standard_normal((n, D_MODEL)) / np.sqrt(D_MODEL),
        "latent_bias": rng.normal(0, 0.1, n),
        "decoder.weight": decoder_columns(rng, D_MODEL, n),
    }
    w = {key: v.astype(np.float32).astype(np.float64) for key, v in w.items()}
    state = {key: torch.tensor(v, dtype=torch.float32) for key, v in w.items()}
    state["stats_last_nonzero"] = torch.zeros(n, dtype=torch.int64)
    state["latents_activation_frequency"] = torch.zeros(n, dtype=torch.float32)
    state["latents_mean_square"] = torch.zeros(n, dtype=torch.float32)
    state["activation"] = "TopK"
    state["activation_state_dict"] = {"k": k, "postact_fn": "ReLU"}
    torch.save(state, os.path.join(ROOT, rel))

    def normalise(x):
        x = x - x.mean(axis=1, keepdims=True)
        return x / (x.std(axis=1, ddof=1, keepdims=True) + 1e-5)

    def pre(x):
        h = (normalise(x) - w["pre_bias"]) @ w["encoder.weight"].T + w["latent_bias"]
        return h, h

    x = sample_inputs(rng, pre, "topk", k, None, np.sqrt(D_MODEL) * 3, rng.normal(0, 0.5, D_MODEL))
    h, gate = pre(x)
    acts = h * select(h, gate, "topk", k)
    recon = acts @ w["decoder.weight"].T + w["pre_bias"]
    name = rel.replace("/", "_")
    # Reconstructions compare in the normalised space the SAE reads.
    save_expected(name, x, acts, recon, x, {"folder": rel}, metric_target=normalise(x))


def main():
    rng = np.random.default_rng(20240604)
    repo = "llamascope_repo"
    llama_scope(rng, repo, 3, "R", "jumprelu", "BF16", norm_in=6.3125, norm_out=6.3125, thr=1.1)
    llama_scope(rng, repo, 2, "TC", "topk", "F32", norm_in=11.0, norm_out=0.75, k=6, apply_pre=True)
    llama_scope(rng, repo, 5, "A", "jumprelu", "F16", norm_in=5.75, norm_out=5.5, thr=0.8,
                sparsity_include_decoder_norm=False, norm_activation="inference")
    saelens(rng, "saelens_jumprelu", "jumprelu", "F32", "v6", apply_b_dec=True)
    saelens(rng, "saelens_standard", "standard", "F16", "v5")
    saelens(rng, "saelens_topk", "topk", "BF16", "v6", k=5, hook="blocks.1.hook_mlp_out")
    gemma_scope(rng, "gemma-scope-2b-pt-att/layer_5/width_128/average_l0_9", "npz")
    gemma_scope(rng, "gemma-scope-2-270m-pt/transcoder/layer_3_width_128_l0_small", "safetensors",
                transcoder=True)
    saelens(rng, "saelens_centred_resid_pre", "standard", "F32", "v5", apply_b_dec=True,
            hook="blocks.2.hook_resid_pre", centred=True)
    if "--with-torch" in sys.argv:
        openai_topk(rng, "openai/resid_post_mlp_v5_32k/autoencoders/3.pt", k=6)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {ROOT} ({total} bytes)")


if __name__ == "__main__":
    main()
