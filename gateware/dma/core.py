"""DMA engine: descriptor queue, byte-granular copy / codec datapath, completion queue.

The behaviour is specified by ``model.DMAModel``; this core matches it byte for byte
(completions in job order, statuses, every DRAM byte, every host line). Interface,
descriptor format, registers and timing: README.md beside this file.
"""

from migen import (Module, Signal, If, Cat, Mux, Constant, FSM, NextState,
                   NextValue, ResetInserter, log2_int)
from litex.gen import LiteXModule
from litex.soc.interconnect import stream
from litex.soc.interconnect.csr import CSRStorage, CSRStatus, CSRField

from litedram.common import LiteDRAMNativePort
from litedram.frontend.dma import LiteDRAMDMAReader

from gateware.common import (OP_COPY, OP_COMPRESS, OP_DECOMPRESS, OP_WIDTH, ST_OK, ST_FAULT,
                             ST_CORRUPT, ST_TIMEOUT, ST_OVERFLOW, ST_INVALID, STATUS_WIDTH)
from .model import HOST_LINE

# Stream layouts --------------------------------------------------------------------------------


def descriptor_layout(paddr_width, haddr_width, len_width, tag_width):
    """Descriptor stream (``sink``); the endpoint's ``last`` ends a job (chain)."""
    return [
        ("op",     OP_WIDTH),     # model.OP_*: 0 copy, 1 compress, 2 decompress
        ("host",   1),            # 1: destination is the host (``host_source`` lines)
        ("tag",    tag_width),    # job tag (the first descriptor's tag is the job's)
        ("src",    paddr_width),  # DRAM byte address of the source
        ("dst",    haddr_width),  # DRAM byte address, or host byte address if ``host``
        ("length", len_width),    # source bytes, >= 1
        ("cap",    len_width),    # codec ops: destination capacity in bytes (copy: unused)
    ]


def completion_layout(tag_width):
    return [
        ("tag",    tag_width),     # tag of the job
        ("status", STATUS_WIDTH),  # model.ST_*
        ("bytes",  32),            # destination bytes written by completed descriptors
    ]


