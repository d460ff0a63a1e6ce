"""PageEngine: the demand-read path of the cache engine, bridge -> ATU -> DMA -> host.

A ``PageRd`` forwarded by the bridge endpoint (``page_req``: tag, vpn, host address) is
translated by the ATU; a fault is answered at once (``PAGE_FAULT`` with the ATU's code).
Otherwise a one-descriptor DMA job decompresses the page from its DRAM slot straight into
host memory (``HostWr`` lines through the bridge), and the job's completion becomes the
answer (``OK``, or ``DMA_ERROR`` with the DMA status: corrupt page, fault, timeout, ...).
Lookups are taken one at a time (the ATU answers in order and blocks on a miss); DMA jobs
queue behind them, so translation of the next page overlaps the transfer of this one.
No CPU is involved: this is the latency-critical path.

An ``XLATE`` request (``page_req.xlate``) is only translated: the answer carries the slot
address in ``addr`` and ``xlate_value(length, flags, hit)`` in ``value`` (a lookup port for
host tools and tests), or ``PAGE_FAULT`` as for a page read.

Timestamps (a free-running cycle counter latched at each step of the most recent request,
meaningful when one request is in flight) give the latency breakdown of a demand read.
"""

from migen import FSM, Cat, If, Module, Mux, NextState, NextValue, Signal

from litex.soc.interconnect import stream
from litex.soc.interconnect.csr import AutoCSR, CSRStatus, CSRStorage

from gateware.arbiter import RoundRobin
from gateware.bridge.protocol import Status, page_request_layout, page_response_layout
from gateware.common import (FAULT_UNMAPPED, OP_COPY, OP_DECOMPRESS, PAGE_BYTES, PTE_FLAG_RAW,
                             ST_OK)


# Timestamp names, in the order a demand read passes them (CSRs ``engine_t_<name>``).
STAMPS = ("req", "xlate", "desc", "rd", "line", "last", "done")


