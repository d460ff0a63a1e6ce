"""Host side of the emulated CXL.mem / PCIe link to the simulated device.

The link itself (credits, serialisation at the link bandwidth, one-way latency) runs inside
the Verilator model's native loop (``soc/sim/native.cpp``), cycle by cycle; this module
converts named profiles to cycles at the SoC's sys_clk and speaks the message protocol of
``gateware/bridge/protocol.py``:

    link = HostLink(driver, profile="cxl2-x16", sys_clk_freq=100e6)
    link.cfg_read(addr)                 # CfgRd -> CfgData
    link.mem_write(addr, data)          # one MemWr per 64 B line, pipelined within credits
    data = link.mem_read(addr, nbytes)  # one MemRd per line, answered by MemData
"""

import ctypes
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


class HostLink:
    def __init__(self, driver, profile="cxl2-x16", sys_clk_freq=None, credits=None, seed=1):
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown link profile {profile!r}; known: {', '.join(PROFILES)}")
            profile = PROFILES[profile]
        self.drv = driver
        self.profile = profile
        self.sys_clk_freq = float(sys_clk_freq or driver.constants["config_clock_frequency"])
        self.credits = int(credits or driver.constants["cxl_link_credits"])
        ns_per_cycle = 1e9 / self.sys_clk_freq
        self.bytes_per_cycle = profile.bandwidth_gbps * ns_per_cycle  # GB/s * ns = bytes
        self.lat_min = round(profile.latency_ns_min / ns_per_cycle)
        self.lat_max = round(profile.latency_ns_max / ns_per_cycle)
        driver.lib.spk_link_config(driver._state, self.bytes_per_cycle, self.lat_min,
                                   self.lat_max, self.credits, seed)
        self._next_tag = 0
        self.sent = {}  # tag -> (Message, cycle sent)
        self.host_memory = bytearray()  # host memory the device writes into (HostWr)
        self.host_memory_base = 0
        self._host_view = None   # ctypes view of host_memory, registered with the native loop
        self._py_host_writes = 0
        self._native_writes0 = driver.lib.spk_link_host_writes(driver._state)
        driver.lib.spk_link_host_memory(driver._state, None, 0, 0)

    def set_stalls(self, h2d=0.0, d2h=0.0, seed=1):
        """Random valid/ready stalls at the device's link pads, per cycle: a host message
        that has arrived is held back with probability ``h2d`` (the bridge sees
        ``h2d_valid`` low), and the host refuses a device message with probability ``d2h``
        (``d2h_ready`` low: back-pressure into the bridge, the engine and the DMA engines).
        Seeded, so runs repeat exactly. 0, 0 turns them off."""
        for p in (h2d, d2h):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"stall probability must be in [0, 1), got {p}")
        self.drv.lib.spk_link_stalls(self.drv._state, round(h2d * 65536), round(d2h * 65536),
                                     seed)

    # Raw messages ----------------------------------------------------------------------------
    def send(self, msg):
        hdr = msg.header()
        h = (ctypes.c_uint32 * 4)(*[(hdr >> (32 * i)) & 0xFFFFFFFF for i in range(4)])
        d = (ctypes.c_uint32 * 16).from_buffer_copy(msg.data)
        self.sent[msg.tag] = (msg, self.drv.cycle)
        self.drv.lib.spk_link_send(self.drv._state, h, d)

    def recv(self):
        """All device messages that have arrived at the host, oldest first. Host writes
        (``HostWr``) are applied to :attr:`host_memory` here and not returned."""
        out = []
        h = (ctypes.c_uint32 * 4)()
        d = (ctypes.c_uint32 * 16)()
        t = (ctypes.c_uint64 * 2)()
        while self.drv.lib.spk_link_recv(self.drv._state, h, d, t):
            hdr = sum(h[i] << (32 * i) for i in range(4))
            m = Message.from_header(hdr, bytes(d))
            if m.opcode == Op.HOST_WR:
                self._host_write(m)
                continue
            out.append(Arrival(m, t[0], t[1]))
        return out

    def set_host_memory(self, base, size):
        """The host buffer (e.g. the L2 prefetch buffer) the device may write into.

        The native loop writes well-formed ``HostWr`` lines straight into it at their arrival
        cycle (no Python call per line); :meth:`recv` still checks and applies anything else
        and raises on a line outside the buffer. ``host_memory`` keeps its size: change
        its contents in place (slices of the same length)."""
        self.host_memory_base = base
        self.host_memory = bytearray(size)
        self._host_view = (ctypes.c_uint8 * size).from_buffer(self.host_memory) if size else None
        # The driver holds the buffer as long as the native loop may write into it.
        self.drv._host_memory_ref = (self.host_memory, self._host_view)
        self.drv.lib.spk_link_host_memory(
            self.drv._state, ctypes.addressof(self._host_view) if size else None, base, size)

    @property
    def host_writes(self):
        """``HostWr`` lines applied to :attr:`host_memory` since this link was created."""
        native = self.drv.lib.spk_link_host_writes(self.drv._state) - self._native_writes0
        return self._py_host_writes + native

    def _host_write(self, m):
        n = m.value
        off = m.addr - self.host_memory_base
        if not 1 <= n <= LINE or m.addr % LINE or off < 0 or off + n > len(self.host_memory):
            raise LinkError(f"device wrote outside the host buffer or a bad line: {m} "
                            f"({n} bytes; buffer 0x{self.host_memory_base:x}+{len(self.host_memory)})", m)
        self.host_memory[off:off + n] = m.data[:n]
        self._py_host_writes += 1

    def stats(self):
        v = (ctypes.c_uint64 * 9)()
        self.drv.lib.spk_link_stats(self.drv._state, v)
        keys = ("credits", "waiting", "h2d_in_flight", "d2h_in_flight", "inbox",
                "h2d_msgs", "d2h_msgs", "h2d_bytes", "d2h_bytes")
        return dict(zip(keys, v))

    def tag(self):
        t = self._next_tag
        self._next_tag = (self._next_tag + 1) % 256
        return t

    def transact(self, msgs, max_cycles=2_000_000, check=True):
        """Send ``msgs`` (pipelined, as credits allow); wait for one response each.

        Returns the responses in the order of ``msgs`` as :class:`Arrival` objects, each with
        ``latency`` (cycles from send to arrival) set. Raises :class:`LinkError` on a missing
        response, or on a non-OK status when ``check``.
        """
        tags = [m.tag for m in msgs]
        if len(set(tags)) != len(tags):
            raise ValueError("tags of outstanding requests must be unique")
        start = self.drv.cycle
        for m in msgs:
            self.send(m)
        pending = {m.tag: m for m in msgs}
        got = {}
        while pending:
            budget = max_cycles - (self.drv.cycle - start)
            if budget <= 0:
                raise LinkError(f"{len(pending)} response(s) missing after {max_cycles} cycles "
                                f"(tags {sorted(pending)[:8]})")
            self.drv.run(budget, Stop.D2H)
            for a in self.recv():
                if a.msg.tag not in pending:
                    raise LinkError(f"unexpected response {a.msg}", a.msg)
                a.latency = a.arrival_cycle - self.sent[a.msg.tag][1]
                got[a.msg.tag] = a
                del pending[a.msg.tag]
        out = [got[m.tag] for m in msgs]
        if check:
            for m, a in zip(msgs, out):
                if a.msg.status != Status.OK:
                    raise LinkError(f"{m} failed: {Status(a.msg.status).name}", a.msg)
        return out

    # Device readiness ------------------------------------------------------------------------
    def wait_ready(self, max_cycles=2_000_000, poll=20_000):
        """Poll mailbox word 0 until the firmware reports the device ready (DRAM up).
        Memory traffic before that may be lost while the firmware initialises the SDRAM."""
        word = self.drv.memories["mbox"]["base"] + 4 * MBOX_STATUS
        start = self.drv.cycle
        while self.cfg_read(word) != MBOX_READY:
            if self.drv.cycle - start > max_cycles:
                raise LinkError(f"device not ready after {max_cycles} cycles "
                                f"(mailbox word 0 = 0x{self.cfg_read(word):08x})")
            self.drv.run(poll)
        return self.drv.cycle - start

    # Convenience -----------------------------------------------------------------------------
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
        reg = self.drv.csr[name]
        value = 0
        for i in range(reg["size"]):
            value = (value << 32) | self.cfg_read(reg["addr"] + 4 * i)
        return value

    def csr_write(self, name, value):
        reg = self.drv.csr[name]
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
