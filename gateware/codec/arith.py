"""Migen building blocks of the codec arithmetic, one function per reference function.

Each function adds combinational logic to module ``m`` and returns the result Signal.
They mirror ``ref_arith.py`` (and the level packing of ``ref_packing``, the group parameters
of ``ref_quant``) exactly (same widths, same rounding); ``tests/test_codec_gateware`` checks
each against the reference on random and exhaustive inputs.
"""
from __future__ import annotations

from functools import reduce
from operator import or_

from migen import Array, C, Cat, If, Mux, Signal

from . import ref_arith as RA
from .ref_format import ZP_ZERO_MAX

XW = 42          # signed integer value of an FP16 in units of 2**-24 (|x| < 2**41)
VW = 50          # signed width of a dequantized value before FP16 conversion


def sanitize(m, b):
    """Lossy-mode input policy: NaN -> +0, +-inf -> +-65504, -0 -> +0.
    Returns (clean bits, nonfinite flag)."""
    clean = Signal(16)
    nf = Signal()
    e = b[10:15]
    m.comb += [
        nf.eq(e == 31),
        If(nf & (b[0:10] != 0), clean.eq(0))
        .Elif(nf, clean.eq(Cat(C(RA.FP16_MAX_BITS, 15), b[15])))
        .Elif(b == 0x8000, clean.eq(0))
        .Else(clean.eq(b)),
    ]
    return clean, nf


FP16_TO_INT_STAGES = 1   # registers inside fp16_to_int with `ce`


def fp16_to_int(m, b, ce=None):
    """Finite FP16 bits -> signed integer, units of 2**-24: the magnitude's shift, then the
    sign applied; with `ce`, a register (moving on `ce`) between the two."""
    e = b[10:15]
    sh = Signal(5)
    mag = Signal(XW - 1)
    v = Signal((XW, True))
    m.comb += [
        sh.eq(e - 1),
        If(e == 0, mag.eq(b[0:10])).Else(mag.eq(Cat(b[0:10], C(1, 1)) << sh)),
    ]
    mag_r, neg = stage(m, ce, mag), stage(m, ce, b[15])
    m.comb += If(neg, v.eq(-mag_r)).Else(v.eq(mag_r))
    return v


def order_key(b):
    """FP16 bits (canonical, finite) -> unsigned key whose order is the value order."""
    return Mux(b[15], ~b, b | 0x8000)


def stage(m, ce, x):
    """`x` (a Signal) registered while `ce` is high (`ce` True: every cycle): one pipeline
    stage. Without `ce` (None), `x` itself: the block stays combinational (as the
    arithmetic tests drive it)."""
    if ce is None:
        return x
    r = Signal.like(x)
    m.sync += r.eq(x) if ce is True else If(ce, r.eq(x))
    return r


def delay(m, ce, x, n):
    """`x` through n stages."""
    for _ in range(n):
        x = stage(m, ce, x)
    return x


def bitlen(m, x, width, lo=0):
    """Bit length of the unsigned x[lo:lo + width] (0 for 0), as a tree: the upper half's
    length plus the lower half's width where the upper half is not zero, else the lower
    half's; log2(width) multiplexers deep, not a chain of `width`."""
    n = Signal(max=width + 1)
    if width == 1:
        m.comb += n.eq(x[lo])
        return n
    h = width // 2
    n_lo, n_hi = bitlen(m, x, h, lo), bitlen(m, x, width - h, lo + h)
    m.comb += If(x[lo + h: lo + width] != 0, n.eq(n_hi + h)).Else(n.eq(n_lo))
    return n


INT_TO_FP16_STAGES = 3      # int_to_fp16's pipeline registers where it is given `ce`


