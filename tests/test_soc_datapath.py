"""Issue 5 (cache-engine datapath) in the Verilator SoC, through pyverilator, over the
emulated link, with random valid/ready stalls at the link pads (``SimLink.set_stalls``):

- >= 10,000 random TLB operations (map, unmap, lookup, invalidate, flush, counter clear,
  configuration change) against ``gateware/atu/model.py``: maps and unmaps are PTE lines
  written into LiteDRAM (MemWr), invalidations go through the ATU's CSRs, lookups through
  the bridge's XLATE request (the page engine's lookup port); every answer (fault code,
  slot, length, flags, TLB hit) and the counters equal the model's;
- the DMA engine's byte-granular copy sweep (length x source offset x destination offset,
  every range at a 4 KiB boundary), many jobs queued per run, guard bytes around every
  destination, the whole window compared with ``gateware/dma/model.py``;
- every DMA status (ok, fault, corrupt, timeout, overflow, invalid) and every page-read
  answer the engine gives, the engine working afterwards;
- several page reads, translations and faults outstanding at once: tags and answers matched.

``SOC_SEED=n`` reruns the random tests with other streams.
"""

import os
import random
from pathlib import Path

import pytest

from gateware.atu.model import (ATUModel, FAULT_BAD_PTE, FAULT_BUS_ERROR, FAULT_INVALID,
                                FAULT_UNMAPPED, pack_pte)
from gateware.bridge.protocol import LINE, Message, Op, Status, xlate_fields
from gateware.common import PTE_FLAG_RAW
from gateware.codec import reference as R
from gateware.dma.model import (DMAConfig, DMAModel, Descriptor, OP_COPY, OP_DECOMPRESS,
                                ST_CORRUPT, ST_FAULT, ST_INVALID, ST_OK, ST_OVERFLOW,
                                ST_TIMEOUT)
from host.driver.link import SimLink
from host.traces.format import load_trace
from soc.soc import ATU_ENTRIES, ATU_POLICY, PADDR_WIDTH, VPN_WIDTH
from host.driver.batch import Batch, dma_jobs
from soc.mailbox import DRAM_SCRATCH as SCRATCH
from soc.mailbox import DRAM_SCRATCH_END as SCRATCH_END

ROOT = Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("SOC_SEED", "0"))
MODE = "kivi_k4v3"
STALLS = (0.2, 0.2)  # per-cycle stall probabilities at the link pads (h2d valid, d2h ready)


def _dram(sim):
    return sim.memories["main_ram"]["base"], sim.memories["main_ram"]["size"]


# ---------------------------------------------------------------------------------------
# TLB: >= 10,000 random operations through the SoC against the ATU model
# ---------------------------------------------------------------------------------------

TLB_OPS = 10_500


def _tlb_configs(dram_size):
    """(pt_base, pt_entries, dram_base, dram_size). The third puts the table at the top of
    DRAM (above the firmware's layout): PTEs of vpn >= 512 lie beyond the walker's port
    (bus_error, no read); its base has low bits set, which the ATU ignores."""
    return [
        (SCRATCH, 700, 0, dram_size),
        (SCRATCH, 1024, 0x0010_0000, 0x0040_0000),
        (dram_size - 4096 + 5, 1024, 0, dram_size),
    ]


