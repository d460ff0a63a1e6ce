"""Migen stream cores of the KV codec: ``KVCompressor`` and ``KVDecompressor``.

Both are bit exact with ``reference.py`` (the specification) for the modes in
``GATEWARE_MODES``; the reference keeps every other mode (for the ablation tables), the cores
refuse them. The mode, the page geometry and the datapath width ``dw`` are constructor
parameters. See README.md for the interface, timing and error codes.
"""
from __future__ import annotations

from migen import Array, C, Cat, If, Memory, Module, Mux, Signal
from migen.fhdl.bitcontainer import bits_for

from litex.soc.interconnect import stream

from . import arith as A
from . import reference as R
from .crc import INIT as CRC_INIT, XOROUT as CRC_XOROUT, crc32_expr


# The modes built in gateware, each co-simulated at 16 x 64 on trace and random pages
# (tests/test_codec_verilator.py): the SoC's and every board's mode (kivi_k4v3), the 3.2x
# modes (kivi_l16v12, kivi_l16v14) and the 4x mode (kivi_n10v9).
GATEWARE_MODES = ("kivi_k4v3", "kivi_l16v12", "kivi_l16v14", "kivi_n10v9")


def _resolve(mode):
    m = R.MODES[mode] if isinstance(mode, str) else mode
    if m not in [R.MODES[n] for n in GATEWARE_MODES]:
        why = (" (its variable-length byte-serial payload does not fit a one-beat-per-cycle "
               "datapath)" if m.kind == R.MODE_INT8_DELTA_RLE else "")
        raise ValueError(f"mode {m.name!r} is not in gateware{why}; gateware modes: "
                         f"{', '.join(GATEWARE_MODES)} (reference.py keeps every mode)")
    assert m.kivi_like
    return m


def _level_groups(mode, per_cycle):
    """kivi_z, kivi_l: (g, w) of K and V (reference.level_group); every group must fit in
    `per_cycle` values (one cycle of the datapath)."""
    gk = R.level_group(mode.k_levels)
    gv = R.level_group(mode.v_levels)
    for lev, (g, _) in ((mode.k_levels, gk), (mode.v_levels, gv)):
        if g > per_cycle:
            raise ValueError(f"{mode.name}: {lev} levels pack {g} values per field, more "
                             f"than this dw handles per cycle ({per_cycle}); use a wider dw")
    return gk, gv


def _check(dw, T, D):
    if dw not in (32, 64, 128):
        raise ValueError(f"dw must be 32, 64 or 128 bits, not {dw}")
    L = dw // 16
    if T % 8 or D % 8 or not (1 <= T <= 255 and 1 <= D <= 255):
        raise ValueError(f"T and D must be multiples of 8 in 8..248 (got T={T}, D={D})")
    if D % (2 * L):
        raise ValueError(f"D={D} must be a multiple of 2 * lanes = {2 * L} (dw={dw})")
    return L


def _zero_lanes(mode, T):
    """K and V zero points (or FP16 minima) per 64-bit word of their section; kivi_n's
    4-bit V zero points fill whole words only when T is a multiple of 16."""
    if not mode.zp:
        return 4, 4
    vz = mode.zero_bits("v")
    if T * vz % 64:
        raise ValueError(f"{mode.name}: {vz}-bit V zero points need T a multiple of "
                         f"{64 // vz} (got T={T})")
    return 8, 64 // vz


def _rot(regs, k, new=None):
    """Statements rotating a register file left by k (regs[i] <= regs[i+k]); the k entries
    falling off the head re-enter at the tail unless `new` gives their replacement."""
    n = len(regs)
    new = new if new is not None else regs[:k]
    return [regs[i].eq(regs[i + k]) for i in range(n - k)] + \
           [regs[n - k + j].eq(new[j]) for j in range(k)]


def _header_bits(mode, flags, T, D, length):
    """`length` is a 16-bit Signal (or an int)."""
    return Cat(C(R.MAGIC, 8), flags[0:4], C(R.VERSION, 4), C(mode.kind, 8),
               C(mode.bits_byte, 8), C(T, 8), C(D, 8),
               C(length, 16) if isinstance(length, int) else length)


