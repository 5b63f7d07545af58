#!/usr/bin/env python3
"""Collects the measurements of scripts/bench-peers.sh into results.json and results.md."""
import argparse
import json
import os
import platform
import re
import subprocess
import time


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def timing(work, name):
    p = os.path.join(work, "res", f"{name}.time")
    if not os.path.exists(p):
        return None
    wall, rss_kb = open(p).read().split()[:2]
    return {"wall_s": float(wall), "peak_rss_mb": round(int(rss_kb) / 1024, 1)}


def index_pass(work, name):
    """(contexts, positions, pass seconds) from `scopedex index`'s last stderr line."""
    p = os.path.join(work, "logs", f"{name}.err")
    if not os.path.exists(p):
        return None
    m = re.findall(r"indexed (\d+) contexts, (\d+) positions in ([\d.]+) s", open(p).read())
    if not m:
        return None
    c, pos, s = m[-1]
    return {"contexts": int(c), "tokens": int(pos), "pass_s": float(s)}


def scopedex_index(work, name):
    t, ps = timing(work, name), index_pass(work, name)
    if not t or not ps:
        return None
    return {**ps, **t, "pass_tokens_per_s": round(ps["tokens"] / ps["pass_s"], 1),
            "e2e_tokens_per_s": round(ps["tokens"] / t["wall_s"], 1)}


