"""ATU core: TLB + page walker translating virtual KV page numbers to DRAM slots.

The behaviour is specified by ``model.ATUModel``; this core matches it exactly (results,
fault codes, hit/miss sequence, replacement, counters). Interface, PTE format, registers and
timing: README.md beside this file.
"""

from functools import reduce
from operator import or_
from types import SimpleNamespace

from migen import Signal, If, Cat, Mux, Array, Constant, log2_int
from litex.gen import LiteXModule
from litex.soc.interconnect import stream
from litex.soc.interconnect.csr import CSRStorage, CSRStatus, CSRField

from gateware.common import (FAULT_WIDTH, FAULT_NONE, FAULT_UNMAPPED, FAULT_INVALID,
                             FAULT_BAD_PTE, FAULT_BUS_ERROR, PTE_VALID_BIT, PTE_FLAGS_SHIFT,
                             PTE_FLAGS_WIDTH, PTE_LEN_SHIFT, PTE_LEN_WIDTH, PTE_SLOT_SHIFT,
                             PTE_SLOT_WIDTH, SLOT_ALIGN_BITS, SLOT_MAX_BYTES)
from .model import ATUParams, COUNTER_WIDTH, LFSR_SEED, LFSR_TAPS

# Stream layouts --------------------------------------------------------------------------------


def lookup_request_layout(vpn_width, tag_width):
    return [
        ("vpn", vpn_width),  # virtual KV page number to translate
        ("tag", tag_width),  # requester's tag, returned unchanged with the response
    ]


def lookup_response_layout(tag_width, paddr_width):
    return [
        ("tag",    tag_width),        # tag of the request this answers
        ("paddr",  paddr_width),      # DRAM byte address of the page slot (0 on fault)
        ("length", PTE_LEN_WIDTH),    # compressed page length in bytes (0 on fault)
        ("flags",  PTE_FLAGS_WIDTH),  # PTE flags, opaque to the ATU (0 on fault)
        ("fault",  FAULT_WIDTH),      # model.FAULT_* code; 0 = translation ok
        ("hit",    1),                # 1 if served by the TLB (no page walk)
    ]


# Core -------------------------------------------------------------------------------------------


