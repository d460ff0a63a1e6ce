"""Prefetch predictors (host/prefetch): contract, baselines' semantics, the integer LSTM
against its float model on held-out traces, and the committed weights/header being what the
export produces."""

import re
from pathlib import Path

import numpy as np
import pytest

from host.prefetch import KINDS, WEIGHTS, make_predictor
from host.prefetch import core as C
from host.prefetch.fixture import load as load_fixture
from host.prefetch.metrics import KS, run_predictor, score

ROOT = Path(__file__).resolve().parent.parent

# Quantized LSTM vs its float model, on held-out steps: the stated margin.
HIT_RATE_MARGIN = 0.01      # 1 percentage point of hit rate, every k
COVERAGE_MARGIN = 0.02


@pytest.fixture(scope="module")
def heldout():
    return {w: load_fixture(w) for w in ("chatbot", "codegen")}


@pytest.fixture(scope="module")
def lstm_scores(heldout):
    """The integer LSTM's metrics on the held-out fixture steps."""
    return {n: score(st, run_predictor(make_predictor("lstm"), st)) for n, st in heldout.items()}


def test_kinds_match_firmware_enum():
    text = (ROOT / "firmware" / "predict.h").read_text()
    enum = re.search(r"enum pred_kind \{([^}]*)\}", text).group(1)
    codes = {m.group(1).lower(): int(m.group(2)) for m in re.finditer(r"PRED_(\w+) = (\d+)", enum)}
    assert codes == {k: i for i, k in enumerate(KINDS)}
    assert f"#define PRED_MAX_STREAMS {C.MAX_STREAMS}" in text


def test_header_is_the_export_of_the_committed_weights():
    from host.prefetch.export import HEADER, header_text
    assert HEADER.read_text() == header_text(WEIGHTS), "run speckv-prefetch-export"


def test_committed_quantized_weights_are_the_quantization_of_the_float_weights():
    from host.prefetch.train import quantize
    z = np.load(WEIGHTS)
    q = quantize({k: z[k] for k in z.files if k.startswith("f_")})
    w = C.QuantLSTMWeights.load(WEIGHTS)
    for name in ("wx", "wh", "wo", "b", "bo"):
        assert np.array_equal(getattr(q, name), getattr(w, name)), name
    assert (q.ex, q.eh, q.eo) == (w.ex, w.eh, w.eo)
    n_params = sum(z[k].size for k in z.files if k.startswith("f_"))
    assert n_params <= 128 * 1024


def test_weights_were_not_trained_on_evaluation_documents():
    import json
    from host.prefetch.evaluate import HELD_OUT
    info = json.loads(str(np.load(WEIGHTS)["info"]))
    assert not set(info["train"] + info["val"]) & set(HELD_OUT)
    assert not set(info["train"]) & set(info["val"])


