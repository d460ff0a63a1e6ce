"""Verilator co-simulation of the codec cores through pyverilator: the Verilog that Migen
emits, compiled by Verilator, driven from Python with seeded random valid/ready stalls, must
equal the reference byte for byte on real trace pages and random/extreme pages.

One Verilog top holds every core under test (one Verilator build per session), cached in
build/codec-cosim/<hash of the Verilog>/."""
import random
from pathlib import Path

import numpy as np
import pytest
from migen import Module, Signal
from migen.fhdl.verilog import convert

from gateware.codec import reference as R
from gateware.codec.core import KVCompressor, KVDecompressor
from tests.codec_fixtures import trace_pages  # noqa: F401 (pytest fixture)
from tests.codec_fixtures import (CORRUPT_CASES, beats_bytes, bytes_beats, corrupt,
                                  extreme_page, page_beats, random_pages)

from soc.sim.model import cosim_model

ROOT = Path(__file__).resolve().parent.parent
DW = 64
CORES = [("c", KVCompressor, "int8_delta"), ("d", KVDecompressor, "int8_delta"),
         ("c", KVCompressor, "kivi_k4v3"), ("d", KVDecompressor, "kivi_k4v3"),
         ("c", KVCompressor, "raw"), ("d", KVDecompressor, "kivi_k3v2"),
         ("c", KVCompressor, "kivi_z16v6"), ("d", KVDecompressor, "kivi_z16v6"),
         ("c", KVCompressor, "kivi_z12v8"), ("d", KVDecompressor, "kivi_z12v8"),
         ("c", KVCompressor, "kivi_l16v14"), ("d", KVDecompressor, "kivi_l16v14"),
         ("c", KVCompressor, "kivi_z10v9"), ("d", KVDecompressor, "kivi_z10v9"),
         ("c", KVCompressor, "kivi_n10v9"), ("d", KVDecompressor, "kivi_n10v9")]


def _prefix(kind, mode):
    return f"{kind}_{mode}_"


class CoSimTop(Module):
    def __init__(self):
        self.ios = set()
        for kind, cls, mode in CORES:
            dut = cls(mode, dw=DW)
            setattr(self.submodules, f"{kind}_{mode}", dut)
            p = _prefix(kind, mode)

            def port(name, width=1, out=False, dst=None):
                s = Signal(width, name=p + name)
                self.ios.add(s)
                self.comb += (s.eq(dst) if out else dst.eq(s))

            port("sink_valid", dst=dut.sink.valid)
            port("sink_last", dst=dut.sink.last)
            port("sink_data", DW, dst=dut.sink.data)
            port("sink_ready", out=True, dst=dut.sink.ready)
            port("source_valid", out=True, dst=dut.source.valid)
            port("source_last", out=True, dst=dut.source.last)
            port("source_data", DW, out=True, dst=dut.source.data)
            port("source_ready", dst=dut.source.ready)
            if kind == "c":
                port("sink_attn_sink", dst=dut.sink.attn_sink)
            if kind == "d":
                port("done", out=True, dst=dut.done)
                port("error", 3, out=True, dst=dut.error)


@pytest.fixture(scope="session")
def cosim():
    top = CoSimTop()
    verilog = str(convert(top, ios=top.ios, name="codec_cosim"))
    return cosim_model(verilog, "codec_cosim", ROOT / "build" / "codec-cosim")


