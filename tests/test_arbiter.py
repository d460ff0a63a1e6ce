"""The round-robin message arbiter (gateware/arbiter.py): every message delivered once and
in order per sink, the output stable under back-pressure, the round-robin bound, one
message a cycle when all sinks are busy, and no path from a sink's valid to a ready."""

import random

import pytest
from migen import Module
from migen.sim import run_simulation

from gateware.arbiter import RoundRobin

LAYOUT = [("src", 2), ("seq", 16)]


def _run(n, msgs, p_valid, p_ready, seed, cycles_max=20000):
    """Random producers (a beat, once valid, held until accepted) and a random consumer;
    returns the accepted (src, seq) in order and the per-cycle observations."""
    rng = random.Random(seed)
    dut = RoundRobin(LAYOUT, n)
    m = Module()
    m.submodules.dut = dut
    out, waits, bad = [], [], []

    def bench():
        nxt = [0] * n
        waiting = [None] * n            # accepted messages seen since sink i became valid
        held = None
        for _ in range(cycles_max):
            for i, s in enumerate(dut.sinks):
                if not (yield s.valid) and nxt[i] < msgs and rng.random() < p_valid:
                    yield s.valid.eq(1)
                    yield s.src.eq(i)
                    yield s.seq.eq(nxt[i])
                    waiting[i] = 0
            ready = rng.random() < p_ready
            yield dut.source.ready.eq(int(ready))
            yield
            v = yield dut.source.valid
            beat = ((yield dut.source.src), (yield dut.source.seq)) if v else None
            if held is not None and beat != held:
                bad.append(("changed under back-pressure", held, beat))
            accepted = None
            for i, s in enumerate(dut.sinks):
                if (yield s.valid) and (yield s.ready):
                    accepted = i
            if v and ready:
                out.append(beat)
                held = None
                i = beat[0]
                if accepted != i:
                    bad.append(("ready on the wrong sink", i, accepted))
                waits.append(waiting[i])
                waiting[i] = None
                for j in range(n):
                    if waiting[j] is not None:
                        waiting[j] += 1
                nxt[i] += 1
                yield dut.sinks[i].valid.eq(0)
            else:
                held = beat
                if accepted is not None:
                    bad.append(("ready without an accepted source beat", accepted))
            if all(x == msgs for x in nxt):
                return

    run_simulation(m, bench())
    return out, waits, bad


@pytest.mark.parametrize("n,seed", [(2, 1), (2, 2), (3, 3), (3, 4), (4, 5)])
def test_random_stalls(n, seed):
    msgs = 300
    out, waits, bad = _run(n, msgs, p_valid=0.5, p_ready=0.6, seed=seed)
    assert not bad, bad[:3]
    assert len(out) == n * msgs, "the sweep ended before every message was delivered"
    for i in range(n):
        assert [q for s, q in out if s == i] == list(range(msgs)), f"sink {i} out of order"
    # Round robin: a waiting sink sees at most n - 1 other messages accepted before its own.
    assert max(waits) <= n - 1, max(waits)


@pytest.mark.parametrize("n", [2, 3])
def test_full_rate_when_all_busy(n):
    """Every sink always valid, output always ready: one message a cycle, in turn."""
    dut = RoundRobin(LAYOUT, n)
    seen = []

    def bench():
        for i, s in enumerate(dut.sinks):
            yield s.valid.eq(1)
            yield s.src.eq(i)
        yield dut.source.ready.eq(1)
        yield
        for _ in range(4 * n):
            yield
            seen.append((yield dut.source.src) if (yield dut.source.valid) else None)

    run_simulation(dut, bench())
    assert None not in seen
    assert all(seen[k + 1] == (seen[k] + 1) % n for k in range(len(seen) - 1)), seen


def test_ready_does_not_depend_on_valid():
    """The readies follow the grant register, not the valids: with every sink idle one
    sink (the granted one) still sees ready; a valid raised on another sink leaves the
    readies as they were in that cycle, and the grant moves to it in the next."""
    dut = RoundRobin(LAYOUT, 3)
    seen = []

    def readies():
        r = []
        for s in dut.sinks:
            r.append((yield s.ready))
        return tuple(r)

    def bench():
        yield dut.source.ready.eq(1)
        for _ in range(3):
            yield
        idle = yield from readies()
        g = idle.index(1)
        other = (g + 1) % 3
        yield dut.sinks[other].valid.eq(1)
        yield
        same_cycle = yield from readies()
        yield
        next_cycle = yield from readies()
        seen.extend([idle, same_cycle, next_cycle, g, other])

    run_simulation(dut, bench())
    idle, same_cycle, next_cycle, g, other = seen
    assert sum(idle) == 1
    assert same_cycle == idle, "a sink's valid reached the readies in its own cycle"
    assert next_cycle[other] == 1 and sum(next_cycle) == 1
