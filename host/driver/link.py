"""The host's link to a SpecKV device: the :class:`Link` interface and the emulated CXL.mem /
PCIe link of the simulated SoC (:class:`SimLink`).

A link speaks the message protocol of ``gateware/bridge/protocol.py``. :class:`Link` holds
everything that does not depend on how messages travel: tags, ``transact`` (send pipelined
within the credits, wait for one response each), config-space and memory access, the host
buffer the device writes into, and waiting for the firmware's ready word. A subclass moves
the messages and keeps time: :class:`SimLink` through the Verilator model's native link
(credits, serialisation at the link bandwidth and one-way latency run in
``soc/sim/native.cpp``, cycle by cycle), ``host.driver.tunnel.TunnelLink`` through a board's
message tunnel.

    link = SimLink(driver, profile="cxl2-x16", sys_clk_freq=100e6)
    link.cfg_read(addr)                 # CfgRd -> CfgData
    link.mem_write(addr, data)          # one MemWr per 64 B line, pipelined within credits
    data = link.mem_read(addr, nbytes)  # one MemRd per line, answered by MemData
"""

import abc
from dataclasses import dataclass

from gateware.bridge.protocol import LINE, Message, Op, Status
from soc.mailbox import MBOX_READY, MBOX_STATUS
from soc.sim.driver import Stop


@dataclass(frozen=True)
class LinkProfile:
    name: str
    bandwidth_gbps: float   # GB/s (1e9 bytes per second), each direction
    latency_ns_min: float   # one-way latency range; each message draws uniformly in it
    latency_ns_max: float
    note: str = ""


PROFILES = {
    "cxl2-x16": LinkProfile("cxl2-x16", 64.0, 250.0, 400.0,
                            "CXL 2.0 x16 (PCIe 5.0 PHY): ~64 GB/s, 250-400 ns one way"),
    "pcie4-x16": LinkProfile("pcie4-x16", 25.0, 500.0, 800.0,
                             "PCIe Gen4 x16: ~25 GB/s; the 500-800 ns one-way latency is our "
                             "assumption for a DMA-style read path"),
    "ideal": LinkProfile("ideal", 1e6, 0.0, 0.0, "no latency, unbounded bandwidth (tests)"),
}


FAULT_KINDS = ("drop", "duplicate", "delay", "corrupt")  # per flit, on either wire


class LinkError(RuntimeError):
    """A response carried a non-OK status, or did not arrive in time."""
    def __init__(self, msg, response=None):
        super().__init__(msg)
        self.response = response


@dataclass
class Arrival:
    """A device message delivered to the host, with its timing in cycles."""
    msg: Message
    sent_cycle: int      # cycle the device emitted it
    arrival_cycle: int   # cycle it reached the host
    latency: int = None  # set by transact(): cycles from the request's send to this arrival


