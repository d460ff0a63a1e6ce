"""DMA core: parameter checks, Verilog conversion, registers through a LiteX CSR bank,
copy throughput."""

import random
import shutil
import subprocess

import pytest
from migen import Module, run_simulation
from migen.fhdl.verilog import convert
from litedram.common import LiteDRAMNativePort
from litex.soc.interconnect import csr_bus
from litex.soc.interconnect.csr_bus import CSRBankArray

from gateware.dma.core import DMA
from gateware.dma.model import (Descriptor, Completion, OP_COPY, ST_OK, ST_FAULT, DMAConfig,
                                DMAModel)
from tests.dma_kit import XorTransform, WritePortModel, assert_memory, fast_fragment
from tests.stream_kit import NativePortModel, Collector, send, watchdog


def ports(dw=32, aw=16, rmode="read", wmode="write"):
    return LiteDRAMNativePort(rmode, aw, dw), LiteDRAMNativePort(wmode, aw, dw)


@pytest.mark.parametrize("kw, match", [
    (dict(dw=16), "power of two in 32..512"),
    (dict(dw=1024), "power of two in 32..512"),
    (dict(depth=1), "depth"),
    (dict(cq_depth=0), "cq_depth"),
    (dict(tag_width=0), "tag_width"),
    (dict(len_width=6), "len_width"),
    (dict(len_width=32), "len_width"),
    (dict(timeout=-1), "timeout"),
    (dict(timeout=1 << 32), "timeout"),
    (dict(haddr_width=8), "haddr_width"),
    (dict(rmode="write"), "rport mode"),
    (dict(wmode="read"), "wport mode"),
    (dict(decompressor=object()), "decompressor"),
])
def test_bad_parameters(kw, match):
    kw = dict(kw)
    rp, wp = ports(kw.pop("dw", 32), rmode=kw.pop("rmode", "read"), wmode=kw.pop("wmode", "write"))
    with pytest.raises(ValueError, match=match):
        DMA(rp, wp, **kw)


def test_bad_ports():
    rp, wp = ports()
    with pytest.raises(ValueError, match="LiteDRAMNativePort"):
        DMA(object(), wp)
    with pytest.raises(ValueError, match="same data and address widths"):
        DMA(rp, LiteDRAMNativePort("write", 16, 64))


@pytest.mark.parametrize("dw, codecs", [(32, True), (128, False), (512, False)])
def test_converts_to_verilog(dw, codecs, tmp_path):
    """Converts; Verilator lint (verilator required) waives only the warning classes Migen's
    Verilog style always produces."""
    rp, wp = ports(dw, rmode="both", wmode="both")
    kw = dict(compressor=XorTransform(dw, 0x11), decompressor=XorTransform(dw, 0x22, 0xFF)) \
        if codecs else {}
    dut = DMA(rp, wp, **kw)
    dut.add_csr()
    ios = {dut.sink.valid, dut.sink.ready, dut.sink.src, dut.sink.dst, dut.completion.valid,
           dut.host_source.valid, dut.host_source.ready, dut.host_source.data,
           rp.cmd.valid, rp.cmd.ready, rp.cmd.addr, rp.rdata.valid, rp.rdata.data,
           wp.cmd.valid, wp.cmd.ready, wp.wdata.valid, wp.wdata.ready, wp.wdata.we,
           wp.wdata.data}
    v = str(convert(dut, ios=ios, name="dma"))
    assert "module dma" in v
    # The lint is part of this test: a missing verilator is a broken environment (make test
    # installs it through scripts/setup.sh), never a pass.
    assert shutil.which("verilator"), \
        "verilator is not on PATH: the Verilog lint cannot run (scripts/setup.sh installs it)"
    (tmp_path / "dma.v").write_text(v)
    waive = ["-Wno-" + w for w in ("WIDTH", "COMBDLY", "BLKSEQ", "INITIALDLY", "DECLFILENAME",
                                   "UNUSEDSIGNAL", "UNUSED")]
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *waive, "--top-module", "dma",
                        str(tmp_path / "dma.v")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_csr_names():
    rp, wp = ports()
    dut = DMA(rp, wp)
    dut.add_csr()
    names = [c.name for c in dut.get_csrs()]
    assert names == ["src", "dst", "length", "cap", "push", "status", "completion",
                     "completion_bytes", "pop", "dram_base", "dram_size", "host_base",
                     "host_size", "timeout"]


class CSRTop(Module):
    """The DMA with ``add_csr()`` behind a LiteX CSR bank (as tests/test_atu_bench.py)."""

    def __init__(self, dma):
        self.submodules.dma = dma
        dma.add_csr()
        self.submodules.csrs = CSRBankArray(self, lambda name, memory: 0 if name == "dma" else None,
                                            data_width=32, address_width=14)
        self.bus = csr_bus.Interface(data_width=32, address_width=14)
        self.submodules.ic = csr_bus.Interconnect(self.bus, self.csrs.get_buses())
        (_, csrs, mapaddr, rmap), = self.csrs.banks
        self.addr, self.size, offset = {}, {}, mapaddr * self.csrs.paging
        for c in csrs:
            self.addr[c.name] = offset
            self.size[c.name] = (c.size + 31) // 32
            offset += self.size[c.name]


