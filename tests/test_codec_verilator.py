"""Verilator co-simulation of the codec cores through pyverilator: the Verilog that Migen
emits, compiled by Verilator, driven from Python with seeded random valid/ready stalls, must
equal the reference byte for byte on real trace pages and random/extreme pages.

Every mode in gateware (``core.GATEWARE_MODES``) runs here with both cores at the real page
(T = 16, D = 64) and the SoC's width (64 bits), and the SoC's mode also at the boards' width
(32 bits). One Verilog top holds every core under test (one Verilator build per session),
cached in build/codec-cosim/<hash of the Verilog>/."""
import random
from pathlib import Path

import numpy as np
import pytest
from migen import Module, Signal
from migen.fhdl.verilog import convert

from gateware.codec import reference as R
from gateware.codec import ref_format as RF
from gateware.codec.compressor import KVCompressor
from gateware.codec.core import GATEWARE_MODES
from gateware.codec.decompressor import KVDecompressor
from tests.codec_fixtures import trace_pages  # noqa: F401 (pytest fixture)
from tests.codec_fixtures import (CORRUPT_CASES, beats_bytes, bytes_beats, corrupt,
                                  extreme_page, page_beats, random_pages, reseal)

from soc.sim.model import cosim_model

ROOT = Path(__file__).resolve().parent.parent
DW = 64                  # every gateware mode's width (kivi_n10v9 runs at 64 only)
SIM_DW = 128             # the simulated SoC's DMA / codec width with its DDR3 model
BOARD_DW = 32            # the board builds' (soc/board.py), kivi_k4v3 only
# (mode, dw) of every case: each gateware mode at 64 bits, the SoC's and the boards' mode
# (kivi_k4v3) at theirs
CASES = [(m, DW) for m in GATEWARE_MODES] + [("kivi_k4v3", SIM_DW), ("kivi_k4v3", BOARD_DW)]
IDS = [f"{m}-{dw}" for m, dw in CASES]
PAGE_BYTES = 2 * 16 * 64 * 2


def _prefix(kind, mode, dw):
    return f"{kind}_{mode}_{dw}_"