def peer_loop(work, name):
    j, t = load(os.path.join(work, "res", f"{name}.json")), timing(work, name)
    if not j or not t:
        return None
    return {**j, "wall_s": t["wall_s"], "peak_rss_mb": t["peak_rss_mb"],
            "e2e_tokens_per_s": round(j["tokens"] / t["wall_s"], 1)}


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def fmt(x, unit=""):
    if x is None:
        return "—"
    if isinstance(x, float) and x < 10:
        return f"{x:.2f}{unit}"
    return f"{x:,.0f}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--tokens", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--out-json", required=True)
    ap.add_argument("--out-md", required=True)
    ap.add_argument("--cmd", required=True)
    ap.add_argument("--bin", default="")
    a = ap.parse_args()
    w = a.work
    res = {
        "command": a.cmd,
        "tokens_requested": a.tokens,
        "scopedex_bin": a.bin,
        "threads": a.threads,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_end": os.getloadavg()},
    }
    try:
        res["machine"]["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        res["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass

    # 1. forward only
    hf = load(os.path.join(w, "res", "hf-forward.json"))
    dump, dump_tiny = timing(w, "dump"), timing(w, "dump-tiny")
    dump_tokens = int(open(os.path.join(w, "res", "dump.tokens")).read()) if os.path.exists(os.path.join(w, "res", "dump.tokens")) else None
    fwd = {"hf": hf, "scopedex": None}
    if dump and dump_tiny and dump_tokens:
        steady = dump["wall_s"] - dump_tiny["wall_s"]
        fwd["scopedex"] = {**dump, "tokens": dump_tokens, "fixed_s": dump_tiny["wall_s"],
                           "steady_tokens_per_s": round(dump_tokens / steady, 1) if steady > 0 else None,
                           "e2e_tokens_per_s": round(dump_tokens / dump["wall_s"], 1)}
    if hf:
        hf["e2e_tokens_per_s"] = round(hf["tokens"] / hf["total_s"], 1)
    res["forward"] = fwd

    # 2. top examples, 1 SAE
    idx1, idx1_tiny = scopedex_index(w, "index1"), timing(w, "index1-tiny")
    if idx1 and idx1_tiny:
        idx1["fixed_s_one_context_run"] = idx1_tiny["wall_s"]
    loop1 = peer_loop(w, "loop1")
    sd = load(os.path.join(w, "res", "saedashboard.json"))
    if sd:
        sd["wall_s"] = (timing(w, "saedashboard") or {}).get("wall_s")
    dl = load(os.path.join(w, "res", "delphi.json"))
    if dl:
        dl["wall_s"] = (timing(w, "delphi") or {}).get("wall_s")
    res["top_examples"] = {"scopedex_index": idx1, "torch_loop": loop1, "saedashboard": sd, "delphi": dl}
    # 3. agreement
    res["agreement"] = load(os.path.join(w, "res", "agreement.json"))
    # 4. scaling
    res["scaling"] = {n: {"scopedex_index": scopedex_index(w, f"index{n}"), "torch_loop": peer_loop(w, f"loop{n}")}
                      for n in (1, 4, 8)}
    os.makedirs(os.path.dirname(a.out_json), exist_ok=True)
    json.dump(res, open(a.out_json, "w"), indent=2)

    # ---- markdown ----
    L = []
    L.append(f"# scopedex vs peers — `{a.cmd}`\n")
    L.append(f"{res['date']}, {res['machine'].get('cpu', '?')}, {res['machine']['cpus']} CPUs, {a.threads} threads on both sides, "
             f"load average at the end {', '.join(f'{x:.1f}' for x in res['machine']['loadavg_at_end'])}. "
             "Model SmolLM2-135M-Instruct Q4_1 GGUF (both sides dequantize to f32), SAE L6R-8x (demo, TopK k=32, 4608 features), "
             "the same context windows (scopedex's contexts.parquet: BOS + 127 tokens), batch 16, BOS excluded from statistics. "
             f"scopedex binary: `{a.bin}`.\n")
    L.append("*steady* = excluding process start and model load (scopedex: the index pass time it reports; dump-activations: wall minus "
             "the wall of a one-context run; Python: the timed loop). *e2e* = whole process wall time, imports and model load included.\n")
    L.append("| measurement | scopedex | peer | ratio (scopedex / peer) | command |")
    L.append("|---|---|---|---|---|")
    sx, h = fwd["scopedex"], fwd["hf"]
    if sx and h:
        L.append(f"| 1. forward only, 30 blocks, steady tokens/s | {fmt(sx['steady_tokens_per_s'])} | {fmt(h['loop_tokens_per_s'])} (HF transformers) | "
                 f"{ratio(sx['steady_tokens_per_s'], h['loop_tokens_per_s'])} | `scopedex dump-activations --hooks blocks.29.hook_resid_post` vs `scripts/peers/hf_forward.py` |")
        L.append(f"| 1. forward only, e2e tokens/s | {fmt(sx['e2e_tokens_per_s'])} | {fmt(h['e2e_tokens_per_s'])} | {ratio(sx['e2e_tokens_per_s'], h['e2e_tokens_per_s'])} | same |")
        L.append(f"| 1. forward only, peak RSS MB | {fmt(sx['peak_rss_mb'])} | {fmt(h['peak_rss_mb'])} | {ratio(sx['peak_rss_mb'], h['peak_rss_mb'])} | same |")
    if idx1 and loop1:
        L.append(f"| 2. top-20 for all 4608 features, steady tokens/s | {fmt(idx1['pass_tokens_per_s'])} | {fmt(loop1['loop_tokens_per_s'])} (torch loop) | "
                 f"{ratio(idx1['pass_tokens_per_s'], loop1['loop_tokens_per_s'])} | `scopedex index --top-k 20` vs `scripts/peers/topk_loop.py` |")
        L.append(f"| 2. same, e2e tokens/s | {fmt(idx1['e2e_tokens_per_s'])} | {fmt(loop1['e2e_tokens_per_s'])} | {ratio(idx1['e2e_tokens_per_s'], loop1['e2e_tokens_per_s'])} | same |")
        L.append(f"| 2. same, peak RSS MB | {fmt(idx1['peak_rss_mb'])} | {fmt(loop1['peak_rss_mb'])} | {ratio(idx1['peak_rss_mb'], loop1['peak_rss_mb'])} | same |")
    if idx1 and sd:
        L.append(f"| 2. dashboards for all 4608 features, tokens/s (SAEDashboard: 1 of {sd['feature_batches_all']} feature batches measured, scaled) | "
                 f"{fmt(idx1['pass_tokens_per_s'])} | {fmt(sd['scaled_tokens_per_s'])} (SAEDashboard) | {ratio(idx1['pass_tokens_per_s'], sd['scaled_tokens_per_s'])} | "
                 f"`scripts/peers/saedashboard_run.py --features 256` |")
        L.append(f"| 2. same, peak RSS MB | {fmt(idx1['peak_rss_mb'])} | {fmt(sd['peak_rss_mb'])} | {ratio(idx1['peak_rss_mb'], sd['peak_rss_mb'])} | same |")
    if idx1 and dl:
        L.append(f"| 2. delphi latent cache (whole model, every nonzero kept, BOS included), tokens/s | {fmt(idx1['pass_tokens_per_s'])} | "
                 f"{fmt(dl['run_save_tokens_per_s'])} (delphi) | {ratio(idx1['pass_tokens_per_s'], dl['run_save_tokens_per_s'])} | `scripts/peers/delphi_cache.py` |")
        L.append(f"| 2. same, peak RSS MB | {fmt(idx1['peak_rss_mb'])} | {fmt(dl['peak_rss_mb'])} | {ratio(idx1['peak_rss_mb'], dl['peak_rss_mb'])} | "
                 f"delphi: {dl['nonzero_entries']:,} entries, {dl['disk_bytes_per_entry']} B/entry on disk |")
    ag = res["agreement"]
    if ag:
        L.append(f"| 3. agreement, top-20 context ids, {ag['features_compared']} random live features | exact {ag['exact_mean']*100:.2f} % "
                 f"(min {ag['exact_min']*100:.0f} %, {ag['exact_features_100pct']} at 100 %) | tie-tolerant (rel {ag['rel_tol']:g}) {ag['tolerant_mean']*100:.2f} % "
                 f"(min {ag['tolerant_min']*100:.0f} %) | max rel. diff of shared max_act {ag['max_rel_diff_common']:.1e} | `scripts/peers/agreement.py` |")
    L.append("")
    rows = [(n, v) for n, v in res["scaling"].items() if v["scopedex_index"] and v["torch_loop"]]
    if rows:
        L.append("SAEs per pass (forward to block 6 in every run; N=4: L6 R/A/M/TC, N=8: + L3R, fabricated L2R/L4R/L5R; "
                 "scopedex with `--cross-cooc none`, its per-SAE statistics all on):\n")
        L.append("| SAEs | scopedex steady tok/s | torch loop steady tok/s | ratio | scopedex e2e tok/s | torch loop e2e tok/s | ratio | scopedex peak RSS MB | torch loop peak RSS MB |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for n, v in rows:
            s, p = v["scopedex_index"], v["torch_loop"]
            L.append(f"| {n} | {fmt(s['pass_tokens_per_s'])} | {fmt(p['loop_tokens_per_s'])} | {ratio(s['pass_tokens_per_s'], p['loop_tokens_per_s'])} | "
                     f"{fmt(s['e2e_tokens_per_s'])} | {fmt(p['e2e_tokens_per_s'])} | {ratio(s['e2e_tokens_per_s'], p['e2e_tokens_per_s'])} | "
                     f"{fmt(s['peak_rss_mb'])} | {fmt(p['peak_rss_mb'])} |")
        L.append("")
    L.append("delphi (eai-delphi 0.1.3) is installed with `--no-deps`: its vllm dependency cannot be resolved beside sae-lens / "
             "transformer-lens / SAEDashboard (scripts/peers/requirements-delphi.txt); LatentCache needs neither vllm nor a GPU.\n")
    open(a.out_md, "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