class Link(abc.ABC):
    """A host's link to one device. ``target`` runs the device and keeps its time: a
    ``soc.sim.driver.SimDriver`` or a ``host.driver.tunnel.RemoteTarget`` (its ``cycle``,
    ``run``, ``constants``, ``memories`` and ``csr`` map)."""

    RESPONSE_TIMEOUT = 2_000_000   # device cycles ``transact`` waits for its responses
    READY_TIMEOUT = 2_000_000      # device cycles ``wait_ready`` waits for the firmware
    READY_POLL = 20_000            # device cycles between its polls

    def __init__(self, target, credits=None, sys_clk_freq=None):
        self.target = target
        self.sys_clk_freq = float(sys_clk_freq or target.constants["config_clock_frequency"])
        self.credits = int(credits or target.constants["cxl_link_credits"])
        self._next_tag = 0
        self.sent = {}  # tag -> (Message, cycle sent or None)
        self.host_memory = bytearray()  # host memory the device writes into (HostWr)
        self.host_memory_base = 0
        self._py_host_writes = 0

    # How messages travel: one per subclass ---------------------------------------------------
    @abc.abstractmethod
    def send(self, msg):
        """Queue one host message (it goes out as the credits allow)."""

    @abc.abstractmethod
    def recv(self):
        """All device messages that have reached the host, oldest first, as
        :class:`Arrival`; host writes (``HostWr``) are applied to :attr:`host_memory` and
        not returned."""

    @abc.abstractmethod
    def _arrivals(self, start, max_cycles):
        """Let the device work (at most until ``start + max_cycles``) and return what has
        arrived (:meth:`recv`), each with its ``latency`` set."""

    @abc.abstractmethod
    def set_host_memory(self, base, size):
        """The host buffer (e.g. the L2 prefetch buffer) the device may write into, ``size``
        bytes from bus address ``base``; its contents change in place."""

    @property
    @abc.abstractmethod
    def host_writes(self):
        """``HostWr`` lines applied to :attr:`host_memory` since this link was created."""

    @abc.abstractmethod
    def stats(self):
        """Message and byte counters of the link (a dict)."""

    # The device's clock and address map -------------------------------------------------------
    @property
    def cycle(self):
        """Device cycles since reset."""
        return self.target.cycle

    def run(self, cycles):
        """Let ``cycles`` device cycles pass (simulate them, or wait for them on a board)."""
        self.target.run(cycles)

    @property
    def constants(self):
        """The SoC's build constants (csr.json)."""
        return self.target.constants

    def region(self, name):
        """Bus address of the SoC memory region ``name`` (``mbox``, ``main_ram``, ...)."""
        return self.target.memories[name]["base"]

    # Requests and responses ----------------------------------------------------------------------
    def tag(self):
        t = self._next_tag
        self._next_tag = (self._next_tag + 1) % 256
        return t

    def transact(self, msgs, max_cycles=None, check=True):
        """Send ``msgs`` (pipelined, as credits allow); wait for one response each.

        Returns the responses in the order of ``msgs`` as :class:`Arrival` objects, each with
        ``latency`` (device cycles from the send until the host had it) set. Raises
        :class:`LinkError` on a response missing after ``max_cycles`` (default
        :attr:`RESPONSE_TIMEOUT`), or on a non-OK status when ``check``.
        """
        max_cycles = max_cycles or self.RESPONSE_TIMEOUT
        tags = [m.tag for m in msgs]
        if len(set(tags)) != len(tags):
            raise ValueError("tags of outstanding requests must be unique")
        start = self.cycle
        for m in msgs:
            self.send(m)
        pending = {m.tag: m for m in msgs}
        got = {}
        while pending:
            arrived = self._arrivals(start, max_cycles)
            for a in arrived:
                if a.msg.tag not in pending:
                    raise LinkError(f"unexpected response {a.msg}", a.msg)
                got[a.msg.tag] = a
                del pending[a.msg.tag]
            if pending and not arrived and self.cycle - start >= max_cycles:
                raise LinkError(f"{len(pending)} response(s) missing after {max_cycles} cycles "
                                f"(tags {sorted(pending)[:8]}){self._why_missing()}")
        out = [got[m.tag] for m in msgs]
        if check:
            for m, a in zip(msgs, out):
                if a.msg.status != Status.OK:
                    raise LinkError(f"{m} failed: {Status(a.msg.status).name}", a.msg)
        return out

    def _why_missing(self):
        """What the link knows about lost responses, for the timeout's message."""
        return ""

    def _host_write(self, m):
        n = m.value
        off = m.addr - self.host_memory_base
        if not 1 <= n <= LINE or m.addr % LINE or off < 0 or off + n > len(self.host_memory):
            raise LinkError(f"device wrote outside the host buffer or a bad line: {m} "
                            f"({n} bytes; buffer 0x{self.host_memory_base:x}+{len(self.host_memory)})", m)
        self.host_memory[off:off + n] = m.data[:n]
        self._py_host_writes += 1

    # Device readiness ------------------------------------------------------------------------
    def wait_ready(self, max_cycles=None, poll=None):
        """Poll mailbox word 0 until the firmware reports the device ready (DRAM up).
        Memory traffic before that may be lost while the firmware initialises the SDRAM.
        Returns the device cycles it took."""
        max_cycles = max_cycles or self.READY_TIMEOUT
        word = self.region("mbox") + 4 * MBOX_STATUS
        start = self.cycle
        while True:
            self._while_waiting()
            if self.cfg_read(word) == MBOX_READY:
                break
            if self.cycle - start > max_cycles:
                raise LinkError(f"device not ready after {max_cycles} cycles "
                                f"(mailbox word 0 = 0x{self.cfg_read(word):08x})")
            self.run(poll or self.READY_POLL)
        self._when_ready()
        return self.cycle - start

    def _while_waiting(self):
        """Called before each poll of the ready word."""

    def _when_ready(self):
        """Called once the device is ready."""

    # Config space and memory -------------------------------------------------------------------
    def cfg_read(self, addr):
        return self.transact([Message(Op.CFG_RD, self.tag(), addr)])[0].msg.value

    def cfg_write(self, addr, value):
        self.transact([Message(Op.CFG_WR, self.tag(), addr, value=value)])

    def cfg_write_block(self, addr, words):
        """Write consecutive 32-bit words from ``addr``, pipelined within the link credits."""
        for i in range(0, len(words), 128):
            self.transact([Message(Op.CFG_WR, self.tag(), addr + 4 * (i + j), value=int(w))
                           for j, w in enumerate(words[i:i + 128])])

    def cfg_read_block(self, addr, n):
        """Read ``n`` consecutive 32-bit words from ``addr``, pipelined."""
        out = []
        for i in range(0, n, 128):
            out += [a.msg.value for a in self.transact(
                [Message(Op.CFG_RD, self.tag(), addr + 4 * j) for j in range(i, min(n, i + 128))])]
        return out

    def csr_read(self, name):
        """A CSR read over the link (config space), MSB word first."""
        reg = self.target.csr[name]
        value = 0
        for i in range(reg["size"]):
            value = (value << 32) | self.cfg_read(reg["addr"] + 4 * i)
        return value

    def csr_write(self, name, value):
        reg = self.target.csr[name]
        for i in range(reg["size"]):
            self.cfg_write(reg["addr"] + 4 * i, (value >> (32 * (reg["size"] - 1 - i))) & 0xFFFFFFFF)

    def mem_write(self, addr, data):
        if addr % LINE or len(data) % LINE:
            raise ValueError(f"mem_write needs {LINE} B aligned address and length "
                             f"(addr 0x{addr:x}, {len(data)} bytes)")
        msgs = [Message(Op.MEM_WR, self.tag(), addr + o, data=bytes(data[o:o + LINE]))
                for o in range(0, len(data), LINE)]
        for i in range(0, len(msgs), 256):
            self.transact(msgs[i:i + 256])

    def mem_read(self, addr, nbytes):
        if addr % LINE or nbytes % LINE:
            raise ValueError(f"mem_read needs {LINE} B aligned address and length "
                             f"(addr 0x{addr:x}, {nbytes} bytes)")
        out = bytearray()
        msgs = [Message(Op.MEM_RD, self.tag(), addr + o) for o in range(0, nbytes, LINE)]
        for i in range(0, len(msgs), 256):
            for a in self.transact(msgs[i:i + 256]):
                out += a.msg.data
        return bytes(out)