def test_tlb_random_ops_match_model(ready):
    sim = ready
    ram, dram_size = _dram(sim)
    assert dram_size & (dram_size - 1) == 0
    link = SimLink(sim, "ideal")
    link.set_stalls(*STALLS, seed=11 + SEED)
    rng = random.Random(1000 + SEED)
    model = ATUModel(port_bytes=dram_size, entries=ATU_ENTRIES, policy=ATU_POLICY,
                     vpn_width=VPN_WIDTH, paddr_width=PADDR_WIDTH)
    b = Batch(link)
    # Zero the tables (DRAM above the firmware's table is not initialised by anyone).
    b.mem_write(ram + SCRATCH, bytes(8 * 1024))
    b.mem_write(ram + dram_size - 4096, bytes(4096))
    configs = _tlb_configs(dram_size)

    def configure(cfg):
        pt_base, entries, base, size = cfg
        for name, v in (("atu_pt_base", pt_base), ("atu_pt_entries", entries),
                        ("atu_dram_base", base), ("atu_dram_size", size)):
            b.csr_write(name, v)
        model.configure(pt_base=pt_base, pt_entries=entries, dram_base=base, dram_size=size)

    configure(configs[0])
    b.csr_write("atu_ctrl", 0b11)  # flush + clear counters
    model.invalidate_all()
    model.clear_counters()
    b.send()

    seen_faults, seen = set(), {"hit": 0, "miss": 0, "stale": 0, "evict": 0}
    counts = dict.fromkeys(["lookup", "map", "bad_map", "unmap", "inval", "flush", "clear",
                            "config", "wide"], 0)
    walk_in_flight = False  # the last lookup sent since the last send() walks the table

    def barrier():
        """A write racing a page walk still in flight could land before or after the walk's
        PTE read or fault count; send what is queued first (the model is sequential)."""
        nonlocal walk_in_flight
        if walk_in_flight:
            b.send()
            walk_in_flight = False

    def pte_line(vpn):
        a = model.pte_addr(vpn)
        return a & ~(LINE - 1)

    def writable(vpn):
        a = model.pte_addr(vpn)
        return (SCRATCH <= a and a + 8 <= SCRATCH_END) or dram_size - 4096 <= a < dram_size

    def pick_vpn():
        r = rng.random()
        if r < 0.92:
            return rng.choice(hot)
        if r < 0.98:
            return rng.randrange(1200)
        return rng.randrange(1 << VPN_WIDTH)

    def lookup(vpn):
        nonlocal walk_in_flight
        walks = model.walks
        full = all(model.valid)
        want = model.lookup(vpn)
        if full and not want.fault and not want.hit:
            seen["evict"] += 1
        walk_in_flight = model.walks != walks
        if want.fault:
            seen_faults.add(want.fault)
        else:
            seen["hit" if want.hit else "miss"] += 1

        def check(m, vpn=vpn, want=want, i=counts["lookup"]):
            if want.fault:
                got = (m.status, m.value, m.addr)
                assert got == (Status.PAGE_FAULT, want.fault, 0), \
                    f"lookup {i} of vpn {vpn}: got {got}, model {want}"
            else:
                assert m.status == Status.OK, f"lookup {i} of vpn {vpn}: {m}, model {want}"
                got = (m.addr, *xlate_fields(m.value))
                exp = (want.paddr, want.length, want.flags, want.hit)
                assert got == exp, f"lookup {i} of vpn {vpn}: got {got}, model {exp}"
        b.add(Message(Op.XLATE, 0, 0, value=vpn), check)
        counts["lookup"] += 1

    def write_pte(vpn, value, invalidate):
        barrier()
        model.memory.write64(model.pte_addr(vpn), value)
        line = pte_line(vpn)
        b.mem_write(ram + line, model.memory.read(line, LINE))
        if invalidate:
            b.csr_write("atu_inval", vpn)
            model.invalidate(vpn)
        elif vpn in model.where:
            seen["stale"] += 1

    def random_pte():
        return random_pte_in(model.dram_base, model.dram_size)

    def random_pte_in(base, size):
        length = rng.choice([rng.randrange(1, 4161), rng.randrange(1, 200), 4160, 4096])
        paddr = rng.randrange(base, base + size - length + 1) & ~(LINE - 1)
        if paddr < base:
            paddr += LINE
        return pack_pte(paddr, length, rng.randrange(128))

    def bad_pte():
        base, size = model.dram_base, model.dram_size
        kind = rng.randrange(4)
        if kind == 0:
            return pack_pte(base, 0, 3)                                  # length 0
        if kind == 1:
            return pack_pte(base, rng.randrange(4161, 1 << 16))          # too long
        if kind == 2:                                                    # runs off the window
            return pack_pte((base + size - 64), rng.randrange(65, 4161))
        if base:
            return pack_pte(base - 64, 64)                               # below the window
        return pack_pte(rng.randrange(1 << 40, 1 << 46) & ~63, 100)      # beyond paddr_width

    # Most traffic on 36 vpns against 16 entries (32 inside every table, mapped in both
    # tables to start with, 4 beyond them), so the TLB is full and evicts by policy.
    hot = sorted(rng.sample(range(500), 32) + rng.sample(range(1030, 1100), 4))
    for pt_base in {c[0] & ~7 for c in configs}:
        for v in hot[:32]:
            # Inside every configuration's window.
            model.memory.write64(pt_base + 8 * v, random_pte_in(0x0010_0000, 0x0040_0000))
        for line in sorted({(pt_base + 8 * v) & ~(LINE - 1) for v in hot[:32]}):
            b.mem_write(ram + line, model.memory.read(line, LINE))
    b.send()

    kinds, weights = zip(("lookup", 78), ("map", 9), ("bad_map", 1), ("unmap", 1.5),
                         ("inval", 5), ("flush", 0.6), ("clear", 0.6), ("config", 0.4),
                         ("wide", 1))
    ops = 0
    while ops < TLB_OPS:
        kind = rng.choices(kinds, weights)[0]
        vpn = pick_vpn()
        if kind == "lookup":
            lookup(vpn)
        elif kind == "map":
            if writable(vpn):
                write_pte(vpn, random_pte(), invalidate=rng.random() < 0.85)
                counts["map"] += 1
        elif kind == "bad_map":
            if writable(vpn):
                write_pte(vpn, bad_pte(), invalidate=True)
                counts["bad_map"] += 1
        elif kind == "unmap":
            if writable(vpn):
                # Unmap: PTE cleared, or valid bit cleared with the rest left as it was.
                old = model.memory.read64(model.pte_addr(vpn))
                write_pte(vpn, rng.choice([0, old & ~1]), invalidate=rng.random() < 0.85)
                counts["unmap"] += 1
        elif kind == "inval":
            barrier()
            b.csr_write("atu_inval", vpn)
            model.invalidate(vpn)
            counts["inval"] += 1
        elif kind == "flush":
            barrier()
            b.csr_write("atu_ctrl", 0b01)
            model.invalidate_all()
            counts["flush"] += 1
        elif kind == "clear":
            barrier()
            b.csr_write("atu_ctrl", 0b10)
            model.clear_counters()
            counts["clear"] += 1
        elif kind == "config":
            barrier()
            configure(rng.choice(configs))
            counts["config"] += 1
        else:
            # Wider than the ATU: refused by the engine before the ATU (the model never
            # sees it), so it cannot alias a mapped page.
            def check(m):
                assert (m.status, m.value) == (Status.PAGE_FAULT, FAULT_UNMAPPED), m
            b.add(Message(Op.XLATE, 0, 0, value=rng.randrange(1 << VPN_WIDTH, 1 << 32)), check)
            counts["wide"] += 1
        ops = sum(counts.values())
        if len(b) >= 240:
            b.send()
            walk_in_flight = False
        if ops % 2500 == 0:
            _check_counters(b, model)
    _check_counters(b, model)
    assert b.sent >= TLB_OPS
    assert sum(counts.values()) >= 10_000, counts
    # Every kind of answer happened, many times.
    assert seen_faults == {FAULT_UNMAPPED, FAULT_INVALID, FAULT_BAD_PTE, FAULT_BUS_ERROR}
    assert seen["hit"] > 2000 and seen["miss"] > 1000 and seen["stale"] > 20, seen
    assert seen["evict"] > 200, seen  # the replacement policy decided, many times
    assert min(counts.values()) > 20, counts


