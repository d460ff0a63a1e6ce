"""Verilator co-simulation of the ATU: the Verilog Migen emits, compiled by Verilator and driven
from Python (seeded random stalls on both streams, random port latency), against the
reference model. Catches what the Migen simulator cannot: Verilog expression-width semantics
(e.g. a sum that wraps in Verilog but not in Python) and conversion bugs.

The parameter sets are built once per session and cached in build/atu-cosim/<hash>/."""

import random
from pathlib import Path

import pytest
from migen import Module, Signal
from migen.fhdl.verilog import convert
from litedram.common import LiteDRAMNativePort

from gateware.atu.core import ATU
from gateware.atu.model import (ATUModel, SparseMemory, pack_pte, FAULT_NONE, FAULT_BAD_PTE,
                                FAULT_BUS_ERROR, FAULT_INVALID, FAULT_UNMAPPED)

from soc.sim.model import cosim_model

ROOT = Path(__file__).resolve().parent.parent

# name: ATU parameters, port (address width, data width), walk timeout
CONFIGS = {
    "wide46": (dict(entries=8, policy="lru", vpn_width=20, paddr_width=46, tag_width=8), 20, 64,
               0),
    "sdr16":  (dict(entries=4, policy="fifo", vpn_width=12, paddr_width=32, tag_width=8), 15, 16,
               300),
    "rand32": (dict(entries=16, policy="random", vpn_width=16, paddr_width=28, tag_width=8), 18,
               32, 0),
}


class CoSimTop(Module):
    """The ATU with every port and control signal brought out under a plain name."""

    def __init__(self, params, aw, dw, walk_timeout):
        self.port = LiteDRAMNativePort("read", aw, dw)
        self.submodules.atu = atu = ATU(self.port, walk_timeout=walk_timeout, **params)
        self.ios = set()

        def io(name, dst, width=1, out=False):
            s = Signal(width, name=name)
            self.ios.add(s)
            self.comb += s.eq(dst) if out else dst.eq(s)

        p = self.port
        for name, sig in (("sink_valid", atu.sink.valid), ("sink_vpn", atu.sink.vpn),
                          ("sink_tag", atu.sink.tag), ("source_ready", atu.source.ready),
                          ("cmd_ready", p.cmd.ready), ("rdata_valid", p.rdata.valid),
                          ("rdata_data", p.rdata.data), ("pt_base", atu.pt_base),
                          ("pt_entries", atu.pt_entries), ("dram_base", atu.dram_base),
                          ("dram_size", atu.dram_size), ("flush", atu.flush),
                          ("inval", atu.inval), ("inval_vpn", atu.inval_vpn),
                          ("clear", atu.clear)):
            io(name, sig, len(sig))
        for name, sig in (("sink_ready", atu.sink.ready), ("source_valid", atu.source.valid),
                          ("source_tag", atu.source.tag), ("source_paddr", atu.source.paddr),
                          ("source_length", atu.source.length),
                          ("source_flags", atu.source.flags), ("source_fault", atu.source.fault),
                          ("source_hit", atu.source.hit), ("cmd_valid", p.cmd.valid),
                          ("cmd_we", p.cmd.we), ("cmd_addr", p.cmd.addr),
                          ("rdata_ready", p.rdata.ready), ("busy", atu.busy),
                          ("hits", atu.hits), ("misses", atu.misses), ("walks", atu.walks),
                          ("faults", atu.faults), ("last_fault_code", atu.last_fault_code),
                          ("last_fault_vpn", atu.last_fault_vpn)):
            io(name, sig, len(sig), out=True)


_built = {}


def build(name):
    if name in _built:
        return _built[name]
    params, aw, dw, walk_timeout = CONFIGS[name]
    top = CoSimTop(params, aw, dw, walk_timeout)
    verilog = str(convert(top, ios=top.ios, name="atu_cosim"))
    sim = cosim_model(verilog, "atu_cosim", ROOT / "build" / "atu-cosim")
    port_bytes = (1 << aw) * dw // 8
    _built[name] = (sim, params, port_bytes, dw)
    return _built[name]