class ATU(LiteXModule):
    """Address-translation unit.

    ``port``: a LiteDRAM native port (``LiteDRAMNativePort``, mode "read" or "both", any
    power-of-two data width >= 8), used read-only for page-table walks: connect one from
    ``soc.sdram.crossbar.get_port()``. Other parameters: see ``model.ATUParams``;
    ``walk_timeout``: cycles a walk may wait for the port before it fails with a bus error
    (0 = wait forever).

    Datapath signals (driven by ``add_csr()`` or directly by a parent core): configuration
    ``pt_base``, ``pt_entries``, ``dram_base``, ``dram_size``; one-cycle pulses ``flush``,
    ``inval`` (with ``inval_vpn``), ``clear``; status ``hits``, ``misses``, ``walks``,
    ``faults``, ``last_fault_code``, ``last_fault_vpn``, ``busy``.
    """

    # Width of the count of read beats owed by the port to abandoned (timed-out) walks. While
    # its top bit is set, misses fail with bus_error at once instead of walking: the count
    # can never wrap, so a late beat is never taken for a later walk's PTE.
    DROPS_WIDTH = 16

    def __init__(self, port, entries=16, policy="lru", vpn_width=24, paddr_width=32,
                 tag_width=8, max_length=SLOT_MAX_BYTES, walk_timeout=4096):
        self.params = ATUParams(entries=entries, policy=policy, vpn_width=vpn_width,
                                paddr_width=paddr_width, tag_width=tag_width,
                                max_length=max_length)
        dw = getattr(port, "data_width", None)
        if not isinstance(dw, int) or dw < 8 or dw & (dw - 1):
            raise ValueError("port data_width must be a power of two >= 8, got {!r}".format(dw))
        if getattr(port, "mode", None) not in ("read", "both"):
            raise ValueError("port mode must be 'read' or 'both', got {!r}".format(
                getattr(port, "mode", None)))
        if not isinstance(walk_timeout, int) or isinstance(walk_timeout, bool) or walk_timeout < 0:
            raise ValueError("walk_timeout must be an int >= 0 (0 = none), got {!r}".format(
                walk_timeout))
        self.port = port
        self.walk_timeout = walk_timeout
        self.port_bytes = (1 << port.address_width) * dw // 8
        N = entries

        self.sink   = sink   = stream.Endpoint(lookup_request_layout(vpn_width, tag_width))
        self.source = source = stream.Endpoint(lookup_response_layout(tag_width, paddr_width))

        # Configuration (changing any of them flushes the TLB one cycle later).
        # pt_base: page table byte address (bits 2:0 ignored); vpn >= pt_entries faults
        # (unmapped); page slots must lie in the window [dram_base, dram_base + dram_size).
        self.pt_base    = Signal(paddr_width, name="pt_base")
        self.pt_entries = Signal(vpn_width + 1, name="pt_entries")
        self.dram_base  = Signal(paddr_width, name="dram_base")
        self.dram_size  = Signal(paddr_width, name="dram_size")
        # Control pulses.
        self.flush      = Signal(name="flush")              # invalidate every entry
        self.inval      = Signal(name="inval")              # invalidate the entry of inval_vpn
        self.inval_vpn  = Signal(vpn_width, name="inval_vpn")
        self.clear      = Signal(name="clear")              # zero counters and last fault
        # Status.
        self.hits   = Signal(COUNTER_WIDTH, name="hits")
        self.misses = Signal(COUNTER_WIDTH, name="misses")
        self.walks  = Signal(COUNTER_WIDTH, name="walks")
        self.faults = Signal(COUNTER_WIDTH, name="faults")
        self.last_fault_code = Signal(FAULT_WIDTH, name="last_fault_code")
        self.last_fault_vpn  = Signal(vpn_width, name="last_fault_vpn")
        self.busy   = Signal(name="busy")                   # a page walk is in progress

        # # #

        cmd, rdata = port.cmd, port.rdata
        slot_width = paddr_width - SLOT_ALIGN_BITS
        iw         = max(1, (N - 1).bit_length())      # TLB entry index width
        beats      = max(1, 64 // dw)                   # native words per PTE
        wsh        = log2_int(dw // 8)                  # byte -> native word address shift

        # The Migen simulator re-evaluates every comb statement until nothing changes, and
        # each sync statement once per cycle: logic below is kept in sync statements or under
        # comb guards wherever that costs no hardware, so unit simulations stay fast.

        # State (one-hot) -------------------------------------------------------------------------
        idle     = Signal(reset=1, name="idle")             # accepting lookups
        walking  = Signal(name="walking")                   # PTE read in flight
        checking = Signal(name="checking")                  # PTE registered, checking + answering
        self.comb += self.busy.eq(~idle)

        # TLB storage -----------------------------------------------------------------------------
        valid   = Signal(N, name="valid")
        e_vpn   = Array(Signal(vpn_width, name="tlb_vpn{}".format(i)) for i in range(N))
        e_slot  = Array(Signal(slot_width, name="tlb_slot{}".format(i)) for i in range(N))
        e_len   = Array(Signal(PTE_LEN_WIDTH, name="tlb_len{}".format(i)) for i in range(N))
        e_flags = Array(Signal(PTE_FLAGS_WIDTH, name="tlb_flags{}".format(i)) for i in range(N))
        self.tlb_valid = valid

        # Lookup: CAM match on the sink, priority encoder (an entry is only ever filled for a
        # vpn that missed, so at most one bit of ``match`` is set).
        match   = Signal(N, name="match")
        hit     = Signal(name="hit")
        hit_idx = Signal(iw, name="hit_idx")
        self.comb += If(sink.valid, *[match[i].eq(valid[i] & (e_vpn[i] == sink.vpn))
                                      for i in range(N)])
        self.comb += hit.eq(match != 0)
        self.comb += If(hit, *_encoder(match, hit_idx))

        # Output register -------------------------------------------------------------------------
        can_load = Signal(name="can_load")
        accept   = Signal(name="accept")                    # lookup handshake this cycle
        self.comb += [
            can_load.eq(~source.valid | source.ready),
            sink.ready.eq(idle & can_load),
            accept.eq(sink.valid & sink.ready),
            source.first.eq(1),
            source.last.eq(1),
        ]

        # Page walker signals ---------------------------------------------------------------------
        walk_vpn  = Signal(vpn_width, name="walk_vpn")
        walk_tag  = Signal(tag_width, name="walk_tag")
        pte_addr  = Signal(max(paddr_width, vpn_width + 3) + 1, name="pte_addr")
        w_addr    = Signal(port.address_width, name="w_addr")  # first native word of the PTE
        lane      = Signal(max(1, wsh - 3), name="lane")    # 64-bit lane inside a wide word
        issued    = Signal(max=beats + 1, name="issued")    # commands accepted by the port
        received  = Signal(max=beats + 1, name="received")  # beats received for this walk
        pte       = Signal(64, name="pte")                  # PTE being assembled / checked
        no_fill   = Signal(name="no_fill")                  # invalidated while walking: don't cache
        timed_out = Signal(name="timed_out")
        drops     = Signal(self.DROPS_WIDTH, name="drops")  # late beats of abandoned walks to drop
        timer     = Signal(max=max(walk_timeout, 2) + 1, name="timer")
        timeout   = Signal(name="timeout")
        rd_take   = Signal(name="rd_take")                  # a beat of this walk arrives
        self.comb += [
            rdata.ready.eq(1),                          # the LiteDRAM crossbar ignores it anyway
            rd_take.eq(rdata.valid & (drops == 0) & walking),
            cmd.valid.eq(walking & (issued != beats) & ~timeout),
            cmd.we.eq(0),
            cmd.last.eq(1),
            cmd.addr.eq(w_addr + issued),
            port.flush.eq(0),
        ]
        if walk_timeout:
            self.comb += timeout.eq(walking & (timer == walk_timeout))
        self.comb += If(idle & sink.valid,
            pte_addr.eq(Cat(Constant(0, 3), self.pt_base[3:]) + (sink.vpn << 3)))
        unmapped    = sink.vpn >= self.pt_entries
        out_of_port = (pte_addr >> log2_int(self.port_bytes)) != 0

        # The state the stages below read and drive (lookup, TLB, walker), in one namespace
        # rather than forty arguments; the split leaves the generated Verilog unchanged.
        w = SimpleNamespace(pte=pte, iw=iw, checking=checking, policy=policy,
                            walk_vpn=walk_vpn, paddr_width=paddr_width, valid=valid,
                            can_load=can_load, N=N, e_vpn=e_vpn, e_slot=e_slot,
                            slot_width=slot_width, e_len=e_len, e_flags=e_flags,
                            no_fill=no_fill, accept=accept, hit=hit,
                            timed_out=timed_out, hit_idx=hit_idx, match=match,
                            max_length=max_length,
                            dw=dw, source=source, rdata=rdata, drops=drops,
                            walk_tag=walk_tag, sink=sink, lane=lane, walking=walking,
                            idle=idle, rd_take=rd_take, w_addr=w_addr,
                            pte_addr=pte_addr, issued=issued, received=received,
                            timer=timer, out_of_port=out_of_port, wsh=wsh, cmd=cmd,
                            timeout=timeout, unmapped=unmapped, beats=beats)
        self._check_and_replace(w)
        self._sequence(w)

    def _check_and_replace(self, w):
        """Check stage (PTE decode, fault, victim), replacement policy, TLB updates."""
        # Check stage: PTE decode, fault, victim (comb, evaluated only while checking) ----------
        pte_valid = w.pte[PTE_VALID_BIT]
        pte_flags = w.pte[PTE_FLAGS_SHIFT:PTE_FLAGS_SHIFT + PTE_FLAGS_WIDTH]
        pte_len   = w.pte[PTE_LEN_SHIFT:PTE_LEN_SHIFT + PTE_LEN_WIDTH]
        pte_slot  = w.pte[PTE_SLOT_SHIFT:PTE_SLOT_SHIFT + PTE_SLOT_WIDTH]
        pte_paddr = Cat(Constant(0, SLOT_ALIGN_BITS), pte_slot)
        pte_fault = Signal(FAULT_WIDTH, name="pte_fault")
        respond   = Signal(name="respond")                  # check stage answers this cycle
        fill      = Signal(name="fill")                     # ... and caches the translation
        inval_walk = self.inval & (self.inval_vpn == w.walk_vpn)
        victim    = Signal(w.iw, name="victim")
        any_invalid = Signal(name="any_invalid")
        pol_idx   = Signal(w.iw, name="pol_idx")              # policy's victim when the TLB is full
        # Sums get their own signals, one bit wider than their operands: in Verilog an
        # expression is only as wide as its widest operand (and the comparison's other side),
        # so ``a + b > c + d`` written inline could wrap where the model's integers do not.
        pte_end   = Signal(PTE_SLOT_WIDTH + SLOT_ALIGN_BITS + 1, name="pte_end")
        win_end   = Signal(w.paddr_width + 1, name="win_end")
        self.comb += any_invalid.eq(w.valid != (2**w.N - 1))
        self.comb += If(w.checking,
            pte_end.eq(pte_paddr + pte_len),
            win_end.eq(self.dram_base + self.dram_size),
            If(w.timed_out, pte_fault.eq(FAULT_BUS_ERROR)
            ).Elif(~pte_valid, pte_fault.eq(FAULT_INVALID)
            ).Elif((pte_len == 0) | (pte_len > w.max_length)
                   | ((pte_paddr >> w.paddr_width) != 0)
                   | (pte_paddr < self.dram_base)
                   | (pte_end > win_end),
                pte_fault.eq(FAULT_BAD_PTE)),
            respond.eq(w.can_load),
            # A flush or config change in this cycle clears ``valid`` with priority over the
            # fill; an invalidation of this very vpn must suppress it here.
            fill.eq(w.can_load & (pte_fault == FAULT_NONE) & ~w.no_fill & ~inval_walk),
            If(any_invalid, *_encoder(~w.valid, victim)).Else(victim.eq(pol_idx)),
        )

        # Replacement policies --------------------------------------------------------------------
        advance = Signal(name="advance")                    # a fill evicts by policy: step state
        self.comb += advance.eq(fill & ~any_invalid)
        if w.policy == "lru":
            # Ages are a permutation of 0..N-1; 0 = most recently used, N-1 = the victim.
            ages = Array(Signal(w.iw, reset=i, name="tlb_age{}".format(i)) for i in range(w.N))
            self.comb += If(w.checking & ~any_invalid,
                *_encoder(Cat(*[ages[i] == w.N - 1 for i in range(w.N)]), pol_idx))

            def lru_touch(idx):
                return [If(idx == i, ages[i].eq(0)
                        ).Elif(ages[i] < ages[idx], ages[i].eq(ages[i] + 1)) for i in range(w.N)]
            # A hit's touch lands one cycle after the hit (``touch``, ``touch_idx`` registered),
            # off the CAM's path. Nothing reads the ages in that cycle: the victim is chosen
            # only while checking, and a walk's check comes at least two cycles after the
            # lookup that started it; a fill never meets a pending touch for the same reason.
            touch = Signal(name="lru_touch")
            touch_idx = Signal(w.iw, name="lru_touch_idx")
            self.sync += [touch.eq(w.accept & w.hit), touch_idx.eq(w.hit_idx)]
            self.sync += If(touch, *lru_touch(touch_idx)).Elif(fill, *lru_touch(victim))
        elif w.policy == "fifo":
            ptr = Signal(w.iw, name="ptr")
            self.comb += pol_idx.eq(ptr)
            self.sync += If(advance, If(ptr == w.N - 1, ptr.eq(0)).Else(ptr.eq(ptr + 1)))
        else:  # random: 16-bit Galois LFSR, its low bits pick the victim
            lfsr = Signal(16, reset=LFSR_SEED, name="lfsr")
            sel_bits = log2_int(w.N, need_pow2=True)
            self.comb += pol_idx.eq(lfsr[:sel_bits] if sel_bits else 0)
            self.sync += If(advance,
                lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], Constant(LFSR_TAPS, 16), Constant(0, 16))))

        # Configuration change -> flush -----------------------------------------------------------
        cfg     = Cat(self.pt_base, self.pt_entries, self.dram_base, self.dram_size)
        cfg_q   = Signal(len(cfg), name="cfg_q")
        flush   = Signal(name="flush_all")
        self.sync += cfg_q.eq(cfg)
        self.comb += flush.eq(self.flush | (cfg != cfg_q))

        # TLB updates: flush > fill of the victim > single invalidation ------------------------
        self.sync += If(flush, w.valid.eq(0)).Elif(fill | self.inval, *[
            If(fill & (victim == i), w.valid[i].eq(1)
            ).Elif(self.inval & (w.e_vpn[i] == self.inval_vpn), w.valid[i].eq(0))
            for i in range(w.N)])
        self.sync += If(fill,
            w.e_vpn[victim].eq(w.walk_vpn), w.e_slot[victim].eq(pte_slot[:w.slot_width]),
            w.e_len[victim].eq(pte_len), w.e_flags[victim].eq(pte_flags))
        w.respond, w.flush, w.inval_walk, w.pte_fault = respond, flush, inval_walk, pte_fault
        w.pte_len, w.pte_flags, w.pte_paddr = pte_len, pte_flags, pte_paddr

    def _sequence(self, w):
        """The lookup, walk and check stages and the counters."""
        # Lookup stage (idle) --------------------------------------------------------------------
        def answer(fault, paddr=0, length=0, flags=0, hit_=0):
            return [w.source.valid.eq(1), w.source.fault.eq(fault), w.source.paddr.eq(paddr),
                    w.source.length.eq(length), w.source.flags.eq(flags), w.source.hit.eq(hit_)]

        def count_fault(vpn, code):
            return [self.faults.eq(self.faults + 1),
                    self.last_fault_code.eq(code), self.last_fault_vpn.eq(vpn)]

        self.sync += If(w.source.ready, w.source.valid.eq(0))
        self.sync += If(w.accept,
            w.source.tag.eq(w.sink.tag),
            If(w.hit,
                self.hits.eq(self.hits + 1),
                *answer(FAULT_NONE,
                        Cat(Constant(0, SLOT_ALIGN_BITS), _onehot_mux(w.match, w.e_slot)),
                        _onehot_mux(w.match, w.e_len), _onehot_mux(w.match, w.e_flags), 1),
            ).Else(
                self.misses.eq(self.misses + 1),
                If(w.unmapped,
                    *answer(FAULT_UNMAPPED), *count_fault(w.sink.vpn, FAULT_UNMAPPED),
                ).Elif(w.out_of_port | w.drops[-1],
                    *answer(FAULT_BUS_ERROR), *count_fault(w.sink.vpn, FAULT_BUS_ERROR),
                ).Else(
                    self.walks.eq(self.walks + 1),
                    w.idle.eq(0), w.walking.eq(1),
                    w.walk_vpn.eq(w.sink.vpn), w.walk_tag.eq(w.sink.tag),
                    w.w_addr.eq(w.pte_addr[w.wsh:]),
                    w.lane.eq(w.pte_addr[3:3 + len(w.lane)] if w.wsh > 3 else 0),
                    w.issued.eq(0), w.received.eq(0), w.timer.eq(0),
                    w.no_fill.eq(0), w.timed_out.eq(0),
                ),
            ),
        )

        # Walk stage -----------------------------------------------------------------------------
        if w.dw >= 64:
            take_word = w.pte.eq(_index_mux(w.lane, [w.rdata.data[64 * k:64 * (k + 1)]
                                                 for k in range(w.dw // 64)]))
        else:
            take_word = w.pte.eq(Cat(w.pte[w.dw:], w.rdata.data))
        rd_drop = w.rdata.valid & (w.drops != 0)
        self.sync += If(w.walking,
            w.timer.eq(w.timer + 1),
            If(w.cmd.valid & w.cmd.ready, w.issued.eq(w.issued + 1)),
            If(w.rd_take, w.received.eq(w.received + 1), take_word),
            If(w.timeout,
                # Give up: beats still owed by the port will be dropped when they come.
                w.drops.eq(w.drops + w.issued - w.received - w.rd_take - rd_drop),
                w.timed_out.eq(1), w.walking.eq(0), w.checking.eq(1),
            ).Else(
                If(rd_drop, w.drops.eq(w.drops - 1)),
                If(w.rd_take & (w.received == w.beats - 1), w.walking.eq(0), w.checking.eq(1)),
            ),
        ).Elif(rd_drop, w.drops.eq(w.drops - 1))
        self.sync += If(~w.idle & (w.flush | w.inval_walk), w.no_fill.eq(1))

        # Check stage ----------------------------------------------------------------------------
        self.sync += If(w.respond,
            w.checking.eq(0), w.idle.eq(1),
            w.source.tag.eq(w.walk_tag),
            If(w.pte_fault == FAULT_NONE,
                *answer(FAULT_NONE, w.pte_paddr[:w.paddr_width], w.pte_len, w.pte_flags),
            ).Else(
                *answer(w.pte_fault), *count_fault(w.walk_vpn, w.pte_fault),
            ),
        )

        # Counter clear (last: it has priority) ---------------------------------------------------
        self.sync += If(self.clear,
            self.hits.eq(0), self.misses.eq(0), self.walks.eq(0), self.faults.eq(0),
            self.last_fault_code.eq(0), self.last_fault_vpn.eq(0))

    # Control and status registers ------------------------------------------------------------

    def add_csr(self):
        """Expose the datapath's configuration, control and status as LiteX CSRs."""
        p = self.params
        self._ctrl = CSRStorage(fields=[
            CSRField("flush", size=1, pulse=True,
                     description="Write 1: invalidate every TLB entry."),
            CSRField("clear", size=1, pulse=True,
                     description="Write 1: zero the counters and ``last_fault``."),
        ], description="ATU control (self-clearing pulses).")
        self._inval = CSRStorage(p.vpn_width, description=(
            "Writing a virtual page number invalidates its TLB entry, if cached. Software "
            "rewrites a PTE in DRAM, then writes its vpn here."))
        self._pt_base = CSRStorage(p.paddr_width, description=(
            "DRAM byte address of the page table (bits 2:0 ignored). A change flushes the TLB."))
        self._pt_entries = CSRStorage(p.vpn_width + 1, description=(
            "Number of PTEs; vpn >= pt_entries faults (unmapped) without a memory read. "
            "A change flushes the TLB."))
        self._dram_base = CSRStorage(p.paddr_width, description=(
            "Start of the DRAM window page slots must lie in. A change flushes the TLB."))
        self._dram_size = CSRStorage(p.paddr_width, description=(
            "Size in bytes of the DRAM window. A change flushes the TLB."))
        self._status = CSRStatus(fields=[
            CSRField("busy", size=1, description="A page walk is in progress."),
        ])
        self._hits   = CSRStatus(COUNTER_WIDTH, description="Lookups served by the TLB (wraps).")
        self._misses = CSRStatus(COUNTER_WIDTH, description="Lookups that missed the TLB (wraps).")
        self._walks  = CSRStatus(COUNTER_WIDTH, description="PTE reads started (wraps).")
        self._faults = CSRStatus(COUNTER_WIDTH,
                                 description="Lookups answered with a fault (wraps).")
        self._last_fault = CSRStatus(fields=[
            CSRField("code", size=FAULT_WIDTH, offset=0, description=(
                "Code of the most recent fault: 1 unmapped, 2 invalid, 3 bad_pte, 4 bus_error.")),
            CSRField("vpn", size=p.vpn_width, offset=8, description="Its virtual page number."),
        ])
        self.comb += [
            self.flush.eq(self._ctrl.fields.flush),
            self.clear.eq(self._ctrl.fields.clear),
            self.inval.eq(self._inval.re),
            self.inval_vpn.eq(self._inval.storage),
            self.pt_base.eq(self._pt_base.storage),
            self.pt_entries.eq(self._pt_entries.storage),
            self.dram_base.eq(self._dram_base.storage),
            self.dram_size.eq(self._dram_size.storage),
            self._status.fields.busy.eq(self.busy),
            self._hits.status.eq(self.hits),
            self._misses.status.eq(self.misses),
            self._walks.status.eq(self.walks),
            self._faults.status.eq(self.faults),
            self._last_fault.fields.code.eq(self.last_fault_code),
            self._last_fault.fields.vpn.eq(self.last_fault_vpn),
        ]


# Helpers ------------------------------------------------------------------------------------------


def _encoder(vector, index):
    """Comb statements: ``index`` = position of the lowest set bit of ``vector`` (0 if none)."""
    return [index.eq(0)] + [If(vector[i], index.eq(i)) for i in reversed(range(len(vector)))]


def _onehot_mux(onehot, values):
    """``values[i]`` for the one set bit of ``onehot`` (an AND-OR, no index decode)."""
    return reduce(or_, [Mux(onehot[i], v, 0) for i, v in enumerate(values)])


def _index_mux(index, values):
    return Array(values)[index]
