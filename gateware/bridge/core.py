"""BridgeEndpoint: the device side of the emulated CXL.mem link.

Requests (``sink``) enter an input queue whose depth is the number of credits the host
holds; they are served in order, one response each on ``source``. Device-initiated host
writes (``host_write``, from the DMA engine) share ``source`` with the responses, granted
round-robin per message. Config accesses go
out on a 32-bit Wishbone master (``bus``) into the SoC interconnect, memory lines on a
second one (``mem_bus``) to device memory; every address is checked against the configured
windows first, so a bad request never reaches either bus. Behaviour is specified by :class:`gateware.bridge.model.BridgeModel`.
"""

from migen import FSM, Array, If, NextState, NextValue, Signal, Cat, Mux, Module

from litex.soc.interconnect import stream, wishbone
from litex.soc.interconnect.csr import AutoCSR, CSRStatus

from gateware.arbiter import RoundRobin
from gateware.bus import WishboneSlice
from gateware.bridge.protocol import (DATA_BITS, LINE, Op, Status, host_write_layout,
                                      message_layout, page_request_layout,
                                      page_response_layout)

WORDS = LINE // 4  # 32-bit bus words per line


def _in_windows(addr, length, windows):
    """Combinational: [addr, addr + length) lies inside one of ``windows``."""
    if not windows:
        return 0
    ok = 0
    for w in windows:
        ok = ok | ((addr >= w.base) & (addr <= w.base + w.size - length))
    return ok


