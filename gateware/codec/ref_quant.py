"""Quantization stages of the reference KV-page codec (see ``reference.py``), shared by
compress and decompress: the int8 modes' absmax quantization and delta coding, the KIVI
family's group parameters (scale code and FP16 minimum or zero point), quantization and
dequantization, their zero-point fields and code packing."""
from __future__ import annotations

import numpy as np

from .ref_arith import choose_scale, int_to_fp16, quantize, scale_value
from .ref_format import Mode
from .ref_packing import pack_bits, pack_levels, unpack_bits, unpack_levels


def int8_quant(x: np.ndarray):
    """x: (N, 2, T, D) int64 units. Symmetric absmax per (page, K|V, token), qmax 127.
    Returns codes (N, 2, T) uint8 and q (N, 2, T, D) int8."""
    absmax = np.abs(x).max(axis=3)
    code = choose_scale(absmax, 127)
    mag = quantize(np.abs(x), code[..., None], 127)
    q = np.where(x < 0, -mag, mag).astype(np.int8)
    return code, q


def int8_dequant(code: np.ndarray, q: np.ndarray) -> np.ndarray:
    v = q.astype(np.int64) * scale_value(code)[..., None]
    return int_to_fp16(v)


def group_params(s: np.ndarray, axis: int, levels: int, zrange=None):
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


def kv_quant(x: np.ndarray, mode: Mode, sink=None):
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
    k_code, k_f, k_off = group_params(ks, 1, mode.k_levels, mode.zero_range("k"))  # (N, D)
    k_q = quantize(np.maximum(k - k_off[:, None, :], 0), k_code[:, None, :], mode.k_levels - 1)
    if sink is not None and np.any(sink):
        k_q[sink, 0] = 0
    v_code, v_f, v_off = group_params(v, 2, mode.v_levels, mode.zero_range("v"))  # (N, T)
    v_q = quantize(np.maximum(v - v_off[:, :, None], 0), v_code[:, :, None], mode.v_levels - 1)
    return k_code, k_f, k_q.astype(np.uint8), v_code, v_f, v_q.astype(np.uint8)


def kv_dequant(mode: Mode, k_code, k_f, k_q, v_code, v_f, v_q):
    """X' = off + q * S(code): off = n * S(code) (zero point) or lo (FP16 minimum)."""
    ks, vs = scale_value(k_code), scale_value(v_code)
    k_off = k_f.astype(np.int64) * ks if mode.zp else k_f
    v_off = v_f.astype(np.int64) * vs if mode.zp else v_f
    k = k_off[:, None, :] + k_q.astype(np.int64) * ks[:, None, :]
    v = v_off[:, :, None] + v_q.astype(np.int64) * vs[:, :, None]
    return np.stack([int_to_fp16(k), int_to_fp16(v)], axis=1)


def zero_field(n: np.ndarray, bits: int) -> np.ndarray:
    """(N, G) zero points -> their section: int8 bytes, or 4-bit two's complement nibbles
    two a byte (group 2i in the low nibble of byte i)."""
    b = n.astype(np.int8).view(np.uint8)
    if bits == 8:
        return b
    b = b & 15
    if b.shape[1] % 2:
        b = np.concatenate([b, np.zeros((b.shape[0], 1), np.uint8)], axis=1)
    return (b[:, 0::2] | (b[:, 1::2] << 4)).astype(np.uint8)


def zero_unfield(b: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of zero_field -> (N, n) int8 zero points."""
    b = np.ascontiguousarray(b)
    if bits == 8:
        return b.view(np.int8)
    nib = np.stack([b & 15, b >> 4], axis=2).reshape(b.shape[0], -1)[:, :n].astype(np.int8)
    return np.where(nib > 7, nib - 16, nib).astype(np.int8)


def pack_codes(q: np.ndarray, levels: int) -> np.ndarray:
    """Level packing (pack_levels); for a power of two it is plain bit packing (faster)."""
    if levels & (levels - 1) == 0:
        return pack_bits(q, levels.bit_length() - 1)
    return pack_levels(q, levels)


def unpack_codes(b: np.ndarray, levels: int, n: int) -> np.ndarray:
    if levels & (levels - 1) == 0:
        return unpack_bits(b, levels.bit_length() - 1, n)
    return unpack_levels(b, levels, n)


def delta(q: np.ndarray) -> np.ndarray:
    """int8 q (N, 2, T, D) -> bytes of q[t] - q[t-1] (mod 256) along tokens; t=0 verbatim."""
    u = q.view(np.uint8)
    d = u.copy()
    d[:, :, 1:, :] = u[:, :, 1:, :] - u[:, :, :-1, :]
    return d


def undelta(d: np.ndarray) -> np.ndarray:
    return np.cumsum(d, axis=2, dtype=np.uint8).view(np.int8)