def test_csr_push_and_pop():
    """Descriptors queued and completions popped only through CSR bus accesses."""
    dw = 32
    rp, wp = ports(dw, aw=14)
    top = CSRTop(DMA(rp, wp))
    bus, A, S = top.bus, top.addr, top.size
    rng = random.Random(3)
    mem = bytearray(rng.getrandbits(8) for _ in range(1 << 16))
    initial = bytes(mem)
    descs = [Descriptor(OP_COPY, 0x1003, 0x8001, 300, tag=0x21, last=False),
             Descriptor(OP_COPY, 0x2000, 0x9005, 17, tag=0x22),
             Descriptor(OP_COPY, 0xFFF0, 0xA000, 64, tag=0x23),           # fault: past window
             Descriptor(OP_COPY, 0x3001, 0xB002, 1025, tag=0x24)]
    expect = bytearray(initial)
    res = DMAModel(expect, DMAConfig(dram_base=0, dram_size=0xF000, depth=16)).run(descs)
    got = []

    def write(name, value):
        n = S[name]
        for k in range(n):                     # big-endian word order
            yield from bus.write(A[name] + k, (value >> (32 * (n - 1 - k))) & 0xFFFFFFFF)
        yield                                  # let it land
        yield

    def read(name):
        v = 0
        for k in range(S[name]):
            yield bus.adr.eq(A[name] + k)
            yield
            yield
            v = (v << 32) | (yield bus.dat_r)
        return v

    def main():
        yield from write("dram_size", 0xF000)
        for d in descs:
            for f in ("src", "dst", "length"):
                yield from write(f, getattr(d, f))
            yield from write("push", d.op | d.host << 2 | d.last << 3 | d.tag << 8)
        status = yield from read("status")
        assert status >> 25 & 1 == 0           # nothing dropped
        while len(got) < 3:
            c = yield from read("completion")
            if c & 1:
                nbytes = yield from read("completion_bytes")
                got.append(Completion(c >> 8 & 0xFF, c >> 4 & 7, nbytes))
                yield from write("pop", 1)
            else:
                for _ in range(20):
                    yield
        status = yield from read("status")
        assert status & 0xFFFFFF == 0 and status >> 24 & 1 == 0   # queues empty, idle

    reader = NativePortModel(rp, lambda a, n: bytes(mem[a:a + n]), rng=random.Random(1))
    writer = WritePortModel(wp, mem, rng=random.Random(2))
    run_simulation(fast_fragment(top), [main(), reader.generator(), writer.generator(),
                         watchdog(20000, "CSR jobs")])
    assert got == res.completions
    assert [c.status for c in got] == [ST_OK, ST_FAULT, ST_OK]
    assert_memory(mem, expect, initial=initial)


@pytest.mark.parametrize("dw", [32, 128])
def test_copy_throughput(dw):
    """A long copy (512 port words), no back-pressure, fixed 8-cycle read latency: port
    words per cycle, aligned and unaligned."""
    B = dw // 8
    rp, wp = ports(dw, aw=20 - (B.bit_length() - 1))
    dut = DMA(rp, wp)
    mem = bytearray(random.Random(dw).getrandbits(8) for _ in range(1 << 20))
    n = 512 * B                                # 512 port words
    results = {}
    comps = Collector(dut.completion)
    cases = [("aligned", 0x1000, 0x80000), ("unaligned", 0x1003, 0x80005)]

    def main():
        yield dut.dram_size.eq(1 << 20)
        yield
        for name, src, dst in cases:
            start = comps.cycle
            yield from send(dut.sink, [dict(op=OP_COPY, src=src, dst=dst, length=n, last=1)])
            while len(comps.items) < len(results) + 1:
                yield
            results[name] = comps.items[-1]["cycle"] - start
            assert mem[dst:dst + n] == mem[src:src + n]

    reader = NativePortModel(rp, lambda a, k: bytes(mem[a:a + k]), latency=(8, 8))
    writer = WritePortModel(wp, mem)
    run_simulation(fast_fragment(dut), [main(), reader.generator(), writer.generator(), comps.generator(),
                         watchdog(400000, "throughput")])
    words = n // B
    for name, cycles in results.items():
        print("DMA copy dw={} {}: {} bytes in {} cycles = {:.3f} words/cycle, {:.2f} bytes/cycle"
              .format(dw, name, n, cycles, words / cycles, n / cycles))
        assert words / cycles > 0.95, (name, cycles)


def test_csr_push_into_full_queue_is_dropped_and_flagged():
    rp, wp = ports(32, aw=14)
    top = CSRTop(DMA(rp, wp, depth=2))
    bus, A = top.bus, top.addr
    mem = bytearray(1 << 16)
    got = {}

    def write(name, value):
        yield from bus.write(A[name] + top.size[name] - 1, value)   # values fit the last word
        yield
        yield

    def read(name):
        yield bus.adr.eq(A[name])
        yield
        yield
        return (yield bus.dat_r)

    def main():
        yield from write("dram_size", 0xF000)
        for k in range(4):                     # one starts, two wait, the fourth is dropped
            yield from write("src", 0x100)
            yield from write("dst", 0x8000)
            yield from write("length", 1000)
            yield from write("push", 1 << 3 | k << 8)
        got["status"] = yield from read("status")
        for _ in range(1200):
            yield
        got["cq"] = (yield from read("status")) >> 16 & 0xFF

    reader = NativePortModel(rp, lambda a, n: bytes(mem[a:a + n]))
    writer = WritePortModel(wp, mem)
    run_simulation(fast_fragment(top), [main(), reader.generator(), writer.generator(),
                                        watchdog(20000, "CSR jobs")])
    assert got["status"] >> 25 & 1 == 1        # dropped
    assert got["status"] & 0xFF == 2            # two descriptors waiting
    assert got["cq"] == 3                       # three completions
