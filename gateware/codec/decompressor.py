"""Migen stream core ``KVDecompressor``: compressed pages in, FP16 KV pages out.

Bit exact with ``reference.py`` for the modes in ``core.GATEWARE_MODES``. A bit reader
holds the head of the compressed stream (its input checked for length and CRC on the way
in); the decoding program takes the header, the parameter sections (into rotating register
files) and the payload from it; the payload's codes are unpacked into digits, dequantized
and converted to FP16 in an output pipeline of one adder or shifter a stage, ending in a
two-beat output buffer. See README.md for the interface and the stages.
"""
from __future__ import annotations

from functools import reduce
from operator import or_

from migen import Array, C, Cat, If, Module, Mux, Signal
from migen.fhdl.bitcontainer import log2_int

from litex.soc.interconnect import stream

from . import arith as A
from . import ref_arith as RA
from . import reference as R
from .core import (check_geometry, level_groups, out_buffer, page_beats, payload_pads,
                   resolve_mode, rotate, zero_lanes)
from .crc import INIT as CRC_INIT, XOROUT as CRC_XOROUT, crc32_expr


class _InputCheck(Module):
    """Input side of a page: beats are accepted up to `last` (the reader `load`s those of
    the page while it has `room`), counted against the page's length (`sink.data[9]` of the
    first beat: SINK page) and CRC-checked: `e_trunc` (`last` early), `e_over` (`last`
    late), `e_crc`. `finish` clears for the next page."""

    def __init__(self, sink, nin0, nin_s):
        dw = len(sink.data)
        nin = max(nin0, nin_s)
        self.finish = Signal()           # in: the page is done
        self.room = Signal()             # in: the bit reader has room for a beat
        self.at_end = Signal()           # in: the decoding program is done
        self.accept, self.load = Signal(), Signal()                    # out
        self.last_seen = Signal()                                      # out: `last` was taken
        self.e_trunc, self.e_over, self.e_crc = Signal(), Signal(), Signal()   # out
        ib = Signal(max=nin + 1)         # input beats of this page accepted
        snk_in = Signal()                # SINK flag seen in beat 0
        nin_m1 = Signal(max=nin + 1)     # index of the page's final (CRC) beat, once known
        sk, accept = sink, self.accept
        # Where the next beat falls (in the page, before its CRC beat, at it): registers,
        # computed with the beat count's next value. Beat 0 (the header, ib == 0) is inside
        # the page, before its CRC beat, whichever the length: the comparisons need the
        # SINK flag only from beat 1 on (a page has at least two beats).
        assert min(nin0, nin_s) >= 2
        in_page = Signal(reset=1)
        before_crc = Signal(reset=1)
        at_crc = Signal()
        ib_n, snk_n = Signal.like(ib), Signal()
        self.comb += [
            ib_n.eq(ib), snk_n.eq(snk_in),
            If(self.finish, ib_n.eq(0))
            .Elif(accept, If(in_page, ib_n.eq(ib + 1)), If(ib == 0, snk_n.eq(sk.data[9]))),
            nin_m1.eq(Mux(snk_n, nin_s - 1, nin0 - 1)),
        ]
        self.sync += [
            ib.eq(ib_n), snk_in.eq(snk_n),
            in_page.eq((ib_n == 0) | (ib_n <= nin_m1)),
            before_crc.eq((ib_n == 0) | (ib_n < nin_m1)),
            at_crc.eq((ib_n != 0) & (ib_n == nin_m1)),
        ]
        self.comb += [
            # (the reader's `room` is `n <= cap - dw`, not `n + dw <= cap`: Verilog evaluates
            # the sum at the comparison's width, that of `cap`, and at dw = 32 a full buffer
            # wrapped to 0 and took a beat it had no room for; Migen's simulator does not
            # wrap, the Verilator co-sim under output back-pressure caught it)
            sk.ready.eq(~self.last_seen & (self.at_end | ~in_page | self.room)),
            accept.eq(sk.valid & sk.ready),
            self.load.eq(accept & ~self.at_end & in_page),
        ]
        crc = Signal(32, reset=CRC_INIT)
        crc_full = crc32_expr(crc, sk.data, dw)
        crc_part = crc32_expr(crc, sk.data, dw - 32) if dw > 32 else crc
        # the CRC beat's check is registered: computed and received CRC compared a cycle
        # later (`checking`; the page does not finish before)
        crc_calc, crc_got = Signal(32), Signal(32)
        self.checking = chk = Signal()                                 # out
        self.sync += If(chk, chk.eq(0), If(crc_calc != crc_got, self.e_crc.eq(1)))
        self.sync += [
            If(self.finish,
                crc.eq(CRC_INIT), self.last_seen.eq(0),
                self.e_trunc.eq(0), self.e_over.eq(0), self.e_crc.eq(0),
            ).Elif(accept,
                If(sk.last, self.last_seen.eq(1)),
                If(before_crc,
                    crc.eq(crc_full),
                    If(sk.last, self.e_trunc.eq(1)),
                ).Elif(at_crc,
                    chk.eq(1), crc_calc.eq(crc_part ^ CRC_XOROUT),
                    crc_got.eq(sk.data[dw - 32: dw]),
                    If(~sk.last, self.e_over.eq(1)),
                ),
            ),
        ]


