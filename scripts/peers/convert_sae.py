#!/usr/bin/env python3
"""Converts a Llama Scope layout TopK SAE (hyperparams.json + checkpoints/final.safetensors) into
an SAELens (v6) folder (cfg.json + sae_weights.safetensors), written by SAELens' own TopKSAE
`save_model`, so the peers load it with `SAE.load_from_disk`.

    convert_sae.py LLAMA_SCOPE_DIR OUT_DIR [LLAMA_SCOPE_DIR OUT_DIR ...]

Math (see /work/shared/reference/llamascope-format.md): s_in = sqrt(d_model)/norm["in"],
s_out = sqrt(d_model)/norm["out"]; scopedex computes h = (x·s_in) @ encoder.weightᵀ + encoder.bias
and keeps the k largest gates (ReLU). SAELens TopK computes x @ W_enc + b_enc then topk + ReLU, so
W_enc = encoder.weightᵀ · s_in (s_in folded, as SAELens' own Llama Scope loader does), b_enc =
encoder.bias: the activations equal scopedex's h. Decode: W_dec = decoder.weightᵀ / s_out,
b_dec = decoder.bias / s_out (both norms, so transcoders are right too).
With `sparsity_include_decoder_norm` the gate is h·‖D_j‖: SAELens' `rescale_acts_by_decoder_norm`
gates (and outputs) h·‖W_dec_j‖, so W_dec is kept unscaled there: the activations are then
h·‖D_j‖, a per-feature constant factor that leaves every per-feature ranking unchanged.
Idempotent: skips when OUT_DIR/cfg.json exists and is newer than the source.
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file


def convert(src, out):
    hp = json.load(open(os.path.join(src, "hyperparams.json")))
    weights = os.path.join(src, "checkpoints", "final.safetensors")
    cfg_path = os.path.join(out, "cfg.json")
    if os.path.exists(cfg_path) and os.path.getmtime(cfg_path) >= os.path.getmtime(weights) \
            and json.load(open(cfg_path))["metadata"].get("converted_from") == os.path.abspath(src):
        return
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    assert hp["act_fn"] == "topk", f"{src}: only TopK SAEs are converted (act_fn {hp['act_fn']})"
    assert hp.get("norm_activation", "dataset-wise") == "dataset-wise", hp.get("norm_activation")
    assert not hp.get("apply_decoder_bias_to_pre_encoder", False)
    d, n = hp["d_model"], hp["d_sae"]
    norm = hp["dataset_average_activation_norm"]
    s_in, s_out = math.sqrt(d) / norm["in"], math.sqrt(d) / norm["out"]
    gate_norm = bool(hp.get("sparsity_include_decoder_norm", False))
    w = {k: v.float() for k, v in load_file(weights).items()}
    cfg = TopKSAEConfig(
        d_in=d,
        d_sae=n,
        k=int(hp["top_k"]),
        dtype="float32",
        device="cpu",
        apply_b_dec_to_input=False,
        normalize_activations="none",
        rescale_acts_by_decoder_norm=gate_norm,
        metadata=SAEMetadata(
            hook_name=hp["hook_point_in"],
            hook_point_out=hp["hook_point_out"],
            model_name="SmolLM2-135M-Instruct",
            prepend_bos=True,
            context_size=128,
            converted_from=os.path.abspath(src),
        ),
    )
    sae = TopKSAE(cfg)
    dec_scale = 1.0 if gate_norm else 1.0 / s_out
    b_dec = w["decoder.bias"] if hp.get("use_decoder_bias", True) else torch.zeros(d)
    sae.load_state_dict(
        {
            "W_enc": (w["encoder.weight"].T * s_in).contiguous(),
            "b_enc": w["encoder.bias"].contiguous(),
            "W_dec": (w["decoder.weight"].T * dec_scale).contiguous(),
            "b_dec": (b_dec / s_out).contiguous(),
        }
    )
    os.makedirs(out, exist_ok=True)
    sae.save_model(out)


def main():
    args = sys.argv[1:]
    assert args and len(args) % 2 == 0, "usage: convert_sae.py SRC OUT [SRC OUT ...]"
    for src, out in zip(args[::2], args[1::2]):
        convert(src, out)
        print(f"{src} -> {out}")


if __name__ == "__main__":
    main()
