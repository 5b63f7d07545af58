#!/usr/bin/env python3
"""The peer's way to "top examples for every feature": HF transformers forward + SAELens encode
+ a hand-written per-feature top-k, on scopedex's own context windows.

    topk_loop.py --index IDX --model GGUF --sae SAELENS_DIR [--sae ...] --out OUT.json
                 [--top-k 20] [--batch-size 16] [--threads 2] [--save-top DIR]

Per batch of `batch_size` consecutive contexts (right-padded, attention mask): one forward that
stops at the deepest hooked block; for each SAE, `sae.encode` of the real, non-BOS positions
(scopedex excludes BOS by default); per (context, feature) the max activation; merged into a
running top-k per feature ordered by activation descending, ties by lower context id (a stable
sort: earlier contexts come first among equal values), keeping only activations > 0.
Writes timing/RSS to OUT.json, and per SAE `top_ids`/`top_vals` [k, d_sae] to --save-top.
"""
import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True, help="scopedex index whose contexts.parquet to read")
    ap.add_argument("--model", required=True)
    ap.add_argument("--sae", action="append", required=True, help="SAELens folder (convert_sae.py)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-top", help="directory for {sae_name}.npz (top_ids, top_vals)")
    a = ap.parse_args()
    common.set_threads(a.threads)
    from sae_lens import SAE

    t_import = time.perf_counter() - T_START
    ctx_ids, tokens = common.read_contexts(a.index)
    saes = []
    for d in a.sae:
        sae = SAE.load_from_disk(d, device="cpu")
        sae.eval()
        hook = sae.cfg.metadata.hook_name
        saes.append((os.path.basename(os.path.normpath(d)), hook, sae))
    max_layer = max(common.parse_hook(h)[0] for _, h, _ in saes)
    model = common.load_hf_model(a.model, max_layer=max_layer)
    store = {}
    common.install_hooks(model, sorted({h for _, h, _ in saes}), store)
    t_load = time.perf_counter() - T_START

    k = a.top_k
    tops = [(torch.zeros(k, s.cfg.d_sae), torch.full((k, s.cfg.d_sae), -1, dtype=torch.long)) for _, _, s in saes]
    n_tokens = 0
    n_counted = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(tokens), a.batch_size):
            batch = tokens[start : start + a.batch_size]
            bids = torch.tensor(ctx_ids[start : start + a.batch_size], dtype=torch.long)
            ids, mask = common.padded_batch(batch)
            n_tokens += int(mask.sum())
            store.clear()
            model.model(input_ids=ids, attention_mask=mask, use_cache=False)
            # Real positions except BOS (position 0 of every context).
            valid = mask.bool().clone()
            valid[:, 0] = False
            rows_ctx = torch.arange(len(batch)).unsqueeze(1).expand_as(valid)[valid]
            n_counted += int(valid.sum())
            for si, (_, hook, sae) in enumerate(saes):
                x = store[hook][valid]
                acts = sae.encode(x)
                if acts.is_sparse:
                    acts = acts.to_dense()
                # Per (context, feature) max over positions; activations are >= 0 (TopK + ReLU).
                maxes = torch.zeros(len(batch), acts.shape[1])
                maxes.scatter_reduce_(0, rows_ctx.unsqueeze(1).expand_as(acts), acts, reduce="amax")
                top_vals, top_ids = tops[si]
                cand_v = torch.cat([top_vals, maxes], 0)
                cand_i = torch.cat([top_ids, bids.unsqueeze(1).expand_as(maxes)], 0)
                order = torch.sort(cand_v, dim=0, descending=True, stable=True).indices[:k]
                tops[si] = (cand_v.gather(0, order), cand_i.gather(0, order))
    loop_s = time.perf_counter() - t0
    total_s = time.perf_counter() - T_START
    if a.save_top:
        os.makedirs(a.save_top, exist_ok=True)
        for (name, _, _), (v, i) in zip(saes, tops):
            i = torch.where(v > 0, i, torch.full_like(i, -1))
            np.savez(os.path.join(a.save_top, f"{name}.npz"), top_ids=i.numpy(), top_vals=v.numpy())
    res = {
        "tool": "transformers + sae-lens + torch top-k loop",
        "saes": [n for n, _, _ in saes],
        "contexts": len(tokens),
        "tokens": n_tokens,
        "counted_positions": n_counted,
        "threads": a.threads,
        "batch_size": a.batch_size,
        "top_k": k,
        "import_s": round(t_import, 3),
        "load_s": round(t_load, 3),
        "loop_s": round(loop_s, 3),
        "total_s": round(total_s, 3),
        "loop_tokens_per_s": round(n_tokens / loop_s, 1),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    common.write_json(a.out, res)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
