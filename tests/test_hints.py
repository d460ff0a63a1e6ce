"""Hint wire format (host/driver/hints.py) and the speculation engine's reference model
(host/prefetch/speculation.py): encoding round trip, every rejection, UCB arithmetic, throttle, L2
slot allocation and filtering."""

import math
import random

import numpy as np
import pytest

from host.driver.hints import Chunk, HintError, SpecConfig, encode_step, parse_chunk
from host.prefetch.speculation import ChunkResult, SpeculationEngine, isqrt, log2q8, tag_line
from soc.mailbox import HINT_DENSE, HINT_MAGIC, MBOX_HINT_UNITS, SPEC_BUDGET_MIN


def cfg(**kw):
    base = dict(request=7, kind=1, k=4, ucb=False, throttle=False, heads=3, layers=2,
                l2_base=0x1000, l2_slots=16, l1_pages=1)
    base.update(kw)
    return SpecConfig(**base)


def random_streams(rng, n, n_pages=40, k=6):
    out = []
    for _ in range(n):
        acc = np.sort(rng.choice(n_pages, size=rng.integers(0, k + 1), replace=False))
        out.append((n_pages, acc))
    return out


def test_encode_parse_round_trip_with_chunking():
    rng = np.random.default_rng(0)
    c = cfg(layers=30)
    streams = random_streams(rng, c.streams, n_pages=4000, k=60)
    chunks = encode_step(c.request, 3, streams, max_units=300)
    assert len(chunks) > 3 and chunks[-1].last and not any(x.last for x in chunks[:-1])
    got, expect = [], 0
    for ch in chunks:
        step, first, ss, last = parse_chunk(ch.words(), c, expect, 3)
        assert step == 3 and first == expect
        got += ss
        expect += len(ss)
    assert [s for s, _, _ in got] == list(range(c.streams))
    for (n, acc), (_, n2, acc2) in zip(streams, got):
        assert n == n2 and np.array_equal(acc, acc2)


def test_dense_streams_expand():
    c = cfg()
    ch = encode_step(c.request, 0, [(5, None)] * c.streams, dense=True)
    assert len(ch) == 1 and ch[0].payload[:2] == [5, HINT_DENSE]
    _, _, ss, _ = parse_chunk(ch[0].words(), c, 0, 0)
    assert all(np.array_equal(acc, np.arange(5)) for _, _, acc in ss)


def corrupt(words, i, value):
    w = list(words)
    w[i] = value
    return w


@pytest.mark.parametrize("case,code", [
    ("magic", 1), ("request", 2), ("stream", 3), ("count0", 3), ("len_over", 4),
    ("len_short", 4), ("len_long", 4), ("flags", 4), ("page_range", 5), ("not_ascending", 5),
    ("n_pages", 5), ("step", 6), ("first", 6), ("last_flag", 3)])
def test_every_rejection(case, code):
    c = cfg()
    good = encode_step(c.request, 0, [(10, [1, 4, 7])] * c.streams)[0]
    w = good.words()
    if case == "magic":
        w = corrupt(w, 0, HINT_MAGIC ^ 1)
    elif case == "request":
        w = corrupt(w, 1, 8)
    elif case == "stream":
        w = corrupt(w, 3, 1 | c.streams << 16)
    elif case == "count0":
        w = corrupt(w, 3, 0)
    elif case == "len_over":
        w = corrupt(w, 4, MBOX_HINT_UNITS + 2)
    elif case == "len_short":
        w = corrupt(w, 4, w[4] - 1)
    elif case == "len_long":
        w = corrupt(w, 4, w[4] + 2) + [0]
    elif case == "flags":
        w = corrupt(w, 5, 3)
    elif case == "page_range":
        w = Chunk(0, 0, c.streams, [10, 1, 10] * c.streams, True, c.request).words()
    elif case == "not_ascending":
        w = Chunk(0, 0, c.streams, [10, 2, 4, 4] * c.streams, True, c.request).words()
    elif case == "n_pages":
        w = Chunk(0, 0, c.streams, [4097, 0] * c.streams, True, c.request).words()
    elif case == "step":
        w = corrupt(w, 2, 1)
    elif case == "first":
        w = Chunk(0, 1, c.streams - 1, [10, 0] * (c.streams - 1), True, c.request).words()
    elif case == "last_flag":
        w = corrupt(w, 5, 0)
    expect_step = 2 if case == "step" else 0      # step 1 after step 1: an earlier step
    with pytest.raises(HintError) as e:
        parse_chunk(w, c, 0, expect_step)
    assert e.value.code == code


