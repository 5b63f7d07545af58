#!/usr/bin/env python3
"""Loads SAEs that `scopedex train-sae` wrote with SAELens' own Llama Scope loader, as a user
would after uploading the folder to the Hugging Face hub, and compares SAELens' codes with the
codes `scopedex encode` wrote for the same activations.

Usage: saelens-reads-trained.py TRAIN_OUT ACTIVATIONS.safetensors NAME=HOOK=CODES.safetensors ...

The hub is replaced by its offline cache: the folder is laid out as `hf_hub_download` finds a
downloaded repo (refs/main → snapshots/<commit>/), and HF_HUB_OFFLINE=1 keeps it off the
network. SAELens folds the dataset norm only for releases in its registry; for any other repo
the user folds `sqrt(d_model) / dataset_average_activation_norm.in` in, as done here. Exit status 1 (with the figures) when active sets agree on < 99.9 % of (row, feature)
pairs or a shared value differs by more than 1e-4 relative.
"""
import json
import os
import shutil
import sys
import tempfile
import warnings

REPO = "scopedex-local/trained-llamascope"


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    train_out, acts_path = sys.argv[1], sys.argv[2]
    specs = [a.split("=", 2) for a in sys.argv[3:]]
    cache = tempfile.mkdtemp(prefix="hf-cache-")
    snap = os.path.join(cache, "models--" + REPO.replace("/", "--"), "snapshots", "0" * 40)
    os.makedirs(os.path.join(os.path.dirname(os.path.dirname(snap)), "refs"))
    with open(os.path.join(os.path.dirname(os.path.dirname(snap)), "refs", "main"), "w") as f:
        f.write("0" * 40)
    for name, _, _ in specs:
        shutil.copytree(os.path.join(train_out, name), os.path.join(snap, name))
    os.environ["HF_HUB_CACHE"] = cache
    os.environ["HF_HUB_OFFLINE"] = "1"

    import torch
    from safetensors.torch import load_file
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import llama_scope_sae_huggingface_loader

    acts = load_file(acts_path)
    failed = False
    for name, hook, codes_path in specs:
        with warnings.catch_warnings():
            # "norm_scaling_factor not found": SAELens keeps that factor in its registry of
            # releases, so for any other repo the user folds it in, as below.
            warnings.simplefilter("ignore")
            sae = SAE.from_pretrained(REPO, name, device="cpu", dtype="float32",
                                      converter=llama_scope_sae_huggingface_loader)
        with open(os.path.join(train_out, name, "hyperparams.json")) as f:
            hp = json.load(f)
        if sae.cfg.normalize_activations == "expected_average_only_in":
            # The loader already scaled the threshold by this factor, for exactly this fold.
            sae.fold_activation_norm_scaling_factor(
                hp["d_model"] ** 0.5 / hp["dataset_average_activation_norm"]["in"])
        if sae.cfg.metadata.hook_name != hook:
            sys.exit(f"{name}: SAELens reads hook {sae.cfg.metadata.hook_name}, expected {hook}")
        x = acts[hook].to(torch.float32)
        with torch.no_grad():
            theirs = sae.encode(x)
        ours = load_file(codes_path)
        row_ptr, feats, vals = ours["row_ptr"], ours["features"], ours["values"]
        dense = torch.zeros_like(theirs)
        rows = torch.repeat_interleave(torch.arange(x.shape[0]), row_ptr[1:] - row_ptr[:-1])
        dense[rows, feats] = vals
        a, b = dense != 0, theirs != 0
        union = (a | b).sum().item()
        agree = (a & b).sum().item() / max(union, 1)
        both = a & b
        rel = ((dense[both] - theirs[both]).abs() / theirs[both].abs().clamp_min(1e-6)).max().item() \
            if both.any() else 0.0
        l0 = b.sum().item() / x.shape[0]
        ok = agree >= 0.999 and rel <= 1e-4 and union > 0
        print(f"{name} ({hook}): {x.shape[0]} rows, SAELens mean L0 {l0:.2f}, active sets agree "
              f"{100 * agree:.3f} % of {union} pairs, max rel value diff {rel:.2e}: "
              f"{'ok' if ok else 'FAIL'}")
        failed |= not ok
    shutil.rmtree(cache)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
