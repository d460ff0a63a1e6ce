"""Migen testbench for the ATU core: DUT + native-port memory model + reference model sharing
one memory, with generator helpers for configuration, control pulses and lookup streams."""

import random

from migen import Module
from migen.sim import run_simulation
from litex.soc.interconnect import csr_bus
from litex.soc.interconnect.csr_bus import CSRBankArray
from litedram.common import LiteDRAMNativePort

from gateware.atu.core import ATU
from gateware.atu.model import ATUModel, SparseMemory, Translation

from stream_kit import Collector, NativePortModel, send, wait_until, watchdog


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
        self.tags = []

    # Generator helpers (use with ``yield from``) ----------------------------------------------

    def pulse(self, sig, value=None, vpn=None):
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
                self.expected.append(self.model.lookup(v))
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
