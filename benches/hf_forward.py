#!/usr/bin/env python3
"""HF transformers forward on the same tokens as benches/forward.rs (called by it).

Args: MODEL_GGUF IDS_JSON THREADS. Prints `tokens_per_s=...` (best of 3 after a warm-up;
all layers, no LM head: the base model only).
"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM

model_path, ids_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
model = AutoModelForCausalLM.from_pretrained(
    os.path.dirname(model_path), gguf_file=os.path.basename(model_path), dtype=torch.float32
).eval()
ids = torch.tensor(json.load(open(ids_path)))
best = float("inf")
with torch.inference_mode():
    model.model(ids)
    for _ in range(3):
        t = time.perf_counter()
        model.model(ids)
        best = min(best, time.perf_counter() - t)
print(f"tokens_per_s={ids.numel() / best:.1f}")
