"""Shared pieces of the codec's Migen cores (``compressor.KVCompressor``,
``decompressor.KVDecompressor``): the modes built in gateware, the checks of a core's
parameters, register-file and header helpers.

Both cores are bit exact with ``reference.py`` (the specification) for the modes in
``GATEWARE_MODES``; the reference keeps every other mode (for the ablation tables), the cores
refuse them. See README.md for the interface, timing and error codes.
"""
from __future__ import annotations

from migen import C, Cat, If, Signal

from . import reference as R
from .ref_packing import level_group


# The modes built in gateware, each co-simulated at 16 x 64 on trace and random pages
# (tests/test_codec_verilator.py): the SoC's and every board's mode (kivi_k4v3) and the 4x
# mode (kivi_n10v9). The 3.2x modes (kivi_l16v12, kivi_l16v14) are reference-only: no board
# or SoC runs them.
GATEWARE_MODES = ("kivi_k4v3", "kivi_n10v9")


def resolve_mode(mode):
    """The reference Mode of `mode` (a name or a Mode); ValueError outside GATEWARE_MODES."""
    m = R.MODES[mode] if isinstance(mode, str) else mode
    if m not in [R.MODES[n] for n in GATEWARE_MODES]:
        why = (" (its variable-length byte-serial payload does not fit a one-beat-per-cycle "
               "datapath)" if m.kind == R.MODE_INT8_DELTA_RLE else "")
        raise ValueError(f"mode {m.name!r} is not in gateware{why}; gateware modes: "
                         f"{', '.join(GATEWARE_MODES)} (reference.py keeps every mode)")
    assert m.kivi_like
    return m


def level_groups(mode, per_cycle):
    """kivi_z, kivi_l: (g, w) of K and V (ref_packing.level_group); every group must fit in
    `per_cycle` values (one cycle of the datapath)."""
    gk = level_group(mode.k_levels)
    gv = level_group(mode.v_levels)
    for lev, (g, _) in ((mode.k_levels, gk), (mode.v_levels, gv)):
        if g > per_cycle:
            raise ValueError(f"{mode.name}: {lev} levels pack {g} values per field, more "
                             f"than this dw handles per cycle ({per_cycle}); use a wider dw")
    return gk, gv


def payload_pads(T, D, kgroup, vgroup):
    """Zero bits padding the level-packed K and V payloads, packed in (g, w) = `kgroup`,
    `vgroup` fields, to whole 64-bit words."""
    return tuple(-(T * D // g * w) % 64 for g, w in (kgroup, vgroup))


def check_geometry(dw, T, D):
    """Lanes (FP16 values) per beat of a `dw`-bit datapath; ValueError for a geometry the
    cores do not build."""
    if dw not in (32, 64, 128):
        raise ValueError(f"dw must be 32, 64 or 128 bits, not {dw}")
    L = dw // 16
    if T % 8 or D % 8 or not (1 <= T <= 255 and 1 <= D <= 255):
        raise ValueError(f"T and D must be multiples of 8 in 8..248 (got T={T}, D={D})")
    if D % (2 * L):
        raise ValueError(f"D={D} must be a multiple of 2 * lanes = {2 * L} (dw={dw})")
    return L


def page_beats(mode, T, D, dw, sink=False):
    """`dw`-bit beats of a compressed page (`sink`: with the SINK flag)."""
    length = R.page_length(mode, T, D, sink=sink)
    if length * 8 % dw:
        raise ValueError(f"page length {length} B is not a whole number of {dw}-bit beats")
    return length * 8 // dw


def zero_lanes(mode, T):
    """K and V zero points (or FP16 minima) per 64-bit word of their section; kivi_n's
    4-bit V zero points fill whole words only when T is a multiple of 16."""
    if not mode.zp:
        return 4, 4
    vz = mode.zero_bits("v")
    if T * vz % 64:
        raise ValueError(f"{mode.name}: {vz}-bit V zero points need T a multiple of "
                         f"{64 // vz} (got T={T})")
    return 8, 64 // vz


def rotate(regs, k, new=None):
    """Statements rotating a register file left by k (regs[i] <= regs[i+k]); the k entries
    falling off the head re-enter at the tail unless `new` gives their replacement."""
    n = len(regs)
    new = new if new is not None else regs[:k]
    return [regs[i].eq(regs[i + k]) for i in range(n - k)] + \
           [regs[n - k + j].eq(new[j]) for j in range(k)]


def header_bits(mode, flags, T, D, length):
    """The page header's 64 bits; `length` is a 16-bit Signal (or an int)."""
    return Cat(C(R.MAGIC, 8), flags[0:4], C(R.VERSION, 4), C(mode.kind, 8),
               C(mode.bits_byte, 8), C(T, 8), C(D, 8),
               C(length, 16) if isinstance(length, int) else length)


def out_buffer(m, source, push, new, new_last):
    """A two-beat output buffer in module `m` feeding stream `source`: beat `new` (with
    `new_last`) enters on `push`; `b[0]`, the head, is `source`. Returns `cnt`, the beats
    held, and its next value: a core that pushes only while cnt != 2 (a register's decode)
    keeps `source.ready` out of its own pipeline, at full rate (a stall fills the second
    beat)."""
    cnt, cnt_next = Signal(2), Signal(2)
    b = [Signal(len(new)) for _ in range(2)]
    bl = [Signal() for _ in range(2)]
    pop = Signal()
    m.comb += [pop.eq(source.valid & source.ready),
               source.valid.eq(cnt != 0), source.data.eq(b[0]), source.last.eq(bl[0]),
               cnt_next.eq(cnt + push - pop)]
    m.sync += [
        cnt.eq(cnt_next),
        If(pop,
            # the head leaves: the second beat moves up, a new one fills behind it
            b[0].eq(b[1]), bl[0].eq(bl[1]),
            If(push & (cnt == 1), b[0].eq(new), bl[0].eq(new_last))
            .Elif(push, b[1].eq(new), bl[1].eq(new_last)),
        ).Elif(push,
            If(cnt == 0, b[0].eq(new), bl[0].eq(new_last))
            .Else(b[1].eq(new), bl[1].eq(new_last)),
        ),
    ]
    return cnt, cnt_next
