"""Code packing of the reference KV-page codec (see ``reference.py``): bit packing,
level packing (base-`levels` groups) and the byte-oriented zero-run RLE."""
from __future__ import annotations

import numpy as np

from .ref_format import CodecError

# --------------------------------------------------------------------------------------------
# Bit packing (LSB-first little-endian bit stream)
# --------------------------------------------------------------------------------------------
def _group(bits: int) -> tuple[int, int]:
    """Values per byte-aligned group (g) and its bytes: g * bits = lcm(bits, 8) <= 64."""
    g = 8 // np.gcd(bits, 8)
    return int(g), int(g * bits // 8)


def pack_bits(q: np.ndarray, bits: int) -> np.ndarray:
    """(N, n) unsigned ints < 2**bits -> (N, ceil(n*bits/8)) bytes, value i at bit i*bits
    (little-endian, LSB first)."""
    q = np.asarray(q, dtype=np.uint8)
    N, n = q.shape
    g, gb = _group(bits)
    pad = -n % g
    if pad:
        q = np.concatenate([q, np.zeros((N, pad), np.uint8)], axis=1)
    w = (q.reshape(N, -1, g).astype(np.uint64) << (np.arange(g, dtype=np.uint64) * bits)).sum(
        axis=2, dtype=np.uint64)
    out = w.astype("<u8").view(np.uint8).reshape(N, -1, 8)[:, :, :gb].reshape(N, -1)
    return np.ascontiguousarray(out[:, : (n * bits + 7) // 8])


def unpack_bits(b: np.ndarray, bits: int, n: int) -> np.ndarray:
    b = np.asarray(b, dtype=np.uint8)
    N = b.shape[0]
    g, gb = _group(bits)
    ngroups = -(-n // g)
    buf = np.zeros((N, ngroups, 8), np.uint8)
    flat = buf[:, :, :gb].reshape(N, -1)
    m = min(flat.shape[1], b.shape[1])
    flat[:, :m] = b[:, :m]
    buf[:, :, :gb] = flat.reshape(N, ngroups, gb)
    w = buf.view("<u8").reshape(N, ngroups, 1)
    v = (w >> (np.arange(g, dtype=np.uint64) * bits)) & np.uint64((1 << bits) - 1)
    return v.reshape(N, -1)[:, :n].astype(np.uint8)


def level_group(levels: int) -> tuple[int, int]:
    """Packing of codes with `levels` values: (g, w) = g consecutive codes q_0..q_{g-1} form
    the base-`levels` number sum q_k * levels**k, stored in w = bitlen(levels**g - 1) bits;
    g in (1, 2, 4, 8) minimizes w / g (ties: the smaller g). 16 -> (1, 4), 8 -> (1, 3),
    12 -> (8, 29), 11 -> (2, 7), 6 -> (8, 21)."""
    best = None
    for g in (1, 2, 4, 8):
        w = int(levels ** g - 1).bit_length()
        if best is None or w * best[0] < best[1] * g:
            best = (g, w)
    return best


def pack_levels(q: np.ndarray, levels: int) -> np.ndarray:
    """(N, n) codes < levels -> (N, ceil(n/g * w / 8)) bytes: group j (values j*g ..
    j*g+g-1) as a w-bit field at bit j*w, LSB first (see level_group)."""
    q = np.asarray(q, dtype=np.uint64)
    N, n = q.shape
    g, w = level_group(levels)
    assert n % g == 0
    weights = np.array([levels ** k for k in range(g)], dtype=np.uint64)
    codes = (q.reshape(N, -1, g) * weights).sum(axis=2, dtype=np.uint64)
    bits = ((codes[..., None] >> np.arange(w, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(N, -1), axis=1, bitorder="little")


def unpack_levels(b: np.ndarray, levels: int, n: int) -> np.ndarray:
    """Inverse of pack_levels -> (N, n) uint8 codes. A field whose value is >= levels**g (a
    corrupt page that passed the CRC) decodes by the same digit rule as the gateware:
    q_k = (code // levels**k) % levels for k < g - 1, the last digit saturates at levels - 1."""
    b = np.asarray(b, dtype=np.uint8)
    N = b.shape[0]
    g, w = level_group(levels)
    bits = np.unpackbits(b, axis=1, bitorder="little")[:, : n // g * w].astype(np.uint64)
    codes = (bits.reshape(N, -1, w) << np.arange(w, dtype=np.uint64)).sum(axis=2,
                                                                        dtype=np.uint64)
    out = np.zeros((N, n // g, g), np.uint64)
    c = codes
    for k in range(g):
        if k < g - 1:
            out[:, :, k] = c % np.uint64(levels)
            c = c // np.uint64(levels)
        else:
            out[:, :, k] = np.minimum(c, np.uint64(levels - 1))
    return out.reshape(N, n).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Zero-run RLE (paper step 3), byte oriented: literal byte != 0 -> itself;
# a run of n zero bytes (1 <= n <= 256) -> 0x00, n-1.
# --------------------------------------------------------------------------------------------
def rle_encode(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data, dtype=np.uint8)
    z = data == 0
    if not z.any():
        return data.copy()
    n = data.size
    # zero runs
    dz = np.diff(np.concatenate([[0], z.astype(np.int8), [0]]))
    starts = np.flatnonzero(dz == 1)
    ends = np.flatnonzero(dz == -1)
    out = []
    pos = 0
    for s, e in zip(starts.tolist(), ends.tolist()):
        if s > pos:
            out.append(data[pos:s])
        ln = e - s
        full, rest = divmod(ln, 256)
        toks = [0, 255] * full + ([0, rest - 1] if rest else [])
        out.append(np.array(toks, dtype=np.uint8))
        pos = e
    if pos < n:
        out.append(data[pos:])
    return np.concatenate(out)


def rle_decode(enc: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Decode until n bytes are produced. Returns (data, bytes_consumed).
    Raises CodecError('format') if the stream ends early or a run overshoots n."""
    enc = np.asarray(enc, dtype=np.uint8)
    L = enc.size
    z = enc == 0
    # marker[i] = z[i] & ~marker[i-1]: inside a maximal run of zero bytes markers alternate,
    # starting with a marker (the byte before a zero run is nonzero, hence never a marker).
    dz = np.diff(np.concatenate([[0], z.astype(np.int8)]))
    run_start = np.maximum.accumulate(np.where(dz == 1, np.arange(L), 0))
    marker = z & (((np.arange(L) - run_start) & 1) == 0)
    count = np.concatenate([[False], marker[:-1]])
    literal = ~marker & ~count
    lens = np.where(literal, 1, 0).astype(np.int64)
    cnt_idx = np.flatnonzero(marker)
    # a marker as the very last byte has no count: truncated token
    valid = cnt_idx + 1 < L
    lens[cnt_idx[valid]] = enc[cnt_idx[valid] + 1].astype(np.int64) + 1
    total = np.cumsum(lens)
    if total.size == 0 or total[-1] < n:
        raise CodecError("format", "RLE stream ends before the page is complete")
    last = int(np.searchsorted(total, n, side="left"))  # token index (byte) finishing page
    if total[last] != n:
        raise CodecError("format", "RLE run crosses the end of the page")
    consumed = last + 1 + (1 if marker[last] else 0)   # a marker is followed by its count
    vals = np.where(literal[: last + 1], enc[: last + 1], 0)
    out = np.repeat(vals, lens[: last + 1])
    return out.astype(np.uint8), consumed