def int_to_fp16(m, v, width=VW, ce=None):
    """Signed integer (units 2**-24) -> FP16 bits, round to nearest even, saturating.
    With `ce`, INT_TO_FP16_STAGES registers split it (|v|; the shift, a bit length; the
    shifted mantissa with its round and sticky bits; then the rounding, the mantissa
    increment and the exponent, combinational): the result follows `v` by that many `ce`
    cycles.

    Rounding as round bit and sticky bit (ref_arith.int_to_fp16_spec compares the dropped
    bits `rem` with `half`): `mag << 1` shifted right by `shift` holds the mantissa above
    the round bit mag[shift - 1] (0 when shift is 0), and the sticky bit ORs mag[i] for
    i < shift - 1 under a mask decoded from `shift`: rem > half is round & sticky, rem ==
    half is round & ~sticky. One shifter, no wide comparator."""
    neg0 = Signal()
    mag0 = Signal(width)
    m.comb += [neg0.eq(v < 0), If(v < 0, mag0.eq(-v)).Else(mag0.eq(v))]
    mag, neg = stage(m, ce, mag0), stage(m, ce, neg0)
    # the shift is max(bitlen(mag) - 11, 0), which is the bit length of mag >> 11
    shift0 = bitlen(m, mag, width - 11, lo=11)
    mag1, shift, neg1 = stage(m, ce, mag), stage(m, ce, shift0), stage(m, ce, neg)
    ext = Signal(width + 1)          # mag << 1 >> shift: the mantissa above the round bit
    ext13 = Signal(13)
    sticky0 = Signal()
    m.comb += [
        ext.eq(Cat(C(0, 1), mag1) >> shift),
        ext13.eq(ext[0:13]),
        sticky0.eq(reduce(or_, [mag1[i] & (shift > i + 1) for i in range(width - 1)])),
    ]
    # the exponent of either outcome of the rounding (mantissa carried out or not) and its
    # saturation, computed beside the shifter: the last stage only picks
    e1, e2 = Signal(max=width + 3), Signal(max=width + 3)
    sat1, sat2 = Signal(), Signal()
    m.comb += [e1.eq(shift + 1), e2.eq(shift + 2), sat1.eq(e1 >= 31), sat2.eq(e2 >= 31)]
    mr, sticky, sign = stage(m, ce, ext13), stage(m, ce, sticky0), stage(m, ce, neg1)
    e1r, e2r, sat1r, sat2r = (stage(m, ce, x) for x in (e1, e2, sat1, sat2))
    up = Signal()
    mant2 = Signal(13)
    ovf = Signal()
    mant3 = Signal(12)
    e = Signal(5)
    sat = Signal()
    bits = Signal(15)
    m.comb += [
        up.eq(mr[0] & (sticky | mr[1])),
        mant2.eq(mr[1:13] + up),
        ovf.eq(mant2[11]),
        If(ovf, mant3.eq(mant2[1:13]), e.eq(e2r), sat.eq(sat2r))
        .Elif(mant2[10], mant3.eq(mant2[0:12]), e.eq(e1r), sat.eq(sat1r))
        .Else(mant3.eq(mant2[0:12]), e.eq(0), sat.eq(0)),      # subnormal
        If(sat, bits.eq(RA.FP16_MAX_BITS)).Else(bits.eq(Cat(mant3[0:10], e))),
    ]
    # a negative v has |v| > 0, so its bits are never zero: the sign needs no zero check
    out = Signal(16)
    m.comb += out.eq(Cat(bits, sign))
    return out


CHOOSE_SCALE_STAGES = 3     # choose_scale's registers where it is given `ce`
QUANTIZE_STAGES = 5         # quantize's registers where it is given `ce`


def choose_scale(m, r, qmax, ce=None):
    """Smallest E5M3 code with S(code) * qmax >= r (r unsigned); 255 if none.
    32 constant comparators (registered with `ce`) and a priority encoder (registered) pick
    the exponent, then r >> e + 5 and its dropped-bits flag (registered), then 8 small
    comparators pick the mantissa: the code follows `r` by CHOOSE_SCALE_STAGES `ce` cycles
    (combinational without `ce`)."""
    ok0 = Signal(32)
    m.comb += [ok0[e].eq((15 * qmax << (e + RA.SCALE_SHIFT)) >= r) for e in range(32)]
    ok, r0 = stage(m, ce, ok0), stage(m, ce, r)
    emin0 = Signal(5)
    m.comb += [emin0.eq(31)] + [If(ok[e], emin0.eq(e)) for e in reversed(range(32))]
    # with the exponent, the mask of the bits r >> E drops: E = emin + 5 > i, that is
    # emin > i - 5, and ok is monotone in e (ok[e] for e >= emin), so ~ok[i - 5] (E is at
    # most 36). No adder or comparator behind emin in the next stage: they were the
    # kivi_n10v9 compressor's critical path.
    sh = RA.SCALE_SHIFT
    drop0 = Signal(len(r))
    m.comb += [drop0[i].eq(1 if i < sh else (~ok[i - sh] if i - sh < 32 else 0))
               for i in range(len(r))]
    r1, emin1, none1 = stage(m, ce, r0), stage(m, ce, emin0), stage(m, ce, ~ok[31])
    drop = stage(m, ce, drop0)
    # r >> E <= 15 qmax where the exponent exists (ok[emin]); else the code is 255 anyway
    shr0 = Signal((15 * qmax).bit_length())
    frac0 = Signal()
    m.comb += [
        shr0.eq(r1[sh:] >> emin1),
        frac0.eq((r1 & drop) != 0),
    ]
    shr, frac, emin, none = (stage(m, ce, x) for x in (shr0, frac0, emin1, none1))
    msel = Signal(3)
    code = Signal(8)
    # (8 + m) qmax >= shr + frac, with no adder: > shr where bits were dropped, else >=
    m.comb += [
        msel.eq(7),
        [If(Mux(frac, (8 + mm) * qmax > shr, (8 + mm) * qmax >= shr), msel.eq(mm))
         for mm in reversed(range(8))],
        If(none, code.eq(255)).Else(code.eq(Cat(msel, emin))),
    ]
    return code


