"""Format definitions of the reference KV-page codec (see ``reference.py``): header
constants, flags, the modes (``Mode``, ``MODES``) and ``CodecError``."""
from __future__ import annotations

from dataclasses import dataclass

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
