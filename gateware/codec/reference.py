"""Reference KV-page codec: the specification of the compressed-page format and its arithmetic.

Every gateware core in this folder must reproduce these functions bit for bit. The format is
described in ``gateware/codec/README.md``; this module is its executable form.

A page is ``(2, T, D)`` FP16 values: index 0 is K, 1 is V, ``T`` tokens, ``D`` = head_dim,
row-major (token-major, channel-minor). Default geometry T=16, D=64 (4096 bytes).

Arithmetic is integer-only after the FP16 decode: an FP16 value is mapped to a signed integer
in units of 2**-24 (the smallest FP16 subnormal), which represents every finite FP16 value
exactly (|x| < 2**41 units). Scales are 8-bit E5M3 codes ``val = (8 + m) << (e + 5)`` in the
units; quantization is a multiply by a 16-bit reciprocal constant and a shift; dequantization
is an exact integer multiply-add followed by one round-to-nearest-even conversion to FP16.

Everything is vectorized over a batch of pages (``compress_batch`` / ``decompress_batch``).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------------
# Format constants
# --------------------------------------------------------------------------------------------
MAGIC = 0xC5
VERSION = 1
HEADER_BYTES = 8
CRC_BYTES = 4
ALIGN = 8                      # every section starts on an 8-byte boundary; total length too

FLAG_NONFINITE = 0x1           # lossy modes: a NaN/inf input was replaced (see README)
FLAG_SINK = 0x2                # kivi modes: token 0's K kept exact (attention-sink page)

MODE_RAW = 0
MODE_INT8 = 1
MODE_INT8_DELTA = 2
MODE_INT8_DELTA_RLE = 3
MODE_KIVI = 4                  # asymmetric, K per-channel, V per-token, kbits/vbits in header
MODE_KIVI_ZP = 5               # as KIVI with integer zero points and level-packed codes
MODE_KIVI_L = 6                # as KIVI (FP16 minima) with any level count, level-packed
MODE_KIVI_ZN = 7               # as KIVI_ZP with 4-bit V zero points (two a byte)


@dataclass(frozen=True)
class Mode:
    """A codec mode: ``kind`` is one of the MODE_* ids; ``kbits``/``vbits`` for KIVI (bits
    per code), ``klev``/``vlev`` for KIVI_ZP, _ZN, _L (quantization levels per value)."""
    name: str
    kind: int
    kbits: int = 0
    vbits: int = 0
    klev: int = 0
    vlev: int = 0

    @property
    def lossless(self) -> bool:
        return self.kind == MODE_RAW

    @property
    def kivi_like(self) -> bool:
        """K per channel, V per token, SINK pages allowed (MODE_KIVI, _ZP, _L, _ZN)."""
        return self.kind in (MODE_KIVI, MODE_KIVI_ZP, MODE_KIVI_L, MODE_KIVI_ZN)

    @property
    def level_packed(self) -> bool:
        """Codes level-packed (kivi_z, kivi_l, kivi_n); kivi packs bits."""
        return self.kind in (MODE_KIVI_ZP, MODE_KIVI_L, MODE_KIVI_ZN)

    @property
    def k_levels(self) -> int:
        return (1 << self.kbits) if self.kind == MODE_KIVI else self.klev

    @property
    def v_levels(self) -> int:
        return (1 << self.vbits) if self.kind == MODE_KIVI else self.vlev

    @property
    def zp(self) -> bool:
        """Groups carry integer zero points (else the FP16 group minimum)."""
        return self.kind in (MODE_KIVI_ZP, MODE_KIVI_ZN)

    def zero_range(self, side: str) -> tuple[int, int] | None:
        """(most negative, most positive) zero point of a K or V group: int8 fields
        (-127, 127), kivi_n's 4-bit V fields (-8, 7); None with FP16 minima."""
        if not self.zp:
            return None
        if side == "v" and self.kind == MODE_KIVI_ZN:
            return ZN_V_ZERO
        return -ZP_ZERO_MAX, ZP_ZERO_MAX

    def zero_bits(self, side: str) -> int:
        return 4 if side == "v" and self.kind == MODE_KIVI_ZN else 8

    @property
    def bits_byte(self) -> int:
        if self.level_packed:
            return ((self.klev - 1) << 4) | (self.vlev - 1)
        return (self.kbits << 4) | self.vbits