def test_skipped_steps():
    """A step may follow a later one than expected (hints the host skipped while the device
    was busy); within a step, every chunk carries the same step."""
    c = cfg(layers=30)
    chunks = encode_step(c.request, 5, [(400, list(range(0, 400, 2)))] * c.streams)
    assert len(chunks) > 1
    assert parse_chunk(chunks[0].words(), c, 0, 2)[0] == 5
    w = corrupt(chunks[1].words(), 2, 6)
    with pytest.raises(HintError) as e:
        parse_chunk(w, c, chunks[1].first, 5)
    assert e.value.code == 6


def test_not_configured():
    with pytest.raises(HintError) as e:
        parse_chunk([HINT_MAGIC] + [0] * 10, None, 0, 0)
    assert e.value.code == 7


@pytest.mark.parametrize("bad", [dict(k=0), dict(k=17), dict(l2_slots=0), dict(l2_slots=1025),
                                 dict(layers=33), dict(l2_base=0x1001), dict(kind=6)])
def test_config_range_checks(bad):
    with pytest.raises(ValueError):
        cfg(**bad)


def test_integer_helpers_match_math():
    rng = random.Random(1)
    for n in [1, 2, 3, 255, 256, 1000, 2**31 - 1] + [rng.randrange(1, 2**32) for _ in range(500)]:
        assert abs(log2q8(n) / 256 - math.log2(n)) < 0.09
        assert log2q8(n) >> 8 == n.bit_length() - 1
    for x in [0, 1, 2, 3, 4, 15, 16, 17, 2**62, 2**64 - 1] + [rng.randrange(2**64) for _ in range(500)]:
        r = isqrt(x)
        assert r * r <= x < (r + 1) * (r + 1)


class Oracle:
    """A predictor that returns fixed pages (tests the engine, not a prediction method)."""
    def __init__(self, table):
        self.table = table

    def reset(self):
        self.calls = 0

    def step(self, s, layer, n_pages, acc, k):
        self.calls += 1
        return self.table(s, n_pages, acc)[:k]


def run_step(eng, step, streams):
    """One step's hint, a chunk per layer as the host posts it; the step's record and every
    chunk's issues and reused slots together."""
    issues, reused, rec = [], [], None
    for ch in encode_step(eng.cfg.request, step, streams, group=eng.cfg.heads):
        st, r = eng.chunk(ch.words())
        assert st == 0
        issues += r.issues
        reused += r.reused
        rec = r.record or rec
    return ChunkResult(rec, issues, reused)


def test_filtering_slots_and_feedback():
    c = cfg(layers=1, heads=2, l2_slots=4, l1_pages=2, k=4)
    mapped = {(0 << 12) | p for p in range(8)} | {(1 << 12) | p for p in range(5)}
    eng = SpeculationEngine(c, mapped.__contains__, Oracle(lambda s, n, acc: [0, 7, 6, 5, 1]))
    r = run_step(eng, 0, [(10, [0]), (10, [0])])
    # stream 0: 0 ok, 7 ok (mapped, < 10-2), 6 ok, 5 ok -> k = 4 candidates; stream 1: 0 ok,
    # 7/6/5 unmapped. Rank-major: s0:0, s1:0, s0:7, (s1:7 unmapped), s0:6, s0:5 -> budget 4.
    assert [(i.vpn, i.slot, i.order) for i in r.issues] == [(0, 0, 0), (1 << 12, 1, 1),
                                                           (7, 2, 2), (6, 3, 3)]
    assert r.record["skip_unmapped"] == 3 and r.record["throttled"] == 1
    # next step: 0 and 7 of stream 0 are read (hits, both issued last step), page 9 is L1
    r = run_step(eng, 1, [(10, [0, 7, 9]), (10, [])])
    assert r.record["l2_hits"] == 2 and r.record["used_prev"] == 2 and r.record["issued_prev"] == 4
    # every resident page is predicted again, so kept: page 5 finds no slot
    assert r.issues == [] and r.record["skip_resident"] == 4 and r.record["throttled"] == 1
    assert sorted(eng.where) == [0, 6, 7, 1 << 12]