class SimLink(Link):
    """The emulated CXL/PCIe link of the Verilator SoC (``soc.sim.driver.SimDriver``), at a
    named :data:`PROFILES` bandwidth and latency converted to cycles of the SoC's sys_clk."""

    def __init__(self, driver, profile="cxl2-x16", sys_clk_freq=None, credits=None, seed=1):
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown link profile {profile!r}; known: {', '.join(PROFILES)}")
            profile = PROFILES[profile]
        super().__init__(driver, credits, sys_clk_freq)
        self.profile = profile
        ns_per_cycle = 1e9 / self.sys_clk_freq
        self.bytes_per_cycle = profile.bandwidth_gbps * ns_per_cycle  # GB/s * ns = bytes
        self.lat_min = round(profile.latency_ns_min / ns_per_cycle)
        self.lat_max = round(profile.latency_ns_max / ns_per_cycle)
        driver.link_config(self.bytes_per_cycle, self.lat_min, self.lat_max, self.credits, seed)
        self._native_writes0 = driver.link_host_writes

    def set_stalls(self, h2d=0.0, d2h=0.0, seed=1):
        """Random valid/ready stalls at the device's link pads, per cycle: a host message
        that has arrived is held back with probability ``h2d`` (the bridge sees
        ``h2d_valid`` low), and the host refuses a device message with probability ``d2h``
        (``d2h_ready`` low: back-pressure into the bridge, the engine and the DMA engines).
        Seeded, so runs repeat exactly. 0, 0 turns them off."""
        for p in (h2d, d2h):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"stall probability must be in [0, 1), got {p}")
        self.target.link_stalls(round(h2d * 65536), round(d2h * 65536), seed)

    def set_faults(self, rate=0.0, kinds=FAULT_KINDS, seed=1):
        """Turn on the link layer of both ends (sequence numbers, a CRC-32 per flit,
        acknowledgements, go-back-N replay; ``soc/sim/link_layer.cpp``) and inject faults:
        each flit on either wire meets one of ``kinds`` (drop, duplicate, delay beyond the
        replay timeout, corrupt 1-3 bits) with probability ``rate``, split evenly; seeded.
        ``rate`` 0 runs the link layer clean (its overhead only). Call it with nothing in
        flight. :meth:`reliability` counts what happened."""
        bad = [k for k in kinds if k not in FAULT_KINDS]
        if bad or not kinds:
            raise ValueError(f"unknown fault kind(s) {bad or kinds}; known: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be in [0, 1], got {rate}")
        st = self.stats()
        if st["waiting"] or st["h2d_in_flight"] or st["d2h_in_flight"] or st["inbox"]:
            raise RuntimeError(f"set_faults with messages in flight: {st}")
        q16 = min(65536, round(rate * 65536 / len(kinds)))
        self.target.link_faults(*[q16 if k in kinds else 0 for k in FAULT_KINDS], seed)

    def reset_link(self):
        """The link goes down and up again, as after a device reset: whatever was waiting,
        in flight or unread is dropped and the credits are the device's again."""
        self.target.link_reset()
        self.sent.clear()

    def reliability(self):
        """The link layer's counters: faults injected, what the receivers detected, what the
        senders replayed, per direction (``h2d_*``: host to device), and whether the link
        went down (a flit replayed ``SPK_LL_MAX_REPLAYS`` times without progress)."""
        st = self.stats()
        return {k: st[k] for k in self.target.LINK_LAYER_STATS}

    def _why_missing(self):
        st = self.stats()
        if st["link_down"]:
            return (f"; the link is down: a flit was replayed too often without an "
                    f"acknowledgement ({self.reliability()})")
        return ""

    def send(self, msg):
        self.sent[msg.tag] = (msg, self.target.cycle)
        self.target.link_send(msg.header(), msg.data)

    def recv(self):
        out = []
        while (got := self.target.link_recv()) is not None:
            hdr, data, sent, arrived = got
            m = Message.from_header(hdr, data)
            if m.opcode == Op.HOST_WR:
                self._host_write(m)
                continue
            out.append(Arrival(m, sent, arrived))
        return out

    def _arrivals(self, start, max_cycles):
        budget = max_cycles - (self.target.cycle - start)
        if budget > 0:
            self.target.run(budget, Stop.D2H)
        arrived = self.recv()
        for a in arrived:
            a.latency = a.arrival_cycle - self.sent[a.msg.tag][1]
        return arrived

    def set_host_memory(self, base, size):
        """The native loop writes well-formed ``HostWr`` lines straight into the buffer at
        their arrival cycle (no Python call per line); :meth:`recv` still checks and applies
        anything else and raises on a line outside the buffer. ``host_memory`` keeps its
        size: change its contents in place (slices of the same length)."""
        self.host_memory_base = base
        self.host_memory = bytearray(size)
        self.target.link_host_memory(self.host_memory, base)

    @property
    def host_writes(self):
        native = self.target.link_host_writes - self._native_writes0
        return self._py_host_writes + native

    def stats(self):
        return self.target.link_stats()