class PageEngine(Module, AutoCSR):
    def __init__(self, atu, dma, page_bytes=PAGE_BYTES):
        self.dma = dma
        self.page_req = req = stream.Endpoint(page_request_layout)
        self.page_rsp = rsp = stream.Endpoint(page_response_layout)
        vpn_width = len(atu.sink.vpn)
        self.pages_ok = Signal(32)
        self.pages_failed = Signal(32)

        # Answers from the lookup stage (faults, translations) and from DMA completions
        # share page_rsp.
        fault_rsp = stream.Endpoint(page_response_layout)

        tag   = Signal(8)
        vpn   = Signal(32)
        xlate = Signal()
        self._paddr  = Signal(len(atu.source.paddr))
        self._length = Signal(len(atu.source.length))
        flags = Signal(len(atu.source.flags))
        hit   = Signal()
        haddr = Signal(64)
        code  = Signal(32)
        lookup   = Signal()
        describe = Signal()
        self.submodules.fsm = fsm = FSM(reset_state="IDLE")
        fsm.act("IDLE",
            req.ready.eq(1),
            If(req.valid,
                NextValue(tag, req.tag),
                NextValue(vpn, req.vpn),
                NextValue(haddr, req.addr),
                NextValue(xlate, req.xlate),
                If(req.vpn[vpn_width:] != 0,
                    # A vpn wider than the ATU's would alias a mapped page: refuse it here.
                    NextValue(code, FAULT_UNMAPPED),
                    NextState("FAULT"),
                ).Else(NextValue(lookup, 1), NextState("LOOKUP")),
            )
        )
        fsm.act("LOOKUP",
            If(atu.sink.ready, NextValue(lookup, 0), NextState("TRANSLATED")),
        )
        fsm.act("TRANSLATED",
            atu.source.ready.eq(1),
            If(atu.source.valid,
                If(atu.source.fault != 0,
                    NextValue(code, atu.source.fault),
                    NextState("FAULT"),
                ).Elif(xlate,
                    NextState("XLATED"),
                ).Else(
                    NextValue(code, 0),
                    NextValue(describe, 1),
                    NextState("DESCRIBE"),
                ),
                # Keep the translation for the descriptor (or the XLATE answer).
                NextValue(self._paddr, atu.source.paddr),
                NextValue(self._length, atu.source.length),
                NextValue(flags, atu.source.flags),
                NextValue(hit, atu.source.hit),
            )
        )
        fsm.act("XLATED",
            fault_rsp.valid.eq(1),
            fault_rsp.tag.eq(tag),
            fault_rsp.status.eq(Status.OK),
            fault_rsp.addr.eq(self._paddr),
            fault_rsp.value.eq(Cat(self._length, flags, hit)),
            If(fault_rsp.ready, NextState("IDLE")),
        )
        fsm.act("DESCRIBE",
            If(dma.sink.ready, NextValue(describe, 0), NextState("IDLE")),
        )
        # The ATU lookup and the DMA descriptor are driven from registers (``lookup`` is
        # set exactly while in LOOKUP, ``describe`` while in DESCRIBE), not from a decode of
        # the FSM state: the state decode, the ATU's CAM and its LRU update were one path.
        self.comb += [
            atu.sink.valid.eq(lookup),
            atu.sink.vpn.eq(vpn),
            atu.sink.tag.eq(tag),
            dma.sink.valid.eq(describe),
            dma.sink.op.eq(Mux(flags & PTE_FLAG_RAW, OP_COPY, OP_DECOMPRESS)),
            dma.sink.host.eq(1),
            dma.sink.tag.eq(tag),
            dma.sink.src.eq(self._paddr),
            dma.sink.dst.eq(haddr),
            dma.sink.length.eq(self._length),
            dma.sink.cap.eq(page_bytes),
            dma.sink.last.eq(1),
        ]
        fsm.act("FAULT",
            fault_rsp.valid.eq(1),
            fault_rsp.tag.eq(tag),
            fault_rsp.status.eq(Status.PAGE_FAULT),
            fault_rsp.value.eq(code),
            If(fault_rsp.ready, NextState("IDLE")),
        )

        # DMA completions -> answers.
        done_rsp = stream.Endpoint(page_response_layout)
        c = dma.completion
        self.comb += [
            done_rsp.valid.eq(c.valid),
            done_rsp.tag.eq(c.tag),
            done_rsp.status.eq(Status.OK),
            If(c.status != ST_OK,
                done_rsp.status.eq(Status.DMA_ERROR),
                done_rsp.value.eq(c.status),
            ),
            c.ready.eq(done_rsp.ready),
        ]

        # Two answer sources, round-robin.
        self.submodules.answers = arb = RoundRobin(page_response_layout, 2)
        self.comb += [
            done_rsp.connect(arb.sinks[0]),
            fault_rsp.connect(arb.sinks[1]),
            arb.source.connect(rsp),
        ]
        self.sync += If(rsp.valid & rsp.ready,
            If(rsp.status == Status.OK,
                self.pages_ok.eq(self.pages_ok + 1)
            ).Else(
                self.pages_failed.eq(self.pages_failed + 1)
            )
        )

        self._timestamps(req, rsp, fsm, atu, dma)

    def _timestamps(self, req, rsp, fsm, atu, dma):
        """Timestamps of the most recent request (cycle counter values): accepted,
        translated, descriptor queued, first DRAM read data, first and last host line,
        answered."""
        self.now = now = Signal(32)
        self.stamps = {k: Signal(32, name="stamp_" + k) for k in STAMPS}
        st = self.stamps
        armed_rd, armed_line = Signal(), Signal()
        hs = lambda ep: ep.valid & ep.ready
        # The events are registered and stamped a cycle later with the previous count, so the
        # stamps are those of the events' own cycles; the host-line handshake (through the
        # SoC's and the bridge's arbiters) then reaches one register, not 64 stamp enables.
        now_q = Signal(32)
        events = {"req": hs(req), "xlate": fsm.ongoing("TRANSLATED") & atu.source.valid,
                  "rd": dma.rport.rdata.valid, "line": hs(dma.host_source),
                  "desc": fsm.ongoing("DESCRIBE") & dma.sink.ready, "done": hs(rsp)}
        ev = {k: Signal(name="event_" + k) for k in events}
        self.sync += [now.eq(now + 1), now_q.eq(now)] + [ev[k].eq(v) for k, v in events.items()]
        self.sync += [
            If(ev["req"], st["req"].eq(now_q)),
            If(ev["xlate"], st["xlate"].eq(now_q)),
            If(armed_rd & ev["rd"], st["rd"].eq(now_q), armed_rd.eq(0)),
            If(ev["line"],
                st["last"].eq(now_q),
                If(armed_line, st["line"].eq(now_q), armed_line.eq(0))),
            # After the two above: a descriptor queued in the cycle of another job's read
            # data or line re-arms them.
            If(ev["desc"], st["desc"].eq(now_q), armed_rd.eq(1), armed_line.eq(1)),
            If(ev["done"], st["done"].eq(now_q)),
        ]

    def add_csr(self, dram_size=0, host_size=0):
        """Counters, and the windows of the engine's DMA: the DRAM range page slots may
        occupy and the host range pages may be written to (checked per job; outside ->
        DMA_ERROR fault, nothing moved). Both default to empty: software opens them."""
        dma = self.dma
        self._dram_base = CSRStorage(len(dma.dram_base), description="Page-slot window base (DRAM byte offset).")
        self._dram_size = CSRStorage(len(dma.dram_size), reset=dram_size, description="Page-slot window size in bytes.")
        self._host_base = CSRStorage(64, description="Host window base: where pages may be deposited.")
        self._host_size = CSRStorage(64, reset=host_size, description="Host window size in bytes.")
        self._timeout   = CSRStorage(32, reset=4096, description="DMA watchdog in cycles (0: none).")
        self.comb += [
            dma.dram_base.eq(self._dram_base.storage),
            dma.dram_size.eq(self._dram_size.storage),
            dma.host_base.eq(self._host_base.storage),
            dma.host_size.eq(self._host_size.storage),
            dma.timeout.eq(self._timeout.storage),
        ]
        self._pages_ok = CSRStatus(32, description="Page reads answered OK.")
        self._pages_failed = CSRStatus(32, description="Page reads answered with an error.")
        self.comb += [self._pages_ok.status.eq(self.pages_ok),
                      self._pages_failed.status.eq(self.pages_failed)]
        for k in STAMPS:
            csr = CSRStatus(32, name="t_" + k, description=f"Cycle counter at stamp '{k}' "
                            "of the most recent request (see STAMPS).")
            setattr(self, "_t_" + k, csr)
            self.comb += csr.status.eq(self.stamps[k])
