"""Prefetch metrics over a trace's streams (definitions in host/prefetch/README.md).

For every stream s and step t < S-1, a predictor run after step t proposes up to k pages for
step t+1. With T = the pages step t+1 reads outside the L1 window (p < n_pages - 4; the
demand reads a prefetcher can save), P = the prediction and A = all pages step t+1 reads:

* coverage  = sum |P & T| / sum |T|           (share of device reads turned into L2 hits)
* precision = sum |P & T| / sum |P|           (share of prefetches used)
* hit rate  = (sum |A| - |T| + |P & T|) / sum |A|   (reads served from host memory, L1 or L2)
* wasted    = 4096 B * sum (|P| - |P & T|) / (S - 1)   (unused prefetch bytes per decode step)
"""
from __future__ import annotations

import numpy as np

from gateware.common import PAGE_BYTES
from host.prefetch.dataset import Streams, targets

KS = (1, 2, 4, 8, 16)


def run_predictor(pred, st: Streams, kmax: int = max(KS)):
    """preds[t][s] for t < S-1 (the prediction after step t); prefixes give smaller k
    (every predictor's ranking is independent of k)."""
    pred.reset()
    H = st.n_heads
    out = []
    for t in range(st.n_steps - 1):
        n = int(st.n_pages[t])
        out.append([pred.step(s, s // H, n, st.acc[t][s], kmax) for s in range(st.n_streams)])
    return out


def score(st: Streams, preds, ks=KS) -> dict:
    res = {}
    steps = st.n_steps - 1
    tgt = [[targets(st, t, s) for s in range(st.n_streams)] for t in range(steps)]
    for k in ks:
        hits = issued = demand = reads = 0
        for t in range(steps):
            for s in range(st.n_streams):
                T, a, _ = tgt[t][s]
                P = preds[t][s][:k]
                h = sum(1 for p in P if p in T)
                hits += h
                issued += len(P)
                demand += len(T)
                reads += a
        res[k] = {
            "hit_rate": (reads - demand + hits) / reads if reads else float("nan"),
            "coverage": hits / demand if demand else float("nan"),
            "precision": hits / issued if issued else float("nan"),
            "wasted_bytes_per_step": PAGE_BYTES * (issued - hits) / steps if steps else 0.0,
            "prefetches_per_step": issued / steps if steps else 0.0,
            "demand_per_step": demand / steps if steps else 0.0,
            "hits": hits, "issued": issued, "demand": demand, "reads": reads, "steps": steps,
        }
    return res


def ideal(st: Streams, ks=KS) -> dict:
    """Upper bound: an oracle that predicts min(k, |T|) pages of T."""
    preds = [[sorted(targets(st, t, s)[0]) for s in range(st.n_streams)]
             for t in range(st.n_steps - 1)]
    return score(st, preds, ks)


def mean_coverage(res: dict, ks=(2, 4, 8)) -> float:
    return float(np.mean([res[k]["coverage"] for k in ks]))