def _check_counters(b, model):
    b.send()  # no walk in flight any more
    want = model.counters()
    got = {}
    for name in ("hits", "misses", "walks", "faults"):
        b.csr_read("atu_" + name, lambda v, name=name: got.__setitem__(name, v))
    b.csr_read("atu_last_fault", lambda v: got.update(last_fault_code=v & 7,
                                                      last_fault_vpn=v >> 8))
    b.send()
    assert got == want, f"ATU counters {got}, model {want}"


# ---------------------------------------------------------------------------------------
# DMA: length x offset sweep across 4 KiB boundaries, guard bytes, many jobs per run
# ---------------------------------------------------------------------------------------

SRC_BASE = SCRATCH                 # 64 KiB of random source bytes
SRC_SIZE = 0x1_0000
WIN = SCRATCH + 0x2_0000           # destination window, filled with a known pattern
WIN_SIZE = 64 * 4096               # (jobs use boundaries 2..57: every range stays inside)
GUARD = 64
SMALL = [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 257]
LARGE = [1000, 4095, 4096, 4097, 8193]


def _sweep_jobs(rng):
    """(length, src offset, dst offset): every offset pair for the short lengths, 12 pairs
    for the long ones (offsets relative to the 64-bit port word)."""
    jobs = [(n, s, d) for n in SMALL for s in range(8) for d in range(8)]
    pairs = [(s, d) for s in range(8) for d in range(8)]
    for n in LARGE:
        jobs += [(n, s, d) for s, d in rng.sample(pairs, 12)]
    rng.shuffle(jobs)
    return jobs


