"""Speculative KV-page prefetchers (issue 6): baselines and the INT8 LSTM, as pure-integer
Python references that the firmware (``firmware/predict.c``) reproduces bit for bit.

    from host.prefetch import make_predictor, KINDS
    p = make_predictor("lstm")                 # integer reference, committed weights
    p.reset()                                  # new request
    out = p.step(s, layer, n_pages, acc, k)    # <= k pages of stream s's next step, best first

The firmware's speculation engine (``firmware/speculate.c``) has its reference in
``host.prefetch.speculation``; training, export, evaluation and the held-out fixture live
beside the predictors. See host/prefetch/README.md (design, training) and docs/prefetch.md
(results).
"""
from pathlib import Path

from host.prefetch.core import (KINDS, KIND_CODE, L1_PAGES, LastPredictor,  # noqa: F401
                                LayerAheadPredictor,
                                LSTMPredictor, MarkovPredictor, NonePredictor, QuantLSTMWeights,
                                StridePredictor)

WEIGHTS = Path(__file__).resolve().parent / "weights" / "lstm.npz"

_CLASSES = {"none": NonePredictor, "last": LastPredictor, "stride": StridePredictor,
            "markov": MarkovPredictor, "layer_ahead": LayerAheadPredictor}


def make_predictor(kind: str, weights=None, l1: int = L1_PAGES):
    """A fresh predictor of ``kind`` (one of KINDS) for an L1 window of ``l1`` pages. For
    "lstm", ``weights`` is a :class:`QuantLSTMWeights` or a path to an .npz written by the
    training command (default: the committed ``weights/lstm.npz``)."""
    if kind == "lstm":
        if not isinstance(weights, QuantLSTMWeights):
            weights = QuantLSTMWeights.load(weights or WEIGHTS)
        return LSTMPredictor(weights, l1)
    if kind not in _CLASSES:
        raise ValueError(f"unknown predictor kind {kind!r}; known: {', '.join(KINDS)}")
    return _CLASSES[kind](l1)
