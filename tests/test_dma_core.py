"""DMA core (Migen simulation) against the reference model: every DRAM byte (guard bytes
around every destination included), every host line, every completion, under random
valid/ready stalls on every stream and random DRAM latency."""

import os
import random

import pytest

from gateware.dma.model import (Descriptor, Completion, OP_COPY, OP_COMPRESS, OP_DECOMPRESS,
                                ST_OK, ST_FAULT, ST_CORRUPT, ST_TIMEOUT, ST_OVERFLOW,
                                ST_INVALID)
from tests.dma_kit import Bench, assert_memory, assert_host_lines

SEED = int(os.environ.get("DMA_SEED", "1"))

PAGE = 4096
SRC_OFFSETS = (0, 1, 3, 63, 4095)
DST_OFFSETS = (0, 2, 5, 62, 4094)
LENGTHS = (1, 2, 63, 64, 65, 4095, 4096, 4097)


def sweep_descs(lengths, slot, src_base, dst_base, rng):
    """One copy per (length, offsets) pair; source and destination each start at ``offset``
    bytes before a 4 KiB boundary of their own 3-page slot (so transfers cross it), chains of
    1-3 descriptors."""
    descs = []
    j = 0
    for n in lengths:
        for so in SRC_OFFSETS:
            do = DST_OFFSETS[(j * 3 + SRC_OFFSETS.index(so)) % len(DST_OFFSETS)]
            src = src_base + j * slot + PAGE - so if so else src_base + j * slot + PAGE
            dst = dst_base + j * slot + PAGE - do if do else dst_base + j * slot + PAGE
            descs.append([src, dst, n])
            j += 1
    out = []
    tag = 0
    i = 0
    while i < len(descs):
        k = min(rng.choice((1, 1, 2, 3)), len(descs) - i)
        for c in range(k):
            src, dst, n = descs[i + c]
            out.append(Descriptor(OP_COPY, src, dst, n, tag=tag & 0xFF, last=(c == k - 1)))
        tag += 7
        i += k
    return out


def check_run(bench, descs, timeouts=None, **kw):
    mem, res = bench.expected(descs, timeouts)
    comps, lines = bench.run(descs, **kw)
    assert comps == res.completions
    assert_host_lines(lines, res.host_lines, res.dirty)
    assert_memory(bench.mem, mem, res.dirty, bench.initial)
    return res


@pytest.mark.parametrize("dw", [32, 128])
def test_copy_length_offset_sweep(dw):
    """Length x offset sweep across 4 KiB boundaries, random guard bytes everywhere (dw=32
    leaves out 4095/4096: the same aligner cases as 4097, four times the beats)."""
    rng = random.Random(SEED * 10 + dw)
    lengths = LENGTHS if dw == 128 else (1, 2, 63, 64, 65, 4097)
    b = Bench(dw=dw, aw_bytes=1 << 20, seed=rng.random(), stalls=True, stall_p=0.15)
    descs = sweep_descs(lengths, 3 * PAGE, 0, 1 << 19, rng)
    res = check_run(b, descs)
    assert all(c.status == ST_OK for c in res.completions)
    assert sum(c.bytes for c in res.completions) == sum(d.length for d in descs)


