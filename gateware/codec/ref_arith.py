"""Arithmetic of the reference KV-page codec (see ``reference.py``): FP16 <-> integer in
units of 2**-24, the E5M3 scale codes and the quantizer. ``arith.py`` builds each function
in gateware, bit for bit."""
from __future__ import annotations

import numpy as np

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
    through float64, which holds every finite FP16 value times 2**24 exactly. Exponent 31
    (infinity, NaN: only in a corrupt or forged page) takes the definition's value,
    (mantissa | 1024) << 30, as the gateware computes it."""
    b = np.asarray(bits, dtype=np.uint16)
    nonfinite = (b & 0x7C00) == 0x7C00
    f = np.where(nonfinite, np.uint16(0), b).view(np.float16).astype(np.float64)
    out = (f * 16777216.0).astype(np.int64)
    if nonfinite.any():
        out = np.where(nonfinite, fp16_to_int_spec(b), out)
    return out


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
