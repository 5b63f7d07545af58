#!/usr/bin/env python3
"""HF transformers forward on the same tokens as benches/forward.rs (driven by it).

Args: MODEL_GGUF IDS_JSON THREADS. Loads the model, runs one warm-up forward (all layers, no LM
head: the base model only), prints `ready`, then for each `run` line on stdin runs one forward
and prints `seconds=...`. The bench alternates these runs with its own so that both sides see
the same machine load (a shared VM's neighbours swing single runs by ±15 %).
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
with torch.inference_mode():
    model.model(ids)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t = time.perf_counter()
        model.model(ids)
        print(f"seconds={time.perf_counter() - t:.6f}", flush=True)
