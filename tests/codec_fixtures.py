"""Shared fixtures for the codec tests: page generators, corruption cases and a Migen
stream toolkit (seeded random valid/ready throttling, stream source and sink generators)."""
from __future__ import annotations

import zlib

import numpy as np

from gateware.codec import reference as R
from gateware.codec import ref_arith as RA
from gateware.codec import ref_quant as RQ

T, D = 16, 64


def random_pages(n: int, seed: int = 0, T: int = T, D: int = D) -> np.ndarray:
    """KV-like FP16 pages (n, 2, T, D): per-channel offsets and a few outlier channels in K,
    small zero-mean V, some exact zeros and subnormals."""
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((n, T, D)) * rng.uniform(0.2, 3, (n, 1, D)) + rng.normal(0, 4, (n, 1, D))
    k[:, :, rng.integers(0, D, 3)] *= 8
    v = rng.standard_normal((n, T, D)) * rng.uniform(0.01, 1, (n, T, 1))
    p = np.stack([k, v], axis=1)
    p[rng.random(p.shape) < 0.02] = 0
    p[rng.random(p.shape) < 0.01] *= 1e-6
    return p.astype(np.float16)


def extreme_page(T: int = T, D: int = D) -> np.ndarray:
    """Extremes: +-65504, zeros, -0, smallest subnormals, a constant group, mixed huge/tiny."""
    p = np.zeros((2, T, D), np.float16)
    p[0, :, 0] = 65504
    p[0, :, 1] = -65504
    p[0, ::2, 2] = 65504
    p[0, 1::2, 2] = -65504
    p[0, :, 3] = np.float16(2.0 ** -24)
    p[0, :, 4] = -0.0
    p[0, :, 5] = 1.5                      # constant channel
    p[0, :, 6] = np.linspace(-1e-4, 1e-4, T)
    p[1, 0, :] = 65504
    p[1, 1, :] = -65504
    p[1, 2, ::2] = 65504
    p[1, 2, 1::2] = 2.0 ** -24
    p[1, 3, :] = np.float16(6.1e-5)       # smallest normal
    p[1, 4, :8] = [1e-7, -1e-7, 3e-8, 0, -0.0, 65504, -1, 1]
    rng = np.random.default_rng(99)
    p[:, 8:, 8:] = (rng.standard_normal((2, T - 8, D - 8)) * 10).astype(np.float16)
    return p


def shifted_v_page(seed: int, T: int = T, D: int = D) -> np.ndarray:
    """A random page whose V tokens are shifted by up to +-3: all-positive and all-negative
    tokens, zero points at the ends of kivi_n's -8..7 and widened scales."""
    rng = np.random.default_rng(seed)
    p = random_pages(1, seed=seed, T=T, D=D)[0].astype(np.float32)
    p[1] += rng.choice([-1, 1], (T, 1)) * rng.uniform(0, 3, (T, 1))
    return p.astype(np.float16)


def v_zero_params(pages: np.ndarray, zrange) -> tuple[np.ndarray, np.ndarray]:
    """(scale codes, zero points) of the pages' V tokens (9 levels) with zero points in
    `zrange`: reference._group_params on the sanitized values."""
    N = len(pages)
    x = RA.fp16_to_int(RA.sanitize(R.as_bits(pages).reshape(N, -1))[0]).reshape(pages.shape)
    code, zero, _ = RQ.group_params(x[:, 1], 2, 9, zrange)
    return code, zero


def reseal(blob: bytearray) -> bytes:
    """Recompute the CRC of a (modified) compressed page."""
    n = len(blob) - R.CRC_BYTES
    blob[n:] = zlib.crc32(bytes(blob[:n])).to_bytes(4, "little")
    return bytes(blob)


CORRUPT_CASES = ["magic", "version", "mode", "length", "geometry", "truncated", "overlong",
                 "crc", "payload"]


def corrupt(blob: bytes, case: str) -> tuple[bytes, str]:
    """Return (corrupted page, expected error kind). Header corruptions are resealed so the
    header check, not the CRC, must catch them."""
    b = bytearray(blob)
    if case == "magic":
        b[0] ^= 0xFF
        return reseal(b), "header"
    if case == "version":
        b[1] = (b[1] & 0x0F) | 0x70
        return reseal(b), "header"
    if case == "mode":
        b[2] = 0x0E
        return reseal(b), "header"
    if case == "length":          # a length that disagrees with the mode (or is misaligned)
        L = int.from_bytes(b[6:8], "little") + (8 if b[2] != R.MODE_INT8_DELTA_RLE else 3)
        b[6:8] = L.to_bytes(2, "little")
        return reseal(b), "header"
    if case == "geometry":
        b[4] ^= 0x20
        return reseal(b), "header"
    if case == "truncated":
        return bytes(b[: len(b) - 16]), "truncated"
    if case == "overlong":
        return bytes(b) + bytes(16), "overlong"
    if case == "crc":
        b[-1] ^= 0x01
        return bytes(b), "crc"
    if case == "payload":
        b[len(b) // 2] ^= 0x10
        return bytes(b), "crc"
    raise ValueError(case)


# ---- Migen stream toolkit -------------------------------------------------------------------
def page_beats(page, dw: int) -> list[int]:
    """One FP16 page (2, T, D) -> dw-bit beats (lane j of beat i = value i*L + j)."""
    v = R.as_bits(np.asarray(page)).reshape(-1).astype(np.uint64)
    L = dw // 16
    return [sum(int(v[i + j]) << (16 * j) for j in range(L)) for i in range(0, v.size, L)]


def bytes_beats(blob: bytes, dw: int) -> list[int]:
    """A byte string -> dw-bit little-endian beats (last beat zero padded)."""
    nb = dw // 8
    blob = blob + bytes(-len(blob) % nb)
    return [int.from_bytes(blob[i: i + nb], "little") for i in range(0, len(blob), nb)]


def beats_bytes(beats, dw: int) -> bytes:
    return b"".join(int(b).to_bytes(dw // 8, "little") for b in beats)


# ---- real KV pages from the bundled traces ---------------------------------------------------
import pytest  # noqa: E402

TRACE = "traces/mini-chatbot.safetensors"


def load_trace_pages(path: str = TRACE) -> np.ndarray:
    """All full KV pages of a bundled trace as (N, 2, 16, 64) float16."""
    from host.traces.format import load_trace
    kv = load_trace(path).kv                      # (L, H, P, 2, 16, D)
    return np.ascontiguousarray(kv.reshape(-1, *kv.shape[3:]))


@pytest.fixture(scope="session")
def trace_pages():
    return load_trace_pages()
