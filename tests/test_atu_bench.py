"""Migen testbench for the ATU core (DUT + native-port memory model + reference model sharing
one memory, with generator helpers for configuration, control pulses and lookup streams),
used by test_atu_core.py; and self-tests of the shared toolkit tests/stream_kit.py."""

import random

import pytest
from migen import Module
from migen.sim import run_simulation, passive as passive_gen
from litex.soc.interconnect import csr_bus, stream
from litex.soc.interconnect.csr_bus import CSRBankArray
from litedram.common import LiteDRAMNativePort

from gateware.atu.core import ATU
from gateware.atu.model import ATUModel, SparseMemory, Translation

from tests.stream_kit import (Collector, NativePortModel, SimTimeout, StreamProtocolError, send,
                        wait_until, watchdog)


class ATUBench:
    def __init__(self, seed=0, entries=8, policy="lru", dw=64, aw=14, vpn_width=12,
                 paddr_width=24, tag_width=8, max_length=4160, walk_timeout=4096,
                 valid_prob=1.0, ready_prob=1.0, latency=(1, 1), cmd_ready_prob=1.0,
                 rdata_prob=1.0, extra_delay=None, with_csr=False, atu_cls=ATU):
        self.rng = random.Random(seed)
        self.port = LiteDRAMNativePort("both", aw, dw)
        self.dut = atu_cls(self.port, entries=entries, policy=policy, vpn_width=vpn_width,
                       paddr_width=paddr_width, tag_width=tag_width, max_length=max_length,
                       walk_timeout=walk_timeout)
        self.top = self.dut
        if with_csr:
            self.top = CSRTop(self.dut)
        self.mem = SparseMemory()
        self.model = ATUModel(self.mem, port_bytes=self.dut.port_bytes, entries=entries,
                              policy=policy, vpn_width=vpn_width, paddr_width=paddr_width,
                              tag_width=tag_width, max_length=max_length)
        self.pm = NativePortModel(self.port, self.mem.read, random.Random(seed + 1), latency,
                                  cmd_ready_prob, rdata_prob, extra_delay)
        self.col = Collector(self.dut.source, random.Random(seed + 2), ready_prob)
        self.valid_prob = valid_prob
        self.sent = 0
        self.expected = []      # model Translations, in request order
        self.expected_reads = []  # native words the walker must read, in order (model lookups)
        self.tags = []

    # Generator helpers (use with ``yield from``) ----------------------------------------------

    def pulse(self, sig, vpn=None):
        if vpn is not None:
            yield self.dut.inval_vpn.eq(vpn)
        yield sig.eq(1)
        yield
        yield sig.eq(0)
        yield               # the pulse's effect is visible from here on

    def configure(self, **cfg):
        """Write configuration signals (and the model's registers); wait for the flush."""
        for k, v in cfg.items():
            yield getattr(self.dut, k).eq(v)
        self.model.configure(**cfg)
        yield
        yield
        yield

    def invalidate(self, vpn):
        self.model.invalidate(vpn)
        yield from self.pulse(self.dut.inval, vpn=vpn)

    def invalidate_all(self):
        self.model.invalidate_all()
        yield from self.pulse(self.dut.flush)

    def clear_counters(self):
        self.model.clear_counters()
        yield from self.pulse(self.dut.clear)

    def lookups(self, vpns, model=True):
        """Stream lookups into the DUT (random valid gaps); model results are recorded."""
        items = []
        for v in vpns:
            tag = self.rng.randrange(1 << len(self.dut.sink.tag))
            items.append(dict(vpn=v, tag=tag))
            self.tags.append(tag)
            if model:
                r = self.model.lookup(v)
                self.expected.append(r)
                if self.model.cycles(r, 0) > 1:             # the model walked: PTE words read
                    nb = self.port.data_width // 8
                    first = self.model.pte_addr(v) // nb
                    self.expected_reads += range(first, first + max(1, 8 // nb))
        yield from send(self.dut.sink, items, self.rng, self.valid_prob)
        self.sent += len(items)

    def drain(self, limit=200000):
        """Wait until every sent lookup is answered and no walk is in progress."""
        def done():
            return len(self.col.items) >= self.sent and not (yield self.dut.busy)
        yield from wait_until(done, limit, "ATU responses")

    def read_counters(self):
        d = self.dut
        out = {}
        for k in ("hits", "misses", "walks", "faults", "last_fault_code", "last_fault_vpn"):
            out[k] = yield getattr(d, k)
        return out

    # Results -------------------------------------------------------------------------------------

    def responses(self):
        return [Translation(r["fault"], r["paddr"], r["length"], r["flags"], bool(r["hit"]))
                for r in self.col.items]

    def disagreements(self):
        """List of (index, expected, got) where DUT responses differ from the model."""
        got = self.responses()
        bad = []
        for i, exp in enumerate(self.expected):
            g = got[i] if i < len(got) else None
            tag_ok = g is not None and self.col.items[i]["tag"] == self.tags[i]
            if g != exp or not tag_ok:
                bad.append((i, exp, g))
        if len(got) != len(self.expected):
            bad.append(("count", len(self.expected), len(got)))
        return bad

    def run(self, main, cycles=2_000_000, vcd=None):
        # Collector first: within a cycle it counts the cycle before main() reads the count.
        gens = [self.col.generator(), self.pm.generator(), main(), watchdog(cycles, "ATU bench")]
        run_simulation(self.top, gens, vcd_name=vcd)


class CSRTop(Module):
    """The ATU with ``add_csr()`` behind a LiteX CSR bank, driven through a CSR bus master
    (``bus.write``/``bus.read`` generators); ``addr[name]`` is each register's word address."""

    def __init__(self, atu):
        self.submodules.atu = atu
        atu.add_csr()
        self.submodules.csrs = CSRBankArray(self, lambda name, memory: 0 if name == "atu" else None,
                                            data_width=32, address_width=14)
        self.bus = csr_bus.Interface(data_width=32, address_width=14)
        self.submodules.ic = csr_bus.Interconnect(self.bus, self.csrs.get_buses())
        (_, csrs, mapaddr, rmap), = self.csrs.banks
        self.addr, offset = {}, mapaddr * self.csrs.paging
        for c in csrs:                      # the bank lays registers out in this order
            self.addr[c.name] = offset
            offset += (c.size + 31) // 32
        assert offset - mapaddr * self.csrs.paging == len(rmap.simple_csrs)


# Self-tests of the shared stream toolkit (tests/stream_kit.py) ---------------------------------


class _Loop(Module):
    """sink -> one-register pipeline stage -> source (LiteX PipeValid)."""

    def __init__(self):
        self.submodules.pipe = stream.PipeValid([("data", 16)])
        self.sink, self.source = self.pipe.sink, self.pipe.source


def test_kit_send_collect_roundtrip_under_throttling():
    dut = _Loop()
    rng = random.Random(3)
    items = [dict(data=rng.randrange(1 << 16)) for _ in range(300)]
    col = Collector(dut.source, random.Random(4), ready_prob=0.4)

    def main():
        yield from send(dut.sink, items, random.Random(5), valid_prob=0.5)
        yield from wait_until(lambda: _done(col, len(items)), 5000, "loop")

    run_simulation(dut, [col.generator(), main(), watchdog(20000)])
    assert [{"data": i["data"]} for i in col.items] == items
    gaps = [b["cycle"] - a["cycle"] for a, b in zip(col.items, col.items[1:])]
    assert max(gaps) > 1                                         # throttling really happened


def _done(col, n):
    return len(col.items) >= n
    yield


def _bad_source(ep, mode):
    yield ep.valid.eq(1)
    yield ep.data.eq(1)
    for _ in range(3):
        yield
    if mode == "drop":
        yield ep.valid.eq(0)
    else:
        yield ep.data.eq(2)
    for _ in range(3):
        yield


@pytest.mark.parametrize("mode, msg", [("drop", "valid dropped"), ("change", "payload changed")])
def test_kit_collector_catches_protocol_errors(mode, msg):
    ep = stream.Endpoint([("data", 8)])
    dut = Module()
    dut.comb += ep.first.eq(0)
    col = Collector(ep, ready_prob=0.0)
    with pytest.raises(StreamProtocolError, match=msg):
        run_simulation(dut, [col.generator(), _bad_source(ep, mode)])


def test_kit_native_port_model_in_order_latency_and_strict_ready():
    port = LiteDRAMNativePort("both", 10, 32)
    mem = SparseMemory()
    for a in range(64):
        mem.write(4 * a, (a * 0x01010101).to_bytes(4, "little"))
    pm = NativePortModel(port, mem.read, random.Random(1), latency=(3, 9), cmd_ready_prob=0.5,
                         rdata_prob=0.5)
    dut = Module()
    dut.comb += port.rdata.ready.eq(1)
    got, issued = [], []

    def main():
        for a in range(40):
            yield port.cmd.valid.eq(1)
            yield port.cmd.addr.eq(a)
            yield
            while not (yield port.cmd.ready):
                yield
            issued.append(pm.cycle)
        yield port.cmd.valid.eq(0)
        while len(got) < 40:
            yield

    def mon():
        while True:
            if (yield port.rdata.valid):
                got.append((pm.cycle, (yield port.rdata.data)))
            yield
    mon = passive_gen(mon)
    run_simulation(dut, [pm.generator(), main(), mon(), watchdog(5000)])
    assert [d for _, d in got] == [a * 0x01010101 for a in range(40)]
    assert all(c - i >= 3 for (c, _), i in zip(got, issued))
    assert pm.reads == list(range(40)) and pm.writes == []
    # strict: a master that is not ready for read data is an error
    port2 = LiteDRAMNativePort("both", 10, 32)
    pm2 = NativePortModel(port2, mem.read, latency=(1, 1))

    def one():
        yield port2.cmd.valid.eq(1)
        yield
        yield port2.cmd.valid.eq(0)
        for _ in range(5):
            yield
    with pytest.raises(StreamProtocolError, match="not ready"):
        run_simulation(Module(), [pm2.generator(), one()])


def test_kit_watchdog():
    def forever():
        while True:
            yield
    with pytest.raises(SimTimeout, match="within 50 cycles"):
        run_simulation(Module(), [forever(), watchdog(50, "forever")])


def test_kit_native_port_model_writes_with_byte_enables():
    port = LiteDRAMNativePort("both", 8, 32)
    mem = SparseMemory()
    mem.write(0, bytes(range(64)))
    pm = NativePortModel(port, mem.read, random.Random(2), latency=(1, 3), cmd_ready_prob=0.6,
                         write=mem.write, wdata_prob=0.5)
    dut = Module()
    dut.comb += port.rdata.ready.eq(1)
    got = []

    def cmds():
        for addr, we in ((1, 1), (2, 1), (1, 0), (5, 0)):
            yield port.cmd.valid.eq(1)
            yield port.cmd.we.eq(we)
            yield port.cmd.addr.eq(addr)
            yield
            while not (yield port.cmd.ready):
                yield
        yield port.cmd.valid.eq(0)
        yield port.cmd.we.eq(0)
        while len(got) < 2:
            yield

    def wdata():
        for data, we in ((0xAABBCCDD, 0b0101), (0x11223344, 0b1111)):
            yield port.wdata.valid.eq(1)
            yield port.wdata.data.eq(data)
            yield port.wdata.we.eq(we)
            yield
            while not (yield port.wdata.ready):
                yield
        yield port.wdata.valid.eq(0)

    @passive_gen
    def mon():
        while True:
            if (yield port.rdata.valid):
                got.append((yield port.rdata.data))
            yield

    # (The read of word 1 sees old or new data depending on whether its write beat was taken
    # before the read command: not checked.)
    run_simulation(dut, [pm.generator(), wdata(), cmds(), mon(), watchdog(2000)])
    assert mem.read(4, 4) == bytes([0xDD, 5, 0xBB, 7])          # byte enables 0b0101
    assert mem.read(8, 4) == (0x11223344).to_bytes(4, "little")
    assert got[1] == int.from_bytes(bytes(range(20, 24)), "little")
    assert pm.writes == [1, 2] and pm.reads == [1, 5]