def _run_jobs(b, descs, completions_out, budget=2_000_000):
    """Run ``descs`` to completion; their (tag, status, bytes) appended in order."""
    got = dma_jobs(b, descs, budget, poll=200)
    assert got is not None, f"DMA jobs not done in {budget} cycles"
    completions_out += got


def test_dma_copy_sweep_across_4k_with_guard_bytes(ready):
    sim = ready
    ram, dram_size = _dram(sim)
    link = SimLink(sim, "ideal")
    link.set_stalls(*STALLS, seed=21 + SEED)
    rng = random.Random(2000 + SEED)
    b = Batch(link)
    b.csr_write("dma_dram_base", 0)
    b.csr_write("dma_dram_size", dram_size)
    # The model's DRAM image of the region: random source bytes, then the destination window
    # filled with a guard pattern by four DMA copies (checked below like every other job).
    image = bytearray(dram_size)
    src = bytes(rng.getrandbits(8) for _ in range(SRC_SIZE))
    image[SRC_BASE:SRC_BASE + SRC_SIZE] = src
    b.mem_write(ram + SRC_BASE, src)
    b.send()
    model = DMAModel(image, DMAConfig(dram_base=0, dram_size=dram_size))
    fill = [Descriptor(OP_COPY, SRC_BASE, WIN + k * SRC_SIZE, SRC_SIZE, tag=200 + k)
            for k in range(WIN_SIZE // SRC_SIZE)]
    got = []
    _run_jobs(b, fill, got)
    assert got == [tuple(c) for c in model.run(fill).completions]

    jobs = _sweep_jobs(rng)
    done = 0
    for i in range(0, len(jobs), 16):
        batch = []
        for k, (n, s, d) in enumerate(jobs[i:i + 16]):
            # Source and destination ranges both meet a 4 KiB boundary `split` bytes in
            # (ranges of 1..15 bytes start on it); offsets s, d set the word alignment.
            split = (n // 2) & ~7 if n < 4096 else 2040
            boundary = WIN + 4096 * ((i + k) % 56 + 2)
            sb = SRC_BASE + 4096 * rng.randrange(2, SRC_SIZE // 4096 - 2)
            batch.append(Descriptor(OP_COPY, sb - split + s, boundary - split + d, n,
                                    tag=(i + k) % 256))
        got = []
        _run_jobs(b, batch, got)
        want = model.run(batch).completions
        assert got == [tuple(c) for c in want], f"jobs {i}..: completions"
        # Each destination with a guard line on both sides, against the model's image.
        for desc in batch:
            lo = (desc.dst - GUARD) & ~(LINE - 1)
            hi = (desc.dst + desc.length + GUARD + LINE - 1) & ~(LINE - 1)

            def cmp(data, lo=lo, hi=hi, desc=desc):
                want = bytes(image[lo:hi])
                if data != want:
                    bad = next(j for j in range(len(data)) if data[j] != want[j])
                    pytest.fail(f"copy {desc}: first wrong byte at 0x{lo + bad:x} "
                                f"(dst 0x{desc.dst:x}..0x{desc.dst + desc.length:x})")
            b.mem_read(ram + lo, hi - lo, cmp)
        b.send()
        done += len(batch)
    assert done == len(jobs) > 1300
    # Nothing else in the window moved.
    whole = []
    b.mem_read(ram + WIN, WIN_SIZE, whole.append)
    b.send()
    assert whole[0] == bytes(image[WIN:WIN + WIN_SIZE])


# ---------------------------------------------------------------------------------------
# Every status, and the engines still work afterwards
# ---------------------------------------------------------------------------------------

HOST_BASE, HOST_SIZE = 0x3_0000_0000, 16 * 4096


@pytest.fixture(scope="module")
def kv_blob():
    t = load_trace(ROOT / "traces" / "mini-chatbot.safetensors")
    page = t.page(t.vpn(3, 1, 2))
    return R.compress(page, MODE), R.decompress(R.compress(page, MODE)).tobytes()


def test_every_dma_and_page_status(ready, kv_blob):
    sim = ready
    ram, dram_size = _dram(sim)
    link = SimLink(sim, "ideal")
    link.set_stalls(*STALLS, seed=31 + SEED)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    blob, page = kv_blob
    b = Batch(link)
    for pre in ("dma", "engine"):
        b.csr_write(pre + "_dram_base", 0)
        b.csr_write(pre + "_dram_size", dram_size)
        b.csr_write(pre + "_host_base", HOST_BASE)
        b.csr_write(pre + "_host_size", HOST_SIZE)
    good, bad = SCRATCH, SCRATCH + 0x2000
    corrupt = bytearray(blob)
    corrupt[len(corrupt) // 2] ^= 0x10
    pad = lambda x: bytes(x) + bytes(-len(x) % LINE)
    b.mem_write(ram + good, pad(blob))
    b.mem_write(ram + bad, pad(corrupt))
    dst = SCRATCH + 0x1_0000
    b.mem_write(ram + dst - LINE, bytes([0xA5]) * (3 * 4096))
    b.send()

    D = lambda op, src, dst, n, tag, cap=0, host=False: Descriptor(op, src, dst, n, tag, cap, host)
    cases = [
        (D(OP_COPY, good, dst, 100, 1), ST_OK),
        (D(OP_DECOMPRESS, good, HOST_BASE, len(blob), 2, 4096, True), ST_OK),
        (D(OP_COPY, dram_size - 32, dst, 64, 3), ST_FAULT),                  # source off DRAM
        (D(OP_COPY, good, dram_size - 8, 64, 4), ST_FAULT),                  # dest off DRAM
        (D(OP_DECOMPRESS, good, HOST_BASE + HOST_SIZE, len(blob), 5, 4096, True), ST_FAULT),
        (D(OP_COPY, good, dst, 0, 6), ST_INVALID),                          # length 0
        (D(3, good, dst, 64, 7), ST_INVALID),                               # op 3
        (D(OP_DECOMPRESS, good, HOST_BASE + 8, len(blob), 8, 4096, True), ST_INVALID),
        (D(OP_DECOMPRESS, good, dst, len(blob), 9, 0), ST_INVALID),         # cap 0
        (D(OP_DECOMPRESS, bad, HOST_BASE + 4096, len(corrupt), 10, 4096, True), ST_CORRUPT),
        (D(OP_DECOMPRESS, good, dst, len(blob), 11, 1000), ST_OVERFLOW),    # 4 KiB into 1000 B
        (D(OP_COPY, good, dst + 4096, 64, 12), ST_OK),
    ]
    got = []
    _run_jobs(b, [d for d, _ in cases], got)
    assert [(t, s) for t, s, _ in got] == [(d.tag, st) for d, st in cases]
    assert got[0][2] == 100 and got[1][2] == 4096 and got[11][2] == 64
    assert bytes(link.host_memory[:4096]) == page                           # job 2 landed
    # Faulted and invalid jobs moved nothing; the overflow stayed inside its capacity.
    area = []
    b.mem_read(ram + dst - LINE, 3 * 4096, area.append)
    b.send()
    area = area[0]
    assert area[:LINE] == bytes([0xA5]) * LINE
    assert area[LINE + 1000:LINE + 4096] == bytes([0xA5]) * (4096 - 1000)
    assert area[LINE + 4096:LINE + 4096 + 64] == blob[:64]
    assert area[LINE + 4096 + 64:] == bytes([0xA5]) * (len(area) - LINE - 4096 - 64)

    # Timeout: a watchdog shorter than the DRAM latency; then the engine recovers.
    b.csr_write("dma_timeout", 2)
    b.send()
    got = []
    _run_jobs(b, [D(OP_COPY, good, dst, 256, 13)], got)
    assert got == [(13, ST_TIMEOUT, 0)]
    b.csr_write("dma_timeout", 4096)
    b.send()
    got = []
    _run_jobs(b, [D(OP_COPY, good, dst + 8192, 64, 14)], got)
    assert got == [(14, ST_OK, 64)]

    # The page engine: every answer of a PageRd.
    pt = SCRATCH + 0x3_0000
    table = bytearray(8 * 16)
    table[8 * 1:8 * 2] = pack_pte(good, len(blob)).to_bytes(8, "little")
    table[8 * 2:8 * 3] = pack_pte(bad, len(corrupt)).to_bytes(8, "little")
    table[8 * 3:8 * 4] = pack_pte(good, 0, valid=True).to_bytes(8, "little")  # bad PTE
    table[8 * 4:8 * 5] = pack_pte(good, len(blob), valid=False).to_bytes(8, "little")
    b.mem_write(ram + pt, bytes(table))
    b.csr_write("atu_pt_base", pt)
    b.csr_write("atu_pt_entries", 16)
    b.csr_write("atu_dram_base", 0)
    b.csr_write("atu_dram_size", dram_size)
    b.send()
    P = lambda tag, vpn, slot=0: Message(Op.PAGE_RD, tag, HOST_BASE + 4096 * slot, value=vpn)
    cases = [
        (P(1, 1, 2), Status.OK, 0),
        (P(2, 20), Status.PAGE_FAULT, FAULT_UNMAPPED),
        (P(3, 4), Status.PAGE_FAULT, FAULT_INVALID),
        (P(4, 3), Status.PAGE_FAULT, FAULT_BAD_PTE),
        (P(5, 2, 3), Status.DMA_ERROR, ST_CORRUPT),
        (P(6, 1, 16), Status.DMA_ERROR, ST_FAULT),                          # outside host window
        (Message(Op.PAGE_RD, 7, HOST_BASE + 32, value=1), Status.MISALIGNED, 0),
    ]
    answers = link.transact([m for m, _, _ in cases], check=False)
    assert [(a.msg.tag, a.msg.status, a.msg.value) for a in answers] == \
        [(m.tag, st, v) for m, st, v in cases]
    assert bytes(link.host_memory[2 * 4096:3 * 4096]) == page
    # Bus error: the table at the top of DRAM, a PTE beyond the walker's port.
    b.csr_write("atu_pt_base", dram_size - 64)
    b.csr_write("atu_pt_entries", 64)
    b.send()
    a = link.transact([P(8, 9)], check=False)[0].msg
    assert (a.status, a.value) == (Status.PAGE_FAULT, FAULT_BUS_ERROR)
    # Engine DMA timeout, then recovery.
    b.csr_write("atu_pt_base", pt)
    b.csr_write("atu_pt_entries", 16)
    b.csr_write("engine_timeout", 2)
    b.send()
    a = link.transact([P(9, 1, 4)], check=False)[0].msg
    assert (a.status, a.value) == (Status.DMA_ERROR, ST_TIMEOUT)
    b.csr_write("engine_timeout", 4096)
    b.send()
    a = link.transact([P(10, 1, 5)])[0].msg
    assert a.status == Status.OK and bytes(link.host_memory[5 * 4096:6 * 4096]) == page
    # Overflow cannot come from a page read: capacity is a whole page and a page of another
    # mode or geometry fails the decompressor's header check (corrupt, above).


# ---------------------------------------------------------------------------------------
# Several requests outstanding: tags and answers matched, answers out of order
# ---------------------------------------------------------------------------------------

def test_outstanding_page_reads_translations_and_faults(ready, kv_blob):
    sim = ready
    ram, dram_size = _dram(sim)
    link = SimLink(sim, "cxl2-x16")
    link.set_stalls(*STALLS, seed=41 + SEED)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    blob, page = kv_blob
    rng = random.Random(4000 + SEED)
    b = Batch(link)
    b.csr_write("engine_dram_base", 0)
    b.csr_write("engine_dram_size", dram_size)
    b.csr_write("engine_host_base", HOST_BASE)
    b.csr_write("engine_host_size", HOST_SIZE)
    pt = SCRATCH + 0x3_0000
    slots = [SCRATCH + 0x4_0000 + 0x2000 * i for i in range(4)]
    pad = lambda x: bytes(x) + bytes(-len(x) % LINE)
    table = bytearray(8 * 64)
    # flags other than PTE_FLAG_RAW pass through the ATU (slot i: 2 * i); vpn 14 maps a page
    # stored as is (PTE_FLAG_RAW): its PageRd is a copy, not a decompression
    for i, s in enumerate(slots):
        b.mem_write(ram + s, pad(blob))
        table[8 * (10 + i):8 * (11 + i)] = pack_pte(s, len(blob), flags=2 * i).to_bytes(8, "little")
    raw_slot = SCRATCH + 0x4_0000 + 0x2000 * 4
    b.mem_write(ram + raw_slot, page)
    table[8 * 14:8 * 15] = pack_pte(raw_slot, len(page), flags=PTE_FLAG_RAW).to_bytes(8, "little")
    b.mem_write(ram + pt, bytes(table))
    b.csr_write("atu_pt_base", pt)
    b.csr_write("atu_pt_entries", 64)
    b.csr_write("atu_dram_base", 0)
    b.csr_write("atu_dram_size", dram_size)
    b.send()

    out_of_order = 0
    for rnd in range(6):
        msgs, want = [], {}
        for k in range(12):
            tag = rng.randrange(256)
            while tag in want:
                tag = rng.randrange(256)
            kind = rng.choice(["page", "page", "raw", "xlate", "fault"])
            i = rng.randrange(4)
            if kind in ("page", "raw"):
                vpn = 14 if kind == "raw" else 10 + i
                msgs.append(Message(Op.PAGE_RD, tag, HOST_BASE + 4096 * (k % 16), value=vpn))
                want[tag] = (Status.OK, 0, k % 16)
            elif kind == "xlate":
                msgs.append(Message(Op.XLATE, tag, 0, value=10 + i))
                want[tag] = (Status.OK, slots[i], None)
            else:
                msgs.append(Message(Op.PAGE_RD, tag, HOST_BASE, value=rng.choice([5, 40, 99])))
                want[tag] = (Status.PAGE_FAULT, None, None)
        link.host_memory[:] = bytes(len(link.host_memory))
        answers = link.transact(msgs, max_cycles=5_000_000, check=False)
        order = sorted(answers, key=lambda a: a.arrival_cycle)
        out_of_order += [a.msg.tag for a in order] != [m.tag for m in msgs]
        for m, a in zip(msgs, answers):
            st, addr, slot = want[m.tag]
            assert a.msg.tag == m.tag and a.msg.status == st, (m, a.msg)
            if m.opcode == Op.XLATE:
                length, flags, _ = xlate_fields(a.msg.value)
                assert (a.msg.addr, length, flags) == (addr, len(blob), 2 * slots.index(addr))
            elif st == Status.PAGE_FAULT:
                assert a.msg.value in (FAULT_UNMAPPED, FAULT_INVALID)
            else:
                assert bytes(link.host_memory[4096 * slot:4096 * (slot + 1)]) == page
    # Translations and faults, answered by the engine at once, overtake page reads whose
    # data is still streaming.
    assert out_of_order >= 3
