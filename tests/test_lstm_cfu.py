"""The LSTM CFU: its model against the integer reference of the prefetcher, and the Migen
core against its model, instruction by instruction, under random stalls and repeated
commands (the VexRiscv re-issue trap). The firmware with the unit in the SoC is checked by
tests/test_prefetch_firmware.py."""
import random

import numpy as np
import pytest
from migen.sim import run_simulation

from gateware.lstm_cfu import model as M
from gateware.lstm_cfu.core import RUN_CYCLES, LstmCfu
from host.prefetch.core import SIG_LUT, TANH_LUT, LSTMPredictor, QuantLSTMWeights, Tracker, step_inputs
from host.prefetch.export import WEIGHTS
from host.prefetch.fixture import load, records_for


def real_program():
    w = QuantLSTMWeights.load(WEIGHTS)
    return w, M.load_words(w.wx.T, np.concatenate([w.wh, w.wo]), np.concatenate([w.b, w.bo]),
                           SIG_LUT + TANH_LUT, (w.ex - 12, w.eh + 7 - 12, w.eo + 7 - 12))


def random_program(rng):
    wx = rng.integers(-128, 128, (M.NX_ROWS, M.NG))
    wr = rng.integers(-128, 128, (M.NG + M.NF, M.H))
    bias = rng.integers(-(1 << 20), 1 << 20, M.NG + M.NF)
    lut = rng.integers(-(1 << 15), 1 << 15, 2 * M.LUT_N)
    shifts = [int(rng.integers(-8, 12)) for _ in range(3)]
    return M.load_words(wx, wr, bias, lut, shifts)


def predict_ops(tr, s, layer, n, k, seq, l1=4):
    """The instruction sequence firmware/predict.c issues for one LSTM prediction."""
    xin = step_inputs(s, layer, n, tr)
    ops = [(M.OP_RUN, *M.pack_run(xin, s, seq))]
    ops += [(M.OP_SCORE, p | (h << 16), n - l1) for p, h in zip(tr.pages, tr.hist)]
    ops += [(M.OP_GET, r, 0) for r in range(min(k, len(tr.pages)))]
    return ops


def test_model_matches_the_integer_lstm():
    w, prog = real_program()
    cfu = M.LstmCfuModel()
    for rs1, rs2 in prog:
        cfu.op(M.OP_LOAD, rs1, rs2)
    ref = LSTMPredictor(w)
    trs = [Tracker() for _ in range(M.STREAMS)]
    recs = records_for(load("chatbot"), 4) + records_for(load("codegen"), 2)
    for seq, (s, layer, n, k, acc) in enumerate(recs):
        if seq == len(recs) - 2 * 90:           # a new request: both start over
            ref.reset()
            cfu.op(M.OP_RESET, 0, 0)
            trs = [Tracker() for _ in range(M.STREAMS)]
        exp = ref.step(s, layer, n, acc, k)
        trs[s].observe(acc, n, 4)
        got = [cfu.op(*o) for o in predict_ops(trs[s], s, layer, n, k, seq)]
        assert got[1 + len(trs[s].pages):] == exp, (seq, s)


def test_model_repeats_are_harmless():
    _, prog = real_program()
    a, b = M.LstmCfuModel(), M.LstmCfuModel()
    for rs1, rs2 in prog:
        a.op(M.OP_LOAD, rs1, rs2)
        b.op(M.OP_LOAD, rs1, rs2)
        b.op(M.OP_LOAD, rs1, rs2)
    tr = Tracker()
    tr.observe([0, 3, 5, 9], 20)
    for seq in range(3):
        for o in predict_ops(tr, 4, 1, 20, 8, seq):
            assert a.op(*o) == b.op(*o) == b.op(*o)
    with pytest.raises(ValueError, match="stream 200"):
        M.pack_run([0] * 6, 200, 0)


# ---- the core against the model ----
def drive(ops, seed, stall=0.3, repeat=0.0):
    """Run ``ops`` through the core with random command gaps, response back-pressure and
    (with ``repeat``) commands issued twice back to back; returns the responses (one per op,
    the repeat's response must equal the first) and the cycles each RUN took."""
    rng = random.Random(seed)
    dut = LstmCfu()
    out, run_cycles = [], []

    def gen():
        cmd, rsp = dut.bus.cmd, dut.bus.rsp
        for f3, rs1, rs2 in ops:
            times = 2 if rng.random() < repeat else 1
            first = None
            for _ in range(times):
                while rng.random() < stall:
                    yield
                yield cmd.payload.function_id.eq(f3 | (rng.randrange(128) << 3))
                yield cmd.payload.inputs_0.eq(rs1 & 0xFFFFFFFF)
                yield cmd.payload.inputs_1.eq(rs2 & 0xFFFFFFFF)
                yield cmd.valid.eq(1)
                yield
                while not (yield cmd.ready):
                    yield
                yield cmd.valid.eq(0)
                t0 = 0
                while True:
                    ready = int(rng.random() >= stall)
                    yield rsp.ready.eq(ready)
                    yield
                    t0 += 1
                    if ready and (yield rsp.valid):
                        break
                yield rsp.ready.eq(0)
                v = yield rsp.payload.outputs_0
                if first is None:
                    first = v
                    if f3 == M.OP_RUN:
                        run_cycles.append(t0)
                assert v == first, "a repeated command changed its answer"
            out.append(first)
    run_simulation(dut, gen())
    return out, run_cycles


def model_answers(ops, repeat_model=False):
    m = M.LstmCfuModel()
    return [m.op(*o) for o in ops]


def stream_ops(prog, rng, n_runs):
    ops = [(M.OP_INFO, 0, 0)] + [(M.OP_LOAD, a, d) for a, d in prog]
    for seq in range(n_runs):
        s = rng.randrange(3)
        tr = Tracker()
        tr.observe(sorted(rng.sample(range(40), rng.randrange(1, 20))), 44)
        tr.observe(sorted(rng.sample(range(40), rng.randrange(1, 20))), 44)
        ops += predict_ops(tr, s, rng.randrange(30), 44, rng.choice([1, 4, 8, 32]), seq)
        ops += [(M.OP_READ, r, 0) for r in range(64)] if seq % 3 == 0 else []
        ops += [(M.OP_SCORE, 0, rng.randrange(-5, 40)), (M.OP_GET, 40, 0)]
        if seq == n_runs // 2:
            ops.append((M.OP_RESET, 0, 0))
    return ops


def test_core_matches_model_real_weights():
    rng = random.Random(1)
    _, prog = real_program()
    ops = stream_ops(prog, rng, 6)
    got, runs = drive(ops, seed=2)
    assert got == model_answers(ops)
    assert got[0] == M.INFO
    assert all(c >= RUN_CYCLES for c in runs) and min(runs) <= RUN_CYCLES + 4, runs


@pytest.mark.parametrize("seed", [3, 4])
def test_core_matches_model_random_weights_and_repeats(seed):
    rng = np.random.default_rng(seed)
    ops = stream_ops(random_program(rng), random.Random(seed), 5)
    got, _ = drive(ops, seed=seed, stall=0.4, repeat=0.3)
    assert got == model_answers(ops)


def test_core_back_to_back():
    """No gaps, no back-pressure: one instruction every cycle the unit accepts."""
    _, prog = real_program()
    ops = stream_ops(prog, random.Random(5), 3)
    got, runs = drive(ops, seed=5, stall=0.0)
    assert got == model_answers(ops)
    assert runs and max(runs) == RUN_CYCLES + 1, runs
