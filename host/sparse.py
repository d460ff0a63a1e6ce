"""Quest-style sparse page selection (Tang et al., ICML 2024) for paged KV caches.

Conventions (shared with host/capture.py and traces/README.md):

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
