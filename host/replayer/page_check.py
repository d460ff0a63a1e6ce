"""The replay's data check: every page the host reads against the trace's original KV.

A replay must be able to fail when the device returns wrong bytes, whichever backend runs.
So the check does not reuse the codec's arithmetic to decide what is right:

- **Values.** A page read is compared with the *original* FP16 page of the trace: bit for
  bit in a lossless mode (``raw``); in a lossy mode every value within a bound derived from
  the original values and the mode's definition alone (its level counts, group shapes and
  zero-point ranges; ``gateware/codec/README.md``), never from the scale codes the codec
  chose. For a group (K: a channel over the page's tokens; V: a token over the channels;
  int8: a (K|V, token) row) with range ``r = max - min`` and ``q = levels - 1``:

      s_hat = max(S_MIN, STEP * max(r / q, |min| / a))      # a: zero-point limit (zp modes)
      |decoded - original| <= 0.52 * s_hat + 0.5 * ulp16(|original| + s_hat)

  ``S_MIN`` is the smallest E5M3 scale (code 0: 8 << 5 units of 2**-24 = 2**-16) and
  ``STEP = 9/8`` the largest ratio between neighbouring E5M3 scales ((8+m+1)/(8+m) <= 9/8
  within an exponent, 16/15 across one). The codec picks the smallest scale that covers the
  group, so its scale is at most ``s_hat``; a value is rounded to the nearest level (0.5
  scale, plus 0.02 for the 16-bit reciprocal) and the result to FP16 (half an ulp).
  Zero-point modes (kivi_z, kivi_n) also need ``a * s >= |min|`` for the zero point to fit
  its field: ``a`` is the field's limit on the minimum's side (int8: 127; kivi_n's V: 7 for
  ``min >= 0``, 8 below). A SINK page keeps token 0's K exact.
- **Identity.** The page read must be the page asked for: a swapped or stale L2 slot holds
  another page. Bytes are compared with the reference decode of the requested page
  (``reference.decompress(reference.compress(original))``). On ``rtl`` and ``board``, where
  the decode runs in gateware, that is also the bit-exactness check of the cores; on
  ``model`` the pool holds those same reference bytes, so there it checks identity only,
  and the value bound is what checks the codec.
- **Lengths.** The compressed length the device reports for an offload must be the mode's
  page length from its layout (``reference.page_length``); ``int8_delta_rle`` has no fixed
  length, and there only the reference encoder defines it.

``PageCheck.read(vpn, data)`` and ``PageCheck.offload(vpn, n)`` count failures; ``summary()``
gives the counters and the largest error seen against its bound.
"""
from __future__ import annotations

import numpy as np

from gateware.codec import reference as R

S_MIN = 2.0 ** -16          # E5M3 code 0: (8 + 0) << (0 + 5) units of 2**-24
STEP = 9.0 / 8.0            # largest ratio between neighbouring E5M3 scales
ROUND = 0.52                # round to nearest level (0.5) + 16-bit reciprocal (< 0.02)
INT8_QMAX = 127


def _ulp16(mag: np.ndarray) -> np.ndarray:
    """FP16 ulp of magnitudes (normal range: 2**(e - 10); subnormal: 2**-24)."""
    e = np.floor(np.log2(np.maximum(mag, 2.0 ** -14)))
    return np.maximum(2.0 ** (e - 10), 2.0 ** -24)


def _originals(page) -> np.ndarray:
    """(2, T, D) float64 of the page after the lossy modes' input policy (NaN -> 0,
    +-inf -> +-65504: the README's sanitizing rule)."""
    x = np.asarray(page, dtype=np.float16).astype(np.float64)
    x = np.where(np.isnan(x), 0.0, x)
    return np.clip(x, -65504.0, 65504.0)


def _group_scale(lo, hi, levels: int, zero_limit=None) -> np.ndarray:
    """Upper bound of the scale of groups with minima `lo` and maxima `hi` (float64)."""
    need = (hi - lo) / (levels - 1)
    if zero_limit is not None:
        a = np.where(lo >= 0, zero_limit[1], -zero_limit[0])
        need = np.maximum(need, np.abs(lo) / a)
    return np.maximum(S_MIN, STEP * need)


