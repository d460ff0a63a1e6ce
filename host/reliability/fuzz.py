"""Decompressor fuzz in gateware: corrupt compressed pages through the SoC's decompressor
behind its DMA engine (Verilator), each page a decompress job from device DRAM into a host
buffer with guard bytes around every destination, against the reference decoder.

Per batch of 16 pages: the blobs are written into device DRAM (each followed by filler:
random bytes, or the rest of the blob it was cut from), the host buffer is filled with a
fresh random guard pattern, 16 decompress jobs are queued, and then

- every job must complete within a cycle budget (else: a *hang*; the DMA's own watchdog
  firing, status timeout, is counted as one too);
- every completion (status, bytes) must equal ``gateware/dma/model.py``'s, whose verdict is
  the reference decoder's (``gateware/codec/reference.py``): a *verdict disagreement*;
- a page both call valid must arrive bit exact (a *data mismatch*);
- nothing outside the jobs' destination ranges may change (an *out-of-bounds write*: the
  guard bytes around and between the destinations are compared with the pattern).

Corruptions (``KINDS``): valid pages (the control), bit flips, truncations, extensions,
forged headers with a valid CRC, random payloads with a valid header and CRC (the
quantized levels, scales and zero points out of any range the encoder makes), random blobs
(half of them behind a valid-looking header and a valid CRC). Seeded and reproducible.

    speckv-fuzz --pages 10000 --json build/fuzz.json        # the full count
"""
from __future__ import annotations

import random
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from gateware.bridge.protocol import LINE
from gateware.codec import reference as R
from gateware.common import PAGE_BYTES as PAGE
from gateware.dma.model import (DMAConfig, DMAModel, Descriptor, OP_DECOMPRESS, ST_CORRUPT,
                                ST_OK, ST_OVERFLOW, ST_TIMEOUT, codec_transforms)
from host.driver.batch import Batch, dma_jobs
from soc.mailbox import DRAM_SCRATCH

KINDS = ("valid", "bitflip", "truncate", "extend", "forged_header", "random_payload",
         "random_blob")
JOBS = 16                      # the DMA's descriptor queue: jobs per batch
SRC_SLOT = 8192                # device DRAM per source blob (blob + filler)
GUARD = 2 * LINE               # guard bytes before, between and after the destinations
DST_SLOT = PAGE + GUARD
HOST_BASE = 0x3_0000_0000
HOST_SIZE = GUARD + JOBS * DST_SLOT
CYCLES_PER_PAGE = 200_000      # a batch's budget: JOBS x this (a page takes ~1,000)
T, D = 16, 64


def _reseal(b):
    """Recompute the CRC-32 over everything before the last 4 bytes."""
    b = bytearray(b)
    b[-4:] = zlib.crc32(bytes(b[:-4])).to_bytes(4, "little")
    return bytes(b)