@pytest.mark.parametrize("l1", [C.L1_PAGES, 0, 9])
@pytest.mark.parametrize("kind", KINDS)
def test_contract(kind, l1, heldout):
    """<= k pages, unique, outside the L1 window (below n_pages - l1); deterministic; reset
    forgets."""
    st = heldout["codegen"]
    p = make_predictor(kind, l1=l1)
    first = None
    for rep in range(2):
        p.reset()
        outs = []
        for t in range(6):
            n = int(st.n_pages[t])
            for s in range(st.n_streams):
                k = KS[(t + s) % len(KS)]
                out = p.step(s, s // 3, n, st.acc[t][s], k)
                assert len(out) <= k and len(set(out)) == len(out)
                assert all(0 <= q < n - l1 for q in out)
                outs.append(out)
        if first is None:
            first = outs
        else:
            assert outs == first
    if kind == "none":
        assert not any(first)
    else:
        assert sum(map(len, first)) > 0


def test_tracker_ageing_and_eviction():
    tr = C.Tracker()
    tr.observe([0, 1, 2, 40, 41], 44)            # lim 40: 40, 41 are L1
    assert tr.pages == [0, 1, 2] and tr.hist == [1, 1, 1] and tr.n_read == 3
    tr.observe([1, 3], 44)
    assert tr.pages == [0, 1, 2, 3] and tr.hist == [2, 3, 2, 1] and tr.n_new == 1
    assert tr.n_drop == 2
    for _ in range(7):
        tr.observe([3], 44)
    assert tr.pages == [1, 3]                    # 0 and 2 unread for 8 steps: gone
    tr = C.Tracker()
    tr.observe(list(range(C.TRACK)), 100)
    tr.observe(list(range(C.TRACK, C.TRACK + 3)), 100)   # full, all read last step
    assert tr.pages[:3] == [C.TRACK, C.TRACK + 1, C.TRACK + 2]   # replaced first in table order
    tr.observe(list(range(60)), 100)   # 0-2 replace 32-34 (read 1 step ago, lowest hist);
    assert tr.pages[:4] == [0, 1, 2, 3]  # then every entry is read: 32-59 are not tracked
    assert len(tr.pages) == C.TRACK and all(h & 1 for h in tr.hist)
    tr.observe([2, 5], 8)                        # lim 4 (new request without reset)
    assert tr.pages == [0, 1, 2, 3] and tr.hist == [2, 2, 3, 10]  # 5 is L1; >= 4 dropped


def test_baseline_semantics():
    last = make_predictor("last")
    assert last.step(0, 0, 20, [0, 3, 9, 16, 17, 18, 19], 8) == [0, 3, 9]
    assert last.step(0, 0, 20, [0, 3, 9, 16], 2) == [0, 3]
    la = make_predictor("layer_ahead")
    assert la.step(5, 1, 20, [], 4) == [0, 1, 2, 3]
    assert la.step(5, 1, 6, [], 4) == [0, 1]
    st = make_predictor("stride")
    assert st.step(0, 0, 100, [10, 20], 4) == [21, 11]        # no stride yet: next page
    st.step(0, 0, 100, [12, 22], 4)                            # delta +2 once
    assert st.step(0, 0, 100, [14, 24], 4) == [26, 16]        # +2 twice: confirmed
    mk = make_predictor("markov")
    for _ in range(3):
        out = mk.step(7, 2, 50, [5, 9], 4)
    assert out == [5, 9]                                       # learned self-transitions
    mk.step(7, 2, 50, [5, 11], 4)
    assert mk.step(7, 2, 50, [5], 4)[0] == 5                   # 5 -> 5 counted 3 times


def test_fixed_point_helpers():
    assert C.rshift_round(5, 1) == 3 and C.rshift_round(-5, 1) == -2 and C.rshift_round(-6, 2) == -1
    assert C.rshift_round(-3, -2) == -12
    assert C.SIG_LUT == sorted(C.SIG_LUT) and C.TANH_LUT == sorted(C.TANH_LUT)
    assert C.SIG_LUT[0] == 1 and C.SIG_LUT[-1] == 4095 and C.TANH_LUT[0] == -C.TANH_LUT[-1]
    assert C.lut_index(-10**9) == 0 and C.lut_index(10**9) == C.LUT_N - 1 and C.lut_index(0) == 256


def test_quantized_lstm_within_margin_of_float(heldout, lstm_scores):
    """The INT8 integer reference against the float model it was quantized from, on the
    held-out fixture steps: hit rate within HIT_RATE_MARGIN at every k."""
    from host.prefetch.dataset import extract
    from host.prefetch.train import float_rankings, load_float
    fm = load_float(WEIGHTS)
    for name, st in heldout.items():
        qi = lstm_scores[name]
        fl = score(st, float_rankings(fm, extract(st)))
        for k in KS:
            assert abs(qi[k]["hit_rate"] - fl[k]["hit_rate"]) <= HIT_RATE_MARGIN, (name, k)
            assert abs(qi[k]["coverage"] - fl[k]["coverage"]) <= COVERAGE_MARGIN, (name, k)


def test_lstm_beats_repeat_last_on_heldout(heldout, lstm_scores):
    """What the model is for: on held-out steps it covers more of the next step's device reads
    than repeating the last step, at the same k."""
    for name, st in heldout.items():
        lstm = lstm_scores[name]
        last = score(st, run_predictor(make_predictor("last"), st))
        assert lstm[4]["coverage"] > last[4]["coverage"], name
        assert lstm[16]["coverage"] > last[16]["coverage"], name


def test_export_check_detects_a_stale_header(tmp_path):
    from host.prefetch import export
    out = tmp_path / "h.h"
    assert export.main(["--out", str(out)]) == 0
    assert export.main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("LSTM_EX", "LSTM_EX_", 1))
    assert export.main(["--out", str(out), "--check"]) == 1