def test_slots_keep_pages_the_host_still_needs():
    """Two layers of one head, four slots. A layer's chunk may take the slots of pages the
    host has read (the previous step's pages of its own and earlier layers), never those of
    a later layer's pages nor pages this step issued or predicted again."""
    c = cfg(layers=2, heads=1, l2_slots=4, l1_pages=0, k=3)
    table = {0: {0: [0, 1], 1: [0, 1]}, 1: {0: [2, 3, 4], 1: [0, 5, 6]}}
    now = {"step": 0}
    eng = SpeculationEngine(c, lambda v: True,
                            Oracle(lambda s, n, acc: table[now["step"]][s]))
    r = run_step(eng, 0, [(10, [9]), (10, [9])])
    assert [(i.vpn, i.slot) for i in r.issues] == [(0, 0), (1, 1), (1 << 12, 2), (1 << 12 | 1, 3)]
    now["step"] = 1
    r = run_step(eng, 1, [(10, [9]), (10, [9])])
    # layer 0: pages 2 and 3 take stream 0's slots; page 4 finds none (slots 2, 3 hold layer
    # 1's pages, still to be read). Layer 1: page 0 is kept (predicted again), 5 takes slot
    # 3 (stream 1's page 1, read), 6 finds none.
    assert [(i.vpn, i.slot, i.order) for i in r.issues] == [(2, 0, 0), (3, 1, 1),
                                                           (1 << 12 | 5, 3, 2)]
    assert r.reused == [0, 1, 3] and r.record["throttled"] == 2
    assert r.record["skip_resident"] == 1 and eng.where[1 << 12] == 2


def test_l1_pages_are_never_prefetched():
    c = cfg(layers=1, heads=1, l2_slots=8, l1_pages=3, k=8)
    eng = SpeculationEngine(c, lambda v: True, Oracle(lambda s, n, acc: list(range(n - 1, -1, -1))))
    r = run_step(eng, 0, [(6, [5])])
    assert sorted(i.vpn for i in r.issues) == [0, 1, 2] and r.record["skip_l1"] == 3


def test_throttle_halves_and_grows():
    c = cfg(layers=1, heads=1, l2_slots=64, l1_pages=0, k=16, throttle=True)
    wrong = Oracle(lambda s, n, acc: [500 + 16 * (int(acc[0]) // 3) + i for i in range(16)])
    eng = SpeculationEngine(c, lambda v: True, wrong)
    budgets = []
    for step in range(6):
        r = run_step(eng, step, [(1000, [step * 3])])
        budgets.append(r.record["budget"])
    # each step's precision sets the next step's budget (its issues go out chunk by chunk)
    assert budgets[:5] == [64, 64, 32, 16, SPEC_BUDGET_MIN]
    right = SpeculationEngine(c, lambda v: True, Oracle(lambda s, n, acc: list(range(16))))
    for step in range(4):
        r = run_step(right, step, [(1000, list(range(16)))])
    assert r.record["budget"] == 64  # high precision keeps the ceiling


def test_ucb_plays_every_arm_then_prefers_the_best():
    """Each step reads 4 fresh pages; the predictor names them first, then junk: depth 4 is
    the best arm (all hits, no waste); UCB must try every arm, then settle on it."""
    c = cfg(layers=1, heads=1, l2_slots=64, l1_pages=0, k=16, ucb=True)
    nxt = Oracle(lambda s, n, acc: [int(acc[0]) + 20 + i for i in range(4)] +
                 [3000 + int(acc[0]) + i for i in range(12)])
    eng = SpeculationEngine(c, lambda v: True, nxt)
    arms = []
    for step in range(80):
        r = run_step(eng, step, [(4000, [20 * step + i for i in range(4)])])
        arms.append(r.record["k"])
    assert arms[:5] == [1, 2, 4, 8, 16]
    late = arms[40:]
    assert max(set(late), key=late.count) == 4, arms
    assert eng.n[2] > max(n for i, n in enumerate(eng.n) if i != 2)


def test_tag_line_layout():
    line = tag_line(0x12345, 9, 3, 7)
    assert len(line) == 64
    w = np.frombuffer(line, "<u4")
    assert w[0] == 0x31474154 and w[1] == 0x12345 and w[2] == 9 and w[3] == 3 and w[4] == 7
    assert not w[5:].any()