def quantize(m, d, code, qmax, ce=None):
    """ref_arith.quantize for d >= 0 (unsigned signal). With `ce`, registers after the
    code's tables (with the operand), after the pre-shift (with the reciprocal and the
    guard bits), after the multiply, after the
    rounding add and after the final shift: q follows `d`, `code` by QUANTIZE_STAGES `ce`
    cycles."""
    # g = min(e + 5, GUARD) and the pre-shift e + 5 - g, looked up from the code's exponent
    # (32-entry tables: no adder or comparator ahead of the shifter)
    # The tables are registered with the operand, and the pre-shift's saturation is a mask
    # of the bits at or above DSH_BITS + the shift, ANDed beside the shifter (a table, the
    # shifter and the saturation test in one stage were the kivi_n10v9 compressor's path).
    ee = [e + RA.SCALE_SHIFT for e in range(32)]
    nd = len(d)
    g00, sh10 = Signal(4), Signal(6)
    sat_mask0 = Signal(nd)
    recip00 = Signal(RA.RECIP_BITS - 2)
    m.comb += [
        g00.eq(Array([C(min(E, RA.GUARD), 4) for E in ee])[code[3:8]]),
        sh10.eq(Array([C(E - min(E, RA.GUARD), 6) for E in ee])[code[3:8]]),
        sat_mask0.eq(Array([C(((1 << nd) - 1) >> (RA.DSH_BITS + E - min(E, RA.GUARD))
                              << (RA.DSH_BITS + E - min(E, RA.GUARD)), nd)
                            for E in ee])[code[3:8]]),
        recip00.eq(Array([C(int(x), RA.RECIP_BITS - 2) for x in RA.RECIP])[code[0:3]]),
    ]
    d0, sh1, sat_mask = stage(m, ce, d), stage(m, ce, sh10), stage(m, ce, sat_mask0)
    g0, recip0 = stage(m, ce, g00), stage(m, ce, recip00)
    dshf = Signal(nd)
    dsh0 = Signal(RA.DSH_BITS)
    m.comb += [
        dshf.eq(d0 >> sh1),
        If((d0 & sat_mask) != 0, dsh0.eq((1 << RA.DSH_BITS) - 1)).Else(dsh0.eq(dshf)),
    ]
    dsh, recip, g1 = stage(m, ce, dsh0), stage(m, ce, recip0), stage(m, ce, g0)
    pw = RA.DSH_BITS + RA.RECIP_BITS - 2
    # the product in two parts, each registered straight out of its multiplier: the
    # operand's low 17 bits times the reciprocal (one 18 x 18 multiplier: the ECP5's
    # MULT18X18D is signed as yosys maps it, so an unsigned operand of 18 bits took two
    # multipliers and an adder) and its high bits' product. Then their sum with the rounding
    # constant 2**(RECIP_BITS - 1 + g), decoded from g (g <= GUARD: a one-hot table, no
    # shifter), registered: no adder behind a multiplier (a multiplier with an adder behind
    # it and the routing to and from its DSP site was the kivi_k4v3 compressor's path once
    # the shift below was one-hot). Then the shift by RECIP_BITS + g and the clamp.
    LO = 17
    plo0, phi0 = Signal(LO + len(recip)), Signal(len(dsh) - LO + len(recip))
    m.comb += [plo0.eq(dsh[:LO] * recip), phi0.eq(dsh[LO:] * recip)]
    plo, phi, g2 = stage(m, ce, plo0), stage(m, ce, phi0), stage(m, ce, g1)
    half = Signal(pw)
    total0 = Signal(pw + 1)
    m.comb += [half.eq(Array([C(1 << (RA.RECIP_BITS - 1 + k), pw)
                              for k in range(RA.GUARD + 1)])[g2]),
               total0.eq(plo + (phi << LO) + half)]
    # g one-hot in its last register: the shift by RECIP_BITS + g is an AND-OR of nine
    # terms (as an index, yosys built the nine-way choice 15 cells deep: the kivi_k4v3
    # compressor's critical path)
    total = stage(m, ce, total0)
    g_oh = stage(m, ce, Cat(*[g2 == k for k in range(RA.GUARD + 1)]))
    qq0 = Signal(pw + 1 - RA.RECIP_BITS)
    m.comb += qq0.eq(reduce(or_, [Mux(g_oh[k], total[RA.RECIP_BITS + k:], 0)
                                  for k in range(RA.GUARD + 1)]))
    # the shift registered before the clamp: the shift's (GUARD + 1)-way choice, the clamp's
    # compare and a caller's own clamp behind it were one stage (the kivi_k4v3
    # compressor's critical path once its parameter files' enables were registers)
    qq = stage(m, ce, qq0)
    q = Signal(max=qmax + 1)
    m.comb += If(qq > qmax, q.eq(qmax)).Else(q.eq(qq))
    return q


