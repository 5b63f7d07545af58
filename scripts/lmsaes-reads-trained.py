#!/usr/bin/env python3
"""Loads SAEs that `scopedex train-sae` wrote with lm_saes' own loader (OpenMOSS, published as
`llamascopium`; `lm-saes` 2.x on PyPI is a shim for it), as a new user would, and compares
lm_saes' codes with the codes `scopedex encode` wrote for the same activations.

Usage: lmsaes-reads-trained.py TRAIN_OUT ACTIVATIONS.safetensors NAME=HOOK=CODES.safetensors ...

Each folder TRAIN_OUT/NAME is passed unchanged to `SparseAutoEncoder.from_pretrained(path)`
(llamascopium 2.0.0b34: `SparseDictionary.from_local`, which reads `config.json` and then the
first of `sae_weights.safetensors`, ..., `checkpoints/final.safetensors`). The activations are
then fed the way lm_saes documents for `encode`: through `sae.normalize_activations`, which
multiplies by sqrt(d_model) / dataset_average_activation_norm[hook] in "dataset-wise" mode and
by 1 in "inference" mode. A folder lm_saes cannot load counts as a failure, with its exception.
Exit status 1 (with the figures) when a folder does not load, or active sets agree on < 99.9 %
of (row, feature) pairs, or a shared value differs by more than 1e-4 relative (the thresholds of
saelens-reads-trained.py).
"""
import os
import sys
import warnings


def dense_codes(path, n_rows, d_sae, torch, load_file):
    ours = load_file(path)
    row_ptr, feats, vals = ours["row_ptr"], ours["features"], ours["values"]
    dense = torch.zeros(n_rows, d_sae)
    rows = torch.repeat_interleave(torch.arange(n_rows), row_ptr[1:] - row_ptr[:-1])
    dense[rows, feats] = vals
    return dense


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    train_out, acts_path = sys.argv[1], sys.argv[2]
    specs = [a.split("=", 2) for a in sys.argv[3:]]
    os.environ["HF_HUB_OFFLINE"] = "1"  # local folders only; before huggingface_hub is imported

    import torch
    from safetensors.torch import load_file

    with warnings.catch_warnings():
        # "CUDA is not available ... Disabling autocast", once per decorated method on import.
        warnings.simplefilter("ignore")
        from llamascopium import SparseAutoEncoder

    acts = load_file(acts_path)
    failed = False
    for name, hook, codes_path in specs:
        folder = os.path.join(train_out, name)
        try:
            sae = SparseAutoEncoder.from_pretrained(folder, device="cpu", dtype=torch.float32)
        except Exception as e:  # noqa: BLE001 - any loader error is the finding
            print(f"{name} ({hook}): lm_saes cannot load {folder} unchanged: "
                  f"{type(e).__name__}: {e}: FAIL")
            failed = True
            continue
        if sae.cfg.hook_point_in != hook:
            sys.exit(f"{name}: lm_saes reads hook_point_in {sae.cfg.hook_point_in}, expected {hook}")
        x = acts[hook].to(torch.float32)
        with torch.no_grad():
            theirs = sae.encode(sae.normalize_activations({hook: x})[hook]).float()
        dense = dense_codes(codes_path, x.shape[0], theirs.shape[1], torch, load_file)
        a, b = dense != 0, theirs != 0
        union = (a | b).sum().item()
        agree = (a & b).sum().item() / max(union, 1)
        both = a & b
        diff = (dense[both] - theirs[both]).abs()
        rel = (diff / theirs[both].abs().clamp_min(1e-6)).max().item() if both.any() else 0.0
        absd = diff.max().item() if both.any() else 0.0
        l0 = b.sum().item() / x.shape[0]
        ok = agree >= 0.999 and rel <= 1e-4 and union > 0
        print(f"{name} ({hook}): {x.shape[0]} rows, lm_saes ({sae.cfg.norm_activation}) mean L0 "
              f"{l0:.2f}, active sets agree {100 * agree:.3f} % of {union} pairs, max value diff "
              f"{absd:.2e} abs / {rel:.2e} rel: {'ok' if ok else 'FAIL'}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
