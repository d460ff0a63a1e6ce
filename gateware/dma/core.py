"""DMA engine: descriptor queue, byte-granular copy / codec datapath, completion queue.

The behaviour is specified by ``model.DMAModel``; this core matches it byte for byte
(completions in job order, statuses, every DRAM byte, every host line). Interface,
descriptor format, registers and timing: README.md beside this file.
"""

from migen import (Signal, If, Cat, Mux, FSM, NextState,
                   NextValue, ResetInserter, ResetSignal, log2_int)
from migen.fhdl.decorators import ModuleTransformer
from migen.fhdl.tools import list_targets
from litex.gen import LiteXModule
from litex.soc.interconnect import stream
from litex.soc.interconnect.csr import CSRStorage, CSRStatus, CSRField

from litedram.common import LiteDRAMNativePort

from gateware.common import (OP_COPY, OP_COMPRESS, OP_DECOMPRESS, OP_WIDTH, ST_OK, ST_FAULT,
                             ST_CORRUPT, ST_TIMEOUT, ST_OVERFLOW, ST_INVALID, STATUS_WIDTH)
from .jobpath import JobPath
from .layouts import descriptor_layout, completion_layout, host_line_layout

# Core ------------------------------------------------------------------------------------------


class SoleReset(ModuleTransformer):
    """Resets a module's ``sys`` registers by ``rst`` alone, not by ``rst`` OR the system reset
    (what ``ResetInserter`` gives): a register's synchronous reset is then a flip-flop's output,
    with no LUT between two high-fan-out nets. ``rst`` must include the system reset."""

    def __init__(self, rst):
        self.rst = rst

    def transform_fragment(self, i, f):
        sl = f.sync.get("sys", [])
        targets = [t for t in sorted(list_targets(sl), key=lambda x: x.duid) if not t.reset_less]
        for t in targets:
            t.reset_less = True
        f.sync["sys"] = sl + [If(self.rst, *[t.eq(t.reset) for t in targets])]


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
        dw, paddr_width = _check_args(rport, wport, compressor, decompressor, depth, cq_depth,
                                      tag_width, len_width, haddr_width, timeout,
                                      read_fifo_depth)
        self.dw, self.paddr_width, self.haddr_width = dw, paddr_width, haddr_width
        self.rport, self.wport = rport, wport
        self.tag_width, self.len_width, self.depth = tag_width, len_width, depth

        dlayout = descriptor_layout(paddr_width, haddr_width, len_width, tag_width)
        self.sink        = stream.Endpoint(dlayout)
        self.completion  = stream.Endpoint(completion_layout(tag_width))
        self.host_source = stream.Endpoint(host_line_layout(haddr_width, tag_width))

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
        dq, jq = self._intake(dlayout, cw, compressor, decompressor)
        jp = self._read_path(read_fifo_depth)
        outputs_idle, job_tag = self._outputs(jp, read_fifo_depth)
        xf_rst, corrupt, verdict = self._transforms(jp, compressor, decompressor)
        running, expired = self._watchdog(jp)
        self._engine(dq, jq, jp, cw, cq_depth, job_tag, xf_rst, running, expired, corrupt,
                     verdict, outputs_idle)

    def _intake(self, dlayout, cw, compressor, decompressor):
        """Descriptor input (``sink`` or a CSR push), checks, descriptor and job queues."""
        depth, tag_width, sink = self.depth, self.tag_width, self.sink
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
        # The windows' ends are registers (they change only when software rewrites a window,
        # long before it queues descriptors into it): the queue-time check is one sum and
        # compare per bound, not two sums, on its way into the descriptor FIFO (64-bit host
        # addresses: it was the ECPIX-5's routed critical path).
        dram_end = Signal(len(self.dram_size) + 1)
        host_end = Signal(len(self.host_size) + 1)
        self.sync += [dram_end.eq(self.dram_base + self.dram_size),
                      host_end.eq(self.host_base + self.host_size)]
        self.comb += If(i.valid,    # (guarded: keeps the Migen simulation fast)
            invalid.eq((i.op == 3) |
                       ((i.op == OP_COMPRESS) & (compressor is None)) |
                       ((i.op == OP_DECOMPRESS) & (decompressor is None)) |
                       (i.length == 0) |
                       ((i.op != OP_COPY) & (i.cap == 0)) |
                       (i.host & (i.dst[:6] != 0))),
            fault.eq((i.src < self.dram_base) |
                     (i.src + i.length > dram_end) |
                     Mux(i.host,
                         (i.dst < self.host_base) | (i.dst + span > host_end),
                         (i.dst < self.dram_base) | (i.dst + span > dram_end))),
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
        return dq, jq

    def _read_path(self, read_fifo_depth):
        """The job path and its DRAM read port; returns the job path."""
        rport, dw = self.rport, self.dw
        paddr_width, haddr_width, len_width = self.paddr_width, self.haddr_width, self.len_width
        # Read port: a virtual port for the LiteDRAM DMA reader, a registered command stage,
        # and a filter dropping read data still owed to an abandoned job --------------------
        vport = LiteDRAMNativePort("read", rport.address_width, dw)
        # The job path is reset by one register, set by the system reset and in the engine's
        # ABORT cycle (``jp.reset``, the abort, is what the engine drives): its flip-flops'
        # reset pins then hang off that register, not off a LUT ORing two high-fan-out nets
        # (the ECPIX-5's routed critical path).
        jp_rst = Signal(reset=1)
        jp = JobPath(vport, paddr_width, haddr_width, len_width, read_fifo_depth)
        jp.reset = dp_rst = Signal()
        self.submodules.jp = SoleReset(jp_rst)(jp)
        self.jp_rst_next = Signal()
        self.sync += jp_rst.eq(ResetSignal(allow_reset_less=True) | self.jp_rst_next)

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
        return jp

    def _outputs(self, jp, read_fifo_depth):
        """DRAM write port and host-line stage; returns (outputs idle, the job tag register)."""
        rport, wport, dw = self.rport, self.wport, self.dw
        B = dw // 8
        haddr_width, tag_width, host_source = self.haddr_width, self.tag_width, self.host_source
        # Write port: a two-entry word FIFO, command + data FIFO (LiteDRAMDMAWriter with byte
        # enables: LiteDRAM's writer writes whole words only) -----------------------------------
        # The word FIFO's ready is its level, a register: the DRAM port's command ready (on
        # the ECPIX-5, through LiteDRAM's port converter) stops at its pointers and does not
        # reach the destination packer (a skid buffer's payload enable follows its output
        # ready; this path was the ECPIX-5's longest).
        self.submodules.wbuf = wbuf = stream.SyncFIFO(
            [("addr", rport.address_width), ("data", dw), ("we", B)], 2)
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

        # Host lines: a two-entry FIFO carrying the job tag ------------------------------------
        # The host side's ready (on a board, the bridge's output arbiter) reaches only the
        # FIFO's pointers, not the packer and not the line's 600-odd register enables (a skid
        # buffer's are driven by its output ready). The job completes only once the FIFO is
        # empty (outputs_idle), so the host still sees every line before the completion.
        job_tag = Signal(tag_width)
        self.submodules.hbuf = hbuf = stream.SyncFIFO(host_line_layout(haddr_width, tag_width),
                                                      2)
        self.comb += [
            jp.h.connect(hbuf.sink, omit={"tag"}),
            hbuf.sink.tag.eq(job_tag),
            hbuf.source.connect(host_source),
        ]
        outputs_idle = Signal()
        self.comb += outputs_idle.eq(~wbuf.source.valid & ~wfifo.source.valid & ~hbuf.source.valid)
        return outputs_idle, job_tag

    def _transforms(self, jp, compressor, decompressor):
        """Routes the packed stream through the op's transform; the decompressor's verdict."""
        dp_rst = jp.reset
        # Codec transforms -----------------------------------------------------------------------
        xf_rst = Signal()
        # The codecs take the reset a cycle late, from a register: it reaches every
        # flip-flop of a codec core (some ten thousand), and the engine's decision was on
        # that net's path. In that cycle a codec is idle or unrouted: a new job's first
        # input comes several cycles after its start (DRAM read latency), and after an
        # abort the job path's op is reset, which routes the copy slice, not a codec. The
        # copy slice, small, is reset in the cycle itself: it is routed after an abort.
        # (A codec is not given ``SoleReset``: one flip-flop driving every codec register's
        # reset made the ECPIX-5's router diverge; see docs/bitstreams.md.)
        xf_rst_q = Signal()
        self.sync += xf_rst_q.eq(xf_rst)
        a, b = jp.a_source, jp.b_sink
        xfs = {OP_COMPRESS: compressor, OP_DECOMPRESS: decompressor}
        # The routed output enters the destination side through a two-entry FIFO: the route
        # multiplexer (and a codec's output) stop at its write port, and the destination
        # side's ready (overflow test, line packer, write FIFO levels) reaches only its
        # pointers. A copy goes straight into it, so the source aligner and the destination
        # packer are never one combinational path either. It is small and reset in the cycle
        # itself (start or abort), as the route after an abort is the copy.
        bfifo = ResetInserter()(stream.SyncFIFO(b.description, 2))
        self.submodules.dst_fifo = bfifo
        self.comb += [bfifo.reset.eq(xf_rst), bfifo.source.connect(b)]
        routes = [If(jp.op == OP_COPY, a.connect(bfifo.sink))]
        self.xfs = []
        for op, xf in xfs.items():
            if xf is None:
                continue
            if not hasattr(xf, "reset"):            # codec.CodecCDC brings its own
                xf = ResetInserter()(xf)
            self.submodules += xf
            self.comb += xf.reset.eq(xf_rst_q)
            self.xfs.append(xf)
            xfirst = Signal()
            self.sync += If(jp.start, xfirst.eq(1)).Elif(a.valid & a.ready, xfirst.eq(0))
            routes.append(If(jp.op == op, a.connect(xf.sink), xf.sink.first.eq(xfirst),
                             xf.source.connect(bfifo.sink)))
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
        return xf_rst, corrupt, verdict

    def _watchdog(self, jp):
        """Cycles without progress while a descriptor runs; returns (running, expired)."""
        rport, wport = self.rport, self.wport
        a, b = jp.a_source, jp.b_sink
        # Watchdog -------------------------------------------------------------------------------
        progress = Signal()
        wd = Signal(32)
        running = Signal()
        hs = lambda ep: ep.valid & ep.ready
        # (host lines count as they enter the line FIFO: the host side's ready stays off
        # this register's path; a line waiting to leave keeps the FIFO full, so a stalled
        # host still stops all progress)
        prog_terms = [hs(rport.cmd), hs(rport.rdata), hs(wport.cmd), hs(wport.wdata),
                      hs(self.hbuf.sink), hs(a), hs(b)]
        self.sync += progress.eq(Cat(*prog_terms) != 0)     # registered: one cycle late
        self.sync += If(~running | progress, wd.eq(0)).Else(wd.eq(wd + 1))
        expired = Signal()
        self.comb += expired.eq((self.timeout != 0) & (wd >= self.timeout))
        return running, expired

    def _engine(self, dq, jq, jp, cw, cq_depth, job_tag, xf_rst, running, expired, corrupt,
                verdict, outputs_idle):
        """The job FSM: start descriptors, complete or abandon jobs, push completions."""
        tag_width, dp_rst = self.tag_width, jp.reset
        # Engine ---------------------------------------------------------------------------------
        self.submodules.cq = cq = stream.SyncFIFO(completion_layout(tag_width), cq_depth)
        self.comb += [cq.source.connect(self.completion), self.cq_level.eq(cq.level)]
        left      = Signal(cw)
        job_st    = Signal(STATUS_WIDTH)
        job_bytes = Signal(32)

        self.fsm = fsm = FSM(reset_state="IDLE")
        self.comb += [
            self.busy.eq(~fsm.ongoing("IDLE")),
            self.jp_rst_next.eq(fsm.before_entering("ABORT")),
        ]
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


def _check_args(rport, wport, compressor, decompressor, depth, cq_depth, tag_width, len_width,
                haddr_width, timeout, read_fifo_depth):
    """Raise ValueError naming the first bad argument of ``DMA``; returns (dw, paddr_width)."""
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
    return dw, paddr_width