class _BitPacker(Module):
    """Bit accumulator: `push` (width `pw`, `pn` valid bits, LSB first) when `push_ok`;
    emits dw-bit beats on `source`. CRC-32 of the page inserted into the last 32 bits of
    beat `nbeats - 1`."""

    def __init__(self, dw, maxpush, nbeats):
        self.source = stream.Endpoint([("data", dw)])
        self.last_beat = Signal(max=nbeats, reset=nbeats - 1)   # index of the page's CRC beat
        self.push = Signal(maxpush)
        self.pn = Signal(max=maxpush + 1)
        self.push_ok = Signal()        # out: a push this cycle is accepted
        self.do_push = Signal()        # in: push this cycle (only when push_ok)
        self.page_done = Signal()      # out: last beat of the page left
        cap = dw + maxpush
        acc = Signal(cap)
        n = Signal(max=cap + 1)
        after = Signal(max=cap + 1)
        pop = Signal()
        ob = Signal(max=nbeats + 1)
        crc = Signal(32, reset=CRC_INIT)
        last = Signal()
        data = acc[0:dw]
        crc_full = crc32_expr(crc, data, dw)
        crc_part = crc32_expr(crc, data, dw - 32) if dw > 32 else crc
        src = self.source
        self.comb += [
            last.eq(ob == self.last_beat),
            src.valid.eq(n >= dw),
            # (at dw = 32 the last beat is the CRC alone: no zero-width slice in the Verilog)
            If(last, src.data.eq(Cat(*([data[0:dw - 32]] if dw > 32 else []), crc_part ^ CRC_XOROUT)))
            .Else(src.data.eq(data)),
            src.last.eq(last),
            pop.eq(src.valid & src.ready),
            after.eq(n - Mux(pop, dw, 0)),
            self.push_ok.eq(after < dw),
            self.page_done.eq(pop & last),
        ]
        shifted = Signal(cap)
        self.comb += If(pop, shifted.eq(acc >> dw)).Else(shifted.eq(acc))
        self.sync += [
            If(self.do_push,
                acc.eq(shifted | (self.push << after)),
                n.eq(after + self.pn),
            ).Else(
                acc.eq(shifted),
                n.eq(after),
            ),
            If(pop,
                If(last, ob.eq(0), crc.eq(CRC_INIT)).Else(ob.eq(ob + 1), crc.eq(crc_full))),
        ]