@pytest.mark.parametrize("dw", [32, 128])
def test_copy_random_small(dw):
    """Random short copies (0..3 words), random offsets, chains, overlapping nothing."""
    rng = random.Random(SEED * 20 + dw)
    b = Bench(dw=dw, aw_bytes=1 << 16, seed=rng.random(), stalls=True)
    descs = []
    for j in range(60):
        n = rng.randint(1, 3 * dw // 8 + 1)
        descs.append(Descriptor(OP_COPY, j * 256 + rng.randrange(64), 0x8000 + j * 256 +
                                rng.randrange(64), n, tag=j, last=rng.random() < 0.6 or j == 59))
    check_run(b, descs)


@pytest.mark.parametrize("dw", [32, 128])
def test_host_destination(dw):
    """Copies and codec ops into host lines: addresses, nbytes, zero padding, tags."""
    rng = random.Random(SEED * 30 + dw)
    b = Bench(dw=dw, aw_bytes=1 << 16, seed=rng.random(), stalls=True)
    H = b.cfg.host_base
    descs = []
    for j, (n, so) in enumerate([(1, 0), (63, 5), (64, 0), (65, 3), (200, 1), (1000, 63),
                                 (4096 if dw > 32 else 1024, 0), (130, 7)]):
        descs.append(Descriptor(OP_COPY, 0x1000 * j + 0x400 - so, H + 0x2000 * j, n, tag=j,
                                host=True))
    descs.append(Descriptor(OP_COMPRESS, 0x9000 + 9, H + 0x20000, 300, cap=300, tag=40,
                            host=True))
    descs.append(Descriptor(OP_DECOMPRESS, 0xA000 + 1, H + 0x21000, 129, cap=200, tag=41,
                            host=True, last=False))
    descs.append(Descriptor(OP_COPY, 0xB000 + 1, H + 0x22000 + 64, 64, tag=42, host=True))
    b.mem[0xA001] = 0x00      # not the poison byte
    b.initial = bytes(b.mem)
    check_run(b, descs)


@pytest.mark.parametrize("dw", [32, 128])
def test_codec_ops(dw):
    """Compress / decompress through the codec hook (test transforms), DRAM destinations,
    arbitrary offsets, transform stalls; corrupt page and overflow stop only their job."""
    rng = random.Random(SEED * 40 + dw)
    b = Bench(dw=dw, aw_bytes=1 << 17, seed=rng.random(), stalls=True)
    for a in (0x2000, 0x6000, 0x7000):
        b.mem[a] = 0x11            # decompress sources: not poisoned
    b.mem[0x5003] = 0xFF           # poisoned page (corrupt)
    b.initial = bytes(b.mem)
    descs = [
        Descriptor(OP_COMPRESS, 0x1000, 0x10000, 4096 if dw > 32 else 1536, cap=4096, tag=1),
        Descriptor(OP_DECOMPRESS, 0x2000, 0x12001, 1001, cap=1001, tag=2),
        Descriptor(OP_COMPRESS, 0x3003, 0x14005, 777, cap=800, tag=3, last=False),
        Descriptor(OP_COPY, 0x4001, 0x15002, 99, tag=3),
        Descriptor(OP_DECOMPRESS, 0x5003, 0x16000, 2048, cap=2048, tag=4),    # corrupt
        Descriptor(OP_COMPRESS, 0x6000, 0x18000, 512, cap=500, tag=5),        # overflow
        Descriptor(OP_DECOMPRESS, 0x7000, 0x1A003, 333, cap=333, tag=6, last=False),
        Descriptor(OP_DECOMPRESS, 0x5003, 0x1B000, 64, cap=64, tag=6),        # corrupt in chain
        Descriptor(OP_COPY, 0x8000, 0x1C000, 100, tag=7),
    ]
    res = check_run(b, descs)
    st = [c.status for c in res.completions]
    assert st == [ST_OK, ST_OK, ST_OK, ST_CORRUPT, ST_OVERFLOW, ST_CORRUPT, ST_OK]
    assert res.completions[5] == Completion(6, ST_CORRUPT, 333)


def test_queue_time_faults_and_invalid():
    """Faults and invalid descriptors skip their whole job without any memory access; later
    jobs run normally; a chain longer than the queue is invalid and does not deadlock."""
    rng = random.Random(SEED * 50)
    b = Bench(dw=32, aw_bytes=1 << 16, seed=rng.random(), stalls=True, depth=4, codecs=False)
    b.cfg.dram_base, b.cfg.dram_size = 0x1000, 0xE000        # window [0x1000, 0xF000)
    H = b.cfg.host_base
    ok = lambda t, last=True: Descriptor(OP_COPY, 0x2000 + 0x100 * t, 0x9000 + 0x100 * t, 40,
                                         tag=t, last=last)
    descs = [
        ok(1),
        Descriptor(OP_COPY, 0x0FFF, 0x9000, 16, tag=2),              # src below window
        Descriptor(OP_COPY, 0xEFF8, 0x9000, 9, tag=3),               # src ends past window
        ok(4, last=False), Descriptor(OP_COPY, 0x2000, 0xEFFF, 2, tag=4),  # dst past, in chain
        Descriptor(OP_COPY, 0x2000, 0x800, 16, tag=5),               # dst below window
        Descriptor(OP_COPY, 0x2000, H - 64, 16, tag=6, host=True),   # host dst below window
        Descriptor(OP_COPY, 0x2000, H + (1 << 24) - 64, 65, tag=7, host=True),  # host past
        Descriptor(OP_COPY, 0x2000, 0x9000, 0, tag=8),               # length 0
        Descriptor(3, 0x2000, 0x9000, 16, tag=9),                    # unknown op
        Descriptor(OP_COMPRESS, 0x2000, 0x9000, 16, cap=16, tag=10),  # no compressor
        Descriptor(OP_DECOMPRESS, 0x2000, 0x9000, 16, cap=16, tag=11),
        Descriptor(OP_COPY, 0x2000, H + 8, 16, tag=12, host=True),   # host dst unaligned
        ok(13),
        *[ok(14, last=False) for _ in range(6)], ok(14),             # chain of 7 > depth 4
        ok(15, last=False), ok(15, last=False), ok(15, last=False), ok(15),  # chain of 4: ok
        Descriptor(OP_COPY, 0x2000, 0xEFF0, 16, tag=16),             # exactly at the end: ok
    ]
    res = check_run(b, descs)
    assert [c.status for c in res.completions] == [
        ST_OK, ST_FAULT, ST_FAULT, ST_FAULT, ST_FAULT, ST_FAULT, ST_FAULT, ST_INVALID,
        ST_INVALID, ST_INVALID, ST_INVALID, ST_INVALID, ST_OK, ST_INVALID, ST_OK, ST_OK]


def test_timeouts_and_recovery():
    """A read port that stops answering for a while, a write port that stops taking data,
    a host that stops taking lines: each job is abandoned with status timeout, nothing is
    written outside its destination, and the following jobs complete with correct data
    (late read data of the abandoned job is dropped)."""
    rng = random.Random(SEED * 60)
    b = Bench(dw=32, aw_bytes=1 << 16, seed=rng.random(), stalls=False, timeout=200,
              latency=(2, 4), codecs=False)
    H = b.cfg.host_base
    slow_word = 0x3000 // 4 + 5
    b.read_delay = lambda a: 300 if a == slow_word else 0
    b.write_stall = lambda c: 3600 <= c < 3900
    b.host_stall = lambda c: 6000 <= c < 6300
    descs = [
        Descriptor(OP_COPY, 0x1000, 0x8000, 64, tag=1),
        Descriptor(OP_COPY, 0x3000, 0x9001, 100, tag=2),     # read of word +5 stalls 300
    ]

    # Phase two (after the read stall) needs write and host stalls at known cycles: queue
    # those jobs later from a second driver.
    late = [
        # queued long after the abandoned reads returned: their data must have been dropped
        Descriptor(OP_COPY, 0x4000, 0xA000, 128, tag=3),
        Descriptor(OP_COPY, 0x1000, 0x8800, 64, tag=4),
        Descriptor(OP_COPY, 0x5000, 0xB000, 2000, tag=5),    # write port stalls 300 cycles
        Descriptor(OP_COPY, 0x1000, 0xC000, 300, tag=6),
        Descriptor(OP_COPY, 0x6000, H + 0x1000, 1000, tag=7, host=True),  # host stalls
        Descriptor(OP_COPY, 0x7000, H + 0x2000, 64, tag=8, host=True),
        Descriptor(OP_COPY, 0x7000, 0xD000, 64, tag=9),
    ]
    mem, res = b.expected(descs + late, {1: 0, 4: 0, 6: 0})
    from tests.stream_kit import send

    def late_driver():
        for _ in range(3400):
            yield
        yield from send(b.dut.sink, [dict(op=d.op, host=int(d.host), tag=d.tag, src=d.src,
                                          dst=d.dst, length=d.length, cap=d.cap, last=1)
                                     for d in late[:4]])
        for _ in range(5900 - 3400):
            yield
        yield from send(b.dut.sink, [dict(op=d.op, host=int(d.host), tag=d.tag, src=d.src,
                                          dst=d.dst, length=d.length, cap=d.cap, last=1)
                                     for d in late[4:]])

    from migen.sim import passive
    comps, lines = b.run(descs, max_cycles=20000, extra=[passive(late_driver)()],
                         wait_jobs=len(descs) + len(late))
    assert comps == res.completions
    assert [c.status for c in comps] == [ST_OK, ST_TIMEOUT, ST_OK, ST_OK, ST_TIMEOUT, ST_OK,
                                         ST_TIMEOUT, ST_OK, ST_OK]
    # host lines: the abandoned job's lines are a prefix of its model lines, then job 8's
    exp_lines = b.expected(descs + late)[1].host_lines
    got7 = [l for l in lines if l.tag == 7]
    assert got7 == [l for l in exp_lines if l.tag == 7][:len(got7)]
    assert [l for l in lines if l.tag == 8] == [l for l in exp_lines if l.tag == 8]
    assert_memory(b.mem, mem, res.dirty, b.initial)


def random_jobs(rng, b, n_jobs, region=0x8000):
    """Random jobs of every kind: copies and codec ops (test transforms), DRAM and host
    destinations, chains, poisoned pages, overflows, window faults, invalid descriptors.
    Sources come from the low half of DRAM, destinations are disjoint slots in the high
    half (so no job reads what a failed job may have scribbled)."""
    H = b.cfg.host_base
    descs = []
    slot = 0
    for j in range(n_jobs):
        k = rng.choice((1, 1, 1, 2, 3))
        for c in range(k):
            n = rng.choice((1, 2, 3, rng.randint(1, 300), rng.randint(1, 80)))
            op = rng.choice((OP_COPY, OP_COPY, OP_COMPRESS, OP_DECOMPRESS))
            host = rng.random() < 0.3
            src = rng.randrange(region - n)
            cap = n if op == OP_COPY else max(1, n + rng.choice((0, 0, 0, 5, -1, -3)))
            span = max(n, cap)
            if host:
                dst = H + 0x1000 * slot
            else:
                dst = region + 0x200 * slot + rng.randrange(64)
            slot += 1
            r = rng.random()
            if r < 0.04:
                src = region * 2 - 1                        # fault: past the window
            elif r < 0.06:
                n = 0                                       # invalid
            elif r < 0.08 and host:
                dst += 4                                    # invalid: unaligned host line
            if op == OP_DECOMPRESS and n:
                b.mem[src] = 0xFF if rng.random() < 0.15 else rng.randrange(0xFF)
            descs.append(Descriptor(op, src, dst, n, cap=cap, tag=j & 0xFF, host=host,
                                    last=(c == k - 1)))
            assert span <= 0x200 - 64
    b.initial = bytes(b.mem)
    return descs


@pytest.mark.parametrize("dw, seed", [(32, 0), (64, 1), (128, 2)])
def test_random_mixed_jobs(dw, seed):
    rng = random.Random(SEED * 1000 + seed)
    b = Bench(dw=dw, aw_bytes=1 << 16, seed=rng.random(), stalls=True, depth=4)
    b.cfg.dram_size = 0x10000
    descs = random_jobs(rng, b, 40)
    res = check_run(b, descs)
    kinds = {c.status for c in res.completions}
    assert ST_OK in kinds and len(kinds) >= 3


def test_codec_stall_timeout():
    """A codec that stops moving: the job times out, the codec is reset, the next codec job
    (and a copy) complete with correct data."""
    rng = random.Random(SEED * 70)
    b = Bench(dw=32, aw_bytes=1 << 16, seed=rng.random(), stalls=False, timeout=150)
    b.codec_stall = lambda c: 100 <= c < 300
    b.mem[0x2000] = 0x10
    b.initial = bytes(b.mem)
    descs = [
        Descriptor(OP_COMPRESS, 0x1001, 0x8000, 1000, cap=1000, tag=1),    # stalls at ~100
        Descriptor(OP_DECOMPRESS, 0x2000, 0x9003, 200, cap=200, tag=2),
        Descriptor(OP_COPY, 0x3000, 0xA000, 50, tag=3),
    ]
    res = check_run(b, descs, timeouts={0: 0})
    assert [c.status for c in res.completions] == [ST_TIMEOUT, ST_OK, ST_OK]
