"""DMA with the real KV codec cores (gateware/codec) behind ``PackedCodec``: compress a page
into a DRAM slot, decompress it back (to DRAM and to host lines) in the same job, corrupt
pages (CRC, header, other mode) end their job with status corrupt; every byte against the
model driven by the codec reference."""

import random

import numpy as np
import pytest

from gateware.codec import reference as R
from gateware.dma.model import (Descriptor, OP_COMPRESS, OP_DECOMPRESS, OP_COPY, ST_OK,
                                ST_CORRUPT, ST_OVERFLOW)
from tests.dma_kit import Bench, assert_memory

T, D = 8, 16
PAGE = 4 * T * D          # 512 bytes


def fp16_page(rng):
    x = np.array([rng.gauss(0, 2) for _ in range(2 * T * D)], dtype=np.float16)
    return x.view(np.uint16).tobytes()


@pytest.mark.parametrize("mode,dw,codec_period", [
    ("kivi_k4v3", 64, None),
    # the codecs on their own, slower clock behind CodecCDC (the DDR3 board builds)
    ("kivi_k4v3", 32, 37),
])
def test_kv_codec_roundtrip_and_corruption(mode, dw, codec_period):
    rng = random.Random(7)
    b = Bench(dw=dw, aw_bytes=1 << 16, seed=rng.random(), stalls=True, kv=(mode, T, D),
              timeout=20000, stall_p=0.15, codec_period=codec_period)
    H = b.cfg.host_base
    clen = R.page_length(R.MODES[mode], T, D)
    pages = [fp16_page(rng) for _ in range(3)]
    b.mem[0x1003:0x1003 + PAGE] = pages[0]           # unaligned source
    good = R.compress(np.frombuffer(pages[2], "<u2").reshape(2, T, D), R.MODES[mode])
    bad_crc = bytearray(good)
    bad_crc[20] ^= 0x10
    other = R.compress(np.frombuffer(pages[2], "<u2").reshape(2, T, D),
                       R.MODES["int8" if mode != "int8" else "raw"])
    b.mem[0x2000:0x2000 + clen] = good
    b.mem[0x2400:0x2400 + clen] = bad_crc
    b.mem[0x2800:0x2800 + len(other)] = other
    b.initial = bytes(b.mem)
    descs = [
        # offload then read back within one job: the decompressor reads what the compressor wrote
        Descriptor(OP_COMPRESS, 0x1003, 0x4005, PAGE, cap=clen, tag=1, last=False),
        Descriptor(OP_DECOMPRESS, 0x4005, 0x5003, clen, cap=PAGE, tag=1, last=False),
        Descriptor(OP_DECOMPRESS, 0x4005, H + 0x1000, clen, cap=PAGE, tag=1, host=True),
        Descriptor(OP_DECOMPRESS, 0x2400, 0x8000, clen, cap=PAGE, tag=4),        # CRC
        Descriptor(OP_DECOMPRESS, 0x2800, 0x9000, len(other), cap=PAGE, tag=5),  # other mode
        Descriptor(OP_COPY, 0x2000, 0xB001, 33, tag=7),
        # a compressor abandoned mid-page (its output overflows cap), then the next page
        # must come out of a cleanly reset compressor and decompressor
        Descriptor(OP_COMPRESS, 0x1003, 0xC000, PAGE, cap=100, tag=8),
        Descriptor(OP_DECOMPRESS, 0x2400, 0xD000, clen, cap=40, tag=9),
        Descriptor(OP_COMPRESS, 0x1003, 0xE001, PAGE, cap=clen, tag=10, last=False),
        Descriptor(OP_DECOMPRESS, 0xE001, 0xF000, clen, cap=PAGE, tag=10),
    ]
    mem, res = b.expected(descs)
    comps, lines = b.run(descs, max_cycles=60000)
    assert comps == res.completions
    assert [c.status for c in comps] == [ST_OK, ST_CORRUPT, ST_CORRUPT, ST_OK, ST_OVERFLOW,
                                         ST_CORRUPT, ST_OK]
    assert lines == res.host_lines and len(lines) == PAGE // 64
    assert_memory(b.mem, mem, res.dirty, b.initial)
    # the round trip restores the page within the codec's error bound (lossy modes)
    back = np.frombuffer(bytes(b.mem[0x5003:0x5003 + PAGE]), "<u2")
    ref = R.decompress(R.compress(np.frombuffer(pages[0], "<u2").reshape(2, T, D),
                                  R.MODES[mode]))
    assert np.array_equal(back, R.as_bits(ref).reshape(-1))


@pytest.mark.parametrize("dw,t,d", [(32, T, D), (64, T, D), (128, 16, 32)])
def test_page_length_is_checked_to_the_byte(dw, t, d):
    """A decompress job a few bytes short of its page, with the page's own bytes behind it in
    DRAM, or a few bytes long, is corrupt (the reference's truncated / overlong), also when
    the difference stays inside the last bus beat (128 bits: a page of whole beats)."""
    rng = random.Random(dw)
    b = Bench(dw=dw, aw_bytes=1 << 16, seed=rng.random(), stalls=True, kv=("kivi_k4v3", t, d),
              timeout=20000, stall_p=0.15)
    clen = R.page_length(R.MODES["kivi_k4v3"], t, d)
    x = np.array([rng.gauss(0, 2) for _ in range(2 * t * d)], dtype=np.float16)
    good = R.compress(x.reshape(2, t, d), R.MODES["kivi_k4v3"])
    b.mem[0x2000:0x2000 + clen] = good
    b.mem[0x2000 + clen:0x2000 + clen + 64] = bytes(rng.getrandbits(8) for _ in range(64))
    b.initial = bytes(b.mem)
    lengths = [clen - c for c in (1, 4, 7)] + [clen + e for e in (1, 7)] + [clen]
    descs = [Descriptor(OP_DECOMPRESS, 0x2000, 0x4000 + i * 0x800, n, cap=4 * t * d, tag=i)
             for i, n in enumerate(lengths)]
    mem, res = b.expected(descs)
    comps, _ = b.run(descs, max_cycles=120000)
    assert [c.status for c in res.completions] == [ST_CORRUPT] * 5 + [ST_OK]
    assert comps == res.completions
    assert_memory(b.mem, mem, res.dirty, b.initial)
