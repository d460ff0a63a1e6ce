"""Quest-style sparse page selection (Tang et al., ICML 2024) for paged KV caches.

Conventions (shared with host/traces/capture.py and traces/README.md):

* A page holds ``page_tokens`` (16) consecutive tokens of one (layer, KV head).
* At a decode step the sequence has ``seq_len`` tokens (the current token included).
  Only *full* pages written before the step are pages in the offloaded sense:
  ``n_full = (seq_len - 1) // page_tokens``. The remaining tail tokens
  ``[n_full * page_tokens, seq_len)`` (1..16 of them, the current token among them) are in
  the host's recent window (L1) and are always attended.
* Local window: the last ``window`` tokens of the sequence are always attended. Every full
  page that overlaps them (index >= ``(seq_len - window) // page_tokens``) is selected
  as a "window page"; it is a page the step reads.
* The other full pages are candidates. Each gets the Quest upper bound of the query-key
  score: ``ub[p] = sum_j max(q_j * kmin[p, j], q_j * kmax[p, j])`` where ``kmin`` and
  ``kmax`` are the element-wise min and max of the page's (post-RoPE) keys. With
  grouped-query attention the query heads of a group share the KV head's pages; a page's
  score for the KV head is the **max of the upper bounds over the group's query heads**
  (itself an upper bound of the best score any head of the group can reach in the page).
* The ``k`` candidates with the highest score are selected (ties: lower page index first).
* Attention mass kept: for each query head, the sum of its true softmax probabilities
  (computed over all tokens of the sequence) that fall on attended tokens (selected pages
  + tail), averaged over the query heads of the group.

All functions work on numpy arrays; scores are computed in float64.
"""
from __future__ import annotations

import numpy as np

PAGE_TOKENS = 16


def full_pages_at(seq_len: int, page_tokens: int = PAGE_TOKENS) -> int:
    """Full pages readable at a decode step whose sequence (current token included) is seq_len long."""
    if seq_len < 1:
        raise ValueError("seq_len must be >= 1")
    return (seq_len - 1) // page_tokens


def first_window_page(seq_len: int, window: int, page_tokens: int = PAGE_TOKENS) -> int:
    """Index of the first page that overlaps the local window of the last `window` tokens."""
    if window < 0:
        raise ValueError("window must be >= 0")
    if window == 0:
        return full_pages_at(seq_len, page_tokens)  # no full page is in the window
    return max(0, seq_len - window) // page_tokens