class _BitReader(Module):
    """Bit buffer of the compressed stream, as whole input beats: `slots` of the beat width
    filled in order (`load` writes beat `data` into the first free one) and the offset `p`
    of the stream's head in the first. `take` removes `tw` bits: the offset moves on and the
    slots it passes are popped (the rest move down). `head`: `maxtake` bits from the head;
    `hdr`: the first 64 bits of the slots (the head while p == 0, as at a page's header).
    `clear` empties it. `room`: a slot is free for a beat (whether or not this cycle takes).
    For each take width `w` in `widths`, registers updated with the bits held `n`: `ge[w]`,
    it holds at least `w` bits, and `left[w]`, the bits left after taking `w` (n - w); the
    program picks the step's pair (`after_t`: left[tw]).

    A beat is written whole into a slot (no shift on the way in: a loaded beat was shifted
    behind the bits held, and `take` chose between the shifted buffers, the decompressors'
    critical path); the head's shift by `p` runs from registers into the register that
    takes it. `take` and `load`, late in the cycle (the output's ready, the input's valid),
    only pick among values computed from registers: the slots each number of pops would
    leave (p + tw and its carries, from registers) and where the beat would land."""

    def __init__(self, data, maxtake, widths):
        dw = len(data)
        sh = log2_int(dw)
        win = -(-(maxtake + dw - 1) // dw)      # slots the head can span
        S = win + 1                             # ... and one for the next beat
        maxpop = (dw - 1 + maxtake) // dw       # slots one take can pass
        cap = S * dw
        widths = sorted(set(widths) | {0})
        self.slots = slots = [Signal(dw, name=f"slot{k}") for k in range(S)]
        self.head, self.hdr = Signal(maxtake), Signal(64)                 # out
        self.n = n = Signal(max=cap + 1)
        self.tw = tw = Signal(max=maxtake + 1)                   # in
        self.after_t = after_t = Signal(max=cap + 1)             # in: left[tw]
        self.take, self.load, self.clear = Signal(), Signal(), Signal()   # in
        self.room = Signal(reset=1)                             # out (a register)
        self.ge = {w: Signal(reset=int(w == 0)) for w in widths}          # out
        self.left = {w: Signal(max=cap + 1) for w in widths}             # out
        take, load, clear = self.take, self.load, self.clear
        p = Signal(sh)                          # offset of the head in slots[0]
        c = Signal(max=S + 1)                   # slots in use
        adv_p = Signal(sh + maxpop.bit_length())
        pops = Signal(max=maxpop + 1)           # slots a take passes
        self.comb += [adv_p.eq(p + tw), pops.eq(adv_p[sh:])]
        self.comb += [self.hdr.eq(Cat(*slots)[:64]),
                      self.head.eq((Cat(*slots[:win]) >> p)[:maxtake])]
        n_next, c_next = Signal(max=cap + 1), Signal(max=S + 1)
        self.comb += [
            If(clear, n_next.eq(0))
            .Elif(load & take, n_next.eq(after_t + dw))
            .Elif(load, n_next.eq(n + dw))
            .Elif(take, n_next.eq(after_t))
            .Else(n_next.eq(n)),
            If(clear, c_next.eq(0))
            .Else(c_next.eq(c + load - Mux(take, pops, 0))),
        ]
        self.sync += [
            n.eq(n_next), c.eq(c_next), self.room.eq(c_next < S),
            *[g.eq(n_next >= w) for w, g in self.ge.items()],
            *[r.eq(n_next - w) for w, r in self.left.items()],
            If(clear, p.eq(0)).Elif(take, p.eq(adv_p[:sh])),
        ]
        for k in range(S):
            # after j pops slot k holds slot k + j, or the beat, if it lands there (c - j)
            opts = []
            for j in range(maxpop + 1):
                o = Signal(dw)
                src = slots[k + j] if k + j < S else 0
                self.comb += If(load & (c == k + j), o.eq(data)).Else(o.eq(src))
                opts.append(o)
            self.sync += If(clear, slots[k].eq(0)) \
                .Elif(take, slots[k].eq(Array(opts)[pops])) \
                .Else(slots[k].eq(opts[0]))


class _Program(Module):
    """The decoding program: step `st` of `steps` ((name, cycles, bits taken a cycle)),
    cycle `cnt` within it, `sub` output beat within a token, `ob` output beat of the page.
    A cycle's bits are taken (`take`) once the reader has them (`avail`) and, in a payload
    step, the output pipeline advances (`adv`). The header step checks `hdr_ok` (a bad
    header ends the program: `e_hdr`) and keeps the NONFINITE and SINK flags of `head`;
    without SINK the ksink step is skipped. `split`: payload steps whose field spans two
    output beats (taken on the even one)."""

    def __init__(self, steps, head, L, D, nout, maxtake, split, ge, left):
        names = [nm for nm, _, _ in steps]
        self.ge, self.left = ge, left        # in: the reader's flags and bits left, by w
        self.left_t = Signal(len(left[0]))   # out: the bits left after this cycle's take
        self.index = {nm: i for i, nm in enumerate(names)}
        self.END = END = len(steps)
        self.adv, self.hdr_ok, self.finish = Signal(), Signal(), Signal()
        self.avail = Signal()                # out: ... and they cover this cycle's take
        self.st, self.cnt = Signal(max=END + 1), Signal(max=max(n for _, n, _ in steps) + 1)
        self.sub, self.ob = Signal(max=D // L + 1), Signal(max=nout + 1)
        self.tw = Signal(max=maxtake + 1)    # out: bits taken this cycle
        self.take, self.go = Signal(), Signal()   # out: bits taken, ... by a good step
        self.in_payload, self.sub_wrap = Signal(), Signal()
        self.e_hdr, self.nonfinite, self.snk_d = Signal(), Signal(), Signal()
        st, cnt, sub, ob, tw = self.st, self.cnt, self.sub, self.ob, self.tw
        # The step's take width, as a binary number (`tw`) and one-hot over the reader's
        # widths (`wsel`), and whether the step takes at all (`live`: not ended, no bad
        # header, not skipped) are registers loaded with the next cycle's state: `avail`,
        # `left_t` and `take` are an AND-OR of registers, with no decode of `st` behind them
        # (their fan-out into the reader's buffer is wide).
        wl = sorted(ge)
        st_n, cnt_n = Signal.like(st), Signal.like(cnt)
        sub_n, ob_n = Signal.like(sub), Signal.like(ob)
        e_hdr_n, snk_n = Signal(), Signal()

        def width(i, o):
            """Take width of step `i` (END: 0) at output beat `o`."""
            w = [C(w) for _, _, w in steps] + [C(0)]
            wi = Signal(max=maxtake + 1)
            self.comb += wi.eq(Array(w)[i])
            for nm in split:
                self.comb += If((i == self.index[nm]) & o[0], wi.eq(0))
            return wi

        w0 = steps[0][2]
        self.wsel = wsel = Signal(len(wl), reset=1 << wl.index(w0))
        live = Signal(reset=1)
        tw_r = Signal(max=maxtake + 1, reset=w0)
        self.comb += tw.eq(tw_r)
        self.comb += [
            self.avail.eq(Cat(*[ge[w] & wsel[i] for i, w in enumerate(wl)]) != 0),
            self.left_t.eq(reduce(or_, [Mux(wsel[i], left[w], 0) for i, w in enumerate(wl)])),
        ]
        step_last, skip, hdr_bad, is_hdr = Signal(), Signal(), Signal(), Signal()
        self.comb += step_last.eq(Array([C(n - 1) for _, n, _ in steps] + [C(0)])[st] == cnt)
        self.comb += self.in_payload.eq(
            Array([C(int(nm in ("kq", "vq"))) for nm in names] + [C(0)])[st])
        self.comb += [
            # every step waits for `adv`: the stage after the program moves on `adv` (only
            # a payload step can meet a stalled output: before the payload the pipeline is
            # empty and `adv` high)
            self.take.eq(self.avail & live & self.adv),
            is_hdr.eq(st == 0), hdr_bad.eq(is_hdr & self.take & ~self.hdr_ok),
            self.go.eq(self.take & ~hdr_bad),
            self.sub_wrap.eq(sub == D // L - 1),
            skip.eq((st == self.index["ksink"]) & ~self.snk_d),
        ]
        self.comb += [
            st_n.eq(st), cnt_n.eq(cnt), sub_n.eq(sub), ob_n.eq(ob), e_hdr_n.eq(self.e_hdr),
            snk_n.eq(self.snk_d),
            If(self.finish, st_n.eq(0), cnt_n.eq(0), sub_n.eq(0), ob_n.eq(0), e_hdr_n.eq(0))
            .Elif(hdr_bad, st_n.eq(END), e_hdr_n.eq(1))
            .Elif(self.go,
                If(is_hdr, snk_n.eq(head[9])),
                If(step_last, st_n.eq(st + 1), cnt_n.eq(0), sub_n.eq(0)).Else(
                    cnt_n.eq(cnt + 1), If(self.sub_wrap, sub_n.eq(0)).Else(sub_n.eq(sub + 1))),
                If(self.in_payload, ob_n.eq(ob + 1)))
            .Elif(skip, st_n.eq(st + 1), cnt_n.eq(0), sub_n.eq(0)),
        ]
        # These registers follow the next state, but are computed for each outcome of the
        # cycle from registers (no take: stay or skip; a good step taken; a bad header
        # taken; `finish`: the first step), and `take`, late, picks among them last
        # (through the next state's decode, it was the kivi_n10v9 decompressor's path).
        def derived(s, o, e, k):
            """(width, wsel, live, at_end) of a next state: step s, output beat o, e_hdr e,
            SINK k."""
            wn = width(s, o)
            lv = Signal()
            self.comb += lv.eq((s != END) & ~e & ~((s == self.index["ksink"]) & ~k))
            return wn, Cat(*[wn == w for w in wl]), lv, s == END

        nxt = Signal.like(st)
        ob_go = Signal.like(ob)
        self.comb += [If(step_last, nxt.eq(st + 1)).Else(nxt.eq(st)),
                      If(self.in_payload, ob_go.eq(ob + 1)).Else(ob_go.eq(ob))]
        stay = Signal.like(st)
        self.comb += If(skip, stay.eq(st + 1)).Else(stay.eq(st))
        d_stay = derived(stay, ob, self.e_hdr, self.snk_d)
        d_go = derived(nxt, ob_go, self.e_hdr, Mux(is_hdr, head[9], self.snk_d))
        bad_if_taken = Signal()
        self.comb += bad_if_taken.eq(is_hdr & ~self.hdr_ok)
        self.at_end = Signal()               # out: st == END (a register)
        for reg, k in ((tw_r, 0), (wsel, 1), (live, 2), (self.at_end, 3)):
            first = (w0, 1 << wl.index(w0), 1, 0)[k]     # after `finish`: step 0
            self.sync += If(self.finish, reg.eq(first)) \
                .Elif(self.take & bad_if_taken, reg.eq((0, 1 << wl.index(0), 0, 1)[k])) \
                .Elif(self.take, reg.eq(d_go[k])) \
                .Else(reg.eq(d_stay[k]))
        self.sync += [st.eq(st_n), cnt.eq(cnt_n), sub.eq(sub_n), ob.eq(ob_n),
                      self.e_hdr.eq(e_hdr_n), self.snk_d.eq(snk_n),
                      If(self.go & is_hdr, self.nonfinite.eq(head[8]))]


class _Params(Module):
    """The page's parameters, loaded from the reader's `head` by their steps (strobes
    `step[name]`): scale codes and offsets of the K channels and V tokens and the SINK
    page's exact token-0 K, in rotating register files whose heads are those of the output
    beat being decoded (rotated by the payload steps kq, vq)."""

    def __init__(self, head, L, T, D, klpc, vlpc):
        lw = 64 // klpc
        self.k_tok0 = Signal()           # in: a kq beat of token 0 of a SINK page
        self.sub_wrap = Signal()         # in: a vq beat ends its token
        self.step = {nm: Signal() for nm in ("kcode", "klo", "vcode", "vlo", "ksink", "kq", "vq")}
        self.kcode = kcode = [Signal(8) for _ in range(D)]
        self.klo = klo = [Signal(lw) for _ in range(D)]
        self.vcode = vcode = [Signal(8) for _ in range(T)]
        self.vlo = vlo = [Signal(lw) for _ in range(T)]
        self.ksink = ksink = [Signal(16) for _ in range(D)]
        vzw = 64 // vlpc                 # kivi_n: 4-bit V zero points, sign-extended to 8
        vz = [head[vzw * i: vzw * i + vzw] for i in range(vlpc)]
        rot = {
            "kcode": rotate(kcode, 8, [head[8 * i: 8 * i + 8] for i in range(8)]),
            "klo": rotate(klo, klpc, [head[lw * i: lw * i + lw] for i in range(klpc)]),
            "vcode": rotate(vcode, 8, [head[8 * i: 8 * i + 8] for i in range(8)]),
            "vlo": rotate(vlo, vlpc, [Cat(z, *([z[-1]] * (lw - vzw))) for z in vz]),
            "ksink": rotate(ksink, 4, [head[16 * i: 16 * i + 16] for i in range(4)]),
            "kq": rotate(kcode, L) + rotate(klo, L) + [If(self.k_tok0, *rotate(ksink, L))],
            "vq": [If(self.sub_wrap, *(rotate(vcode, 1) + rotate(vlo, 1)))],
        }
        for nm, stmts in rot.items():
            self.sync += If(self.step[nm], *stmts)


class _Digits(Module):
    """The L codes of an output beat from the reader's `head`: K (`kd`) and V (`vd`),
    `stages` registers (moving on `adv`) after it. Level-packed fields are split into
    base-`levels` digits (A.level_digits, pipelined); a field of 2L codes spans two output
    beats (`ob0`: the odd one): its high digits are held (`hold[side]`) for the next."""

    def __init__(self, mode, head, L, ob0, adv):
        self.hold = {"kq": Signal(), "vq": Signal()}     # in: keep the field's high digits
        if not mode.level_packed:
            self.stages = 0
            self.kd = [head[mode.kbits * j: mode.kbits * (j + 1)] for j in range(L)]
            self.vd = [head[mode.vbits * j: mode.vbits * (j + 1)] for j in range(L)]
            return
        (gk, wk), (gv, wv) = level_groups(mode, 2 * L)
        self.stages = max(A.level_digits_stages(g) for g in (gk, gv))
        self.kd = self._digits(head, L, ob0, adv, mode.k_levels, gk, wk, self.hold["kq"])
        self.vd = self._digits(head, L, ob0, adv, mode.v_levels, gv, wv, self.hold["vq"])

    def _digits(self, head, L, ob0, adv, lev, g, w, hold_now):
        pad = self.stages - A.level_digits_stages(g)    # the other side's extra stages
        fields = [head[i * w: (i + 1) * w] for i in range(max(L // g, 1))]
        digits = [A.delay(self, adv, d, pad) for f in fields
                  for d in A.level_digits(self, f, lev, g, w, ce=adv)]
        if g <= L:
            return digits
        # g == 2L: the field's low L digits now, its high L digits next beat, from a
        # register loaded when the even beat's digits leave the pipeline (the beat's
        # `hold` strobe and `ob0` flag travel with it)
        held = [Signal(len(d)) for d in digits[L:]]
        hold = A.delay(self, adv, hold_now, self.stages)
        self.sync += If(hold & adv, *[h.eq(d) for h, d in zip(held, digits[L:])])
        odd = A.delay(self, adv, ob0, self.stages)
        out = []
        for d_lo, d_hi in zip(digits[:L], held):
            o = Signal(max(len(d_lo), len(d_hi)))
            self.comb += If(odd, o.eq(d_hi)).Else(o.eq(d_lo))
            out.append(o)
        return out


class _Dequantizer(Module):
    """One dequantizer per lane, its operands chosen by the step (`is_k`: K payload, else
    V) and registered with the lane's code on `adv` (stage 1 of the output pipeline), then
    offset + q * S converted to FP16 (`out`) in `stages` more stages; token 0's exact K on a
    SINK page (`k_tok0`) replaces it. `kparams`: (lo, code, exact K) per lane, `vparams`:
    (lo, code) of the token. The codes `kd`, `vd` come `dstages` cycles after the beat's
    parameters (the digits' pipeline): the parameters, `is_k` and the override wait for
    them in as many registers.

    Stages after the operands: (kivi_k) the offset's magnitude and q (8 + m) (q * S(code)
    is that product shifted by e + 5: a 4-by-4-bit multiply, not 4 by 41), the offset as a
    signed integer, then their sum;
    (zero-point modes) zero + q, then (zero + q)(8 + m) and e + 5, then their shift; then the FP16
    conversion's A.INT_TO_FP16_STAGES. No stage holds more than one adder or shifter of the
    value."""

    def __init__(self, zp, kd, vd, kparams, vparams, dstages):
        self.adv, self.is_k, self.k_tok0 = Signal(), Signal(), Signal()
        self.stages = dstages + 3 + A.INT_TO_FP16_STAGES
        adv = self.adv

        is_k = A.delay(self, adv, self.is_k, dstages)        # the K/V choice of the codes' beat
        outs = []
        for kdj, vdj, (klo, kcode, ksink) in zip(kd, vd, kparams):
            lo0, code0 = Signal(len(klo)), Signal(8)
            ovr0, ks0 = Signal(), Signal(16)    # token 0's exact K on a SINK page
            self.sync += If(adv,
                            If(self.is_k, lo0.eq(klo), code0.eq(kcode))
                            .Else(lo0.eq(vparams[0]), code0.eq(vparams[1])),
                            ovr0.eq(self.is_k & self.k_tok0), ks0.eq(ksink))
            lo, code, ovr, ks = (A.delay(self, adv, x, dstages) for x in (lo0, code0, ovr0, ks0))
            q = Signal(max(len(kdj), len(vdj)))
            self.sync += If(adv, q.eq(Mux(is_k, kdj, vdj)))
            v = Signal((A.VW, True))
            if zp:
                self.comb += v.eq(A.stage(self, adv, A.zp_value(self, lo, q, code, ce=adv)))
            else:
                p, sh = Signal(len(q) + 4), Signal(6)
                self.comb += [p.eq(q * Cat(code[0:3], C(1, 1))),
                              sh.eq(code[3:8] + RA.SCALE_SHIFT)]
                off = A.stage(self, adv, A.fp16_to_int(self, lo, ce=adv))
                p2, sh2 = A.delay(self, adv, p, 2), A.delay(self, adv, sh, 2)
                # the shift in a signal of its own: inside the sum, Verilog would size it by
                # its unsigned operand (8 bits) once Migen casts it for the signed add
                ps, v1 = Signal(len(p) + 31 + RA.SCALE_SHIFT), Signal((A.VW, True))
                self.comb += [ps.eq(p2 << sh2), v1.eq(off + ps)]
                self.comb += v.eq(A.stage(self, adv, v1))
            f = A.int_to_fp16(self, v, ce=adv)
            for _ in range(self.stages - dstages):
                ovr, ks = A.stage(self, adv, ovr), A.stage(self, adv, ks)
            o = Signal(16)
            self.comb += If(ovr, o.eq(ks)).Else(o.eq(f))
            outs.append(o)
        self.out = Cat(*outs)


def _steps(mode, T, D, L, nout):
    """The decoding program: (step, cycles, bits a cycle), and the payload steps whose
    level-packed field spans two output beats."""
    klpc, vlpc = zero_lanes(mode, T)
    split = []
    if mode.level_packed:
        (gk, wk), (gv, wv) = level_groups(mode, 2 * L)
        # take per output beat: L/g fields, or one field every other beat when g = 2L
        kw = wk if gk == 2 * L else L // gk * wk
        vw = wv if gv == 2 * L else L // gv * wv
        split = [nm for nm, g in (("kq", gk), ("vq", gv)) if g == 2 * L]
        kpad, vpad = payload_pads(T, D, (gk, wk), (gv, wv))
    else:
        kw, vw = L * mode.kbits, L * mode.vbits
        kpad = vpad = 0                  # zero padding after a level-packed payload section
    steps = [("hdr", 1, 64), ("kcode", D // 8, 64), ("klo", D // klpc, 64),
             ("vcode", T // 8, 64), ("vlo", T // vlpc, 64), ("ksink", D // 4, 64),
             ("kq", nout // 2, kw)]
    steps += [("kpad", 1, kpad)] if kpad else []
    steps += [("vq", nout // 2, vw)] + ([("vpad", 1, vpad)] if vpad else [])
    steps += [("tail", 1, 64)]
    return steps, split


def _header_ok(h, mode, T, D):
    """The 64-bit header `h` is that of a page of this core (either length: SINK or not)."""
    length, length_s = R.page_length(mode, T, D), R.page_length(mode, T, D, sink=True)
    return ((h[0:8] == R.MAGIC) & (h[12:16] == R.VERSION) & (h[10:12] == 0) &
            (h[16:24] == mode.kind) & (h[24:32] == mode.bits_byte) & (h[32:40] == T) &
            (h[40:48] == D) & (h[48:64] == Mux(h[9], length_s, length)))


class KVDecompressor(Module):
    """Compressed pages in (``sink``, ``last`` on each page's final beat), FP16 pages out
    (``source``, one page of ``dw``-bit beats, ``last`` on its final beat).

    Status, valid in the cycle ``done`` pulses (once per input page, after its ``last``):
    ``error`` = 0 ok, 1 header, 2 truncated, 3 overlong, 4 crc (README.md). A page with a
    header error emits nothing; a truncated page emits at most what its bytes decode to;
    output never exceeds one page; input is always drained up to ``last``.
    """

    def __init__(self, mode="kivi_k4v3", dw=64, T=16, D=64):
        mode = resolve_mode(mode)
        L = check_geometry(dw, T, D)
        self.mode, self.dw, self.T, self.D = mode, dw, T, D
        self.sink = stream.Endpoint([("data", dw)])
        self.source = stream.Endpoint([("data", dw)])
        self.done = Signal()
        self.error = Signal(3)
        self.pages = Signal(32)
        self.errors = Signal(32)
        nin0 = page_beats(mode, T, D, dw)                # compressed beats per page
        nin_s = page_beats(mode, T, D, dw, sink=True)    # ... of a SINK page
        nout = 2 * T * D // L            # output beats per page
        klpc, vlpc = zero_lanes(mode, T)
        maxtake = max(64, dw)
        steps, split = _steps(mode, T, D, L, nout)

        self.submodules.inp = inp = _InputCheck(self.sink, nin0, nin_s)
        self.submodules.rd = rd = _BitReader(self.sink.data, maxtake, [w for _, _, w in steps])
        head = rd.hdr
        self.submodules.prog = prog = _Program(steps, head, L, D, nout, maxtake, split,
                                               rd.ge, rd.left)
        self.nonfinite = prog.nonfinite
        # One stage between the program and what it drives: the bits a cycle takes, the step
        # strobes and the beat's flags are registered on `adv`, and the parameter files, the
        # digits and the dequantizer act on them a cycle later, in the same order (a beat's
        # operands are read before its own rotation, after the loads and rotations of every
        # earlier cycle). The strobes' fan-out into the register files starts at a register.
        adv, finish = Signal(reset=1), Signal()
        taken = Signal(maxtake)
        self.sync += If(adv, taken.eq(rd.head))

        def staged(x):
            r = Signal()
            self.sync += If(finish, r.eq(0)).Elif(adv, r.eq(x))
            return r

        ob0 = staged(prog.ob[0])
        self.submodules.params = par = _Params(taken, L, T, D, klpc, vlpc)
        self.submodules.digits = dig = _Digits(mode, taken, L, ob0, adv)
        self.submodules.deq = deq = _Dequantizer(
            mode.zp, dig.kd, dig.vd, list(zip(par.klo, par.kcode, par.ksink)),
            (par.vlo[0], par.vcode[0]), dig.stages)
        self.comb += [
            inp.finish.eq(finish), inp.room.eq(rd.room), inp.at_end.eq(prog.at_end),
            rd.tw.eq(prog.tw), rd.after_t.eq(prog.left_t), rd.take.eq(prog.take),
            rd.load.eq(inp.load), rd.clear.eq(finish),
            prog.hdr_ok.eq(_header_ok(head, mode, T, D)),
            prog.finish.eq(finish),
            par.k_tok0.eq(staged(prog.snk_d & (prog.ob < D // L))),
            par.sub_wrap.eq(staged(prog.sub_wrap)),
        ]
        for nm, strobe in par.step.items():
            self.comb += strobe.eq(staged(prog.go & (prog.st == prog.index[nm])) & adv)
        for nm, strobe in dig.hold.items():
            self.comb += strobe.eq(staged(prog.go & (prog.st == prog.index[nm]) & ~prog.ob[0]))
        self.comb += [deq.is_k.eq(staged(prog.st == prog.index["kq"])), deq.k_tok0.eq(par.k_tok0)]
        pv = self._output(prog, deq, adv)
        # a page is finished once its input has ended (its CRC checked), the program is done
        # or starved and its last beat has left the output pipeline and buffer. `finish` is
        # the register of that condition (its fan-out into the reader, the program and the
        # input check starts at a flip-flop): in the cycle between, nothing can move (no
        # input is taken after `last`, the program has nothing to take, the pipeline is
        # empty), and the cycle after `finish` does not finish again.
        cond = Signal()
        self.comb += cond.eq(inp.last_seen & ~inp.checking &
                             (prog.at_end | ~prog.avail) & (Cat(*pv) == 0))
        self.sync += finish.eq(cond & ~finish)
        self._status(finish, inp, prog)

    def _output(self, prog, deq, adv):
        """Output pipeline: a payload beat taken from the bit reader (stage 0) is registered
        (the stage after the program), then with its group parameters, goes through the
        dequantizer's stages, and the FP16 beat enters a two-beat output buffer whose head
        is `source`. The stages advance together (`adv`) while the buffer holds at most one
        beat: `adv` is a register, so `source.ready` reaches no stage (a stall of
        `source` fills the buffer's second beat, then stops the pipeline a cycle later).
        Returns the stages' valid bits and the buffer's."""
        src = self.source
        pv = [Signal() for _ in range(2 + deq.stages)]      # stage valid bits
        pl = [Signal() for _ in pv]                         # ... and `last`
        self.comb += [prog.adv.eq(adv), deq.adv.eq(adv)]
        self.sync += If(adv, pv[0].eq(prog.take & prog.in_payload),
                        pl[0].eq(prog.ob == 2 * self.T * self.D // (self.dw // 16) - 1),
                        *[pv[i].eq(pv[i - 1]) for i in range(1, len(pv))],
                        *[pl[i].eq(pl[i - 1]) for i in range(1, len(pl))])
        push = Signal()
        cnt, cnt_next = out_buffer(self, src, push, deq.out, pl[-1])
        # `adv` is a register (cnt != 2 as the next cycle will have it): it enables the
        # pipeline and, with the step strobes, the parameter files' ~1,000 flip-flops (as
        # cnt's decode it was on both decompressors' critical paths at some seeds)
        self.sync += adv.eq(cnt_next != 2)
        self.comb += push.eq(adv & pv[-1])
        return pv + [cnt != 0]

    def _status(self, finish, inp, prog):
        """`done`, `error` (the first of header, truncated, overlong, crc), page counters."""
        err = Signal(3)
        self.comb += If(prog.e_hdr, err.eq(1)) \
            .Elif(inp.e_trunc | (prog.st != prog.END), err.eq(2)) \
            .Elif(inp.e_over, err.eq(3)).Elif(inp.e_crc, err.eq(4)).Else(err.eq(0))
        self.sync += [
            self.done.eq(finish),
            If(finish, self.error.eq(err), self.pages.eq(self.pages + 1),
               If(err != 0, self.errors.eq(self.errors + 1))),
        ]
