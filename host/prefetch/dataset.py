"""Per-stream access sequences of a trace, and the LSTM's training tensors (the same
tracker and features as the integer reference, so training sees what inference sees)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.prefetch.core import (L1_PAGES, MAX_K, N_F, TRACK, Tracker, page_features,
                                step_inputs)


@dataclass
class Streams:
    """acc[t][s]: ascending int list of the pages stream s read at step t; n_pages[t]."""
    name: str
    mode: str
    n_layers: int
    n_heads: int
    acc: list
    n_pages: np.ndarray

    @property
    def n_steps(self):
        return len(self.acc)

    @property
    def n_streams(self):
        return self.n_layers * self.n_heads


def load_streams(path_or_trace, mode: str = "sparse", max_steps: int | None = None) -> Streams:
    from host.traces.format import load_trace
    t = path_or_trace if hasattr(path_or_trace, "access_mask") else load_trace(path_or_trace)
    m = t.access_mask(mode)                      # [S, L, H, P]
    S = t.n_steps if max_steps is None else min(t.n_steps, max_steps)
    L, H = t.n_layers, t.n_kv_heads
    acc = []
    for step in range(S):
        mm = m[step].reshape(L * H, -1)
        acc.append([np.flatnonzero(mm[s]).tolist() for s in range(L * H)])
    name = t.meta["workload"]["name"] if "workload" in t.meta else t.path.stem
    return Streams(name, mode, L, H, acc, t.n_full[:S].astype(np.int64))


def targets(st: Streams, t: int, s: int) -> tuple[set, int, int]:
    """What step t+1 of stream s reads: (non-L1 pages as a set, all reads, L1 reads)."""
    n = int(st.n_pages[t + 1])
    a = st.acc[t + 1][s]
    T = {p for p in a if p < n - L1_PAGES}
    return T, len(a), len(a) - len(T)


def extract(st: Streams):
    """Training tensors of one trace: the LSTM inputs and, per step, the tracked candidate
    pages with their features and whether the next step reads them."""
    S, NS = st.n_steps, st.n_streams
    xin = np.zeros((NS, S, 6), np.int64)
    feat = np.full((NS, S, TRACK, 4), N_F, np.int64)      # N_F = padding (zero weight)
    cand = np.full((NS, S, TRACK), -1, np.int64)
    label = np.zeros((NS, S, TRACK), np.float32)
    valid = np.zeros((NS, S), bool)                        # step t has a step t+1
    for s in range(NS):
        tr = Tracker()
        layer = s // st.n_heads
        for t in range(S):
            n = int(st.n_pages[t])
            tr.observe(st.acc[t][s], n)
            xin[s, t] = step_inputs(s, layer, n, tr)
            lim = n - L1_PAGES
            nxt = set(st.acc[t + 1][s]) if t + 1 < S else set()
            valid[s, t] = t + 1 < S
            for i, (p, h) in enumerate(zip(tr.pages, tr.hist)):
                f = page_features(p, h, lim)
                feat[s, t, i, :len(f)] = f
                cand[s, t, i] = p
                label[s, t, i] = p in nxt
    return {"xin": xin, "feat": feat, "cand": cand, "label": label, "valid": valid}


def rank_from_scores(scores: np.ndarray, cand: np.ndarray, k: int = MAX_K) -> list:
    """Pages of one candidate row ranked by float score, lower page first on ties."""
    ok = cand >= 0
    pairs = sorted(zip((-scores[ok]).tolist(), cand[ok].tolist()))
    return [p for _, p in pairs[:k]]