def value_bound(page, mode: str | R.Mode, sink: bool = False) -> np.ndarray:
    """Per-value absolute error bound (2, T, D) float64 of `mode` on `page`, from the
    original values and the mode's definition only (see the module docstring); zeros for a
    lossless mode."""
    mode = R.MODES[mode] if isinstance(mode, str) else mode
    x = _originals(page)
    if mode.lossless:
        return np.zeros(x.shape)
    if mode.kivi_like:
        k, v = x[0], x[1]
        ks = k[1:] if sink else k
        s_k = _group_scale(ks.min(axis=0), ks.max(axis=0), mode.k_levels,
                           mode.zero_range("k"))                      # (D,) per channel
        s_v = _group_scale(v.min(axis=1), v.max(axis=1), mode.v_levels,
                           mode.zero_range("v"))                      # (T,) per token
        s = np.stack([np.broadcast_to(s_k[None, :], k.shape),
                      np.broadcast_to(s_v[:, None], v.shape)])
    else:   # int8 family: symmetric absmax per (K|V, token)
        absmax = np.abs(x).max(axis=2, keepdims=True)
        s = np.broadcast_to(np.maximum(S_MIN, STEP * absmax / INT8_QMAX), x.shape)
    bound = ROUND * s + 0.5 * _ulp16(np.abs(x) + s)
    if sink:
        bound[0, 0, :] = 0.0
    return bound


class PageCheck:
    """Counts the pages a replay reads that fail the value, identity or length checks."""

    def __init__(self, trace, mode: str, geometry=None):
        """``trace``: what ``page(vpn)`` gives the original page of (a trace, or live
        generation's record of what it offloaded); ``geometry``: (tokens, channels) of a page,
        by default the trace's."""
        self.trace = trace
        self.mode = R.MODES[mode]
        T, D = geometry or trace.kv.shape[-2:]
        # raw pages are stored as is (the device copies them: PTE_FLAG_RAW), not in the
        # reference's raw format (header + page + CRC)
        self.fixed_length = (2 * T * D * 2 if self.mode.name == "raw"
                             else R.page_length(self.mode, T, D))
        self._ref = {}          # vpn -> reference decode bytes
        self._ok = {}           # vpn -> bytes that passed (a re-read of equal bytes is not redone)
        self.pages = 0
        self.bound_fail = 0
        self.ref_fail = 0
        self.length_fail = 0
        self.max_abs = 0.0
        self.max_ratio = 0.0

    def reference(self, vpn: int) -> bytes:
        if vpn not in self._ref:
            self._ref[vpn] = R.decompress(R.compress(self.trace.page(vpn), self.mode)).tobytes()
        return self._ref[vpn]

    def expected_length(self, vpn: int) -> int:
        if self.fixed_length is not None:
            return self.fixed_length
        return len(R.compress(self.trace.page(vpn), self.mode))

    def offload(self, vpn: int, n: int) -> bool:
        ok = n == self.expected_length(vpn)
        self.length_fail += not ok
        return ok

    def _values_ok(self, vpn: int, data: bytes) -> bool:
        page = self.trace.page(vpn)
        if len(data) != page.nbytes:
            return False
        got = np.frombuffer(data, np.float16).reshape(page.shape)
        if self.mode.lossless:
            return got.tobytes() == np.asarray(page, np.float16).tobytes()
        if not np.isfinite(got).all():
            return False
        err = np.abs(got.astype(np.float64) - _originals(page))
        bound = value_bound(page, self.mode)
        self.max_abs = max(self.max_abs, float(err.max()))
        self.max_ratio = max(self.max_ratio, float((err / bound).max()))
        return bool((err <= bound).all())

    def read(self, vpn: int, data: bytes) -> bool:
        """Check one page read; True if it passed every check."""
        self.pages += 1
        if self._ok.get(vpn) == data:
            return True
        ref_ok = data == self.reference(vpn)
        val_ok = self._values_ok(vpn, data)
        self.ref_fail += not ref_ok
        self.bound_fail += not val_ok
        if ref_ok and val_ok:
            self._ok[vpn] = data
        return ref_ok and val_ok

    def summary(self) -> dict:
        return {"pages_checked": self.pages,
                "value_bound_failures": self.bound_fail,
                "reference_mismatches": self.ref_fail,
                "length_mismatches": self.length_fail,
                "max_abs_error": self.max_abs,
                "max_error_over_bound": self.max_ratio if not self.mode.lossless else 0.0}
