"""Demand read end to end in the Verilator SoC: the host reads a KV page by its virtual page
number over the emulated CXL link; the bridge hands it to the page engine, the ATU walks the
page table in LiteDRAM, the DMA streams the compressed slot through the hardware
decompressor and deposits the FP16 page in host memory, then the Cmp arrives.

Pages are real KV from the bundled trace, compressed by the reference codec; the host's
copy must equal the reference decompression byte for byte."""

from pathlib import Path

import numpy as np
import pytest

from gateware.atu.model import pack_pte
from gateware.bridge.protocol import LINE, Message, Op, Status
from gateware.codec import reference as R
from gateware.dma.model import ST_CORRUPT, ST_FAULT
from host.driver.link import SimLink, LinkError
from host.traces.format import load_trace

ROOT = Path(__file__).resolve().parent.parent
MODE = "kivi_k4v3"          # the SoC's default codec mode
HOST_BASE = 0x1_0000_0000   # host buffer (the L2 prefetch buffer stands in)
HOST_SIZE = 16 * 4096
PT = 0x0100_0000            # page table, DRAM byte offset (up to 8 MiB for 20-bit vpns)
POOL = 0x0020_0000          # page slots
SLOT = 4096 + LINE          # slot pitch (room for any mode)
N_PAGES = 12


@pytest.fixture(scope="module")
def pages():
    return real_pages()


def real_pages():
    t = load_trace(ROOT / "traces" / "mini-chatbot.safetensors")
    rng = np.random.default_rng(0)
    l = rng.integers(0, t.n_layers, N_PAGES)
    h = rng.integers(0, t.n_kv_heads, N_PAGES)
    p = rng.integers(0, t.n_pages, N_PAGES)
    vpns = [int(t.vpn(a, b, c)) for a, b, c in zip(l, h, p)]
    raw = [t.page(v) for v in vpns]
    blobs = [R.compress(x, MODE) for x in raw]
    return vpns, blobs


def _pad(b):
    return b + bytes(-len(b) % LINE)


def setup_pool(sim, link, vpns, blobs, corrupt=None):
    """Write compressed pages and the page table into LiteDRAM over the link, then open
    the ATU and engine windows. Table index = vpn; returns {vpn: slot offset}."""
    ram = sim.memories["main_ram"]["base"]
    dram_size = sim.memories["main_ram"]["size"]
    n_entries = max(vpns) + 1
    table = bytearray(_pad(bytes(8 * n_entries)))
    slots = {}
    for i, (v, b) in enumerate(zip(vpns, blobs)):
        slot = POOL + i * SLOT
        data = bytearray(b)
        if corrupt is not None and i == corrupt:
            data[len(data) // 2] ^= 0x40
        link.mem_write(ram + slot, _pad(bytes(data)))
        table[8 * v:8 * v + 8] = pack_pte(slot, len(b)).to_bytes(8, "little")
        slots[v] = slot
    # Only the lines of the table that hold PTEs (the rest of DRAM is zero: invalid).
    for v in vpns:
        o = (8 * v) & ~(LINE - 1)
        link.mem_write(ram + PT + o, bytes(table[o:o + LINE]))
    link.csr_write("atu_pt_base", PT)
    link.csr_write("atu_pt_entries", n_entries)
    link.csr_write("atu_dram_base", 0)
    link.csr_write("atu_dram_size", dram_size)
    link.csr_write("engine_dram_base", 0)
    link.csr_write("engine_dram_size", dram_size)
    link.csr_write("engine_host_base", HOST_BASE)
    link.csr_write("engine_host_size", HOST_SIZE)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    return slots


def page_rd(link, tag, vpn, slot):
    return Message(Op.PAGE_RD, tag, HOST_BASE + slot * 4096, value=vpn)


def test_demand_read_real_pages(ready, pages):
    sim = ready
    vpns, blobs = pages
    link = SimLink(sim, "cxl2-x16")
    setup_pool(sim, link, vpns, blobs)
    # All pages at once: several outstanding, answered by tag.
    msgs = [page_rd(link, 10 + i, v, i) for i, v in enumerate(vpns[:8])]
    rsps = link.transact(msgs, max_cycles=5_000_000)
    for i, (m, a) in enumerate(zip(msgs, rsps)):
        assert a.msg.opcode == Op.CMP and a.msg.status == Status.OK and a.msg.tag == m.tag
        want = R.decompress(blobs[i]).tobytes()
        got = bytes(link.host_memory[i * 4096:(i + 1) * 4096])
        assert got == want, f"page {i} (vpn {vpns[i]}) differs from the reference decode"
    assert link.host_writes == 8 * 64
    assert link.csr_read("engine_pages_ok") == 8
    # Read them again: now TLB hits.
    misses = link.csr_read("atu_misses")
    rsps = link.transact([page_rd(link, 30 + i, v, i) for i, v in enumerate(vpns[:4])])
    assert all(a.msg.status == Status.OK for a in rsps)
    assert link.csr_read("atu_misses") == misses
    assert link.csr_read("atu_hits") >= 4


def test_demand_read_latency_is_measured(ready, pages):
    sim = ready
    vpns, blobs = pages
    link = SimLink(sim, "cxl2-x16")
    setup_pool(sim, link, vpns[:1], blobs[:1])
    a = link.transact([page_rd(link, 1, vpns[0], 0)])[0]
    # Two one-way link latencies at least, plus the page walk, DRAM reads, decompression and
    # 64 lines on the link: a real number, reported by the replay later.
    assert a.latency > 2 * link.lat_min + 64
    assert bytes(link.host_memory[:4096]) == R.decompress(blobs[0]).tobytes()


def test_faults_and_errors(ready, pages):
    sim = ready
    vpns, blobs = pages
    link = SimLink(sim, "ideal")
    setup_pool(sim, link, vpns[:4], blobs[:4], corrupt=2)
    n_entries = max(vpns[:4]) + 1
    unmapped = n_entries + 5
    invalid = next(v for v in range(n_entries) if v not in vpns[:4])
    cases = [
        (page_rd(link, 1, unmapped, 0), Status.PAGE_FAULT, 1),           # beyond the table
        (page_rd(link, 2, invalid, 0), Status.PAGE_FAULT, 2),            # PTE not valid
        (page_rd(link, 3, 1 << 24, 0), Status.PAGE_FAULT, 1),            # wider than the ATU
        (page_rd(link, 4, vpns[2], 0), Status.DMA_ERROR, ST_CORRUPT),    # CRC fails
        (Message(Op.PAGE_RD, 5, HOST_BASE + HOST_SIZE, value=vpns[0]),   # outside host window
         Status.DMA_ERROR, ST_FAULT),
        (Message(Op.PAGE_RD, 6, HOST_BASE + 8, value=vpns[0]), Status.MISALIGNED, 0),
    ]
    before = bytes(link.host_memory)
    for msg, status, value in cases:
        a = link.transact([msg], check=False)[0]
        assert (a.msg.status, a.msg.value) == (status, value), f"{msg}: got {a.msg}"
    # Nothing was deposited by the refused requests except into the corrupt page's own
    # destination (slot 0), which is unspecified for a corrupt page.
    assert bytes(link.host_memory[4096:]) == before[4096:]
    # The engine still works after all of that.
    a = link.transact([page_rd(link, 7, vpns[1], 1)])[0]
    assert a.msg.status == Status.OK
    assert bytes(link.host_memory[4096:8192]) == R.decompress(blobs[1]).tobytes()
    with pytest.raises(LinkError, match="PAGE_FAULT"):
        link.transact([page_rd(link, 8, unmapped, 0)])
