"""The replay backends: one declared interface (:class:`Backend`), the same functional
results.

- ``rtl``: the Verilator SoC built by ``soc/build.py`` (gateware, firmware and all), reached
  over the emulated link (``host.driver.link.SimLink``, ``host.driver.device``).
- ``board``: the same SoC on an FPGA board (``soc/build.py --board``), or the board's
  simulation, reached through ``litex_server`` and the message tunnel
  (``host.driver.tunnel``).
- ``model``: the reference models in its place: the codec reference
  (``gateware/codec/reference.py``) for the pool, the firmware's speculation engine
  (``host.prefetch.speculation``) with the integer predictors (``host.prefetch``), and a
  timing estimate calibrated on the ``rtl`` backend (constants below).

``rtl`` and ``board`` differ only in their link: both are a :class:`DeviceBackend`.

A step's hint is posted a layer at a time (its chunks). Two ways to serve it:
:meth:`Backend.hint` waits until the device has served a layer's chunks, its prefetches in
L2 (synchronous, ``--timing off``); :meth:`Backend.hint_begin` posts the first layer's and
returns, :meth:`Backend.hint_more` adds each further layer's, and :meth:`Backend.hint_pump`,
called while the host computes, moves them on (the timing-true replay, ``--timing on``). Time is the device's clock (:meth:`Backend.clock`): on
``rtl`` the simulated one, which the host advances by its compute time
(:meth:`Backend.compute`); on ``model`` a counter the calibrated costs
(``host/replayer/costs.py``) advance.
"""

from __future__ import annotations

import abc

import numpy as np

from gateware.codec import reference as R
from gateware.common import LINE_BYTES, PAGE_BYTES as PAGE
from gateware.bridge.protocol import Message, Op
from host.driver.device import Device, DeviceError
from host.driver.hints import SpecConfig
from host.driver.link import PROFILES, LinkError, SimLink
from host.driver.tunnel import TunnelLink
from host.prefetch.speculation import SpeculationEngine, tag_line
from host.replayer.costs import Costs
from soc.mailbox import (HINT_ERRORS, MBOX_CMD_SPEC_CONFIG, MBOX_HINT_DONE_SEQ, MBOX_HINT_MAGIC,
                         MBOX_HINT_REJECTED, MBOX_HINT_SEQ, MBOX_HINT_STATUS, MBOX_STEP_RECORD,
                         MBOX_READY, MBOX_STATUS, STEP_RECORD, TAG_MAGIC)

HOST_BASE = 0x2_0000_0000


class BackendError(RuntimeError):
    pass


