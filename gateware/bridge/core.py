"""BridgeEndpoint: the device side of the emulated CXL.mem link.

Requests (``sink``) enter an input queue whose depth is the number of credits the host
holds; they are served in order, one response each on ``source``. Device-initiated host
writes (``host_write``, from the DMA engine) share ``source`` with the responses, granted
round-robin per message. Memory and config
accesses go out on a 32-bit Wishbone master (``bus``) into the SoC interconnect; every
address is checked against the configured windows first, so a bad request never reaches
the bus. Behaviour is specified by :class:`gateware.bridge.model.BridgeModel`.
"""

from migen import FSM, If, NextState, NextValue, Signal, Cat, Mux, Module, Replicate

from litex.soc.interconnect import stream, wishbone
from litex.soc.interconnect.csr import AutoCSR, CSRStatus

from gateware.bridge.protocol import (DATA_BITS, LINE, Op, Status, host_write_layout,
                                      message_layout)

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
    def __init__(self, config):
        self.config = config
        self.sink   = sink   = stream.Endpoint(message_layout)  # host -> device requests
        self.source = source = stream.Endpoint(message_layout)  # device -> host messages
        self.host_write = hw = stream.Endpoint(host_write_layout)  # DMA deposits into host
        rsp = stream.Endpoint(message_layout)  # responses, before the output arbiter
        self.bus    = bus    = wishbone.Interface(data_width=32, adr_width=30)

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
            ).Else(*reject(Op.CMP, Status.UNSUPPORTED))
        )

        word_adr = addr[2:32] + count
        fsm.act("MEM_RD",
            bus.cyc.eq(1), bus.stb.eq(1), bus.we.eq(0), bus.sel.eq(0xF),
            bus.adr.eq(word_adr),
            If(bus.ack | bus.err,
                NextValue(line, Cat(line[32:], Mux(bus.err, 0, bus.dat_r))),
                If(bus.err, NextValue(status, Status.BUS_ERROR)),
                NextValue(count, count + 1),
                If(count == WORDS - 1, NextState("RESPOND")),
            )
        )
        fsm.act("MEM_WR",
            bus.cyc.eq(1), bus.stb.eq(1), bus.we.eq(1), bus.sel.eq(0xF),
            bus.adr.eq(word_adr), bus.dat_w.eq(line[:32]),
            If(bus.ack | bus.err,
                NextValue(line, Cat(line[32:], Replicate(0, 32))),
                If(bus.err, NextValue(status, Status.BUS_ERROR)),
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
        fsm.act("RESPOND",
            rsp.valid.eq(1),
            rsp.opcode.eq(rsp_op),
            rsp.tag.eq(tag),
            rsp.status.eq(status),
            rsp.addr.eq(addr),
            rsp.value.eq(value),
            rsp.data.eq(Mux(rsp_op == Op.MEM_DATA, line, 0)),
            If(rsp.ready,
                If(status != Status.OK, NextValue(self.errors, self.errors + 1)),
                NextState("IDLE"),
            )
        )

        # Output arbiter: responses and host writes, round-robin per message; a message
        # presented but not yet accepted keeps the grant (stream data stays stable).
        last_rsp = Signal()  # the previous grant went to a response
        held     = Signal()  # a message was presented and not accepted last cycle
        held_rsp = Signal()  # ... and it was a response
        pick_rsp = Signal()
        self.comb += pick_rsp.eq(Mux(held, held_rsp, rsp.valid & (~hw.valid | ~last_rsp)))
        self.sync += [held.eq(source.valid & ~source.ready), held_rsp.eq(pick_rsp)]
        self.comb += [
            If(pick_rsp,
                rsp.connect(source, omit={"first", "last"}),
            ).Elif(hw.valid,
                source.valid.eq(1),
                source.opcode.eq(Op.HOST_WR),
                source.tag.eq(hw.tag),
                source.addr.eq(hw.addr),
                source.value.eq(hw.nbytes),
                source.data.eq(hw.data),
                hw.ready.eq(source.ready),
            ),
            source.first.eq(1),
            source.last.eq(1),
        ]
        self.sync += If(source.valid & source.ready, last_rsp.eq(pick_rsp))

    def add_csr(self):
        """Request/error counters and the credit count, readable by firmware and host."""
        self._credits  = CSRStatus(8, reset=self.config.credits,
                                   description="Requests the host may have outstanding.")
        self._requests = CSRStatus(32, description="Requests received.")
        self._errors   = CSRStatus(32, description="Responses sent with a non-OK status.")
        self.comb += [self._requests.status.eq(self.requests),
                      self._errors.status.eq(self.errors)]
