#!/usr/bin/env python3
"""Forward-only throughput of HF transformers on scopedex's context windows.

    hf_forward.py --index IDX --model GGUF --out OUT.json [--layers N] [--batch-size 16] [--threads 2]

Runs `model.model` (no LM head) over every context of IDX/contexts.parquet in batches of
consecutive contexts, right-padded with an attention mask; `--layers N` keeps blocks 0..N-1
(default: all 30). Reports the loop time (no warm-up: every token is run once, as scopedex does)
and the whole-process time including imports and model load.
"""
import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    common.set_threads(a.threads)
    ctx_ids, tokens = common.read_contexts(a.index)
    model = common.load_hf_model(a.model, max_layer=None if a.layers is None else a.layers - 1)
    t_load = time.perf_counter() - T_START
    n_tokens = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(tokens), a.batch_size):
            ids, mask = common.padded_batch(tokens[start : start + a.batch_size])
            n_tokens += int(mask.sum())
            model.model(input_ids=ids, attention_mask=mask, use_cache=False)
    loop_s = time.perf_counter() - t0
    res = {
        "tool": "HF transformers forward (torch, f32)",
        "blocks": len(model.model.layers),
        "contexts": len(tokens),
        "tokens": n_tokens,
        "threads": a.threads,
        "batch_size": a.batch_size,
        "load_s": round(t_load, 3),
        "loop_s": round(loop_s, 3),
        "total_s": round(time.perf_counter() - T_START, 3),
        "loop_tokens_per_s": round(n_tokens / loop_s, 1),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    common.write_json(a.out, res)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