def recip_exact(d, width):
    """(s, M) with M = ceil(2**s / d), s = width + bitlen(d - 1): (c * M) >> s == c // d for
    every c < 2**width (2**s <= M * d <= 2**s + 2**(s - width), the classic sufficient
    condition, asserted)."""
    s = width + (d - 1).bit_length()
    M = -(-(1 << s) // d)
    assert (1 << s) <= M * d <= (1 << s) + (1 << (s - width))
    return s, M


def recip_low(d, width):
    """M = floor(2**width / d): for c < 2**width, (c * M) >> width is c // d or one less
    (c * (2**width / d - M) / 2**width < 1), so c - ((c * M) >> width) * d lies in [0, 2d)."""
    return (1 << width) // d


def split_const(m, c, width, d, ce=None):
    """(c // d, c % d) of an unsigned `width`-bit c in SPLIT_CONST_STAGES stages (with
    `ce`): c * recip_low(d) as two partial products (c's low 17 bits and its high bits,
    one MULT18X18D each: a c of more than 18 bits took two multipliers and their adder in
    one stage, the kivi_n10v9 decompressor's path), registered; their sum, whose high bits
    are the estimate q' = (c * recip_low(d)) >> width, low by at most one, registered with
    c's low bits; q' d modulo 2**bitlen(2d - 1), registered; then the remainder c - q' d in
    that modulus (it is below 2d) and the correction (r >= d: q' + 1, r - d), registered.
    Short multiplies instead of recip_exact's wide one."""
    M = recip_low(d, width)
    rb = (2 * d - 1).bit_length()
    qw = max(width - d.bit_length() + 1, 1)
    LO = min(17, width)
    plo0, phi0 = Signal(LO + M.bit_length()), Signal(max(width - LO, 1) + M.bit_length())
    m.comb += [plo0.eq(c[:LO] * M), phi0.eq(c[LO:] * M if width > LO else 0)]
    plo, phi, c1 = stage(m, ce, plo0), stage(m, ce, phi0), stage(m, ce, c[0:rb])
    prod = Signal(width + M.bit_length())
    q0 = Signal(qw)
    m.comb += [prod.eq(plo + (phi << LO)), q0.eq(prod >> width)]
    qe, clo = stage(m, ce, q0), stage(m, ce, c1)
    qd0 = Signal(rb)
    m.comb += qd0.eq(qe[0:rb] * d)              # modulo 2**rb
    qd, qe, clo = stage(m, ce, qd0), stage(m, ce, qe), stage(m, ce, clo)
    r0, r1 = Signal(rb), Signal(rb)
    q1 = Signal(qw)
    m.comb += [
        r0.eq(clo - qd),                        # modulo 2**rb: exact, r < 2d
        If(r0 >= d, q1.eq(qe + 1), r1.eq(r0 - d)).Else(q1.eq(qe), r1.eq(r0)),
    ]
    r2 = Signal(max((d - 1).bit_length(), 1))
    m.comb += r2.eq(r1)
    return stage(m, ce, q1), stage(m, ce, r2)


SPLIT_G = 8          # fields of this many digits (or more) are split in two by split_const
SPLIT_CONST_STAGES = 4


def level_digits_stages(g):
    """Registers level_digits puts on a field of g digits, given `ce`."""
    return (SPLIT_CONST_STAGES if g >= SPLIT_G else 0) + 1


def level_digits(m, code, levels, g, w, ce=None, saturate=True):
    """Digits q_0..q_{g-1} of a w-bit base-`levels` field (ref_packing.unpack_levels): digit
    k is (Q_k - levels Q_{k+1}) mod 2**4 with the quotients Q_k = code // levels**k, all
    computed side by side by exact reciprocal multiplies (recip_exact) and registered; the
    last, Q_{g-1}, saturates at levels - 1 (`saturate`; else the field is below levels**g).
    A field of SPLIT_G digits or more is first split by levels**(g/2) (split_const,
    SPLIT_CONST_STAGES registers) into its high half (saturating) and low half (below levels**(g/2)). With
    `ce`, the digits follow `code` by level_digits_stages(g) cycles; without, combinational."""
    if g >= SPLIT_G:
        h = g // 2
        hi, lo = split_const(m, code, w, levels ** h, ce)
        return (level_digits(m, lo, levels, h, len(lo), ce, saturate=False) +
                level_digits(m, hi, levels, g - h, len(hi), ce, saturate))
    qb = (levels - 1).bit_length()
    quots = [code]
    for k in range(1, g):
        s, M = recip_exact(levels ** k, w)
        prod = Signal(w + M.bit_length())
        qk = Signal(max(w - (levels ** k - 1).bit_length() + 1, 1))
        m.comb += [prod.eq(code * M), qk.eq(prod >> s)]
        quots.append(qk)
    # registered: the low bits of each quotient the subtractions need; the last one whole
    # (its saturation compare comes after the register)
    lows = [stage(m, ce, q[0:qb]) for q in quots[:-1]] + [stage(m, ce, quots[-1])]
    digits = []
    for k in range(g):
        dk = Signal(qb)
        if k < g - 1:
            m.comb += dk.eq(lows[k] - mul_const(lows[k + 1][0:qb], levels))
        elif saturate:
            m.comb += If(lows[k] > levels - 1, dk.eq(levels - 1)).Else(dk.eq(lows[k]))
        else:
            m.comb += dk.eq(lows[k])
        digits.append(dk)
    return digits


def _sum_tree(terms):
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def mul_const(x, k):
    """x * k for a constant k > 0 as a balanced tree of shifted copies of x (adders, not a
    DSP multiplier: a chain of constant multiplies mapped to DSPs was the slowest path)."""
    return _sum_tree([x << i for i in range(k.bit_length()) if k >> i & 1])


def level_code_stages(g):
    """Registers level_code puts on g digits, given `ce`: one per level of its tree."""
    return (g - 1).bit_length()


def level_code(m, qs, levels, ce=None):
    """Base-`levels` field sum q_k * levels**k of digits qs (len(qs) a power of two). Pairs
    first: (q_0 + lev q_1) + lev**2 (q_2 + lev q_3) + ..., a tree of depth log2(g) rather
    than Horner's chain of g - 1 multiply-adds; the same integer. With `ce`, each level of
    the tree is registered (level_code_stages(g))."""
    assert len(qs) & (len(qs) - 1) == 0
    items, w = list(qs), levels
    while len(items) > 1:
        nxt = []
        for i in range(0, len(items), 2):
            s_ = Signal((levels ** (2 * len(qs) // len(items)) - 1).bit_length())
            m.comb += s_.eq(items[i] + mul_const(items[i + 1], w))
            nxt.append(stage(m, ce, s_))
        items, w = nxt, w * w
    return items[0]


def zp_stats(m, lo_bits, hi_bits, qmax, zrange=(-ZP_ZERO_MAX, ZP_ZERO_MAX), ce=None):
    """Zero-point statistics of a group from its min / max (canonical FP16 bits), zero
    points in zrange = (zn, zp), a = zp if lo >= 0 else -zn:
    code = max(choose_scale(hi - lo, qmax), choose_scale(|lo|, a)),
    zero = sign(lo) * quantize(|lo|, code, a) (8-bit two's complement). ref_quant.group_params.
    With `ce`, registers in and after the integers, after the range and magnitude, in and
    after the scale choices, after the larger code and in the quantizer: (code, zero)
    follow the inputs by group_params_stages(True) `ce` cycles."""
    zn, zp = zrange
    lo = stage(m, ce, fp16_to_int(m, lo_bits, ce))
    hi = stage(m, ce, fp16_to_int(m, hi_bits, ce))
    rng0, mag0, neg0 = Signal(43), Signal(41), Signal()
    m.comb += [rng0.eq(hi - lo), neg0.eq(lo < 0), If(lo < 0, mag0.eq(-lo)).Else(mag0.eq(lo))]
    rng, mag, neg = stage(m, ce, rng0), stage(m, ce, mag0), stage(m, ce, neg0)
    # the three scale codes registered before the larger is chosen
    c1 = stage(m, ce, choose_scale(m, rng, qmax, ce))
    c2 = stage(m, ce, choose_scale(m, mag, -zn, ce))
    c2p = stage(m, ce, choose_scale(m, mag, zp, ce)) if zp != -zn else None
    mag = delay(m, ce, mag, CHOOSE_SCALE_STAGES + 1)
    neg = delay(m, ce, neg, CHOOSE_SCALE_STAGES + 1)
    if c2p is not None:
        c2n = c2
        c2 = Signal(8)
        m.comb += If(neg, c2.eq(c2n)).Else(c2.eq(c2p))
    code0 = Signal(8)
    m.comb += If(c1 > c2, code0.eq(c1)).Else(code0.eq(c2))
    code, mag, neg = stage(m, ce, code0), stage(m, ce, mag), stage(m, ce, neg)
    nmag = quantize(m, mag, code, max(-zn, zp), ce)
    code, neg = delay(m, ce, code, QUANTIZE_STAGES), delay(m, ce, neg, QUANTIZE_STAGES)
    zero = Signal(8)
    # quantize(., ., a) = min(a, .): the positive side's limit is a clamp of the same product
    m.comb += If(neg, zero.eq(-nmag)).Elif(nmag > zp, zero.eq(zp)).Else(zero.eq(nmag))
    return code, zero


def group_params_stages(zp):
    """Registers group_params puts between a group's min / max and its parameters."""
    return FP16_TO_INT_STAGES + 2 + CHOOSE_SCALE_STAGES + ((2 + QUANTIZE_STAGES) if zp else 0)


def group_params(m, lo_bits, hi_bits, qmax, zrange, ce=None):
    """(scale code, offset field) of a group with FP16 minimum `lo_bits` and maximum
    `hi_bits`: an integer zero point in `zrange` (kivi_z, kivi_n: zp_stats) or, with zrange
    None, the FP16 minimum itself (kivi). With `ce`, group_params_stages registers."""
    if zrange is not None:
        return zp_stats(m, lo_bits, hi_bits, qmax, zrange, ce)
    lo = stage(m, ce, fp16_to_int(m, lo_bits, ce))
    hi = stage(m, ce, fp16_to_int(m, hi_bits, ce))
    rng = Signal(43)
    m.comb += rng.eq(hi - lo)
    code = choose_scale(m, stage(m, ce, rng), qmax, ce)
    return code, delay(m, ce, lo_bits, group_params_stages(False))


def zp_offset(m, zero, code, ce=None):
    """zero * S(code), signed, units of 2**-24 (zero: 8-bit two's complement): the product
    zero (8 + m) and the shift e + 5, registered with `ce`, then the shift."""
    z = Signal((8, True))
    mant = Signal((5, True))
    sh = Signal(6)
    prod = Signal((13, True))
    out = Signal((50, True))
    m.comb += [z.eq(zero), mant.eq(Cat(code[0:3], C(1, 1))), sh.eq(code[3:8] + RA.SCALE_SHIFT),
               prod.eq(z * mant)]
    m.comb += out.eq(stage(m, ce, prod) << stage(m, ce, sh))
    return out


def zp_value(m, zero, q, code, ce=None):
    """(zero + q) * S(code), signed (the dequantized value of a kivi_z code): zero + q,
    8 + m and e + 5 registered with `ce`, then the 10-by-5-bit product (a DSP: no adder
    before it in its stage, the kivi_n10v9 decompressor's path), registered, then the
    shift."""
    z = Signal((8, True))
    t = Signal((10, True))
    mant = Signal((5, True))
    sh = Signal(6)
    prod = Signal((15, True))
    out = Signal((VW, True))
    m.comb += [z.eq(zero), t.eq(z + q), mant.eq(Cat(code[0:3], C(1, 1))),
               sh.eq(code[3:8] + RA.SCALE_SHIFT)]
    t1, mant1, sh1 = stage(m, ce, t), stage(m, ce, mant), stage(m, ce, sh)
    m.comb += prod.eq(t1 * mant1)
    m.comb += out.eq(stage(m, ce, prod) << stage(m, ce, sh1))
    return out
