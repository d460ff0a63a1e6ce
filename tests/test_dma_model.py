"""DMA reference model: descriptor checks, chains, statuses, memory effects, host lines."""

import random

import pytest

from gateware.dma.model import (Descriptor, DMAConfig, DMAModel, Completion, check,
                                OP_COPY, OP_COMPRESS, OP_DECOMPRESS, ST_OK, ST_FAULT,
                                ST_CORRUPT, ST_TIMEOUT, ST_OVERFLOW, ST_INVALID)

H = 1 << 32


def cfg(**kw):
    base = dict(dram_base=0x100, dram_size=0x1000, host_base=H, host_size=0x10000, depth=4,
                compress=lambda b: (bytes(x ^ 0xFF for x in b), False),
                decompress=lambda b: (b"", True) if b[0] == 0 else (b[::-1], False))
    base.update(kw)
    return DMAConfig(**base)


def test_check_windows_and_invalid():
    c = cfg()
    assert check(Descriptor(OP_COPY, 0x100, 0x200, 0x1000 - 0x100), c) == ST_OK
    assert check(Descriptor(OP_COPY, 0x100, 0x200, 0xF01), c) == ST_FAULT        # dst end
    assert check(Descriptor(OP_COPY, 0xFF, 0x200, 1), c) == ST_FAULT              # src start
    assert check(Descriptor(OP_COPY, 0x10FF, 0x200, 2), c) == ST_FAULT            # src end
    assert check(Descriptor(OP_COPY, 0x100, 0x10FF, 1), c) == ST_OK               # last byte
    assert check(Descriptor(OP_COPY, 0x100, H, 0x40, host=True), c) == ST_OK
    assert check(Descriptor(OP_COPY, 0x100, H - 64, 1, host=True), c) == ST_FAULT
    assert check(Descriptor(OP_COPY, 0x100, H + 0xFFC0, 65, host=True), c) == ST_FAULT
    assert check(Descriptor(OP_COPY, 0x100, H + 1, 1, host=True), c) == ST_INVALID
    assert check(Descriptor(OP_COPY, 0x100, 0x200, 0), c) == ST_INVALID
    assert check(Descriptor(OP_COPY, 0x100, 0x200, 1 << 24), c) == ST_INVALID
    assert check(Descriptor(3, 0x100, 0x200, 1), c) == ST_INVALID
    assert check(Descriptor(OP_COMPRESS, 0x100, 0x200, 8, cap=0), c) == ST_INVALID
    # codec destination range is cap, not length
    assert check(Descriptor(OP_COMPRESS, 0x100, 0x10F0, 0x100, cap=0x10), c) == ST_OK
    assert check(Descriptor(OP_COMPRESS, 0x100, 0x10F0, 0x1, cap=0x11), c) == ST_FAULT
    assert check(Descriptor(OP_COMPRESS, 0x100, 0x200, 8, cap=8), cfg(compress=None)) == ST_INVALID
    # invalid wins over fault
    assert check(Descriptor(OP_COPY, 0, 0, 0), c) == ST_INVALID


def test_copy_chain_and_guard_bytes():
    rng = random.Random(1)
    mem = bytearray(rng.getrandbits(8) for _ in range(0x2000))
    ref = bytearray(mem)
    descs = [Descriptor(OP_COPY, 0x101, 0x803, 77, tag=9, last=False),
             Descriptor(OP_COPY, 0x300, 0x900, 5, tag=1)]
    res = DMAModel(mem, cfg()).run(descs)
    assert res.completions == [Completion(9, ST_OK, 82)]
    ref[0x803:0x803 + 77] = ref[0x101:0x101 + 77]
    ref[0x900:0x905] = ref[0x300:0x305]
    assert mem == ref


def test_host_lines():
    mem = bytearray(range(256)) * 32
    res = DMAModel(mem, cfg()).run([Descriptor(OP_COPY, 0x105, H + 0x40, 130, tag=3, host=True)])
    assert [(l.addr, l.nbytes) for l in res.host_lines] == [(H + 0x40, 64), (H + 0x80, 64),
                                                           (H + 0xC0, 2)]
    assert res.host_lines[0].data == bytes(mem[0x105:0x145])
    assert res.host_lines[2].data == bytes(mem[0x185:0x187]) + bytes(62)
    assert all(l.tag == 3 for l in res.host_lines)


def test_statuses_and_skipping():
    mem = bytearray(0x2000)
    mem[0x200] = 0        # poison for the test decompressor
    mem[0x300] = 7
    descs = [
        Descriptor(OP_COPY, 0x100, 0x800, 4, tag=1, last=False),
        Descriptor(OP_DECOMPRESS, 0x200, 0x900, 16, cap=16, tag=2, last=False),   # corrupt
        Descriptor(OP_COPY, 0x100, 0xA00, 4, tag=3),                              # skipped
        Descriptor(OP_COMPRESS, 0x300, 0xB00, 16, cap=15, tag=4),                 # overflow
        Descriptor(OP_COPY, 0x100, 0xC00, 4, tag=5, last=False),
        Descriptor(OP_COPY, 0x0, 0xC00, 4, tag=6),                                # fault
        *[Descriptor(OP_COPY, 0x100, 0xD00, 1, tag=7, last=False) for _ in range(4)],
        Descriptor(OP_COPY, 0x100, 0xD00, 1, tag=7),                              # 5 > depth
        Descriptor(OP_COPY, 0x100, 0xE00, 4, tag=8),
        Descriptor(OP_COPY, 0x100, 0xF00, 4, tag=9),                              # timeout
    ]
    res = DMAModel(mem, cfg()).run(descs, timeouts={5: 0})
    assert res.completions == [Completion(1, ST_CORRUPT, 4), Completion(4, ST_OVERFLOW, 0),
                               Completion(5, ST_FAULT, 0), Completion(7, ST_INVALID, 0),
                               Completion(8, ST_OK, 4), Completion(9, ST_TIMEOUT, 0)]
    assert res.dirty == [("dram", 0x900, 0x910), ("dram", 0xB00, 0xB0F), ("dram", 0xF00, 0xF04)]
    assert mem[0xA00:0xA04] == bytes(4) and mem[0xC00:0xC04] == bytes(4)


def test_codec_ops():
    mem = bytearray(0x2000)
    mem[0x300:0x308] = b"abcdefgh"
    descs = [Descriptor(OP_COMPRESS, 0x300, 0x400, 8, cap=8, tag=1),
             Descriptor(OP_DECOMPRESS, 0x300, 0x500, 8, cap=8, tag=2)]
    res = DMAModel(mem, cfg()).run(descs)
    assert res.completions == [Completion(1, ST_OK, 8), Completion(2, ST_OK, 8)]
    assert mem[0x400:0x408] == bytes(x ^ 0xFF for x in b"abcdefgh")
    assert mem[0x500:0x508] == b"hgfedcba"


def test_unterminated_chain_rejected():
    with pytest.raises(ValueError, match="chain"):
        DMAModel(bytearray(16), cfg()).run([Descriptor(OP_COPY, 0x100, 0x200, 1, last=False)])
