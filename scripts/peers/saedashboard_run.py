#!/usr/bin/env python3
"""SAEDashboard (SaeVisRunner, default settings) on one feature batch, on scopedex's contexts.

    saedashboard_run.py --index IDX --model GGUF --sae SAELENS_DIR --out OUT.json
                        [--features 256] [--threads 2]

SAEDashboard needs a TransformerLens model and a rectangular token tensor: the model is built
from the same GGUF (transformers dequantizes it, TransformerLens' own Llama weight conversion maps
it; checked against the HF forward at the SAE's hook), and the tokens are the full-length
(ctx_len) contexts of IDX/contexts.parquet. `--features F` runs features 0..F-1, i.e. one of
SAEDashboard's feature batches at its default `minibatch_size_features` = 256; SAEDashboard
re-runs the model for every feature batch, so the time for all d_sae features is this time
× ceil(d_sae / 256) (the `scaled_*` fields).

Workaround: SaeVisRunner calls `encoder.fold_W_dec_norm()`, which SAELens 6 refuses for TopK
SAEs without `rescale_acts_by_decoder_norm` ("not safe ... may change the topk activations");
it is replaced by a no-op, which keeps the activations equal to scopedex's.
"""
import argparse
import json
import math
import os
import sys
import time

T_START = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import torch  # noqa: E402


def tl_model(hf):
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.hidden_size,
        d_head=c.hidden_size // c.num_attention_heads,
        n_heads=c.num_attention_heads,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=2048,
        eps=c.rms_norm_eps,
        d_vocab=c.vocab_size,
        act_fn=c.hidden_act,
        n_key_value_heads=c.num_key_value_heads,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        rotary_dim=c.hidden_size // c.num_attention_heads,
        rotary_base=getattr(c, "rope_theta", 10000.0),
        final_rms=True,
        gated_mlp=True,
        original_architecture="LlamaForCausalLM",
        tokenizer_prepends_bos=False,
        default_prepend_bos=False,
        dtype=torch.float32,
        device="cpu",
    )
    model = HookedSAETransformer(cfg)
    model.load_and_process_state_dict(
        convert_llama_weights(hf, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--sae", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--features", type=int, default=256)
    ap.add_argument("--ctx-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    common.set_threads(a.threads)
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner
    from sae_lens import SAE

    _, tokens = common.read_contexts(a.index)
    full = [t for t in tokens if len(t) == a.ctx_len]
    toks = torch.tensor(full, dtype=torch.long)
    sae = SAE.load_from_disk(a.sae, device="cpu")
    sae.fold_W_dec_norm = lambda: None  # see the module docstring
    hook = sae.cfg.metadata.hook_name
    hf = common.load_hf_model(a.model)
    model = tl_model(hf)
    # Conversion check: TransformerLens vs HF at the SAE's hook on two contexts.
    store = {}
    handles = common.install_hooks(hf, [hook], store)
    with torch.inference_mode():
        hf.model(input_ids=toks[:2], use_cache=False)
        _, cache = model.run_with_cache(toks[:2], names_filter=[hook], stop_at_layer=common.parse_hook(hook)[0] + 1)
    for h in handles:
        h.remove()
    ref, got = store[hook], cache[hook]
    rel_err = float((got - ref).norm() / ref.norm())
    del hf, store, cache
    t_load = time.perf_counter() - T_START

    n_feat = min(a.features, sae.cfg.d_sae)
    cfg = SaeVisConfig(hook_point=hook, features=list(range(n_feat)), device="cpu", dtype="float32")
    t0 = time.perf_counter()
    data = SaeVisRunner(cfg).run(encoder=sae, model=model, tokens=toks)
    run_s = time.perf_counter() - t0
    batches_run = math.ceil(n_feat / cfg.minibatch_size_features)
    batches_all = math.ceil(sae.cfg.d_sae / cfg.minibatch_size_features)
    scaled_s = run_s / batches_run * batches_all
    n_tokens = int(toks.numel())
    res = {
        "tool": "SAEDashboard SaeVisRunner (defaults)",
        "contexts": int(toks.shape[0]),
        "tokens": n_tokens,
        "features_run": n_feat,
        "d_sae": sae.cfg.d_sae,
        "minibatch_size_features": cfg.minibatch_size_features,
        "minibatch_size_tokens": cfg.minibatch_size_tokens,
        "feature_batches_run": batches_run,
        "feature_batches_all": batches_all,
        "tl_vs_hf_rel_err": rel_err,
        "features_with_data": len(data.feature_data_dict),
        "threads": a.threads,
        "load_s": round(t_load, 3),
        "run_s": round(run_s, 3),
        "run_tokens_per_s": round(n_tokens / run_s, 1),
        "scaled_all_features_s": round(scaled_s, 3),
        "scaled_tokens_per_s": round(n_tokens / scaled_s, 1),
        "total_s": round(time.perf_counter() - T_START, 3),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    common.write_json(a.out, res)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
