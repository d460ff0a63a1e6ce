"""Quest page selection (host/traces/sparse.py) against a brute-force reference on random data."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from host.traces import sparse as sp


def brute_force(q, keys, seq_len, k, window):
    """Reference: explicit loops. q [L,H,G,D], keys [L,H,T,D] (T >= full pages * 16)."""
    n_l, n_h, g, d = q.shape
    n_full = (seq_len - 1) // 16
    first_win = n_full if window == 0 else max(0, seq_len - window) // 16
    sel = np.zeros((n_l, n_h, n_full), bool)
    for li, h in itertools.product(range(n_l), range(n_h)):
        scored = []
        for p in range(min(first_win, n_full)):
            page = keys[li, h, 16 * p:16 * p + 16]
            ubs = []
            for gi in range(g):
                ub = 0.0
                for j in range(d):
                    lo, hi = min(page[:, j]), max(page[:, j])
                    ub += max(q[li, h, gi, j] * lo, q[li, h, gi, j] * hi)
                ubs.append(ub)
            scored.append((-max(ubs), p))
        for _, p in sorted(scored)[:k]:
            sel[li, h, p] = True
        for p in range(min(first_win, n_full), n_full):
            sel[li, h, p] = True
    return sel


@pytest.mark.parametrize("seq_len,k,window", [(17, 2, 0), (100, 2, 0), (100, 3, 16), (100, 1, 40),
                                              (161, 4, 64), (161, 20, 64), (161, 0, 32), (40, 5, 200)])
def test_select_pages_matches_brute_force(seq_len, k, window):
    rng = np.random.default_rng(seq_len * 1000 + k * 10 + window)
    n_l, n_h, g, d = 2, 3, 3, 16
    keys = rng.standard_normal((n_l, n_h, seq_len, d))
    q = rng.standard_normal((n_l, n_h, g, d))
    n_full = sp.full_pages_at(seq_len)
    kmin, kmax = sp.page_minmax(keys[:, :, :16 * n_full])
    got = sp.select_pages(q, kmin, kmax, seq_len, k, window)
    want = brute_force(q, keys, seq_len, k, window)
    np.testing.assert_array_equal(got, want)


def test_upper_bound_bounds_every_true_score():
    rng = np.random.default_rng(1)
    keys = rng.standard_normal((5 * 16, 64))
    q = rng.standard_normal((3, 64))
    kmin, kmax = sp.page_minmax(keys)
    ub = sp.quest_upper_bound(q, kmin, kmax)  # [3, 5]
    true = (q @ keys.T).reshape(3, 5, 16).max(axis=-1)
    assert (ub >= true - 1e-9).all()
    assert (ub - true).max() > 0  # a bound, not the score itself


def test_ties_prefer_lower_page_index():
    keys = np.zeros((1, 1, 80, 4))
    q = np.ones((1, 1, 3, 4))
    kmin, kmax = sp.page_minmax(keys)
    sel = sp.select_pages(q, kmin[:, :, :4], kmax[:, :, :4], 65, 2, 0)
    assert sel[0, 0].tolist() == [True, True, False, False]


def test_attention_mass_kept():
    probs = np.zeros((1, 6, 40))
    probs[0, :, 0] = 0.5      # page 0
    probs[0, :, 20] = 0.25    # page 1
    probs[0, :, 39] = 0.25    # tail (n_full = 2 for 40 tokens)
    sel = np.array([[[True, False], [False, True]]])
    mask = sp.attended_tokens(sel, 40)
    assert mask.shape == (1, 2, 40) and mask[0, 0, 39] and mask[0, 1, 39]
    kept = sp.attention_mass_kept(probs, mask)
    np.testing.assert_allclose(kept, [[0.75, 0.5]])


def test_full_pages_and_window_geometry():
    assert sp.full_pages_at(16) == 0 and sp.full_pages_at(17) == 1 and sp.full_pages_at(33) == 2
    assert sp.first_window_page(100, 0) == sp.full_pages_at(100)
    assert sp.first_window_page(100, 16) == 5 and sp.first_window_page(100, 200) == 0
    with pytest.raises(ValueError):
        sp.select_pages(np.zeros((1, 1, 1, 4)), np.zeros((1, 1, 3, 4)), np.zeros((1, 1, 3, 4)), 100, 1, 0)