class KVCompressor(Module):
    """FP16 KV pages in (``sink``, ``dw``-bit beats, 4 values per 64 bits, page order of
    README.md), compressed pages out (``source``, ``last`` on each page's final beat).

    The page is buffered (double-buffered page memory) because the scales need the whole
    page; input runs at one beat per cycle while the previous page is emitted.
    """

    def __init__(self, mode="kivi_k4v3", dw=64, T=16, D=64):
        mode = _resolve(mode)
        L = _check(dw, T, D)
        self.mode, self.dw, self.T, self.D = mode, dw, T, D
        # sideband `attn_sink` (sampled with a page's first beat, kivi modes): the page holds
        # the sequence's attention sink in token 0 -> SINK flag, token 0's K kept exact
        self.sink = stream.Endpoint(stream.EndpointDescription([("data", dw)],
                                                               [("attn_sink", 1)]))
        self.source = stream.Endpoint([("data", dw)])
        self.pages = Signal(32)        # pages completed (status)

        nin = 2 * T * D // L           # input beats per page
        bpt = D // L                   # input beats per token
        length = R.page_length(mode, T, D)
        nout = length * 8 // dw
        if length * 8 % dw:
            raise ValueError(f"page length {length} B is not a whole number of {dw}-bit beats")
        maxpush = max(64, dw)
        # every gateware mode is KIVI-like: K per channel, V per token
        lvl = mode.level_packed            # level-packed codes
        zp = mode.zp                       # integer zero points (else FP16 minima)
        if lvl:
            (gk, wk), (gv, wv) = _level_groups(mode, 2 * L)
        klpc, vlpc = _zero_lanes(mode, T)
        length_s = R.page_length(mode, T, D, sink=True)
        nout_s = length_s * 8 // dw
        self.submodules.pk = pk = _BitPacker(dw, maxpush, max(nout, nout_s))
        self.comb += pk.source.connect(self.source)

        # ---- page memory: even / odd beats, two pages (double buffer) ---------------------
        half = nin // 2
        ab = bits_for(half - 1)         # address bits of one buffered page (even or odd beats)
        mem = [Memory(dw, 2 << ab, name=f"page_{s}") for s in ("even", "odd")]
        self.specials += mem
        wp = [m.get_port(write_capable=True) for m in mem]
        # synchronous read (block RAM): the emission program presents the address of its
        # next state, so the data is there in the cycle the program is in that state. The
        # read half (rsel) is never the half being written, so read/write order is moot.
        rp = [m.get_port() for m in mem]
        self.specials += wp + rp

        # ---- phase A: input, statistics -------------------------------------------------
        a_beat = Signal(max=nin + 1)
        a_full = Signal()
        wsel = Signal()
        tb = Signal(max=bpt)            # beat within token
        tok = Signal(max=2 * T)         # token index over K then V
        accept = Signal()
        sk = self.sink
        swap = Signal()
        # the first beat of the next page is taken in the very cycle the full page swaps out
        self.comb += [sk.ready.eq(~a_full | swap), accept.eq(sk.valid & sk.ready)]
        for s in range(2):
            self.comb += [wp[s].adr.eq(Cat(a_beat[1:1 + ab], Mux(swap, ~wsel, wsel))),
                          wp[s].dat_w.eq(sk.data),
                          wp[s].we.eq(accept & (a_beat[0] == s))]
        a_last = Signal()
        tok_end = Signal()
        self.comb += [a_last.eq(a_beat == nin - 1), tok_end.eq(tb == bpt - 1)]
        self.sync += If(accept,
                        If(a_last, a_beat.eq(0), a_full.eq(1)).Else(a_beat.eq(a_beat + 1)),
                        If(tok_end, tb.eq(0), tok.eq(Mux(tok == 2 * T - 1, 0, tok + 1)))
                        .Else(tb.eq(tb + 1)))

        nf_a = Signal()
        nf_b = Signal()
        clean, nfs = [], []
        for j in range(L):
            c, nf = A.sanitize(self, sk.data[16 * j: 16 * j + 16])
            clean.append(c)
            nfs.append(nf)
        anynf = Signal()
        self.comb += anynf.eq(Cat(*nfs) != 0)
        self.sync += If(swap, nf_b.eq(nf_a), nf_a.eq(accept & anynf)) \
            .Elif(accept & anynf, nf_a.eq(1))

        stats_ready = Signal()          # statistics of the page in A are complete

        kq, vq = mode.k_levels - 1, mode.v_levels - 1
        lo_w = 8 if zp else 16         # group minimum (FP16) or zero point (kivi_z, _n)
        in_k = Signal()
        self.comb += in_k.eq(a_beat < nin // 2)
        # K: per-channel min/max in rotating register files (lanes update the head)
        kmin = [Signal(16) for _ in range(D)]
        kmax = [Signal(16) for _ in range(D)]
        first_tok = Signal()
        snk_a = Signal()
        self.sync += If(accept & (a_beat == 0), snk_a.eq(sk.attn_sink))
        snk_now = Signal()             # SINK of the page being received
        self.comb += [snk_now.eq(Mux(a_beat == 0, sk.attn_sink, snk_a)),
                      first_tok.eq((tok == 0) | ((tok == 1) & snk_now))]
        newmin, newmax = [], []
        for j in range(L):
            nm, nx = Signal(16), Signal(16)
            kc = clean[j]
            self.comb += [
                If(first_tok | (A.order_key(kc) < A.order_key(kmin[j])), nm.eq(kc))
                .Else(nm.eq(kmin[j])),
                If(first_tok | (A.order_key(kc) > A.order_key(kmax[j])), nx.eq(kc))
                .Else(nx.eq(kmax[j])),
            ]
            newmin.append(nm)
            newmax.append(nx)
        # per-channel codes, one channel per cycle once K is in (during V input)
        kcnt = Signal(max=D + 1, reset=D)
        kcode_a = [Signal(8) for _ in range(D)]
        klo_a = [Signal(lo_w) for _ in range(D)]
        if zp:
            kcode, klo_new = A.zp_stats(self, kmin[0], kmax[0], kq)
        else:
            krange = Signal(43)
            self.comb += krange.eq(A.fp16_to_int(self, kmax[0]) -
                                   A.fp16_to_int(self, kmin[0]))
            kcode = A.choose_scale(self, krange, kq)
            klo_new = kmin[0]
        self.sync += [
            If(accept & in_k, *(_rot(kmin, L, newmin) + _rot(kmax, L, newmax))),
            If(accept & (a_beat == nin // 2 - 1), kcnt.eq(0)),
            If(kcnt < D,
                kcnt.eq(kcnt + 1),
                *(_rot(kmin, 1) + _rot(kmax, 1) + _rot(kcode_a, 1, [kcode])
                  + _rot(klo_a, 1, [klo_new]))),
        ]
        self.comb += stats_ready.eq(kcnt == D)
        # V: per-token min/max
        key = A.order_key
        bmin = self._tree(clean, lambda a, b: Mux(key(a) < key(b), a, b), 16)
        bmax = self._tree(clean, lambda a, b: Mux(key(a) > key(b), a, b), 16)
        amin, amax, mmin, mmax = Signal(16), Signal(16), Signal(16), Signal(16)
        self.comb += [
            If((tb == 0) | (key(bmin) < key(amin)), mmin.eq(bmin)).Else(mmin.eq(amin)),
            If((tb == 0) | (key(bmax) > key(amax)), mmax.eq(bmax)).Else(mmax.eq(amax)),
        ]
        # a token's V scale is chosen in the cycle after its last beat, from the
        # registered min / max (a pipeline stage: the lane tree and the scale choice are
        # not in one path)
        vpend = Signal()
        if zp:
            vcode, vlo_new = A.zp_stats(self, amin, amax, vq, mode.zero_range("v"))
        else:
            vrange = Signal(43)
            self.comb += vrange.eq(A.fp16_to_int(self, amax) - A.fp16_to_int(self, amin))
            vcode = A.choose_scale(self, vrange, vq)
            vlo_new = amin
        vcode_a = [Signal(8) for _ in range(T)]
        vlo_a = [Signal(lo_w) for _ in range(T)]
        self.sync += [If(accept & ~in_k, amin.eq(mmin), amax.eq(mmax)),
                      vpend.eq(accept & ~in_k & tok_end),
                      If(vpend, *(_rot(vcode_a, 1, [vcode]) + _rot(vlo_a, 1, [vlo_new])))]
        kcode_b = [Signal(8) for _ in range(D)]
        klo_b = [Signal(lo_w) for _ in range(D)]
        vcode_b = [Signal(8) for _ in range(T)]
        vlo_b = [Signal(lo_w) for _ in range(T)]
        # the page's last V token may still be pending when the page swaps: B takes the
        # register files as they are after that token's rotation
        def after_vpend(regs, new):
            return [Mux(vpend, r, a) for a, r in zip(regs, regs[1:] + [new])]
        # (A-side regs, B-side regs) to copy at swap
        b_regs = [(kcode_a, kcode_b), (klo_a, klo_b),
                  (after_vpend(vcode_a, vcode), vcode_b), (after_vpend(vlo_a, vlo_new), vlo_b)]

        # ---- swap ---------------------------------------------------------------------------
        b_busy = Signal()
        rsel = Signal()
        self.comb += swap.eq(a_full & stats_ready & ~b_busy)
        self.sync += If(swap, a_full.eq(0), wsel.eq(~wsel), rsel.eq(wsel), b_busy.eq(1),
                        *[bb.eq(aa) for a_, b_ in b_regs for aa, bb in zip(a_, b_)])
        self.sync += If(pk.page_done, b_busy.eq(0), self.pages.eq(self.pages + 1))

        # ---- phase B: emission program --------------------------------------------------
        steps = [("hdr", 1), ("kcode", D // 8), ("klo", D // klpc), ("vcode", T // 8),
                 ("vlo", T // vlpc), ("ksink", D // L), ("kq", nin // 4)]
        # level-packed payloads need not fill whole 64-bit words: zero padding to the end
        kpad = vpad = 0
        if lvl:
            kpad, vpad = -(T * D // gk * wk) % 64, -(T * D // gv * wv) % 64
        steps += [("kpad", 1)] if kpad else []
        steps += [("vq", nin // 4)] + ([("vpad", 1)] if vpad else [])
        steps += [("tail", 1)]
        st = Signal(max=len(steps) + 1)
        cnt = Signal(max=max(n for _, n in steps) + 1)
        sub = Signal(max=max(D // (2 * L), 1) + 1)     # cycles within a token (payload)
        go = Signal()
        snk_b = Signal()
        skip = Signal()                 # the ksink step of a page without SINK
        # Pipeline registers between the emission program and the packer, all advancing
        # together (`advance`) unless the packer refuses its input register's push. A step's
        # push (push_c, pn_c) is computed from the program's state; the kivi payload steps
        # are cut into three stages below (offset subtracted | quantized | fields packed),
        # the other steps' pushes ride along. The packer's barrel shift takes the push in the
        # cycle after its input register is loaded.
        push_c = Signal(maxpush)
        pn_c = Signal(max=maxpush + 1)
        v_c = Signal()
        push_f = Signal(maxpush)        # into the packer's input register
        pn_f = Signal(max=maxpush + 1)
        v_f = Signal()
        r_valid = Signal()
        advance = Signal()
        self.comb += [advance.eq(~r_valid | pk.push_ok),
                      go.eq(b_busy & advance & (st < len(steps))),
                      v_c.eq(go & ~skip),
                      pk.do_push.eq(r_valid & pk.push_ok)]
        self.sync += If(advance, r_valid.eq(v_f), pk.push.eq(push_f), pk.pn.eq(pn_f))
        step_last = Signal()
        self.comb += step_last.eq(Array([C(n - 1) for _, n in steps] + [C(0)])[st] == cnt)
        # the program's next state (st_n, cnt_n, sub_n) is computed combinationally: the
        # page memory's read address is registered from it
        st_n, cnt_n, sub_n = Signal.like(st), Signal.like(cnt), Signal.like(sub)
        self.comb += [
            st_n.eq(st), cnt_n.eq(cnt), sub_n.eq(sub),
            If(swap, st_n.eq(0), cnt_n.eq(0), sub_n.eq(0)),
            If(go,
                If(step_last, st_n.eq(st + 1), cnt_n.eq(0), sub_n.eq(0)).Else(
                    cnt_n.eq(cnt + 1),
                    If(sub == D // (2 * L) - 1, sub_n.eq(0)).Else(sub_n.eq(sub + 1))),
            ),
            If(pk.page_done, st_n.eq(len(steps))),
        ]
        iks = [nm for nm, _ in steps].index("ksink")
        self.comb += [skip.eq((st == iks) & ~snk_b),
                      pk.last_beat.eq(Mux(snk_b, nout_s - 1, nout - 1))]
        self.sync += If(swap, snk_b.eq(snk_a))
        self.comb += If(b_busy & skip, st_n.eq(st + 1), cnt_n.eq(0), sub_n.eq(0))
        self.sync += [st.eq(st_n), cnt.eq(cnt_n), sub.eq(sub_n)]
        # memory read address of the next state: ksink reads one beat per cycle, payload
        # steps two
        radr = Signal(ab)
        rsel_n = Signal()
        self.comb += rsel_n.eq(Mux(swap, wsel, rsel))
        for s in range(2):
            self.comb += rp[s].adr.eq(Cat(radr, rsel_n))
        cases = []
        len_f = Signal(16)
        self.comb += len_f.eq(Mux(snk_b, length_s, length))
        hdr = _header_bits(mode, Cat(nf_b, snk_b, C(0, 2)), T, D, len_f)
        for i, (name, n) in enumerate(steps):
            cases.append((i, name))
        push_stmts = {}
        push_stmts["hdr"] = [push_c.eq(hdr), pn_c.eq(64)]
        push_stmts["tail"] = [push_c.eq(0), pn_c.eq(64)]
        extra_sync = {}
        push_stmts["kcode"] = [push_c.eq(Cat(*kcode_b[:8])), pn_c.eq(64)]
        extra_sync["kcode"] = _rot(kcode_b, 8)
        push_stmts["klo"] = [push_c.eq(Cat(*klo_b[:klpc])), pn_c.eq(64)]
        extra_sync["klo"] = _rot(klo_b, klpc)
        push_stmts["vcode"] = [push_c.eq(Cat(*vcode_b[:8])), pn_c.eq(64)]
        extra_sync["vcode"] = _rot(vcode_b, 8)
        vzw = 64 // vlpc             # V zero point field (kivi_n: 4 bits of the 8)
        push_stmts["vlo"] = [push_c.eq(Cat(*[z[0:vzw] for z in vlo_b[:vlpc]])), pn_c.eq(64)]
        extra_sync["vlo"] = _rot(vlo_b, vlpc)
        sv = []
        for j in range(L):
            cv, _ = A.sanitize(self, Mux(cnt[0], rp[1].dat_r, rp[0].dat_r)[16 * j: 16 * j + 16])
            sv.append(cv)
        push_stmts["ksink"] = [push_c.eq(Cat(*sv)), pn_c.eq(dw)]
        ik = [i for i, (nm, _) in enumerate(steps) if nm == "kq"][0]
        self.comb += If(st_n == ik, radr.eq(cnt_n)).Elif(st_n == iks, radr.eq(cnt_n[1:])) \
            .Else(radr.eq(cnt_n + nin // 4))
        k_tok0 = Signal()
        self.comb += k_tok0.eq(snk_b & (cnt < D // (2 * L)))
        vals = [rp[s].dat_r[16 * j: 16 * j + 16] for s in range(2) for j in range(L)]
        # one quantizer per value, shared by the K and V payload steps (operands chosen by
        # the step), in three stages
        is_kq = Signal()
        self.comb += is_kq.eq(st == ik)
        kind_c = Signal(2)          # 0: push_c as it is, 1: K payload, 2: V payload
        # stage 1 registers: d = x - offset per value, its code, and the step's push
        d1, c1 = [], []
        kind1, tok1, v1 = Signal(2), Signal(), Signal()
        push1, pn1 = Signal(maxpush), Signal(max=maxpush + 1)
        for j, v in enumerate(vals):
            cv, _ = A.sanitize(self, v)
            x = A.fp16_to_int(self, cv)
            lo, code = Signal(len(klo_b[j])), Signal(8)
            self.comb += If(is_kq, lo.eq(klo_b[j]), code.eq(kcode_b[j])) \
                .Else(lo.eq(vlo_b[0]), code.eq(vcode_b[0]))
            # the group's offset in units: zero * S (kivi_z) or the FP16 minimum
            off = A.zp_offset(self, lo, code) if zp else A.fp16_to_int(self, lo)
            if zp:
                # d = max(x - offset, 0)
                diff = Signal((51, True))
                d = Signal(48)
                self.comb += [diff.eq(x - off), If(diff < 0, d.eq(0)).Else(d.eq(diff))]
            else:
                d = Signal(43)
                self.comb += d.eq(x - off)
            d1.append(Signal(len(d)))
            c1.append(Signal(8))
            self.sync += If(advance, d1[-1].eq(d), c1[-1].eq(code))
        self.sync += If(advance, kind1.eq(kind_c), tok1.eq(k_tok0), v1.eq(v_c),
                        push1.eq(push_c), pn1.eq(pn_c))
        # stage 2 registers: codes, clamped to the section's qmax (quantize(d, c, a) =
        # min(a, .), so min(qmax, quantize(d, c, max(kq, vq))) = quantize(d, c, qmax))
        qs2 = []
        kind2, tok2, v2 = Signal(2), Signal(), Signal()
        push2, pn2 = Signal(maxpush), Signal(max=maxpush + 1)
        qmax1 = Signal(max=max(kq, vq) + 1)
        self.comb += qmax1.eq(Mux(kind1 == 1, kq, vq))
        for d, code in zip(d1, c1):
            qa = A.quantize(self, d, code, max(kq, vq))
            q = Signal(len(qa))
            self.sync += If(advance, If(qa > qmax1, q.eq(qmax1)).Else(q.eq(qa)))
            qs2.append(q)
        self.sync += If(advance, kind2.eq(kind1), tok2.eq(tok1), v2.eq(v1),
                        push2.eq(push1), pn2.eq(pn1))
        if lvl:
            def fields(qs, lev, g, w):
                out = []
                for i in range(0, len(qs), g):
                    f = Signal(w)
                    self.comb += f.eq(A.level_code(qs[i:i + g], lev))
                    out.append(f)
                return Cat(*out), len(out) * w
            kfield, kpn = fields(qs2, mode.k_levels, gk, wk)
            vfield, vpn = fields(qs2, mode.v_levels, gv, wv)
        else:
            kfield = Cat(*[q[0:mode.kbits] for q in qs2])
            vfield = Cat(*[q[0:mode.vbits] for q in qs2])
            kpn, vpn = 2 * L * mode.kbits, 2 * L * mode.vbits
        # stage 3 (the packer's input register): the codes' fields
        self.comb += [v_f.eq(v2), pn_f.eq(pn2),
                      If(kind2 == 1, push_f.eq(Mux(tok2, 0, kfield)))
                      .Elif(kind2 == 2, push_f.eq(vfield)).Else(push_f.eq(push2))]
        push_stmts["kq"] = [kind_c.eq(1), pn_c.eq(kpn)]
        extra_sync["kq"] = _rot(kcode_b, 2 * L) + _rot(klo_b, 2 * L)
        push_stmts["vq"] = [kind_c.eq(2), pn_c.eq(vpn)]
        push_stmts["kpad"] = [push_c.eq(0), pn_c.eq(kpad)]
        push_stmts["vpad"] = [push_c.eq(0), pn_c.eq(vpad)]
        extra_sync["vq"] = [If(sub == D // (2 * L) - 1, *(_rot(vcode_b, 1) + _rot(vlo_b, 1)))]
        for i, name in cases:
            self.comb += If(st == i, *push_stmts[name])
            if name in extra_sync:
                self.sync += If(go & (st == i), *extra_sync[name])

    @staticmethod
    def _tree(items, f, width):
        items = list(items)
        while len(items) > 1:
            nxt = []
            for i in range(0, len(items) - 1, 2):
                nxt.append(f(items[i], items[i + 1]))
            if len(items) % 2:
                nxt.append(items[-1])
            items = nxt
        return items[0]


class KVDecompressor(Module):
    """Compressed pages in (``sink``, ``last`` on each page's final beat), FP16 pages out
    (``source``, one page of ``dw``-bit beats, ``last`` on its final beat).

    Status, valid in the cycle ``done`` pulses (once per input page, after its ``last``):
    ``error`` = 0 ok, 1 header, 2 truncated, 3 overlong, 4 crc (README.md). A page with a
    header error emits nothing; a truncated page emits at most what its bytes decode to;
    output never exceeds one page; input is always drained up to ``last``.
    """

    def __init__(self, mode="kivi_k4v3", dw=64, T=16, D=64):
        mode = _resolve(mode)
        L = _check(dw, T, D)
        self.mode, self.dw, self.T, self.D = mode, dw, T, D
        self.sink = stream.Endpoint([("data", dw)])
        self.source = stream.Endpoint([("data", dw)])
        self.done = Signal()
        self.error = Signal(3)
        self.nonfinite = Signal()
        self.pages = Signal(32)
        self.errors = Signal(32)

        skip = Signal()                  # the ksink step of a page without SINK
        snk_d = Signal()                 # SINK flag of the page being decoded
        length = R.page_length(mode, T, D)
        if length * 8 % dw:
            raise ValueError(f"page length {length} B is not a whole number of {dw}-bit beats")
        nin0 = length * 8 // dw          # compressed beats per page
        length_s = R.page_length(mode, T, D, sink=True)
        nin_s = length_s * 8 // dw       # ... of a SINK page
        nin = max(nin0, nin_s)
        nout = 2 * T * D // L            # output beats per page
        lvl = mode.level_packed            # level-packed codes
        zp = mode.zp                       # integer zero points (else FP16 minima)
        klpc, vlpc = _zero_lanes(mode, T)
        if lvl:
            (gk, wk), (gv, wv) = _level_groups(mode, 2 * L)
            # take per output beat: L/g fields, or one field every other beat when g = 2L
            kw = wk if gk == 2 * L else L // gk * wk
            vw = wv if gv == 2 * L else L // gv * wv
        else:
            kw, vw = L * mode.kbits, L * mode.vbits
        maxtake = max(64, dw)
        cap = dw + maxtake

        # ---- program ----------------------------------------------------------------------
        steps = [("hdr", 1, 64), ("kcode", D // 8, 64), ("klo", D // klpc, 64),
                 ("vcode", T // 8, 64), ("vlo", T // vlpc, 64), ("ksink", D // 4, 64),
                 ("kq", nout // 2, kw)]
        kpad = vpad = 0                  # zero padding after a level-packed payload section
        if lvl:
            kpad, vpad = -(T * D // gk * wk) % 64, -(T * D // gv * wv) % 64
        steps += [("kpad", 1, kpad)] if kpad else []
        steps += [("vq", nout // 2, vw)] + ([("vpad", 1, vpad)] if vpad else [])
        steps += [("tail", 1, 64)]
        END = len(steps)
        st = Signal(max=END + 1)
        cnt = Signal(max=max(n for _, n, _ in steps) + 1)
        sub = Signal(max=D // L + 1)     # output beats within a token
        tw = Signal(max=maxtake + 1)
        self.comb += tw.eq(Array([C(w) for _, _, w in steps] + [C(0)])[st])
        names = [nm for nm, _, _ in steps]
        ob = Signal(max=nout + 1)
        if lvl:
            # a field of 2L codes spans two output beats: taken on the even one
            for nm_, g_ in (("kq", gk), ("vq", gv)):
                if g_ == 2 * L:
                    self.comb += If((st == names.index(nm_)) & ob[0], tw.eq(0))
        step_last = Signal()
        self.comb += step_last.eq(Array([C(n - 1) for _, n, _ in steps] + [C(0)])[st] == cnt)

        # ---- bit reader -------------------------------------------------------------------
        buf = Signal(cap)
        n = Signal(max=cap + 1)
        take = Signal()
        after = Signal(max=cap + 1)
        ib = Signal(max=nin + 1)         # input beats of this page accepted
        snk_in = Signal()                # SINK flag seen in beat 0
        nin_m1 = Signal(max=nin + 1)     # index of the page's final (CRC) beat
        self.comb += nin_m1.eq(Mux(Mux(ib == 0, self.sink.data[9], snk_in),
                                   nin_s - 1, nin0 - 1))
        last_seen = Signal()
        accept = Signal()
        load = Signal()
        sk = self.sink
        self.comb += [
            after.eq(n - Mux(take, tw, 0)),
            # `after <= cap - dw`, not `after + dw <= cap`: Verilog evaluates the sum at the
            # comparison's width (that of `cap`), and at dw = 32 a full buffer (after = cap
            # = 96) wrapped to 0 and took a beat it had no room for (Migen's simulator does
            # not wrap; the Verilator co-sim under output back-pressure caught it)
            sk.ready.eq(~last_seen & ((st == END) | (ib > nin_m1) | (after <= cap - dw))),
            accept.eq(sk.valid & sk.ready),
            load.eq(accept & (st != END) & (ib <= nin_m1)),
        ]
        shifted = Signal(cap)
        self.comb += If(take, shifted.eq(buf >> tw)).Else(shifted.eq(buf))
        finish = Signal()
        self.sync += [
            If(finish, n.eq(0), buf.eq(0))
            .Elif(load, buf.eq(shifted | (sk.data << after)), n.eq(after + dw))
            .Else(buf.eq(shifted), n.eq(after)),
        ]

        # ---- CRC and length checks on the input ------------------------------------------
        crc = Signal(32, reset=CRC_INIT)
        e_hdr, e_trunc, e_over, e_crc = Signal(), Signal(), Signal(), Signal()
        crc_full = crc32_expr(crc, sk.data, dw)
        crc_part = crc32_expr(crc, sk.data, dw - 32) if dw > 32 else crc
        self.sync += [
            If(finish,
                crc.eq(CRC_INIT), ib.eq(0), last_seen.eq(0),
                e_hdr.eq(0), e_trunc.eq(0), e_over.eq(0), e_crc.eq(0),
            ).Elif(accept,
                If(ib <= nin_m1, ib.eq(ib + 1)),
                If(ib == 0, snk_in.eq(sk.data[9])),
                If(sk.last, last_seen.eq(1)),
                If(ib < nin_m1,
                    crc.eq(crc_full),
                    If(sk.last, e_trunc.eq(1)),
                ).Elif(ib == nin_m1,
                    If((crc_part ^ CRC_XOROUT) != sk.data[dw - 32: dw], e_crc.eq(1)),
                    If(~sk.last, e_over.eq(1)),
                ),
            ),
        ]

        # ---- header check ------------------------------------------------------------------
        h = buf[0:64]
        hdr_ok = Signal()
        self.comb += hdr_ok.eq(
            (h[0:8] == R.MAGIC) & (h[12:16] == R.VERSION) & (h[10:12] == 0) &
            (h[16:24] == mode.kind) & (h[24:32] == mode.bits_byte) & (h[32:40] == T) &
            (h[40:48] == D) & (h[48:64] == Mux(h[9], length_s, length)))

        # ---- payload decode ----------------------------------------------------------------
        src = self.source
        payload_names = {"kq", "vq"}
        in_payload = Signal()
        self.comb += in_payload.eq(Array([C(int(nm in payload_names)) for nm, _, _ in steps]
                                         + [C(0)])[st])
        avail = Signal()
        self.comb += avail.eq(n >= tw)
        # Output pipeline: a payload beat taken from the bit reader (stage 0) is registered
        # twice (the codes and their group parameters, then the FP16 beat) before `source`. The stages advance together
        # unless the output register holds a beat `source` does not take.
        pv = [Signal() for _ in range(2)]                   # stage valid bits, pv[-1] = source
        pl = [Signal() for _ in pv]                         # ... and `last`
        adv = Signal()
        self.comb += [
            adv.eq(~pv[-1] | src.ready),
            src.valid.eq(pv[-1]),
            src.last.eq(pl[-1]),
            take.eq(avail & (st != END) & Mux(in_payload, adv, 1) & ~e_hdr & ~skip),
        ]
        self.sync += If(adv, pv[0].eq(take & in_payload), pl[0].eq(ob == nout - 1),
                        *[pv[i].eq(pv[i - 1]) for i in range(1, len(pv))],
                        *[pl[i].eq(pl[i - 1]) for i in range(1, len(pl))])
        go = Signal()
        hdr_bad = Signal()
        is_hdr = Signal()
        self.comb += [is_hdr.eq(st == 0), hdr_bad.eq(is_hdr & take & ~hdr_ok),
                      go.eq(take & ~hdr_bad)]
        sub_wrap = Signal()
        self.comb += sub_wrap.eq(sub == D // L - 1)
        self.sync += [
            If(finish, st.eq(0), cnt.eq(0), sub.eq(0), ob.eq(0))
            .Elif(hdr_bad, st.eq(END), e_hdr.eq(1))
            .Elif(go,
                If(is_hdr, self.nonfinite.eq(h[8]), snk_d.eq(h[9])),
                If(step_last, st.eq(st + 1), cnt.eq(0), sub.eq(0)).Else(
                    cnt.eq(cnt + 1), If(sub_wrap, sub.eq(0)).Else(sub.eq(sub + 1))),
                If(in_payload, ob.eq(ob + 1)),
            ),
        ]
        # a page is finished once its input has ended, the program is done or starved and
        # its last beat has left the output pipeline
        self.comb += finish.eq(last_seen & ((st == END) | ~avail) & (Cat(*pv) == 0))
        err = Signal(3)
        self.comb += If(e_hdr, err.eq(1)).Elif(e_trunc | (st != END), err.eq(2)) \
            .Elif(e_over, err.eq(3)).Elif(e_crc, err.eq(4)).Else(err.eq(0))
        self.sync += [
            self.done.eq(finish),
            If(finish, self.error.eq(err), self.pages.eq(self.pages + 1),
               If(err != 0, self.errors.eq(self.errors + 1))),
        ]

        sync_cases = {}
        data_out = Signal(dw)           # the output beat, computed in the last stage
        self.sync += If(adv, src.data.eq(data_out))
        lw = 64 // klpc
        kcode = [Signal(8) for _ in range(D)]
        klo = [Signal(lw) for _ in range(D)]
        vcode = [Signal(8) for _ in range(T)]
        vlo = [Signal(lw) for _ in range(T)]
        sync_cases["kcode"] = _rot(kcode, 8, [buf[8 * i: 8 * i + 8] for i in range(8)])
        sync_cases["klo"] = _rot(klo, klpc, [buf[lw * i: lw * i + lw] for i in range(klpc)])
        sync_cases["vcode"] = _rot(vcode, 8, [buf[8 * i: 8 * i + 8] for i in range(8)])
        vzw = 64 // vlpc             # kivi_n: 4-bit V zero points, sign-extended to 8
        vz = [buf[vzw * i: vzw * i + vzw] for i in range(vlpc)]
        sync_cases["vlo"] = _rot(vlo, vlpc, [Cat(z, *([z[-1]] * (lw - vzw))) for z in vz])
        ksink = [Signal(16) for _ in range(D)]
        sync_cases["ksink"] = _rot(ksink, 4, [buf[16 * i: 16 * i + 16] for i in range(4)])
        iks = names.index("ksink")
        self.comb += skip.eq((st == iks) & ~snk_d)
        self.sync += If(skip & ~finish, st.eq(st + 1), cnt.eq(0), sub.eq(0))
        k_tok0 = Signal()
        self.comb += k_tok0.eq(snk_d & (ob < D // L))
        isk = Signal()
        self.comb += isk.eq(st == names.index("kq"))
        outs = []
        if lvl:
            hold_sync = []

            def digits(lev, g, w, tag):
                """The L codes of this output beat from the bit reader's head."""
                if g <= L:
                    return [d for i in range(L // g)
                            for d in A.level_digits(self, buf[i * w: (i + 1) * w], lev, g, w)]
                # g == 2L: the field's low L digits now, its high L digits next beat.
                # Split the field once (one constant division) instead of running all
                # g - 1 divisions in one cycle: the low L digits come from the remainder
                # (< lev**L, so its last digit never saturates), the high L from the
                # quotient, held for the next beat (its last digit saturates, as in
                # reference.unpack_levels). Same digits, half the division chain.
                hi, lo = A.divmod_const(self, buf[0:w], w, lev ** L)
                hold = Signal(len(hi))
                hold_sync.append((tag, [hold.eq(hi)]))
                d_lo = A.level_digits(self, lo, lev, L, len(lo))
                d_hi = A.level_digits(self, hold, lev, L, len(hold))
                out = []
                for j in range(L):
                    o = Signal(max(len(d_lo[j]), len(d_hi[j])))
                    self.comb += If(ob[0], o.eq(d_hi[j])).Else(o.eq(d_lo[j]))
                    out.append(o)
                return out
            kd = digits(mode.k_levels, gk, wk, "kq")
            vd = digits(mode.v_levels, gv, wv, "vq")
        else:
            kd = [buf[mode.kbits * j: mode.kbits * (j + 1)] for j in range(L)]
            vd = [buf[mode.vbits * j: mode.vbits * (j + 1)] for j in range(L)]
        for j in range(L):
            # one dequantizer per lane, its operands chosen by the step (K or V payload)
            # and registered with the lane's code (stage 1)
            lo, code = Signal(len(klo[j])), Signal(8)
            q = Signal(max(len(kd[j]), len(vd[j])))
            ovr, ks = Signal(), Signal(16)      # token 0's exact K on a SINK page
            self.sync += If(adv, If(isk, lo.eq(klo[j]), code.eq(kcode[j]), q.eq(kd[j]))
                            .Else(lo.eq(vlo[0]), code.eq(vcode[0]), q.eq(vd[j])),
                            ovr.eq(isk & k_tok0), ks.eq(ksink[j]))
            if zp:
                v = A.zp_value(self, lo, q, code)
            else:
                v = Signal((A.VW, True))
                self.comb += v.eq(A.fp16_to_int(self, lo) + q * A.scale_value(self, code))
            f = A.int_to_fp16(self, v)
            o = Signal(16)
            self.comb += If(ovr, o.eq(ks)).Else(o.eq(f))
            outs.append(o)
        self.comb += data_out.eq(Cat(*outs))
        sync_cases["kq"] = _rot(kcode, L) + _rot(klo, L) + \
            [If(k_tok0, *_rot(ksink, L))]
        sync_cases["vq"] = [If(sub_wrap, *(_rot(vcode, 1) + _rot(vlo, 1)))]
        if lvl:
            for tag, stmts in hold_sync:
                sync_cases[tag] = sync_cases[tag] + [If(~ob[0], *stmts)]
        for i, nm in enumerate(names):
            if nm in sync_cases:
                self.sync += If(go & (st == i), *sync_cases[nm])