def _parse_directory(raw, slots):
    d = np.frombuffer(bytes(raw), dtype="<u4").reshape(slots, LINE_BYTES // 4)
    live = np.nonzero(d[:, 0] == TAG_MAGIC)[0]
    return {int(d[i, 1]): int(i) for i in live}, d


class Backend(abc.ABC):
    """What the replay (``host.replayer.engine``) needs of a device. ``name`` and
    ``CALIBRATION`` (where its times come from) are class attributes; ``cycles_per_ns``
    converts its cycle counts."""

    name: str
    CALIBRATION: str
    cycles_per_ns: float

    @abc.abstractmethod
    def start(self, cfg: SpecConfig, predictor=None):
        """Configure prefetching for a request (resets the speculation state)."""

    @abc.abstractmethod
    def offload(self, vpn, page) -> int:
        """Store a raw FP16 page in the pool; returns its compressed bytes."""

    @abc.abstractmethod
    def l2_index(self) -> dict:
        """The host's L2 directory: {vpn: slot}."""

    @abc.abstractmethod
    def l2_page(self, slot) -> bytes:
        """The 4 KiB page in L2 slot ``slot``."""

    @abc.abstractmethod
    def demand_read(self, vpn):
        """One synchronous fetch: (page bytes, latency in cycles)."""

    @abc.abstractmethod
    def hint(self, chunks):
        """Serve hint chunks of a step, each whole before the next is posted. After the
        step's last chunk: (the firmware's step record, [(vpn, slot)] the step prefetched, in
        DMA order); before it: None."""

    # timing-true replay -------------------------------------------------------------------
    def clock(self) -> int:
        """The device's clock, in cycles."""
        raise NotImplementedError(f"the {self.name} backend has no timing-true replay")

    def compute(self, cycles):
        """The host computes for ``cycles`` device cycles: the device works meanwhile."""
        raise NotImplementedError(f"the {self.name} backend has no timing-true replay")

    def hint_begin(self, chunks) -> bool:
        """Start posting a step's hint with its first chunks (its first layers) and return at
        once; False (nothing posted) while the device still serves an earlier step's."""
        raise NotImplementedError(f"the {self.name} backend has no timing-true replay")

    def hint_more(self, chunks):
        """Add the next chunks (the next layer's) to the hint in progress."""
        raise NotImplementedError(f"the {self.name} backend has no timing-true replay")

    def hint_pump(self):
        """Move the posted hint on (post its next chunk once the device took the last one).
        Returns None while it is in progress, else (step record, [(vpn, slot)] in DMA order,
        cycle it was posted, cycle the host saw it done)."""
        raise NotImplementedError(f"the {self.name} backend has no timing-true replay")

    def l2_valid(self, slot, vpn) -> bool:
        """Whether the directory still maps ``slot`` to ``vpn`` (checked after a page is
        copied out of L2: a slot the device is refilling has its line cleared first)."""
        return self.l2_index().get(vpn) == slot

    def close(self):
        """Release the device."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_codec(constants, codec, where):
    """The codec mode a SoC build compresses with must be ``codec``; ``raw`` (pages stored
    as is, PTE_FLAG_RAW: copied, not compressed) every SoC serves."""
    if codec == "raw":
        return
    built = [k[len("codec_mode_"):] for k in constants if k.startswith("codec_mode_")]
    if built != [codec]:
        raise ValueError(f"the SoC of {where} compresses with {built}; codec "
                         f"{codec!r} needs a SoC built with it (soc/soc.py codec_mode)")


# --------------------------------------------------------------------------------------------
class ModelBackend(Backend):
    """Reference models; time from the costs calibrated on ``rtl`` (:class:`Costs`: device
    cycles at ``sys_clk``) plus the link profile's round trips and serialisation."""

    name = "model"
    CALIBRATION = Costs.load().note()

    def __init__(self, codec="kivi_k4v3", link="cxl2-x16", sys_clk_freq=100e6, costs=None):
        if codec not in R.MODES:
            raise ValueError(f"unknown codec mode {codec!r}; known: {', '.join(R.MODES)}")
        if link not in PROFILES:
            raise ValueError(f"unknown link profile {link!r}; known: {', '.join(PROFILES)}")
        self.codec = codec
        self.profile = PROFILES[link]
        self.sys_clk_freq = sys_clk_freq
        self.cycles_per_ns = sys_clk_freq / 1e9
        self.costs = costs or Costs.load()
        self.pool = {}
        self.l2 = {}
        self.dir = bytearray()
        self.engine = None
        ns = 1e9 / sys_clk_freq
        self.one_way = (self.profile.latency_ns_min + self.profile.latency_ns_max) / 2 / ns
        self.line_serial = LINE_BYTES / (self.profile.bandwidth_gbps * ns)
        self.page_serial = PAGE / (self.profile.bandwidth_gbps * ns)
        self.t = 0.0              # the clock (timing-true replay)
        self._hint = None         # the hint being served: chunks, next chunk, times
        self._busy_until = 0.0    # the firmware serves one chunk or command at a time
        self._events = []         # (cycle, order, fn): L2 changes still in flight
        self._step_predict = self._step_issue = 0.0   # the step's firmware timers so far
        self._sync_issues = []    # hint(): the step's prefetches so far

    def start(self, cfg: SpecConfig, predictor):
        self.cfg = cfg
        self.l2 = {}
        self.dir = bytearray(LINE_BYTES * cfg.l2_slots)
        self.engine = SpeculationEngine(cfg, lambda v: v in self.pool, predictor)
        self._hint, self._events, self._sync_issues = None, [], []
        self._step_predict = self._step_issue = 0.0

    def _round_trip(self):
        return 2 * self.one_way + self.costs.cfg_device

    def _store(self, page):
        """What the device's pool holds for a page: its codec's encoding, or (``raw``) the
        page as is, as the device copies it (PTE_FLAG_RAW)."""
        if self.codec == "raw":
            return np.asarray(page, dtype=np.float16).tobytes()
        return R.compress(np.asarray(page), self.codec)

    def _page(self, vpn):
        blob = self.pool[vpn]
        return blob if self.codec == "raw" else R.decompress(blob).tobytes()

    def offload(self, vpn, page):
        blob = self._store(page)
        self.pool[vpn] = blob
        # the page crosses the link into staging (pipelined lines), then a firmware command,
        # which waits while the firmware serves a hint chunk
        self.t += 2 * self.one_way + self.page_serial
        self.t = max(self.t, self._busy_until) + self.costs.offload_command
        return len(blob)

    def _settle(self):
        while self._events and self._events[0][0] <= self.t:
            self._events.pop(0)[2]()

    def l2_index(self):
        self._settle()
        return _parse_directory(self.dir, self.cfg.l2_slots)[0]

    def l2_page(self, slot):
        self._settle()
        return self.l2[slot]

    def demand_read(self, vpn):
        if vpn not in self.pool:
            raise BackendError(f"demand read of vpn {vpn}: not in the pool")
        data = self._page(vpn)
        cycles = round(2 * self.one_way + self.costs.demand_device + self.page_serial)
        self.t += cycles
        return data, cycles

    # the device's L2 writes -------------------------------------------------------------------
    def _clear_lines(self, slots):
        for slot in slots:
            self.dir[LINE_BYTES * slot:LINE_BYTES * (slot + 1)] = bytes(LINE_BYTES)

    def _land(self, res, step):
        for i in res.issues:
            self.l2[i.slot] = self._page(i.vpn)
        for i in res.issues:
            line = tag_line(i.vpn, step, i.slot, i.order)
            self.dir[LINE_BYTES * i.slot:LINE_BYTES * (i.slot + 1)] = line

    def _serve(self, chunk):
        """The engine decides (now); returns (cycles the firmware takes, cycles until the
        chunk's reused directory lines are cleared, ChunkResult)."""
        status, res = self.engine.chunk(chunk.words())
        if status:
            raise BackendError(f"hint chunk of step {chunk.step} rejected: {HINT_ERRORS[status]}")
        c = self.costs
        predict = c.chunk_cycles(len(chunk.payload), chunk.count, self.cfg.kind)
        filtered = c.issue_cycles(res.candidates, 0, 0)
        issue = c.issue_cycles(res.candidates, len(res.issues), len(res.reused))
        self._step_predict += c.predict_cycles(self.cfg.kind) * chunk.count
        self._step_issue += issue
        if res.record is not None:
            res.record["predict_cycles"] = round(self._step_predict)
            res.record["issue_cycles"] = round(self._step_issue)
            self._step_predict = self._step_issue = 0.0
        return predict + issue, predict + filtered, res

    def hint(self, chunks):
        for ch in chunks:
            _, _, res = self._serve(ch)
            self._clear_lines(res.reused)
            self._land(res, ch.step)
            self._sync_issues += res.issues
            if res.record is not None:
                issues, self._sync_issues = self._sync_issues, []
                return dict(res.record), [(i.vpn, i.slot) for i in issues]
        return None

    # timing-true replay ---------------------------------------------------------------------
    def clock(self):
        return round(self.t)

    def compute(self, cycles):
        self.t += cycles

    def _post(self):
        h = self._hint
        chunk = h["chunks"][h["next"]]
        # the chunk's words (pipelined writes), then its sequence number
        self.t += 2 * self._round_trip() + len(chunk.words()) * self.costs.post_word
        begin = max(self.t, self._busy_until)
        cycles, cleared, res = self._serve(chunk)
        h["done"] = self._busy_until = begin + cycles
        h["inflight"] = True
        order = len(self._events)
        self._events += [(begin + cleared, order, lambda r=res: self._clear_lines(r.reused)),
                         (h["done"], order + 1, lambda r=res, st=chunk.step: self._land(r, st))]
        self._events.sort(key=lambda e: (e[0], e[1]))
        h["issues"] += res.issues
        h["record"] = res.record or h["record"]

    def hint_begin(self, chunks):
        if self._hint is not None:
            return False
        self._hint = {"chunks": list(chunks), "next": 0, "posted": self.t, "inflight": False,
                      "issues": [], "record": None}
        self._post()
        return True

    def hint_more(self, chunks):
        h = self._hint
        h["chunks"] += chunks
        if not h["inflight"]:
            self._post()

    def hint_pump(self):
        h = self._hint
        if h is None:
            return None
        if h["inflight"]:
            self.t += self._round_trip()              # read the done sequence number
            if self.t < h["done"]:
                return None
            self.t += self._round_trip()              # and the chunk's status
            h["next"] += 1
            h["inflight"] = False
        if h["next"] < len(h["chunks"]):
            self._post()
            return None
        if not h["chunks"][-1].last:
            return None                               # the host has not read the next layer
        self._hint = None
        return dict(h["record"]), [(i.vpn, i.slot) for i in h["issues"]], h["posted"], self.t


# --------------------------------------------------------------------------------------------
class DeviceBackend(Backend):
    """A SpecKV device behind a :class:`~host.driver.link.Link`: every offload, demand read
    and hint goes over the link to the gateware and firmware. Subclasses open the link."""

    hint_max_cycles = 200_000_000    # device cycles for a hint's prefetches
    demand_max_cycles = 5_000_000    # device cycles for one demand read

    def __init__(self, link, codec, staging_slots):
        self.link = link
        self.dev = Device(link)
        self.sys_clk_freq = link.sys_clk_freq
        self.cycles_per_ns = self.sys_clk_freq / 1e9
        self.staging_slots = staging_slots
        self._staging = 0
        self.codec = codec
        self._hint = None

    def _mbox(self, word):
        return self.dev.mbox + 4 * word

    def start(self, cfg: SpecConfig, predictor=None):
        self._cfg0 = cfg
        size = cfg.host_bytes + PAGE
        self.demand_off = cfg.host_bytes
        for prefix in ("engine", "dma"):
            self.link.csr_write(f"{prefix}_host_base", HOST_BASE)
            self.link.csr_write(f"{prefix}_host_size", size)
        self.link.set_host_memory(HOST_BASE, size)
        cfg = SpecConfig(**{**cfg.__dict__, "l2_base": HOST_BASE})
        self.cfg = cfg
        done = self.dev.command_words(MBOX_CMD_SPEC_CONFIG, cfg.words())
        if done.status:
            raise DeviceError(f"speculation configuration rejected (status {done.status})",
                              done.status)
        self.hint_seq = self.link.cfg_read(self._mbox(MBOX_HINT_SEQ))
        self._hint = None

    def alive(self):
        """Is this still the device the host configured? Its firmware reports ready (mailbox
        word 0) and the DMA still has the host window :meth:`start` wrote (a reset clears the
        CSRs, so a device that came back empty fails here even once ready). False also when
        it does not answer."""
        try:
            return (self.link.cfg_read(self._mbox(MBOX_STATUS)) == MBOX_READY
                    and self.link.csr_read("dma_host_base") == HOST_BASE)
        except LinkError:
            return False

    def recover(self, max_cycles=20_000_000, poll=20_000):
        """Bring a reset device back: retrain the link, wait for the firmware, configure it
        again (:meth:`start`). The caller re-offloads the pages it holds.

        The mailbox RAM keeps its words through a reset, so word 0 may still say ready from
        the last boot until the new one clears it; the DMA's DRAM window is a CSR, cleared by
        the reset and written by the firmware just before it says ready again. Ready is both."""
        self.link.reset_link()
        start = self.link.cycle
        while not (self.link.csr_read("dma_dram_size")
                   and self.link.cfg_read(self._mbox(MBOX_STATUS)) == MBOX_READY):
            if self.link.cycle - start > max_cycles:
                raise BackendError(f"the device did not come back in {max_cycles} cycles")
            self.link.run(poll)
        self._hint = None
        self._staging = 0
        self.start(self._cfg0)

    def offload(self, vpn, page):
        slot = self._staging
        self._staging = (slot + 1) % self.staging_slots
        return self.dev.offload(vpn, np.asarray(page).tobytes(), staging_slot=slot,
                                raw=self.codec == "raw").length

    def _directory(self):
        off = PAGE * self.cfg.l2_slots
        return _parse_directory(self.link.host_memory[off:off + LINE_BYTES * self.cfg.l2_slots],
                                self.cfg.l2_slots)

    def l2_index(self):
        return self._directory()[0]

    def l2_page(self, slot):
        return bytes(self.link.host_memory[PAGE * slot:PAGE * (slot + 1)])

    def demand_read(self, vpn):
        a = self.link.transact([Message(Op.PAGE_RD, self.link.tag(), HOST_BASE + self.demand_off,
                                        value=vpn)], max_cycles=self.demand_max_cycles)[0]
        return bytes(self.link.host_memory[self.demand_off:self.demand_off + PAGE]), a.latency

    def _send(self, words):
        """Write one chunk's mailbox words, then its sequence number."""
        self.link.cfg_write_block(self._mbox(MBOX_HINT_MAGIC), words)
        self.hint_seq = (self.hint_seq + 1) & 0xFFFFFFFF
        self.link.cfg_write(self._mbox(MBOX_HINT_SEQ), self.hint_seq)

    def _post(self):
        h = self._hint
        self._send(h["chunks"][h["next"]].words())
        h["inflight"] = True

    def post_hint(self, words, max_cycles=None, poll=1_000):
        """Post raw chunk words (valid or not) and wait until the firmware has answered;
        returns its status (0: accepted)."""
        max_cycles = max_cycles or self.hint_max_cycles
        self._send(words)
        start = self.link.cycle
        while self.link.cfg_read(self._mbox(MBOX_HINT_DONE_SEQ)) != self.hint_seq:
            if self.link.cycle - start > max_cycles:
                raise BackendError(f"hint chunk (sequence {self.hint_seq}) not served in "
                                   f"{max_cycles} cycles")
            self.link.run(poll)
        return self.link.cfg_read(self._mbox(MBOX_HINT_STATUS))

    def rejected_hints(self):
        """Hint chunks the firmware has rejected so far."""
        return self.link.cfg_read(self._mbox(MBOX_HINT_REJECTED))

    def hint_begin(self, chunks):
        if self._hint is not None:
            return False
        self._hint = {"chunks": list(chunks), "next": 0, "posted": self.link.cycle,
                      "inflight": False}
        self._post()
        return True

    def hint_more(self, chunks):
        h = self._hint
        h["chunks"] += chunks
        if not h["inflight"]:
            self._post()

    def hint_pump(self):
        h = self._hint
        if h is None:
            return None
        if h["inflight"]:
            if self.link.cfg_read(self._mbox(MBOX_HINT_DONE_SEQ)) != self.hint_seq:
                return None
            status = self.link.cfg_read(self._mbox(MBOX_HINT_STATUS))
            if status:
                chunk = h["chunks"][h["next"]]
                self._hint = None
                raise BackendError(f"hint chunk of step {chunk.step} rejected: "
                                   f"{HINT_ERRORS.get(status, status)} "
                                   f"({self.rejected_hints()} rejected)")
            h["next"] += 1
            h["inflight"] = False
        if h["next"] < len(h["chunks"]):
            self._post()
            return None
        if not h["chunks"][-1].last:
            return None                               # the host has not read the next layer
        self._hint = None
        rec, issued = self._step_result(h["chunks"][-1].step)
        return rec, issued, h["posted"], self.link.cycle

    def hint(self, chunks, max_cycles=None, poll=1_000):
        if self._hint is not None:
            raise BackendError("a hint is still in progress")
        for ch in chunks:
            status = self.post_hint(ch.words(), max_cycles, poll)
            if status:
                raise BackendError(f"hint chunk of step {ch.step} rejected: "
                                   f"{HINT_ERRORS.get(status, status)} "
                                   f"({self.rejected_hints()} rejected)")
        return self._step_result(chunks[-1].step) if chunks[-1].last else None

    def _step_result(self, step):
        words = self.link.cfg_read_block(self._mbox(MBOX_STEP_RECORD), len(STEP_RECORD))
        rec = dict(zip(STEP_RECORD, words))
        if rec["step"] != step:
            raise BackendError(f"step record is for step {rec['step']}, expected {step}")
        _, d = self._directory()
        mine = np.nonzero((d[:, 0] == TAG_MAGIC) & (d[:, 2] == step))[0]
        if len(mine) != rec["issued"]:
            raise BackendError(f"step {step}: {len(mine)} directory lines for the "
                               f"{rec['issued']} pages the step record says were issued")
        mine = mine[np.argsort(d[mine, 4], kind="stable")]     # word 4: the DMA order
        return rec, [(int(d[s, 1]), int(s)) for s in mine]

    # timing-true replay -------------------------------------------------------------------
    def clock(self):
        return self.link.cycle

    def compute(self, cycles):
        if cycles > 0:
            self.link.run(int(cycles))

    def l2_valid(self, slot, vpn):
        off = PAGE * self.cfg.l2_slots + LINE_BYTES * slot
        line = np.frombuffer(bytes(self.link.host_memory[off:off + 8]), dtype="<u4")
        return int(line[0]) == TAG_MAGIC and int(line[1]) == vpn


class RtlBackend(DeviceBackend):
    """The Verilator SoC over the emulated link."""

    name = "rtl"
    CALIBRATION = ("measured: latencies and prefetch times in simulated device cycles "
                   "(Verilator SoC, emulated link)")

    def __init__(self, build, codec="kivi_k4v3", link="cxl2-x16", staging_slots=64, waveform=None,
                 faults=None):
        from soc.sim import SimDriver

        self.drv = SimDriver(build.model, csr_json=build.csr_json)
        try:
            check_codec(self.drv.constants, codec, build.build_dir)
        except ValueError:
            self.drv.close()
            raise
        self.drv.reset()
        if waveform:
            self.drv.trace_start(*waveform)
        sim_link = SimLink(self.drv, link)
        sim_link.wait_ready(4_000_000)
        if faults is not None:    # (rate, seed): the link layer on, faults from here
            sim_link.set_faults(faults[0], seed=faults[1])
        super().__init__(sim_link, codec, staging_slots)

    def inject_reset(self, cycles=16):
        """Reset the SoC (sys_rst for ``cycles``): the fault a reset experiment injects. The
        host is not told; the DRAM keeps its bits, the firmware and its pool start over."""
        self.drv.reset(cycles)

    def close(self):
        self.drv.close()


class BoardBackend(DeviceBackend):
    """The SoC on a board (or the board's simulation) through LiteX's host bridge:
    ``target`` is a ``host.driver.tunnel.RemoteTarget`` (``RemoteClient`` to a running
    ``litex_server``). Every offload, demand read and hint goes through the message tunnel,
    so latencies are the UART's, not a CXL link's; device time is the SoC's uptime counter.
    The device keeps its state between runs: ``start`` reconfigures prefetching, pages
    offloaded earlier stay in the pool (a fresh run needs a board reset)."""

    name = "board"
    CALIBRATION = ("measured on the board: UART latencies, device cycles from the SoC's uptime "
                   "counter")

    def __init__(self, target, codec="kivi_k4v3", staging_slots=64, own_bus=False):
        check_codec(target.constants, codec, "the board build")
        self.target = target
        self.own_bus = own_bus
        link = TunnelLink(target)
        link.wait_ready()
        # Each 64-byte line crosses the UART as ~20 bus words: a page is seconds of device time.
        self.hint_max_cycles = int(600 * target.sys_clk_freq)
        self.demand_max_cycles = int(60 * target.sys_clk_freq)
        super().__init__(link, codec, staging_slots)

    def close(self):
        if self.own_bus:
            self.target.bus.close()
