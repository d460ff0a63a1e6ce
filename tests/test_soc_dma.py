"""The firmware's DMA engine inside the Verilator SoC, driven by the host through its CSRs
over the emulated link: byte-granular copies across 4 KiB boundaries with guard bytes
around every destination, checked against the DMA reference model, and a fault."""

import random

import pytest

from gateware.dma.model import ST_FAULT, ST_OK
from host.driver.link import SimLink
from soc.mailbox import DRAM_SCRATCH, PRED_DRAM_BASE

# DRAM offsets in the free area above the page table (soc/mailbox.py: device DRAM)
SRC = PRED_DRAM_BASE
DST = DRAM_SCRATCH
GUARD = 128


def _span(lo, hi):
    """Line-aligned [lo, hi)."""
    return lo & ~63, (hi + 63) & ~63


def run_job(link, src, dst, length, tag):
    link.csr_write("dma_src", src)
    link.csr_write("dma_dst", dst)
    link.csr_write("dma_length", length)
    link.csr_write("dma_cap", length)
    link.csr_write("dma_push", (1 << 3) | (tag << 8))  # op copy, DRAM dst, last
    while True:
        c = link.csr_read("dma_completion")
        if c & 1:
            break
        link.run(500)
    nbytes = link.csr_read("dma_completion_bytes")
    link.csr_write("dma_pop", 1)
    return (c >> 8) & 0xFF, (c >> 4) & 0xF, nbytes


@pytest.mark.parametrize("seed", [0])
def test_copy_sweep_with_guard_bytes(ready, seed):
    sim = ready
    link = SimLink(sim, "ideal")
    ram = sim.memories["main_ram"]["base"]
    rng = random.Random(seed)
    cases = [(s, d, n) for s, d, n in [
        (0, 0, 1), (1, 0, 63), (0, 5, 64), (63, 1, 65), (7, 62, 4095), (4090, 4093, 20),
        (3, 4094, 4096), (4095, 0, 4097), (17, 33, 1000), (0, 4088, 129)]]
    for tag, (so, do, n) in enumerate(cases):
        src, dst = SRC + so, DST + do
        s_lo, s_hi = _span(src, src + n)
        d_lo, d_hi = _span(dst - GUARD, dst + n + GUARD)
        data = bytes(rng.getrandbits(8) for _ in range(s_hi - s_lo))
        guard = bytes([0xA5]) * (d_hi - d_lo)
        link.mem_write(ram + s_lo, data)
        link.mem_write(ram + d_lo, guard)
        got_tag, status, nbytes = run_job(link, src, dst, n, tag)
        assert (got_tag, status, nbytes) == (tag, ST_OK, n), (so, do, n)
        want = bytearray(guard)
        want[dst - d_lo:dst - d_lo + n] = data[src - s_lo:src - s_lo + n]
        assert link.mem_read(ram + d_lo, d_hi - d_lo) == bytes(want), f"copy {so}->{do}, {n} B"


def test_fault_moves_nothing(ready):
    sim = ready
    link = SimLink(sim, "ideal")
    ram = sim.memories["main_ram"]["base"]
    link.mem_write(ram + DST, bytes([0x5A]) * 128)
    size = sim.memories["main_ram"]["size"]
    tag, status, nbytes = run_job(link, size - 32, DST, 64, 9)  # source runs off the DRAM
    assert (tag, status, nbytes) == (9, ST_FAULT, 0)
    assert link.mem_read(ram + DST, 128) == bytes([0x5A]) * 128