def base_pages(seed, n=64):
    """Pages to corrupt: real KV pages of the bundled traces and random FP16 bit patterns
    (NaN and infinity among them), as float16 arrays (2, 16, 64)."""
    from pathlib import Path

    from host.traces.format import load_trace
    rng = np.random.default_rng(seed)
    root = Path(__file__).resolve().parents[2] / "traces"
    kv = load_trace(root / "mini-chatbot.safetensors").kv
    real = kv.reshape(-1, 2, T, D)
    pick = real[rng.choice(len(real), size=n // 2, replace=False)]
    rand = rng.integers(0, 1 << 16, size=(n - n // 2, 2, T, D), dtype=np.uint16).view(np.float16)
    return np.concatenate([pick.astype(np.float16), rand])


def mutate(rng, blob, kind):
    """(corrupted blob, filler source: the bytes to put after it in DRAM or None: random)."""
    b = bytearray(blob)
    if kind == "valid":
        return bytes(b), None
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(8 * len(b))
            b[i // 8] ^= 1 << (i % 8)
        return bytes(b), None
    if kind == "truncate":
        cut = rng.choice([rng.randint(1, 7), rng.randint(1, len(b) - 1)])
        # half the time DRAM still holds the rest of the page behind the shortened job
        return bytes(b[:-cut]), (bytes(b[-cut:]) if rng.random() < 0.5 else None)
    if kind == "extend":
        return bytes(b) + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))), None
    if kind == "forged_header":
        i = rng.randrange(8)
        old = b[i]
        while b[i] == old:
            b[i] = rng.choice([rng.getrandbits(8), old ^ (1 << rng.randrange(8)),
                               old + 1 & 0xFF, old - 1 & 0xFF])
        return _reseal(b), None
    if kind == "random_payload":
        lo, hi = R.HEADER_BYTES, len(b) - R.CRC_BYTES
        n = rng.choice([1, 8, 64, hi - lo])
        start = rng.randrange(lo, hi - n + 1)
        fill = rng.choice(["random", "ones", "zeros"])
        for j in range(start, start + n):
            b[j] = {"random": rng.getrandbits(8), "ones": 0xFF, "zeros": 0}[fill]
        return _reseal(b), None
    if kind == "random_blob":
        n = rng.randint(1, 1400)
        r = bytearray(rng.getrandbits(8) for _ in range(n))
        if rng.random() < 0.5 and n >= 12:
            r[:8] = b[:8]                       # a valid header, a wrong-length body
            r[6:8] = (n - n % 8).to_bytes(2, "little")
            r = r[: n - n % 8]
            return _reseal(r), None
        return bytes(r), None
    raise ValueError(f"unknown corruption {kind!r}: one of {', '.join(KINDS)}")


@dataclass
class FuzzReport:
    seed: int
    mode: str
    pages: int = 0
    by_kind: dict = field(default_factory=dict)  # kind: pages; the reference's ok/corrupt/overflow
    hangs: int = 0                  # jobs not completed in the budget, or the DMA watchdog
    out_of_bounds_writes: int = 0   # guard bytes changed
    verdict_disagreements: int = 0  # completion status differs from the reference's
    byte_count_disagreements: int = 0
    data_mismatches: int = 0        # a valid page decoded differently
    cycles: int = 0
    wall_s: float = 0.0
    examples: list = field(default_factory=list)    # the first problems, with their blobs

    def problems(self):
        return (self.hangs + self.out_of_bounds_writes + self.verdict_disagreements
                + self.byte_count_disagreements + self.data_mismatches)


def _setup(link, dram_size, timeout):
    b = Batch(link)
    b.csr_write("dma_dram_base", 0)
    b.csr_write("dma_dram_size", dram_size)
    b.csr_write("dma_host_base", HOST_BASE)
    b.csr_write("dma_host_size", HOST_SIZE)
    b.csr_write("dma_timeout", timeout)
    b.send()
    return b


def _note(rep, what, kind, blob, **kw):
    if len(rep.examples) < 20:
        rep.examples.append({"problem": what, "kind": kind, "blob_hex": blob.hex(), **kw})


def fuzz(sim, pages, seed=0, mode=None, stalls=(0.2, 0.2), timeout=4096, progress=True):
    """Run ``pages`` corrupt pages through the SoC model ``sim`` (a ``SimDriver`` whose
    firmware reported ready); returns a ``FuzzReport``."""
    from host.driver.link import SimLink
    mode = mode or next((k[len("CODEC_MODE_"):].lower() for k in sim.constants
                         if k.startswith("CODEC_MODE_")), "kivi_k4v3")
    rng = random.Random(seed)
    ram, dram_size = sim.memories["main_ram"]["base"], sim.memories["main_ram"]["size"]
    link = SimLink(sim, "ideal")
    link.set_stalls(*stalls, seed=seed)
    link.set_host_memory(HOST_BASE, HOST_SIZE)
    b = _setup(link, dram_size, timeout)
    _, decompress = codec_transforms(mode, T, D)
    model = DMAModel(bytearray(dram_size), DMAConfig(
        dram_base=0, dram_size=dram_size, host_base=HOST_BASE, host_size=HOST_SIZE,
        decompress=decompress))
    blobs = R.compress_batch(base_pages(seed), mode)
    rep = FuzzReport(seed=seed, mode=mode)
    rep.by_kind = {k: {"pages": 0, "ok": 0, "corrupt": 0, "overflow": 0} for k in KINDS}
    bar = None
    if progress:
        import sys

        from tqdm import tqdm
        bar = tqdm(total=pages, desc="fuzz", unit="page", file=sys.stderr)
    t0, c0 = time.time(), link.cycle
    done = 0
    while done < pages:
        n = min(JOBS, pages - done)
        jobs = []
        for i in range(n):
            kind = rng.choice(KINDS)
            blob, after = mutate(rng, rng.choice(blobs), kind)
            src = DRAM_SCRATCH + i * SRC_SLOT
            filler = (after or b"") + bytes(rng.getrandbits(8) for _ in range(2 * LINE))
            data = (blob + filler)[: (len(blob) + LINE) // LINE * LINE]
            b.mem_write(ram + src, data)
            model.dram[src: src + len(data)] = data
            cap = PAGE if rng.random() < 0.9 else rng.randrange(8, PAGE, 8)
            dst = HOST_BASE + GUARD + i * DST_SLOT
            jobs.append((kind, blob, Descriptor(OP_DECOMPRESS, src, dst, len(blob), tag=i,
                                                cap=cap, host=True)))
        b.send()
        guard = bytes(rng.getrandbits(8) for _ in range(HOST_SIZE))
        link.host_memory[:] = guard
        descs = [d for _, _, d in jobs]
        want = [tuple(c) for c in model.run(descs).completions]
        got = dma_jobs(b, descs, CYCLES_PER_PAGE * n)
        if got is None:
            rep.hangs += 1
            _note(rep, "hang", "batch", b"", blobs=[j[1].hex() for j in jobs])
            break
        mem = bytes(link.host_memory)
        inside = np.zeros(HOST_SIZE, bool)
        for (kind, blob, d), g, w in zip(jobs, got, want):
            k = rep.by_kind[kind]
            k["pages"] += 1
            k[{ST_OK: "ok", ST_CORRUPT: "corrupt", ST_OVERFLOW: "overflow"}[w[1]]] += 1
            off = d.dst - HOST_BASE
            inside[off: off + d.cap] = True
            if g[1] == ST_TIMEOUT:
                rep.hangs += 1
                _note(rep, "watchdog", kind, blob, got=g, want=w)
            elif g[1] != w[1]:
                rep.verdict_disagreements += 1
                _note(rep, "verdict", kind, blob, got=g, want=w)
            elif g != w:
                rep.byte_count_disagreements += 1
                _note(rep, "bytes", kind, blob, got=g, want=w)
            elif w[1] == ST_OK and mem[off: off + w[2]] != decompress(blob)[0][: w[2]]:
                rep.data_mismatches += 1
                _note(rep, "data", kind, blob, got=g)
        g_mem, g_ref = np.frombuffer(mem, np.uint8), np.frombuffer(guard, np.uint8)
        bad = np.nonzero((g_mem != g_ref) & ~inside)[0]
        if len(bad):
            rep.out_of_bounds_writes += len(bad)
            _note(rep, "out of bounds", "batch", b"", first_offset=int(bad[0]))
        done += n
        rep.pages = done
        if bar is not None:
            bar.update(n)
            bar.set_postfix_str(f"problems {rep.problems()}")
    if bar is not None:
        bar.close()
    rep.cycles, rep.wall_s = link.cycle - c0, round(time.time() - t0, 1)
    return rep
