"""Migen building blocks of the codec arithmetic, one function per reference function.

Each function adds combinational logic to module ``m`` and returns the result Signal.
They mirror ``ref_arith.py`` (and the level packing of ``ref_packing``, the group parameters
of ``ref_quant``) exactly (same widths, same rounding); ``tests/test_codec_gateware`` checks
each against the reference on random and exhaustive inputs.
"""
from __future__ import annotations

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


def fp16_to_int(m, b):
    """Finite FP16 bits -> signed integer, units of 2**-24."""
    e = b[10:15]
    sh = Signal(5)
    mag = Signal(XW - 1)
    v = Signal((XW, True))
    m.comb += [
        sh.eq(e - 1),
        If(e == 0, mag.eq(b[0:10])).Else(mag.eq(Cat(b[0:10], C(1, 1)) << sh)),
        If(b[15], v.eq(-mag)).Else(v.eq(mag)),
    ]
    return v


def order_key(b):
    """FP16 bits (canonical, finite) -> unsigned key whose order is the value order."""
    return Mux(b[15], ~b, b | 0x8000)


def stage(m, ce, x):
    """`x` (a Signal) registered while `ce` is high: one pipeline stage. Without `ce` (None),
    `x` itself: the block stays combinational (as the arithmetic tests drive it)."""
    if ce is None:
        return x
    r = Signal.like(x)
    m.sync += If(ce, r.eq(x))
    return r


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
    With `ce`, INT_TO_FP16_STAGES registers split it (|v|; its length and the shift; the
    rounding decision; then the mantissa increment and the exponent, combinational): the
    result follows `v` by that many `ce` cycles."""
    neg0 = Signal()
    mag0 = Signal(width)
    m.comb += [neg0.eq(v < 0), If(v < 0, mag0.eq(-v)).Else(mag0.eq(v))]
    mag, neg = stage(m, ce, mag0), stage(m, ce, neg0)
    n = bitlen(m, mag, width)
    shift0 = Signal(max=width + 1)
    m.comb += If(n > 11, shift0.eq(n - 11)).Else(shift0.eq(0))
    mag1, shift, neg1 = stage(m, ce, mag), stage(m, ce, shift0), stage(m, ce, neg)
    mant = Signal(width)
    rem = Signal(width)
    half = Signal(width)
    up0 = Signal()
    mant12 = Signal(12)
    m.comb += [
        mant.eq(mag1 >> shift),
        rem.eq(mag1 & ((C(1, width + 1) << shift) - 1)),
        If(shift > 0, half.eq(C(1, width) << (shift - 1))).Else(half.eq(0)),
        up0.eq((shift > 0) & ((rem > half) | ((rem == half) & mant[0]))),
        mant12.eq(mant[0:12]),
    ]
    mant_r, up, shift_r, sign = (stage(m, ce, x) for x in (mant12, up0, shift, neg1))
    mant2 = Signal(13)
    ovf = Signal()
    mant3 = Signal(12)
    shift2 = Signal(max=width + 2)
    normal = Signal()
    e = Signal(max=width + 3)
    bits = Signal(16)
    out = Signal(16)
    m.comb += [
        mant2.eq(mant_r + up),
        ovf.eq(mant2[11]),
        If(ovf, mant3.eq(mant2[1:13])).Else(mant3.eq(mant2[0:12])),
        shift2.eq(shift_r + ovf),
        normal.eq(mant3[10]),
        If(normal, e.eq(shift2 + 1)).Else(e.eq(0)),
        If(e >= 31, bits.eq(RA.FP16_MAX_BITS))
        .Else(bits.eq(Cat(mant3[0:10], e[0:5]))),
        If(bits == 0, out.eq(0)).Else(out.eq(Cat(bits[0:15], sign))),
    ]
    return out


def choose_scale(m, r, qmax):
    """Smallest E5M3 code with S(code) * qmax >= r (r unsigned); 255 if none.
    32 constant comparators pick the exponent, 8 pick the mantissa."""
    ok = Signal(32)
    m.comb += [ok[e].eq((15 * qmax << (e + RA.SCALE_SHIFT)) >= r) for e in range(32)]
    emin = Signal(5)
    m.comb += [emin.eq(31)] + [If(ok[e], emin.eq(e)) for e in reversed(range(32))]
    E = Signal(6)
    rr = Signal(len(r))
    frac = Signal()
    msel = Signal(3)
    code = Signal(8)
    m.comb += [
        E.eq(emin + RA.SCALE_SHIFT),
        frac.eq((r & ((C(1, len(r) + 1) << E) - 1)) != 0),
        rr.eq((r >> E) + frac),
        msel.eq(7),
        [If((8 + mm) * qmax >= rr, msel.eq(mm)) for mm in reversed(range(8))],
        If(~ok[31], code.eq(255)).Else(code.eq(Cat(msel, emin))),
    ]
    return code


def quantize(m, d, code, qmax):
    """ref_arith.quantize for d >= 0 (unsigned signal)."""
    E = Signal(6)
    g = Signal(4)
    sh1 = Signal(6)
    dshf = Signal(len(d))
    dsh = Signal(RA.DSH_BITS)
    recip = Signal(RA.RECIP_BITS - 2)
    prod = Signal(RA.DSH_BITS + RA.RECIP_BITS - 2)
    qq = Signal(len(prod))
    q = Signal(max=qmax + 1)
    sh_half = Signal(6)
    sh2 = Signal(6)
    m.comb += [
        E.eq(code[3:8] + RA.SCALE_SHIFT),
        If(E < RA.GUARD, g.eq(E)).Else(g.eq(RA.GUARD)),
        sh1.eq(E - g),
        dshf.eq(d >> sh1),
        If(dshf >= (1 << RA.DSH_BITS), dsh.eq((1 << RA.DSH_BITS) - 1)).Else(dsh.eq(dshf)),
        recip.eq(Array([C(int(x), RA.RECIP_BITS - 2) for x in RA.RECIP])[code[0:3]]),
        prod.eq(dsh * recip),
        # shift amounts in their own 6-bit signals: in Verilog an inline `15 + g` would be
        # evaluated at the 4-bit width of its operands and wrap
        sh_half.eq(RA.RECIP_BITS - 1 + g),
        sh2.eq(RA.RECIP_BITS + g),
        qq.eq((prod + (C(1, len(prod)) << sh_half)) >> sh2),
        If(qq > qmax, q.eq(qmax)).Else(q.eq(qq)),
    ]
    return q


def divmod_const(m, c, width, d):
    """(c // d, c % d) for an unsigned `width`-bit signal c and a constant d >= 2: one
    multiply by M = ceil(2**s / d) and a shift, exact for every c < 2**width (checked here:
    2**s <= M * d <= 2**s + 2**(s - width) is the classic sufficient condition)."""
    s = width + (d - 1).bit_length()
    M = -(-(1 << s) // d)
    assert (1 << s) <= M * d <= (1 << s) + (1 << (s - width))
    q = Signal(max(width - (d - 1).bit_length() + 1, 1))
    r = Signal(max((d - 1).bit_length(), 1))
    prod = Signal(width + M.bit_length())
    m.comb += [prod.eq(c * M), q.eq(prod >> s), r.eq(c - q * d)]
    return q, r


def level_digits(m, code, levels, g, w):
    """Digits q_0..q_{g-1} of a w-bit base-`levels` field (ref_packing.unpack_levels): the
    first g-1 by successive division, the last saturating at levels - 1. (A tree of
    divisions by levels**(n/2), log2(g) deep, measured slower on ECP5: 16.2 against 18.5 MHz
    for the kivi_n10v9 decompressor; the wider constant multiplies cost more than the
    shorter chain saves.)"""
    qb = (levels - 1).bit_length()
    digits = []
    c, cw = code, w
    for k in range(g):
        q = Signal(qb)
        if k < g - 1:
            c2, r = divmod_const(m, c, cw, levels)
            m.comb += q.eq(r)
            c, cw = c2, len(c2)
        else:
            m.comb += If(c > levels - 1, q.eq(levels - 1)).Else(q.eq(c))
        digits.append(q)
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


def level_code(qs, levels):
    """Base-`levels` field sum q_k * levels**k of digits qs (an expression; len(qs) a power
    of two). Pairs first: (q_0 + lev q_1) + lev**2 (q_2 + lev q_3) + ..., a tree of depth
    log2(g) rather than Horner's chain of g - 1 multiply-adds; the same integer."""
    assert len(qs) & (len(qs) - 1) == 0
    items, w = list(qs), levels
    while len(items) > 1:
        items = [items[i] + mul_const(items[i + 1], w) for i in range(0, len(items), 2)]
        w *= w
    return items[0]


def zp_stats(m, lo_bits, hi_bits, qmax, zrange=(-ZP_ZERO_MAX, ZP_ZERO_MAX)):
    """Zero-point statistics of a group from its min / max (canonical FP16 bits), zero
    points in zrange = (zn, zp), a = zp if lo >= 0 else -zn:
    code = max(choose_scale(hi - lo, qmax), choose_scale(|lo|, a)),
    zero = sign(lo) * quantize(|lo|, code, a) (8-bit two's complement). ref_quant.group_params."""
    zn, zp = zrange
    lo = fp16_to_int(m, lo_bits)
    hi = fp16_to_int(m, hi_bits)
    rng = Signal(43)
    mag = Signal(41)
    m.comb += [rng.eq(hi - lo), If(lo < 0, mag.eq(-lo)).Else(mag.eq(lo))]
    c1 = choose_scale(m, rng, qmax)
    c2 = choose_scale(m, mag, -zn)
    if zp != -zn:
        c2p = choose_scale(m, mag, zp)
        c2n = c2
        c2 = Signal(8)
        m.comb += If(lo < 0, c2.eq(c2n)).Else(c2.eq(c2p))
    code = Signal(8)
    m.comb += If(c1 > c2, code.eq(c1)).Else(code.eq(c2))
    nmag = quantize(m, mag, code, max(-zn, zp))
    zero = Signal(8)
    # quantize(., ., a) = min(a, .): the positive side's limit is a clamp of the same product
    m.comb += If(lo < 0, zero.eq(-nmag)).Elif(nmag > zp, zero.eq(zp)).Else(zero.eq(nmag))
    return code, zero


def zp_offset(m, zero, code):
    """zero * S(code), signed, units of 2**-24 (zero: 8-bit two's complement)."""
    z = Signal((8, True))
    mant = Signal((5, True))
    sh = Signal(6)
    prod = Signal((13, True))
    out = Signal((50, True))
    m.comb += [z.eq(zero), mant.eq(Cat(code[0:3], C(1, 1))), sh.eq(code[3:8] + RA.SCALE_SHIFT),
               prod.eq(z * mant), out.eq(prod << sh)]
    return out


def zp_value(m, zero, q, code):
    """(zero + q) * S(code), signed (the dequantized value of a kivi_z code)."""
    z = Signal((8, True))
    t = Signal((10, True))
    mant = Signal((5, True))
    sh = Signal(6)
    prod = Signal((15, True))
    out = Signal((VW, True))
    m.comb += [z.eq(zero), t.eq(z + q), mant.eq(Cat(code[0:3], C(1, 1))),
               sh.eq(code[3:8] + RA.SCALE_SHIFT), prod.eq(t * mant), out.eq(prod << sh)]
    return out
