"""Live generation through the device cache, and its comparison with the plain cache.

``generate`` runs ``model.generate`` (greedy) with a :class:`SpecKVCache` or a plain
``DynamicCache``; ``score`` feeds a given continuation one token at a time through a cache
(teacher forcing: the same one-token decode steps, so the same device reads and hints as
generation) and returns its negative log-likelihood; ``compare`` generates with both caches
and scores both on the plain cache's text: the first token where the two generations differ
and the perplexity change are what the device (codec and page selection) costs.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass

from transformers.generation.streamers import BaseStreamer

from host.generate.cache import SpecKVCache, check_capacity


@dataclass
class GenOptions:
    max_new_tokens: int = 64
    backend: str = "model"
    codec: str = "kivi_k4v3"
    selection: str = "dense"
    k: int = 8
    window: int = 64
    l1_pages: int | None = None
    prefetcher: str = "lstm"
    link: str = "cxl2-x16"
    timing: str = "on"
    step_ns: float = 20_000.0
    l2_slots: int = 512
    stop_at_eos: bool = True


def _bar(total, desc, progress):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="tok", file=sys.stderr, leave=False)


class _Streamer(BaseStreamer):
    """``generate``'s streamer: a progress bar over the new tokens (the first ``put`` is the
    prompt)."""

    def __init__(self, bar):
        super().__init__()
        self.bar, self.prompt_seen = bar, False

    def put(self, value):
        if self.prompt_seen and self.bar is not None:
            self.bar.update(1)
        self.prompt_seen = True

    def end(self):
        if self.bar is not None:
            self.bar.close()


def device_cache(model, ids_len, opts: GenOptions, build=None):
    check_capacity(model.config, ids_len + opts.max_new_tokens, opts.codec)
    return SpecKVCache(model, backend=opts.backend, codec=opts.codec, selection=opts.selection,
                       k=opts.k, window=opts.window, l1_pages=opts.l1_pages,
                       prefetcher=opts.prefetcher, link=opts.link, timing=opts.timing,
                       step_ns=opts.step_ns, l2_slots=opts.l2_slots, build=build)


def generate(model, ids, opts: GenOptions, device=True, build=None, progress=True) -> dict:
    """Greedy generation of ``opts.max_new_tokens`` after ``ids`` [1, n] with the device cache
    (``device``) or the plain one. Returns the new token ids, wall time, tokens/s and, on the
    device, its statistics (``SpecKVCache.stats``)."""
    import torch
    from transformers import DynamicCache

    cache = device_cache(model, ids.shape[1], opts, build) if device else DynamicCache()
    kw = {} if opts.stop_at_eos else {"eos_token_id": None}
    bar = _bar(opts.max_new_tokens, "generate " + ("device" if device else "plain"), progress)
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            out = model.generate(ids, past_key_values=cache, max_new_tokens=opts.max_new_tokens,
                                 do_sample=False, streamer=_Streamer(bar), pad_token_id=0, **kw)
    finally:
        if device:
            cache.close()
    wall = time.perf_counter() - t0
    new = out[0, ids.shape[1]:].tolist()
    res = {"tokens": new, "wall_s": wall, "tokens_per_s": len(new) / wall if wall else None}
    if device:
        res["device"] = cache.stats()
    return res


def score(model, ids, cont, cache, progress=True, desc="score") -> float:
    """Total negative log-likelihood (nats) of ``cont`` (token ids) after ``ids`` [1, n], fed
    one token at a time through ``cache``."""
    import torch

    nll = 0.0
    bar = _bar(len(cont), desc, progress)
    try:
        with torch.no_grad():
            logits = model(ids, past_key_values=cache, use_cache=True).logits[0, -1]
            for i, tok in enumerate(cont):
                nll -= torch.log_softmax(logits.float(), dim=-1)[tok].item()
                if bar is not None:
                    bar.update(1)
                if i + 1 < len(cont):
                    step = torch.tensor([[tok]], dtype=ids.dtype)
                    logits = model(step, past_key_values=cache, use_cache=True).logits[0, -1]
    finally:
        if bar is not None:
            bar.close()
    return nll


def first_divergence(a, b):
    """Index of the first new token where two generations differ (None: equal)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare(model, ids, opts: GenOptions, build=None, progress=True) -> dict:
    """Plain and device generation of the same prompt; both scored on the plain text."""
    from transformers import DynamicCache

    plain = generate(model, ids, opts, device=False, progress=progress)
    dev = generate(model, ids, opts, device=True, build=build, progress=progress)
    text = plain["tokens"]
    nll_plain = score(model, ids, text, DynamicCache(), progress, "score plain")
    cache = device_cache(model, ids.shape[1], opts, build)
    try:
        nll_dev = score(model, ids, text, cache, progress, "score device")
    finally:
        cache.close()
    n = max(1, len(text))
    ppl_plain, ppl_dev = math.exp(nll_plain / n), math.exp(nll_dev / n)
    return {"options": asdict(opts), "prompt_tokens": int(ids.shape[1]),
            "plain": plain, "device": dev,
            "first_divergence": first_divergence(plain["tokens"], dev["tokens"]),
            "scored_tokens": len(text),
            "perplexity": {"plain": ppl_plain, "device": ppl_dev,
                           "change": ppl_dev / ppl_plain - 1.0},
            "device_scoring": cache.stats()}