MODES = {
    "raw": Mode("raw", MODE_RAW),
    "int8": Mode("int8", MODE_INT8),
    "int8_delta": Mode("int8_delta", MODE_INT8_DELTA),
    "int8_delta_rle": Mode("int8_delta_rle", MODE_INT8_DELTA_RLE),
    "kivi_k4v4": Mode("kivi_k4v4", MODE_KIVI, 4, 4),
    "kivi_k4v3": Mode("kivi_k4v3", MODE_KIVI, 4, 3),
    "kivi_k3v3": Mode("kivi_k3v3", MODE_KIVI, 3, 3),
    "kivi_k3v2": Mode("kivi_k3v2", MODE_KIVI, 3, 2),
    "kivi_k2v2": Mode("kivi_k2v2", MODE_KIVI, 2, 2),
    "kivi_z16v6": Mode("kivi_z16v6", MODE_KIVI_ZP, klev=16, vlev=6),
    "kivi_z16v8": Mode("kivi_z16v8", MODE_KIVI_ZP, klev=16, vlev=8),
    "kivi_z12v8": Mode("kivi_z12v8", MODE_KIVI_ZP, klev=12, vlev=8),
    "kivi_z10v9": Mode("kivi_z10v9", MODE_KIVI_ZP, klev=10, vlev=9),
    "kivi_z9v10": Mode("kivi_z9v10", MODE_KIVI_ZP, klev=9, vlev=10),
    "kivi_n10v9": Mode("kivi_n10v9", MODE_KIVI_ZN, klev=10, vlev=9),
    "kivi_l16v14": Mode("kivi_l16v14", MODE_KIVI_L, klev=16, vlev=14),
    "kivi_l16v13": Mode("kivi_l16v13", MODE_KIVI_L, klev=16, vlev=13),
    "kivi_l16v12": Mode("kivi_l16v12", MODE_KIVI_L, klev=16, vlev=12),
}
KIVI_BITS = (2, 3, 4, 5, 6, 7, 8)
ZP_LEVELS = tuple(range(4, 17))        # levels per value of MODE_KIVI_ZP / _L (qmax 3..15)
ZP_ZERO_MAX = 127                      # |zero point| <= 127 (int8 field)
ZN_V_ZERO = (-8, 7)                    # kivi_n's V zero points (4-bit two's complement)


def mode_from_header(kind: int, bits_byte: int) -> Mode:
    if kind in (MODE_KIVI_ZP, MODE_KIVI_L, MODE_KIVI_ZN):
        kl, vl = (bits_byte >> 4) + 1, (bits_byte & 15) + 1
        if kl not in ZP_LEVELS or vl not in ZP_LEVELS:
            raise CodecError("header", f"bad level counts {kl}/{vl}")
        for m in MODES.values():
            if m.kind == kind and m.klev == kl and m.vlev == vl:
                return m
        tag = {MODE_KIVI_ZP: "z", MODE_KIVI_L: "l", MODE_KIVI_ZN: "n"}[kind]
        return Mode(f"kivi_{tag}{kl}v{vl}", kind, klev=kl, vlev=vl)
    if kind == MODE_KIVI:
        kb, vb = bits_byte >> 4, bits_byte & 15
        if kb not in KIVI_BITS or vb not in KIVI_BITS:
            raise CodecError("header", f"bad KIVI bit widths {kb}/{vb}")
        for m in MODES.values():
            if m.kind == MODE_KIVI and m.kbits == kb and m.vbits == vb:
                return m
        return Mode(f"kivi_k{kb}v{vb}", MODE_KIVI, kb, vb)
    if bits_byte != 0:
        raise CodecError("header", "bits byte must be 0 outside KIVI")
    for m in MODES.values():
        if m.kind == kind:
            return m
    raise CodecError("header", f"unknown mode {kind}")


class CodecError(ValueError):
    """A compressed page is corrupt. ``kind`` is one of ERROR_KINDS."""

    def __init__(self, kind: str, msg: str):
        assert kind in ERROR_KINDS
        super().__init__(f"{kind}: {msg}")
        self.kind = kind


# Error kinds and their status codes (shared with the gateware decompressor's `error` field).
ERROR_KINDS = {"header": 1, "truncated": 2, "overlong": 3, "crc": 4, "format": 5}


# --------------------------------------------------------------------------------------------
# FP16 <-> integer (units of 2**-24)
# --------------------------------------------------------------------------------------------
FP16_MAX_BITS = 0x7BFF         # 65504
FP16_MAX_UNITS = 2047 << 29    # 65504 * 2**24


def sanitize(bits: np.ndarray) -> tuple[np.ndarray, bool]:
    """Lossy-mode input policy: NaN -> +0, +-inf -> +-65504. Returns (bits, any_replaced)."""
    bits = np.asarray(bits, dtype=np.uint16)
    nonfinite = (bits & 0x7C00) == 0x7C00
    if not nonfinite.any():
        return bits, False
    nan = nonfinite & ((bits & 0x03FF) != 0)
    inf = nonfinite & ~nan
    out = bits.copy()
    out[nan] = 0
    out[inf] = (bits[inf] & 0x8000) | FP16_MAX_BITS
    return out, True


