#!/usr/bin/env python3
"""Agreement of the top-k contexts per feature between scopedex and a peer.

    agreement.py --index IDX --sae-id L6R-8x --peer PEER.npz --out OUT.json
                 [--features 100] [--top-k 20] [--seed 0] [--rel-tol 1e-3]

Ours: IDX/saes/{sae}/examples.parquet rows with kind "top" and rank < k (rank 0 = highest
max_act, ties by lower context_id). Peer: `top_ids`/`top_vals` [k, d_sae] from topk_loop.py
(same ordering; id -1 = empty). Features: `--features` drawn at random (seeded) from those
live in our index (n_fired > 0).

Per feature, with n = min(k, max(len(ours), len(peer))):
  exact     = |ours ∩ peer| / n
  tolerant  = (|ours ∩ peer| + #{c in ours \\ peer whose activation is within rel-tol of the
               peer's boundary value, the peer's k-th}) / n   (numeric ties at the boundary)
Also the largest relative difference of max_act over the contexts both sides kept.
"""
import argparse
import json
import os
import random
import sys

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def ours_top(index, sae_id, k):
    t = pq.read_table(
        os.path.join(index, "saes", sae_id, "examples.parquet"),
        columns=["feature", "kind", "rank", "context_id", "max_act"],
    )
    t = t.filter(pc.and_(pc.equal(t["kind"], "top"), pc.less(t["rank"], k)))
    out = {}
    for f, r, c, v in zip(*(t[n].to_pylist() for n in ("feature", "rank", "context_id", "max_act"))):
        out.setdefault(f, []).append((r, c, v))
    return {f: [(c, v) for _, c, v in sorted(rows)] for f, rows in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--sae-id", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rel-tol", type=float, default=1e-3)
    a = ap.parse_args()
    k = a.top_k
    ours = ours_top(a.index, a.sae_id, k)
    feats = pq.read_table(os.path.join(a.index, "saes", a.sae_id, "features.parquet"), columns=["feature", "n_fired"])
    live = [f for f, n in zip(feats["feature"].to_pylist(), feats["n_fired"].to_pylist()) if n > 0]
    peer = np.load(a.peer)
    p_ids, p_vals = peer["top_ids"], peer["top_vals"]
    peer_live = int(((p_ids >= 0).any(axis=0)).sum())
    chosen = sorted(random.Random(a.seed).sample(live, min(a.features, len(live))))
    rows = []
    for f in chosen:
        o = ours.get(f, [])[:k]
        p = [(int(c), float(v)) for c, v in zip(p_ids[:, f], p_vals[:, f]) if c >= 0][:k]
        n = min(k, max(len(o), len(p)))
        o_ids, p_set = {c for c, _ in o}, {c for c, _ in p}
        inter = len(o_ids & p_set)
        ties = 0
        if len(p) == k:
            b = p[-1][1]
            ties = sum(1 for c, v in o if c not in p_set and abs(v - b) <= a.rel_tol * abs(b))
        pv = dict(p)
        rel = [abs(v - pv[c]) / max(abs(pv[c]), 1e-12) for c, v in o if c in pv]
        rows.append({
            "feature": f,
            "n": n,
            "ours": len(o),
            "peer": len(p),
            "common": inter,
            "boundary_ties": ties,
            "exact": inter / n if n else 1.0,
            "tolerant": min(1.0, (inter + ties) / n) if n else 1.0,
            "max_rel_diff_common": max(rel) if rel else 0.0,
        })
    exact = [r["exact"] for r in rows]
    tol = [r["tolerant"] for r in rows]
    res = {
        "sae": a.sae_id,
        "top_k": k,
        "features_compared": len(rows),
        "live_features_ours": len(live),
        "live_features_peer": peer_live,
        "seed": a.seed,
        "rel_tol": a.rel_tol,
        "exact_mean": float(np.mean(exact)) if rows else None,
        "exact_min": float(np.min(exact)) if rows else None,
        "exact_features_100pct": sum(1 for x in exact if x == 1.0),
        "tolerant_mean": float(np.mean(tol)) if rows else None,
        "tolerant_min": float(np.min(tol)) if rows else None,
        "tolerant_features_100pct": sum(1 for x in tol if x == 1.0),
        "max_rel_diff_common": max((r["max_rel_diff_common"] for r in rows), default=0.0),
        "worst": sorted(rows, key=lambda r: r["tolerant"])[:5],
    }
    common.write_json(a.out, res)
    print(json.dumps({k2: v for k2, v in res.items() if k2 != "worst"}))


if __name__ == "__main__":
    main()