class CoSim:
    """Cycle-by-cycle driver: lookup stream with random valid gaps, response stream with
    random ready, a native-port memory (random cmd ready, latency, rdata gaps), pulses."""

    def __init__(self, name, seed, p_valid=0.7, p_ready=0.7, p_cmd=0.7, p_rdata=0.7,
                 latency=(1, 8), extra_delay=None):
        self.sim, params, self.port_bytes, self.dw = build(name)
        self.rng = random.Random(seed)
        self.mem = SparseMemory()
        self.model = ATUModel(self.mem, port_bytes=self.port_bytes, **params)
        self.p_valid, self.p_ready, self.p_cmd, self.p_rdata = p_valid, p_ready, p_cmd, p_rdata
        self.latency = latency
        self.extra_delay = extra_delay or (lambda addr: 0)
        self.queue = []         # [due cycle, data]
        self.cycle = 0
        self.responses, self.expected, self.reads = [], [], []
        s = self.sim
        for k in ("sink_valid", "source_ready", "cmd_ready", "rdata_valid", "flush", "inval",
                  "clear", "pt_base", "pt_entries", "dram_base", "dram_size"):
            s[k] = 0
        s["sys_rst"] = 1
        self._clock()
        self._clock()
        s["sys_rst"] = 0

    def _clock(self):
        self.sim["sys_clk"] = 1
        self.sim.eval()
        self.sim["sys_clk"] = 0
        self.sim.eval()

    def step(self, sink=None, **pulses):
        """One cycle. ``sink`` = (vpn, tag) to offer; returns True if it was accepted."""
        s, rng = self.sim, self.rng
        for k, v in pulses.items():
            s[k] = v
        if sink is not None:
            s["sink_vpn"], s["sink_tag"] = sink
        s["sink_valid"] = int(sink is not None)
        s["source_ready"] = int(rng.random() < self.p_ready)
        s["cmd_ready"] = cmd_ready = int(rng.random() < self.p_cmd)
        show = self.queue and self.queue[0][0] <= self.cycle and rng.random() < self.p_rdata
        if show:
            s["rdata_data"] = self.queue.pop(0)[1]
        s["rdata_valid"] = int(bool(show))
        s.eval()
        assert s["rdata_ready"] == 1 and s["cmd_we"] == 0
        accepted = sink is not None and s["sink_ready"] == 1
        if s["source_valid"] and s["source_ready"]:
            self.responses.append(tuple(s[k] for k in (
                "source_tag", "source_fault", "source_paddr", "source_length", "source_flags",
                "source_hit")))
        if cmd_ready and s["cmd_valid"]:
            addr = s["cmd_addr"]
            self.reads.append(addr)
            nb = self.dw // 8
            due = max(self.cycle + rng.randint(*self.latency) + self.extra_delay(addr),
                      self.queue[-1][0] + 1 if self.queue else 0)
            self.queue.append([due, int.from_bytes(self.mem.read(addr * nb, nb), "little")])
        self._clock()
        for k in pulses:
            s[k] = 0
        self.cycle += 1
        return accepted

    def lookups(self, vpns):
        for vpn in vpns:
            tag = self.rng.randrange(256)
            r = self.model.lookup(vpn)
            self.expected.append((tag, r.fault, r.paddr, r.length, r.flags, int(r.hit)))
            while self.rng.random() >= self.p_valid:
                self.step()
            for _ in range(10000):
                if self.step(sink=(vpn, tag)):
                    break
            else:
                raise AssertionError("lookup not accepted")

    def drain(self):
        for _ in range(10000):
            if len(self.responses) == len(self.expected) and not self.sim["busy"]:
                return
            self.step()
        raise AssertionError("responses did not come")

    def configure(self, **cfg):
        for k, v in cfg.items():
            self.sim[k] = v
        self.model.configure(**cfg)
        self.step()
        self.step()

    def counters(self):
        return {k: self.sim[k] for k in ("hits", "misses", "walks", "faults", "last_fault_code",
                                          "last_fault_vpn")}


