"""The DMA's per-descriptor datapath: source reader and aligner, destination aligner
(DRAM words with byte enables) or host-line packer. The engine in ``core.py`` resets it
when a job is abandoned."""

from migen import Module, Signal, If, Cat, Mux, Constant, log2_int
from litex.soc.interconnect import stream

from litedram.frontend.dma import LiteDRAMDMAReader

from gateware.common import OP_COPY, OP_WIDTH
from .model import HOST_LINE
from .layouts import packed_layout


def _lowmask(x, n):
    """n-bit mask with the low min(x, n) bits set (x a signal or expression)."""
    return (Constant(1, 2 * n + 1) << x) - 1


class JobPath(Module):
    """Source reader + aligner -> ``a_source`` (packed); ``b_sink`` (packed) -> destination
    aligner (DRAM words with byte enables on ``w``) or line packer (host lines on ``h``).

    ``start`` (one cycle) loads a descriptor from ``d_*``; ``final`` rises when the last
    destination word has been handed to ``w`` / ``h``.
    """

    def __init__(self, vport, paddr_width, haddr_width, len_width, read_fifo_depth):
        dw = vport.data_width
        B = dw // 8

        self.start    = Signal()
        self.d_op     = Signal(OP_WIDTH)
        self.d_host   = Signal()
        self.d_src    = Signal(paddr_width)
        self.d_dst    = Signal(haddr_width)
        self.d_length = Signal(len_width)
        self.d_cap    = Signal(len_width)

        self.op       = Signal(OP_WIDTH)
        self.a_source = stream.Endpoint(packed_layout(dw))
        self.b_sink   = stream.Endpoint(packed_layout(dw))
        self.w = stream.Endpoint([("addr", vport.address_width), ("data", dw), ("we", B)])
        self.h = stream.Endpoint([("addr", haddr_width), ("data", 8 * HOST_LINE),
                                      ("nbytes", 7)])
        self.final     = Signal()
        self.overflow  = Signal()
        self.out_bytes = Signal(len_width + 1)

        # # #

        self.submodules.reader = reader = LiteDRAMDMAReader(vport, fifo_depth=read_fifo_depth)
        host, d = self._source_side(vport, reader, len_width)
        self._destination_side(vport, haddr_width, len_width, host, d)

    def _source_side(self, vport, reader, len_width):
        """Descriptor registers, read commands and the source aligner (-> ``a_source``);
        returns what the destination side needs: host flag, destination offset."""
        dw = vport.data_width
        B = dw // 8
        sh = log2_int(B)
        a = self.a_source
        # Descriptor registers -------------------------------------------------------------------
        host     = Signal()
        s        = Signal(max(1, sh))               # source byte offset in its word
        d        = Signal(max(1, sh))               # destination byte offset in its word
        rd_addr  = Signal(vport.address_width)
        rd_left  = Signal(len_width + 1)            # read commands still to issue
        in_left  = Signal(len_width + 1)            # read words still to consume
        len_left = Signal(len_width + 1)            # packed bytes still to emit
        words = (self.d_src[:sh] + self.d_length + B - 1) >> sh
        self.sync += If(self.start,
            self.op.eq(self.d_op),
            host.eq(self.d_host),
            s.eq(self.d_src[:sh]),
            d.eq(Mux(self.d_host, 0, self.d_dst[:sh])),
            rd_addr.eq(self.d_src[sh:]),
            rd_left.eq(words),
            in_left.eq(words),
            len_left.eq(self.d_length),
        )

        # Read commands --------------------------------------------------------------------------
        self.comb += [
            reader.sink.valid.eq(rd_left != 0),
            reader.sink.address.eq(rd_addr),
        ]
        self.sync += If(reader.sink.valid & reader.sink.ready,
            rd_addr.eq(rd_addr + 1),
            rd_left.eq(rd_left - 1),
        )

        # Source aligner: packed beat k = source bytes [kB, kB + B) -----------------------------
        # = (word k >> 8s) | (word k+1 << 8(B-s)); the first word only fills ``prev``; after the
        # last word, one flush beat from ``prev`` alone if bytes remain.
        r = reader.source
        prev = Signal(dw)
        have_prev = Signal()
        flush = Signal()
        self.comb += [
            flush.eq(in_left == 0),
            a.valid.eq(have_prev & (r.valid | flush) & (len_left != 0)),
            a.data.eq((Cat(prev, Mux(flush, 0, r.data)) >> Cat(Constant(0, 3), s))[:dw]),
            a.nbytes.eq(Mux(len_left >= B, B, len_left)),
            a.last.eq(len_left <= B),
            r.ready.eq((in_left != 0) & (~have_prev | (a.valid & a.ready))),
        ]
        self.sync += [
            If(self.start,
                have_prev.eq(0),
            ).Elif(r.valid & r.ready,
                prev.eq(r.data),
                have_prev.eq(1),
                in_left.eq(in_left - 1),
            ),
            If(a.valid & a.ready,
                len_left.eq(len_left - a.nbytes),
            ),
        ]
        return host, d

    def _destination_side(self, vport, haddr_width, len_width, host, d):
        """``b_sink`` -> DRAM words with byte enables on ``w``, or host lines on ``h``."""
        dw = vport.data_width
        B = dw // 8
        sh = log2_int(B)
        nbw = B.bit_length()
        W = HOST_LINE // B
        lsh = log2_int(HOST_LINE)
        b, w, h = self.b_sink, self.w, self.h
        # Destination side -----------------------------------------------------------------------
        first   = Signal()
        pend    = Signal()                          # DRAM flush word pending
        bprev   = Signal(dw)
        waddr   = Signal(vport.address_width)
        haddr   = Signal(haddr_width)
        words   = [Signal(dw, name=f"line_word{k}") for k in range(W - 1)]  # the line so far
        lbytes  = Signal(7)
        wcnt    = Signal(max(1, (W - 1).bit_length()))
        ovf     = Signal()
        dropping = Signal()
        # Room left below the output cap (the length for a copy, ``d_cap`` otherwise), kept
        # as a register so that the overflow test is a short compare of ``nbytes`` with its
        # low bits, not an add and a compare on ``b.ready``'s path.
        room    = Signal(len_width)
        self.comb += [
            ovf.eq(b.valid & ((room[nbw:] == 0) & (b.nbytes > room[:nbw])) | dropping),
            self.overflow.eq(ovf),
        ]
        # After an overflow the rest of the transform's output is dropped (nothing more is
        # written) so that a decompressor can still reach its verdict: corrupt wins.
        self.sync += If(self.start, dropping.eq(0)).Elif(ovf, dropping.eq(1))
        self.sync += If(self.start,
            first.eq(1),
            pend.eq(0),
            waddr.eq(self.d_dst[sh:]),
            haddr.eq(self.d_dst),
            lbytes.eq(0),
            wcnt.eq(0),
            self.final.eq(0),
            self.out_bytes.eq(0),
            room.eq(Mux(self.d_op == OP_COPY, self.d_length, self.d_cap)),
        )

        # DRAM: word j = (packed k-1 >> 8(B-d)) | (packed k << 8d), byte enables for the range.
        bsh = Signal(sh + 1)
        self.comb += bsh.eq(B - d)
        shift = Cat(Constant(0, 3), bsh)            # 8 * (B - d), 8B when d = 0
        end = Signal(nbw + 1)
        self.comb += end.eq(d + b.nbytes)
        # (masks in signals: the Migen simulator evaluates expression trees without sharing)
        m_end = Signal(B)
        m_lo  = Signal(B)       # bytes below the destination offset (first word)
        m_fl  = Signal(B)       # flush word enables
        self.comb += m_end.eq(_lowmask(end, B))
        self.sync += [
            If(self.start, m_lo.eq(_lowmask(self.d_dst[:sh], B) & Mux(self.d_host, 0, 2**B - 1))),
            If(b.valid & b.ready & b.last & (end > B), m_fl.eq(_lowmask(end - B, B))),
        ]
        self.comb += If(pend,
            w.valid.eq(1),
            w.data.eq((Cat(bprev, Constant(0, dw)) >> shift)[:dw]),
            w.we.eq(m_fl),
        ).Else(
            w.valid.eq(b.valid & ~host & ~ovf),
            w.data.eq((Cat(bprev, b.data) >> shift)[:dw]),
            w.we.eq(Mux(b.last, m_end, 2**B - 1) & ~Mux(first, m_lo, 0)),
        )
        self.comb += w.addr.eq(waddr)

        # Host: 64-byte lines from the line start (destination 64-byte aligned: d = 0).
        bmask = Signal(dw)
        emit  = Signal()
        self.comb += [
            If(host, bmask.eq(_lowmask(Cat(Constant(0, 3), b.nbytes), dw))),
            emit.eq(b.last | (wcnt == W - 1)),
            h.valid.eq(b.valid & host & ~ovf & emit),
            # word k of the line: stored (k < wcnt), this beat (k = wcnt), zero beyond. The
            # stored words are never cleared: each has its own write enable, so no signal
            # fans out to all 8 * HOST_LINE bits (it did, and set the board's longest path).
            h.data.eq(Cat(*[Mux(wcnt == k, b.data & bmask, 0) if k == W - 1 else
                            Mux(wcnt > k, words[k], Mux(wcnt == k, b.data & bmask, 0))
                            for k in range(W)])),
            h.nbytes.eq(lbytes + b.nbytes),
            h.addr.eq(haddr),
            # The overflow test stays off ``ready`` and off ``bprev``'s enable (it was on the
            # routed critical path of both boards): a beat that overflows may be taken, but
            # nothing of it is written (``w``/``h`` valid and the state updates below are
            # gated by ``ovf``), and from the next cycle on the rest is dropped. A ``bprev``
            # it overwrites is never read again: the job is abandoned.
            b.ready.eq(dropping | (~pend & Mux(host, ~emit | h.ready, w.ready))),
        ]

        # Line word k follows the input while the line is at word k (``wcnt``, a register,
        # is its only enable): the beat is held until it is taken, so the word holds that
        # beat once ``wcnt`` moves on, and a word written while nothing or an overflowing
        # beat was offered is rewritten before it is read (words below ``wcnt`` only).
        self.sync += [If(wcnt == k, words[k].eq(b.data & bmask)) for k in range(W - 1)]
        self.sync += If(b.valid & b.ready, bprev.eq(b.data))
        self.sync += [
            If(w.valid & w.ready,
                waddr.eq(waddr + 1),
                If(pend,
                    pend.eq(0),
                    self.final.eq(1),
                )
            ),
            If(b.valid & b.ready & ~ovf,
                first.eq(0),
                self.out_bytes.eq(self.out_bytes + b.nbytes),
                room.eq(room - b.nbytes),
                If(host,
                    If(emit,
                        lbytes.eq(0), wcnt.eq(0),
                        haddr[lsh:].eq(haddr[lsh:] + 1),     # + HOST_LINE (no carry below)
                    ).Else(
                        lbytes.eq(h.nbytes), wcnt.eq(wcnt + 1),
                    ),
                    If(b.last, self.final.eq(1)),
                ).Elif(b.last,
                    If(end > B,
                        pend.eq(1),
                    ).Else(
                        self.final.eq(1),
                    )
                )
            ),
        ]