class BridgeEndpoint(Module, AutoCSR):
    def __init__(self, config, with_pages=False):
        """``with_pages``: forward PageRd to a page engine on ``page_req``/``page_rsp``;
        without one, PageRd is answered UNSUPPORTED (so it can never wait forever)."""
        self.config = config
        self.sink   = sink   = stream.Endpoint(message_layout)  # host -> device requests
        self.source = stream.Endpoint(message_layout)  # device -> host messages
        self.host_write = stream.Endpoint(host_write_layout)  # DMA deposits into host
        self.page_req = preq = stream.Endpoint(page_request_layout)  # PageRd -> engine
        self.page_rsp = stream.Endpoint(page_response_layout)  # engine -> Cmp
        rsp = stream.Endpoint(message_layout)  # responses, before the output arbiter
        # Config accesses go to the SoC bus; memory lines to device memory directly (in the
        # SoC: a LiteDRAM native port, bypassing the CPU's L2 cache, so the ATU and DMA
        # engines, which read DRAM directly, see what the host wrote).
        self.bus     = wishbone.Interface(data_width=32, adr_width=30)
        self.mem_bus = wishbone.Interface(data_width=32, adr_width=30)

        # Input queue: one entry per host credit.
        self.submodules.queue = queue = stream.SyncFIFO(message_layout, config.credits,
                                                        buffered=True)
        self.comb += sink.connect(queue.sink)
        req = queue.source

        # Statistics.
        self.requests = Signal(32)
        self.errors   = Signal(32)

        # Latched request and response state.
        opcode = Signal(8)
        tag    = Signal(8)
        addr   = Signal(64)
        value  = Signal(32)
        line   = Signal(DATA_BITS)  # write data shifted out / read data shifted in
        rsp_op = Signal(8)
        status = Signal(8)
        count  = Signal(max=WORDS)
        xlate  = Signal()  # the forwarded request is an XLATE (translate only)

        mem_ok_align = addr[:6] == 0
        cfg_ok_align = addr[:2] == 0
        mem_in_win = _in_windows(addr, LINE, config.mem_windows)
        cfg_in_win = _in_windows(addr, 4, config.cfg_windows)

        self.submodules.fsm = fsm = FSM(reset_state="IDLE")
        fsm.act("IDLE",
            req.ready.eq(1),
            If(req.valid,
                NextValue(opcode, req.opcode),
                NextValue(tag, req.tag),
                NextValue(addr, req.addr),
                NextValue(value, req.value),
                NextValue(line, req.data),
                NextValue(status, Status.OK),
                NextValue(count, 0),
                NextValue(self.requests, self.requests + 1),
                NextState("DECODE"),
            )
        )

        def reject(op, st):
            return [NextValue(rsp_op, op), NextValue(status, st), NextValue(line, 0),
                    NextValue(value, 0), NextState("RESPOND")]

        fsm.act("DECODE",
            If(opcode == Op.MEM_RD,
                If(~mem_ok_align, *reject(Op.MEM_DATA, Status.MISALIGNED)
                ).Elif(~mem_in_win, *reject(Op.MEM_DATA, Status.OUT_OF_RANGE)
                ).Else(NextValue(rsp_op, Op.MEM_DATA), NextValue(value, 0), NextState("MEM_RD"))
            ).Elif(opcode == Op.MEM_WR,
                If(~mem_ok_align, *reject(Op.CMP, Status.MISALIGNED)
                ).Elif(~mem_in_win, *reject(Op.CMP, Status.OUT_OF_RANGE)
                ).Else(NextValue(rsp_op, Op.CMP), NextValue(value, 0), NextState("MEM_WR"))
            ).Elif(opcode == Op.CFG_RD,
                If(~cfg_ok_align, *reject(Op.CFG_DATA, Status.MISALIGNED)
                ).Elif(~cfg_in_win, *reject(Op.CFG_DATA, Status.OUT_OF_RANGE)
                ).Else(NextValue(rsp_op, Op.CFG_DATA), NextValue(line, 0), NextState("CFG_RD"))
            ).Elif(opcode == Op.CFG_WR,
                If(~cfg_ok_align, *reject(Op.CMP, Status.MISALIGNED)
                ).Elif(~cfg_in_win, *reject(Op.CMP, Status.OUT_OF_RANGE)
                ).Else(NextValue(rsp_op, Op.CMP), NextValue(line, 0), NextState("CFG_WR"))
            ).Elif((opcode == Op.PAGE_RD) & with_pages,
                NextValue(xlate, 0),
                If(~mem_ok_align, *reject(Op.CMP, Status.MISALIGNED)
                ).Else(NextState("PAGE_FWD"))
            ).Elif((opcode == Op.XLATE) & with_pages,
                NextValue(xlate, 1),
                NextState("PAGE_FWD"),
            ).Else(*reject(Op.CMP, Status.UNSUPPORTED))
        )
        # A PageRd / XLATE is handed to the page engine; its answer comes back on page_rsp.
        fsm.act("PAGE_FWD",
            preq.valid.eq(1),
            preq.tag.eq(tag),
            preq.vpn.eq(value),
            preq.addr.eq(addr),
            preq.xlate.eq(xlate),
            If(preq.ready, NextState("IDLE")),
        )

        self._bus_states(fsm, addr, count, line, value, status)
        fsm.act("RESPOND",
            rsp.valid.eq(1),
            rsp.opcode.eq(rsp_op),
            rsp.tag.eq(tag),
            rsp.status.eq(status),
            rsp.addr.eq(addr),
            rsp.value.eq(value),
            rsp.data.eq(Mux(rsp_op == Op.MEM_DATA, line, 0)),
            If(rsp.ready, NextState("IDLE"))
        )

        self._output_arbiter(rsp, with_pages)

    def _bus_states(self, fsm, addr, count, line, value, status):
        """The FSM states that move a line over ``mem_bus`` or a word over ``bus``."""
        # Config accesses leave through a register slice: the FSM drives ``cbus``, and the
        # SoC interconnect sees only registers (one cycle each way; config accesses are
        # off the page path). The FSM's state decode, the interconnect's arbiter and
        # decoder, a slave's answer and the FSM's next state were one path before.
        cbus = wishbone.Interface(data_width=32, adr_width=30)
        self.submodules.bus_slice = WishboneSlice(cbus, self.bus)
        bus, mbus = cbus, self.mem_bus
        word_adr = addr[2:32] + count
        # The memory port's answer reaches the line a cycle late: ack and err (out of
        # LiteDRAM's Wishbone adapter, combinational from the port) advance only the word
        # count and the state; the read word is registered (`got`) and shifted into the line
        # the cycle after, and a written word is chosen from the line by the count instead of
        # shifted out. ack's fan-out into the 512 line flip-flops was the ULX3S's routed
        # critical path; the line costs one cycle (MEM_RD_END), not one a word.
        got, got_err, got_dat = Signal(), Signal(), Signal(32)
        self.sync += [got.eq(fsm.ongoing("MEM_RD") & (mbus.ack | mbus.err)),
                      got_err.eq(mbus.err), got_dat.eq(mbus.dat_r)]
        capture = If(got,
            NextValue(line, Cat(line[32:], Mux(got_err, 0, got_dat))),
            If(got_err, NextValue(status, Status.BUS_ERROR)),
        )
        fsm.act("MEM_RD",
            mbus.cyc.eq(1), mbus.stb.eq(1), mbus.we.eq(0), mbus.sel.eq(0xF),
            mbus.adr.eq(word_adr),
            capture,
            If(mbus.ack | mbus.err,
                NextValue(count, count + 1),
                If(count == WORDS - 1, NextState("MEM_RD_END")),
            )
        )
        fsm.act("MEM_RD_END", capture, NextState("RESPOND"))
        fsm.act("MEM_WR",
            mbus.cyc.eq(1), mbus.stb.eq(1), mbus.we.eq(1), mbus.sel.eq(0xF),
            mbus.adr.eq(word_adr),
            mbus.dat_w.eq(Array([line[32 * k: 32 * (k + 1)] for k in range(WORDS)])[count]),
            If(mbus.ack | mbus.err,
                If(mbus.err, NextValue(status, Status.BUS_ERROR)),
                NextValue(count, count + 1),
                If(count == WORDS - 1, NextState("RESPOND")),
            )
        )
        fsm.act("CFG_RD",
            bus.cyc.eq(1), bus.stb.eq(1), bus.we.eq(0), bus.sel.eq(0xF),
            bus.adr.eq(addr[2:32]),
            If(bus.ack | bus.err,
                NextValue(value, Mux(bus.err, 0, bus.dat_r)),
                If(bus.err, NextValue(status, Status.BUS_ERROR)),
                NextState("RESPOND"),
            )
        )
        fsm.act("CFG_WR",
            bus.cyc.eq(1), bus.stb.eq(1), bus.we.eq(1), bus.sel.eq(0xF),
            bus.adr.eq(addr[2:32]), bus.dat_w.eq(value),
            If(bus.ack | bus.err,
                If(bus.err, NextValue(status, Status.BUS_ERROR)),
                NextValue(value, 0),
                NextState("RESPOND"),
            )
        )

    def _output_arbiter(self, rsp, with_pages):
        """Responses, page completions and host writes onto ``source``."""
        preq, prsp, hw, source = self.page_req, self.page_rsp, self.host_write, self.source
        # Output arbiter: bridge responses, page completions and host writes, round-robin per
        # message. A page's HostWr lines are all accepted before the engine answers, so the
        # host always sees the data before the page's Cmp.
        if not with_pages:
            self.comb += [preq.valid.eq(0), prsp.ready.eq(0)]
        page_cmp = stream.Endpoint(message_layout)
        host_wr = stream.Endpoint(message_layout)
        self.comb += [
            page_cmp.valid.eq(prsp.valid),
            page_cmp.opcode.eq(Op.CMP),
            page_cmp.tag.eq(prsp.tag),
            page_cmp.status.eq(prsp.status),
            page_cmp.value.eq(prsp.value),
            page_cmp.addr.eq(prsp.addr),
            prsp.ready.eq(page_cmp.ready),
            host_wr.valid.eq(hw.valid),
            host_wr.opcode.eq(Op.HOST_WR),
            host_wr.tag.eq(hw.tag),
            host_wr.addr.eq(hw.addr),
            host_wr.value.eq(hw.nbytes),
            host_wr.data.eq(hw.data),
            hw.ready.eq(host_wr.ready),
        ]
        self.submodules.arbiter = arb = RoundRobin(message_layout, 3)
        # A register slice after the arbiter (the one point where the message order is
        # fixed): the link's ready and the arbiter's grant no longer run back into the DMA
        # engines' host-line datapaths.
        self.submodules.out_slice = oslice = stream.Buffer(message_layout, pipe_valid=True,
                                                           pipe_ready=True)
        # Responses and page completions also enter the arbiter through two-entry FIFOs, so
        # that its grant (which host lines wait on) depends on registers only; the grant
        # reaches the FIFOs' pointers, not their wide data registers. Delaying them is safe:
        # a page's Cmp may only ever come later than its host lines, never earlier; host
        # lines themselves enter unsliced for that reason.
        self.submodules.rsp_slice = rslice = stream.SyncFIFO(message_layout, 2)
        self.submodules.cmp_slice = cslice = stream.SyncFIFO(message_layout, 2)
        self.comb += [
            rsp.connect(rslice.sink),
            rslice.source.connect(arb.sinks[0]),
            page_cmp.connect(cslice.sink),
            cslice.source.connect(arb.sinks[1]),
            host_wr.connect(arb.sinks[2]),
            arb.source.connect(oslice.sink),
            oslice.source.connect(source, omit={"first", "last"}),
            source.first.eq(1),
            source.last.eq(1),
        ]
        self.sync += If(source.valid & source.ready & (source.opcode != Op.HOST_WR) &
                        (source.status != Status.OK), self.errors.eq(self.errors + 1))

    def add_csr(self):
        """Request/error counters and the credit count, readable by firmware and host."""
        self._credits  = CSRStatus(8, reset=self.config.credits,
                                   description="Requests the host may have outstanding.")
        self._requests = CSRStatus(32, description="Requests received.")
        self._errors   = CSRStatus(32, description="Responses sent with a non-OK status.")
        self.comb += [self._requests.status.eq(self.requests),
                      self._errors.status.eq(self.errors)]

