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
"""

from __future__ import annotations

import abc

import numpy as np

from gateware.codec import reference as R
from gateware.common import LINE_BYTES, PAGE_BYTES as PAGE
from gateware.bridge.protocol import Message, Op
from host.driver.device import Device, DeviceError
from host.driver.hints import SpecConfig
from host.driver.link import PROFILES, SimLink
from host.driver.tunnel import TunnelLink
from host.prefetch.speculation import SpeculationEngine, tag_line
from soc.mailbox import (HINT_ERRORS, MBOX_CMD_SPEC_CONFIG, MBOX_HINT_DONE_SEQ, MBOX_HINT_MAGIC,
                         MBOX_HINT_REJECTED, MBOX_HINT_SEQ, MBOX_HINT_STATUS, MBOX_STEP_RECORD,
                         STEP_RECORD, TAG_MAGIC)

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
        """One decode step's hint: (the firmware's step record, [(vpn, slot)] prefetched in
        DMA order)."""

    def close(self):
        """Release the device."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_codec(constants, codec, where):
    """The codec mode a SoC build compresses with must be ``codec``."""
    built = [k[len("codec_mode_"):] for k in constants if k.startswith("codec_mode_")]
    if built != [codec]:
        raise ValueError(f"the SoC of {where} compresses with {built}; codec "
                         f"{codec!r} needs a SoC built with it (soc/soc.py codec_mode)")


