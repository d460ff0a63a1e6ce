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

The specification is split by concern: ``ref_format`` (header constants, flags, the modes,
``CodecError``), ``ref_arith`` (FP16 <-> integer, scales, the quantizer), ``ref_packing``
(bit and level packing, the zero-run RLE), ``ref_quant`` (the quantization stages of each
mode family). This module holds the page layout and the public API (``compress``,
``decompress``, their batch forms, ``parse_header``, ``check``, ``error_bound``); the modes
and errors its callers name (``MODES``, ``Mode``, ``CodecError``) are those of ``ref_format``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .ref_arith import fp16_to_int, int_to_fp16, sanitize, scale_value
from .ref_format import (ALIGN, CRC_BYTES, FLAG_NONFINITE, FLAG_SINK, HEADER_BYTES, MAGIC,
                         MODE_INT8, MODE_INT8_DELTA, MODE_INT8_DELTA_RLE, MODE_KIVI, MODE_RAW,
                         MODES, VERSION, CodecError, Mode, mode_from_header)
from .ref_packing import level_group, rle_decode, rle_encode
from .ref_quant import (delta, int8_dequant, int8_quant, kv_dequant, kv_quant, pack_codes,
                        undelta, unpack_codes, zero_field, zero_unfield)


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------
def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


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
            code, q = int8_quant(x)
            payload = q.view(np.uint8) if mode.kind == MODE_INT8 else delta(q)
            payload = payload.reshape(N, -1)
            body = [code[:, 0], code[:, 1]]
            if mode.kind == MODE_INT8_DELTA_RLE:
                return [_finish_rle(mode, flags[i], T, D, code[i], payload[i]) for i in range(N)]
            body.append(payload)
        elif mode.kivi_like:
            if mode.kind != MODE_KIVI and D % 8:
                raise ValueError(f"{mode.name}: level-packed modes need D a multiple of 8")
            k_code, k_f, k_q, v_code, v_f, v_q = kv_quant(x, mode, np.full(N, sink))
            if mode.zp:
                body = [k_code, k_f.astype(np.int8).view(np.uint8),
                        v_code, zero_field(v_f, mode.zero_bits("v"))]
            else:
                body = [k_code, _u16le(int_to_fp16(k_f)), v_code, _u16le(int_to_fp16(v_f))]
            if sink:
                body.append(_u16le(int_to_fp16(x[:, 0, 0, :])))
                flags = flags | FLAG_SINK
            body += [pack_codes(k_q.reshape(N, -1), mode.k_levels),
                     pack_codes(v_q.reshape(N, -1), mode.v_levels)]
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
            q = undelta(d.reshape(1, 2, T, D))
            code = np.stack([k_code, v_code])[None]
            out.append(int8_dequant(code, q)[0])
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
        q = q.view(np.int8) if mode.kind == MODE_INT8 else undelta(q)
        return int8_dequant(code, q).view(np.float16)
    if mode.kivi_like:
        sink = bool(hdr.flags & FLAG_SINK)
        s = _sections(arr, kv_layout(mode, T, D, sink))

        def offsets(side):
            if mode.zp:
                n = T if side == "v" else D
                return zero_unfield(s[f"{side}_zero"], mode.zero_bits(side), n)
            return fp16_to_int(np.ascontiguousarray(s[f"{side}_lo"]).view("<u2").astype(np.uint16))
        k_q = unpack_codes(s["k_q"], mode.k_levels, T * D).reshape(N, T, D)
        v_q = unpack_codes(s["v_q"], mode.v_levels, T * D).reshape(N, T, D)
        out = kv_dequant(mode, s["k_code"], offsets("k"), k_q, s["v_code"], offsets("v"), v_q)
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
        quant = kv_quant(x, mode, np.array([sink]))
        k_code, v_code = quant[0], quant[3]
        s = np.stack([np.broadcast_to(scale_value(k_code[0])[None, :], x.shape[2:]),
                      np.broadcast_to(scale_value(v_code[0])[:, None], x.shape[2:])])
    else:
        code, _ = int8_quant(x)
        s = np.broadcast_to(scale_value(code[0])[..., None], bits.shape)
    s = s.astype(np.float64) * 2.0 ** -24
    mag = np.abs(x[0].astype(np.float64) * 2.0 ** -24) + s
    ulp = np.maximum(2.0 ** (np.floor(np.log2(np.maximum(mag, 2.0 ** -14))) - 10), 2.0 ** -24)
    bound = 0.52 * s + 0.5 * ulp
    if sink:
        bound[0, 0, :] = 0.0
    return bound