def page_minmax(keys: np.ndarray, page_tokens: int = PAGE_TOKENS):
    """Element-wise min and max of keys per page.

    keys: [..., n_tokens, D] with n_tokens a multiple of page_tokens.
    Returns (kmin, kmax), each [..., n_tokens // page_tokens, D].
    """
    *lead, n, d = keys.shape
    if n % page_tokens:
        raise ValueError(f"{n} tokens is not a whole number of {page_tokens}-token pages")
    k = keys.reshape(*lead, n // page_tokens, page_tokens, d)
    return k.min(axis=-2), k.max(axis=-2)


def quest_upper_bound(q: np.ndarray, kmin: np.ndarray, kmax: np.ndarray) -> np.ndarray:
    """Quest upper bound of q.k over each page.

    q: [..., G, D] (G query heads sharing one KV head); kmin/kmax: [..., P, D].
    Returns [..., G, P] in float64.
    """
    q = np.asarray(q, dtype=np.float64)[..., :, None, :]  # [..., G, 1, D]
    lo = np.asarray(kmin, dtype=np.float64)[..., None, :, :]  # [..., 1, P, D]
    hi = np.asarray(kmax, dtype=np.float64)[..., None, :, :]
    return np.maximum(q * lo, q * hi).sum(axis=-1)


def select_pages(
    q: np.ndarray,
    kmin: np.ndarray,
    kmax: np.ndarray,
    seq_len: int,
    k: int,
    window: int,
    page_tokens: int = PAGE_TOKENS,
) -> np.ndarray:
    """Quest selection for one decode step.

    q: [L, H, G, D] real post-RoPE queries (G query heads per KV head).
    kmin/kmax: [L, H, n_full, D] per-page key bounds of the full pages.
    Returns bool [L, H, n_full]: pages read at this step (top-k candidates + window pages).
    """
    n_full = kmin.shape[-2]
    if n_full != full_pages_at(seq_len, page_tokens):
        raise ValueError(f"{n_full} page bounds given, but a {seq_len}-token step has "
                         f"{full_pages_at(seq_len, page_tokens)} full pages")
    if k < 0:
        raise ValueError("k must be >= 0")
    lead = kmin.shape[:-2]
    sel = np.zeros((*lead, n_full), dtype=bool)
    if n_full == 0:
        return sel
    w0 = min(first_window_page(seq_len, window, page_tokens), n_full)
    sel[..., w0:] = True  # window pages
    n_cand = w0
    if n_cand == 0 or k == 0:
        return sel
    if k >= n_cand:
        sel[..., :n_cand] = True
        return sel
    ub = quest_upper_bound(q, kmin[..., :n_cand, :], kmax[..., :n_cand, :])  # [L,H,G,C]
    score = ub.max(axis=-2)  # [L, H, C]
    # stable sort of -score: ties keep ascending page index
    order = np.argsort(-score, axis=-1, kind="stable")[..., :k]
    np.put_along_axis(sel[..., :n_cand], order, True, axis=-1)
    return sel


def attended_tokens(page_sel: np.ndarray, seq_len: int, page_tokens: int = PAGE_TOKENS) -> np.ndarray:
    """Token mask [..., seq_len] of what a step attends: tokens of selected pages + the tail."""
    n_full = page_sel.shape[-1]
    tok = np.zeros((*page_sel.shape[:-1], seq_len), dtype=bool)
    tok[..., : n_full * page_tokens] = np.repeat(page_sel, page_tokens, axis=-1)
    tok[..., n_full * page_tokens:] = True
    return tok


def attention_mass_kept(probs: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
    """Share of true attention mass on attended tokens.

    probs: [L, H*G, T] softmax probabilities of the step's query heads over all T tokens
    (query head h belongs to KV head h // G, as in transformers' repeat_kv).
    token_mask: [L, H, T]. Returns [L, H] float64: per KV head, mean over its G query heads.
    """
    n_l, n_q, t = probs.shape
    n_h = token_mask.shape[1]
    g = n_q // n_h
    p = np.asarray(probs, dtype=np.float64).reshape(n_l, n_h, g, t)
    kept = (p * token_mask[:, :, None, :]).sum(axis=-1)  # [L, H, G]
    return kept.mean(axis=-1)


# ----------------------------------------------------------------------------- re-selection

def resimulate(trace, k: int, window: int):
    """Re-run Quest selection on a stored trace with other (k, window), from its stored queries.

    Returns (mask bool [S, L, H, P], mass float64 [S, L, H]). True attention is recomputed
    from the stored float32 queries and the stored FP16 keys (the model attended with
    float32 keys, so masses differ from the capture's by FP16 rounding only; at the trace's
    own k and window the selection is the stored one).
    """
    if trace.queries is None:
        raise ValueError(f"{trace.path}: trace has no stored queries (captured with --no-queries)")
    kv = trace.kv
    n_l, n_h, n_p, _, pt, d = kv.shape
    n_q = trace.queries.shape[2]
    g = n_q // n_h
    keys = np.concatenate([kv[:, :, :, 0].reshape(n_l, n_h, n_p * pt, d), trace.kv_tail[:, :, 0]],
                          axis=2).astype(np.float32)  # [L, H, T, D]
    kmin, kmax = page_minmax(keys[:, :, :n_p * pt])
    mask = np.zeros((trace.n_steps, n_l, n_h, n_p), dtype=bool)
    mass = np.zeros((trace.n_steps, n_l, n_h))
    scale = 1.0 / np.sqrt(d)
    for s in range(trace.n_steps):
        seq_len = int(trace.seq_len[s])
        n_full = full_pages_at(seq_len, pt)
        q = trace.queries[s].reshape(n_l, n_h, g, d).astype(np.float32)
        sel = select_pages(q, kmin[:, :, :n_full], kmax[:, :, :n_full], seq_len, k, window, pt)
        mask[s, :, :, :n_full] = sel
        logits = np.matmul(q, keys[:, :, :seq_len].transpose(0, 1, 3, 2)).astype(np.float64) * scale
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=-1, keepdims=True)
        mass[s] = attention_mass_kept(p.reshape(n_l, n_q, seq_len), attended_tokens(sel, seq_len, pt))
    return mask, mass


def main(argv=None) -> int:
    """CLI: attention mass kept vs pages read for several k on stored traces."""
    import argparse

    from host.traces.format import load_trace

    ap = argparse.ArgumentParser(
        prog="python -m host.traces.sparse",
        description="Sweep Quest's k (and window) on traces captured with queries: pages read per "
                    "step versus the share of true attention mass kept.")
    ap.add_argument("traces", nargs="+", help="trace files (.safetensors) with stored queries")
    ap.add_argument("--k", type=int, nargs="+", default=[2, 4, 8, 16, 32], help="k values to try")
    ap.add_argument("--window", type=int, nargs="+", default=[64], help="window sizes (tokens) to try")
    args = ap.parse_args(argv)
    print("| trace | k | window | pages read / step (share of dense) | mean mass kept | min mass kept |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in args.traces:
        t = load_trace(path)
        dense = t.access_mask("dense").sum() / t.n_steps
        for w in args.window:
            for k in args.k:
                m, mass = resimulate(t, k, w)
                r = m.sum() / t.n_steps
                print(f"| {t.meta['workload']['name']} | {k} | {w} | {r:.0f} ({r / dense:.0%}) "
                      f"| {mass.mean():.3f} | {mass.min():.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