class CoSimTop(Module):
    def __init__(self):
        self.ios = set()
        for mode, dw in CASES:
            for kind, cls in (("c", KVCompressor), ("d", KVDecompressor)):
                dut = cls(mode, dw=dw)
                setattr(self.submodules, f"{kind}_{mode}_{dw}", dut)
                p = _prefix(kind, mode, dw)

                def port(name, width=1, out=False, dst=None):
                    s = Signal(width, name=p + name)
                    self.ios.add(s)
                    self.comb += (s.eq(dst) if out else dst.eq(s))

                port("sink_valid", dst=dut.sink.valid)
                port("sink_last", dst=dut.sink.last)
                port("sink_data", dw, dst=dut.sink.data)
                port("sink_ready", out=True, dst=dut.sink.ready)
                port("source_valid", out=True, dst=dut.source.valid)
                port("source_last", out=True, dst=dut.source.last)
                port("source_data", dw, out=True, dst=dut.source.data)
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
    """Cycle-by-cycle driving of one core of the co-sim top. `run` returns the output and
    the count of input stalls (cycles `sink` refused a valid beat); after it, `held` counts
    the cycles `source` had a beat refused (back-pressure) and `cycles` holds the cycle of
    every output beat, one list per output page (compressor) or input page (decompressor)."""

    def __init__(self, sim, kind, mode, dw=DW):
        self.sim, self.p = sim, _prefix(kind, mode, dw)
        self.kind = kind

    def run(self, frames, seed, p_valid=0.7, p_ready=0.7, max_cycles=400_000, sink=None):
        sim, p = self.sim, self.p
        rng = random.Random(seed)
        sink = sink if sink is not None else [0] * len(frames)
        items = [(d, i == len(f) - 1, s) for f, s in zip(frames, sink) for i, d in enumerate(f)]
        k, out, cur, status, stalls = 0, [], [], [], 0
        self.cycles, cyc_cur, self.held = [], [], 0
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
            if not rdy and sim[p + "source_valid"]:
                self.held += 1
            if rdy and sim[p + "source_valid"]:
                cur.append(sim[p + "source_data"])
                cyc_cur.append(cyc)
                if self.kind == "c" and sim[p + "source_last"]:
                    out.append(cur)
                    self.cycles.append(cyc_cur)
                    cur, cyc_cur = [], []
            if self.kind == "d" and sim[p + "done"]:
                status.append((sim[p + "error"], cur))
                self.cycles.append(cyc_cur)
                cur, cyc_cur = [], []
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
    """n pages of the bundled trace, 3 random pages and the extreme page (16 x 64)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(trace_pages), n, replace=False)
    return np.concatenate([trace_pages[idx], random_pages(3, seed=seed), extreme_page()[None]])


@pytest.mark.parametrize("mode,dw", CASES, ids=IDS)
def test_cosim_compressor(cosim, trace_pages, mode, dw):
    """24 trace pages, 3 random and the extreme page, SINK on every fifth, random stalls on
    both sides."""
    pages = _pages(trace_pages, 24, seed=len(mode) + dw)
    sink = np.arange(len(pages)) % 5 == 0
    drv = Driver(cosim, "c", mode, dw)
    out, _ = drv.run([page_beats(p, dw) for p in pages], seed=11 + dw, sink=sink)
    assert drv.held > 0
    assert [beats_bytes(f, dw) for f in out] == R.compress_batch(pages, mode, sink=sink)


@pytest.mark.parametrize("mode,dw", CASES, ids=IDS)
def test_cosim_compressor_no_input_stall(cosim, trace_pages, mode, dw):
    """No output back-pressure: input runs at one beat per cycle across back-to-back pages."""
    pages = _pages(trace_pages, 6, seed=2)
    sink = np.arange(len(pages)) % 4 == 0
    out, stalls = Driver(cosim, "c", mode, dw).run([page_beats(p, dw) for p in pages], seed=1,
                                                   p_valid=1.0, p_ready=1.0, sink=sink)
    assert [beats_bytes(f, dw) for f in out] == R.compress_batch(pages, mode, sink=sink)
    assert stalls == 0


@pytest.mark.parametrize("mode,dw", CASES, ids=IDS)
def test_cosim_decompressor(cosim, trace_pages, mode, dw):
    """24 trace pages, 3 random and the extreme page (SINK on every fourth) and every
    corruption case, random stalls on both sides."""
    pages = _pages(trace_pages, 24, seed=len(mode) + dw + 1)
    sink = np.arange(len(pages)) % 4 == 1
    blobs = R.compress_batch(pages, mode, sink=sink)
    cases = [(b, None) for b in blobs] + [corrupt(blobs[3], c) for c in CORRUPT_CASES]
    drv = Driver(cosim, "d", mode, dw)
    status, stalls = drv.run([bytes_beats(b, dw) for b, _ in cases], seed=12 + dw)
    assert stalls > 0 and drv.held > 0
    exp = [R.decompress(b) for b in blobs]
    assert len(status) == len(cases)
    for i, ((blob, kind), (err, beats)) in enumerate(zip(cases, status)):
        out = beats_bytes(beats, dw)
        assert len(out) <= PAGE_BYTES
        if kind is None:
            assert err == 0 and out == exp[i].tobytes()
        else:
            assert err == RF.ERROR_KINDS[kind]
            if kind == "header":
                assert out == b""


@pytest.mark.parametrize("mode,dw", CASES, ids=IDS)
def test_cosim_decompressor_one_beat_per_cycle(cosim, trace_pages, mode, dw):
    """Without stalls a page leaves at one beat per cycle once its metadata is in (the
    level-packed sections end on 64-bit words at 16 x 64, and a field of 2 x dw/16 codes is
    taken on one beat, its upper half held for the next): 2TD/(dw/16) beats in as many
    cycles, plain and SINK pages."""
    pages = trace_pages[[11, 12]]
    sink = np.array([1, 0], bool)
    blobs = R.compress_batch(pages, mode, sink=sink)
    drv = Driver(cosim, "d", mode, dw)
    status, _ = drv.run([bytes_beats(b, dw) for b in blobs], seed=0, p_valid=1.0, p_ready=1.0)
    assert [(e, beats_bytes(b, dw)) for e, b in status] == \
        [(0, R.decompress(b).tobytes()) for b in blobs]
    nout = PAGE_BYTES * 8 // dw
    assert [c[-1] - c[0] + 1 for c in drv.cycles] == [nout, nout]


@pytest.mark.parametrize("mode", [m for m in GATEWARE_MODES if R.MODES[m].level_packed])
def test_cosim_decompressor_out_of_range_fields(cosim, trace_pages, mode):
    """Payload fields above levels**g - 1 (a corrupt page with a good CRC: here every payload
    bit set) decode like the reference: low digits by division, the last digit saturated.
    At dw = 64 kivi_n10v9's K fields hold 8 codes (two output beats: the field is split
    once, its high digits held for the second beat)."""
    m = R.MODES[mode]
    blob = bytearray(R.compress_batch(trace_pages[[5]], m)[0])
    layout = R.kv_layout(m, 16, 64)
    start = R.HEADER_BYTES + sum(-(-n // 8) * 8 for name, n in layout[:4])   # the payload
    blob[start:len(blob) - 8] = b"\xff" * (len(blob) - 8 - start)
    blob = reseal(blob)
    exp = R.decompress(blob)
    (err, beats), = Driver(cosim, "d", mode).run([bytes_beats(blob, DW)], seed=3)[0]
    assert err == 0 and beats_bytes(beats, DW) == exp.tobytes()