class Driver:
    """Cycle-by-cycle driving of one core of the co-sim top."""

    def __init__(self, sim, kind, mode):
        self.sim, self.p = sim, _prefix(kind, mode)
        self.kind = kind

    def run(self, frames, seed, p_valid=0.7, p_ready=0.7, max_cycles=400_000, sink=None):
        sim, p = self.sim, self.p
        rng = random.Random(seed)
        sink = sink if sink is not None else [0] * len(frames)
        items = [(d, i == len(f) - 1, s) for f, s in zip(frames, sink) for i, d in enumerate(f)]
        k, out, cur, status, stalls = 0, [], [], [], 0
        sim[p + "sink_valid"] = 0
        sim["sys_rst"] = 1
        for _ in range(2):
            sim["sys_clk"] = 1
            sim.eval()
            sim["sys_clk"] = 0
            sim.eval()
        sim["sys_rst"] = 0
        expect_status = len(frames) if self.kind == "d" else 0
        valid = 0
        for cyc in range(max_cycles):
            if not valid and k < len(items) and rng.random() < p_valid:
                valid = 1
            if valid:
                sim[p + "sink_data"] = items[k][0]
                sim[p + "sink_last"] = int(items[k][1])
                if self.kind == "c":
                    sim[p + "sink_attn_sink"] = int(items[k][2])
            sim[p + "sink_valid"] = valid
            rdy = int(rng.random() < p_ready)
            sim[p + "source_ready"] = rdy
            sim.eval()
            if valid and sim[p + "sink_ready"]:
                k += 1
                valid = 0
            elif valid:
                stalls += 1
            if rdy and sim[p + "source_valid"]:
                cur.append(sim[p + "source_data"])
                if self.kind == "c" and sim[p + "source_last"]:
                    out.append(cur)
                    cur = []
            if self.kind == "d" and sim[p + "done"]:
                status.append((sim[p + "error"], cur))
                cur = []
            sim["sys_clk"] = 1
            sim.eval()
            sim["sys_clk"] = 0
            sim.eval()
            if k == len(items) and (len(out) == len(frames) or len(status) == expect_status > 0):
                break
        else:
            raise AssertionError("co-simulation timed out")
        return out if self.kind == "c" else status, stalls


def _pages(trace_pages, n, seed):
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(trace_pages), n, replace=False)
    return np.concatenate([trace_pages[idx], random_pages(3, seed=seed), extreme_page()[None]])


@pytest.mark.parametrize("mode", ["int8_delta", "kivi_k4v3", "raw", "kivi_z16v6", "kivi_z12v8",
                                  "kivi_l16v14", "kivi_z10v9", "kivi_n10v9"])
def test_cosim_compressor(cosim, trace_pages, mode):
    pages = _pages(trace_pages, 24, seed=len(mode))
    sink = np.arange(len(pages)) % 5 == 0 if mode.startswith("kivi") else None
    out, _ = Driver(cosim, "c", mode).run([page_beats(p, DW) for p in pages], seed=11,
                                          sink=sink)
    exp = R.compress_batch(pages, mode, sink=False if sink is None else sink)
    assert [beats_bytes(f, DW) for f in out] == exp


@pytest.mark.parametrize("mode", ["int8_delta", "kivi_k4v3", "kivi_z16v6"])
def test_cosim_compressor_no_input_stall(cosim, trace_pages, mode):
    pages = _pages(trace_pages, 6, seed=2)
    out, stalls = Driver(cosim, "c", mode).run([page_beats(p, DW) for p in pages], seed=1,
                                               p_valid=1.0, p_ready=1.0)
    assert [beats_bytes(f, DW) for f in out] == R.compress_batch(pages, mode)
    assert stalls == 0


@pytest.mark.parametrize("mode", ["int8_delta", "kivi_k4v3", "kivi_k3v2", "kivi_z16v6",
                                  "kivi_z12v8", "kivi_l16v14", "kivi_z10v9", "kivi_n10v9"])
def test_cosim_decompressor(cosim, trace_pages, mode):
    pages = _pages(trace_pages, 24, seed=len(mode) + 1)
    sink = np.arange(len(pages)) % 4 == 1 if mode.startswith("kivi") else False
    blobs = R.compress_batch(pages, mode, sink=sink)
    cases = [(b, None) for b in blobs] + [corrupt(blobs[3], c) for c in CORRUPT_CASES]
    status, _ = Driver(cosim, "d", mode).run([bytes_beats(b, DW) for b, _ in cases], seed=12)
    exp = [R.decompress(b) for b in blobs]
    assert len(status) == len(cases)
    for i, ((blob, kind), (err, beats)) in enumerate(zip(cases, status)):
        out = beats_bytes(beats, DW)
        assert len(out) <= 4096
        if kind is None:
            assert err == 0 and out == exp[i].tobytes()
        else:
            assert err == R.ERROR_KINDS[kind]
            if kind == "header":
                assert out == b""
