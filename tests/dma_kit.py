"""DMA test kit: write-port memory model, test codec transform, DUT runner.

Reads go through ``stream_kit.NativePortModel`` (the ATU helper's read-port model); writes
through ``WritePortModel`` below, which performs byte-enabled writes on the same bytearray.
"""

import random

from migen import Module, Signal, If, Constant, Replicate, run_simulation
from migen.sim import passive
from migen.fhdl.tools import list_targets, list_inputs, lower_specials
from migen.fhdl.simplify import MemoryToArray
from migen.genlib.resetsync import AsyncResetSynchronizer
from migen.sim.core import DummyAsyncResetSynchronizer
from litedram.common import LiteDRAMNativePort
from litex.soc.interconnect import stream

from gateware.dma.core import DMA
from gateware.dma.layouts import packed_layout
from gateware.dma.model import (DMAConfig, DMAModel, HostLine, Completion,
                                codec_transforms)
from gateware.dma.codec import CodecCDC, PackedCodec
from gateware.codec.compressor import KVCompressor
from gateware.codec.decompressor import KVDecompressor
from tests.stream_kit import Collector, NativePortModel, send, watchdog, StreamProtocolError


def fast_fragment(module):
    """The module's fragment, memories and specials lowered, comb statements in dependency
    order (simulation speed only; the hardware is unchanged).

    The Migen simulator re-runs the whole comb list until no signal changes, so every
    statement listed before one it depends on costs a full extra pass. Here statements are
    topologically ordered: strongly connected groups and statements driving a common signal
    keep their original relative order, so the fixed point is the same.
    """
    frag = module.get_fragment()
    MemoryToArray().transform_fragment(None, frag)
    lower_specials({AsyncResetSynchronizer: DummyAsyncResetSynchronizer}, frag)
    stmts = frag.comb
    n = len(stmts)
    tgt = [set(list_targets(x)) for x in stmts]
    inp = [set(list_inputs(x)) for x in stmts]
    drivers = {}
    for k, ts in enumerate(tgt):
        for t in ts:
            drivers.setdefault(t, []).append(k)
    succ = [set() for _ in range(n)]
    for k in range(n):
        for sig in inp[k]:
            for j in drivers.get(sig, ()):
                if j != k:
                    succ[j].add(k)
    for ks in drivers.values():
        for a, c in zip(ks, ks[1:]):
            succ[a].add(c)
    # Tarjan's strongly connected components (iterative), found in reverse topological order.
    index, low, on, stack, sccs = {}, {}, set(), [], []
    for root in range(n):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        work = [(root, iter(sorted(succ[root])))]
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(succ[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    sccs.append(sorted(comp))
    frag.comb = [stmts[k] for comp in reversed(sccs) for k in comp]
    return frag


class WritePortModel:
    """Passive LiteDRAM native write port on ``mem`` (bytearray, byte address = word * dw/8).

    Command ``ready`` with probability ``cmd_ready_prob``; write data is accepted in command
    order, ``wdata.ready`` with probability ``wdata_ready_prob`` once the command is queued.
    ``stall(cycle) -> bool``: True keeps both readies low (a dead port for a while).
    """

    def __init__(self, port, mem, rng=None, cmd_ready_prob=1.0, wdata_ready_prob=1.0,
                 stall=None):
        self.port, self.mem = port, mem
        self.rng = rng or random.Random(0)
        self.cmd_ready_prob, self.wdata_ready_prob = cmd_ready_prob, wdata_ready_prob
        self.stall = stall
        self.cycle = 0
        self.words = 0

    @passive
    def generator(self):
        port, rng = self.port, self.rng
        nb = port.data_width // 8
        queue = []
        cmd_ready = wd_ready = False
        while True:
            self.cycle += 1
            if cmd_ready and (yield port.cmd.valid):
                if not (yield port.cmd.we):
                    raise StreamProtocolError("read command on the write port")
                queue.append((yield port.cmd.addr))
            if wd_ready and (yield port.wdata.valid):
                addr = queue.pop(0)
                data = (yield port.wdata.data).to_bytes(nb, "little")
                we = yield port.wdata.we
                for i in range(nb):
                    if we >> i & 1:
                        self.mem[addr * nb + i] = data[i]
                self.words += 1
            dead = self.stall is not None and self.stall(self.cycle)
            cmd_ready = not dead and rng.random() < self.cmd_ready_prob
            wd_ready = not dead and bool(queue) and rng.random() < self.wdata_ready_prob
            yield port.cmd.ready.eq(cmd_ready)
            yield port.wdata.ready.eq(wd_ready)
            yield


class XorTransform(Module):
    """Test codec: XORs every byte with ``key``, one register stage, same beat sizes.

    ``stall`` (driven by the test) holds the stage. ``done`` pulses after the page's last
    input beat; as a decompressor (``poison`` set) ``error`` is then set when the page's
    first byte equals ``poison`` (after earlier beats were emitted). ``xor_model`` is its
    reference.
    """

    def __init__(self, dw, key, poison=None):
        self.sink = sink = stream.Endpoint(packed_layout(dw))
        self.source = source = stream.Endpoint(packed_layout(dw))
        self.stall = Signal()
        self.error = Signal()
        k = Replicate(Constant(key & 0xFF, 8), dw // 8)
        bad = Signal()
        self.comb += sink.ready.eq(~self.stall & (~source.valid | source.ready))
        self.sync += [
            If(source.valid & source.ready, source.valid.eq(0)),
            If(sink.valid & sink.ready,
                source.valid.eq(1),
                source.data.eq(sink.data ^ k),
                source.nbytes.eq(sink.nbytes),
                source.last.eq(sink.last),
            ),
        ]
        self.done = Signal()
        self.sync += self.done.eq(sink.valid & sink.ready & sink.last)
        if poison is not None:
            self.sync += If(sink.valid & sink.ready,
                If(sink.first, bad.eq(sink.data[:8] == poison)),
                If(sink.last & (bad | (sink.first & (sink.data[:8] == poison))),
                   self.error.eq(1)),
            )


def xor_model(key, poison=None):
    def fn(data):
        if poison is not None and data[0] == poison:
            return b"", True
        return bytes(x ^ key for x in data), False
    return fn


def desc_item(d):
    return dict(op=d.op, host=int(d.host), tag=d.tag, src=d.src, dst=d.dst, length=d.length,
                cap=d.cap, last=int(d.last))


class Bench:
    """A DMA with memory models, test codecs, drivers and collectors; ``run()`` simulates."""

    def __init__(self, dw=32, aw_bytes=1 << 20, seed=0, depth=16, cq_depth=16, codecs=True,
                 timeout=4096, stalls=True, latency=(1, 8), kv=None, stall_p=0.3,
                 codec_period=None, **kw):
        self.rng = random.Random(seed)
        nb = dw // 8
        aw = (aw_bytes // nb - 1).bit_length()
        self.rport = LiteDRAMNativePort("read", aw, dw)
        self.wport = LiteDRAMNativePort("write", aw, dw)
        if kv is not None:                      # (mode, T, D): the real KV codec cores
            self.comp = PackedCodec(KVCompressor(kv[0], dw=dw, T=kv[1], D=kv[2]))
            self.decomp = PackedCodec(KVDecompressor(kv[0], dw=dw, T=kv[1], D=kv[2]))
            comp_fn, decomp_fn = codec_transforms(*kv)
        else:
            self.comp = XorTransform(dw, 0xA5) if codecs else None
            self.decomp = XorTransform(dw, 0x3C, poison=0xFF) if codecs else None
            comp_fn = xor_model(0xA5) if codecs else None
            decomp_fn = xor_model(0x3C, 0xFF) if codecs else None
        # codec_period: the codecs run on their own clock ("codec", this many time units
        # against sys's 10) behind CodecCDC, as on the DDR3 boards.
        self.clocks = {"sys": 10}
        comp, decomp = self.comp, self.decomp
        if codec_period is not None:
            self.clocks["codec"] = codec_period
            comp, decomp = (None if x is None else CodecCDC(x) for x in (comp, decomp))
        self.dut = DMA(self.rport, self.wport, compressor=comp, decompressor=decomp,
                       depth=depth, cq_depth=cq_depth, timeout=timeout, **kw)
        self.mem = bytearray(self.rng.getrandbits(8) for _ in range(aw_bytes))
        self.initial = bytes(self.mem)
        self.stalls = stalls
        self.p = 1.0 - stall_p if stalls else 1.0     # ready / valid probability per cycle
        self.latency = latency
        self.cfg = DMAConfig(dram_base=0, dram_size=aw_bytes, host_base=0x1_0000_0000,
                             host_size=1 << 24, len_width=self.dut.len_width, depth=depth,
                             compress=comp_fn, decompress=decomp_fn)
        self.read_delay = None      # word address -> extra cycles (stream_kit semantics)
        self.write_stall = None     # cycle -> bool
        self.host_stall = None      # cycle -> bool
        self.codec_stall = None     # cycle -> bool (test transforms only)

    def expected(self, descs, timeouts=None):
        mem = bytearray(self.initial)
        res = DMAModel(mem, self.cfg).run(descs, timeouts)
        return mem, res

    def run(self, descs, max_cycles=200000, extra=(), wait_jobs=None):
        dut, rng = self.dut, self.rng
        st, p = self.stalls, self.p
        self.reader = NativePortModel(self.rport, lambda a, n: bytes(self.mem[a:a + n]),
                                      rng=random.Random(rng.random()), latency=self.latency,
                                      cmd_ready_prob=p, rdata_prob=p,
                                      extra_delay=self.read_delay)
        self.writer = WritePortModel(self.wport, self.mem, rng=random.Random(rng.random()),
                                     cmd_ready_prob=p, wdata_ready_prob=p, stall=self.write_stall)
        self.comps = Collector(dut.completion, rng=random.Random(rng.random()),
                               ready_prob=0.5 if st else 1.0)
        self.hosts = HostCollector(dut.host_source, random.Random(rng.random()), p,
                                   self.host_stall)
        n_jobs = wait_jobs or sum(1 for d in descs if d.last)
        self.done_cycle = None

        def driver():
            for k, v in self.cfg_signals().items():
                yield k.eq(v)
            yield
            yield from send(dut.sink, [desc_item(d) for d in descs],
                            rng=random.Random(rng.random()), valid_prob=p)
            while len(self.comps.items) < n_jobs:
                yield
            # let outputs of abandoned jobs drain, then stop
            for _ in range(50):
                yield
            self.done_cycle = self.comps.items[-1]["cycle"]

        def codec_stall():
            xs = [x for x in (self.comp, self.decomp) if isinstance(x, XorTransform)]
            for x in xs:
                yield x.stall.eq(0)
            cycle = 0
            while xs:
                cycle += 1
                dead = self.codec_stall is not None and self.codec_stall(cycle)
                for x in xs:
                    yield x.stall.eq(int(dead or rng.random() >= p))
                yield
        gens = [driver(), self.reader.generator(), self.writer.generator(),
                self.comps.generator(), self.hosts.generator(), passive(codec_stall)(),
                watchdog(max_cycles, "DMA jobs")] + list(extra)
        run_simulation(fast_fragment(dut), gens, clocks=self.clocks)
        comps = [Completion(c["tag"], c["status"], c["bytes"]) for c in self.comps.items]
        return comps, self.hosts.lines

    def cfg_signals(self):
        d, c = self.dut, self.cfg
        return {d.dram_base: c.dram_base, d.dram_size: c.dram_size,
                d.host_base: c.host_base, d.host_size: c.host_size}


class HostCollector(Collector):
    """Collector of host lines (``HostLine``), ready forced low while ``stall(cycle)``."""

    def __init__(self, ep, rng, ready_prob, stall=None):
        super().__init__(ep, rng, ready_prob)
        self.stall = stall
        if stall is not None:
            base = self.rng.random
            self.rng = random.Random()
            self.rng.random = lambda: 2.0 if stall(self.cycle + 1) else base()

    @property
    def lines(self):
        return [HostLine(x["addr"], x["data"].to_bytes(64, "little"), x["nbytes"], x["tag"])
                for x in self.items]


def assert_memory(mem, expected, dirty=(), initial=None):
    """Every DRAM byte equals the model's, except inside ``dirty`` DRAM ranges."""
    exp = bytearray(expected)
    got = bytearray(mem)
    for kind, a, b in dirty:
        if kind == "dram":
            exp[a:b] = bytes(b - a)
            got[a:b] = bytes(b - a)
    if got != exp:
        bad = [i for i in range(len(exp)) if got[i] != exp[i]]
        raise AssertionError("{} DRAM bytes differ from the model, first at 0x{:x}: got {:#x} "
                             "expected {:#x}{}".format(len(bad), bad[0], got[bad[0]], exp[bad[0]],
                             "" if initial is None else " (initial {:#x})".format(initial[bad[0]])))


def assert_host_lines(got, expected, dirty=()):
    """Host lines equal the model's, in order, except lines inside a ``dirty`` host range
    (a failed descriptor's destination): those may appear, but only inside that range."""
    ranges = [(a, b) for kind, a, b in dirty if kind == "host"]

    def inside(line):
        return any(a <= line.addr and line.addr + line.nbytes <= b for a, b in ranges)

    def outside(line):
        return not any(a <= line.addr < b for a, b in ranges)

    for line in got:
        assert inside(line) or outside(line), "host line {} crosses a failed range".format(line)
    assert [l for l in got if outside(l)] == [l for l in expected if outside(l)]
