"""Value rotation folded into the model's weights (QuaRot-style, offline, exact).

The codec quantizes V per token over the head's D channels (kivi, kivi_z, kivi_l modes). A
few channels of V carry most of a token's range, so the other channels get few levels.
Rotating every V head by one orthogonal matrix ``M`` (a Hadamard matrix, ``M = H / sqrt(D)``,
optionally ``diag(s) H / sqrt(D)`` with a seeded vector of signs ``s``) spreads those outliers
over all channels, and
the rotation costs nothing at run time because it folds into two weight matrices:

- ``v_proj``: head ``j``'s rows ``W_j`` become ``M^T W_j``, so the model computes and caches
  ``v' = v M`` (row vectors) instead of ``v``;
- ``o_proj``: the column block of every query head ``h`` (which reads KV head ``h // n_rep``)
  becomes ``W_h M``, so ``o' W_h'^T = o M M^T W_h^T = o W_h^T``.

The model's output is unchanged up to float rounding; only the V that lands in the KV cache,
and so in the device pool, is rotated. Keys are not rotated: RoPE acts on channel pairs, so
no channel-mixing rotation folds into ``q_proj``/``k_proj``, and per-channel key grouping
already gives each channel its own range.

Usage::

    from host.traces.rotation import fold_value_rotation
    fold_value_rotation(model)      # in place; returns the (D, D) matrix used
"""
from __future__ import annotations

import numpy as np

def hadamard(n: int) -> np.ndarray:
    """The Sylvester Hadamard matrix of order ``n`` (a power of two), entries +-1."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"Hadamard order must be a power of two, got {n}")
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def rotation_matrix(d: int, seed: int | None = None) -> np.ndarray:
    """Orthogonal ``H / sqrt(d)`` (``seed`` None), or ``diag(s) H / sqrt(d)`` with signs ``s``
    drawn from ``seed`` (float64)."""
    s = np.ones(d) if seed is None else np.random.default_rng(seed).choice([-1.0, 1.0], d)
    return hadamard(d) * s[:, None] / np.sqrt(d)


def fold_value_rotation(model, seed: int | None = None) -> np.ndarray:
    """Rotate every layer's V heads by one orthogonal matrix, folded into ``v_proj`` and
    ``o_proj`` of a LLaMA-architecture ``transformers`` model, in place. Returns ``M``."""
    import torch

    cfg = model.config
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(cfg.num_key_value_heads)
    d = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads)
    m64 = rotation_matrix(d, seed)
    m = torch.from_numpy(m64)
    with torch.no_grad():
        for layer in model.model.layers:
            att = layer.self_attn
            wv = att.v_proj.weight.data.to(torch.float64)            # (n_kv * d, hidden)
            bv = None if att.v_proj.bias is None else att.v_proj.bias.data.to(torch.float64)
            for j in range(n_kv):
                wv[j * d:(j + 1) * d] = m.T @ wv[j * d:(j + 1) * d]
                if bv is not None:
                    bv[j * d:(j + 1) * d] = m.T @ bv[j * d:(j + 1) * d]
            wo = att.o_proj.weight.data.to(torch.float64)            # (hidden, n_heads * d)
            for h in range(n_heads):                                 # every query head, whichever KV head it reads
                wo[:, h * d:(h + 1) * d] = wo[:, h * d:(h + 1) * d] @ m
            att.v_proj.weight.data.copy_(wv)
            if bv is not None:
                att.v_proj.bias.data.copy_(bv)
            att.o_proj.weight.data.copy_(wo)
    return m64