def fp16_to_int_spec(bits: np.ndarray) -> np.ndarray:
    """Finite FP16 bit patterns -> signed int64 in units of 2**-24 (exact). -0 -> 0."""
    b = np.asarray(bits, dtype=np.int64)
    e = (b >> 10) & 31
    m = b & 1023
    mag = np.where(e == 0, m, (m | 1024) << np.maximum(e - 1, 0))
    return np.where(b & 0x8000, -mag, mag)


def fp16_to_int(bits: np.ndarray) -> np.ndarray:
    """Same as fp16_to_int_spec (the bit-level definition the gateware follows), computed
    through float64, which holds every FP16 value times 2**24 exactly."""
    f = np.asarray(bits, dtype=np.uint16).view(np.float16).astype(np.float64)
    return (f * 16777216.0).astype(np.int64)


def int_to_fp16_spec(v: np.ndarray) -> np.ndarray:
    """Signed int64 (units of 2**-24) -> FP16 bits, round to nearest even, saturating at
    +-65504 (never inf). Zero (either sign of rounding) -> +0."""
    v = np.asarray(v, dtype=np.int64)
    mag = np.abs(v)
    # bit length of mag: exact through float64 because |v| < 2**53 in every use
    assert mag.size == 0 or mag.max() < (1 << 53)
    n = np.frexp(mag.astype(np.float64))[1].astype(np.int64)
    shift = np.maximum(n - 11, 0)
    # round to nearest even on the `shift` dropped bits
    mant = mag >> shift
    rem = mag - (mant << shift)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    up = (shift > 0) & ((rem > half) | ((rem == half) & ((mant & 1) == 1)))
    mant = mant + up
    ovf = mant >= 2048
    mant = np.where(ovf, mant >> 1, mant)
    shift = shift + ovf
    # mant < 2048 now. mag<1024 -> subnormal (e=0); else e = shift + 1, mantissa = mant-1024
    normal = mant >= 1024
    e = np.where(normal, shift + 1, 0)
    frac = np.where(normal, mant - 1024, mant)
    bits = (e << 10) | frac
    bits = np.where(e >= 31, FP16_MAX_BITS, bits)
    bits = np.where(bits == 0, 0, bits | np.where(v < 0, 0x8000, 0))
    return bits.astype(np.uint16)


