#!/usr/bin/env python3
"""delphi's latent cache (eai-delphi 0.1.3 `LatentCache`) on scopedex's full-length contexts.

    delphi_cache.py --index IDX --model GGUF --sae SAELENS_DIR --out OUT.json [--save-dir DIR]

delphi's way: the whole HF model runs on a rectangular token tensor (here the full-length contexts
of IDX/contexts.parquet, in batches of 16; delphi drops a trailing partial batch), a forward hook on
the SAE's module (`model.layers.6` = blocks.6.hook_resid_post) encodes with the SAELens SAE, every
nonzero (batch, pos, latent) + value is kept in RAM, then `save_splits` writes safetensors split by
latent range. Examples (top / quantiles) are sampled later from that cache, at read time.
Only resid_post hooks map to a plain module output here.

eai-delphi 0.1.3 is installed with `--no-deps` (see scripts/peers/README.md): its declared
dependency vllm>=0.10.2 pins torch==2.8.0 (vllm 0.10.2-0.11) or transformers>=5.5 (vllm >= 0.25),
both incompatible with the sae-lens / transformer-lens / SAEDashboard set; LatentCache itself
needs neither vllm nor a GPU.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--sae", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--save-dir", default=None)
    ap.add_argument("--ctx-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n-splits", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    common.set_threads(a.threads)
    from delphi.latents import LatentCache
    from sae_lens import SAE

    _, tokens = common.read_contexts(a.index)
    toks = torch.tensor([t for t in tokens if len(t) == a.ctx_len], dtype=torch.long)
    sae = SAE.load_from_disk(a.sae, device="cpu")
    layer, kind = common.parse_hook(sae.cfg.metadata.hook_name)
    assert kind == "hook_resid_post", "delphi_cache.py maps only resid_post hooks"
    model = common.load_hf_model(a.model)
    t_load = time.perf_counter() - T_START

    def encode(x):
        return sae.encode(x)

    cache = LatentCache(model, {f"model.layers.{layer}": encode}, batch_size=a.batch_size)
    n_tokens = int(toks.numel())
    t0 = time.perf_counter()
    with torch.inference_mode():
        cache.run(n_tokens, toks)
    run_s = time.perf_counter() - t0
    save_dir = Path(a.save_dir or os.path.join(os.path.dirname(os.path.abspath(a.out)), "delphi-cache"))
    shutil.rmtree(save_dir, ignore_errors=True)
    t1 = time.perf_counter()
    cache.save_splits(n_splits=a.n_splits, save_dir=save_dir)
    save_s = time.perf_counter() - t1
    processed = (len(toks) // a.batch_size) * a.batch_size * a.ctx_len
    entries = sum(int(v.shape[0]) for v in cache.cache.latent_locations.values())
    disk = sum(f.stat().st_size for f in save_dir.rglob("*.safetensors"))
    res = {
        "tool": "delphi 0.1.3 LatentCache (whole model, all nonzeros in RAM, save_splits)",
        "contexts": len(toks),
        "tokens": processed,
        "threads": a.threads,
        "batch_size": a.batch_size,
        "load_s": round(t_load, 3),
        "run_s": round(run_s, 3),
        "save_s": round(save_s, 3),
        "run_tokens_per_s": round(processed / run_s, 1),
        "run_save_tokens_per_s": round(processed / (run_s + save_s), 1),
        "nonzero_entries": entries,
        "disk_bytes": disk,
        "disk_bytes_per_entry": round(disk / entries, 2) if entries else None,
        "total_s": round(time.perf_counter() - T_START, 3),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    common.write_json(a.out, res)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