def _random_ops(c, n_ops, pt_entries, win_base, win_size, extreme):
    rng = c.rng
    m = c.model
    c.configure(pt_base=0x1000, pt_entries=pt_entries, dram_base=win_base, dram_size=win_size)
    top = (1 << m.p.paddr_width)

    def random_pte():
        r = rng.random()
        if r < 0.6:
            length = rng.randint(1, m.p.max_length)
            slot = rng.randrange((win_size - length) // 64 + 1)
            return pack_pte(win_base + 64 * slot, length, rng.randrange(128))
        if r < 0.7:
            return 0
        if r < 0.8 and extreme:
            # paddr + length past 2^paddr_width (wraps if the sum is not widened)
            return pack_pte(top - 64 * rng.randint(1, 4), rng.randint(65, m.p.max_length))
        if r < 0.9:
            return pack_pte(win_base + win_size - 64, rng.randint(65, 300))
        return rng.getrandbits(64)

    for v in range(pt_entries):
        c.mem.write64(m.pte_addr(v), random_pte())
    hot = rng.sample(range(pt_entries), m.p.entries + 3)
    ops, mismatches = 0, []
    while ops < n_ops:
        r = rng.random()
        if r < 0.75:
            k = min(rng.randint(1, 12), n_ops - ops)
            c.lookups([rng.choice(hot) if rng.random() < 0.7 else rng.randrange(pt_entries + 4)
                       for _ in range(k)])
            ops += k
            continue
        c.drain()
        if c.counters() != m.counters():
            mismatches.append((ops, m.counters(), c.counters()))
        v = rng.choice(hot)
        if r < 0.9:
            c.mem.write64(m.pte_addr(v), random_pte())
            m.invalidate(v)
            c.step(inval=1, inval_vpn=v)
        elif r < 0.94:
            m.invalidate_all()
            c.step(flush=1)
        elif r < 0.98:                 # configuration change: window, table, or PTEs past
            cfg = rng.choice([         # the end of the port (bus errors)
                dict(pt_base=0x1000, pt_entries=pt_entries, dram_base=win_base,
                     dram_size=win_size),
                dict(pt_base=0x1000 + 8 * 3, pt_entries=pt_entries - 4),
                dict(dram_base=win_base + 0x1000, dram_size=win_size // 2),
                dict(pt_base=c.port_bytes - 8 * (pt_entries // 2), pt_entries=pt_entries,
                     dram_base=win_base, dram_size=win_size)])
            c.configure(**cfg)
        else:
            m.clear_counters()
            c.step(clear=1)
        c.step()
        ops += 1
    c.drain()
    if c.counters() != m.counters():
        mismatches.append(("end", m.counters(), c.counters()))
    return mismatches


@pytest.mark.parametrize("name, extreme", [("wide46", True), ("sdr16", False),
                                           ("rand32", True)])
def test_cosim_random_ops_match_model(name, extreme):
    c = CoSim(name, seed=len(name))
    m = c.model
    if name == "wide46":
        mism = _random_ops(c, 4000, 64, (1 << 46) - (1 << 20), 1 << 20, extreme)
    elif name == "rand32":                     # window at the top of the 28-bit space
        mism = _random_ops(c, 4000, 64, (1 << 28) - (1 << 19), 1 << 19, extreme)
    else:
        mism = _random_ops(c, 4000, 64, 0x10000, 0x40000, extreme)
    bad = [(i, e, g) for i, (e, g) in enumerate(zip(c.expected, c.responses)) if e != g]
    assert len(c.responses) == len(c.expected)
    assert bad == [], "{} disagreements, first {}".format(len(bad), bad[:3])
    assert mism == []
    faults = {e[1] for e in c.expected}
    assert {FAULT_NONE, FAULT_UNMAPPED, FAULT_INVALID, FAULT_BAD_PTE, FAULT_BUS_ERROR} <= faults
    assert sum(e[5] for e in c.expected) > len(c.expected) // 10
    assert m.hits + m.misses > 0


def test_cosim_bus_error_and_wrap_edge():
    """Directed, on the 46-bit build: a PTE whose paddr + length passes 2^46 is bad_pte (the
    window-end comparison must not wrap); a PTE beyond the port is bus_error without a read."""
    c = CoSim("wide46", seed=1, p_valid=1.0, p_ready=1.0, p_cmd=1.0, p_rdata=1.0,
              latency=(2, 2))
    m = c.model
    top = 1 << 46
    c.configure(pt_base=0x1000, pt_entries=1 << 20, dram_base=top - (1 << 20),
                dram_size=(1 << 20) - 1)
    m.map(1, top - 64, 4096)                   # end wraps past 2^46: must fault
    m.map(2, top - (1 << 20), 4096)            # inside the window
    m.map(3, top - 4096 - 64, 4096)            # ends 63 bytes before the window's end
    c.lookups([1, 2, 3])
    c.drain()
    reads = len(c.reads)
    c.lookups([(c.port_bytes - 0x1000) // 8])  # first PTE beyond the port
    c.drain()
    got = [r[1] for r in c.responses]
    assert got == [FAULT_BAD_PTE, FAULT_NONE, FAULT_NONE, FAULT_BUS_ERROR]
    assert [e[1:] for e in c.expected] == [r[1:] for r in c.responses]
    assert len(c.reads) == reads


def test_cosim_walk_timeout_drops_late_beats():
    """16-bit port (4 beats per PTE), timeout 300: a PTE whose beats come 400 cycles late
    is bus_error, and those beats are dropped rather than taken for the next walk's PTE."""
    slow = set()
    c = CoSim("sdr16", seed=2, p_valid=1.0, p_ready=1.0, p_cmd=1.0, p_rdata=1.0,
              latency=(2, 2), extra_delay=lambda addr: 400 if addr in slow else 0)
    m = c.model
    c.configure(pt_base=0x1000, pt_entries=64, dram_base=0x10000, dram_size=0x40000)
    m.map(5, 0x10040, 100, flags=1)
    m.map(6, 0x10080, 200, flags=2)
    first = m.pte_addr(5) // 2
    slow.update(range(first, first + 4))
    c.lookups([5])
    c.drain()
    slow.clear()
    c.lookups([6, 6, 5])
    c.drain()
    tags = [e[0] for e in c.expected]
    assert c.responses == [
        (tags[0], FAULT_BUS_ERROR, 0, 0, 0, 0),
        (tags[1], FAULT_NONE, 0x10080, 200, 2, 0),
        (tags[2], FAULT_NONE, 0x10080, 200, 2, 1),
        (tags[3], FAULT_NONE, 0x10040, 100, 1, 0)]
    assert c.counters()["faults"] == 1 and c.counters()["last_fault_code"] == FAULT_BUS_ERROR
