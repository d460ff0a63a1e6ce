"""Parallel CRC-32 (IEEE 802.3 / zlib) for Migen, generated from the bit-serial definition.

The CRC register update over ``w`` data bits is linear over GF(2): ``next = A.state ^ B.data``.
The matrices are derived here by running the reflected bit-serial algorithm on unit vectors,
so there is no hand-written XOR table to get wrong. Data bytes enter little endian (byte 0 in
bits 7:0), matching ``zlib.crc32`` over the byte stream.
"""
from __future__ import annotations

from functools import lru_cache

from migen import Cat

POLY_REFLECTED = 0xEDB88320
INIT = 0xFFFFFFFF
XOROUT = 0xFFFFFFFF


def crc32_bits(state: int, data: int, width: int) -> int:
    """Bit-serial reflected CRC-32 update of `state` with `width` data bits, LSB first."""
    for i in range(width):
        bit = ((state ^ (data >> i)) & 1)
        state = (state >> 1) ^ (POLY_REFLECTED if bit else 0)
    return state


@lru_cache(maxsize=None)
def crc32_matrix(width: int) -> list[tuple[int, int]]:
    """For each output bit i: (mask over state bits, mask over data bits) whose XOR is bit i."""
    cols_s = [crc32_bits(1 << j, 0, width) for j in range(32)]
    cols_d = [crc32_bits(0, 1 << j, width) for j in range(width)]
    rows = []
    for i in range(32):
        ms = sum(1 << j for j in range(32) if (cols_s[j] >> i) & 1)
        md = sum(1 << j for j in range(width) if (cols_d[j] >> i) & 1)
        rows.append((ms, md))
    return rows


def _xor_reduce(bits):
    bits = list(bits)
    if not bits:
        return 0
    r = bits[0]
    for b in bits[1:]:
        r = r ^ b
    return r


def crc32_expr(state, data, width: int):
    """Migen expression of the CRC register after `width` bits of `data` (a Signal/slice)."""
    if width % 8:
        raise ValueError("CRC data width must be a multiple of 8")
    rows = crc32_matrix(width)
    out = []
    for ms, md in rows:
        terms = [state[j] for j in range(32) if (ms >> j) & 1]
        terms += [data[j] for j in range(width) if (md >> j) & 1]
        out.append(_xor_reduce(terms))
    return Cat(*out)


def crc32_model(state: int, data: int, width: int) -> int:
    """Python model of crc32_expr (for tests): same matrices."""
    out = 0
    for i, (ms, md) in enumerate(crc32_matrix(width)):
        out |= (bin(state & ms).count("1") + bin(data & md).count("1")) % 2 << i
    return out
