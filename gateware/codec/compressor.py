"""Migen stream core ``KVCompressor``: FP16 KV pages in, compressed pages out.

Bit exact with ``reference.py`` for the modes in ``core.GATEWARE_MODES``. The page runs
through two phases: A (input) writes it into a double-buffered page memory while its
statistics (K per channel, V per token) and scale codes are computed; at the swap the
codes move to the B side, where the emission program reads the page back, quantizes it and
packs header, parameters and payload into ``dw``-bit beats. See README.md for the interface.
"""
from __future__ import annotations

from migen import Array, C, Cat, If, Memory, Module, Mux, Signal
from migen.fhdl.bitcontainer import bits_for, log2_int

from litex.soc.interconnect import stream

from . import arith as A
from . import reference as R
from .core import (check_geometry, header_bits, level_groups, out_buffer, page_beats,
                   payload_pads, resolve_mode, rotate, zero_lanes)
from .crc import INIT as CRC_INIT, XOROUT as CRC_XOROUT, crc32_expr

# registers of the payload pipeline from the page memory's output to d = value - offset
OFFSET_STAGES = 6


def _tree(items, f, reg=lambda x: x):
    """Reduce `items` with the binary `f` as a balanced tree, `reg` applied to the results
    of every level but the last (a register there: the tree's stages)."""
    items = list(items)
    while len(items) > 1:
        nxt = [f(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt if len(nxt) == 1 else [reg(x) for x in nxt]
    return items[0]


def _tree_stages(n):
    """Registers `_tree` puts in a tree of `n` items (between its levels)."""
    return max((n - 1).bit_length() - 1, 0)


class _BitPacker(Module):
    """Bit accumulator: `push` (width `pw`, `pn` valid bits, LSB first) when `push_ok`;
    emits dw-bit beats on `source` through a two-beat output buffer. CRC-32 of the page
    inserted into the last 32 bits of beat `nbeats - 1`.

    A beat leaves the accumulator (`pop`) when it holds one and the buffer has room, a
    register's decode: `source.ready` reaches only the buffer, so `push_ok` (and the
    quantizer pipeline's advance behind it) comes from registers. A push lands behind the
    `n` bits held, less the beat that pops in the same cycle."""

    def __init__(self, dw, maxpush, nbeats):
        self.source = stream.Endpoint([("data", dw)])
        self.last_beat = Signal(max=nbeats, reset=nbeats - 1)   # index of the page's CRC beat
        self.push = Signal(maxpush)
        self.pn = Signal(max=maxpush + 1)
        self.push_ok = Signal()        # out: a push this cycle is accepted
        self.do_push = Signal()        # in: push this cycle (only when push_ok)
        self.ok_next = Signal()        # out: push_ok of the next cycle
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
        beat = Signal(dw)
        ocnt = Signal(2)               # beats in the output buffer
        self.comb += [
            last.eq(ob == self.last_beat),
            # (at dw = 32 the last beat is the CRC alone: no zero-width slice in the Verilog)
            If(last, beat.eq(Cat(*([data[0:dw - 32]] if dw > 32 else []), crc_part ^ CRC_XOROUT)))
            .Else(beat.eq(data)),
            pop.eq((n >= dw) & (ocnt != 2)),
            after.eq(n - Mux(pop, dw, 0)),
            self.push_ok.eq(after < dw),
            self.page_done.eq(pop & last),
        ]
        # A push lands at bit `after` (n, or n - dw on a pop), accepted only while after <
        # dw: there it is n's low log2(dw) bits, so the push's shift is by a register's
        # slice, beside the pop's (behind it, the kivi_n10v9 compressor's path).
        placed = Signal(cap)
        n_next = Signal(max=cap + 1)
        self.comb += [placed.eq(self.push << n[:log2_int(dw)]),
                      n_next.eq(after + Mux(self.do_push, self.pn, 0))]
        self.sync += [
            n.eq(n_next),
            acc.eq(Mux(pop, acc >> dw, acc) | Mux(self.do_push, placed, 0)),
            If(pop,
                If(last, ob.eq(0), crc.eq(CRC_INIT)).Else(ob.eq(ob + 1), crc.eq(crc_full))),
        ]
        ocnt_next = Signal(2)
        cnt, cnt_next = out_buffer(self, self.source, pop, beat, last)
        self.comb += [ocnt.eq(cnt), ocnt_next.eq(cnt_next)]
        # push_ok as the next cycle will see it, from the next fill and buffer count
        pop_next, after_next = Signal(), Signal(max=cap + 1)
        self.comb += [pop_next.eq((n_next >= dw) & (ocnt_next != 2)),
                      after_next.eq(n_next - Mux(pop_next, dw, 0)),
                      self.ok_next.eq(after_next < dw)]


class _PageBuffer(Module):
    """Page memory (even and odd beats in two memories, each holding two pages: a double
    buffer) and the input counters of phase A. `sink` is taken one beat per cycle into the
    write half until the page is `full`; `swap` hands that half to the read side (and takes
    the next page's first beat in the same cycle). Reads are synchronous (block RAM):
    `radr` is the address of the next cycle, `rdat` (even, odd) the data read."""

    def __init__(self, sink, nin, bpt, T):
        dw = len(sink.data)
        ab = bits_for(nin // 2 - 1)      # address bits of one buffered page (even or odd beats)
        self.swap = Signal()             # in: the full page moves to the read side
        self.radr = Signal(ab)           # in: read address of the next cycle
        self.accept = Signal()           # out: a beat is taken this cycle
        self.beat = Signal(max=nin + 1)  # out: input beat within the page
        self.full = Signal()             # out: the write half holds a whole page
        self.in_k = Signal()             # out: the beat is in K (the page's first half)
        self.tb = Signal(max=bpt)        # out: beat within its token
        self.tok = Signal(max=2 * T)     # out: token over K then V
        self.tok_end = Signal()          # out: the beat is its token's last
        mem = [Memory(dw, 2 << ab, name=f"page_{s}") for s in ("even", "odd")]
        self.specials += mem
        wp = [m.get_port(write_capable=True) for m in mem]
        # The read half (rsel) is never the half being written, so read/write order is moot.
        rp = [m.get_port() for m in mem]
        self.specials += wp + rp
        self.rdat = [p.dat_r for p in rp]
        accept, beat, swap, tb, tok = self.accept, self.beat, self.swap, self.tb, self.tok
        wsel, rsel, rsel_n, last = Signal(), Signal(), Signal(), Signal()
        # the first beat of the next page is taken in the very cycle the full page swaps out
        self.comb += [sink.ready.eq(~self.full | swap), accept.eq(sink.valid & sink.ready)]
        for s in range(2):
            self.comb += [wp[s].adr.eq(Cat(beat[1:1 + ab], Mux(swap, ~wsel, wsel))),
                          wp[s].dat_w.eq(sink.data),
                          wp[s].we.eq(accept & (beat[0] == s))]
        self.comb += [last.eq(beat == nin - 1), self.tok_end.eq(tb == bpt - 1),
                      self.in_k.eq(beat < nin // 2)]
        self.sync += If(accept,
                        If(last, beat.eq(0), self.full.eq(1)).Else(beat.eq(beat + 1)),
                        If(self.tok_end, tb.eq(0), tok.eq(Mux(tok == 2 * T - 1, 0, tok + 1)))
                        .Else(tb.eq(tb + 1)))
        self.sync += If(swap, self.full.eq(0), wsel.eq(~wsel), rsel.eq(wsel))
        self.comb += rsel_n.eq(Mux(swap, wsel, rsel))
        for s in range(2):
            self.comb += rp[s].adr.eq(Cat(self.radr, rsel_n))


class _InputFlags(Module):
    """The input beat's lanes sanitized (NaN -> +0, inf -> +-65504: `clean`) and the page
    flags: NONFINITE (a lane was replaced) and SINK (`attn_sink` with the page's first
    beat), for the page in input (`snk_now`) and, from `swap` on, the emitted one (`*_b`)."""

    def __init__(self, sink, accept, first):
        L = len(sink.data) // 16
        self.swap = Signal()             # in: the page in input moves to emission
        self.snk_now = Signal()          # out: SINK of the page being received
        self.nf_b, self.snk_b = Signal(), Signal()   # out: NONFINITE, SINK of the emitted page
        self.clean, nfs = [], []
        for j in range(L):
            c, nf = A.sanitize(self, sink.data[16 * j: 16 * j + 16])
            self.clean.append(c)
            nfs.append(nf)
        anynf, nf_a, snk_a = Signal(), Signal(), Signal()
        self.comb += anynf.eq(Cat(*nfs) != 0)
        self.sync += If(self.swap, self.nf_b.eq(nf_a), nf_a.eq(accept & anynf)) \
            .Elif(accept & anynf, nf_a.eq(1))
        self.sync += If(accept & first, snk_a.eq(sink.attn_sink))
        self.comb += self.snk_now.eq(Mux(first, sink.attn_sink, snk_a))
        self.sync += If(self.swap, self.snk_b.eq(snk_a))


class _KStats(Module):
    """K statistics, per channel over the page's tokens: minimum and maximum in rotating
    register files (a beat's lanes update the head), then, once K is in, one channel per
    cycle through the scale choice into the rotating files `code` and `lo` (its offset)."""

    def __init__(self, lanes, D, qmax, zrange):
        L = len(lanes)
        self.update = Signal()           # in: a K beat (`lanes`) is taken
        self.first = Signal()            # in: ... of the first token of the statistics
        self.start = Signal()            # in: K's last beat is taken: choose the scales
        self.ready = Signal(reset=1)     # out: `code`, `lo` hold the page's K parameters
        self.code = [Signal(8) for _ in range(D)]
        self.lo = [Signal(16 if zrange is None else 8) for _ in range(D)]
        kmin = [Signal(16) for _ in range(D)]
        kmax = [Signal(16) for _ in range(D)]
        key = A.order_key
        newmin, newmax = [], []
        for j in range(L):
            nm, nx = Signal(16), Signal(16)
            kc = lanes[j]
            self.comb += [
                If(self.first | (key(kc) < key(kmin[j])), nm.eq(kc)).Else(nm.eq(kmin[j])),
                If(self.first | (key(kc) > key(kmax[j])), nx.eq(kc)).Else(nx.eq(kmax[j])),
            ]
            newmin.append(nm)
            newmax.append(nx)
        # the scale choice, one channel a cycle through group_params' pipeline (`kv`: its
        # valid bits); its results rotate into `code` and `lo` as they leave it
        kcnt = Signal(max=D + 1, reset=D)
        kcode, klo_new = A.group_params(self, kmin[0], kmax[0], qmax, zrange, ce=True)
        kv = [Signal() for _ in range(A.group_params_stages(zrange is not None))]
        self.sync += [
            If(self.update, *(rotate(kmin, L, newmin) + rotate(kmax, L, newmax))),
            If(self.start, kcnt.eq(0)),
            If(kcnt < D, kcnt.eq(kcnt + 1), *(rotate(kmin, 1) + rotate(kmax, 1))),
            kv[0].eq(kcnt < D), *[kv[i].eq(kv[i - 1]) for i in range(1, len(kv))],
            If(kv[-1], *(rotate(self.code, 1, [kcode]) + rotate(self.lo, 1, [klo_new]))),
        ]
        # `ready`, a register (it starts the swap: the kivi_k4v3 compressor's path), is
        # (kcnt == D) & (kv all zero) as they will be, kv[0] being (kcnt < D) now
        self.sync += self.ready.eq((kcnt == D) & ~self.start & (Cat(*kv[:-1]) == 0))


class _VStats(Module):
    """V statistics, per token over its channels: a lane tree (a register after each level
    of its compare-and-select) and a running
    minimum and maximum over the token's beats; in the cycle after the token's last beat,
    the registered minimum / maximum enter group_params' pipeline, and its result rotates
    into the files `code` and `lo` as it leaves (`busy` while a token is on its way)."""

    def __init__(self, lanes, T, qmax, zrange):
        self.update = Signal()           # in: a V beat (`lanes`) is taken
        self.first = Signal()            # in: ... its token's first beat
        self.last = Signal()             # in: ... its token's last beat
        self.busy = Signal()             # out: a token's scale is still being chosen
        self.code = [Signal(8) for _ in range(T)]
        self.lo = [Signal(16 if zrange is None else 8) for _ in range(T)]
        key = A.order_key
        # the beat's minimum and maximum over its lanes (a tree), registered with the strobes
        bmin0, bmax0 = Signal(16), Signal(16)

        def pick(lt):
            def f(a, b):
                r = Signal(16)
                self.comb += r.eq(Mux(lt(key(a), key(b)), a, b))
                return r
            return f

        def reg(x):
            return A.stage(self, True, x)
        self.comb += [bmin0.eq(_tree(lanes, pick(lambda a, b: a < b), reg)),
                      bmax0.eq(_tree(lanes, pick(lambda a, b: a > b), reg))]
        bmin, bmax = reg(bmin0), reg(bmax0)
        ts = 1 + _tree_stages(len(lanes))
        update, first, last = (A.delay(self, True, x, ts)
                               for x in (self.update, self.first, self.last))
        ul = Signal()                             # a token's last beat, in the tree's stages
        self.comb += ul.eq(self.update & self.last)
        tlast = [ul]
        for _ in range(ts):
            tlast.append(A.stage(self, True, tlast[-1]))
        amin, amax, mmin, mmax = Signal(16), Signal(16), Signal(16), Signal(16)
        self.comb += [
            If(first | (key(bmin) < key(amin)), mmin.eq(bmin)).Else(mmin.eq(amin)),
            If(first | (key(bmax) > key(amax)), mmax.eq(bmax)).Else(mmax.eq(amax)),
        ]
        vpend = Signal()
        vcode, vlo_new = A.group_params(self, amin, amax, qmax, zrange, ce=True)
        vv = [Signal() for _ in range(A.group_params_stages(zrange is not None))]
        self.sync += [If(update, amin.eq(mmin), amax.eq(mmax)),
                      vpend.eq(update & last),
                      vv[0].eq(vpend), *[vv[i].eq(vv[i - 1]) for i in range(1, len(vv))],
                      If(vv[-1], *(rotate(self.code, 1, [vcode]) + rotate(self.lo, 1, [vlo_new])))]
        self.comb += self.busy.eq((Cat(*tlast) != 0) | vpend | (Cat(*vv) != 0))


class _Program(Module):
    """The emission program's state: step `st` of `steps` ((name, cycles) run in order),
    cycle `cnt` within it and `sub` within a token (`per_tok` cycles) of a payload step.
    The next state (`st_n`, `cnt_n`, `sub_n`) is combinational: the page memory's read
    address is registered from it."""

    def __init__(self, steps, per_tok):
        n = len(steps)
        self.index = {nm: i for i, (nm, _) in enumerate(steps)}
        self.start = Signal()            # in: a page swaps in: restart at the first step
        self.go = Signal()               # in: this cycle of the program is done
        self.skip = Signal()             # in: skip the rest of this step
        self.stop = Signal()             # in: the page has left: stop past the last step
        self.st = st = Signal(max=n + 1)
        self.cnt = cnt = Signal(max=max(k for _, k in steps) + 1)
        self.sub = sub = Signal(max=max(per_tok, 1) + 1)
        self.st_n, self.cnt_n, self.sub_n = Signal.like(st), Signal.like(cnt), Signal.like(sub)
        st_n, cnt_n, sub_n = self.st_n, self.cnt_n, self.sub_n
        self.step_last = step_last = Signal()     # out: the step's last cycle
        self.comb += step_last.eq(Array([C(k - 1) for _, k in steps] + [C(0)])[st] == cnt)
        self.comb += [
            st_n.eq(st), cnt_n.eq(cnt), sub_n.eq(sub),
            If(self.start, st_n.eq(0), cnt_n.eq(0), sub_n.eq(0)),
            If(self.go,
                If(step_last, st_n.eq(st + 1), cnt_n.eq(0), sub_n.eq(0)).Else(
                    cnt_n.eq(cnt + 1),
                    If(sub == per_tok - 1, sub_n.eq(0)).Else(sub_n.eq(sub + 1))),
            ),
            If(self.stop, st_n.eq(n)),
        ]
        self.comb += If(self.skip, st_n.eq(st + 1), cnt_n.eq(0), sub_n.eq(0))
        self.sync += [st.eq(st_n), cnt.eq(cnt_n), sub.eq(sub_n)]


class _Quantizer(Module):
    """The payload pipeline between the emission program and the bit packer, one quantizer
    per value of a cycle (`vals`), shared by the K and V payload steps (operands chosen by
    `is_k`), its registers advancing together on `advance`: the page memory's output (two
    registers) | sanitized | the value and its group offset as integers (two) | the value
    less the offset (OFFSET_STAGES in all) | the quantizer's
    (A.QUANTIZE_STAGES) | the clamped codes | the level-packed fields' tree (A.level_code_stages) | then `out_push`,
    `out_pn`, `out_valid` (the packer's input, combinational). A step's own push (`push`,
    `pn`: header, parameters) rides along, `kind` selects: 0 that push, 1 the K payload
    (zeros for token 0 of a SINK page: `tok0`), 2 the V payload, 3 a page-memory beat as it
    is, sanitized (the SINK page's exact token-0 K). `kparams` are (lo, code) of each
    value's K channel, `vparams` those of the V token."""

    def __init__(self, mode, vals, kparams, vparams, maxpush):
        self.advance, self.is_k, self.valid, self.tok0 = Signal(), Signal(), Signal(), Signal()
        self.kind = Signal(2)
        self.odd = Signal()              # in: kind 3 takes the odd memory's beat
        self.push, self.pn = Signal(maxpush), Signal(max=maxpush + 1)
        self.out_push, self.out_pn = Signal(maxpush), Signal(max=maxpush + 1)
        self.out_valid = Signal()
        adv = self.advance
        kq, vq = mode.k_levels - 1, mode.v_levels - 1
        d, codes = self._offsets(mode, vals, kparams, vparams)
        # the codes, clamped to the section's qmax (quantize(d, c, a) = min(a, .), so
        # min(qmax, quantize(d, c, max(kq, vq))) = quantize(d, c, qmax)), registered
        qmax0 = Signal(max=max(kq, vq) + 1)
        self.comb += qmax0.eq(Mux(self.is_k, kq, vq))
        qmax = A.delay(self, adv, qmax0, OFFSET_STAGES + A.QUANTIZE_STAGES)
        qs = []
        for dj, code in zip(d, codes):
            qa = A.quantize(self, dj, code, max(kq, vq), ce=adv)
            q = Signal(len(qa))
            self.sync += If(adv, If(qa > qmax, q.eq(qmax)).Else(q.eq(qa)))
            qs.append(q)
        kfield, self.kpn, vfield, self.vpn, fstages = self._fields(mode, qs)
        # the step's side signals, as many stages behind as its codes' fields
        n = OFFSET_STAGES + A.QUANTIZE_STAGES + 1 + fstages
        kind, tok, valid, push, pn = (A.delay(self, adv, x, n) for x in (
            self.kind, self.tok0, self.valid, self.push, self.pn))
        # kind 3 (ksink): one page-memory beat (even or odd: `odd`), sanitized, from the
        # third register
        L = len(vals) // 2
        odd = A.delay(self, adv, self.odd, 3)
        beat = Signal(L * 16)
        for j in range(L):
            self.comb += beat[16 * j: 16 * j + 16].eq(
                Mux(odd, self.vals_r[L + j], self.vals_r[j]))
        beat = A.delay(self, adv, beat, n - 3)
        self.stages = n
        self.comb += [self.out_valid.eq(valid), self.out_pn.eq(pn),
                      If(kind == 1, self.out_push.eq(Mux(tok, 0, kfield)))
                      .Elif(kind == 2, self.out_push.eq(vfield))
                      .Elif(kind == 3, self.out_push.eq(beat))
                      .Else(self.out_push.eq(push))]

    def _offsets(self, mode, vals, kparams, vparams):
        """OFFSET_STAGES registers: the page memory's output twice (a block RAM's output is
        late: nothing else in its cycle; yosys merges the first register into the block
        RAM, so the second is the one in the fabric), sanitized, the value and the offset
        as integers (two: magnitude, then sign), then d = value - offset (each with the
        code). The group's offset field and code ride along from the first."""
        adv = self.advance
        d2, c2 = [], []
        self.vals_r = []
        for v, (klo, kcode) in zip(vals, kparams):
            lo0, code0 = Signal(len(klo)), Signal(8)
            self.comb += If(self.is_k, lo0.eq(klo), code0.eq(kcode)) \
                .Else(lo0.eq(vparams[0]), code0.eq(vparams[1]))
            v2 = A.delay(self, adv, v, 2)
            lo2, code2 = (A.delay(self, adv, x, 2) for x in (lo0, code0))
            cv0, _ = A.sanitize(self, v2)
            cv = A.stage(self, adv, cv0)
            self.vals_r.append(cv)
            x = A.stage(self, adv, A.fp16_to_int(self, cv, ce=adv))
            # the group's offset in units: zero * S (kivi_z) or the FP16 minimum
            if mode.zp:
                off = A.delay(self, adv, A.zp_offset(self, lo2, code2, ce=adv), 2)
                # d = max(x - offset, 0)
                diff = Signal((51, True))
                d = Signal(48)
                self.comb += [diff.eq(x - off), If(diff < 0, d.eq(0)).Else(d.eq(diff))]
            else:
                off = A.stage(self, adv, A.fp16_to_int(self, A.stage(self, adv, lo2), ce=adv))
                d = Signal(43)
                self.comb += d.eq(x - off)
            d2.append(A.stage(self, adv, d))
            c2.append(A.delay(self, adv, code2, 4))
        return d2, c2

    def _fields(self, mode, qs):
        """(K fields, their bits, V fields, their bits, registers) of the codes `qs`."""
        n = len(qs)
        if not mode.level_packed:
            return (Cat(*[q[0:mode.kbits] for q in qs]), n * mode.kbits,
                    Cat(*[q[0:mode.vbits] for q in qs]), n * mode.vbits, 0)
        (gk, wk), (gv, wv) = level_groups(mode, n)
        stages = max(A.level_code_stages(g) for g in (gk, gv))

        def fields(lev, g, w):
            out = []
            for i in range(0, n, g):
                f = Signal(w)
                code = A.level_code(self, qs[i:i + g], lev, ce=self.advance)
                self.comb += f.eq(A.delay(self, self.advance, code,
                                          stages - A.level_code_stages(g)))
                out.append(f)
            return Cat(*out), len(out) * w
        return fields(mode.k_levels, gk, wk) + fields(mode.v_levels, gv, wv) + (stages,)


def _steps(mode, T, D, L, nin):
    """The emission program: (step, cycles); level-packed payloads need not fill whole
    64-bit words: zero padding to the end (kpad, vpad)."""
    klpc, vlpc = zero_lanes(mode, T)
    steps = [("hdr", 1), ("kcode", D // 8), ("klo", D // klpc), ("vcode", T // 8),
             ("vlo", T // vlpc), ("ksink", D // L), ("kq", nin // 4)]
    kpad = vpad = 0
    if mode.level_packed:
        kpad, vpad = payload_pads(T, D, *level_groups(mode, 2 * L))
    steps += [("kpad", 1)] if kpad else []
    steps += [("vq", nin // 4)] + ([("vpad", 1)] if vpad else [])
    steps += [("tail", 1)]
    return steps, kpad, vpad


class KVCompressor(Module):
    """FP16 KV pages in (``sink``, ``dw``-bit beats, 4 values per 64 bits, page order of
    README.md), compressed pages out (``source``, ``last`` on each page's final beat).

    The page is buffered (double-buffered page memory) because the scales need the whole
    page; input runs at one beat per cycle while the previous page is emitted.
    """

    def __init__(self, mode="kivi_k4v3", dw=64, T=16, D=64):
        mode = resolve_mode(mode)
        L = check_geometry(dw, T, D)
        self.mode, self.dw, self.T, self.D = mode, dw, T, D
        # sideband `attn_sink` (sampled with a page's first beat, kivi modes): the page holds
        # the sequence's attention sink in token 0 -> SINK flag, token 0's K kept exact
        self.sink = stream.Endpoint(stream.EndpointDescription([("data", dw)],
                                                               [("attn_sink", 1)]))
        self.source = stream.Endpoint([("data", dw)])
        self.pages = Signal(32)        # pages completed (status)
        nin = 2 * T * D // L           # input beats per page
        nout, nout_s = page_beats(mode, T, D, dw), page_beats(mode, T, D, dw, sink=True)
        maxpush = max(64, dw)
        self.submodules.pk = pk = _BitPacker(dw, maxpush, max(nout, nout_s))
        self.comb += pk.source.connect(self.source)

        # ---- phase A: input into the page memory, statistics ------------------------------
        swap, b_busy = Signal(), Signal()
        self.submodules.buf = buf = _PageBuffer(self.sink, nin, D // L, T)
        self.submodules.flags = flags = _InputFlags(self.sink, buf.accept, buf.beat == 0)
        # the statistics take the input a cycle late: its lanes (sanitized) and strobes
        # registered, so no input pin drives a comparator tree
        def late(x):
            r = Signal(len(x))
            self.sync += r.eq(x)
            return r
        lanes = [late(c) for c in flags.clean]
        self.submodules.kstats = ks = _KStats(lanes, D, mode.k_levels - 1, mode.zero_range("k"))
        self.submodules.vstats = vs = _VStats(lanes, T, mode.v_levels - 1, mode.zero_range("v"))
        self.comb += [
            buf.swap.eq(swap), flags.swap.eq(swap),
            ks.update.eq(late(buf.accept & buf.in_k)),
            ks.first.eq(late((buf.tok == 0) | ((buf.tok == 1) & flags.snk_now))),
            ks.start.eq(late(buf.accept & (buf.beat == nin // 2 - 1))),
            vs.update.eq(late(buf.accept & ~buf.in_k)), vs.first.eq(late(buf.tb == 0)),
            vs.last.eq(late(buf.tok_end)),
        ]

        # ---- swap: the page's parameters move to the B side -------------------------------
        kcode_b = [Signal.like(s) for s in ks.code]
        klo_b = [Signal.like(s) for s in ks.lo]
        vcode_b = [Signal.like(s) for s in vs.code]
        vlo_b = [Signal.like(s) for s in vs.lo]
        self.params_b = (kcode_b, klo_b, vcode_b, vlo_b)
        # The parameter files are copied a cycle after the conditions that move them (their
        # fan-out into ~1,300 enables starts at a register): the K files at the cycle after
        # the swap, in time for the kcode step (the header takes the first cycle).
        swap_r = Signal()
        self.comb += swap.eq(buf.full & ks.ready & ~b_busy)
        self.sync += [swap_r.eq(swap), If(swap, b_busy.eq(1)),
                      If(swap_r, *[bb.eq(aa) for a_, b_ in ((ks.code, kcode_b), (ks.lo, klo_b))
                                   for aa, bb in zip(a_, b_)])]
        self.sync += If(pk.page_done, b_busy.eq(0), self.pages.eq(self.pages + 1))
        # The page's last V scales may still be in their pipeline at the swap: the V files
        # move to B once it is empty (`vload`; the next page's first V token comes half a
        # page later), and B's program waits for them before its vcode step (`vb_ready`).
        vload, vload_r, vwait, vb_ready = Signal(), Signal(), Signal(), Signal()
        self.comb += vload.eq((swap | vwait) & ~vs.busy)
        self.sync += [
            vload_r.eq(vload),
            If(vload, vwait.eq(0)).Elif(swap, vwait.eq(1)),
            If(swap, vb_ready.eq(0)),
            If(vload_r, vb_ready.eq(1),
               *[bb.eq(aa) for a_, b_ in ((vs.code, vcode_b), (vs.lo, vlo_b))
                 for aa, bb in zip(a_, b_)]),
        ]

        # ---- phase B: emission program, quantizer, packer --------------------------------
        steps, kpad, vpad = _steps(mode, T, D, L, nin)
        self.submodules.prog = prog = _Program(steps, D // (2 * L))
        vals = [buf.rdat[s][16 * j: 16 * j + 16] for s in range(2) for j in range(L)]
        self.submodules.quant = q = _Quantizer(mode, vals, list(zip(klo_b, kcode_b)),
                                               (vlo_b[0], vcode_b[0]), maxpush)
        skip = Signal()                # the ksink step of a page without SINK
        r_valid = Signal()             # the packer's input register holds a push
        go = Signal()
        # the quantizer's advance (~r_valid | push_ok, thousands of enables) is a register,
        # loaded with the value the next cycle will compute
        adv, adv_d = Signal(reset=1), Signal()
        self.comb += adv_d.eq(~Mux(adv, q.out_valid, r_valid) | pk.ok_next)
        self.sync += adv.eq(adv_d)
        self.comb += [q.advance.eq(adv),
                      go.eq(b_busy & q.advance & (prog.st < len(steps)) &
                            (vb_ready | (prog.st != prog.index["vcode"]))),
                      q.valid.eq(go & ~skip),
                      pk.do_push.eq(r_valid & pk.push_ok)]
        self.sync += If(q.advance, r_valid.eq(q.out_valid), pk.push.eq(q.out_push),
                        pk.pn.eq(q.out_pn))
        iks, ik = prog.index["ksink"], prog.index["kq"]
        self.comb += [prog.start.eq(swap), prog.go.eq(go), prog.stop.eq(pk.page_done),
                      skip.eq((prog.st == iks) & ~flags.snk_b),
                      pk.last_beat.eq(Mux(flags.snk_b, nout_s - 1, nout - 1)),
                      prog.skip.eq(b_busy & skip)]
        # memory read address of the next state (ksink reads one beat per cycle, payload
        # steps two): that of each state the program can move to, from its registers; the
        # late controls only choose (through the next state, the kivi_n10v9 compressor's
        # path). Past the last step (`stop`) nothing is read.
        def addr(s, c):
            a = Signal.like(buf.radr)
            self.comb += If(s == ik, a.eq(c)).Elif(s == iks, a.eq(c[1:])) \
                .Else(a.eq(c + nin // 4))
            return a
        a_hold, a_cnt = addr(prog.st, prog.cnt), addr(prog.st, prog.cnt + 1)
        a_step, a_first = addr(prog.st + 1, C(0, len(prog.cnt))), addr(C(0), C(0, len(prog.cnt)))
        self.comb += [
            buf.radr.eq(a_hold),
            If(prog.start, buf.radr.eq(a_first)),
            If(prog.go, If(prog.step_last, buf.radr.eq(a_step)).Else(buf.radr.eq(a_cnt))),
            If(prog.skip, buf.radr.eq(a_step)),
        ]
        self.comb += [q.tok0.eq(flags.snk_b & (prog.cnt < D // (2 * L))),
                      q.is_k.eq(prog.st == ik)]
        # Next cycle's `go` (b_busy, vb_ready and adv as they will be, the program's next
        # step): the parameter files' rotation enables are registers loaded with it, since
        # each reaches about a thousand flip-flops (it was the core's longest path).
        go_n = Signal()
        self.comb += go_n.eq(~pk.page_done & (swap | b_busy) & adv_d & (prog.st_n < len(steps)) &
                             (vload_r | (~swap & vb_ready) | (prog.st_n != prog.index["vcode"])))
        self._step_pushes(steps, prog, q, flags, go_n, kpad, vpad)

    def _step_pushes(self, steps, prog, q, flags, go_n, kpad, vpad):
        """Each step's push into the quantizer pipeline (q.push, q.pn, q.kind) and the
        rotation of the B-side parameter files as the step consumes them (in a cycle of
        `go`, from enables registered a cycle ahead from `go_n`, next cycle's `go`)."""
        mode, T, D, L = self.mode, self.T, self.D, self.dw // 16
        kcode_b, klo_b, vcode_b, vlo_b = self.params_b
        klpc, vlpc = zero_lanes(mode, T)
        st, cnt, sub = prog.st, prog.cnt, prog.sub
        len_f = Signal(16)
        self.comb += len_f.eq(Mux(flags.snk_b, R.page_length(mode, T, D, sink=True),
                                  R.page_length(mode, T, D)))
        hdr = header_bits(mode, Cat(flags.nf_b, flags.snk_b, C(0, 2)), T, D, len_f)
        vzw = 64 // vlpc               # V zero point field (kivi_n: 4 bits of the 8)
        self.comb += q.odd.eq(cnt[0])
        push = {
            "hdr": [q.push.eq(hdr), q.pn.eq(64)],
            "tail": [q.push.eq(0), q.pn.eq(64)],
            "kcode": [q.push.eq(Cat(*kcode_b[:8])), q.pn.eq(64)],
            "klo": [q.push.eq(Cat(*klo_b[:klpc])), q.pn.eq(64)],
            "vcode": [q.push.eq(Cat(*vcode_b[:8])), q.pn.eq(64)],
            "vlo": [q.push.eq(Cat(*[z[0:vzw] for z in vlo_b[:vlpc]])), q.pn.eq(64)],
            "ksink": [q.kind.eq(3), q.pn.eq(self.dw)],
            "kq": [q.kind.eq(1), q.pn.eq(q.kpn)],
            "vq": [q.kind.eq(2), q.pn.eq(q.vpn)],
            "kpad": [q.push.eq(0), q.pn.eq(kpad)],
            "vpad": [q.push.eq(0), q.pn.eq(vpad)],
        }
        rot = {
            "kcode": rotate(kcode_b, 8),
            "klo": rotate(klo_b, klpc),
            "vcode": rotate(vcode_b, 8),
            "vlo": rotate(vlo_b, vlpc),
            "kq": rotate(kcode_b, 2 * L) + rotate(klo_b, 2 * L),
            "vq": [If(sub == D // (2 * L) - 1, *(rotate(vcode_b, 1) + rotate(vlo_b, 1)))],
        }
        for i, (name, _) in enumerate(steps):
            self.comb += If(st == i, *push[name])
            if name in rot:
                en = Signal(name=f"rot_{name}")     # = go & (st == i), a register
                self.sync += [en.eq(go_n & (prog.st_n == i)), If(en, *rot[name])]