# --------------------------------------------------------------------------------------------
class ModelBackend(Backend):
    """Reference models; timing from the constants below (cycles at ``sys_clk``)."""

    name = "model"
    # Device-side cycles of one demand read (ATU walk + DRAM read + decompression + 64 line
    # writes: the rtl backend's 861-cycle mean at 100 MHz on the cxl2-x16 profile minus the
    # link's mean round trip and serialisation), and of a step's prefetch work (firmware
    # filtering, DMA decompress into L2, tag lines: ~5000 + ~4400 per page on rtl, same run:
    # `python host/replay.py --backend rtl --steps 4 --layers 30 --prefetcher last -k 2`).
    DEMAND_DEVICE_CYCLES = 790
    PREFETCH_STEP_CYCLES = 5000
    PREFETCH_PAGE_CYCLES = 4400
    CALIBRATION = ("estimate: every latency, stall and prefetch time of the model backend comes "
                   "from DEMAND_DEVICE_CYCLES = 790, PREFETCH_STEP_CYCLES = 5000 and "
                   "PREFETCH_PAGE_CYCLES = 4400 (host/replayer/backends.py), calibrated once on the rtl "
                   "backend by `python host/replay.py --backend rtl --steps 4 --layers 30 "
                   "--prefetcher last -k 2` on 2026-11-24 (commit de6307c), plus the link "
                   "profile's round trip and serialisation; not measured in this run")

    def __init__(self, codec="kivi_k4v3", link="cxl2-x16", sys_clk_freq=100e6):
        if codec not in R.MODES:
            raise ValueError(f"unknown codec mode {codec!r}; known: {', '.join(R.MODES)}")
        if link not in PROFILES:
            raise ValueError(f"unknown link profile {link!r}; known: {', '.join(PROFILES)}")
        self.codec = codec
        self.profile = PROFILES[link]
        self.sys_clk_freq = sys_clk_freq
        self.cycles_per_ns = sys_clk_freq / 1e9
        self.pool = {}
        self.l2 = {}
        self.dir = bytearray()
        self.engine = None
        ns = 1e9 / sys_clk_freq
        self.one_way = (self.profile.latency_ns_min + self.profile.latency_ns_max) / 2 / ns
        self.page_serial = PAGE / (self.profile.bandwidth_gbps * ns)

    def start(self, cfg: SpecConfig, predictor):
        self.cfg = cfg
        self.l2 = {}
        self.dir = bytearray(LINE_BYTES * cfg.l2_slots)
        self.engine = SpeculationEngine(cfg, lambda v: v in self.pool, predictor)

    def offload(self, vpn, page):
        blob = R.compress(np.asarray(page), self.codec)
        self.pool[vpn] = blob
        return len(blob)

    def l2_index(self):
        return _parse_directory(self.dir, self.cfg.l2_slots)[0]

    def l2_page(self, slot):
        return self.l2[slot]

    def demand_read(self, vpn):
        if vpn not in self.pool:
            raise BackendError(f"demand read of vpn {vpn}: not in the pool")
        data = R.decompress(self.pool[vpn]).tobytes()
        cycles = round(2 * self.one_way + self.DEMAND_DEVICE_CYCLES + self.page_serial)
        return data, cycles

    def hint(self, chunks):
        res = None
        for c in chunks:
            status, r = self.engine.chunk(c.words())
            if status:
                raise BackendError(f"hint chunk rejected: {HINT_ERRORS[status]}")
            res = r or res
        for i in res.issues:
            self.l2[i.slot] = R.decompress(self.pool[i.vpn]).tobytes()
        for i in res.issues:
            line = tag_line(i.vpn, res.record["step"], i.slot)
            self.dir[LINE_BYTES * i.slot:LINE_BYTES * (i.slot + 1)] = line
        rec = dict(res.record)
        rec["issue_cycles"] = self.PREFETCH_STEP_CYCLES + len(res.issues) * self.PREFETCH_PAGE_CYCLES
        return rec, [(i.vpn, i.slot) for i in res.issues]


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

    def _mbox(self, word):
        return self.dev.mbox + 4 * word

    def start(self, cfg: SpecConfig, predictor=None):
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

    def offload(self, vpn, page):
        slot = self._staging
        self._staging = (slot + 1) % self.staging_slots
        return self.dev.offload(vpn, np.asarray(page).tobytes(), staging_slot=slot).length

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

    def post_hint(self, words, max_cycles=None, poll=1_000):
        """Post one hint chunk (its mailbox words, as ``Chunk.words()`` gives them) and wait
        until the firmware has served it; returns the firmware's status (0: accepted)."""
        max_cycles = max_cycles or self.hint_max_cycles
        self.link.cfg_write_block(self._mbox(MBOX_HINT_MAGIC), words)
        self.hint_seq = (self.hint_seq + 1) & 0xFFFFFFFF
        self.link.cfg_write(self._mbox(MBOX_HINT_SEQ), self.hint_seq)
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

    def hint(self, chunks, max_cycles=None, poll=1_000):
        for c in chunks:
            status = self.post_hint(c.words(), max_cycles, poll)
            if status:
                raise BackendError(f"hint chunk of step {c.step} rejected: "
                                   f"{HINT_ERRORS.get(status, status)} "
                                   f"({self.rejected_hints()} rejected)")
        words = self.link.cfg_read_block(self._mbox(MBOX_STEP_RECORD), len(STEP_RECORD))
        rec = dict(zip(STEP_RECORD, words))
        step = chunks[-1].step
        if rec["step"] != step:
            raise BackendError(f"step record is for step {rec['step']}, expected {step}")
        _, d = self._directory()
        issued = [(int(d[s, 1]), int(s)) for s in np.nonzero((d[:, 0] == TAG_MAGIC) & (d[:, 2] == step))[0]]
        # DMA order = slot order of this step (FIFO allocation, wrapping at the end)
        first = (issued[0][1] if issued else 0)
        if issued and len(issued) < self.cfg.l2_slots:
            slots = {s for _, s in issued}
            first = next(s for _, s in issued if (s - 1) % self.cfg.l2_slots not in slots)
        issued.sort(key=lambda x: (x[1] - first) % self.cfg.l2_slots)
        return rec, issued


class RtlBackend(DeviceBackend):
    """The Verilator SoC over the emulated link."""

    name = "rtl"
    CALIBRATION = ("measured: latencies and prefetch times in simulated device cycles "
                   "(Verilator SoC, emulated link)")

    def __init__(self, build, codec="kivi_k4v3", link="cxl2-x16", staging_slots=64, waveform=None):
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
        super().__init__(sim_link, codec, staging_slots)

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