def int_to_fp16(v: np.ndarray) -> np.ndarray:
    """Same as int_to_fp16_spec (the integer definition the gateware follows), computed with
    numpy's correctly rounded (nearest even) float64 -> float16 cast: |v| < 2**53 is exact in
    float64 and the scaling by 2**-24 is exact."""
    v = np.asarray(v, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = (v.astype(np.float64) * 2.0 ** -24).astype(np.float16).view(np.uint16)
    h = np.where((h & 0x7FFF) == 0x7C00, (h & 0x8000) | FP16_MAX_BITS, h)
    return np.where(h == 0x8000, 0, h).astype(np.uint16)


# --------------------------------------------------------------------------------------------
# Scales (E5M3 codes) and the quantizer
# --------------------------------------------------------------------------------------------
RECIP_BITS = 16
RECIP = np.array([((1 << RECIP_BITS) + (8 + m) // 2) // (8 + m) for m in range(8)],
                 dtype=np.int64)                  # round(2**16 / (8+m))
GUARD = 8                      # bits of the pre-shifted operand kept below the scale's LSB
DSH_BITS = 20                  # width of the pre-shifted operand (saturating)
SCALE_SHIFT = 5                # scale grid: 2**-19 (code 0) .. 61440 (code 255)
SCALE_VAL = np.array([(8 + (c & 7)) << ((c >> 3) + SCALE_SHIFT) for c in range(256)],
                     dtype=np.int64)


def scale_value(code: np.ndarray) -> np.ndarray:
    """E5M3 code -> scale in units of 2**-24: (8 + code[2:0]) << (code[7:3] + 5)."""
    return SCALE_VAL[np.asarray(code, dtype=np.int64)]


def choose_scale(rng: np.ndarray, qmax: int) -> np.ndarray:
    """Smallest code whose scale * qmax >= rng (units 2**-24, rng >= 0); 255 if none."""
    table = SCALE_VAL * qmax
    c = np.searchsorted(table, np.asarray(rng, dtype=np.int64), side="left")
    return np.minimum(c, 255).astype(np.uint8)


def quantize(d: np.ndarray, code: np.ndarray, qmax: int) -> np.ndarray:
    """q = min(qmax, round(d / scale)) for d >= 0, in integer ops only:

        e, m = (code >> 3) + 5, code & 7;  g = min(e, GUARD)
        dsh  = min(d >> (e - g), 2**DSH_BITS - 1)
        q    = (dsh * RECIP[m] + 2**(RECIP_BITS + g - 1)) >> (RECIP_BITS + g)
    """
    d = np.asarray(d, dtype=np.int64)
    code = np.asarray(code, dtype=np.int64)
    e = (code >> 3) + SCALE_SHIFT
    m = code & 7
    g = np.minimum(e, GUARD)
    dsh = np.minimum(d >> (e - g), (1 << DSH_BITS) - 1)
    sh = RECIP_BITS + g
    q = (dsh * RECIP[m] + (np.int64(1) << (sh - 1))) >> sh
    return np.minimum(q, qmax)


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


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


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


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------
def _packed_bytes(n: int, levels: int) -> int:
    g, w = level_group(levels)
    return (n // g * w + 7) // 8


def kv_layout(mode: Mode, T: int, D: int, sink: bool = False):
    """Sections after the header of the KIVI-family modes, each padded to ALIGN:
    (name, unpadded bytes). A group's offset is its FP16 minimum (`k_lo`/`v_lo`, 2 bytes)
    or, in kivi_z, its int8 zero point (`k_zero`/`v_zero`, 1 byte; kivi_n's V zero points
    are 4-bit, two a byte, the even token's in the low nibble)."""
    k_off = ("k_zero", D) if mode.zp else ("k_lo", 2 * D)
    v_off = ("v_zero", -(-T * mode.zero_bits("v") // 8)) if mode.zp else ("v_lo", 2 * T)
    return [("k_code", D), k_off, ("v_code", T), v_off] + \
        ([("k_sink", 2 * D)] if sink else []) + \
        [("k_q", _packed_bytes(T * D, mode.k_levels)),
         ("v_q", _packed_bytes(T * D, mode.v_levels))]


def int8_layout(T: int, D: int) -> list[tuple[str, int]]:
    return [("k_code", T), ("v_code", T), ("q", 2 * T * D)]


def finish_length(body: int) -> int:
    """Total length for a body (header + sections) of `body` bytes: pad so that
    body + pad + CRC is a multiple of ALIGN."""
    return _align(body + CRC_BYTES)


def page_length(mode: Mode, T: int = 16, D: int = 64, sink: bool = False) -> int | None:
    """Compressed length in bytes of every page in a fixed-size mode (None for RLE);
    `sink`: a kivi page with the SINK flag."""
    if mode.kind == MODE_RAW:
        body = HEADER_BYTES + _align(2 * T * D * 2)
    elif mode.kind in (MODE_INT8, MODE_INT8_DELTA):
        body = HEADER_BYTES + sum(_align(n) for _, n in int8_layout(T, D))
    elif mode.kivi_like:
        body = HEADER_BYTES + sum(_align(n) for _, n in kv_layout(mode, T, D, sink))
    else:
        return None
    return finish_length(body)


def _header(mode: Mode, flags: np.ndarray, T: int, D: int, length: np.ndarray) -> np.ndarray:
    N = length.shape[0]
    h = np.zeros((N, HEADER_BYTES), np.uint8)
    h[:, 0] = MAGIC
    h[:, 1] = (VERSION << 4) | flags
    h[:, 2] = mode.kind
    h[:, 3] = mode.bits_byte
    h[:, 4] = T
    h[:, 5] = D
    h[:, 6] = length & 0xFF
    h[:, 7] = length >> 8
    return h


def _padded(a: np.ndarray) -> np.ndarray:
    n = a.shape[1]
    p = _align(n) - n
    if p:
        a = np.concatenate([a, np.zeros((a.shape[0], p), np.uint8)], axis=1)
    return a


def _u16le(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.uint16)
    return np.ascontiguousarray(a.astype("<u2")).view(np.uint8).reshape(a.shape[0], -1)


def _seal(body: np.ndarray) -> np.ndarray:
    """Append zero padding and the CRC-32 (zlib/IEEE) of everything before it."""
    N, n = body.shape
    total = finish_length(n)
    out = np.zeros((N, total), np.uint8)
    out[:, :n] = body
    for i in range(N):
        crc = zlib.crc32(out[i, : total - CRC_BYTES].tobytes())
        out[i, total - CRC_BYTES:] = np.frombuffer(crc.to_bytes(4, "little"), np.uint8)
    return out


# --------------------------------------------------------------------------------------------
# Quantization stages (shared by compress and decompress)
# --------------------------------------------------------------------------------------------
def _int8_quant(x: np.ndarray):
    """x: (N, 2, T, D) int64 units. Symmetric absmax per (page, K|V, token), qmax 127.
    Returns codes (N, 2, T) uint8 and q (N, 2, T, D) int8."""
    absmax = np.abs(x).max(axis=3)
    code = choose_scale(absmax, 127)
    mag = quantize(np.abs(x), code[..., None], 127)
    q = np.where(x < 0, -mag, mag).astype(np.int8)
    return code, q


def _int8_dequant(code: np.ndarray, q: np.ndarray) -> np.ndarray:
    v = q.astype(np.int64) * scale_value(code)[..., None]
    return int_to_fp16(v)


def _group_params(s: np.ndarray, axis: int, levels: int, zrange=None):
    """Scale code and offset of the groups of `s` along `axis` (statistics only).
    Returns (code, field, off): `field` is what the page stores, `off` the offset in units.
    FP16 minimum (kivi, kivi_l; zrange None): code = choose_scale(max - min, qmax),
    field = off = min.
    Zero point in [zn, zp] = zrange (kivi_z: -127..127; kivi_n's V: -8..7), with
    a = zp if min >= 0 else -zn (the largest zero-point magnitude on the minimum's side):
        code = max(choose_scale(max - min, qmax), choose_scale(|min|, a))
        n = sign(min) * quantize(|min|, code, a)       (the field), off = n * S(code)
    Values are then q = quantize(max(x - off, 0), code, qmax) (qmax = levels - 1)."""
    lo = s.min(axis=axis)
    hi = s.max(axis=axis)
    if zrange is None:
        return choose_scale(hi - lo, levels - 1), lo, lo
    zn, zp = zrange
    mag = np.abs(lo)
    cz = np.where(lo < 0, choose_scale(mag, -zn), choose_scale(mag, zp))
    code = np.maximum(choose_scale(hi - lo, levels - 1), cz)
    nmag = np.where(lo < 0, quantize(mag, code, -zn), quantize(mag, code, zp))
    n = np.where(lo < 0, -nmag, nmag)
    return code.astype(np.uint8), n, n * scale_value(code)


def _kv_quant(x: np.ndarray, mode: Mode, sink=None):
    """KIVI-family quantization: K (x[:,0]) per channel over tokens, V (x[:,1]) per token
    over channels, asymmetric, q = quantize(max(X - off, 0), code, levels - 1), with the
    group offset `off` its FP16 minimum (kivi, kivi_l) or integer zero point times the
    scale (kivi_z, kivi_n). Pages with sink[i]: K statistics over tokens 1..T-1
    only, token 0's K codes are 0. Returns (k_code, k_field, k_q, v_code, v_field, v_q)."""
    k, v = x[:, 0], x[:, 1]
    ks = k
    if sink is not None and np.any(sink):
        ks = k.copy()
        ks[sink, 0] = ks[sink, 1]              # token 0 out of the statistics
    k_code, k_f, k_off = _group_params(ks, 1, mode.k_levels, mode.zero_range("k"))  # (N, D)
    k_q = quantize(np.maximum(k - k_off[:, None, :], 0), k_code[:, None, :], mode.k_levels - 1)
    if sink is not None and np.any(sink):
        k_q[sink, 0] = 0
    v_code, v_f, v_off = _group_params(v, 2, mode.v_levels, mode.zero_range("v"))  # (N, T)
    v_q = quantize(np.maximum(v - v_off[:, :, None], 0), v_code[:, :, None], mode.v_levels - 1)
    return k_code, k_f, k_q.astype(np.uint8), v_code, v_f, v_q.astype(np.uint8)


def _kv_dequant(mode: Mode, k_code, k_f, k_q, v_code, v_f, v_q):
    """X' = off + q * S(code): off = n * S(code) (zero point) or lo (FP16 minimum)."""
    ks, vs = scale_value(k_code), scale_value(v_code)
    k_off = k_f.astype(np.int64) * ks if mode.zp else k_f
    v_off = v_f.astype(np.int64) * vs if mode.zp else v_f
    k = k_off[:, None, :] + k_q.astype(np.int64) * ks[:, None, :]
    v = v_off[:, :, None] + v_q.astype(np.int64) * vs[:, :, None]
    return np.stack([int_to_fp16(k), int_to_fp16(v)], axis=1)


def _zero_field(n: np.ndarray, bits: int) -> np.ndarray:
    """(N, G) zero points -> their section: int8 bytes, or 4-bit two's complement nibbles
    two a byte (group 2i in the low nibble of byte i)."""
    b = n.astype(np.int8).view(np.uint8)
    if bits == 8:
        return b
    b = b & 15
    if b.shape[1] % 2:
        b = np.concatenate([b, np.zeros((b.shape[0], 1), np.uint8)], axis=1)
    return (b[:, 0::2] | (b[:, 1::2] << 4)).astype(np.uint8)


def _zero_unfield(b: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of _zero_field -> (N, n) int8 zero points."""
    b = np.ascontiguousarray(b)
    if bits == 8:
        return b.view(np.int8)
    nib = np.stack([b & 15, b >> 4], axis=2).reshape(b.shape[0], -1)[:, :n].astype(np.int8)
    return np.where(nib > 7, nib - 16, nib).astype(np.int8)


def _pack(q: np.ndarray, levels: int) -> np.ndarray:
    """Level packing (pack_levels); for a power of two it is plain bit packing (faster)."""
    if levels & (levels - 1) == 0:
        return pack_bits(q, levels.bit_length() - 1)
    return pack_levels(q, levels)


def _unpack(b: np.ndarray, levels: int, n: int) -> np.ndarray:
    if levels & (levels - 1) == 0:
        return unpack_bits(b, levels.bit_length() - 1, n)
    return unpack_levels(b, levels, n)


def _delta(q: np.ndarray) -> np.ndarray:
    """int8 q (N, 2, T, D) -> bytes of q[t] - q[t-1] (mod 256) along tokens; t=0 verbatim."""
    u = q.view(np.uint8)
    d = u.copy()
    d[:, :, 1:, :] = u[:, :, 1:, :] - u[:, :, :-1, :]
    return d


def _undelta(d: np.ndarray) -> np.ndarray:
    return np.cumsum(d, axis=2, dtype=np.uint8).view(np.int8)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def as_bits(pages) -> np.ndarray:
    """Accept float16 or uint16 arrays; return uint16 bit patterns."""
    a = np.asarray(pages)
    if a.dtype == np.float16:
        return a.view(np.uint16)
    if a.dtype == np.uint16:
        return a
    raise TypeError(f"pages must be float16 or uint16 bit patterns, not {a.dtype}")


def compress_batch(pages, mode: str | Mode, sink=False) -> list[bytes]:
    """Compress (N, 2, T, D) FP16 pages. Returns N compressed pages (bytes).
    `sink` (bool or (N,) bools, kivi modes only): the page holds an attention sink in its
    token 0 (the host sets it for the first page of a sequence); token 0's K is kept exact."""
    mode = MODES[mode] if isinstance(mode, str) else mode
    bits = as_bits(pages)
    if bits.ndim != 4 or bits.shape[1] != 2:
        raise ValueError(f"pages must have shape (N, 2, T, D), got {bits.shape}")
    N, _, T, D = bits.shape
    if not (1 <= T <= 255 and 1 <= D <= 255):
        raise ValueError("T and D must be in 1..255")
    sink = np.broadcast_to(np.asarray(sink, bool), (N,))
    if sink.any():
        if not mode.kivi_like or T < 2:
            raise ValueError("the SINK flag needs a kivi mode and T >= 2")
        if not sink.all():
            out = [None] * N
            for flag in (False, True):
                idx = np.flatnonzero(sink == flag)
                for i, b in zip(idx, compress_batch(bits[idx], mode, flag)):
                    out[i] = b
            return out
    sink = bool(sink.all()) if N else False
    flat = bits.reshape(N, -1)
    if mode.kind == MODE_RAW:
        body = [_u16le(flat)]
        flags = np.zeros(N, np.uint8)
    else:
        nonfinite = ((flat & 0x7C00) == 0x7C00).any(axis=1)
        clean, _ = sanitize(flat)
        flags = np.where(nonfinite, FLAG_NONFINITE, 0).astype(np.uint8)
        x = fp16_to_int(clean).reshape(N, 2, T, D)
        if mode.kind in (MODE_INT8, MODE_INT8_DELTA, MODE_INT8_DELTA_RLE):
            code, q = _int8_quant(x)
            payload = q.view(np.uint8) if mode.kind == MODE_INT8 else _delta(q)
            payload = payload.reshape(N, -1)
            body = [code[:, 0], code[:, 1]]
            if mode.kind == MODE_INT8_DELTA_RLE:
                return [_finish_rle(mode, flags[i], T, D, code[i], payload[i]) for i in range(N)]
            body.append(payload)
        elif mode.kivi_like:
            if mode.kind != MODE_KIVI and D % 8:
                raise ValueError(f"{mode.name}: level-packed modes need D a multiple of 8")
            k_code, k_f, k_q, v_code, v_f, v_q = _kv_quant(x, mode, np.full(N, sink))
            if mode.zp:
                body = [k_code, k_f.astype(np.int8).view(np.uint8),
                        v_code, _zero_field(v_f, mode.zero_bits("v"))]
            else:
                body = [k_code, _u16le(int_to_fp16(k_f)), v_code, _u16le(int_to_fp16(v_f))]
            if sink:
                body.append(_u16le(int_to_fp16(x[:, 0, 0, :])))
                flags = flags | FLAG_SINK
            body += [_pack(k_q.reshape(N, -1), mode.k_levels),
                     _pack(v_q.reshape(N, -1), mode.v_levels)]
        else:  # pragma: no cover
            raise ValueError(mode)
    body = np.concatenate([_padded(np.asarray(b, np.uint8)) for b in body], axis=1)
    total = finish_length(HEADER_BYTES + body.shape[1])
    hdr = _header(mode, flags, T, D, np.full(N, total, np.int64))
    out = _seal(np.concatenate([hdr, body], axis=1))
    return [r.tobytes() for r in out]


def _finish_rle(mode, flags, T, D, code, payload) -> bytes:
    enc = rle_encode(payload)
    body = np.concatenate([_padded(code[0][None]), _padded(code[1][None]),
                           enc[None]], axis=1)
    total = finish_length(HEADER_BYTES + body.shape[1])
    if total > 0xFFFF:  # pragma: no cover - impossible for T, D <= 255 with page <= 64 KiB
        raise ValueError("compressed page too long for the 16-bit length field")
    hdr = _header(mode, np.array([flags]), T, D, np.array([total]))
    return _seal(np.concatenate([hdr, body], axis=1))[0].tobytes()


def compress(page, mode: str | Mode) -> bytes:
    """Compress one (2, T, D) FP16 page."""
    return compress_batch(np.asarray(page)[None], mode)[0]


@dataclass
class Header:
    mode: Mode
    flags: int
    T: int
    D: int
    length: int


def parse_header(blob: bytes) -> Header:
    if len(blob) < HEADER_BYTES:
        raise CodecError("truncated", "shorter than the header")
    h = blob[:HEADER_BYTES]
    if h[0] != MAGIC:
        raise CodecError("header", f"bad magic 0x{h[0]:02x}")
    if h[1] >> 4 != VERSION:
        raise CodecError("header", f"unsupported version {h[1] >> 4}")
    if h[1] & 0xC:
        raise CodecError("header", "reserved flag bits set")
    mode = mode_from_header(h[2], h[3])
    sink = bool(h[1] & FLAG_SINK)
    if sink and (not mode.kivi_like or h[4] < 2):
        raise CodecError("header", "SINK flag outside a kivi mode")
    T, D = h[4], h[5]
    if T == 0 or D == 0:
        raise CodecError("header", "zero page geometry")
    length = h[6] | (h[7] << 8)
    if length % ALIGN or length < HEADER_BYTES + CRC_BYTES:
        raise CodecError("header", f"bad length {length}")
    expect = page_length(mode, T, D, sink)
    if expect is not None and length != expect:
        raise CodecError("header", f"length {length} != {expect} for mode {mode.name}")
    return Header(mode, h[1] & 0xF, T, D, length)


def check(blob: bytes, expect_geometry: tuple[int, int] | None = None) -> Header:
    """Validate header, length and CRC; raise CodecError on any problem."""
    hdr = parse_header(blob)
    if expect_geometry is not None and (hdr.T, hdr.D) != tuple(expect_geometry):
        raise CodecError("header", f"geometry {hdr.T}x{hdr.D} != {expect_geometry}")
    if len(blob) < hdr.length:
        raise CodecError("truncated", f"{len(blob)} bytes < header length {hdr.length}")
    if len(blob) > hdr.length:
        raise CodecError("overlong", f"{len(blob)} bytes > header length {hdr.length}")
    crc = zlib.crc32(blob[: hdr.length - CRC_BYTES])
    if crc != int.from_bytes(blob[hdr.length - CRC_BYTES: hdr.length], "little"):
        raise CodecError("crc", "CRC-32 mismatch")
    return hdr


def decompress(blob: bytes, expect_geometry: tuple[int, int] | None = None) -> np.ndarray:
    """Decompress one page -> (2, T, D) float16. Raises CodecError on a corrupt page."""
    hdr = check(blob, expect_geometry)
    return _decode_checked([blob], hdr)[0]


def decompress_batch(blobs: list[bytes], expect_geometry=None) -> np.ndarray:
    """Decompress pages that share one mode and geometry -> (N, 2, T, D) float16."""
    hdrs = [check(b, expect_geometry) for b in blobs]
    h0 = hdrs[0]
    if any((h.mode, h.T, h.D, h.flags & FLAG_SINK) != (h0.mode, h0.T, h0.D, h0.flags & FLAG_SINK)
           for h in hdrs):
        return np.stack([_decode_checked([b], h)[0] for b, h in zip(blobs, hdrs)])
    return _decode_checked(blobs, h0)


def _sections(arr: np.ndarray, layout, start=HEADER_BYTES):
    out = {}
    off = start
    for name, n in layout:
        out[name] = arr[:, off: off + n]
        off += _align(n)
    return out


def _decode_checked(blobs: list[bytes], hdr: Header) -> np.ndarray:
    T, D, mode = hdr.T, hdr.D, hdr.mode
    N = len(blobs)
    if mode.kind == MODE_INT8_DELTA_RLE:
        out = []
        for b in blobs:
            a = np.frombuffer(b, np.uint8)
            k_code = a[8: 8 + T]
            off = HEADER_BYTES + 2 * _align(T)
            v_code = a[HEADER_BYTES + _align(T): HEADER_BYTES + _align(T) + T]
            enc = a[off: len(b) - CRC_BYTES]
            d, used = rle_decode(enc, 2 * T * D)
            if _align(off + used + CRC_BYTES) != len(b) or enc[used:].any():
                raise CodecError("format", "bytes after the RLE payload are not padding")
            q = _undelta(d.reshape(1, 2, T, D))
            code = np.stack([k_code, v_code])[None]
            out.append(_int8_dequant(code, q)[0])
        return np.stack(out).view(np.float16)
    arr = np.stack([np.frombuffer(b, np.uint8) for b in blobs])
    if mode.kind == MODE_RAW:
        n = 2 * T * D * 2
        bits = arr[:, HEADER_BYTES: HEADER_BYTES + n].copy().view("<u2").astype(np.uint16)
        return bits.reshape(N, 2, T, D).view(np.float16)
    if mode.kind in (MODE_INT8, MODE_INT8_DELTA):
        s = _sections(arr, int8_layout(T, D))
        code = np.stack([s["k_code"], s["v_code"]], axis=1)
        q = np.ascontiguousarray(s["q"]).reshape(N, 2, T, D)
        q = q.view(np.int8) if mode.kind == MODE_INT8 else _undelta(q)
        return _int8_dequant(code, q).view(np.float16)
    if mode.kivi_like:
        sink = bool(hdr.flags & FLAG_SINK)
        s = _sections(arr, kv_layout(mode, T, D, sink))

        def offsets(side):
            if mode.zp:
                n = T if side == "v" else D
                return _zero_unfield(s[f"{side}_zero"], mode.zero_bits(side), n)
            return fp16_to_int(np.ascontiguousarray(s[f"{side}_lo"]).view("<u2").astype(np.uint16))
        k_q = _unpack(s["k_q"], mode.k_levels, T * D).reshape(N, T, D)
        v_q = _unpack(s["v_q"], mode.v_levels, T * D).reshape(N, T, D)
        out = _kv_dequant(mode, s["k_code"], offsets("k"), k_q, s["v_code"], offsets("v"), v_q)
        if sink:
            out[:, 0, 0, :] = np.ascontiguousarray(s["k_sink"]).view("<u2").astype(np.uint16)
        return out.view(np.float16)
    raise CodecError("header", "unknown mode")  # pragma: no cover


def error_bound(page, mode: str | Mode, sink: bool = False) -> np.ndarray:
    """Per-value absolute error bound of a lossy mode for this (sanitized) page, in float64:
    0.52 * scale + half an FP16 ulp of the reconstructed value (documented in
    the README). It holds for every finite input: the largest scale (61440) times the smallest
    qmax (3) exceeds the widest FP16 range (2 * 65504)."""
    mode = MODES[mode] if isinstance(mode, str) else mode
    bits, _ = sanitize(as_bits(page))
    x = fp16_to_int(bits)[None].reshape(1, *bits.shape)
    if mode.kind == MODE_RAW:
        return np.zeros(bits.shape)
    if mode.kivi_like:
        quant = _kv_quant(x, mode, np.array([sink]))
        k_code, v_code = quant[0], quant[3]
        s = np.stack([np.broadcast_to(scale_value(k_code[0])[None, :], x.shape[2:]),
                      np.broadcast_to(scale_value(v_code[0])[:, None], x.shape[2:])])
    else:
        code, _ = _int8_quant(x)
        s = np.broadcast_to(scale_value(code[0])[..., None], bits.shape)
    s = s.astype(np.float64) * 2.0 ** -24
    mag = np.abs(x[0].astype(np.float64) * 2.0 ** -24) + s
    ulp = np.maximum(2.0 ** (np.floor(np.log2(np.maximum(mag, 2.0 ** -14))) - 10), 2.0 ** -24)
    bound = 0.52 * s + 0.5 * ulp
    if sink:
        bound[0, 0, :] = 0.0
    return bound