def packed_layout(dw):
    """Byte stream packed from bit 0: every beat full (dw/8 bytes) except the last."""
    return [
        ("data",   dw),                          # bytes, little endian
        ("nbytes", (dw // 8).bit_length()),      # valid bytes in this beat, from byte 0
    ]


def host_line_layout(haddr_width, tag_width):
    return [
        ("addr",   haddr_width),    # host byte address of the line (64-byte aligned)
        ("data",   8 * HOST_LINE),  # line bytes, little endian; bytes >= nbytes are zero
        ("nbytes", 7),              # valid bytes from the line start, 1..64
        ("tag",    tag_width),      # job tag
    ]


def _lowmask(x, n):
    """n-bit mask with the low min(x, n) bits set (x a signal or expression)."""
    return (Constant(1, 2 * n + 1) << x) - 1


# Per-descriptor datapath (reset by the engine when a job is abandoned) ----------------------


class _JobPath(Module):
    """Source reader + aligner -> ``a_source`` (packed); ``b_sink`` (packed) -> destination
    aligner (DRAM words with byte enables on ``w``) or line packer (host lines on ``h``).

    ``start`` (one cycle) loads a descriptor from ``d_*``; ``final`` rises when the last
    destination word has been handed to ``w`` / ``h``.
    """

    def __init__(self, vport, paddr_width, haddr_width, len_width, read_fifo_depth):
        dw = vport.data_width
        B = dw // 8
        sh = log2_int(B)
        nbw = B.bit_length()
        W = HOST_LINE // B

        self.start    = Signal()
        self.d_op     = Signal(OP_WIDTH)
        self.d_host   = Signal()
        self.d_src    = Signal(paddr_width)
        self.d_dst    = Signal(haddr_width)
        self.d_length = Signal(len_width)
        self.d_cap    = Signal(len_width)

        self.op       = Signal(OP_WIDTH)
        self.a_source = a = stream.Endpoint(packed_layout(dw))
        self.b_sink   = b = stream.Endpoint(packed_layout(dw))
        self.w = w = stream.Endpoint([("addr", vport.address_width), ("data", dw), ("we", B)])
        self.h = h = stream.Endpoint([("addr", haddr_width), ("data", 8 * HOST_LINE),
                                      ("nbytes", 7)])
        self.final     = Signal()
        self.overflow  = Signal()
        self.out_bytes = Signal(len_width + 1)

        # # #

        self.submodules.reader = reader = LiteDRAMDMAReader(vport, fifo_depth=read_fifo_depth)

        # Descriptor registers -------------------------------------------------------------------
        host     = Signal()
        cap      = Signal(len_width)
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
            cap.eq(Mux(self.d_op == OP_COPY, self.d_length, self.d_cap)),
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

        # Destination side -----------------------------------------------------------------------
        first   = Signal()
        pend    = Signal()                          # DRAM flush word pending
        bprev   = Signal(dw)
        waddr   = Signal(vport.address_width)
        haddr   = Signal(haddr_width)
        line    = Signal(8 * HOST_LINE)
        lbytes  = Signal(7)
        wcnt    = Signal(max(1, (W - 1).bit_length()))
        ovf     = Signal()
        dropping = Signal()
        self.comb += [
            ovf.eq(b.valid & (self.out_bytes + b.nbytes > cap) | dropping),
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
            line.eq(0),
            lbytes.eq(0),
            wcnt.eq(0),
            self.final.eq(0),
            self.out_bytes.eq(0),
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
            h.data.eq(line | ((b.data & bmask) << Cat(Constant(0, log2_int(dw)), wcnt))),
            h.nbytes.eq(lbytes + b.nbytes),
            h.addr.eq(haddr),
            b.ready.eq(Mux(ovf, dropping, ~pend & Mux(host, ~emit | h.ready, w.ready))),
        ]

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
                bprev.eq(b.data),
                self.out_bytes.eq(self.out_bytes + b.nbytes),
                If(host,
                    If(emit,
                        line.eq(0), lbytes.eq(0), wcnt.eq(0),
                        haddr.eq(haddr + HOST_LINE),
                    ).Else(
                        line.eq(h.data), lbytes.eq(h.nbytes), wcnt.eq(wcnt + 1),
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


# Core ------------------------------------------------------------------------------------------


class DMA(LiteXModule):
    """DMA engine.

    ``rport`` / ``wport``: LiteDRAM native ports (modes "read"/"both" and "write"/"both",
    same power-of-two data width, 32..512 bits); connect two ports from
    ``soc.sdram.crossbar.get_port()``. ``compressor`` / ``decompressor``: optional stream
    transform modules (``sink`` / ``source`` of ``packed_layout(dw)``; the decompressor also
    has ``done``, pulsing once per page after its last input beat, and ``error``, nonzero =
    corrupt page, valid when ``done`` pulses: ``codec.PackedCodec`` adapts the KV codec
    cores), reset by the engine before each descriptor and when a job is
    abandoned (through ``ResetInserter``, or through the transform's own ``reset`` input if
    it has one: ``codec.CodecCDC``, a codec on its own clock); an op without its transform
    is an invalid descriptor. ``depth``: descriptor queue depth (= longest chain),
    ``cq_depth``: completion queue depth, ``timeout``: reset value of the watchdog limit in
    cycles (0 = none).

    Streams: ``sink`` (descriptors), ``completion``, ``host_source`` (host lines).
    Datapath signals (driven by ``add_csr()`` or a parent core): ``dram_base``, ``dram_size``,
    ``host_base``, ``host_size``, ``timeout``; status ``busy``, ``desc_level``,
    ``jobs_queued``, ``cq_level``.
    """

    def __init__(self, rport, wport, compressor=None, decompressor=None, depth=16,
                 cq_depth=16, tag_width=8, len_width=24, haddr_width=64, timeout=4096,
                 read_fifo_depth=16):
        for name, port, modes in (("rport", rport, ("read", "both")),
                                  ("wport", wport, ("write", "both"))):
            if not isinstance(port, LiteDRAMNativePort):
                raise ValueError("{} must be a LiteDRAMNativePort, got {!r}".format(name, port))
            if port.mode not in modes:
                raise ValueError("{} mode must be one of {}, got {!r}".format(name, modes, port.mode))
        dw = rport.data_width
        if dw & (dw - 1) or not 32 <= dw <= 512:
            raise ValueError("port data_width must be a power of two in 32..512, got {}".format(dw))
        if wport.data_width != dw or wport.address_width != rport.address_width:
            raise ValueError("rport and wport must have the same data and address widths")
        for name, v, lo in (("depth", depth, 2), ("cq_depth", cq_depth, 2),
                            ("tag_width", tag_width, 1), ("len_width", len_width, 7),
                            ("read_fifo_depth", read_fifo_depth, 2), ("timeout", timeout, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError("{} must be an int >= {}, got {!r}".format(name, lo, v))
        if len_width > 31:
            raise ValueError("len_width must be <= 31 (completion bytes are 32 bits)")
        if timeout >> 32:
            raise ValueError("timeout must fit in 32 bits")
        B = dw // 8
        sh = log2_int(B)
        paddr_width = rport.address_width + sh
        if haddr_width < paddr_width or haddr_width > 64:
            raise ValueError("haddr_width must be in {}..64, got {}".format(paddr_width, haddr_width))
        for name, x in (("compressor", compressor), ("decompressor", decompressor)):
            if x is not None and not (hasattr(x, "sink") and hasattr(x, "source")):
                raise ValueError("{} must have sink and source endpoints".format(name))
        if decompressor is not None and not (hasattr(decompressor, "error") and
                                             hasattr(decompressor, "done")):
            raise ValueError("decompressor must have error and done outputs")
        self.dw, self.paddr_width, self.haddr_width = dw, paddr_width, haddr_width
        self.rport, self.wport = rport, wport
        self.tag_width, self.len_width, self.depth = tag_width, len_width, depth

        dlayout = descriptor_layout(paddr_width, haddr_width, len_width, tag_width)
        self.sink        = sink = stream.Endpoint(dlayout)
        self.completion  = stream.Endpoint(completion_layout(tag_width))
        self.host_source = host_source = stream.Endpoint(host_line_layout(haddr_width, tag_width))

        self.dram_base = Signal(paddr_width)        # window for src and DRAM dst
        self.dram_size = Signal(paddr_width + 1)
        self.host_base = Signal(haddr_width)        # window for host dst
        self.host_size = Signal(haddr_width + 1)
        self.timeout   = Signal(32, reset=timeout)  # watchdog limit, cycles (0 = none)

        self.busy        = Signal()
        self.desc_level  = Signal(max=depth + 1)
        self.jobs_queued = Signal(max=depth + 1)
        self.cq_level    = Signal(max=cq_depth + 1)

        # CSR descriptor input (driven by add_csr()).
        self.csr_push  = Signal()
        self.csr_desc  = stream.Endpoint(dlayout)
        self.csr_dropped = Signal()                 # sticky: a CSR push found the queue full

        # # #

        cw = (depth).bit_length()

        # Descriptor queue and job queue ---------------------------------------------------------
        # Each descriptor is checked as it is queued; when a chain's last descriptor is queued,
        # a job entry (tag, status, count) is pushed: the engine only starts complete jobs.
        self.desc_fifo = dq = stream.SyncFIFO(dlayout, depth)
        self.job_fifo  = jq = stream.SyncFIFO([("tag", tag_width), ("status", STATUS_WIDTH),
                                               ("count", cw)], depth)
        self.comb += [self.desc_level.eq(dq.level), self.jobs_queued.eq(jq.level)]

        i = stream.Endpoint(dlayout)
        i_ready = Signal()
        self.comb += [
            If(self.csr_push,
                self.csr_desc.connect(i, omit={"valid", "ready"}),
                i.valid.eq(1),
            ).Else(
                sink.connect(i, omit={"ready"}),
                sink.ready.eq(i_ready),
            ),
        ]
        self.sync += If(self.csr_push & ~i_ready, self.csr_dropped.eq(1))

        span = Mux(i.op == OP_COPY, i.length, i.cap)
        invalid = Signal()
        fault = Signal()
        st = Signal(STATUS_WIDTH)
        self.comb += If(i.valid,    # (guarded: keeps the Migen simulation fast)
            invalid.eq((i.op == 3) |
                       ((i.op == OP_COMPRESS) & (compressor is None)) |
                       ((i.op == OP_DECOMPRESS) & (decompressor is None)) |
                       (i.length == 0) |
                       ((i.op != OP_COPY) & (i.cap == 0)) |
                       (i.host & (i.dst[:6] != 0))),
            fault.eq((i.src < self.dram_base) |
                     (i.src + i.length > self.dram_base + self.dram_size) |
                     Mux(i.host,
                         (i.dst < self.host_base) | (i.dst + span > self.host_base + self.host_size),
                         (i.dst < self.dram_base) | (i.dst + span > self.dram_base + self.dram_size))),
            st.eq(Mux(invalid, ST_INVALID, Mux(fault, ST_FAULT, ST_OK))),
        )
        ccount  = Signal(cw)            # descriptors of the current chain queued so far
        cstatus = Signal(STATUS_WIDTH)
        ctag    = Signal(tag_width)
        dropping = Signal()
        keep = Signal()
        self.comb += [
            dropping.eq(ccount == depth),
            keep.eq(ccount != depth),
            i_ready.eq((dropping | dq.sink.ready) & jq.sink.ready),
            dq.sink.valid.eq(i.valid & ~dropping & jq.sink.ready),
            i.connect(dq.sink, omit={"valid", "ready", "first", "last"}),
            jq.sink.valid.eq(i.valid & i.last & (dropping | dq.sink.ready)),
            jq.sink.tag.eq(Mux(ccount == 0, i.tag, ctag)),
            jq.sink.status.eq(Mux(cstatus != ST_OK, cstatus, Mux(dropping, ST_INVALID, st))),
            jq.sink.count.eq(ccount + keep),
        ]
        self.sync += If(i.valid & i_ready,
            If(i.last,
                ccount.eq(0),
                cstatus.eq(ST_OK),
            ).Else(
                ccount.eq(ccount + keep),
                If(ccount == 0, ctag.eq(i.tag)),
                cstatus.eq(jq.sink.status),
            )
        )

        # Read port: a virtual port for the LiteDRAM DMA reader, a registered command stage,
        # and a filter dropping read data still owed to an abandoned job --------------------
        vport = LiteDRAMNativePort("read", rport.address_width, dw)
        self.submodules.jp = jp = ResetInserter()(
            _JobPath(vport, paddr_width, haddr_width, len_width, read_fifo_depth))
        dp_rst = jp.reset

        self.submodules.rcmd = rcmd = stream.PipeValid([("addr", rport.address_width)])
        owed  = Signal(max=read_fifo_depth + 4)     # read words owed by the port
        stale = Signal(max=read_fifo_depth + 4)     # of which belong to abandoned jobs
        owed_next = Signal(max=read_fifo_depth + 4)
        vcmd_hs = Signal()
        rdat_hs = Signal()
        self.comb += [
            # no new reads until the data of abandoned reads is drained: bounds ``owed``
            rcmd.sink.valid.eq(vport.cmd.valid & (stale == 0)),
            rcmd.sink.addr.eq(vport.cmd.addr),
            vport.cmd.ready.eq(rcmd.sink.ready & (stale == 0)),
            rport.cmd.valid.eq(rcmd.source.valid),
            rport.cmd.we.eq(0),
            rport.cmd.addr.eq(rcmd.source.addr),
            rcmd.source.ready.eq(rport.cmd.ready),
            vcmd_hs.eq(vport.cmd.valid & vport.cmd.ready),
            rdat_hs.eq(rport.rdata.valid & rport.rdata.ready),
            owed_next.eq(owed + vcmd_hs - rdat_hs),
            vport.rdata.valid.eq(rport.rdata.valid & (stale == 0)),
            vport.rdata.data.eq(rport.rdata.data),
            rport.rdata.ready.eq((stale != 0) | vport.rdata.ready),
        ]
        self.sync += [
            owed.eq(owed_next),
            If(dp_rst,
                stale.eq(owed_next),
            ).Elif(rdat_hs & (stale != 0),
                stale.eq(stale - 1),
            ),
        ]

        # Write port: registered word stage, command + data FIFO (LiteDRAMDMAWriter with byte
        # enables: LiteDRAM's writer writes whole words only) -----------------------------------
        self.submodules.wbuf = wbuf = stream.PipeValid(
            [("addr", rport.address_width), ("data", dw), ("we", B)])
        self.submodules.wfifo = wfifo = stream.SyncFIFO([("data", dw), ("we", B)], read_fifo_depth)
        self.comb += [
            jp.w.connect(wbuf.sink),
            wport.cmd.valid.eq(wbuf.source.valid & wfifo.sink.ready),
            wport.cmd.we.eq(1),
            wport.cmd.addr.eq(wbuf.source.addr),
            wbuf.source.ready.eq(wport.cmd.ready & wfifo.sink.ready),
            wfifo.sink.valid.eq(wbuf.source.valid & wport.cmd.ready),
            wfifo.sink.data.eq(wbuf.source.data),
            wfifo.sink.we.eq(wbuf.source.we),
            wport.wdata.valid.eq(wfifo.source.valid),
            wport.wdata.data.eq(wfifo.source.data),
            wport.wdata.we.eq(wfifo.source.we),
            wfifo.source.ready.eq(wport.wdata.ready),
        ]
        if wport.mode == "both":
            self.comb += wport.rdata.ready.eq(1)

        # Host lines: registered stage carrying the job tag -------------------------------------
        # valid and ready both registered (a skid buffer): the host side's ready (on a board,
        # the bridge's output arbiter) does not reach the line packer in the same cycle. The
        # job completes only once the buffer is empty (outputs_idle), so the host still
        # sees every line before the job's completion.
        job_tag = Signal(tag_width)
        self.submodules.hbuf = hbuf = stream.Buffer(host_line_layout(haddr_width, tag_width),
                                                    pipe_valid=True, pipe_ready=True)
        self.comb += [
            jp.h.connect(hbuf.sink, omit={"tag"}),
            hbuf.sink.tag.eq(job_tag),
            hbuf.source.connect(host_source),
        ]
        outputs_idle = Signal()
        self.comb += outputs_idle.eq(~wbuf.source.valid & ~wfifo.source.valid & ~hbuf.source.valid)

        # Codec transforms -----------------------------------------------------------------------
        xf_rst = Signal()
        a, b = jp.a_source, jp.b_sink
        xfs = {OP_COMPRESS: compressor, OP_DECOMPRESS: decompressor}
        routes = [If(jp.op == OP_COPY, a.connect(b))]
        self.xfs = []
        for op, xf in xfs.items():
            if xf is None:
                continue
            if not hasattr(xf, "reset"):            # codec.CodecCDC brings its own
                xf = ResetInserter()(xf)
            self.submodules += xf
            self.comb += xf.reset.eq(xf_rst)
            self.xfs.append(xf)
            xfirst = Signal()
            self.sync += If(jp.start, xfirst.eq(1)).Elif(a.valid & a.ready, xfirst.eq(0))
            routes.append(If(jp.op == op, a.connect(xf.sink), xf.sink.first.eq(xfirst),
                             xf.source.connect(b)))
        self.comb += routes
        # Decompressor verdict: ``error`` (nonzero = corrupt) is valid when ``done`` pulses,
        # once per page after its last input beat; a decompress descriptor completes only
        # after it (its output may be complete before the CRC is checked).
        corrupt = Signal()
        verdict = Signal(reset=1)
        if decompressor is not None:
            xdone = Signal()
            xerr = Signal()
            self.sync += If(jp.start | dp_rst,
                xdone.eq(0), xerr.eq(0),
            ).Elif(decompressor.done,
                xdone.eq(1),
                If(decompressor.error != 0, xerr.eq(1)),
            )
            self.comb += [
                corrupt.eq((jp.op == OP_DECOMPRESS) & xerr),
                verdict.eq((jp.op != OP_DECOMPRESS) | xdone),
            ]

        # Watchdog -------------------------------------------------------------------------------
        progress = Signal()
        wd = Signal(32)
        running = Signal()
        hs = lambda ep: ep.valid & ep.ready
        prog_terms = [hs(rport.cmd), hs(rport.rdata), hs(wport.cmd), hs(wport.wdata),
                      hs(host_source), hs(a), hs(b)]
        self.sync += progress.eq(Cat(*prog_terms) != 0)     # registered: one cycle late
        self.sync += If(~running | progress, wd.eq(0)).Else(wd.eq(wd + 1))
        expired = Signal()
        self.comb += expired.eq((self.timeout != 0) & (wd >= self.timeout))

        # Engine ---------------------------------------------------------------------------------
        self.submodules.cq = cq = stream.SyncFIFO(completion_layout(tag_width), cq_depth)
        self.comb += [cq.source.connect(self.completion), self.cq_level.eq(cq.level)]
        left      = Signal(cw)
        job_st    = Signal(STATUS_WIDTH)
        job_bytes = Signal(32)

        self.fsm = fsm = FSM(reset_state="IDLE")
        self.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        dq_out = dq.source
        fsm.act("IDLE",
            jq.source.ready.eq(1),
            If(jq.source.valid,
                NextValue(job_tag, jq.source.tag),
                NextValue(job_st, jq.source.status),
                NextValue(left, jq.source.count),
                NextValue(job_bytes, 0),
                If(jq.source.status == ST_OK,
                    NextState("NEXT"),
                ).Else(
                    NextState("SKIP"),
                )
            )
        )
        fsm.act("NEXT",
            If(left == 0,
                NextState("COMPLETE"),
            ).Else(
                dq_out.ready.eq(1),
                jp.start.eq(1),
                xf_rst.eq(1),
                NextValue(left, left - 1),
                NextState("RUN"),
            )
        )
        self.comb += [
            jp.d_op.eq(dq_out.op), jp.d_host.eq(dq_out.host), jp.d_src.eq(dq_out.src),
            jp.d_dst.eq(dq_out.dst), jp.d_length.eq(dq_out.length), jp.d_cap.eq(dq_out.cap),
        ]
        fsm.act("RUN",
            running.eq(1),
            If(corrupt,
                NextValue(job_st, ST_CORRUPT), NextState("ABORT"),
            ).Elif(jp.overflow & verdict,
                NextValue(job_st, ST_OVERFLOW), NextState("ABORT"),
            ).Elif(expired,
                NextValue(job_st, ST_TIMEOUT), NextState("ABORT"),
            ).Elif(jp.final & outputs_idle & verdict,
                NextValue(job_bytes, job_bytes + jp.out_bytes),
                NextState("NEXT"),
            )
        )
        fsm.act("ABORT",
            dp_rst.eq(1),
            xf_rst.eq(1),
            NextState("SKIP"),
        )
        fsm.act("SKIP",
            If(left == 0,
                NextState("COMPLETE"),
            ).Else(
                dq_out.ready.eq(1),
                NextValue(left, left - 1),
            )
        )
        fsm.act("COMPLETE",
            cq.sink.valid.eq(1),
            cq.sink.tag.eq(job_tag),
            cq.sink.status.eq(job_st),
            cq.sink.bytes.eq(job_bytes),
            If(cq.sink.ready, NextState("IDLE")),
        )

    # Control and status registers --------------------------------------------------------------

    def add_csr(self):
        """Descriptor push, completion pop, windows and watchdog as LiteX CSRs.

        After this call the ``completion`` stream is consumed by the CSRs (do not connect it);
        ``sink`` still works, a CSR push has priority over it in the same cycle.
        """
        tw, lw = self.tag_width, self.len_width
        self._src = CSRStorage(self.paddr_width, description="Descriptor: DRAM source byte address.")
        self._dst = CSRStorage(self.haddr_width, description=(
            "Descriptor: destination byte address (DRAM, or host if ``ctrl.host``)."))
        self._length = CSRStorage(lw, description="Descriptor: source length in bytes (>= 1).")
        self._cap = CSRStorage(lw, description=(
            "Descriptor: destination capacity in bytes for compress/decompress (copy: unused)."))
        self._push = CSRStorage(fields=[
            CSRField("op", size=OP_WIDTH, description="0 copy, 1 compress, 2 decompress."),
            CSRField("host", size=1, description="Destination is the host (64-byte aligned)."),
            CSRField("last", size=1, description="Last descriptor of the job."),
            CSRField("tag", size=tw, offset=8, description="Job tag (first descriptor's counts)."),
        ], description=("Writing this register queues the descriptor made of ``src``, ``dst``, "
                        "``length``, ``cap`` and these fields. Check ``status.desc_level`` "
                        "first: a push into a full queue is dropped (``status.dropped``)."))
        cw = (self.depth).bit_length()
        self._status = CSRStatus(fields=[
            CSRField("desc_level", size=cw, description="Descriptors queued."),
            CSRField("jobs", size=cw, offset=8, description="Complete jobs queued, not started."),
            CSRField("cq_level", size=8, offset=16, description="Completions waiting."),
            CSRField("busy", size=1, offset=24, description="A job is being executed."),
            CSRField("dropped", size=1, offset=25, description="Sticky: a CSR push was dropped."),
        ])
        self._completion = CSRStatus(fields=[
            CSRField("valid", size=1, description="A completion is available."),
            CSRField("status", size=STATUS_WIDTH, offset=4, description=(
                "0 ok, 1 fault, 2 corrupt, 3 timeout, 4 overflow, 5 invalid.")),
            CSRField("tag", size=tw, offset=8, description="Tag of the job."),
        ], description="Head of the completion queue.")
        self._completion_bytes = CSRStatus(32, description="Head completion: bytes written.")
        self._pop = CSRStorage(fields=[CSRField("pop", size=1, pulse=True,
            description="Write 1: drop the head completion.")])
        self._dram_base = CSRStorage(self.paddr_width, description="DRAM window start (src, DRAM dst).")
        self._dram_size = CSRStorage(self.paddr_width + 1, description="DRAM window size in bytes.")
        self._host_base = CSRStorage(self.haddr_width, description="Host window start (host dst).")
        self._host_size = CSRStorage(self.haddr_width + 1, description="Host window size in bytes.")
        self._timeout = CSRStorage(32, reset=self.timeout.reset.value, description=(
            "Watchdog: cycles without progress before a job is abandoned (0 = never)."))

        c = self.completion
        self.comb += [
            self.csr_push.eq(self._push.re),
            self.csr_desc.op.eq(self._push.fields.op),
            self.csr_desc.host.eq(self._push.fields.host),
            self.csr_desc.last.eq(self._push.fields.last),
            self.csr_desc.tag.eq(self._push.fields.tag),
            self.csr_desc.src.eq(self._src.storage),
            self.csr_desc.dst.eq(self._dst.storage),
            self.csr_desc.length.eq(self._length.storage),
            self.csr_desc.cap.eq(self._cap.storage),
            self._status.fields.desc_level.eq(self.desc_level),
            self._status.fields.jobs.eq(self.jobs_queued),
            self._status.fields.cq_level.eq(self.cq_level),
            self._status.fields.busy.eq(self.busy),
            self._status.fields.dropped.eq(self.csr_dropped),
            self._completion.fields.valid.eq(c.valid),
            self._completion.fields.status.eq(c.status),
            self._completion.fields.tag.eq(c.tag),
            self._completion_bytes.status.eq(c.bytes),
            c.ready.eq(self._pop.fields.pop),
            self.dram_base.eq(self._dram_base.storage),
            self.dram_size.eq(self._dram_size.storage),
            self.host_base.eq(self._host_base.storage),
            self.host_size.eq(self._host_size.storage),
            self.timeout.eq(self._timeout.storage),
        ]
